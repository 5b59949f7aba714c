//! IPC by GUID (PROTOCOL.md §18) between apps, each figure beside a
//! baseline measured in the same run. One `ipc-check serve GUID` instance
//! runs on `b`; the clients are the bundled `ipc-check` too, started with
//! `weft spawn --wait` on the device named, and report on that device's
//! output (the guest's standard output, read by its daemon).
//!
//! - `ipc_rtt_same_device_us`: `ipc-check rtt GUID N` on `b`, every
//!   request's time as the client measures it (guest clock): app → `b`'s
//!   daemon's hub → the service on `b` and back. Baseline: a Unix
//!   datagram socket round trip of a message of the same size between two
//!   threads of this benchmark.
//! - `ipc_rtt_same_runtime_us`: the Wasm `kv-app rtt GUID N` against
//!   `kv-app serve GUID` on `b`, the client started beside the service in
//!   its runtime (`serve GUID beside /kv-app.wasm rtt ...`): two apps of
//!   one guest process, so a round trip switches no process in the guest
//!   kernel, where the two native programs of `ipc_rtt_same_device_us` are
//!   switched twice. Every request's time as the client measures it (the
//!   first [`RTT_WARMUP`] not recorded); the same baseline.
//! - `ipc_rtt_cross_device_us`: the same client on `a`: app → `a`'s
//!   daemon → Zenoh → `b`'s daemon → the service and back, in four runs.
//!   Baseline, in the same run, in turns with those runs: a raw Zenoh
//!   get/reply of the same payloads from a client session in `a`'s
//!   namespace (`a`'s identity,
//!   the device configuration) connected straight to a router of its own
//!   in `b`'s namespace (`b`'s identity, the device configuration; like
//!   the call baseline's, also linked to `a`'s router) that answers with
//!   a fixed reply: one mutual-TLS link between the namespaces, as
//!   between the daemons. Target: ≤ 1.5×. Each turn's own ratio (its
//!   median against its baseline's) is printed too: how far the figure
//!   moves with what else the machine does.
//! - `ipc_msgs_per_s`: `ipc-check send GUID N TAG` on `a` (one-way
//!   messages, 32 in flight, each acknowledged once queued at the service
//!   on `b`), the rate the client prints. Baseline, in turn with it: the
//!   same program on `b`, sending to the same instance on its own device
//!   (no Zenoh on the way).
//!
//! Before the recorded runs each client runs once unrecorded (routes to
//! the service spread, the program is loaded). Afterwards the service's
//! own counts must match what was sent: every request and every one-way
//! message seen, none out of order. A client run that fails while `a`
//! and `b` do not see each other (their Zenoh link was lost) is run again
//! once they do, a few times at most, and the benchmark says how often.

use crate::Figure;
use crate::devices::{Daemon, Fabric, WASM_ROOT, WEFT, poll, run};
use crate::error::{BenchError, io};
use crate::roles::{Helper, QUERIER, REPLIER, this_program};
use serde_json::Value;
use std::net::SocketAddr;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use weft_benchkit::median;

/// The service's GUID (the fabric test's `ipc-check` GUID).
const GUID: &str = "6f1c2a4e-8b3d-4f0a-9c11-223344556677";
/// The Wasm key-value service's GUID, for `ipc_rtt_same_runtime_us`.
const KV_GUID: &str = "3c9d2e1f-7a6b-4c5d-8e9f-0a1b2c3d4e5f";
/// The Wasm key-value service and client, under `WASM_ROOT`.
const KV_APP: &str = "kv-app.wasm";
/// Requests timed per `rtt` run (each recorded), and by each baseline.
const RTT_ROUNDS: usize = 1000;
/// Turns the cross-device runs and their baseline take (each
/// `RTT_ROUNDS / RTT_TURNS` round trips).
const RTT_TURNS: usize = 4;
/// Requests of the unrecorded `rtt` runs.
const RTT_WARMUP: usize = 50;
/// Recorded `send` runs per side, and messages per run.
const SEND_RUNS: usize = 6;
const SEND_COUNT: usize = 1_000;
/// Messages of the unrecorded `send` runs.
const SEND_WARMUP: usize = 200;
/// The baseline replier's key, outside the fabric's key space (`weft/`).
const BASELINE_KEY: &str = "bench/ipc/reply";
/// The port of the baseline replier's router (not the call baseline's).
const REPLIER_PORT: u16 = 7449;
/// The request the baselines send and the reply they get: the size of
/// `ipc-check rtt`'s requests (`rtt I`) and of the service's answers.
const REQUEST: &str = "rtt 500";
const REPLY: &str = "echo:rtt 500";
/// How long the service may take to be listed on every device.
const LISTED_LIMIT: Duration = Duration::from_secs(30);
/// How long a client's report may take to arrive once it has exited.
const OUTPUT_LIMIT: Duration = Duration::from_secs(20);
const READY_LIMIT: Duration = Duration::from_secs(20);
const QUERIES_LIMIT: Duration = Duration::from_secs(120);
/// Client runs repeated after the link between the devices was lost, at
/// most, and how long it may take to come back.
const MAX_RELINKS: usize = 5;
const RELINK_LIMIT: Duration = Duration::from_secs(60);

