//! The scheduler: fuel slices, fairness, waits and traps (PROTOCOL.md
//! §13.6).

use crate::{Fake, batches, module, printer, run, sleeper, spinner, supervisor};
use std::rc::Rc;
use weft_control::app::{DEFAULT_MEMORY_LIMIT, EventRecord, TRAPPED_STATUS, kind};
use weft_wasm_run::app::{End, Spawn};
use weft_wasm_run::system::System;

fn exited(pid: u32, status: i32) -> EventRecord {
    EventRecord {
        kind: kind::EXITED,
        id: pid,
        value: i64::from(status) as u64,
    }
}

#[test]
fn a_call_that_uses_up_its_fuel_resumes_on_its_next_turn() {
    let fake = Fake::new();
    let system = System::new(fake.clone()).unwrap();
    let mut app = system
        .load(
            0,
            Spawn {
                pid: system.next_pid(),
                bytes: &spinner(5, "done"),
                args: vec![b"spin".to_vec()],
                grants: Vec::new(),
                memory_limit: DEFAULT_MEMORY_LIMIT as usize,
            },
        )
        .unwrap();
    let mut slices = 1;
    let end = loop {
        assert!(app.runnable());
        if let Some(end) = app.step() {
            break end;
        }
        slices += 1;
    };
    assert!(matches!(end, End::Exit(0)));
    assert!(slices >= 5, "{slices} slices");
    assert_eq!(fake.stdout(), "done");
    drop(app);
    assert_eq!(Rc::strong_count(&system), 1, "the app held the system only");
}

#[test]
fn a_spinning_app_does_not_starve_another() {
    let fake = Fake::new();
    fake.file("/spin.wasm", &spinner(20, "spun\n"))
        .file("/hello.wasm", &printer("hello\n"));
    assert_eq!(
        run(&fake, &supervisor(&["/spin.wasm", "/hello.wasm"]), &[]),
        0
    );
    assert_eq!(fake.stdout(), "hello\nspun\n");
    let records: Vec<_> = batches(&fake).concat();
    assert_eq!(records, [exited(3, 0), exited(2, 0)]);
}

#[test]
fn a_waiting_app_suspends_only_itself() {
    let sleeper = sleeper();
    let fake = Fake::new();
    fake.file("/sleep.wasm", &sleeper)
        .file("/hello.wasm", &printer("hello\n"));
    assert_eq!(
        run(&fake, &supervisor(&["/sleep.wasm", "/hello.wasm"]), &[]),
        0
    );
    assert_eq!(fake.stdout(), "hello\nwoke\n");
    assert_eq!(fake.0.borrow().sleeps, [Some(1_000_000_000)]);
}

#[test]
fn a_trap_ends_only_its_app_with_status_125() {
    let trap = module(r#"(func $boom unreachable) (func (export "_start") (call $boom))"#);
    let fake = Fake::new();
    fake.file("/trap.wasm", &trap)
        .file("/hello.wasm", &printer("hello\n"));
    assert_eq!(
        run(&fake, &supervisor(&["/trap.wasm", "/hello.wasm"]), &[]),
        0
    );
    assert_eq!(fake.stdout(), "hello\n");
    let records: Vec<_> = batches(&fake).concat();
    assert_eq!(records, [exited(2, TRAPPED_STATUS), exited(3, 0)]);
    let reports = fake.0.borrow().reports.clone();
    assert_eq!(reports.len(), 1);
    assert!(
        reports[0].starts_with("weft: /trap.wasm (process 2): trap:"),
        "{reports:?}"
    );
}

#[test]
fn the_first_app_trapping_ends_the_runtime_with_125() {
    let fake = Fake::new();
    let trap = module(r#"(func (export "_start") unreachable)"#);
    assert_eq!(run(&fake, &trap, &[]), TRAPPED_STATUS);
    assert!(fake.0.borrow().reports[0].starts_with("weft: app.wasm (process 1): trap:"));
}

#[test]
fn a_start_function_runs_when_the_app_is_made_and_a_runaway_one_fails_the_load() {
    let started = module(
        r#"(global $g (mut i32) (i32.const 0))
           (func $init (global.set $g (i32.const 1)))
           (start $init)
           (data (i32.const 256) "AB")
           (func (export "_start")
             (drop (call $print (i32.const 1) (i32.add (i32.const 256) (global.get $g)) (i32.const 1))))"#,
    );
    let fake = Fake::new();
    assert_eq!(run(&fake, &started, &[]), 0);
    assert_eq!(fake.stdout(), "B");

    let runaway =
        module(r#"(func $spin (loop $l (br $l))) (start $spin) (func (export "_start"))"#);
    let fake = Fake::new();
    assert_eq!(run(&fake, &runaway, &[]), weft_wasm_run::UNUSABLE);
    let reports = fake.0.borrow().reports.clone();
    assert!(reports[0].contains("fuel"), "{reports:?}");
}
