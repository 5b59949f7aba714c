//! Helpers shared by the integration tests: the `weft` binary, the guest
//! build directory, and running `weft` to completion.
#![allow(dead_code)]

pub mod resources;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

/// Runs each case of a test binary without the harness (one whose cases
/// run in child processes of their own), in order, saying so as the
/// harness would; a failing case panics.
pub fn run_cases(cases: &[(&str, fn())]) {
    for (name, test) in cases {
        println!("test {name} ...");
        test();
        println!("test {name} ... ok");
    }
    println!("test result: ok. {} passed", cases.len());
}

pub fn weft() -> Command {
    Command::new(env!("CARGO_BIN_EXE_weft"))
}

pub fn target() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../target"))
}

/// A guest program built but not bundled (test-only).
pub fn guest_program(name: &str) -> String {
    let p = target().join("x86_64-unknown-none/release").join(name);
    assert!(p.is_file(), "{} missing: run `make guest`", p.display());
    p.display().to_string()
}

/// A Wasm module built by `make guest` for wasm32-wasip1.
pub fn wasm(name: &str) -> String {
    let p = target()
        .join("wasm/wasm32-wasip1/release")
        .join(format!("{name}.wasm"));
    assert!(p.is_file(), "{} missing: run `make guest`", p.display());
    p.display().to_string()
}

/// The kernel built with the `crash-test` feature.
pub fn crash_kernel() -> String {
    let p = target().join("crash-test/x86_64-unknown-none/release/weft-kernel");
    assert!(p.is_file(), "{} missing: run `make guest`", p.display());
    p.display().to_string()
}

pub fn run(args: &[&str]) -> (i32, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = weft().args(args).output().expect("spawn weft");
    let code = status.code().expect("weft exited by a signal");
    (
        code,
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

/// A port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("probe a free port")
        .port()
}

/// Each line `from` yields, passed to the receiver as it comes (by a thread
/// that ends with the stream, or when the receiver is dropped).
pub fn lines(from: impl Read + Send + 'static) -> std::sync::mpsc::Receiver<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(from).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

/// A guest server; killed (and reaped) when dropped, so no test leaves one.
pub struct Server(Child);

impl Server {
    pub fn start(args: &[&str]) -> Self {
        let child = weft()
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn weft");
        Self(child)
    }

    /// Starts `weft ARGS` and passes each line of its standard output to
    /// the receiver as it comes.
    pub fn start_watched(args: &[&str]) -> (Self, std::sync::mpsc::Receiver<String>) {
        let mut child = weft()
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn weft");
        let rx = lines(child.stdout.take().expect("stdout"));
        (Self(child), rx)
    }

    /// Asserts the monitor is still running.
    pub fn assert_running(&mut self) {
        assert!(
            self.0.try_wait().expect("poll weft").is_none(),
            "weft exited"
        );
    }

    /// Stops the server as a user would (`SIGTERM`: `weft` ends its guest
    /// and writes out what its streams hold), killing it if it is still
    /// there after 20 s, and returns what it wrote to standard error. A
    /// kill at once could lose a guest's last lines still on their way out.
    pub fn stop(mut self) -> String {
        weft_benchkit::terminate(&mut self.0, Duration::from_secs(20));
        let mut err = String::new();
        if let Some(mut e) = self.0.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        err
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits for `child` to exit, at most `limit`: its status and how long
/// it took; kills it and fails, saying it was still running `while_`, after.
pub fn wait_at_most(
    child: &mut Child,
    limit: Duration,
    while_: &str,
) -> (std::process::ExitStatus, Duration) {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("poll weft") {
            return (status, start.elapsed());
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("weft still running {limit:?} later {while_}");
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Waits (up to a minute) for a line containing `what`; returns it.
pub fn wait_for_line(lines: &std::sync::mpsc::Receiver<String>, what: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) if line.contains(what) => return line,
            Ok(_) => {}
            Err(e) => panic!("no line containing {what:?}: {e}"),
        }
    }
}

/// Connects to `port` once the guest listens (the VM takes a moment to
/// boot).
pub fn connect_when_up(port: u16) -> TcpStream {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match TcpStream::connect(("127.0.0.1", port)) {
            Ok(s) => {
                s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
                return s;
            }
            Err(e) if Instant::now() > deadline => panic!("port {port} never opened: {e}"),
            Err(_) => thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// Deterministic pseudo-random bytes (xorshift), different per `seed`.
pub fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 32) as u8
        })
        .collect()
}

/// Sends `data` from one thread while reading the echo on this one; returns
/// what came back before end-of-file.
pub fn echo_round_trip(mut conn: TcpStream, data: Vec<u8>) -> Vec<u8> {
    let mut sender = conn.try_clone().unwrap();
    let writer = thread::spawn(move || {
        sender.write_all(&data).unwrap();
        sender.shutdown(Shutdown::Write).unwrap();
    });
    let mut back = Vec::new();
    conn.read_to_end(&mut back).unwrap();
    writer.join().unwrap();
    back
}

/// Pings the UDP echo server at `listen` from a host socket until it
/// answers, then checks that datagrams of 1 to 60,000 bytes come back
/// byte-exact.
pub fn echo_datagrams(listen: &str) {
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client.connect(listen).unwrap();
    client
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut buf = vec![0u8; 65536];
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        client.send(b"ping").unwrap();
        if let Ok(n) = client.recv(&mut buf) {
            assert_eq!(&buf[..n], b"ping");
            break;
        }
        assert!(Instant::now() < deadline, "the echo server never answered");
    }
    // Drain duplicate answers to the retried pings.
    while client.recv(&mut buf).is_ok() {}
    client
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    for (i, len) in [1, 100, 1400, 9000, 60_000].into_iter().enumerate() {
        let data = random_bytes(i as u64 + 20, len);
        client.send(&data).unwrap();
        let n = client.recv(&mut buf).expect("echo");
        assert_eq!(&buf[..n], &data[..], "datagram of {len} bytes");
    }
}

/// Serves HTTP/1.1 on a host thread: `/data` is 200 with `body`, anything
/// else 404. Answers `requests` connections, then stops.
pub fn http_server(
    body: Vec<u8>,
    requests: usize,
) -> (SocketAddr, thread::JoinHandle<Vec<String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = thread::spawn(move || {
        let mut seen = Vec::new();
        for _ in 0..requests {
            let (mut conn, _) = listener.accept().unwrap();
            conn.set_read_timeout(Some(Duration::from_secs(60)))
                .unwrap();
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.ends_with(b"\r\n\r\n") {
                let n = conn.read(&mut buf).unwrap();
                assert!(n > 0, "request ended early");
                request.extend_from_slice(&buf[..n]);
            }
            let request = String::from_utf8(request).unwrap();
            let (status, payload) = if request.starts_with("GET /data HTTP/1.1\r\n") {
                ("200 OK", body.clone())
            } else {
                ("404 Not Found", b"not found\n".to_vec())
            };
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                payload.len()
            );
            conn.write_all(head.as_bytes()).unwrap();
            conn.write_all(&payload).unwrap();
            seen.push(request);
        }
        seen
    });
    (addr, handle)
}

/// A fresh directory under the system's temporary one, named for the test
/// process, `tag` and a count (so that tests running at once get their
/// own); removed, with everything in it, when dropped, whether the test
/// passed or failed.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static MADE: AtomicUsize = AtomicUsize::new(0);
        let n = MADE.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("weft-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create a temporary directory");
        TempDir(dir)
    }
}

impl std::ops::Deref for TempDir {
    type Target = Path;

    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
