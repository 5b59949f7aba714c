//! Three daemons under churn, as a fabric runs for months: round after
//! round, an app on `a` makes requests to a service on `b` across the
//! fabric, an app on `b` sends it one-way messages on its own device, `c`'s
//! CLI calls it, a call to a GUID nobody provides gets its error answer, an
//! app on `c` provides a second service, is called from `a` and is killed,
//! a Wasm command runs on `c` and a native process is spawned on `b` from
//! `a` and killed; every answer and exit status is checked. Each daemon's
//! resident memory and open descriptors are sampled after every round and
//! must stay flat (`common::resources::Flatness`: past the first 20% of
//! the run, the last 20% within 10% + 4 MiB of RSS and a few descriptors
//! of the 20%–50% window, and the descriptors back to those held at rest
//! once the churn stops).
//!
//! `make test` runs the short variant ([`daemons_stay_flat_under_churn`],
//! [`SHORT`]); `make daemon-soak` the long one
//! ([`daemons_stay_flat_under_churn_for_long`], `WEFT_CHURN_SECS` seconds,
//! default 600).

use super::common::resources::{Flatness, Sample};
use super::common::wasm;
use super::ipc::{
    CHECK, HOLDER, NOBODY, Three, finished, listed_everywhere, spawn, three, waiting,
};
use super::{eventually, ipc_call, json, ok, serial};
use serde_json::Value;
use std::time::{Duration, Instant};

/// The short variant's churn.
const SHORT: Duration = Duration::from_secs(40);
/// How long a daemon may take to close what the last round opened.
const SETTLE: Duration = Duration::from_secs(10);
/// Descriptors a round may hold open in a daemon when it is sampled (a
/// CLI connection, a spawn's image, a withdrawn service's last reply).
const IN_FLUX: usize = 8;
/// Requests an app makes and one-way messages one sends, per round.
const REQUESTS: usize = 20;
const ONE_WAY: usize = 100;

#[test]
fn daemons_stay_flat_under_churn() {
    churn(SHORT);
}

#[test]
#[ignore = "ten minutes: make daemon-soak"]
fn daemons_stay_flat_under_churn_for_long() {
    let secs = std::env::var("WEFT_CHURN_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(600);
    churn(Duration::from_secs(secs));
}

fn churn(run: Duration) {
    let _serial = serial();
    let t = three("churn");
    let service = spawn(&t.dirs[0], "b", &["ipc-check", "serve", CHECK]);
    listed_everywhere(&t, CHECK, &service);
    let pids: Vec<u32> = t.daemons.iter().map(|d| d.child.id()).collect();
    // One round first, unsampled: what the first use of each path sets up
    // once (routes, the compiled module's cache) is not churn.
    round(&t, 0);
    let start = Instant::now();
    let idle: Vec<Sample> = pids
        .iter()
        .map(|&p| Sample::at_rest(p, start, SETTLE))
        .collect();
    let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); pids.len()];
    let mut rounds = 0;
    while start.elapsed() < run {
        rounds += 1;
        round(&t, rounds);
        let now: Vec<Sample> = pids.iter().map(|&p| Sample::take(p, start)).collect();
        let shown: Vec<String> = now
            .iter()
            .map(|s| format!("{} KiB/{} fds", s.rss_kib, s.fds))
            .collect();
        println!(
            "churn: t={:>4}s round {rounds}: a {}, b {}, c {}",
            start.elapsed().as_secs(),
            shown[0],
            shown[1],
            shown[2]
        );
        for (all, s) in samples.iter_mut().zip(now) {
            all.push(s);
        }
    }
    println!("churn: {rounds} rounds in {:?}", start.elapsed());
    for (i, name) in ["a", "b", "c"].iter().enumerate() {
        samples[i].push(Sample::settled(pids[i], start, &idle[i], SETTLE));
        let flat = Flatness::of(&samples[i], start.elapsed(), idle[i], IN_FLUX);
        println!("churn: daemon {name}: {flat}");
        flat.assert(&format!("daemon {name}"));
    }
    // The service served every round's messages, in order.
    let (code, out, err) = ipc_call(&t.dirs[0], &[CHECK, "stats"]);
    assert_eq!(code, 0, "{err}");
    // Each round (the unsampled one too): the app's requests and the
    // CLI's one, the one-way messages.
    let requests = (REQUESTS + 1) * (rounds + 1);
    let oneway = ONE_WAY * (rounds + 1);
    assert_eq!(
        out,
        format!("requests={requests} oneway={oneway} disorder=0"),
        "the service's counts after {rounds} rounds and the first"
    );
}

/// One round of churn, `n` naming its messages; every answer checked.
fn round(t: &Three, n: usize) {
    let [a, b, c] = &t.dirs;
    let tag = format!("r{n}");
    let (code, _, err) = finished(waiting(
        t,
        0,
        "a",
        &["ipc-check", "call", CHECK, &REQUESTS.to_string(), &tag],
    ));
    assert_eq!(code, 0, "requests from a, round {n}: {err}");
    let tag = format!("s{n}");
    let (code, _, err) = finished(waiting(
        t,
        1,
        "b",
        &["ipc-check", "send", CHECK, &ONE_WAY.to_string(), &tag],
    ));
    assert_eq!(code, 0, "one-way messages on b, round {n}: {err}");
    let data = format!("cli{n} 0");
    let (code, out, err) = ipc_call(c, &[CHECK, &data]);
    assert_eq!((code, out), (0, format!("echo:{data}")), "{err}");
    let (code, _, err) = ipc_call(a, &[NOBODY, "x"]);
    assert_eq!(code, 1);
    assert!(err.contains("no provider"), "{err}");

    let holder = spawn(a, "c", &["ipc-check", "serve", HOLDER]);
    listed_everywhere(t, HOLDER, &holder);
    let (code, out, err) = ipc_call(a, &[HOLDER, "h 0"]);
    assert_eq!((code, out.as_str()), (0, "echo:h 0"), "{err}");
    ok(b, &["kill", &holder]);
    for d in &t.dirs {
        eventually("the holder is withdrawn", Duration::from_secs(20), || {
            !json(d, &["ipc", "services", "--json"])
                .iter()
                .any(|s: &Value| s["guid"] == HOLDER)
        });
    }

    let hello = wasm("hello");
    let (code, _, err) = finished(waiting(t, 0, "c", &[&hello, "churn", "exit=3"]));
    assert_eq!(code, 3, "hello on c, round {n}: {err}");
    let sleeper = spawn(a, "b", &["sleep", "600000"]);
    ok(a, &["kill", &sleeper]);
}
