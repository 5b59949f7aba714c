//! Integration tests of `weft`'s standard output and error under a reader
//! that is slow or has stopped reading (PROTOCOL.md §8.5): real KVM guests
//! flooding standard output into a pipe this test holds open and never
//! reads. The stop (`--timeout`, SIGTERM) must still end `weft` within the
//! drain limit, the guest's other streams must keep flowing meanwhile, and
//! a reader that is merely slow must get every byte, in order.
//!
//! The bounds on how long `weft` takes are behaviours, not measurements:
//! the reader here never goes away, so a `weft` that waited for it would
//! never exit; the watchdog only turns that hang into a failure.

mod common;

use common::{connect_when_up, echo_round_trip, free_port, guest_program, random_bytes, weft};
use std::io::Read;
use std::os::fd::OwnedFd;
use std::process::{Child, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

/// What `flood` writes: far more than the rings, the queue and a pipe hold.
const FLOOD: &str = "100000000";
/// How long after the stop `weft` may take at most: the drain limit (10 s,
/// §8.5) plus a generous margin for a loaded machine.
const AFTER_STOP: Duration = Duration::from_secs(25);

/// `weft ARGS` with its standard output into a pipe nobody reads (held in
/// the returned value) and its standard error read line by line as it
/// comes (`both_stalled`: into the same unread pipe, as `2>&1 | ...` does).
struct Stalled {
    child: Child,
    /// The unread end of the pipe, open until dropped.
    _unread: OwnedFd,
    lines: mpsc::Receiver<String>,
}

impl Stalled {
    fn start(args: &[&str]) -> Self {
        let mut child = weft()
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn weft");
        let unread = child.stdout.take().expect("stdout").into();
        let lines = common::lines(child.stderr.take().expect("stderr"));
        Self {
            child,
            _unread: unread,
            lines,
        }
    }

    /// Both of `weft`'s output descriptors on one pipe nobody reads.
    fn start_both_stalled(args: &[&str]) -> Self {
        let (reader, writer) = std::io::pipe().expect("pipe");
        let child = weft()
            .args(args)
            .stdout(writer.try_clone().expect("dup the pipe"))
            .stderr(writer)
            .spawn()
            .expect("spawn weft");
        let (_, lines) = mpsc::channel();
        Self {
            child,
            _unread: reader.into(),
            lines,
        }
    }

    /// Waits for `weft` to exit, at most `limit`; kills it (and fails)
    /// otherwise. Returns its status and how long it took.
    fn wait_at_most(&mut self, limit: Duration) -> (ExitStatus, Duration) {
        common::wait_at_most(&mut self.child, limit, "while its reader stalled")
    }

    /// Every line of standard error received so far.
    fn stderr_so_far(&self) -> String {
        self.lines.try_iter().map(|l| l + "\n").collect()
    }

    fn signal(&self, name: &str) {
        let sent = std::process::Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(sent.success());
    }
}

impl Drop for Stalled {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn the_timeout_ends_weft_while_its_standard_output_is_not_read() {
    let mut weft = Stalled::start(&["run", "--timeout", "3", &guest_program("flood"), FLOOD]);
    let (status, took) = weft.wait_at_most(Duration::from_secs(3) + AFTER_STOP);
    let err = weft.stderr_so_far();
    assert_eq!(status.code(), Some(124), "after {took:?}; stderr: {err}");
    assert!(err.contains("weft: timed out after 3.0 s"), "{err}");
    assert!(err.contains("standard output"), "{err}");
    assert!(err.contains("dropped"), "{err}");
}

#[test]
fn sigterm_ends_weft_while_its_standard_output_is_not_read() {
    let mut weft = Stalled::start(&["run", "--timeout", "300", &guest_program("flood"), FLOOD]);
    // Let the guest run and the pipe, the queue and the ring fill.
    thread::sleep(Duration::from_secs(2));
    weft.signal("TERM");
    let (status, took) = weft.wait_at_most(AFTER_STOP);
    let err = weft.stderr_so_far();
    assert_eq!(status.code(), Some(143), "after {took:?}; stderr: {err}");
    assert!(err.contains("weft: stopped by signal 15"), "{err}");
}

#[test]
fn the_timeout_ends_weft_when_neither_output_is_read() {
    // `2>&1 | reader-that-never-reads`: weft's own messages at the stop
    // cannot be written either, and must not hold it.
    let mut weft =
        Stalled::start_both_stalled(&["run", "--timeout", "3", &guest_program("flood"), FLOOD]);
    let (status, took) = weft.wait_at_most(Duration::from_secs(3) + AFTER_STOP);
    assert_eq!(status.code(), Some(124), "after {took:?}");
}

#[test]
fn other_streams_flow_while_standard_output_is_stalled() {
    let root = std::path::Path::new(&guest_program("flood"))
        .parent()
        .expect("the guest build directory")
        .to_str()
        .expect("a UTF-8 path")
        .to_owned();
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut weft = Stalled::start(&[
        "run",
        "--timeout",
        "300",
        "--fs-root",
        &root,
        "--listen",
        &listen,
        "procs",
        "/flood",
        FLOOD,
        "--",
        "echo-server",
        &port.to_string(),
    ]);
    let conn = connect_when_up(port);
    conn.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("read timeout");
    // Let `flood` fill the pipe, the queue and its ring.
    thread::sleep(Duration::from_secs(2));
    let data = random_bytes(16, 1 << 20);
    let ends = format!("{:?} to {:?}", conn.local_addr(), conn.peer_addr());
    // A failed echo says what the guest and the relay said (a connection
    // either dropped is reported on standard error), and whether `weft`
    // still runs.
    let echoed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        echo_round_trip(conn, data.clone())
    }));
    let Ok(back) = echoed else {
        // What the guest or the relay reports of the failure comes a moment
        // later.
        thread::sleep(Duration::from_secs(1));
        let status = weft.child.try_wait();
        panic!(
            "the echo failed (connection {ends}; weft's exit status so far: {status:?}); \
             weft's standard error so far:\n{}",
            weft.stderr_so_far()
        );
    };
    assert!(back == data, "the echo differs ({} bytes back)", back.len());
    let err = weft.stderr_so_far();
    assert!(err.contains("echo-server: listening"), "{err}");
    // `flood` had not finished: its standard output was stalled all along.
    assert!(!err.contains("done"), "{err}");
}

#[test]
fn a_slow_reader_gets_every_byte_in_order() {
    let total = 4 << 20;
    let mut child = weft()
        .args([
            "run",
            "--timeout",
            "120",
            &guest_program("flood"),
            &total.to_string(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn weft");
    let mut out = child.stdout.take().expect("stdout");
    let mut got = Vec::with_capacity(total);
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match out.read(&mut buf).expect("read weft's output") {
            0 => break,
            n => got.extend_from_slice(&buf[..n]),
        }
        thread::sleep(Duration::from_millis(2));
    }
    let done = child.wait_with_output().expect("wait for weft");
    let err = String::from_utf8_lossy(&done.stderr);
    assert_eq!(done.status.code(), Some(0), "stderr: {err}");
    assert!(err.starts_with("done\n"), "{err}");
    assert_eq!(got.len(), total);
    let expected = (0..total).map(|i| {
        if i % 64 == 63 {
            b'\n'
        } else {
            b"0123456789abcdef"[i % 16]
        }
    });
    assert!(
        got.into_iter().eq(expected),
        "output differs from the pattern"
    );
}
