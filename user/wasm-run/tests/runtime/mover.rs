//! The move stream (PROTOCOL.md §19.3): the first app starts afresh or
//! from a snapshot as the monitor says, is captured between two batches,
//! held, then released or ended; and whatever the monitor sends wrong ends
//! the moves, not the app.

use crate::fake::{MovePipe, Said};
use crate::snapshot::{MODULE, TICK, captured, handle, stateful};
use crate::{Fake, module, run, sleeper, spinner, supervisor};
use weft_control::app::DEFAULT_MEMORY_LIMIT;
use weft_control::move_proto::{MAX_PART, Order, PART, kind};
use weft_control::snapshot;
use weft_wasm_run::app::Spawn;
use weft_wasm_run::engine::FUEL_SLICE;
use weft_wasm_run::system::System;
use weft_wasm_run::{UNUSABLE, snapshot::capture};

/// What a case's monitor sends.
type Script<'a> = Box<dyn Fn(&mut MovePipe) + 'a>;

/// What `wasm` prints when it runs without a move stream.
fn unmoved(wasm: &[u8]) -> Vec<u8> {
    let fake = Fake::new();
    assert_eq!(run(&fake, wasm, &["x"]), 0);
    let out = fake.0.borrow().stdout.clone();
    assert!(!out.is_empty());
    out
}

/// A snapshot of the stateful app after `batches` batches.
fn snapshot_after(batches: usize) -> Vec<u8> {
    let fake = Fake::new();
    let (_, mut app) = crate::snapshot::first(&fake, &stateful());
    handle(&fake, &mut app, batches);
    captured(&mut app).unwrap()
}

/// Orders a restore of `snap` whole, in parts of `size` bytes.
fn restore(m: &mut MovePipe, snap: &[u8], size: usize) {
    let len = snap.len() as u64;
    m.order(
        0,
        Order::Restore {
            module: MODULE,
            len,
        },
    )
    .parts(0, snap, size);
}

/// The runtime's own reports on standard error.
fn reports(fake: &Fake) -> Vec<String> {
    fake.0.borrow().reports.clone()
}

#[test]
fn an_app_captured_and_ended_goes_on_where_it_is_restored() {
    let wasm = stateful();
    let expected = unmoved(&wasm);
    // Captured between its third and fourth batch, restored on a second
    // device, captured there after three more, restored on a third.
    let source = Fake::new();
    source.moves(|m| {
        m.order(0, Order::Start { module: MODULE })
            .order(3 * TICK + TICK / 2, Order::Capture { wait_ms: 100 })
            .order(5 * TICK, Order::End);
    });
    assert_eq!(run(&source, &wasm, &["x"]), 0);
    // It moved before its last batch: what it prints then is not here.
    assert!(source.0.borrow().stdout.is_empty());
    let [Said::Captured(snap)] = &source.said()[..] else {
        panic!("{:?}", source.said());
    };
    snapshot::check(snap).unwrap();

    let middle = Fake::new();
    middle.0.borrow_mut().now = 5_000_000;
    middle.moves(|m| {
        restore(m, snap, 100);
        m.order(
            5_000_000 + 2 * TICK + TICK / 2,
            Order::Capture { wait_ms: 0 },
        )
        .order(5_000_000 + 4 * TICK, Order::End);
    });
    assert_eq!(run(&middle, &wasm, &["ignored"]), 0);
    assert!(middle.0.borrow().stdout.is_empty());
    let [Said::Restored, Said::Captured(snap)] = &middle.said()[..] else {
        panic!("{:?}", middle.said());
    };

    // Told first that a snapshot of about its size comes (PREPARE), as a
    // runtime started ahead of it is: it answers READY.
    let destination = Fake::new();
    destination.moves(|m| {
        m.order(
            0,
            Order::Prepare {
                len: snap.len() as u64,
            },
        );
        restore(m, snap, MAX_PART);
    });
    assert_eq!(run(&destination, &wasm, &["ignored"]), 0);
    assert_eq!(destination.0.borrow().stdout, expected);
    assert_eq!(destination.said(), [Said::Ready, Said::Restored]);
    assert!(reports(&destination).is_empty());
}

#[test]
fn a_released_app_goes_on_with_the_events_that_waited() {
    let wasm = stateful();
    let expected = unmoved(&wasm);
    let fake = Fake::new();
    // Held from its fourth timer's deadline until long after its tenth's.
    fake.moves(|m| {
        m.order(0, Order::Start { module: MODULE })
            .order(3 * TICK + TICK / 2, Order::Capture { wait_ms: 0 })
            .order(40 * TICK, Order::Release);
    });
    assert_eq!(run(&fake, &wasm, &["x"]), 0);
    assert_eq!(fake.0.borrow().stdout, expected);
    assert!(matches!(&fake.said()[..], [Said::Captured(_)]));
    assert!(fake.0.borrow().now >= 40 * TICK);
    assert!(reports(&fake).is_empty());
}

