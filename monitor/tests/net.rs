//! Integration tests of the network streams (PROTOCOL.md §11, §12): real
//! KVM guests running the bundled `echo-server`, `http-get` and `udp-echo`
//! (and the Wasm `udp-echo-app`) against real host sockets on the loopback
//! interface.

mod common;

use common::{
    Server, TempDir, connect_when_up, echo_datagrams, echo_round_trip, free_port, http_server,
    random_bytes, run, wasm, weft,
};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::thread;
use std::time::{Duration, Instant};

fn echo_server(port: u16) -> Server {
    let listen = format!("127.0.0.1:{port}");
    let port = port.to_string();
    Server::start(&[
        "run",
        "--listen",
        &listen,
        "--timeout",
        "300",
        "echo-server",
        &port,
    ])
}

/// Makes dropping `s` reset the connection (SO_LINGER with a zero timeout).
fn reset_on_drop(s: &TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: `s` owns an open socket; the option value is a valid `linger`
    // of the length passed.
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "SO_LINGER");
}

#[test]
fn echo_server_serves_fifty_clients_at_once_byte_exact() {
    const CLIENTS: u64 = 50;
    const BYTES: usize = 1 << 20;
    let port = free_port();
    let mut server = echo_server(port);
    drop(connect_when_up(port));
    let start = Instant::now();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| {
            thread::spawn(move || {
                let data = random_bytes(i + 1, BYTES);
                let back = echo_round_trip(connect_when_up(port), data.clone());
                assert_eq!(back.len(), data.len(), "client {i}: echo length");
                assert!(back == data, "client {i}: echo differs");
            })
        })
        .collect();
    for c in clients {
        c.join().expect("client failed");
    }
    let secs = start.elapsed().as_secs_f64();
    eprintln!(
        "{CLIENTS} clients x 1 MiB echoed in {secs:.2}s ({:.1} MB/s each way)",
        (CLIENTS as f64 * BYTES as f64) / secs / 1e6
    );
    server.assert_running();
    server.stop();
}

#[test]
fn echo_server_goes_on_after_a_peer_resets_and_a_peer_leaves_mid_transfer() {
    let port = free_port();
    let mut server = echo_server(port);
    // A peer that resets the connection with bytes in flight.
    let reset = connect_when_up(port);
    (&reset).write_all(&random_bytes(7, 200_000)).unwrap();
    reset_on_drop(&reset);
    drop(reset);
    // A peer that leaves without reading what is echoed to it.
    let leaver = connect_when_up(port);
    let mut w = leaver.try_clone().unwrap();
    let _ = w.write_all(&random_bytes(8, 3 << 20));
    drop((w, leaver));
    // The server still serves a new client byte-exact.
    let data = random_bytes(9, 100_000);
    assert_eq!(echo_round_trip(connect_when_up(port), data.clone()), data);
    server.assert_running();
    let err = server.stop();
    assert!(err.contains("listening on 127.0.0.1:"), "{err}");
}

#[test]
fn http_get_prints_the_body_and_fails_on_404() {
    let body = random_bytes(3, 300_000);
    let (addr, server) = http_server(body.clone(), 2);
    let target = addr.to_string();
    let out = weft()
        .args([
            "run",
            "--connect",
            &target,
            "--timeout",
            "60",
            "http-get",
            &target,
            "/data",
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stdout == body,
        "body differs ({} bytes)",
        out.stdout.len()
    );
    let (code, out, err) = run(&[
        "run",
        "--connect",
        &target,
        "--timeout",
        "60",
        "http-get",
        &target,
        "/missing",
    ]);
    assert_eq!(code, 1, "{err}");
    assert_eq!(out, "not found\n");
    assert!(err.contains("404 Not Found"), "{err}");
    let requests = server.join().unwrap();
    assert!(
        requests[0].contains(&format!("Host: {target}\r\n")),
        "{}",
        requests[0]
    );
    assert!(
        requests[0].contains("Connection: close\r\n"),
        "{}",
        requests[0]
    );
}

#[test]
fn a_guest_that_stops_mid_transfer_leaves_the_peer_an_end() {
    // The peer sends an endless body; the guest is stopped by --timeout.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let target = listener.local_addr().unwrap().to_string();
    let peer = thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        conn.write_all(b"HTTP/1.1 200 OK\r\n\r\n").unwrap();
        let chunk = vec![b'x'; 64 * 1024];
        let start = Instant::now();
        while conn.write_all(&chunk).is_ok() {
            assert!(start.elapsed() < Duration::from_secs(60), "never ended");
        }
    });
    let (code, _, err) = run(&[
        "run",
        "--connect",
        &target,
        "--timeout",
        "3",
        "http-get",
        &target,
        "/endless",
    ]);
    assert_eq!(code, 124, "{err}");
    peer.join().unwrap();
}

