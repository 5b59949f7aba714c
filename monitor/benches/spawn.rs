//! `make bench`: how long a running guest takes to start a small Wasm app,
//! beside a native process spawn measured in the same run.
//!
//! - `wasm_spawn_us`: in one guest, `spawn-bench.wasm` spawns itself [`SPAWNS`]
//!   times, one after another; each child prints the time from just before
//!   the parent's `spawn` call to its own `main` (both read the guest's
//!   clock): reading the module through a file stream, finding it compiled
//!   (the runtime keeps compiled modules), instantiating it, scheduling it
//!   and running its entry point up to `main`. Target: ≤ 1 ms. Median of
//!   every child's figure but each run's first.
//! - `wasm_spawn_first_us`: each run's first spawn, which also pays for
//!   memory the guest had not touched yet (host page faults) — the module is
//!   already compiled, as the running parent is the same module.
//! - `process_spawn_us`: in one guest, `proc-bench` spawns its own ELF as a
//!   kernel process [`SPAWNS`] times; each child prints the time from just
//!   before the `spawn` syscall to its `main`: the monitor building the
//!   address space, the kernel scheduling it, its runtime starting. Median
//!   of every child's figure but each run's first.
//! - Baseline for these, `native_spawn_us`: `posix_spawn` of the host build
//!   of `hello` until its first byte of output arrives.
//! - `spawn_churn_per_s`: in one guest, `churn` spawns the bundled `hello`
//!   [`CHURN_SPAWNS`] times, up to [`CHURN_CONCURRENCY`] at a time, and
//!   reaps each: spawns and reaps per second of guest time, median of the
//!   runs. The process pool is laundered as it runs out (at the default
//!   `--mem`, rarely). Baseline: the same on the host, `posix_spawn` and
//!   `wait` of the host build of `hello` (output discarded).

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Instant;
use weft_benchkit::{Record, median, record};

const WEFT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/release/weft");
const WASM_DIR: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../target/wasm/wasm32-wasip1/release"
);
const NATIVE_HELLO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/wasm/release/hello");
const GUEST_DIR: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../target/x86_64-unknown-none/release"
);
const RUNS: usize = 9;
/// Spawns per guest run.
const SPAWNS: &str = "30";

/// Programs `churn` spawns per guest run, and how many at a time.
const CHURN_SPAWNS: usize = 1000;
const CHURN_CONCURRENCY: usize = 4;

/// The `spawn_us=` figures one `weft run --fs-root DIR PROGRAM ARGS` prints.
fn spawn_samples(dir: &str, program: &str, args: &[&str]) -> Vec<f64> {
    let out = Command::new(WEFT)
        .args(["run", "--fs-root", dir])
        .arg(format!("{dir}/{program}"))
        .args(args)
        .output()
        .expect("spawn weft");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{program} failed:\n{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let samples: Vec<f64> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("spawn_us="))
        .filter_map(|v| v.parse().ok())
        .collect();
    assert_eq!(samples.len().to_string(), SPAWNS, "{stdout}");
    samples
}

fn main() {
    let (mut first, mut warm, mut native) = (Vec::new(), Vec::new(), Vec::new());
    let (mut process, mut churn, mut native_churn) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..RUNS {
        let samples = spawn_samples(WASM_DIR, "spawn-bench.wasm", &["spawn-bench.wasm", SPAWNS]);
        first.push(samples[0]);
        warm.extend_from_slice(&samples[1..]);
        let samples = spawn_samples(GUEST_DIR, "proc-bench", &["/proc-bench", SPAWNS]);
        process.extend_from_slice(&samples[1..]);
        native.push(native_spawn_us());
        churn.push(churn_per_s());
        native_churn.push(native_churn_per_s());
    }
    let baseline = "posix_spawn of a native hello to its first output byte";
    let records = [
        Record::new(
            "wasm_spawn_us",
            median(&warm),
            "us",
            baseline,
            median(&native),
        ),
        Record::new(
            "wasm_spawn_first_us",
            median(&first),
            "us",
            baseline,
            median(&native),
        ),
        Record::new(
            "process_spawn_us",
            median(&process),
            "us",
            baseline,
            median(&native),
        ),
        Record::new(
            "spawn_churn_per_s",
            median(&churn),
            "1/s",
            "posix_spawn and wait of a native hello, 4 at a time",
            median(&native_churn),
        ),
    ];
    record(
        &records,
        &[
            ("wasm_spawn_us", &warm),
            ("wasm_spawn_first_us", &first),
            ("process_spawn_us", &process),
            ("native_spawn_us", &native),
            ("spawn_churn_per_s", &churn),
            ("native_churn_per_s", &native_churn),
        ],
    )
    .expect("write results");
    for r in &records {
        println!(
            "{:<22} {:>9.1} {:<3} baseline {:>9.1} {:<3} ratio {:.2}",
            r.name, r.value, r.unit, r.baseline_value, r.unit, r.ratio
        );
    }
}

/// Microseconds from spawning the native `hello` to its first output byte.
fn native_spawn_us() -> f64 {
    let t = Instant::now();
    let mut child = Command::new(NATIVE_HELLO)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn native hello");
    let mut byte = [0u8; 1];
    child
        .stdout
        .as_mut()
        .expect("stdout")
        .read_exact(&mut byte)
        .expect("first byte");
    let us = t.elapsed().as_secs_f64() * 1e6;
    let _ = child.wait();
    us
}

/// Spawns and reaps per second in one guest running `churn`.
fn churn_per_s() -> f64 {
    let (n, at_once) = (CHURN_SPAWNS.to_string(), CHURN_CONCURRENCY.to_string());
    let out = Command::new(WEFT)
        .arg("run")
        .arg(format!("{GUEST_DIR}/churn"))
        .args([n.as_str(), at_once.as_str(), "hello"])
        .output()
        .expect("spawn weft");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "churn failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let done = format!("churn: {n} spawned, {n} exited with status 0 in ");
    let us: f64 = stdout
        .lines()
        .find_map(|l| l.strip_prefix(done.as_str())?.strip_suffix(" us"))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no `{done}` line in:\n{stdout}"));
    CHURN_SPAWNS as f64 / (us / 1e6)
}

/// Spawns and reaps per second of the native `hello` on the host, as
/// `churn` does: up to [`CHURN_CONCURRENCY`] alive, the oldest reaped first.
fn native_churn_per_s() -> f64 {
    let t = Instant::now();
    let mut live = std::collections::VecDeque::with_capacity(CHURN_CONCURRENCY);
    for _ in 0..CHURN_SPAWNS {
        if live.len() == CHURN_CONCURRENCY {
            reap(live.pop_front());
        }
        let child = Command::new(NATIVE_HELLO)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn native hello");
        live.push_back(child);
    }
    while let Some(child) = live.pop_front() {
        reap(Some(child));
    }
    CHURN_SPAWNS as f64 / t.elapsed().as_secs_f64()
}

fn reap(child: Option<std::process::Child>) {
    if let Some(mut child) = child {
        let status = child.wait().expect("wait for native hello");
        assert!(status.success(), "native hello: {status}");
    }
}