#[test]
fn a_held_app_is_released_when_the_monitor_goes_away() {
    let wasm = stateful();
    let expected = unmoved(&wasm);
    let fake = Fake::new();
    fake.moves(|m| {
        m.order(0, Order::Start { module: MODULE })
            .order(3 * TICK + TICK / 2, Order::Capture { wait_ms: 0 })
            .ends = Some(10 * TICK);
    });
    assert_eq!(run(&fake, &wasm, &["x"]), 0);
    assert_eq!(fake.0.borrow().stdout, expected);
    assert!(matches!(&fake.said()[..], [Said::Captured(_)]));
    let reports = reports(&fake);
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert!(
        reports[0].starts_with("weft: app.wasm: cannot move any more: the move stream failed"),
        "{reports:?}"
    );
}

#[test]
fn a_snapshot_goes_in_parts_of_at_most_max_part_bytes() {
    // 300 000 bytes of memory that are not zero: two parts at least.
    let wasm = module(
        r#"(func (export "_start")
             (drop (call $event_buffer (i32.const 1024) (i32.const 4)))
             (drop (memory.grow (i32.const 5)))
             (memory.fill (i32.const 4096) (i32.const 0xAB) (i32.const 300000))
             (drop (call $timer (i64.const 1) (i64.const 1000))))
           (func (export "weft_on_events") (param i32)
             (drop (call $print (i32.const 1) (i32.const 300000) (i32.const 4))))"#,
    );
    let source = Fake::new();
    source.moves(|m| {
        m.order(0, Order::Start { module: MODULE })
            .order(0, Order::Capture { wait_ms: 100 })
            .order(TICK, Order::End);
    });
    assert_eq!(run(&source, &wasm, &[]), 0);
    let [Said::Captured(snap)] = &source.said()[..] else {
        panic!("{:?}", source.said());
    };
    assert!(snap.len() > PART);
    let parts = source.0.borrow().mover.as_ref().unwrap().sent.len() - 1;
    assert_eq!(parts, snap.len().div_ceil(PART));
    snapshot::check(snap).unwrap();

    // Told first that a snapshot of about its size comes (PREPARE), as a
    // runtime started ahead of it is: it answers READY.
    let destination = Fake::new();
    destination.moves(|m| {
        m.order(
            0,
            Order::Prepare {
                len: snap.len() as u64,
            },
        );
        restore(m, snap, MAX_PART);
    });
    assert_eq!(run(&destination, &wasm, &[]), 0);
    assert_eq!(destination.0.borrow().stdout, [0xAB; 4]);
    assert_eq!(destination.said(), [Said::Ready, Said::Restored]);
}

#[test]
fn a_command_cannot_move_and_runs_on() {
    let fake = Fake::new();
    fake.moves(|m| {
        m.order(0, Order::Start { module: MODULE })
            .order(0, Order::Capture { wait_ms: 60_000 });
    });
    assert_eq!(run(&fake, &spinner(3, "done"), &[]), 0);
    assert_eq!(fake.stdout(), "done");
    let said = fake.said();
    let [Said::Failed(why)] = &said[..] else {
        panic!("{said:?}");
    };
    assert!(why.starts_with("a command cannot move"), "{why}");
}

#[test]
fn an_app_with_children_running_cannot_move() {
    let sleeper = sleeper();
    let fake = Fake::new();
    fake.file("/sleep.wasm", &sleeper);
    fake.moves(|m| {
        m.order(0, Order::Start { module: MODULE })
            .order(0, Order::Capture { wait_ms: 1000 });
    });
    assert_eq!(run(&fake, &supervisor(&["/sleep.wasm"]), &[]), 0);
    assert_eq!(fake.stdout(), "woke\n");
    assert_eq!(
        fake.said(),
        [Said::Failed(
            "it has 1 child apps running, which cannot move".into()
        )]
    );
}