#[test]
fn udp_echo_returns_each_datagram_to_its_sender() {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut server = Server::start(&[
        "run",
        "--listen",
        &listen,
        "--timeout",
        "120",
        "udp-echo",
        &port.to_string(),
    ]);
    echo_datagrams(&listen);
    server.assert_running();
    let err = server.stop();
    assert!(err.contains(&format!("bound to {listen}")), "{err}");
}

/// The Wasm twin of `udp-echo` (the `weft` module's `udp_*` imports,
/// PROTOCOL.md §13.3) bound on a granted address, echoing a host client;
/// without a grant its bind is refused and it says so.
#[test]
fn the_wasm_udp_echo_app_returns_each_datagram_to_its_sender() {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let app = wasm("udp-echo-app");
    let mut server = Server::start(&[
        "run",
        "--listen",
        &listen,
        "--timeout",
        "120",
        &app,
        &port.to_string(),
        "127.0.0.1",
    ]);
    echo_datagrams(&listen);
    server.assert_running();
    let err = server.stop();
    assert!(
        err.contains(&format!("udp-echo-app: bound to {listen}")),
        "{err}"
    );

    let (code, _, err) = run(&["run", "--timeout", "60", &app, "8080"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("udp-echo-app: bind 0.0.0.0:8080: Permission denied"),
        "{err}"
    );
}

#[test]
fn listening_and_connecting_without_a_grant_are_refused_naming_the_address() {
    let (code, _, err) = run(&["run", "--timeout", "60", "echo-server", "8080"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("0.0.0.0:8080"), "{err}");
    assert!(
        err.contains("not allowed") && err.contains("--listen"),
        "{err}"
    );

    let (code, _, err) = run(&["run", "--timeout", "60", "udp-echo", "8080"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("0.0.0.0:8080") && err.contains("--listen"),
        "{err}"
    );

    let (code, _, err) = run(&[
        "run",
        "--connect",
        "127.0.0.1:1",
        "--timeout",
        "60",
        "http-get",
        "127.0.0.1:9",
        "/",
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("127.0.0.1:9"), "{err}");
    assert!(
        err.contains("not allowed") && err.contains("--connect"),
        "{err}"
    );

    // Granted, but nothing listens there.
    let closed = format!("127.0.0.1:{}", free_port());
    let (code, _, err) = run(&[
        "run",
        "--connect",
        &closed,
        "--timeout",
        "60",
        "http-get",
        &closed,
        "/",
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("connection refused"), "{err}");
}

/// Runs `curl` with `args`; returns its exit status and output.
fn curl(args: &[&str]) -> (i32, Vec<u8>) {
    let out = std::process::Command::new("curl")
        .args(["--silent", "--show-error", "--max-time", "60"])
        .args(args)
        .output()
        .expect("run curl (make setup installs it)");
    (out.status.code().unwrap_or(-1), out.stdout)
}

/// `httpd` serving `root` (`--read-only` if `read_only`), and its port.
fn start_httpd(root: &std::path::Path, read_only: bool) -> (Server, u16) {
    let port = free_port();
    let (root, listen, port_arg) = (
        root.display().to_string(),
        format!("127.0.0.1:{port}"),
        port.to_string(),
    );
    let mut args = vec!["run", "--fs-root", &root];
    if read_only {
        args.push("--read-only");
    }
    args.extend(["--listen", &listen, "--timeout", "300", "httpd", &port_arg]);
    (Server::start(&args), port)
}

#[test]
fn curl_fetches_files_from_httpd_and_gets_404_and_403() {
    let base = TempDir::new("httpd");
    let root = base.join("root");
    std::fs::create_dir_all(root.join("docs")).unwrap();
    let blob = random_bytes(9, 2 << 20);
    std::fs::write(root.join("docs/blob.bin"), &blob).unwrap();
    std::fs::write(root.join("index.html"), b"<h1>weft</h1>\n").unwrap();
    let secret = base.join("secret");
    std::fs::write(&secret, b"outside the root\n").unwrap();
    let (mut server, port) = start_httpd(&root, true);
    drop(connect_when_up(port));
    let url = |path: &str| format!("http://127.0.0.1:{port}{path}");

    let (code, body) = curl(&[&url("/docs/blob.bin")]);
    assert_eq!(code, 0);
    assert!(body == blob, "blob differs ({} bytes)", body.len());
    let (_, body) = curl(&[&url("/")]);
    assert_eq!(body, b"<h1>weft</h1>\n");
    let (_, listing) = curl(&[&url("/docs/")]);
    assert_eq!(listing, b"blob.bin\n");
    let status = |path: &str| {
        let (_, s) = curl(&[
            "--path-as-is",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &url(path),
        ]);
        String::from_utf8(s).unwrap()
    };
    assert_eq!(status("/missing.txt"), "404");
    let name = secret.file_name().unwrap().to_str().unwrap().to_owned();
    assert_eq!(status(&format!("/../{name}")), "403");
    assert_eq!(status(&format!("/docs/../../{name}")), "403");
    let (_, head) = curl(&["-I", &url("/docs/blob.bin")]);
    let head = String::from_utf8_lossy(&head).into_owned();
    assert!(head.contains("Content-Length: 2097152"), "{head}");
    server.assert_running();
    drop(server);
}

#[test]
fn bytes_written_just_before_the_program_ends_still_arrive() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    const LEN: usize = 8 << 20;
    let reader = thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        // A slow reader: when the program ends, the socket's buffers and
        // the ring are full.
        let mut got = Vec::new();
        let mut buf = [0u8; 32 * 1024];
        loop {
            thread::sleep(Duration::from_millis(2));
            match conn.read(&mut buf).unwrap() {
                0 => return got,
                n => got.extend_from_slice(&buf[..n]),
            }
        }
    });
    let (code, _, err) = run(&[
        "run",
        "--connect",
        &addr,
        "--timeout",
        "60",
        &common::guest_program("tcp-send"),
        &addr,
        &LEN.to_string(),
    ]);
    assert_eq!(code, 0, "{err}");
    let got = reader.join().unwrap();
    assert_eq!(got.len(), LEN);
    assert!(
        got.iter()
            .enumerate()
            .all(|(i, &b)| b == ((i % 4096) % 251) as u8)
    );
}

#[test]
fn taking_a_connection_that_is_not_there_is_answered_with_an_error_frame() {
    let (code, out, err) = run(&[
        "run",
        "--timeout",
        "60",
        "--listen",
        "127.0.0.1:0",
        &common::guest_program("stream-errors"),
        "accept",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    // The listener is the first stream the control pipe opened (slot 4).
    assert!(
        out.contains(
            "never announced: Some(Closed) (no connection 99 waits on listener stream 4: \
             never announced, already taken, or not a listener of this process)\n"
        ),
        "{out}"
    );
    assert!(
        out.contains(
            "no listener: Some(Closed) (no connection 0 waits on listener stream 2: \
             never announced, already taken, or not a listener of this process)\n"
        ),
        "{out}"
    );
}

#[test]
fn a_corrupted_connection_ring_ends_that_connection_with_protocol() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    // The guest connects, corrupts the connection's ring, then connects
    // again: the cue for the peer to send a byte on the first. The monitor
    // reads the ring's header when it has bytes to deliver, finds the
    // corruption and drops the connection (the peer reads end-of-file).
    let peer = thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let (_cue, _) = listener.accept().unwrap();
        conn.write_all(b"x").unwrap();
        let _ = conn.read(&mut [0u8; 1]);
    });
    let (code, out, err) = run(&[
        "run",
        "--timeout",
        "60",
        "--connect",
        &addr,
        &common::guest_program("stream-errors"),
        "corrupt",
        &addr,
    ]);
    peer.join().unwrap();
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains(
            "corrupted; second connection: true\n\
             read: Some(Protocol) (the monitor ended the stream)\n"
        ),
        "{out}"
    );
    assert!(
        err.contains(
            "weft: stream 4 closed: protocol violation: to_guest ring: \
             ring peer violated the protocol"
        ),
        "{err}"
    );
}

