//! Event delivery to event apps (PROTOCOL.md §13.2–§13.4).

use crate::{Fake, batches, module, run, supervisor};
use std::net::SocketAddr;
use weft_control::app::{EventRecord, errno, kind};

fn record(kind: u32, id: u32, value: u64) -> EventRecord {
    EventRecord { kind, id, value }
}

#[test]
fn timers_arrive_in_order_in_batches_of_the_buffer_s_capacity() {
    let wasm = module(
        r#"(func (export "_start")
             (drop (call $event_buffer (i32.const 1024) (i32.const 2)))
             (drop (call $timer (i64.const 1) (i64.const 0)))
             (drop (call $timer (i64.const 2) (i64.const -5)))
             (drop (call $timer (i64.const 3) (i64.const 5000000))))
           (func (export "weft_on_events") (param $n i32)
             (drop (call $print (i32.const 2) (i32.const 1024) (i32.mul (local.get $n) (i32.const 16)))))"#,
    );
    let fake = Fake::new();
    assert_eq!(run(&fake, &wasm, &[]), 0);
    assert_eq!(
        batches(&fake),
        [
            vec![record(kind::TIMER, 0, 1), record(kind::TIMER, 0, 2)],
            vec![record(kind::TIMER, 0, 3)],
        ]
    );
    assert_eq!(fake.0.borrow().sleeps, [Some(5_000_000)]);
}

#[test]
fn exited_events_carry_the_child_s_status_sign_extended() {
    let exit = module(r#"(func (export "_start") (call $proc_exit (i32.const -1)))"#);
    let fake = Fake::new();
    fake.file("/exit.wasm", &exit);
    assert_eq!(run(&fake, &supervisor(&["/exit.wasm"]), &[]), 0);
    assert_eq!(batches(&fake), [vec![record(kind::EXITED, 2, u64::MAX)]]);
}

#[test]
fn a_connection_makes_its_listener_readable() {
    let addr: SocketAddr = "127.0.0.1:7000".parse().unwrap();
    // Accepts once, then drops its interest: nothing can wake it, it ends.
    let wasm = module(
        r#"(func (export "_start")
             (drop (call $event_buffer (i32.const 1024) (i32.const 8)))
             (drop (call $interest (i32.const 4) (i32.const 1))))
           (func (export "weft_on_events") (param $n i32)
             (drop (call $print (i32.const 2) (i32.const 1024) (i32.mul (local.get $n) (i32.const 16))))
             (drop (call $sock_accept (i32.const 4) (i32.const 0) (i32.const 16)))
             (drop (call $interest (i32.const 4) (i32.const 0))))"#,
    );
    let fake = Fake::new();
    fake.on_sleep(move |s| {
        s.connect_to(addr).borrow_mut().incoming.extend(b"hi");
    });
    let argv = vec![b"app.wasm".to_vec()];
    assert_eq!(
        weft_wasm_run::run(fake.clone(), &wasm, argv, Vec::new(), vec![addr]),
        0
    );
    assert_eq!(batches(&fake), [vec![record(kind::READABLE, 4, 0)]]);
    assert_eq!(fake.0.borrow().sleeps, [None]);
}

#[test]
fn interest_is_only_for_sockets_and_known_bits() {
    let addr: SocketAddr = "127.0.0.1:7000".parse().unwrap();
    let wasm = module(
        r#"(func (export "_start")
             (call $proc_exit (i32.add
               (i32.mul (i32.const 100) (call $interest (i32.const 1) (i32.const 1)))
               (call $interest (i32.const 4) (i32.const 4)))))"#,
    );
    let argv = vec![b"app.wasm".to_vec()];
    assert_eq!(
        weft_wasm_run::run(Fake::new(), &wasm, argv, Vec::new(), vec![addr]),
        errno::NOTSOCK * 100 + errno::INVAL
    );
}