#[test]
fn a_capture_waits_for_the_batch_and_fails_busy_when_its_wait_runs_out() {
    // A batch that spins for 10 slices or more on a clock that moves 1 ms
    // at each reading (at least 3 ms a slice), and a capture ordered while
    // it spins: one that waits 2 ms fails, one that waits a minute takes
    // the app after its batch.
    let delay = 10_000_000;
    let iterations = 10 * FUEL_SLICE;
    let spinning = module(&format!(
        r#"(data (i32.const 256) "spun")
           (func (export "_start")
             (drop (call $event_buffer (i32.const 1024) (i32.const 4)))
             (drop (call $timer (i64.const 1) (i64.const {delay}))))
           (func (export "weft_on_events") (param i32) (local $i i64)
             (loop $spin
               (local.set $i (i64.add (local.get $i) (i64.const 1)))
               (br_if $spin (i64.lt_u (local.get $i) (i64.const {iterations}))))
             (drop (call $print (i32.const 1) (i32.const 256) (i32.const 4))))"#
    ));
    for wait_ms in [2, 60_000] {
        let fake = Fake::new();
        fake.0.borrow_mut().tick = 1_000_000;
        fake.moves(|m| {
            m.order(0, Order::Start { module: MODULE })
                .order(delay + 10_000_000, Order::Capture { wait_ms })
                .order(1_000 * delay, Order::End);
        });
        assert_eq!(run(&fake, &spinning, &[]), 0);
        assert_eq!(fake.stdout(), "spun");
        let said = fake.said();
        match wait_ms {
            2 => assert_eq!(
                said,
                [Said::Failed(
                    "busy: it is handling events (waited 2 ms)".into()
                )]
            ),
            _ => assert!(matches!(&said[..], [Said::Captured(_)]), "{said:?}"),
        }
    }

    // A batch waiting in `poll_oneoff` for a second: the runtime sleeps
    // only until the capture's wait runs out.
    let polling = module(
        r#"(data (i32.const 256) "woke")
           (func (export "_start")
             (drop (call $event_buffer (i32.const 1024) (i32.const 4)))
             (drop (call $timer (i64.const 1) (i64.const 1000))))
           (func (export "weft_on_events") (param i32)
             (i32.store (i32.const 528) (i32.const 1))
             (i64.store (i32.const 536) (i64.const 1000000000))
             (drop (call $poll_oneoff (i32.const 512) (i32.const 2048) (i32.const 1) (i32.const 16)))
             (drop (call $print (i32.const 1) (i32.const 256) (i32.const 4))))"#,
    );
    let fake = Fake::new();
    fake.moves(|m| {
        m.order(0, Order::Start { module: MODULE });
    })
    // The first sleep waits for the timer, the second is in the batch.
    .on_sleep(|s| s.now += 1000)
    .on_sleep(|s| {
        let now = s.now;
        let m = s.mover.as_mut().unwrap();
        m.order(now, Order::Capture { wait_ms: 7 });
    });
    assert_eq!(run(&fake, &polling, &[]), 0);
    assert_eq!(fake.stdout(), "woke");
    assert_eq!(
        fake.said(),
        [Said::Failed(
            "busy: it is handling events (waited 7 ms)".into()
        )]
    );
    assert_eq!(fake.0.borrow().sleeps[2], Some(7_000_000));
}

