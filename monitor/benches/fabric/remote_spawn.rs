//! `fabric_remote_spawn_ms`: from `weft spawn --state A --device b
//! hello.wasm TAG` to hello's first line ("Hello from Wasm!") arriving on
//! `b`'s daemon's standard output (the guest's output; each line is
//! stamped as it arrives). The CLI asks `a`'s daemon, which offers the
//! module by its hash and calls `b`, which fetches it (once; later spawns
//! find it cached), instantiates and runs it.
//!
//! Baseline, in turn with it: the same for a local spawn on `a`
//! (`--device a`) to `a`'s output.
//!
//! The first round of each is a warm-up, not recorded (`b`'s first fetch
//! of the module and both guests' first compile of it).

use crate::Figure;
use crate::devices::Fabric;
use crate::error::BenchError;
use std::time::{Duration, Instant};

const HELLO: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../target/wasm/wasm32-wasip1/release/hello.wasm"
);
/// hello's first line.
const GREETING: &str = "Hello from Wasm!";
const SAMPLES: usize = 25;
const WARMUP: usize = 1;
/// How long a spawned hello may take to be heard from.
const OUTPUT_LIMIT: Duration = Duration::from_secs(20);

pub fn measure(fabric: &Fabric) -> Result<Figure, BenchError> {
    let (a, b) = (0, 1);
    let (mut remote, mut local) = (Vec::new(), Vec::new());
    for round in 0..WARMUP + SAMPLES {
        let tag = format!("round-{round}");
        let to_b = spawn_ms(fabric, a, b, "b", &tag)?;
        let to_a = spawn_ms(fabric, a, a, "a", &tag)?;
        if round >= WARMUP {
            remote.push(to_b);
            local.push(to_a);
        }
    }
    Ok(Figure {
        name: "fabric_remote_spawn_ms",
        unit: "ms",
        samples: remote,
        baseline: "local spawn of hello.wasm to its first output line",
        baseline_name: "local_spawn_ms",
        baseline_samples: local,
        resolution: None,
    })
}

/// Milliseconds from device `from`'s CLI spawning hello on `device` (the
/// fabric's device `on`) to hello's first line in `on`'s output.
fn spawn_ms(
    fabric: &Fabric,
    from: usize,
    on: usize,
    device: &str,
    tag: &str,
) -> Result<f64, BenchError> {
    let daemon = fabric.daemon(on);
    daemon.skip_output();
    let start = Instant::now();
    fabric.cli(from, &["spawn", "--device", device, HELLO, tag])?;
    let (greeted, _) = daemon.next_line("hello's first line", OUTPUT_LIMIT, |l| {
        l.ends_with(GREETING)
    })?;
    // Its argument, so that the greeting was this spawn's.
    let argument = format!("arg: {tag}");
    daemon.next_line(&argument, OUTPUT_LIMIT, |l| l.ends_with(&argument))?;
    Ok(greeted.saturating_duration_since(start).as_secs_f64() * 1e3)
}