/// Reads one HTTP response from `conn`: its head and its body (by its
/// `Content-Length`).
fn read_response(conn: &mut TcpStream) -> (String, Vec<u8>) {
    let mut raw = Vec::new();
    let mut byte = [0u8; 1];
    while !raw.ends_with(b"\r\n\r\n") {
        assert_eq!(conn.read(&mut byte).unwrap(), 1, "cut short: {raw:?}");
        raw.push(byte[0]);
    }
    let head = String::from_utf8(raw).unwrap();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .unwrap()
        .parse()
        .unwrap();
    let mut body = vec![0u8; len];
    conn.read_exact(&mut body).unwrap();
    (head, body)
}

#[test]
fn httpd_keeps_connections_answers_pipelined_requests_and_sees_changed_files() {
    let root = TempDir::new("httpd-keep");
    std::fs::write(root.join("a.txt"), b"first\n").unwrap();
    let big = random_bytes(3, 300 << 10);
    std::fs::write(root.join("big.bin"), &big).unwrap();
    let (mut server, port) = start_httpd(&root, false);
    let mut conn = connect_when_up(port);
    // Two requests in one write: two answers, in order, the connection kept.
    conn.write_all(
        b"GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\nGET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .unwrap();
    let (head, body) = read_response(&mut conn);
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(head.contains("Connection: keep-alive\r\n"), "{head}");
    assert_eq!(body, b"first\n");
    let (_, body) = read_response(&mut conn);
    assert!(body == big, "big.bin differs");
    // A changed file is served as it is now once the cache looks at it
    // again (within a second of the change).
    std::fs::write(root.join("a.txt"), b"second, longer\n").unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    conn.write_all(b"GET /a.txt HTTP/1.1\r\n\r\n").unwrap();
    assert_eq!(read_response(&mut conn).1, b"second, longer\n");
    // Asking to close: the answer says so, and the connection ends.
    conn.write_all(b"GET /missing HTTP/1.1\r\nConnection: close\r\n\r\n")
        .unwrap();
    let (head, _) = read_response(&mut conn);
    assert!(head.starts_with("HTTP/1.1 404 "), "{head}");
    assert!(head.contains("Connection: close\r\n"), "{head}");
    assert_eq!(conn.read(&mut [0u8; 16]).unwrap(), 0);
    // HTTP/1.0 closes unless asked to keep the connection.
    let mut old = connect_when_up(port);
    old.write_all(b"GET /a.txt HTTP/1.0\r\n\r\n").unwrap();
    let (head, _) = read_response(&mut old);
    assert!(head.contains("Connection: close\r\n"), "{head}");
    assert_eq!(old.read(&mut [0u8; 16]).unwrap(), 0);
    server.assert_running();
    drop(server);
}
