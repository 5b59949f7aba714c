//! `fabric_call_rtt_us`: a fabric call from device `a` to device `b` —
//! `stats` of a live process on `b`, which `b`'s daemon reads from its
//! guest's process status page (PROTOCOL.md §14.6) — made by a Zenoh client session in `a`'s namespace
//! with `a`'s identity, connected to `a`'s router only: client → `a`'s
//! daemon → `b`'s daemon → `b`'s guest and back.
//!
//! Baseline, in the same querier and in turn with the fabric call: the
//! same query to a plain Zenoh queryable in `b`'s namespace, a router of
//! its own with `b`'s identity and the device configuration
//! ([`weft_fabric::zconfig::config`]) connected to `a`'s router, which
//! answers a fixed stats reply of the same shape: client → `a`'s daemon →
//! the replier and back, the same hops over the same mutual-TLS links.
//!
//! `fabric_daemon_call_rtt_us`, to tell the process view's share from the
//! daemons': a `registry` call to `b` in the same turns, which `b`'s daemon
//! answers from its registry alone; the same baseline.

use crate::Figure;
use crate::devices::Fabric;
use crate::error::BenchError;
use crate::lines::StampedLines;
use crate::roles::{Helper, QUERIER, REPLIER, this_program};
use serde_json::Value;
use std::net::SocketAddr;
use std::time::Duration;
use weft_fabric::keys;
use weft_fabric::wire::{self, Pid, Process, Request, Response};

/// Queries of each kind recorded.
const ROUNDS: usize = 200;
/// The baseline replier's key, outside the fabric's key space (`weft/`).
const BASELINE_KEY: &str = "bench/fabric/reply";
/// The port of the baseline replier's router.
const REPLIER_PORT: u16 = 7448;
const READY_LIMIT: Duration = Duration::from_secs(20);
const QUERIES_LIMIT: Duration = Duration::from_secs(60);

pub fn measure(fabric: &Fabric) -> Result<[Figure; 2], BenchError> {
    let (a, b) = (0, 1);
    let spawned = fabric.cli(a, &["spawn", "--device", "b", "sleep", "600000"])?;
    let pid = Pid::parse(spawned.trim()).map_err(|text| BenchError::Output {
        what: "weft spawn --device b sleep".into(),
        text,
    })?;
    let request = text(wire::encode(&Request::Stats {
        pid: pid.n,
        of: None,
    }));
    let fixed_reply = text(wire::encode(&Response::Process {
        process: Process {
            pid: pid.to_string(),
            device: pid.device.clone(),
            name: "sleep".into(),
            state: "waiting".into(),
            cpu_ns: 1_000_000,
            memory: 1 << 20,
            streams: 3,
            status: None,
            engine: None,
        },
    }));
    let program = this_program()?;
    let replier_addr = SocketAddr::new(fabric.zenoh_addr(b).ip(), REPLIER_PORT);
    let replier = Helper::start(
        fabric.command_in(b, &program),
        REPLIER,
        &[
            fabric.state(b).display().to_string(),
            replier_addr.to_string(),
            fabric.zenoh_addr(a).to_string(),
            BASELINE_KEY.into(),
            fixed_reply.clone(),
        ],
    )?;
    replier
        .output()
        .next("the replier is ready", READY_LIMIT, |l| l == "ready")?;
    let querier = Helper::start(
        fabric.command_in(a, &program),
        QUERIER,
        &[
            fabric.state(a).display().to_string(),
            fabric.zenoh_addr(a).to_string(),
            ROUNDS.to_string(),
            keys::call(&pid.device),
            request.clone(),
            keys::call(&pid.device),
            text(wire::encode(&Request::Registry)),
            BASELINE_KEY.into(),
            request,
        ],
    )?;
    let ([stats, registry, baseline], replies) = querier_report(querier.output())?;
    // The sleeper goes: the figures measured after this one find only
    // their own programs in the guests.
    fabric.cli(a, &["kill", &pid.to_string()])?;
    let stats_answered = matches!(
        wire::decode::<Response>(replies[0].as_bytes()),
        Ok(Response::Process { process }) if process.pid == pid.to_string()
    );
    let registry_answered = matches!(
        wire::decode::<Response>(replies[1].as_bytes()),
        Ok(Response::Registry { devices }) if !devices.is_empty()
    );
    if !stats_answered || !registry_answered || replies[2] != fixed_reply {
        return Err(BenchError::Output {
            what: format!("the replies to stats of {pid}, registry and the baseline"),
            text: replies.join(" / "),
        });
    }
    let figure = |name, samples| Figure {
        name,
        unit: "us",
        samples,
        baseline: "raw Zenoh get/reply, same hops, TLS and router config",
        baseline_name: "zenoh_get_rtt_us",
        baseline_samples: baseline.clone(),
        resolution: None,
    };
    Ok([
        figure("fabric_call_rtt_us", stats),
        figure("fabric_daemon_call_rtt_us", registry),
    ])
}

fn text(bytes: Vec<u8>) -> String {
    String::from_utf8_lossy(&bytes).into_owned()
}

/// The querier's samples and last replies, per key (the stats call's,
/// the registry call's, then the baseline's).
type Report = ([Vec<f64>; 3], [String; 3]);

fn querier_report(output: &StampedLines) -> Result<Report, BenchError> {
    let (_, line) = output.next("the querier's samples", QUERIES_LIMIT, |_| true)?;
    let bad = || BenchError::Output {
        what: "the querier's report".into(),
        text: line.clone(),
    };
    let report: Value = serde_json::from_str(&line).map_err(|_| bad())?;
    let samples = report["samples_us"]
        .as_array()
        .ok_or_else(bad)?
        .iter()
        .map(|per_key| {
            per_key
                .as_array()
                .map(|s| s.iter().filter_map(Value::as_f64).collect::<Vec<f64>>())
                .ok_or_else(bad)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let replies = report["replies"]
        .as_array()
        .ok_or_else(bad)?
        .iter()
        .map(|r| r.as_str().map(str::to_string).ok_or_else(bad))
        .collect::<Result<Vec<_>, _>>()?;
    if samples.iter().any(|s| s.len() != ROUNDS) {
        return Err(bad());
    }
    Ok((
        samples.try_into().map_err(|_| bad())?,
        replies.try_into().map_err(|_| bad())?,
    ))
}
