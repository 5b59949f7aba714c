//! IPC by GUID from Wasm apps (PROTOCOL.md §13.7, §18), on two daemons on
//! loopback: the Wasm key-value service (`kv-app`, an event app) answers
//! the CLI while another app of its runtime is blocked in a receive, the
//! blocked app wakes for its own message, and the Wasm client talks to the
//! native `kv` and cancels a request.

use super::common::{self, wasm};
use super::{
    Daemon, Scratch, cli, device_names, eventually, ipc_call, json, module_identity, ok, pair,
    serial,
};
use std::path::Path;
use std::time::Duration;

const KV: &str = "2d7e4c1a-9b8f-4a6e-8d5c-3b2a1f0e9d8c";
const NATIVE: &str = "5a4b3c2d-1e0f-4a9b-8c7d-6e5f4a3b2c1d";
const IDLE: &str = "7c6b5a49-3827-4615-9a0b-1c2d3e4f5a6b";
const HOLD: &str = "4e3d2c1b-0a9f-4e8d-9c7b-6a5f4e3d2c1b";
/// Served with its client beside it, in one runtime.
const PAIRED: &str = "1b2c3d4e-5f60-4718-8293-a4b5c6d7e8f9";
/// Started on its first message, from a module file in b's state
/// directory.
const STARTED: &str = "6f5e4d3c-2b1a-4098-8f7e-6d5c4b3a2910";

/// Waits until `dir`'s daemon lists an instance of `guid`.
fn listed(dir: &Path, guid: &str) {
    eventually("the service is listed", Duration::from_secs(20), || {
        json(dir, &["ipc", "services", "--json"])
            .iter()
            .any(|s| s["guid"] == guid)
    });
}

