//! UDP sockets when their app moves (PROTOCOL.md §12.5, §19.2): one on a
//! fabric address follows the app to the same number once it is settled
//! (the monitor said `PAUSED` and the app took every datagram before it),
//! and is bound again at the destination; any other is closed there and
//! the app told.

use crate::fake::Said;
use crate::snapshot::{MODULE, captured, first, handle};
use crate::{Fake, batches, module, run};
use std::net::SocketAddr;
use weft_control::app::{EventRecord, errno, moved};
use weft_control::move_proto::Order;
use weft_control::snapshot::{self, Descriptor, HostRecord};
use weft_wasm_run::fds::Unsettled;
use weft_wasm_run::snapshot::{CaptureError, RestoreError, restore};
use weft_wasm_run::system::System;
use weft_wasm_run::{sched, udp};

/// A fabric address, and a socket on it.
fn fabric() -> SocketAddr {
    "10.77.0.1:9000".parse().unwrap()
}

fn peer() -> SocketAddr {
    "10.0.0.1:5000".parse().unwrap()
}

/// A fake whose fabric address is [`fabric`]'s IP.
fn device() -> Fake {
    let fake = Fake::new();
    fake.0.borrow_mut().fabric_ips.insert(fabric().ip());
    fake
}

/// An event app that binds UDP `addr` (descriptor 4), interested in it.
/// Each batch it writes its events to standard error, then takes every
/// datagram that waits, printing each one's payload (at most 64 bytes) and
/// sending it back to its sender.
fn echo(addr: &str) -> Vec<u8> {
    module(&format!(
        r#"(data (i32.const 256) "{addr}")
           (func (export "_start")
             (drop (call $udp_bind (i32.const 256) (i32.const {len}) (i32.const 200)))
             (drop (call $event_buffer (i32.const 4096) (i32.const 8)))
             (drop (call $interest (i32.load (i32.const 200)) (i32.const 1))))
           (func (export "weft_on_events") (param $n i32)
             (drop (call $print (i32.const 2) (i32.const 4096) (i32.mul (local.get $n) (i32.const 16))))
             (loop $next
               (if (i32.eqz (call $udp_recv_from (i32.load (i32.const 200)) (i32.const 2048)
                     (i32.const 64) (i32.const 2112) (i32.const 64) (i32.const 2200)))
                 (then
                   (drop (call $print (i32.const 1) (i32.const 2048) (i32.load (i32.const 2200))))
                   (drop (call $udp_send_to (i32.load (i32.const 200)) (i32.const 2048)
                     (i32.load (i32.const 2200)) (i32.const 2112) (i32.load (i32.const 2204))))
                   (br $next)))))"#,
        len = addr.len()
    ))
}

/// Whether capturing failed because UDP socket `fd` is unsettled for `why`.
fn unsettled(error: &CaptureError, fd: i32, why: udp::Unsettled) -> bool {
    matches!(error, CaptureError::Unsettled(Unsettled::Udp { fd: f, why: w }) if *f == fd && *w == why)
}

