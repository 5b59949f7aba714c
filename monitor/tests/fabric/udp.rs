//! UDP on the fabric's addresses (PROTOCOL.md §16.7): device `a` owns its
//! namespace's address (`--fabric-ip`); the bundled `udp-echo` on device
//! `b` binds it, and a host client in `a`'s namespace talks to the app on
//! `b` through it; the same with the Wasm app `udp-echo-app` on `b`.

use super::common::wasm;
use super::{Daemon, Scratch, cli, eventually, ok, pair, serial, weft_in};
use crate::netns::Net;
use serde_json::Value;
use std::time::Duration;

/// Datagrams the host client exchanges with the app.
const DATAGRAMS: usize = 10_000;
/// Of them, lost at most (5%; see the test).
const MAX_LOST: u64 = 500;

/// The host client, in Python (run in `a`'s namespace): sends
/// `DATAGRAMS` datagrams to ADDR:PORT, at most WINDOW unanswered at once,
/// each its sequence number (8 bytes, LE), a body derived from it (0 to
/// 1199 bytes) and the first 8 bytes of the SHA-256 of both; checks every
/// answer against what was sent for its number, and prints the counts as
/// JSON. A datagram unanswered for 3 s is counted lost (and un-counted if
/// its answer still comes).
const CLIENT: &str = r#"
import hashlib, json, socket, struct, sys, time
ip, port, n, window = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
def datagram(seq):
    head = struct.pack('<Q', seq)
    seed = hashlib.sha256(head).digest()
    body = (seed * 38)[: (seq * 7919) % 1200]
    return head + body + hashlib.sha256(head + body).digest()[:8]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(0.05)
sent, waiting, got, expired = 0, {}, set(), set()
dup = bad = lost = 0
def take(data):
    global dup, bad, lost
    seq = struct.unpack('<Q', data[:8])[0] if len(data) >= 16 else None
    if seq is None or seq >= n or data != datagram(seq):
        bad += 1
    elif seq in got:
        dup += 1
    else:
        got.add(seq)
        waiting.pop(seq, None)
        if seq in expired:
            lost -= 1
while sent < n or waiting:
    while sent < n and len(waiting) < window:
        s.sendto(datagram(sent), (ip, port))
        waiting[sent] = time.monotonic()
        sent += 1
    try:
        data = s.recv(70000)
    except socket.timeout:
        data = None
    if data is not None:
        take(data)
    now = time.monotonic()
    for seq in [q for q, t in waiting.items() if now - t > 3.0]:
        del waiting[seq]
        expired.add(seq)
        lost += 1
# Late duplicates would come now.
s.settimeout(0.5)
try:
    while True:
        take(s.recv(70000))
except socket.timeout:
    pass
print(json.dumps({"received": len(got), "duplicated": dup, "corrupted": bad, "lost": lost}))
"#;

