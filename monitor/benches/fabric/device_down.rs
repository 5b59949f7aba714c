//! `fabric_device_down_ms`: from `kill -9` of `b`'s daemon to `b` missing
//! from `weft fabric devices --state A --available --json`, polled every
//! [`POLL`]; each poll is a CLI run, which takes milliseconds itself, so
//! the figure counts up to one whole run past the moment `a` knew (the
//! runs' durations are kept as `weft_cli_poll_ms`). `b` is started again,
//! and seen by `a`, before the next sample.
//!
//! Baseline, from the same kill: a raw Zenoh session in `a`'s namespace
//! (`a`'s identity, the device configuration, so the same QUIC link and
//! lease) connected to `b`'s router, seeing `b`'s presence token go. A
//! killed daemon resets no connection over UDP: both learn of it when the
//! link's lease ends (`zconfig::LEASE_MS`). The fabric's figure adds what it
//! takes `a`'s daemon to drop `b`'s presence, and the CLI to ask.

use crate::Figure;
use crate::devices::{Fabric, poll};
use crate::error::BenchError;
use crate::roles::{Helper, WATCHER, this_program};
use std::time::{Duration, Instant};

const SAMPLES: usize = 6;
const POLL: Duration = Duration::from_millis(10);
const NOTICE_LIMIT: Duration = Duration::from_secs(10);

pub fn measure(fabric: &mut Fabric) -> Result<Figure, BenchError> {
    let (a, b) = (0, 1);
    let program = this_program()?;
    let (mut fabric_ms, mut raw_ms, mut poll_ms) = (Vec::new(), Vec::new(), Vec::new());
    for sample in 0..SAMPLES {
        let watcher = Helper::start(
            fabric.command_in(a, &program),
            WATCHER,
            &[
                fabric.state(a).display().to_string(),
                fabric.zenoh_addr(b).to_string(),
                fabric.name(b).to_string(),
            ],
        )?;
        watcher
            .output()
            .next("the watcher's connection", NOTICE_LIMIT, |l| {
                l == "connected"
            })?;
        let start = Instant::now();
        fabric.kill9(b);
        poll("b unavailable at a", NOTICE_LIMIT, POLL, || {
            let asked = Instant::now();
            let available = fabric.available(a)?;
            poll_ms.push(asked.elapsed().as_secs_f64() * 1e3);
            Ok(!available.iter().any(|n| n == "b"))
        })?;
        fabric_ms.push(start.elapsed().as_secs_f64() * 1e3);
        let (closed, _) =
            watcher
                .output()
                .next("the watcher's connection closed", NOTICE_LIMIT, |l| {
                    l == "closed"
                })?;
        raw_ms.push(closed.saturating_duration_since(start).as_secs_f64() * 1e3);
        if sample + 1 < SAMPLES {
            fabric.restart(b)?;
        }
    }
    Ok(Figure {
        name: "fabric_device_down_ms",
        unit: "ms",
        samples: fabric_ms,
        baseline: "the same kill seen by a raw Zenoh session following its presence",
        baseline_name: "zenoh_presence_gone_ms",
        baseline_samples: raw_ms,
        resolution: Some(("weft_cli_poll_ms", poll_ms)),
    })
}