#[test]
fn a_socket_on_a_fabric_address_follows_the_app_once_paused_and_read() {
    let source = device();
    let wasm = echo("10.77.0.1:9000");
    let (_, mut app) = first(&source, &wasm);
    handle(&source, &mut app, 0);
    let pipe = source.0.borrow().udp[0].clone();
    assert!(pipe.borrow().follows);
    // Datagrams wait: the first is taken to look for a PAUSED, and held.
    pipe.borrow_mut()
        .datagram(peer(), b"one")
        .datagram(peer(), b"two");
    let error = captured(&mut app).unwrap_err();
    assert!(unsettled(&error, 4, udp::Unsettled::Unread), "{error}");
    assert_eq!(
        error.to_string(),
        "busy: its UDP socket 4 has datagrams unread"
    );
    // The app reads both; no PAUSED came yet.
    handle(&source, &mut app, 1);
    let error = captured(&mut app).unwrap_err();
    assert!(unsettled(&error, 4, udp::Unsettled::NotPaused), "{error}");
    assert_eq!(
        error.to_string(),
        "busy: its UDP socket 4 is not paused yet (its datagrams still come)"
    );
    // A datagram, then the PAUSED: the app must read the datagram first.
    pipe.borrow_mut().datagram(peer(), b"three").pause();
    let error = captured(&mut app).unwrap_err();
    assert!(unsettled(&error, 4, udp::Unsettled::Unread), "{error}");
    handle(&source, &mut app, 1);
    assert!(pipe.borrow().paused, "the PAUSED was taken, not delivered");
    let snap = captured(&mut app).unwrap();
    assert_eq!(source.stdout(), "onetwothree");
    let echoed: Vec<_> = pipe.borrow().sent.iter().map(|s| s.1.clone()).collect();
    assert_eq!(
        echoed,
        [b"one".to_vec(), b"two".to_vec(), b"three".to_vec()]
    );

    let records: Vec<_> = snapshot::read(&snap).unwrap().host.iter().collect();
    for r in [
        HostRecord::Descriptor {
            fd: 4,
            kind: Descriptor::udp(fabric()),
        },
        HostRecord::Interest { fd: 4, bits: 1 },
    ] {
        assert!(records.contains(&r), "{r:?} in {records:?}");
    }

    // At the destination: bound again on the same address at the same
    // number, in place of a grant there, and the interest followed.
    let there = device();
    let system = System::new(there.clone()).unwrap();
    let grant = "127.0.0.1:7000".parse().unwrap();
    let mut app = restore(&system, 0, &wasm, MODULE, &snap, vec![grant]).unwrap();
    assert_eq!(there.0.borrow().udp_binds, [fabric()]);
    let pipe = there.0.borrow().udp[0].clone();
    pipe.borrow_mut().datagram(peer(), b"four");
    handle(&there, &mut app, 1);
    assert_eq!(there.stdout(), "four");
    assert_eq!(pipe.borrow().sent, [(peer(), b"four".to_vec())]);
    let readable = EventRecord {
        kind: weft_control::app::kind::READABLE,
        id: 4,
        value: 0,
    };
    assert_eq!(batches(&there), [vec![readable]]);
}

#[test]
fn a_resumed_socket_must_be_paused_again_before_the_next_capture() {
    let source = device();
    let (_, mut app) = first(&source, &echo("10.77.0.1:9000"));
    handle(&source, &mut app, 0);
    let pipe = source.0.borrow().udp[0].clone();
    pipe.borrow_mut().pause();
    captured(&mut app).unwrap();
    // The move failed: the monitor resumes the socket, and what it held
    // comes after the RESUMED.
    pipe.borrow_mut().resume().datagram(peer(), b"held");
    handle(&source, &mut app, 1);
    assert_eq!(source.stdout(), "held");
    assert!(!pipe.borrow().paused);
    let error = captured(&mut app).unwrap_err();
    assert!(unsettled(&error, 4, udp::Unsettled::NotPaused), "{error}");
    pipe.borrow_mut().pause();
    captured(&mut app).unwrap();
}

/// A refused send's error found while settling is held, and reported
/// once, by the app's next call.
#[test]
fn an_error_found_while_settling_is_reported_once() {
    let source = device();
    let (_, mut app) = first(&source, &echo("10.77.0.1:9000"));
    handle(&source, &mut app, 0);
    let pipe = source.0.borrow().udp[0].clone();
    pipe.borrow_mut()
        .error(errno::ACCES)
        .datagram(peer(), b"after")
        .pause();
    let error = captured(&mut app).unwrap_err();
    assert!(unsettled(&error, 4, udp::Unsettled::ErrorUnread), "{error}");
    assert_eq!(
        error.to_string(),
        "busy: its UDP socket 4 has a refused send's error unread"
    );
    // The app's first receive gets the error (its loop stops there), its
    // next batch the datagram.
    handle(&source, &mut app, 1);
    assert_eq!(source.stdout(), "");
    handle(&source, &mut app, 1);
    assert_eq!(source.stdout(), "after");
    captured(&mut app).unwrap();
}

#[test]
fn a_capture_waits_for_the_paused_to_come() {
    let fake = device();
    fake.moves(|m| {
        m.order(0, Order::Start { module: MODULE });
    })
    // Idle, waiting for datagrams: two come, and the monitor orders a
    // capture before it pauses the socket.
    .on_sleep(|s| {
        s.udp[0]
            .borrow_mut()
            .datagram(peer(), b"a")
            .datagram(peer(), b"b");
        let now = s.now;
        let m = s.mover.as_mut().unwrap();
        m.order(now, Order::Capture { wait_ms: 5000 })
            .order(now + 10_000_000_000, Order::End);
    })
    // The app read them; the runtime waits for the PAUSED.
    .on_sleep(|s| {
        s.udp[0].borrow_mut().pause();
    });
    assert_eq!(run(&fake, &echo("10.77.0.1:9000"), &[]), 0);
    let said = fake.said();
    let [Said::Captured(snap)] = &said[..] else {
        panic!("{said:?}");
    };
    assert_eq!(fake.stdout(), "ab");
    let records: Vec<_> = snapshot::read(snap).unwrap().host.iter().collect();
    assert!(records.contains(&HostRecord::Descriptor {
        fd: 4,
        kind: Descriptor::udp(fabric()),
    }));
    // It slept for the datagrams, then for the PAUSED within the
    // capture's wait.
    assert_eq!(fake.0.borrow().sleeps, [None, Some(5_000_000_000)]);
}