/// The benchmark's devices, in [`Fabric::new`]'s order, and their indices.
const NAMES: [&str; 2] = ["a", "b"];
const A: usize = 0;
const B: usize = 1;

pub fn measure(fabric: &Fabric) -> Result<[Figure; 4], BenchError> {
    let (a, b) = (A, B);
    // Both devices' registries name the service (PROTOCOL.md §18.7): `b`'s
    // so that ipc-check may provide it there, both so that their apps may
    // send to it; and the Wasm key-value service, by its module's hash.
    let kv_app = std::path::Path::new(WASM_ROOT).join(KV_APP);
    let module = std::fs::read(&kv_app).map_err(io(format!("reading {}", kv_app.display())))?;
    let kv_provider = weft_monitor::catalog::identity_of_bytes(&module);
    let registry = format!(
        r#"{{"services":[{{"guid":"{GUID}","name":"ipc-check","provider":"program:ipc-check"}},
            {{"guid":"{KV_GUID}","name":"kv","provider":"{kv_provider}"}}]}}"#
    );
    for device in [a, b] {
        let path = fabric.state(device).join("services.json");
        std::fs::write(&path, &registry).map_err(io(format!("writing {}", path.display())))?;
    }
    let pid = fabric.cli(a, &["spawn", "--device", "b", "ipc-check", "serve", GUID])?;
    let pid = pid.trim().to_string();
    for device in [a, b] {
        poll(
            "the ipc-check service listed",
            LISTED_LIMIT,
            Duration::from_millis(50),
            || listed(fabric, device, &pid),
        )?;
    }
    let mut clients = Clients {
        fabric,
        pid: &pid,
        relinked: 0,
    };
    clients.rtt_us(b, RTT_WARMUP)?;
    clients.rtt_us(a, RTT_WARMUP)?;
    let same = clients.rtt_us(b, RTT_ROUNDS)?;
    let unix = unix_rtt_us(RTT_ROUNDS)?;
    let same_runtime = same_runtime_rtt_us(fabric, b, &kv_app)?;
    // The cross-device runs and their baseline take turns, so that what
    // else the machine does weighs on both alike.
    let replier = start_replier(fabric, a, b)?;
    let (mut cross, mut zenoh) = (Vec::new(), Vec::new());
    let mut turns = Vec::with_capacity(RTT_TURNS);
    for _ in 0..RTT_TURNS {
        let weft = clients.rtt_us(a, RTT_ROUNDS / RTT_TURNS)?;
        let raw = zenoh_rtt_us(fabric, a, &replier, RTT_ROUNDS / RTT_TURNS)?;
        turns.push(format!("{:.2}", median(&weft) / median(&raw)));
        cross.extend(weft);
        zenoh.extend(raw);
    }
    drop(replier);
    // The figure's spread on this machine: each turn's own ratio.
    println!(
        "ipc_rtt_cross_device_us: each turn's ratio to its baseline: {}",
        turns.join(" ")
    );
    clients.send_rate(a, SEND_WARMUP)?;
    clients.send_rate(b, SEND_WARMUP)?;
    let (mut remote, mut local) = (Vec::new(), Vec::new());
    for _ in 0..SEND_RUNS {
        remote.push(clients.send_rate(a, SEND_COUNT)?);
        local.push(clients.send_rate(b, SEND_COUNT)?);
    }
    // Every request and message of the recorded runs reached the service
    // (and those of a run cut short by a lost link, some of them).
    let requests = 2 * (RTT_WARMUP + RTT_ROUNDS);
    let oneway = 2 * (SEND_WARMUP + SEND_RUNS * SEND_COUNT);
    let stats = ipc_call(fabric, b, "stats")?;
    if !counts_match(&stats, requests, oneway, clients.relinked > 0) {
        return Err(BenchError::Output {
            what: format!(
                "the service's counts (expected requests={requests} oneway={oneway} disorder=0)"
            ),
            text: stats,
        });
    }
    if clients.relinked > 0 {
        println!(
            "ipc: the link between a and b was lost {} time(s); each run it cut short was run again",
            clients.relinked
        );
    }
    fabric.cli(b, &["kill", &pid])?;
    Ok([
        Figure {
            name: "ipc_rtt_same_device_us",
            unit: "us",
            samples: same,
            baseline: "Unix datagram socket round trip between two threads",
            baseline_name: "unix_socket_rtt_us",
            baseline_samples: unix.clone(),
            resolution: None,
        },
        Figure {
            name: "ipc_rtt_same_runtime_us",
            unit: "us",
            samples: same_runtime,
            baseline: "Unix datagram socket round trip between two threads",
            baseline_name: "unix_socket_rtt_us",
            baseline_samples: unix,
            resolution: None,
        },
        Figure {
            name: "ipc_rtt_cross_device_us",
            unit: "us",
            samples: cross,
            baseline: "raw Zenoh get/reply a to b, one TLS link, device config",
            baseline_name: "zenoh_get_rtt_ab_us",
            baseline_samples: zenoh,
            resolution: None,
        },
        Figure {
            name: "ipc_msgs_per_s",
            unit: "msg/s",
            samples: remote,
            baseline: "the same one-way sends to an instance on the sender's device",
            baseline_name: "ipc_msgs_same_device_per_s",
            baseline_samples: local,
            resolution: None,
        },
    ])
}

