//! Capturing an event app between batches and restoring it elsewhere
//! (PROTOCOL.md §19): the restored app goes on exactly as the one that
//! never moved.

use crate::{Fake, module, printer, run};
use std::rc::Rc;
use weft_control::app::{DEFAULT_MEMORY_LIMIT, FIRST_PID};
use weft_control::snapshot::{self, SnapshotError};
use weft_wasm_run::app::{App, Spawn};
use weft_wasm_run::snapshot::{CaptureError, RestoreError, capture, restore};
use weft_wasm_run::system::System;
use weft_wasm_run::{events, sched};

/// The module's SHA-256, as the monitor would state it (any 32 bytes do
/// here: the runtime only compares them).
pub const MODULE: [u8; 32] = [7; 32];
/// The delay of each of the app's timers.
pub const TICK: u64 = 1000;
/// Events the app counts before it reports and ends.
const EVENTS: u32 = 10;

/// An event app whose state is a running FNV-1a hash (a global no one
/// exports) over the tokens of the timer events it has seen, their count,
/// a float, and a record of each hash in memory it grew at its start. Each
/// batch sets the next timer; after [`EVENTS`] events it prints the hash,
/// the float and the sum of what memory holds (24 bytes), and ends.
pub fn stateful() -> Vec<u8> {
    module(&format!(
        r#"(global $hash (mut i64) (i64.const 0xcbf29ce484222325))
           (global $count (mut i32) (i32.const 0))
           (global $f (mut f64) (f64.const 0.5))
           (func (export "_start")
             (drop (call $event_buffer (i32.const 1024) (i32.const 4)))
             (drop (memory.grow (i32.const 3)))
             (i64.store (i32.const 131072) (i64.const 77))
             (drop (call $timer (i64.const 1) (i64.const {TICK}))))
           (func (export "weft_on_events") (param $n i32) (local $i i32)
             (loop $each
               (global.set $hash (i64.mul
                 (i64.xor (global.get $hash)
                   (i64.load (i32.add (i32.const 1032) (i32.mul (local.get $i) (i32.const 16)))))
                 (i64.const 0x100000001b3)))
               (global.set $count (i32.add (global.get $count) (i32.const 1)))
               (global.set $f (f64.add (global.get $f) (f64.convert_i32_u (global.get $count))))
               (i64.store (i32.add (i32.const 196608) (i32.shl (global.get $count) (i32.const 3)))
                 (global.get $hash))
               (local.set $i (i32.add (local.get $i) (i32.const 1)))
               (br_if $each (i32.lt_u (local.get $i) (local.get $n))))
             (if (i32.lt_u (global.get $count) (i32.const {EVENTS}))
               (then (drop (call $timer
                 (i64.extend_i32_u (i32.add (global.get $count) (i32.const 1)))
                 (i64.const {TICK}))))
               (else
                 (i64.store (i32.const 512) (global.get $hash))
                 (f64.store (i32.const 520) (global.get $f))
                 (i64.store (i32.const 528) (call $sum))
                 (drop (call $print (i32.const 1) (i32.const 512) (i32.const 24))))))
           (func $sum (result i64) (local $i i32) (local $s i64)
             (loop $l
               (local.set $i (i32.add (local.get $i) (i32.const 1)))
               (local.set $s (i64.add (local.get $s)
                 (i64.load (i32.add (i32.const 196608) (i32.shl (local.get $i) (i32.const 3))))))
               (br_if $l (i32.lt_u (local.get $i) (i32.const {EVENTS}))))
             (i64.add (local.get $s) (i64.load (i32.const 131072))))"#
    ))
}

/// Loads `wasm` as the first app of a new runtime over `fake`.
pub fn first(fake: &Fake, wasm: &[u8]) -> (Rc<System<Fake>>, App<Fake>) {
    first_granted(fake, wasm, Vec::new())
}