#[test]
fn a_capture_of_a_socket_never_paused_fails_busy() {
    let fake = device();
    fake.moves(|m| {
        m.order(0, Order::Start { module: MODULE })
            .order(0, Order::Capture { wait_ms: 30 });
    })
    // Nothing comes: the capture's wait runs out, and so does the app's.
    .on_sleep(|s| s.now += 30_000_000)
    .on_sleep(|s| s.udp[0].borrow_mut().ended = Some(1));
    assert_eq!(run(&fake, &echo("10.77.0.1:9000"), &[]), 0);
    assert_eq!(
        fake.said(),
        [Said::Failed(
            "busy: its UDP socket 4 is not paused yet (its datagrams still come) (waited 30 ms)"
                .into()
        )]
    );
}

#[test]
fn a_socket_on_another_address_is_closed_at_the_destination_and_the_app_told() {
    let source = device();
    let wasm = echo("127.0.0.1:0");
    let (_, mut app) = first(&source, &wasm);
    handle(&source, &mut app, 0);
    assert!(!source.0.borrow().udp[0].borrow().follows);
    // Nothing to settle: it is left behind.
    let snap = captured(&mut app).unwrap();
    let records: Vec<_> = snapshot::read(&snap).unwrap().host.iter().collect();
    assert!(records.contains(&HostRecord::Descriptor {
        fd: 4,
        kind: Descriptor::Closed {
            what: moved::UDP_SOCKET
        },
    }));
    assert!(
        !records
            .iter()
            .any(|r| matches!(r, HostRecord::Interest { .. })),
        "the interest goes with the socket: {records:?}"
    );

    let there = device();
    let system = System::new(there.clone()).unwrap();
    let app = restore(&system, 0, &wasm, MODULE, &snap, Vec::new()).unwrap();
    assert!(there.0.borrow().udp_binds.is_empty());
    // Told, then nothing can wake it: it ends.
    assert_eq!(sched::run(&system, app, None), 0);
    assert_eq!(
        batches(&there),
        [vec![EventRecord::moved(4, moved::UDP_SOCKET)]]
    );
}

#[test]
fn a_restore_fails_when_the_socket_cannot_be_bound_or_does_not_follow() {
    let source = device();
    let wasm = echo("10.77.0.1:9000");
    let (_, mut app) = first(&source, &wasm);
    handle(&source, &mut app, 0);
    source.0.borrow().udp[0].borrow_mut().pause();
    let snap = captured(&mut app).unwrap();

    let refusing = device();
    refusing
        .0
        .borrow_mut()
        .udp_refused
        .insert(fabric(), errno::ADDRINUSE);
    // No fabric address here: bound, but a socket of this device only.
    let elsewhere = Fake::new();
    let cases = [
        (
            refusing,
            format!(
                "its UDP socket 4 on 10.77.0.1:9000 could not be bound here: the address is \
                 in use (errno {})",
                errno::ADDRINUSE
            ),
        ),
        (
            elsewhere,
            "its UDP socket 4 on 10.77.0.1:9000 does not follow here (10.77.0.1:9000 is no \
             fabric address here)"
                .to_string(),
        ),
    ];
    for (there, why) in cases {
        let system = System::new(there.clone()).unwrap();
        let error = restore(&system, 0, &wasm, MODULE, &snap, Vec::new())
            .map(|_| ())
            .unwrap_err();
        assert!(
            matches!(
                error,
                RestoreError::Udp { fd: 4, .. } | RestoreError::UdpStays { fd: 4, .. }
            ),
            "{error}"
        );
        assert_eq!(error.to_string(), why);
        assert_eq!(there.0.borrow().udp_binds, [fabric()]);
        // What the restore made is closed with it.
        assert!(
            there
                .0
                .borrow()
                .udp
                .iter()
                .all(|p| std::rc::Rc::strong_count(p) == 1),
            "{why}"
        );
    }
}
