//! Integration tests of Wasm apps as processes: real KVM guests where the
//! runtime runs several apps at once, the event-ABI echo server serves
//! host clients, a runaway app is preempted and a trapping app ends alone.

mod common;

use common::{
    Server, TempDir, connect_when_up, echo_round_trip, free_port, random_bytes, wait_for_line, wasm,
};
use std::io::{Read, Write};
use std::thread;

/// A directory holding the test apps, to serve as `--fs-root` (apps spawn
/// others from there).
fn apps_root() -> TempDir {
    let dir = TempDir::new("apps");
    for app in [
        "echo-server",
        "spin",
        "trap",
        "hello",
        "wc",
        "supervise",
        "hog",
    ] {
        std::fs::copy(wasm(app), dir.join(format!("{app}.wasm"))).unwrap();
    }
    dir
}

/// Runs `supervise COMMANDS` in a guest with the test apps as its root and
/// `addr` granted; returns it and its standard output's lines.
fn supervise(
    root: &std::path::Path,
    addr: &str,
    commands: &[&str],
) -> (Server, std::sync::mpsc::Receiver<String>) {
    let supervise = wasm("supervise");
    let mut args = vec![
        "run",
        "--fs-root",
        root.to_str().unwrap(),
        "--listen",
        addr,
        "--timeout",
        "300",
        &supervise,
    ];
    args.extend_from_slice(commands);
    Server::start_watched(&args)
}

/// Echoes a short message on a fresh connection and checks it comes back.
fn echo_once(port: u16, msg: &[u8]) {
    let mut conn = connect_when_up(port);
    conn.write_all(msg).unwrap();
    let mut back = vec![0u8; msg.len()];
    conn.read_exact(&mut back).unwrap();
    assert_eq!(back, msg);
}

#[test]
fn the_event_abi_echo_server_serves_twenty_clients_at_once_byte_exact() {
    echo_twenty_clients("interp");
}

/// The same app compiled ahead of time (PROTOCOL.md §13.8).
#[test]
fn the_compiled_event_abi_echo_server_serves_twenty_clients_at_once_byte_exact() {
    echo_twenty_clients("aot");
}

/// The event ABI's echo server under `--engine ENGINE`: twenty clients at
/// once, a MiB each, echoed byte-exact.
fn echo_twenty_clients(engine: &str) {
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let (mut server, lines) = Server::start_watched(&[
        "run",
        "--engine",
        engine,
        "--listen",
        &addr,
        "--timeout",
        "300",
        &wasm("echo-server"),
        &addr,
    ]);
    wait_for_line(&lines, "listening on");
    let clients: Vec<_> = (0..20u64)
        .map(|i| {
            thread::spawn(move || {
                let data = random_bytes(i, 1 << 20);
                let back = echo_round_trip(connect_when_up(port), data.clone());
                assert!(
                    back == data,
                    "client {i}: {} of {} bytes, differing",
                    back.len(),
                    data.len()
                );
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
    server.assert_running();
}

#[test]
fn a_spinning_app_is_preempted_and_the_other_still_answers() {
    let root = apps_root();
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let (mut server, lines) = supervise(
        &root,
        &addr,
        &["spin.wasm", "--", "echo-server.wasm", &addr],
    );
    wait_for_line(&lines, "started spin.wasm as process 2");
    wait_for_line(&lines, "listening on");
    for i in 0..20u8 {
        echo_once(port, &[i; 100]);
    }
    server.assert_running();
}

#[test]
fn a_trapping_app_ends_with_125_and_a_report_while_another_keeps_running() {
    let root = apps_root();
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let (mut server, lines) = supervise(
        &root,
        &addr,
        &["echo-server.wasm", &addr, "--", "trap.wasm", "200"],
    );
    wait_for_line(&lines, "listening on");
    echo_once(port, b"before");
    let ended = wait_for_line(&lines, "trap.wasm (process 3) exited");
    assert!(ended.ends_with("with status 125"), "{ended}");
    echo_once(port, b"after the trap");
    server.assert_running();
    let err = server.stop();
    assert!(
        err.contains(
            "weft: trap.wasm (process 3): trap: wasm `unreachable` instruction executed in `explode`"
        ),
        "{err}"
    );
}

#[test]
fn apps_run_concurrently_and_are_listed_with_their_figures() {
    let root = apps_root();
    std::fs::write(root.join("words.txt"), "one two\nthree\n").unwrap();
    let out = common::weft()
        .args([
            "run",
            "--fs-root",
            root.to_str().unwrap(),
            "--timeout",
            "60",
            &wasm("supervise"),
            "--stop-after",
            "2",
            "hello.wasm",
            "a",
            "--",
            "wc.wasm",
            "/words.txt",
            "--",
            "spin.wasm",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    // spin never ends: once the other two finished beside it, the
    // supervisor kills it, and reports a failure.
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("spin.wasm (process 4) exited with status 137"),
        "{stdout}"
    );
    assert!(
        stdout.contains("hello.wasm (process 2) exited with status 0"),
        "{stdout}"
    );
    assert!(
        stdout.contains("wc.wasm (process 3) exited with status 0"),
        "{stdout}"
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.split_whitespace().eq(["2", "3", "14", "/words.txt"])),
        "{stdout}"
    );
    let spin = stdout
        .lines()
        .rfind(|l| l.contains("ps 4 parent=1 running"))
        .unwrap_or_else(|| panic!("spin not listed as running: {stdout}"));
    let cpu: u64 = spin
        .split("cpu_us=")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert!(cpu > 0, "{spin}");
    assert!(stdout.contains("ps 1 parent=0"), "{stdout}");
}

#[test]
fn an_app_cannot_grow_its_memory_past_its_cap() {
    let root = apps_root();
    let out = common::weft()
        .args([
            "run",
            "--fs-root",
            root.to_str().unwrap(),
            "--timeout",
            "60",
            &wasm("supervise"),
            "--memory",
            "8",
            "hog.wasm",
            "--",
            "hog.wasm",
            "4",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    let held: Vec<u32> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("hog: holding "))
        .filter_map(|l| l.strip_suffix(" MiB")?.parse().ok())
        .collect();
    assert_eq!(held.len(), 2, "{stdout}");
    // The unbounded one is refused below its 8 MiB cap (its memory also
    // holds its stack and data); the bounded one got all it asked for.
    assert!(held.contains(&4), "{stdout}");
    assert!(held.iter().all(|&m| m > 0 && m < 8), "{stdout}");
}