/// [`first`], with the listeners `grants` preopened.
fn first_granted(
    fake: &Fake,
    wasm: &[u8],
    grants: Vec<std::net::SocketAddr>,
) -> (Rc<System<Fake>>, App<Fake>) {
    let system = System::new(fake.clone()).unwrap();
    let spawn = Spawn {
        pid: system.next_pid(),
        bytes: wasm,
        args: vec![b"app.wasm".to_vec(), b"x".to_vec()],
        grants,
        memory_limit: DEFAULT_MEMORY_LIMIT as usize,
    };
    let app = system.load(0, spawn).map_err(|e| e.to_string()).unwrap();
    (system, app)
}

/// Runs `app` until it has handled `batches` batches of events (its entry
/// point first), moving `fake`'s clock on when it waits for a timer.
pub fn handle(fake: &Fake, app: &mut App<Fake>, batches: usize) {
    let mut seen = 0;
    loop {
        while app.runnable() {
            assert!(app.step().is_none(), "the app ended");
        }
        if seen == batches {
            return;
        }
        match events::deliver(app) {
            Some(true) => seen += 1,
            Some(false) => fake.0.borrow_mut().now += TICK / 4,
            None => panic!("nothing can wake the app"),
        }
    }
}

/// The snapshot of `app`.
pub fn captured(app: &mut App<Fake>) -> Result<Vec<u8>, CaptureError> {
    let mut out = Vec::new();
    let len = capture(app, MODULE, |b: &[u8]| out.extend_from_slice(b))?;
    assert_eq!(len as usize, out.len());
    Ok(out)
}

#[test]
fn a_restored_app_goes_on_as_if_it_never_moved() {
    let wasm = stateful();
    let reference = Fake::new();
    assert_eq!(run(&reference, &wasm, &["x"]), 0);
    let expected = reference.0.borrow().stdout.clone();
    assert_eq!(expected.len(), 24);

    // Moved after each number of batches, once from the source, then again
    // after one more (the last batch is the destination's).
    for hop in 0..EVENTS as usize - 1 {
        let source = Fake::new();
        let (_, mut app) = first(&source, &wasm);
        handle(&source, &mut app, hop);
        let snap = captured(&mut app).unwrap();
        assert!(snapshot::check(&snap).is_ok());

        let middle = Fake::new();
        middle.0.borrow_mut().now = 5_000_000;
        let system = System::new(middle.clone()).unwrap();
        let mut app = restore(&system, 0, &wasm, MODULE, &snap, Vec::new()).unwrap();
        assert_eq!(app.pid(), FIRST_PID);
        assert_eq!(app.name, "app.wasm");
        handle(&middle, &mut app, 1);
        let snap = captured(&mut app).unwrap();

        let destination = Fake::new();
        let system = System::new(destination.clone()).unwrap();
        let app = restore(&system, 0, &wasm, MODULE, &snap, Vec::new()).unwrap();
        assert_eq!(sched::run(&system, app, None), 0, "hop {hop}");
        assert_eq!(destination.0.borrow().stdout, expected, "hop {hop}");
        // A timer keeps the time it had left: the first sleep of the
        // destination waits what the source had not waited yet.
        let sleeps = destination.0.borrow().sleeps.clone();
        assert!(sleeps.iter().all(|s| *s <= Some(TICK)), "{sleeps:?}");
    }
}

#[test]
fn a_snapshot_skips_zero_memory_and_keeps_the_hidden_globals() {
    let wasm = stateful();
    let fake = Fake::new();
    let (_, mut app) = first(&fake, &wasm);
    handle(&fake, &mut app, 3);
    let snap = captured(&mut app).unwrap();
    // Four pages of memory, mostly zero.
    assert!(snap.len() < 6 * snapshot::CHUNK, "{} bytes", snap.len());
    let contents = snapshot::read(&snap).unwrap();
    assert_eq!(contents.memory.map(|m| m.pages()), Some(4));
    let globals: Vec<_> = contents.globals.iter().map(|g| (g.index, g.ty)).collect();
    use snapshot::ValType::{F64, I32, I64};
    assert_eq!(globals, [(0, I64), (1, I32), (2, F64)]);
    let count = contents.globals.iter().nth(1).unwrap().bits;
    assert_eq!(count, 3);
}