#[test]
fn wasm_apps_provide_and_use_services_by_guid() {
    let _serial = serial();
    let scratch = Scratch::new("ipcwasm");
    let (a, b) = (scratch.state("a"), scratch.state("b"));
    // b's guest sees this directory as `/`: the runtime spawns from it.
    let root = scratch.state("b-root");
    std::fs::create_dir_all(&root).unwrap();
    let kv_app = wasm("kv-app");
    std::fs::copy(&kv_app, root.join("kv-app.wasm")).unwrap();

    let addr_a = format!("127.0.0.1:{}", common::free_port());
    ok(&a, &["fabric", "create", "--name", "a"]);
    let da = Daemon::start(common::weft(), &a, &addr_a, &[]);
    pair(&a, &b, "b", common::weft());
    // The registries (PROTOCOL.md §18.7): on b, the Wasm module (by its
    // hash) provides KV and IDLE, the native kv provides NATIVE and
    // ipc-check HOLD; a names NATIVE and HOLD, so that its apps may send
    // to them.
    let named = |guid: &str, provider: &str| {
        format!(r#"{{"guid":"{guid}","name":"kv","provider":"{provider}"}}"#)
    };
    let wasm_provider = module_identity(&kv_app);
    // The daemon reads a module only beneath its state directory.
    std::fs::create_dir_all(b.join("modules")).unwrap();
    std::fs::copy(&kv_app, b.join("modules/kv.wasm")).unwrap();
    let started = format!(
        r#"{{"guid":"{STARTED}","name":"kv","provider":"{wasm_provider}","args":["serve","{STARTED}"],"path":"modules/kv.wasm","activate":true}}"#
    );
    let on_b = [
        named(KV, &wasm_provider),
        named(IDLE, &wasm_provider),
        named(PAIRED, &wasm_provider),
        named(NATIVE, "program:kv"),
        named(HOLD, "program:ipc-check"),
        started,
    ]
    .join(",");
    std::fs::write(
        b.join("services.json"),
        format!(r#"{{"services":[{on_b}]}}"#),
    )
    .unwrap();
    let on_a = [
        named(NATIVE, "program:kv"),
        named(HOLD, "program:ipc-check"),
    ]
    .join(",");
    std::fs::write(
        a.join("services.json"),
        format!(r#"{{"services":[{on_a}]}}"#),
    )
    .unwrap();
    let addr_b = format!("127.0.0.1:{}", common::free_port());
    let root_arg = root.display().to_string();
    let db = Daemon::start_with(
        common::weft(),
        &b,
        &addr_b,
        std::slice::from_ref(&addr_a),
        &["--fs-root", &root_arg, "--read-only"],
    );
    eventually("both available at a", Duration::from_secs(20), || {
        device_names(&a, true) == ["a", "b"]
    });

    // The Wasm kv service on b; beside it, in the same runtime, an app
    // blocked in a receive for a service nobody has called yet.
    let serve = [
        "spawn",
        "--device",
        "b",
        &kv_app,
        "serve",
        KV,
        "beside",
        "/kv-app.wasm",
        "wait",
        IDLE,
    ];
    let pid = ok(&a, &serve).trim().to_string();
    assert!(pid.starts_with("b:"), "{pid}");
    listed(&a, KV);
    listed(&a, IDLE);
    eventually("both apps started", Duration::from_secs(10), || {
        let log = db.log();
        log.contains("serving") && log.contains("waiting")
    });

    // The event app answers while the other app waits.
    assert_eq!(ipc_call(&a, &[KV, "set colour teal"]).1, "ok");
    assert_eq!(ipc_call(&a, &[KV, "get colour"]).1, "teal");
    assert_eq!(ipc_call(&a, &[KV, "del colour"]).1, "ok");
    let (code, _, err) = ipc_call(&a, &[KV, "get colour"]);
    assert_eq!(code, 1);
    assert!(err.contains("refused: no such key"), "{err}");
    let (code, _, err) = ipc_call(&a, &[KV, "frobnicate"]);
    assert_eq!(code, 1);
    assert!(err.contains("refused: bad request"), "{err}");
    assert!(!db.log().contains("woke"), "{}", db.log());

    // The blocked app wakes for its own message; the service goes on.
    let (code, out, err) = ipc_call(&a, &[IDLE, "hello"]);
    assert_eq!((code, out.as_str()), (0, "woke"), "{err}");
    eventually("the waiter ends", Duration::from_secs(10), || {
        let log = db.log();
        log.contains("woke hello") && log.contains("beside ended 0")
    });
    assert_eq!(ipc_call(&a, &[KV, "set after woke"]).1, "ok");
    assert_eq!(ipc_call(&b, &[KV, "get after"]).1, "woke");

    // A client beside its service, in the service's runtime: its requests
    // are each answered once, in order (`rtt` checks that the counts go
    // up by one), and it reports every round trip. They go to its own
    // runtime's instance (PROTOCOL.md §18.4), not to an older one in
    // another process, which has counted none of them.
    let older = ok(&a, &["spawn", "--device", "b", &kv_app, "serve", PAIRED]);
    let older = older.trim().to_string();
    eventually("the older instance listed", Duration::from_secs(10), || {
        json(&a, &["ipc", "services", "--json"])
            .iter()
            .any(|s| s["guid"] == PAIRED && s["pid"] == older.as_str())
    });
    let paired = [
        "spawn",
        "--device",
        "b",
        &kv_app,
        "serve",
        PAIRED,
        "beside",
        "/kv-app.wasm",
        "rtt",
        PAIRED,
        "40",
    ];
    let pid = ok(&a, &paired).trim().to_string();
    eventually("the client beside ends", Duration::from_secs(20), || {
        db.log().matches("beside ended").count() == 2
    });
    let log = db.log();
    assert_eq!(log.matches("beside ended 0").count(), 2, "{log}");
    let reported: usize = log
        .lines()
        .filter_map(|l| l.strip_prefix("rtt_samples_ns "))
        .map(|l| l.split(' ').count())
        .sum();
    assert_eq!(reported, 40, "{log}");
    let (code, _, err) = ipc_call(&a, &["--pid", &older, PAIRED, "get rtt"]);
    assert_eq!(code, 1, "the older instance counted: {err}");
    assert!(err.contains("refused: no such key"), "{err}");
    ok(&a, &["kill", &pid]);
    ok(&a, &["kill", &older]);

    // The Wasm client on a, against the native kv on b.
    let native = ok(&a, &["spawn", "--device", "b", "kv", "serve", NATIVE]);
    assert!(native.trim().starts_with("b:"), "{native}");
    listed(&a, NATIVE);
    let client = |args: &[&str]| {
        let mut all = vec!["spawn", "--device", "a", "--wait", kv_app.as_str()];
        all.extend_from_slice(args);
        cli(&a, &all)
    };
    let (code, _, err) = client(&["set", NATIVE, "shape", "round"]);
    assert_eq!(code, 0, "{err}{}", da.log());
    assert_eq!(ipc_call(&b, &[NATIVE, "get shape"]).1, "round");
    let (code, _, err) = client(&["get", NATIVE, "shape"]);
    assert_eq!(code, 0, "{err}");
    eventually("the answer in a's output", Duration::from_secs(5), || {
        da.log().lines().any(|l| l == "round")
    });
    let (code, _, err) = client(&["put", NATIVE, "size", "large"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(ipc_call(&b, &[NATIVE, "get size"]).1, "large");
    let (code, _, _) = client(&["get", NATIVE, "weight"]);
    assert_eq!(code, 1);
    eventually("the refusal in a's output", Duration::from_secs(5), || {
        da.log().contains("kv-app: refused: no such key")
    });

    // The Wasm client cancels a request that its provider holds (ipc-check
    // never answers `hold`).
    ok(&a, &["spawn", "--device", "b", "ipc-check", "serve", HOLD]);
    listed(&a, HOLD);
    let (code, _, err) = client(&["cancel", HOLD, "hold"]);
    assert_eq!(code, 0, "{err}");
    eventually(
        "the cancellation in a's output",
        Duration::from_secs(5),
        || da.log().lines().any(|l| l == "cancelled"),
    );

    // A first message starts the provider from b's module file.
    assert_eq!(ipc_call(&a, &[STARTED, "set started yes"]).1, "ok");
    assert_eq!(ipc_call(&a, &[STARTED, "get started"]).1, "yes");

    // A file that is not a module is refused by name (the daemon read it
    // through the descriptor the CLI sent).
    let text = scratch.state("not-a-module.txt");
    std::fs::write(&text, b"plain text").unwrap();
    let (code, _, err) = cli(&a, &["spawn", "--device", "b", &text.display().to_string()]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("not-a-module.txt: not a Wasm module"), "{err}");
    // Nor is what is not a regular file read (it could block the daemon).
    let (code, _, err) = cli(&a, &["spawn", "--device", "b", "/dev/zero"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("/dev/zero: not a regular file"), "{err}");

    for log in [da.log(), db.log()] {
        assert!(!log.contains("panicked"), "{log}");
    }
}

/// Under `weft run` there is no fabric: the app is told so, and exits 1.
#[test]
fn a_wasm_client_without_a_daemon_is_told_ipc_is_unavailable() {
    let (code, _, err) = common::run(&["run", &wasm("kv-app"), "get", KV, "colour"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("IPC is not available"), "{err}");
}