/// `weft ipc ARGS --state DIR` of device `i` (the ipc commands take their
/// options after the subcommand), which must succeed; its standard output.
fn ipc_cli(fabric: &Fabric, i: usize, command: &str, args: &[&str]) -> Result<String, BenchError> {
    run(
        &format!("weft ipc {command} {}", args.join(" ")),
        Command::new(WEFT)
            .args(["ipc", command, "--state"])
            .arg(fabric.state(i))
            .args(args),
    )
}

/// The service's answer to `data`, asked from device `i`'s CLI.
fn ipc_call(fabric: &Fabric, i: usize, data: &str) -> Result<String, BenchError> {
    ipc_cli(fabric, i, "call", &[GUID, data])
}

/// Whether device `i` lists `pid` as an instance of the service.
fn listed(fabric: &Fabric, i: usize, pid: &str) -> Result<bool, BenchError> {
    let out = ipc_cli(fabric, i, "services", &["--json"])?;
    let services: Vec<Value> = serde_json::from_str(&out).map_err(|_| BenchError::Output {
        what: "weft ipc services --json".into(),
        text: out.clone(),
    })?;
    Ok(services
        .iter()
        .any(|s| s["guid"] == GUID && s["pid"] == pid))
}

/// Whether the service's `stats` answer counts `requests` and `oneway`
/// (at least that many if runs were cut short), none out of order.
fn counts_match(stats: &str, requests: usize, oneway: usize, cut_short: bool) -> bool {
    let count = |name: &str| {
        stats.split_whitespace().find_map(|field| {
            let (key, value) = field.split_once('=')?;
            (key == name).then(|| value.parse::<usize>().ok()).flatten()
        })
    };
    match (count("requests"), count("oneway"), count("disorder")) {
        (Some(r), Some(o), Some(0)) if cut_short => r >= requests && o >= oneway,
        (Some(r), Some(o), Some(0)) => r == requests && o == oneway,
        _ => false,
    }
}

/// The `ipc-check` clients of the benchmark, run one at a time.
struct Clients<'f> {
    fabric: &'f Fabric,
    /// The service's instance on `b`.
    pid: &'f str,
    /// Runs repeated because the link between the devices was lost.
    relinked: usize,
}

