//! `udp_fabric_rtt_us`: the round trip of a 64-byte datagram from a host
//! client in `a`'s namespace to `udp-echo` running on `b`, bound on `a`'s
//! fabric address (`a` holds the socket; the datagram goes to `b` and back
//! over the fabric, PROTOCOL.md §16.7).
//!
//! Baseline, in turn with it: the same client against `udp-echo` running
//! on `a` itself, bound on the same address (an ordinary local socket).

use crate::Figure;
use crate::devices::{Fabric, poll};
use crate::error::BenchError;
use crate::roles::{Helper, PINGER, this_program};
use serde_json::Value;
use std::time::Duration;

const SAMPLES: usize = 500;
/// How long the echoes may take to bind, and the pinger to finish.
const LIMIT: Duration = Duration::from_secs(60);

pub fn measure(fabric: &Fabric) -> Result<Figure, BenchError> {
    let (a, b) = (0, 1);
    let ip = fabric.ip(a).to_string();
    let [remote_port, local_port] = Fabric::UDP_PORTS;
    let remote = fabric.cli(b, &["spawn", "udp-echo", &remote_port.to_string(), &ip])?;
    let local = fabric.cli(a, &["spawn", "udp-echo", &local_port.to_string(), &ip])?;
    for (i, port) in [(b, remote_port), (a, local_port)] {
        let bound = format!("udp-echo: bound to {ip}:{port}");
        poll(&bound, LIMIT, Duration::from_millis(20), || {
            Ok(fabric.daemon(i).log().contains(&bound))
        })?;
    }
    let args = vec![
        SAMPLES.to_string(),
        format!("{ip}:{remote_port}"),
        format!("{ip}:{local_port}"),
    ];
    let pinger = Helper::start(fabric.command_in(a, &this_program()?), PINGER, &args)?;
    let (_, line) = pinger
        .output()
        .next("the pinger's samples", LIMIT, |_| true)?;
    let parsed: Value = serde_json::from_str(&line).map_err(|_| BenchError::Output {
        what: "the pinger".into(),
        text: line.clone(),
    })?;
    let series = |i: usize| -> Vec<f64> {
        parsed["samples_us"][i]
            .as_array()
            .map(|v| v.iter().filter_map(Value::as_f64).collect())
            .unwrap_or_default()
    };
    let _ = fabric.cli(b, &["kill", remote.trim()]);
    let _ = fabric.cli(a, &["kill", local.trim()]);
    Ok(Figure {
        name: "udp_fabric_rtt_us",
        unit: "us",
        samples: series(0),
        baseline: "the same client against udp-echo on the owning device",
        baseline_name: "udp_local_echo_rtt_us",
        baseline_samples: series(1),
        resolution: None,
    })
}