#[test]
fn a_snapshot_that_cannot_be_restored_fails_the_runtime() {
    let wasm = stateful();
    let snap = snapshot_after(2);
    let mut bent = snap.clone();
    bent[snapshot::HEADER + 20] ^= 1;
    // The same app as process 2: not a runtime's first.
    let second = {
        let fake = Fake::new();
        let system = System::new(fake.clone()).unwrap();
        let spawn = Spawn {
            pid: 2,
            bytes: &wasm,
            args: vec![b"app.wasm".to_vec()],
            grants: Vec::new(),
            memory_limit: DEFAULT_MEMORY_LIMIT as usize,
        };
        let mut app = system.load(1, spawn).map_err(|e| e.to_string()).unwrap();
        handle(&fake, &mut app, 0);
        let mut out = Vec::new();
        capture(&mut app, MODULE, |b: &[u8]| out.extend_from_slice(b)).unwrap();
        out
    };
    let len = snap.len() as u64;
    let cases: Vec<(&str, Script<'_>)> = vec![
        (
            "not a usable snapshot: ",
            Box::new(|m: &mut MovePipe| restore(m, &bent, 1000)),
        ),
        (
            "the snapshot is of another module",
            Box::new(|m: &mut MovePipe| {
                m.order(
                    0,
                    Order::Restore {
                        module: [8; 32],
                        len,
                    },
                )
                .parts(0, &snap, 1000);
            }),
        ),
        (
            "its app is process 2, not a runtime's first (1)",
            Box::new(|m: &mut MovePipe| restore(m, &second, 1000)),
        ),
        (
            "the monitor broke the move protocol: parts of more than the",
            Box::new(|m: &mut MovePipe| {
                m.order(
                    0,
                    Order::Restore {
                        module: MODULE,
                        len: len - 1,
                    },
                )
                .parts(0, &snap, 1000);
            }),
        ),
        (
            "the monitor broke the move protocol: CAPTURE inside a restore's parts",
            Box::new(|m: &mut MovePipe| {
                m.order(
                    0,
                    Order::Restore {
                        module: MODULE,
                        len,
                    },
                )
                .parts(0, &snap[..100], 100)
                .order(0, Order::Capture { wait_ms: 0 });
            }),
        ),
        (
            "the move stream failed: ",
            Box::new(|m: &mut MovePipe| {
                m.order(
                    0,
                    Order::Restore {
                        module: MODULE,
                        len,
                    },
                )
                .parts(0, &snap[..100], 100)
                .ends = Some(0);
            }),
        ),
    ];
    for (why, script) in cases {
        let fake = Fake::new();
        fake.moves(script);
        assert_eq!(run(&fake, &wasm, &["x"]), UNUSABLE, "{why}");
        assert!(fake.0.borrow().stdout.is_empty(), "{why}");
        let said = fake.said();
        let [Said::Failed(failed)] = &said[..] else {
            panic!("{why}: {said:?}");
        };
        assert!(failed.starts_with(why), "{why}: {failed}");
        assert_eq!(
            reports(&fake),
            [format!("weft: app.wasm: cannot restore: {failed}")]
        );
    }
}

#[test]
fn a_protocol_violation_ends_the_moves_not_the_app() {
    let wasm = stateful();
    let expected = unmoved(&wasm);
    let start = Order::Start { module: MODULE };
    let capture = Order::Capture { wait_ms: 0 };
    let at = 3 * TICK + TICK / 2;
    let cases: Vec<(&str, usize, Script<'_>)> = vec![
        (
            "RELEASE where only CAPTURE may come",
            0,
            Box::new(move |m: &mut MovePipe| {
                m.order(0, start).order(at, Order::Release);
            }),
        ),
        (
            "END where only CAPTURE may come",
            0,
            Box::new(move |m: &mut MovePipe| {
                m.order(0, start).order(at, Order::End);
            }),
        ),
        (
            "START where only CAPTURE may come",
            0,
            Box::new(move |m: &mut MovePipe| {
                m.order(0, start).order(at, start);
            }),
        ),
        (
            "RESTORE_PART where only CAPTURE may come",
            0,
            Box::new(move |m: &mut MovePipe| {
                m.order(0, start).order(at, Order::Part(b"snapshot"));
            }),
        ),
        (
            "a frame that does not decode",
            0,
            Box::new(move |m: &mut MovePipe| {
                m.order(0, start).raw(at, kind::RELEASE, &[0]);
            }),
        ),
        (
            "CAPTURE while a capture is answered",
            0,
            Box::new(move |m: &mut MovePipe| {
                m.order(0, start).order(at, capture).order(at, capture);
            }),
        ),
        (
            "CAPTURE while the app is held",
            1,
            Box::new(move |m: &mut MovePipe| {
                m.order(0, start)
                    .order(at, capture)
                    .order(5 * TICK, capture);
            }),
        ),
        (
            "CAPTURE where START or RESTORE was due",
            0,
            Box::new(move |m: &mut MovePipe| {
                m.order(0, capture);
            }),
        ),
        (
            "a frame that does not decode",
            0,
            Box::new(move |m: &mut MovePipe| {
                m.raw(0, kind::START, &[0; 31]);
            }),
        ),
    ];
    for (why, captures, script) in cases {
        let fake = Fake::new();
        // A capture after the violation is never answered: the moves ended.
        fake.moves(|m| {
            script(m);
            m.order(6 * TICK + TICK / 2, capture);
        });
        assert_eq!(run(&fake, &wasm, &["x"]), 0, "{why}");
        assert_eq!(fake.0.borrow().stdout, expected, "{why}");
        let said = fake.said();
        assert_eq!(said.len(), captures, "{why}: {said:?}");
        assert!(said.iter().all(|s| matches!(s, Said::Captured(_))));
        let reports = reports(&fake);
        assert_eq!(reports.len(), 1, "{why}: {reports:?}");
        let line = "weft: app.wasm: cannot move any more: the monitor broke the move protocol: ";
        assert!(
            reports[0].starts_with(&format!("{line}{why}")),
            "{reports:?}"
        );
    }
}
