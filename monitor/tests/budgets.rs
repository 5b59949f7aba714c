//! The guest's budgets of host resources (PROTOCOL.md §20.1), in real KVM
//! guests: a process cannot hold more than its share of the guest's
//! streams, the guest no more than its own, and closed TCP streams past the
//! linger budget reset their connections instead of holding host memory and
//! descriptors for a peer that does not read.

mod common;

use common::TempDir;
use std::io::{ErrorKind, Read};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};

/// A root directory holding a file to open and the test programs, which
/// `procs` starts by path.
struct Root(TempDir);

impl Root {
    fn new(name: &str) -> Self {
        let dir = TempDir::new(&format!("budgets-{name}"));
        std::fs::write(dir.join("f"), b"budget\n").unwrap();
        for program in ["stream-errors", "tcp-send"] {
            std::fs::copy(common::guest_program(program), dir.join(program)).unwrap();
        }
        Self(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

/// How many streams each `stream-errors hog` line says it opened, if it
/// says it was refused for the budget.
fn opened(out: &str) -> Vec<usize> {
    out.lines()
        .filter_map(|l| l.strip_prefix("opened "))
        .map(|l| {
            let (n, why) = l.split_once("; ").unwrap();
            assert!(why.starts_with("refused: Some(OverBudget)"), "{l}");
            n.parse().unwrap()
        })
        .collect()
}

#[test]
fn a_process_holds_at_most_its_share_and_the_guest_its_budget() {
    let root = Root::new("share");
    let fs_root = root.path().display().to_string();
    // One process alone stops at its own limit.
    let (code, out, err) = common::run(&[
        "run",
        "--fs-root",
        &fs_root,
        "--max-process-streams",
        "5",
        &common::guest_program("stream-errors"),
        "hog",
        "/f",
        "100",
        "0",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(opened(&out), vec![5], "{out}");
    assert!(out.contains("after closing: Ok(())"), "{out}");
    // Two at once share the guest's 40: neither gets more than 30, and
    // together they hold all 40 (each holds what it got for 1.5 s).
    let (code, out, err) = common::run(&[
        "run",
        "--stats",
        "--fs-root",
        &fs_root,
        "--max-streams",
        "40",
        "--max-process-streams",
        "30",
        "procs",
        "/stream-errors",
        "hog",
        "/f",
        "100",
        "1500",
        "--",
        "/stream-errors",
        "hog",
        "/f",
        "100",
        "1500",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let counts = opened(&out);
    assert_eq!(counts.len(), 2, "{out}");
    assert!(counts.iter().all(|n| *n <= 30), "{counts:?}");
    assert_eq!(counts.iter().sum::<usize>(), 40, "{out}");
    // Closing gives the streams back.
    assert_eq!(out.matches("after closing: Ok(())").count(), 2, "{out}");
    assert!(
        err.contains("  budgets: streams=0/40 per_process=30 refused=2 "),
        "{err}"
    );
}

#[test]
fn closes_past_the_linger_budget_reset_their_connections() {
    let root = Root::new("linger");
    let fs_root = root.path().display().to_string();
    // A peer that accepts and never reads.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let accepted: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
    let keep = accepted.clone();
    std::thread::spawn(move || {
        for c in listener.incoming() {
            let Ok(c) = c else { return };
            keep.lock().unwrap().push(c);
        }
    });
    // Three senders each write more than the sockets can buffer, and are
    // killed while their rings are still full: each close has bytes left.
    let n = (32 << 20).to_string();
    let mut args = vec![
        "run",
        "--stats",
        "--fs-root",
        &fs_root,
        "--connect",
        &addr,
        "--max-lingering",
        "1",
        "procs",
        "--kill-after",
        "700",
    ];
    for i in 0..3 {
        if i > 0 {
            args.push("--");
        }
        args.extend(["/tcp-send", &addr, &n]);
    }
    let (code, out, err) = common::run(&args);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(out.matches("exited with status 137").count(), 3, "{out}");
    assert!(err.contains(" lingering_dropped=2\n"), "{err}");
    // The peers of the two closes that did not fit see a reset; the one
    // that lingered ends in order.
    let ends: Vec<ErrorKind> = accepted
        .lock()
        .unwrap()
        .iter_mut()
        .map(|c| {
            let mut sink = vec![0u8; 1 << 20];
            loop {
                match c.read(&mut sink) {
                    Ok(0) => return ErrorKind::UnexpectedEof,
                    Ok(_) => {}
                    Err(e) => return e.kind(),
                }
            }
        })
        .collect();
    assert_eq!(ends.len(), 3, "{ends:?}");
    let resets = ends
        .iter()
        .filter(|k| **k == ErrorKind::ConnectionReset)
        .count();
    assert_eq!(resets, 2, "{ends:?}");
}
