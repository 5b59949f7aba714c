//! UDP sockets that follow their app (PROTOCOL.md §19.6): device a owns its
//! namespace's address; the stateful app binds a socket there and echoes
//! every datagram, while a host client in a's namespace sends it 1000
//! datagrams a second and checks each echo. The app goes round a→b→c→a;
//! not one datagram is lost, duplicated or changed. A move that fails
//! after the destination took the socket over leaves it with the app,
//! which goes on echoing where it is.

use super::super::common::wasm;
use super::super::udp::client_counts;
use super::super::{module_identity, ok, serial};
use super::{Fabric, KV, checked_ticks, device_of, serve};
use serde_json::Value;
use std::process::{Child, Stdio};
use std::time::Duration;

/// The port the app binds on a's fabric address.
const PORT: u16 = 7600;
/// Datagrams a second the client sends.
const RATE: u32 = 1000;

/// The host client, in Python: sends RATE datagrams a second to IP:PORT
/// until its standard input ends, each its sequence number (8 bytes, LE)
/// and 24 bytes derived from it; takes every echo; then waits 5 s more for
/// the last echoes and prints the counts as JSON, with the first numbers
/// never echoed.
const CLIENT: &str = r#"
import json, select, socket, struct, sys, time
ip, port, rate = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def datagram(seq):
    head = struct.pack('<Q', seq)
    return head + bytes((seq * 31 + i) % 251 for i in range(24))
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setblocking(False)
sent, got = 0, set()
dup = bad = 0
def take():
    global dup, bad
    while True:
        try:
            data = s.recv(2048)
        except BlockingIOError:
            return
        seq = struct.unpack('<Q', data[:8])[0] if len(data) == 32 else None
        if seq is None or seq >= sent or data != datagram(seq):
            bad += 1
        elif seq in got:
            dup += 1
        else:
            got.add(seq)
start, stdin_open = time.monotonic(), True
while stdin_open:
    due = start + sent / rate
    now = time.monotonic()
    if now >= due:
        s.sendto(datagram(sent), (ip, port))
        sent += 1
        continue
    ready, _, _ = select.select([s, sys.stdin], [], [], due - now)
    if s in ready:
        take()
    if sys.stdin in ready and not sys.stdin.read(1):
        stdin_open = False
end = time.monotonic() + 5
while time.monotonic() < end and len(got) < sent:
    select.select([s], [], [], 0.05)
    take()
missing = [q for q in range(sent) if q not in got][:20]
print(json.dumps({"sent": sent, "received": len(got), "duplicated": dup,
                  "corrupted": bad, "missing": missing, "seconds": time.monotonic() - start}))
"#;

/// The client, running in a's namespace against the app's socket (killed
/// if the test fails before it finishes).
struct Client(Option<Child>);

impl Client {
    fn start(f: &Fabric) -> Client {
        let ip = f.net.addr(0).to_string();
        let child = f
            .net
            .command(0, "python3")
            .args(["-c", CLIENT, &ip, &PORT.to_string(), &RATE.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("python3 (the host client)");
        Client(Some(child))
    }

    /// Stops it; its counts.
    fn finish(mut self) -> Value {
        let mut child = self.0.take().expect("a running client");
        drop(child.stdin.take());
        let out = child.wait_with_output().expect("the client's output");
        client_counts(&out)
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Checks that every datagram the client sent came back once, unchanged.
fn nothing_lost(counts: &Value) {
    assert_eq!(counts["duplicated"], 0, "{counts}");
    assert_eq!(counts["corrupted"], 0, "{counts}");
    assert_eq!(counts["received"], counts["sent"], "{counts}");
}

/// Starts `stateful --udp` (with `extra` options) on a: its pid, once it
/// ticks and its socket is bound.
fn start(f: &Fabric, extra: &[&str]) -> String {
    let granted = format!("{}:{PORT}", f.net.addr(0));
    let mut args = vec!["--udp", &granted];
    args.extend_from_slice(extra);
    args.extend(["1", "20"]);
    let app = wasm("stateful");
    let pid = if extra.is_empty() {
        let mut spawn = vec!["spawn", "--device", "a", &app];
        spawn.extend_from_slice(&args);
        ok(f.dir("a"), &spawn).trim().to_string()
    } else {
        serve(f, &app, &args)
    };
    super::super::eventually("it ticks on a", Duration::from_secs(20), || {
        f.last_tick("a") >= 3 && f.logs()[0].contains(&format!("stateful udp {granted}"))
    });
    pid
}

/// Moves `pid` to `to` (asked on device `from`) and waits until it ticks
/// there.
fn hop(f: &Fabric, pid: &str, from: &str, to: &str) {
    let out = ok(f.dir(from), &["move", pid, to]);
    assert_eq!(out.trim(), format!("{pid} runs on {to}"));
    let before = checked_ticks(&f.logs());
    super::super::eventually(
        "it ticks on at its destination",
        Duration::from_secs(20),
        || f.last_tick(to) > before,
    );
}

#[test]
fn a_udp_stream_to_a_moving_app_loses_nothing() {
    let _serial = serial();
    let f = Fabric::owning(Some(PORT));
    let pid = start(&f, &[]);
    let client = Client::start(&f);
    std::thread::sleep(Duration::from_millis(500));
    let route = ["b", "c", "a"];
    let hops = 100;
    for h in 0..hops {
        hop(&f, &pid, route[(h + 1) % 3], route[h % 3]);
    }
    std::thread::sleep(Duration::from_millis(500));
    let counts = client.finish();
    eprintln!("{hops} moves: {counts}");
    nothing_lost(&counts);
    let seconds = counts["seconds"].as_f64().unwrap_or(0.0);
    let sent = counts["sent"].as_f64().unwrap_or(0.0);
    assert!(
        sent >= 0.9 * f64::from(RATE) * (seconds - 5.0),
        "{counts}: not {RATE} a second"
    );
    assert_eq!(device_of(f.dir("b"), &pid), route[(hops - 1) % 3]);
}

#[test]
fn a_move_that_fails_after_the_socket_was_taken_over_gives_it_back() {
    let _serial = serial();
    let f = Fabric::owning(Some(PORT));
    let pid = start(&f, &["--serve", KV]);
    hop(&f, &pid, "c", "b");
    // c's registry names another module for the service: the restore
    // there binds the socket (taking it over), then cannot provide it.
    let other = format!(
        r#"{{"services":[{{"guid":"{KV}","name":"kv","provider":"{}"}}]}}"#,
        module_identity(&wasm("kv-app"))
    );
    std::fs::write(f.dir("c").join("services.json"), other).unwrap();
    let client = Client::start(&f);
    std::thread::sleep(Duration::from_millis(300));
    let (code, _, err) = super::super::cli(f.dir("a"), &["move", &pid, "c"]);
    assert_ne!(code, 0);
    assert!(
        err.contains("cannot be provided here") && err.contains("it goes on on b"),
        "{err}"
    );
    let during = client.finish();
    assert_eq!(during["duplicated"], 0, "{during}");
    assert_eq!(during["corrupted"], 0, "{during}");
    // It goes on at b with its socket, and moves on with it.
    let client = Client::start(&f);
    std::thread::sleep(Duration::from_millis(1500));
    hop(&f, &pid, "c", "a");
    std::thread::sleep(Duration::from_millis(500));
    let after = client.finish();
    eprintln!("the failed move: {during}; after it: {after}");
    nothing_lost(&after);
    assert!(after["sent"].as_u64().unwrap_or(0) >= 1000, "{after}");
}