/// Whether UDP `addr:port` is free in host `i`'s namespace (a host bind
/// succeeds).
fn port_free(net: &Net, i: usize, addr: &str, port: u16) -> bool {
    let script = "import socket,sys\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\ns.bind((sys.argv[1],int(sys.argv[2])))";
    net.command(i, "python3")
        .args(["-c", script, addr, &port.to_string()])
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Runs the host client in host `i`'s namespace against `addr:port`.
fn exchange(net: &Net, i: usize, addr: &str, port: u16, n: usize) -> Value {
    let out = net
        .command(i, "python3")
        .args(["-c", CLIENT, addr, &port.to_string(), &n.to_string(), "16"])
        .output()
        .expect("python3 (the host client)");
    client_counts(&out)
}

/// The counts a host client printed as JSON, once it ended well.
pub(super) fn client_counts(out: &std::process::Output) -> Value {
    assert!(
        out.status.success(),
        "host client: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

/// Devices `a`, owner of its namespace's address (`--fabric-ip`, granting
/// `--listen` on `port` there), and `b`, paired, both available.
struct Devices {
    net: Net,
    _scratch: Scratch,
    b: std::path::PathBuf,
    /// a's fabric address, and `IP:PORT` on it.
    ip: String,
    granted: String,
    da: Daemon,
    db: Daemon,
}

impl Devices {
    fn new(tag: &str, port: u16) -> Devices {
        let net = Net::new(2);
        let scratch = Scratch::new(tag);
        let (a, b) = (scratch.state("a"), scratch.state("b"));
        let zenoh = |i: usize| format!("{}:7447", net.addr(i));
        let ip = net.addr(0).to_string();
        let granted = format!("{ip}:{port}");
        ok(&a, &["fabric", "create", "--name", "a"]);
        let da = Daemon::start_with(
            weft_in(&net, 0),
            &a,
            &zenoh(0),
            &[],
            &["--fabric-ip", &ip, "--listen", &granted],
        );
        pair(&a, &b, "b", weft_in(&net, 1));
        let db = Daemon::start(weft_in(&net, 1), &b, &zenoh(1), &[]);
        for s in [&a, &b] {
            eventually("both available", Duration::from_secs(20), || {
                super::device_names(s, true) == ["a", "b"]
            });
        }
        Devices {
            net,
            _scratch: scratch,
            b,
            ip,
            granted,
            da,
            db,
        }
    }
}

/// Checks the host client's `counts` for `sent` datagrams: none
/// duplicated or corrupted, at most `max_lost` lost, every other one back.
fn whole(counts: &Value, sent: usize, max_lost: u64) {
    assert_eq!(counts["duplicated"], 0, "{counts}");
    assert_eq!(counts["corrupted"], 0, "{counts}");
    let lost = counts["lost"].as_u64().unwrap_or(u64::MAX);
    assert!(lost <= max_lost, "{counts}");
    assert_eq!(counts["received"], sent as u64 - lost, "{counts}");
}

#[test]
fn an_app_on_another_device_serves_udp_on_a_fabric_address() {
    let _serial = serial();
    let port = 9500u16;
    let Devices {
        net,
        _scratch,
        b,
        ip,
        granted,
        da,
        mut db,
    } = Devices::new("udp", port);

    // A port a's --listen does not grant: refused by a, clearly (b has no
    // grants at all, so the refusal is a's).
    let (code, _, err) = cli(&b, &["spawn", "--wait", "udp-echo", "9501", &ip]);
    assert_eq!(code, 1, "{err}");
    let refusal = format!(
        "device a: binding UDP to fabric address {ip}:9501 is not allowed: not granted by --listen"
    );
    let start = std::time::Instant::now();
    while !db.log().contains(&refusal) && start.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(db.log().contains(&refusal), "{}", db.log());

    // The app on b binds a's fabric address; its socket's name is that
    // address.
    let pid = ok(&b, &["spawn", "udp-echo", &port.to_string(), &ip]);
    let pid = pid.trim().to_string();
    let bound = format!("udp-echo: bound to {granted}");
    eventually(
        "udp-echo bound on a's address",
        Duration::from_secs(10),
        || db.log().contains(&bound),
    );
    assert!(!port_free(&net, 0, &ip, port), "a holds the socket");

    // 10,000 datagrams from a host client in a's namespace, echoed by the
    // app on b: none duplicated, none corrupted, and few lost. The client
    // keeps at most 16 unanswered, far below every queue's bound: none is
    // lost on a quiet machine (with Zenoh's default link queue, 2 batches
    // and 1 ms before a drop, about 0.5% were). UDP may lose datagrams;
    // the bound catches a path that loses them wholesale.
    let counts = exchange(&net, 0, &ip, port, DATAGRAMS);
    eprintln!("host client: {counts}");
    for (name, d) in [("a", &da), ("b", &db)] {
        let log = d.log();
        let daemon_lines: Vec<&str> = log
            .lines()
            .filter(|l| l.starts_with("weft daemon"))
            .collect();
        eprintln!("{name}'s daemon said: {daemon_lines:#?}");
    }
    whole(&counts, DATAGRAMS, MAX_LOST);

    // The app ends: a closes the socket, and the address can be bound
    // again (by the app again, and it echoes).
    ok(&b, &["kill", &pid]);
    eventually("a closes the socket", Duration::from_secs(10), || {
        port_free(&net, 0, &ip, port)
    });
    let _again = ok(&b, &["spawn", "udp-echo", &port.to_string(), &ip]);
    eventually("udp-echo bound again", Duration::from_secs(10), || {
        db.log().matches(&bound).count() == 2
    });
    let counts = exchange(&net, 0, &ip, port, 100);
    assert_eq!(counts["duplicated"], 0, "{counts}");
    assert!(
        counts["received"].as_u64().is_some_and(|n| n >= 90),
        "{counts}"
    );

    // b's daemon killed: a sees b unavailable and closes b's socket.
    db.kill9();
    eventually(
        "a closes the socket of an unavailable device",
        Duration::from_secs(15),
        || port_free(&net, 0, &ip, port),
    );
}

/// Datagrams the host client exchanges with the Wasm app.
const WASM_DATAGRAMS: usize = 2_000;
/// Of them, lost at most: 5%, the bound of the native app's test.
const WASM_MAX_LOST: u64 = 100;

/// The Wasm twin of the test above (PROTOCOL.md §13.3 `udp_bind`): the
/// event app `udp-echo-app` on `b` binds `a`'s fabric address, its socket
/// is held by `a`, and a host client in `a`'s namespace exchanges
/// datagrams with it: none duplicated, none corrupted, few lost. Its end
/// closes the socket at `a`; a bind `a` does not grant is refused.
#[test]
fn a_wasm_app_on_another_device_serves_udp_on_a_fabric_address() {
    let _serial = serial();
    let port = 9510u16;
    let Devices {
        net,
        _scratch,
        b,
        ip,
        granted,
        da: _da,
        db,
    } = Devices::new("udp-wasm", port);

    // A port a's --listen does not grant: the app's bind is refused (its
    // errno, EACCES), and it says so and ends with status 1.
    let app = wasm("udp-echo-app");
    let (code, _, err) = cli(&b, &["spawn", "--wait", "--device", "b", &app, "9511", &ip]);
    assert_eq!(code, 1, "{err}");
    let refusal = format!("udp-echo-app: bind {ip}:9511: Permission denied");
    eventually("the refusal logged", Duration::from_secs(5), || {
        db.log().contains(&refusal)
    });

    let pid = ok(
        &b,
        &["spawn", "--device", "b", &app, &port.to_string(), &ip],
    );
    let pid = pid.trim().to_string();
    let bound = format!("udp-echo-app: bound to {granted}");
    eventually(
        "udp-echo-app bound on a's address",
        Duration::from_secs(10),
        || db.log().contains(&bound),
    );
    assert!(!port_free(&net, 0, &ip, port), "a holds the socket");

    let counts = exchange(&net, 0, &ip, port, WASM_DATAGRAMS);
    eprintln!("host client: {counts}");
    whole(&counts, WASM_DATAGRAMS, WASM_MAX_LOST);

    ok(&b, &["kill", &pid]);
    eventually("a closes the socket", Duration::from_secs(10), || {
        port_free(&net, 0, &ip, port)
    });
}