impl Clients<'_> {
    /// Runs `ipc-check ARGS` on device `on` (from its own CLI, so on
    /// itself) to its exit, which must be 0; the output lines of `on` that
    /// start with one of `prefixes`, up to and including the first that
    /// starts with `last`. A run that fails while the devices do not see
    /// each other is run again once they do and the service is listed
    /// again, up to [`MAX_RELINKS`] times in all.
    fn run(
        &mut self,
        on: usize,
        args: &[&str],
        prefixes: &[&str],
        last: &str,
    ) -> Result<Vec<String>, BenchError> {
        let fabric = self.fabric;
        let daemon = fabric.daemon(on);
        let mut all = vec!["spawn", "--wait", "ipc-check"];
        all.extend_from_slice(args);
        loop {
            daemon.skip_output();
            match fabric.cli(on, &all) {
                Ok(_) => break,
                Err(error) if self.relinked < MAX_RELINKS && !linked(fabric)? => {
                    self.relinked += 1;
                    eprintln!(
                        "ipc: the link between a and b was lost during `ipc-check {}`: {error}",
                        args.join(" ")
                    );
                    poll(
                        "a and b linked again",
                        RELINK_LIMIT,
                        Duration::from_millis(100),
                        || Ok(linked(fabric)? && listed(fabric, A, self.pid)?),
                    )?;
                }
                // The client's complaint is in its device's log (the
                // guest's standard error); a crashed daemon's in its own.
                Err(error) => {
                    return Err(BenchError::Daemon {
                        error: Box::new(error),
                        log: [A, B]
                            .map(|i| format!("({}) {}", NAMES[i], fabric.daemon(i).log()))
                            .join("\n"),
                    });
                }
            }
        }
        let what = format!("ipc-check {}'s report", args.join(" "));
        report_lines(daemon, &what, prefixes, last)
    }

    /// `ipc-check rtt GUID ROUNDS` on device `on`: every request's time, µs.
    fn rtt_us(&mut self, on: usize, rounds: usize) -> Result<Vec<f64>, BenchError> {
        let n = rounds.to_string();
        let lines = self.run(on, &["rtt", GUID, &n], &RTT_REPORT, RTT_MEDIAN)?;
        rtt_samples_us(&lines, "ipc-check rtt's samples", rounds)
    }

    /// `ipc-check send GUID COUNT TAG` on device `on`: the rate it printed.
    fn send_rate(&mut self, on: usize, count: usize) -> Result<f64, BenchError> {
        let n = count.to_string();
        let lines = self.run(
            on,
            &["send", GUID, &n, "s"],
            &["msgs_per_s "],
            "msgs_per_s ",
        )?;
        let line = lines.last().map(String::as_str).unwrap_or_default();
        line.split(' ')
            .nth(1)
            .and_then(|r| r.parse().ok())
            .ok_or_else(|| bad_report("ipc-check send's rate", line))
    }
}

/// `kv-app serve KV_GUID beside /kv-app.wasm rtt KV_GUID N` on device
/// `on`: the client's round trips after the first [`RTT_WARMUP`], in µs
/// (read from the device's output, as `ipc-check`'s are); the service is
/// killed after.
fn same_runtime_rtt_us(fabric: &Fabric, on: usize, kv_app: &Path) -> Result<Vec<f64>, BenchError> {
    let daemon = fabric.daemon(on);
    daemon.skip_output();
    let n = (RTT_WARMUP + RTT_ROUNDS).to_string();
    let module = kv_app.display().to_string();
    let beside = format!("/{KV_APP}");
    let pid = fabric.cli(
        on,
        &[
            "spawn", &module, "serve", KV_GUID, "beside", &beside, "rtt", KV_GUID, &n,
        ],
    )?;
    let lines = report_lines(daemon, "kv-app rtt's report", &RTT_REPORT, RTT_MEDIAN)?;
    fabric.cli(on, &["kill", pid.trim()])?;
    let mut samples = rtt_samples_us(&lines, "kv-app rtt's samples", RTT_WARMUP + RTT_ROUNDS)?;
    Ok(samples.split_off(RTT_WARMUP))
}

/// What an `rtt` client prints (`ipc-check`, `kv-app`): its samples'
/// lines, then its median's, which ends the report.
const RTT_REPORT: [&str; 2] = ["rtt_samples_ns ", RTT_MEDIAN];
const RTT_MEDIAN: &str = "rtt_ns ";

/// The output lines of `daemon` that start with one of `prefixes`, up to
/// and including the first that starts with `last`.
fn report_lines(
    daemon: &Daemon,
    what: &str,
    prefixes: &[&str],
    last: &str,
) -> Result<Vec<String>, BenchError> {
    let mut lines = Vec::new();
    loop {
        let (_, line) = daemon.next_line(what, OUTPUT_LIMIT, |l| {
            prefixes.iter().any(|p| l.starts_with(p))
        })?;
        let done = line.starts_with(last);
        lines.push(line);
        if done {
            return Ok(lines);
        }
    }
}

/// The round trips of an `rtt` report ([`report_lines`] of [`RTT_REPORT`]),
/// in µs, which must be `expected` of them.
fn rtt_samples_us(lines: &[String], what: &str, expected: usize) -> Result<Vec<f64>, BenchError> {
    let mut samples = Vec::with_capacity(expected);
    for line in lines.iter().filter(|l| !l.starts_with(RTT_MEDIAN)) {
        for word in line.split(' ').skip(1) {
            let ns: f64 = word.parse().map_err(|_| bad_report(what, line))?;
            samples.push(ns / 1e3);
        }
    }
    if samples.len() != expected {
        return Err(bad_report(what, &lines.join("\n")));
    }
    Ok(samples)
}

