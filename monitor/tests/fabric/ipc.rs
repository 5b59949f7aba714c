//! IPC by GUID across three devices in network namespaces (PROTOCOL.md
//! §18): services provided by apps, requests answered byte for byte, many
//! clients at once in order, one-way messages counted, every error answer,
//! and the device's own CLI as a client.

use super::netns::Net;
use super::{Daemon, Scratch, device_names, eventually, ipc_call, json, ok, pair, serial, weft_in};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

pub(super) const CHECK: &str = "6f1c2a4e-8b3d-4f0a-9c11-223344556677";
const KV: &str = "0b5e1a7c-3d2f-4e6a-8b9c-0d1e2f3a4b5c";
pub(super) const HOLDER: &str = "9a8b7c6d-5e4f-4a3b-9c2d-1e0f9a8b7c6d";
pub(super) const NOBODY: &str = "11111111-2222-4333-8444-555555555555";
const STARTED: &str = "5d6e7f80-91a2-4b3c-8d4e-5f60718293a4";

/// Each device's registry (`services.json`): every service named, so
/// every app may send to each (no grants) — but on b, grants: ipc-check
/// may send anywhere, kv only to the key-value service. Only c starts
/// STARTED on a first message.
fn registry(device: &str) -> String {
    let named = |guid: &str, name: &str, program: &str, activate: bool| {
        format!(
            r#"{{"guid":"{guid}","name":"{name}","provider":"program:{program}","args":["serve","{guid}"],"activate":{activate}}}"#
        )
    };
    let services = [
        named(CHECK, "ipc-check", "ipc-check", false),
        named(KV, "kv", "kv", false),
        named(HOLDER, "holder", "ipc-check", false),
        named(STARTED, "started", "ipc-check", device == "c"),
    ]
    .join(",");
    let grants = if device == "b" {
        format!(
            r#","grants":[{{"to":"program:ipc-check","send":["*"]}},{{"to":"program:kv","send":["{KV}"]}}]"#
        )
    } else {
        String::new()
    };
    format!(r#"{{"services":[{services}]{grants}}}"#)
}

/// Three devices a, b, c, each in its namespace.
pub(super) struct Three {
    net: Net,
    _scratch: Scratch,
    pub(super) dirs: [PathBuf; 3],
    pub(super) daemons: Vec<Daemon>,
}

pub(super) fn three(tag: &str) -> Three {
    let net = Net::new(3);
    let scratch = Scratch::new(tag);
    let dirs = ["a", "b", "c"].map(|n| scratch.state(n));
    let addr = |i: usize| format!("{}:7447", net.addr(i));
    ok(&dirs[0], &["fabric", "create", "--name", "a"]);
    std::fs::write(dirs[0].join("services.json"), registry("a")).unwrap();
    let mut daemons = vec![Daemon::start(weft_in(&net, 0), &dirs[0], &addr(0), &[])];
    for (i, name) in [(1, "b"), (2, "c")] {
        pair(&dirs[0], &dirs[i], name, weft_in(&net, i));
        std::fs::write(dirs[i].join("services.json"), registry(name)).unwrap();
        daemons.push(Daemon::start(weft_in(&net, i), &dirs[i], &addr(i), &[]));
    }
    for d in &dirs {
        eventually("three available", Duration::from_secs(20), || {
            device_names(d, true) == ["a", "b", "c"]
        });
    }
    Three {
        net,
        _scratch: scratch,
        dirs,
        daemons,
    }
}

/// Starts `args` on device `on` from `from`'s CLI and returns its pid.
pub(super) fn spawn(from: &Path, on: &str, args: &[&str]) -> String {
    let mut all = vec!["spawn", "--device", on];
    all.extend_from_slice(args);
    ok(from, &all).trim().to_string()
}

/// Waits until every device lists `pid` as an instance of `guid`.
pub(super) fn listed_everywhere(t: &Three, guid: &str, pid: &str) {
    for d in &t.dirs {
        eventually("the service is listed", Duration::from_secs(20), || {
            json(d, &["ipc", "services", "--json"])
                .iter()
                .any(|s| s["guid"] == guid && s["pid"] == pid)
        });
    }
}

/// `weft spawn --wait` of `args` on device `on`, from `from`, as a child.
pub(super) fn waiting(t: &Three, from: usize, on: &str, args: &[&str]) -> Child {
    t.net
        .command(from, env!("CARGO_BIN_EXE_weft"))
        .args(["spawn", "--state"])
        .arg(&t.dirs[from])
        .args(["--device", on, "--wait"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn weft")
}

#[test]
fn ipc_across_three_devices_in_namespaces() {
    let _serial = serial();
    let t = three("ipc");
    let [a, b, c] = &t.dirs;

    // A checking service on c, reached from a's CLI: the reply is the
    // request's bytes, exactly, after `echo:`.
    let check = spawn(a, "c", &["ipc-check", "serve", CHECK]);
    assert!(check.starts_with("c:"), "{check}");
    listed_everywhere(&t, CHECK, &check);
    let services = json(b, &["ipc", "services", "--json"]);
    let entry = services.iter().find(|s| s["guid"] == CHECK).unwrap();
    assert_eq!(entry["name"], "ipc-check");
    assert_eq!(entry["device"], "c");
    let data = format!("bytes é ✓ {} 0", "x".repeat(3000));
    let (code, out, err) = ipc_call(a, &[CHECK, &data]);
    assert_eq!((code, out), (0, format!("echo:{data}")), "{err}");

    // A key-value service on b, used from a's CLI and from an app on c.
    let kv = spawn(a, "b", &["kv", "serve", KV]);
    listed_everywhere(&t, KV, &kv);
    assert_eq!(ipc_call(a, &[KV, "set colour teal"]).1, "ok");
    let (code, _, err) = finished(waiting(&t, 2, "c", &["kv", "get", KV, "colour"]));
    assert_eq!(code, 0, "{err}");
    eventually("kv's answer in c's output", Duration::from_secs(5), || {
        t.daemons[2].log().contains("teal")
    });
    assert_eq!(ipc_call(c, &[KV, "get colour"]).1, "teal");
    assert_eq!(ipc_call(c, &[KV, "del colour"]).1, "ok");
    let (code, _, err) = ipc_call(a, &[KV, "get colour"]);
    assert_eq!(code, 1);
    assert!(err.contains("refused: no such key"), "{err}");

    // Ten clients, five on a and five on b, 1,000 requests each to the
    // service on c: each checks every answer is its own, in order.
    let clients: Vec<Child> = (0..10)
        .map(|i| {
            let on = if i < 5 { "a" } else { "b" };
            waiting(
                &t,
                i % 3,
                on,
                &["ipc-check", "call", CHECK, "1000", &format!("r{i}")],
            )
        })
        .collect();
    for (i, client) in clients.into_iter().enumerate() {
        let (code, _, err) = finished(client);
        let log = t.daemons[if i < 5 { 0 } else { 1 }].log();
        assert_eq!(code, 0, "client {i}: {err}{}", tail(&log));
    }
    // Then one-way: ten senders, 500 each, counted exactly and in order.
    let senders: Vec<Child> = (0..10)
        .map(|i| {
            let on = if i < 5 { "a" } else { "b" };
            waiting(
                &t,
                0,
                on,
                &["ipc-check", "send", CHECK, "500", &format!("s{i}")],
            )
        })
        .collect();
    for (i, sender) in senders.into_iter().enumerate() {
        let (code, _, err) = finished(sender);
        let log = t.daemons[if i < 5 { 0 } else { 1 }].log();
        assert_eq!(code, 0, "sender {i}: {err}{}", tail(&log));
    }
    let (code, stats, err) = ipc_call(b, &[CHECK, "stats"]);
    assert_eq!(code, 0, "{err}");
    let dbg: Vec<usize> = t
        .daemons
        .iter()
        .map(|d| d.log().matches("DEBUG").count())
        .collect();
    assert_eq!(stats, "requests=10001 oneway=5000 disorder=0", "{dbg:?}");

    // The same-device path: a client on c itself.
    let (code, _, err) = finished(waiting(
        &t,
        2,
        "c",
        &["ipc-check", "call", CHECK, "200", "l"],
    ));
    assert_eq!(code, 0, "{err}");

    // One instance by pid; a pid that provides nothing.
    let (code, out, err) = ipc_call(a, &["--pid", &check, CHECK, "p 0"]);
    assert_eq!((code, out.as_str()), (0, "echo:p 0"), "{err}");
    let (code, _, err) = ipc_call(a, &["--pid", "b:999", CHECK, "p 1"]);
    assert_eq!(code, 1);
    assert!(err.contains("no provider"), "{err}");

    // The error answers: no provider, refused, timeout, cancelled,
    // provider ended mid-request.
    let (code, _, err) = ipc_call(a, &[NOBODY, "x"]);
    assert_eq!(code, 1);
    assert!(err.contains("no provider"), "{err}");
    let (code, _, err) = ipc_call(a, &[CHECK, "refuse"]);
    assert_eq!(code, 1);
    assert!(err.contains("refused: asked to refuse"), "{err}");
    let (code, _, err) = ipc_call(a, &["--timeout", "0.5", CHECK, "hold"]);
    assert_eq!(code, 1);
    assert!(err.contains("timeout"), "{err}");
    let (code, _, err) = finished(waiting(&t, 1, "b", &["ipc-check", "cancel", CHECK]));
    assert_eq!(code, 0, "{err}");
    let holder = spawn(a, "c", &["ipc-check", "serve", HOLDER]);
    listed_everywhere(&t, HOLDER, &holder);
    let pending = t
        .net
        .command(0, env!("CARGO_BIN_EXE_weft"))
        .args(["ipc", "call", "--state"])
        .arg(a)
        .args(["--timeout", "30", HOLDER, "hold"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(1));
    ok(b, &["kill", &holder]);
    let (code, _, err) = finished(pending);
    assert_eq!(code, 1);
    assert!(err.contains("provider ended"), "{err}");
    // The ended provider is withdrawn everywhere.
    for d in &t.dirs {
        eventually("the holder is withdrawn", Duration::from_secs(20), || {
            !json(d, &["ipc", "services", "--json"])
                .iter()
                .any(|s: &Value| s["guid"] == HOLDER)
        });
    }
    let (code, _, err) = ipc_call(a, &[HOLDER, "x"]);
    assert_eq!(code, 1);
    assert!(err.contains("no provider"), "{err}");

    // Named services only: an imposter (kv claiming the checking
    // service) is refused, and the real provider keeps working.
    let (code, _, err) = finished(waiting(&t, 0, "b", &["kv", "serve", CHECK]));
    assert_eq!(code, 1, "{err}");
    eventually(
        "the imposter's refusal in b's output",
        Duration::from_secs(5),
        || {
            t.daemons[1]
                .log()
                .contains("kv: denied: this device's registry names program:ipc-check")
        },
    );
    let (code, _, err) = finished(waiting(&t, 0, "c", &["kv", "serve", NOBODY]));
    assert_eq!(code, 1, "{err}");
    eventually(
        "an unnamed service refused on c",
        Duration::from_secs(5),
        || {
            t.daemons[2]
                .log()
                .contains("is not named in this device's registry")
        },
    );
    let (code, out, err) = ipc_call(a, &[CHECK, "still 0"]);
    assert_eq!((code, out.as_str()), (0, "echo:still 0"), "{err}");
    // Grants: on b, kv may send only to the key-value service.
    let (code, _, err) = finished(waiting(&t, 0, "b", &["kv", "get", CHECK, "k"]));
    assert_eq!(code, 1, "{err}");
    eventually(
        "an ungranted send refused on b",
        Duration::from_secs(5),
        || {
            t.daemons[1]
            .log()
            .contains(&format!("kv: denied: no grant in this device's registry (services.json) lets program:kv send to service {CHECK}"))
        },
    );
    let (code, _, err) = finished(waiting(&t, 0, "b", &["ipc-check", "call", CHECK, "3", "g"]));
    assert_eq!(code, 0, "{err}");

    // Activation: twenty first messages at once, from a and b (the CLI
    // and apps), start one provider on c, and every one is answered.
    let mut firsts: Vec<Child> = (0..14)
        .map(|i| {
            t.net
                .command(i % 2, env!("CARGO_BIN_EXE_weft"))
                .args(["ipc", "call", "--state"])
                .arg(&t.dirs[i % 2])
                .args([STARTED, &format!("first{i} 0")])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let apps: Vec<Child> = (0..6)
        .map(|i| {
            let on = if i < 3 { "a" } else { "b" };
            waiting(
                &t,
                0,
                on,
                &["ipc-check", "call", STARTED, "1", &format!("app{i}")],
            )
        })
        .collect();
    for (i, first) in firsts.drain(..).enumerate() {
        let (code, out, err) = finished(first);
        assert_eq!((code, out), (0, format!("echo:first{i} 0")), "{err}");
    }
    for (i, app) in apps.into_iter().enumerate() {
        let (code, _, err) = finished(app);
        assert_eq!(code, 0, "app {i}: {err}");
    }
    let instances: Vec<Value> = json(a, &["ipc", "services", "--json"])
        .into_iter()
        .filter(|s| s["guid"] == STARTED)
        .collect();
    assert_eq!(instances.len(), 1, "{instances:?}");
    assert_eq!(instances[0]["device"], "c");
    let started_on_c = json(a, &["ps", "--device", "c", "--json"])
        .iter()
        .filter(|p| p["name"] == "ipc-check" && p["state"] != "ended")
        .count();
    assert_eq!(
        started_on_c, 2,
        "the checking service and one started provider"
    );

    // A bad GUID is the CLI's error.
    let (code, _, err) = ipc_call(a, &["not-a-guid", "x"]);
    assert_eq!(code, 1);
    assert!(err.contains("not a GUID"), "{err}");
}

/// Waits for `child`: (status, stdout, stderr).
pub(super) fn finished(child: Child) -> (i32, String, String) {
    let out = child.wait_with_output().expect("wait");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The last lines of a daemon's log (its apps' output among them).
fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}