#[test]
fn what_cannot_move_is_refused_with_why() {
    let fake = Fake::new();
    // A command, inside its entry point.
    let (_, mut command) = first(&fake, &printer("hi"));
    assert!(matches!(captured(&mut command), Err(CaptureError::Command)));
    // An event app inside a batch.
    let (_, mut app) = first(&fake, &stateful());
    assert!(matches!(captured(&mut app), Err(CaptureError::Busy)));
    handle(&fake, &mut app, 0);
    assert!(captured(&mut app).is_ok());
    // A module that changes a table moves now (`tables.rs`); one with a
    // start function does not.
    for (body, moves) in [
        (
            r#"(table 1 funcref) (func (export "t") (table.set 0 (i32.const 0) (ref.null func)))"#,
            true,
        ),
        ("(func $s) (start $s)", false),
    ] {
        let wasm = module(&format!(
            r#"{body}
               (func (export "_start") (drop (call $timer (i64.const 1) (i64.const 1000))))
               (func (export "weft_on_events") (param i32))"#
        ));
        let (_, mut app) = first(&fake, &wasm);
        handle(&fake, &mut app, 0);
        match captured(&mut app) {
            Ok(_) => assert!(moves, "{body}"),
            Err(error) => {
                assert!(!moves, "{body}: {error}");
                assert!(matches!(error, CaptureError::Start), "{body}: {error}");
            }
        }
    }
}

#[test]
fn a_bad_or_foreign_snapshot_is_refused() {
    let wasm = stateful();
    let fake = Fake::new();
    let (_, mut app) = first(&fake, &wasm);
    handle(&fake, &mut app, 2);
    let snap = captured(&mut app).unwrap();
    let system = System::new(Fake::new()).unwrap();
    let other = restore(&system, 0, &wasm, [8; 32], &snap, Vec::new()).map(|_| ());
    assert!(matches!(other, Err(RestoreError::OtherModule)));
    let mut bent = snap.clone();
    bent[snapshot::HEADER + 20] ^= 1;
    let bad = restore(&system, 0, &wasm, MODULE, &bent, Vec::new()).map(|_| ());
    assert!(
        matches!(
            bad,
            Err(RestoreError::Snapshot(SnapshotError::Checksum { .. }))
        ),
        "{bad:?}"
    );
    // A pid that runs here already is refused.
    let small = module(r#"(func (export "_start")) (func (export "weft_on_events") (param i32))"#);
    let (_, mut tiny) = first(&fake, &small);
    handle(&fake, &mut tiny, 0);
    let tiny = captured(&mut tiny).unwrap();
    let restored = restore(&system, 0, &wasm, MODULE, &tiny, Vec::new()).unwrap();
    let taken = restore(&system, 0, &wasm, MODULE, &snap, Vec::new()).map(|_| ());
    assert!(matches!(taken, Err(RestoreError::PidTaken(1))), "{taken:?}");
    drop(restored);
}

#[test]
fn a_granted_listener_not_yet_bound_stays_with_its_device() {
    // Preopened at 4 and never used: the device's, as the root is.
    let fake = Fake::new();
    let here = "127.0.0.1:9000".parse().unwrap();
    let (_, mut app) = first_granted(&fake, &stateful(), vec![here]);
    handle(&fake, &mut app, 1);
    let snap = captured(&mut app).expect("a grant does not hold the app");
    // The destination preopens its own grants for the restored app.
    let there = Fake::new();
    let system = System::new(there.clone()).unwrap();
    let elsewhere = "127.0.0.1:9100".parse().unwrap();
    let mut app = restore(&system, 0, &stateful(), MODULE, &snap, vec![elsewhere]).unwrap();
    handle(&there, &mut app, 1);
    assert!(captured(&mut app).is_ok());
}