/// Whether `a` and `b` each see the other available.
fn linked(fabric: &Fabric) -> Result<bool, BenchError> {
    Ok(fabric.available(A)?.iter().any(|n| n == NAMES[B])
        && fabric.available(B)?.iter().any(|n| n == NAMES[A]))
}

fn bad_report(what: &str, text: &str) -> BenchError {
    BenchError::Output {
        what: what.to_string(),
        text: text.to_string(),
    }
}

/// Round trips of [`REQUEST`] answered with [`REPLY`] over a Unix
/// datagram socket pair, an echoing thread at the other end: µs each,
/// after as many unrecorded.
fn unix_rtt_us(rounds: usize) -> Result<Vec<f64>, BenchError> {
    let (here, there) = UnixDatagram::pair().map_err(io("a Unix socket pair"))?;
    let echo = std::thread::spawn(move || -> std::io::Result<()> {
        let mut buf = [0u8; 64];
        loop {
            let n = there.recv(&mut buf)?;
            if n == 0 {
                return Ok(());
            }
            let mut reply = b"echo:".to_vec();
            reply.extend_from_slice(&buf[..n]);
            there.send(&reply)?;
        }
    });
    let mut samples = Vec::with_capacity(rounds);
    let mut buf = [0u8; 64];
    for round in 0..2 * rounds {
        let start = Instant::now();
        here.send(REQUEST.as_bytes())
            .and_then(|_| here.recv(&mut buf))
            .map_err(io("a Unix socket round trip"))
            .and_then(|n| {
                if &buf[..n] == REPLY.as_bytes() {
                    Ok(())
                } else {
                    let text = String::from_utf8_lossy(&buf[..n]);
                    Err(bad_report("the Unix socket echo", &text))
                }
            })?;
        if round >= rounds {
            samples.push(start.elapsed().as_secs_f64() * 1e6);
        }
    }
    // An empty datagram ends the echoing thread.
    here.send(&[]).map_err(io("ending the Unix socket echo"))?;
    match echo.join() {
        Ok(result) => result.map_err(io("the Unix socket echo"))?,
        Err(_) => return Err(bad_report("the Unix socket echo", "panicked")),
    }
    Ok(samples)
}

/// Raw Zenoh get/reply rounds from device `a`'s namespace to a replier
/// router in `b`'s, the querier connected to the replier only: µs each.
fn start_replier(fabric: &Fabric, a: usize, b: usize) -> Result<Replier, BenchError> {
    let program = this_program()?;
    let addr = SocketAddr::new(fabric.zenoh_addr(b).ip(), REPLIER_PORT);
    let helper = Helper::start(
        fabric.command_in(b, &program),
        REPLIER,
        &[
            state(&fabric.state(b)),
            addr.to_string(),
            fabric.zenoh_addr(a).to_string(),
            BASELINE_KEY.into(),
            REPLY.into(),
        ],
    )?;
    helper
        .output()
        .next("the IPC baseline's replier is ready", READY_LIMIT, |l| {
            l == "ready"
        })?;
    Ok(Replier {
        _helper: helper,
        addr,
    })
}

/// The baseline's replier, running until dropped.
struct Replier {
    _helper: Helper,
    addr: SocketAddr,
}

/// `rounds` raw Zenoh round trips from `a` to `replier` (a querier
/// process of their own, after its own warm-up), in microseconds.
fn zenoh_rtt_us(
    fabric: &Fabric,
    a: usize,
    replier: &Replier,
    rounds: usize,
) -> Result<Vec<f64>, BenchError> {
    let querier = Helper::start(
        fabric.command_in(a, &this_program()?),
        QUERIER,
        &[
            state(&fabric.state(a)),
            replier.addr.to_string(),
            rounds.to_string(),
            BASELINE_KEY.into(),
            REQUEST.into(),
        ],
    )?;
    let (_, line) = querier
        .output()
        .next("the IPC baseline's samples", QUERIES_LIMIT, |_| true)?;
    let bad = || bad_report("the IPC baseline querier's report", &line);
    let report: Value = serde_json::from_str(&line).map_err(|_| bad())?;
    if report["replies"][0] != REPLY {
        return Err(bad());
    }
    let samples: Vec<f64> = report["samples_us"][0]
        .as_array()
        .ok_or_else(bad)?
        .iter()
        .filter_map(Value::as_f64)
        .collect();
    if samples.len() != rounds {
        return Err(bad());
    }
    Ok(samples)
}

fn state(dir: &Path) -> String {
    dir.display().to_string()
}
