//! `make bench`: the fabric's costs, each beside a baseline measured in
//! the same run, on two devices `a` and `b` — real `weft daemon`s (a KVM
//! device guest and a Zenoh router with mutual TLS each) in network
//! namespaces of their own on one bridge, paired with `weft fabric
//! create|invite|join`.
//!
//! - `fabric_call_rtt_us` ([`call`]): a `stats` fabric call from `a`'s
//!   namespace to `b`, answered by `b`'s guest; baseline a raw Zenoh
//!   get/reply over the same hops and configuration. Target: ≤ 1.5×.
//!   Beside it, `fabric_daemon_call_rtt_us`: a call `b`'s daemon answers
//!   without its guest.
//! - `fabric_remote_spawn_ms` ([`remote_spawn`]): `weft spawn --device b
//!   hello.wasm` from `a` to hello's first line on `b`; baseline the same
//!   spawn on `a` itself.
//! - `ipc_rtt_same_device_us`, `ipc_rtt_same_runtime_us`,
//!   `ipc_rtt_cross_device_us`, `ipc_msgs_per_s` ([`ipc`]): an app's
//!   requests to a service by GUID on its own device (from another
//!   process, and from beside it in its Wasm runtime) and on another, and
//!   one-way messages to another; baselines a Unix socket round trip, a
//!   raw Zenoh get/reply between the namespaces, and the same messages to
//!   the sender's own device. Target: cross-device round trip ≤ 1.5× the
//!   raw get/reply. Every daemon's `--fs-root` is the built Wasm apps,
//!   read-only, so that an app can start another beside it by path.
//! - `udp_fabric_rtt_us` ([`udp_rtt`]): a UDP round trip from a host
//!   client in `a`'s namespace to an echo app on `b` bound on `a`'s fabric
//!   address; baseline the same echo app on `a`.
//! - `fabric_device_down_ms` ([`device_down`]): `kill -9` of `b`'s daemon
//!   to `a` listing `b` unavailable; baseline the same kill seen on a raw
//!   TCP connection to `b`'s Zenoh port.
//! - `move_downtime_1mib_ms`, `move_downtime_64mib_ms` ([`moves`]): `weft
//!   move` of a Wasm event app holding 1 MiB / 64 MiB and ticking every
//!   millisecond, a→b and back, from its last tick at the source to its
//!   first at the destination (each as its line arrives on the daemon's
//!   output); baseline one raw Zenoh put of as many bytes from `a`'s
//!   namespace to a subscriber in `b`'s, the device configuration. Target:
//!   ≤ 2× baseline + 5 ms. The daemons are started again for it with
//!   `--mem 512` and without the UDP grants, and the app's ticks on both
//!   devices must come out whole.
//!
//! Figures are medians; every sample goes to `target/bench/raw/`. Code
//! that must run inside a namespace runs in this benchmark started again
//! there with a role ([`roles`]). Namespaces, daemons and state
//! directories are removed on every way out, a failure included.

// The crate root is this file, so its modules' paths are written out.
#[path = "fabric/call.rs"]
mod call;
#[path = "fabric/device_down.rs"]
mod device_down;
#[path = "fabric/devices.rs"]
mod devices;
#[path = "fabric/error.rs"]
mod error;
#[path = "fabric/ipc.rs"]
mod ipc;
#[path = "fabric/lines.rs"]
mod lines;
#[path = "fabric/moves.rs"]
mod moves;
#[path = "../tests/fabric/netns.rs"]
#[allow(dead_code, reason = "shared with the tests, which also cut links")]
mod netns;
#[path = "fabric/remote_spawn.rs"]
mod remote_spawn;
#[path = "fabric/roles.rs"]
mod roles;
#[path = "fabric/udp_rtt.rs"]
mod udp_rtt;

use devices::Fabric;
use error::BenchError;
use std::process::ExitCode;
use weft_benchkit::{Record, median, record};

/// One figure, its baseline, and the raw samples of both.
pub struct Figure {
    name: &'static str,
    unit: &'static str,
    samples: Vec<f64>,
    /// What the baseline is.
    baseline: &'static str,
    /// The name the baseline's raw samples are kept under.
    baseline_name: &'static str,
    baseline_samples: Vec<f64>,
    /// A series that bounds how finely the figure could be measured
    /// (name, samples): kept raw, its median printed beside the figure.
    resolution: Option<(&'static str, Vec<f64>)>,
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = roles::run(&args).unwrap_or_else(|| {
        // `cargo bench` adds `--bench`; a word before it picks the parts.
        let only = args
            .iter()
            .find(|a| !a.starts_with("--"))
            .map(String::as_str);
        bench(only)
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fabric bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Measures every figure, or with `only` those of the parts whose name
/// contains it (`call`, `remote_spawn`, `ipc`, `udp_rtt`, `device_down`,
/// `moves`: `cargo bench --bench fabric -- ipc`).
fn bench(only: Option<&str>) -> Result<(), BenchError> {
    let wanted = |part: &str| only.is_none_or(|o| part.contains(o));
    let mut fabric = Fabric::new(&["a", "b"])?;
    let mut figures = Vec::new();
    if wanted("call") {
        figures.extend(call::measure(&fabric)?);
    }
    if wanted("remote_spawn") {
        figures.push(remote_spawn::measure(&fabric)?);
    }
    if wanted("ipc") {
        figures.extend(ipc::measure(&fabric)?);
    }
    if wanted("udp_rtt") {
        figures.push(udp_rtt::measure(&fabric)?);
    }
    if wanted("device_down") {
        figures.push(device_down::measure(&mut fabric)?);
    }
    // Last: it starts the daemons again (more guest memory, no UDP grants).
    if wanted("moves") {
        figures.extend(moves::measure(&mut fabric)?);
    }
    drop(fabric);
    let records: Vec<Record> = figures
        .iter()
        .map(|f| {
            Record::new(
                f.name,
                median(&f.samples),
                f.unit,
                f.baseline,
                median(&f.baseline_samples),
            )
        })
        .collect();
    let raw: Vec<(&str, &[f64])> = figures
        .iter()
        .flat_map(|f| {
            let resolution = f.resolution.as_ref().map(|(n, s)| (*n, s.as_slice()));
            [
                Some((f.name, f.samples.as_slice())),
                Some((f.baseline_name, f.baseline_samples.as_slice())),
                resolution,
            ]
        })
        .flatten()
        .collect();
    record(&records, &raw).map_err(BenchError::Record)?;
    for (r, f) in records.iter().zip(&figures) {
        println!(
            "{:<24} {:>9.1} {:<2} baseline {:>9.1} {:<2} ratio {:.2}  ({} samples)",
            r.name,
            r.value,
            r.unit,
            r.baseline_value,
            r.unit,
            r.ratio,
            f.samples.len()
        );
        if let Some((name, samples)) = &f.resolution {
            println!(
                "{:<24} {:>9.1} {:<2} (resolution)",
                name,
                median(samples),
                f.unit
            );
        }
    }
    moves::targets(&figures);
    Ok(())
}
