//! What becomes of an app's descriptors when it moves (PROTOCOL.md §19.1,
//! §19.2): its IPC descriptors follow it to the same numbers once they are
//! settled (a capture waits for that), and the others are closed at the
//! destination, the app told by a `MOVED` event in its first batch.

use crate::fake::Said;
use crate::ipc::{GUID_DATA, guid};
use crate::snapshot::{MODULE, captured, first, handle};
use crate::{Fake, batches, module, run};
use weft_control::app::{EventRecord, errno, moved};
use weft_control::move_proto::Order;
use weft_control::snapshot::{self, ByteStrings, Descriptor, HostRecord, Plan, Writer};
use weft_wasm_run::fds;
use weft_wasm_run::host::IpcItem;
use weft_wasm_run::ipc_end::Unsettled;
use weft_wasm_run::sched;
use weft_wasm_run::snapshot::{CaptureError, RestoreError, restore};
use weft_wasm_run::system::System;

/// An event app that provides the service `kv` (descriptor 4) and opens a
/// sending descriptor (5), interested in both. Each batch it takes every
/// message, answers each request with its data and sends the data on one
/// way to the same service; then it takes every outcome of its sends and
/// prints each one's record.
fn relay() -> Vec<u8> {
    module(&format!(
        r#"{GUID_DATA}
           (data (i32.const 272) "kv")
           (func $data (result i32) (i32.add (i32.const 1024) (i32.load (i32.const 340))))
           (func $drain_service
             (loop $next
               (if (i32.eqz (call $ipc_receive (i32.load (i32.const 300))
                     (i32.const 1024) (i32.const 512) (i32.const 320) (i32.const 0)))
                 (then
                   (if (i32.load (i32.const 324)) (then
                     (drop (call $ipc_reply (i32.load (i32.const 300)) (i64.load (i32.const 328))
                       (call $data) (i32.load (i32.const 344))))))
                   (drop (call $ipc_send (i32.load (i32.const 304)) (i32.const 256)
                     (i32.const 0) (i32.const 0) (call $data) (i32.load (i32.const 344))
                     (i32.const -1) (i32.const 296)))
                   (br $next)))))
           (func $drain_sender
             (loop $next
               (if (i32.eqz (call $ipc_receive (i32.load (i32.const 304))
                     (i32.const 1024) (i32.const 512) (i32.const 320) (i32.const 0)))
                 (then
                   (drop (call $print (i32.const 1) (i32.const 320) (i32.const 32)))
                   (br $next)))))
           (func (export "_start")
             (drop (call $event_buffer (i32.const 4096) (i32.const 8)))
             (drop (call $ipc_serve (i32.const 256) (i32.const 272) (i32.const 2) (i32.const 300)))
             (drop (call $ipc_open (i32.const 304)))
             (drop (call $interest (i32.load (i32.const 300)) (i32.const 1)))
             (drop (call $interest (i32.load (i32.const 304)) (i32.const 1))))
           (func (export "weft_on_events") (param i32)
             (call $drain_service)
             (call $drain_sender))"#
    ))
}

/// Whether capturing `app` fails because descriptor `fd` is unsettled
/// for `why`.
fn unsettled(error: &CaptureError, fd: i32, why: Unsettled) -> bool {
    matches!(error, CaptureError::Unsettled(fds::Unsettled::Ipc { fd: f, why: w, .. }) if *f == fd && *w == why)
}

#[test]
fn ipc_descriptors_follow_the_app_to_their_numbers_once_settled() {
    let source = Fake::new();
    let (_, mut app) = first(&source, &relay());
    handle(&source, &mut app, 0);
    let (service, sender) = {
        let s = source.0.borrow();
        (s.services[0].clone(), s.senders[0].clone())
    };
    // A request, answered and sent on in one batch: the send's outcome is
    // still to come, and the monitor has not paused the service.
    service.borrow_mut().deliver(7, true, "b:3", b"hi");
    handle(&source, &mut app, 1);
    assert_eq!(service.borrow().answers, [(7, Ok(b"hi".to_vec()))]);
    assert_eq!(sender.borrow().sent, [(guid(), None, b"hi".to_vec(), None)]);
    let error = captured(&mut app).unwrap_err();
    assert!(unsettled(&error, 4, Unsettled::NotPaused), "{error}");
    service.borrow_mut().pause();
    let error = captured(&mut app).unwrap_err();
    assert!(unsettled(&error, 5, Unsettled::Outstanding(1)), "{error}");
    assert_eq!(
        error.to_string(),
        "busy: its sending descriptor 5 has 1 message whose outcome is not taken"
    );
    // The outcome comes; until the app takes it, it waits for it.
    let ack = IpcItem::Answer {
        request: 1,
        data: Vec::new(),
    };
    sender.borrow_mut().incoming.push_back(ack.into());
    let error = captured(&mut app).unwrap_err();
    assert!(unsettled(&error, 5, Unsettled::Waiting), "{error}");
    handle(&source, &mut app, 1);
    assert!(
        service.borrow().paused,
        "the PAUSED was taken, not delivered"
    );
    let snap = captured(&mut app).unwrap();

    let contents = snapshot::read(&snap).unwrap();
    let records: Vec<_> = contents.host.iter().collect();
    let service_record = HostRecord::Descriptor {
        fd: 4,
        kind: Descriptor::IpcService {
            guid: guid(),
            name: "kv",
        },
    };
    let sender_record = HostRecord::Descriptor {
        fd: 5,
        kind: Descriptor::IpcSender,
    };
    for r in [
        service_record,
        sender_record,
        HostRecord::Interest { fd: 4, bits: 1 },
        HostRecord::Interest { fd: 5, bits: 1 },
    ] {
        assert!(records.contains(&r), "{r:?} in {records:?}");
    }

    // At the destination: the same numbers, a new service and stream.
    let there = Fake::new();
    let system = System::new(there.clone()).unwrap();
    let grant = "127.0.0.1:9000".parse().unwrap();
    let mut app = restore(&system, 0, &relay(), MODULE, &snap, vec![grant]).unwrap();
    let (service, sender) = {
        let s = there.0.borrow();
        assert_eq!(s.services.len(), 1);
        assert_eq!(s.senders.len(), 1);
        (s.services[0].clone(), s.senders[0].clone())
    };
    assert_eq!(service.borrow().serving, Some((guid(), "kv".into())));
    service.borrow_mut().deliver(9, true, "c:1", b"yo");
    handle(&there, &mut app, 1);
    assert_eq!(service.borrow().answers, [(9, Ok(b"yo".to_vec()))]);
    assert_eq!(sender.borrow().sent, [(guid(), None, b"yo".to_vec(), None)]);
    // The grant preopened at 4 here gave way to the service.
    assert!(there.0.borrow().backlogs.is_empty());

    // A device whose registry does not let it provide the service.
    let refusing = Fake::new();
    refusing.0.borrow_mut().serve_errno = Some(errno::ACCES);
    let system = System::new(refusing.clone()).unwrap();
    let error = restore(&system, 0, &relay(), MODULE, &snap, Vec::new())
        .map(|_| ())
        .unwrap_err();
    assert!(
        matches!(error, RestoreError::Serve { fd: 4, .. }),
        "{error}"
    );
    assert_eq!(
        error.to_string(),
        format!(
            "its service descriptor 4 (kv, {}) cannot be provided here: this device's registry \
             does not let it provide the service (Denied) (errno {})",
            guid(),
            errno::ACCES
        )
    );
}

/// An event app providing the service `kv` (descriptor 4), interested in
/// it, that ends at the `TIMER` with token 1, due `exit_ns` after its
/// start. Each batch it takes every message and keeps the last one's id;
/// with `answer_ns`, it answers it (with `kv`) at a timer due that long
/// after it came.
fn slow_service(exit_ns: u64, answer_ns: Option<u64>) -> Vec<u8> {
    let answer = answer_ns.map_or(String::new(), |ns| {
        format!("(drop (call $timer (i64.const 2) (i64.const {ns})))")
    });
    module(&format!(
        r#"{GUID_DATA}
           (data (i32.const 272) "kv")
           (func (export "_start")
             (drop (call $event_buffer (i32.const 4096) (i32.const 8)))
             (drop (call $ipc_serve (i32.const 256) (i32.const 272) (i32.const 2) (i32.const 300)))
             (drop (call $interest (i32.load (i32.const 300)) (i32.const 1)))
             (drop (call $timer (i64.const 1) (i64.const {exit_ns}))))
           (func (export "weft_on_events") (param $n i32) (local $i i32) (local $at i32)
             (loop $each
               (local.set $at (i32.add (i32.const 4096) (i32.mul (local.get $i) (i32.const 16))))
               (if (i32.eq (i32.load (local.get $at)) (i32.const 4)) (then
                 (if (i64.eq (i64.load offset=8 (local.get $at)) (i64.const 1))
                   (then (call $proc_exit (i32.const 0))))
                 (drop (call $ipc_reply (i32.load (i32.const 300)) (i64.load (i32.const 400))
                   (i32.const 272) (i32.const 2)))))
               (local.set $i (i32.add (local.get $i) (i32.const 1)))
               (br_if $each (i32.lt_u (local.get $i) (local.get $n))))
             (loop $next
               (if (i32.eqz (call $ipc_receive (i32.load (i32.const 300))
                     (i32.const 1024) (i32.const 512) (i32.const 320) (i32.const 0)))
                 (then
                   (i64.store (i32.const 400) (i64.load (i32.const 328)))
                   {answer}
                   (br $next)))))"#
    ))
}

const MS: u64 = 1_000_000;

#[test]
fn a_capture_waits_for_a_request_to_be_answered() {
    let fake = Fake::new();
    fake.moves(|m| {
        m.order(0, Order::Start { module: MODULE });
    })
    .on_sleep(|s| s.services[0].borrow_mut().deliver(7, true, "b:3", b"get"))
    // The app took the request and answers it in 5 ms: the monitor pauses
    // the service and orders a capture meanwhile.
    .on_sleep(|s| {
        s.services[0].borrow_mut().pause();
        let now = s.now;
        let m = s.mover.as_mut().unwrap();
        m.order(now, Order::Capture { wait_ms: 5000 })
            .order(now + 1_000_000 * MS, Order::End);
    });
    assert_eq!(run(&fake, &slow_service(10_000 * MS, Some(5 * MS)), &[]), 0);
    let said = fake.said();
    let [Said::Captured(snap)] = &said[..] else {
        panic!("{said:?}");
    };
    let s = fake.0.borrow();
    assert_eq!(s.services[0].borrow().answers, [(7, Ok(b"kv".to_vec()))]);
    // It slept until the answer was due, not until the capture's end.
    assert_eq!(s.sleeps.last(), Some(&Some(5 * MS)), "{:?}", s.sleeps);
    let records: Vec<_> = snapshot::read(snap).unwrap().host.iter().collect();
    assert!(records.contains(&HostRecord::Descriptor {
        fd: 4,
        kind: Descriptor::IpcService {
            guid: guid(),
            name: "kv"
        }
    }));
}

#[test]
fn a_capture_of_an_unsettled_service_fails_busy_when_its_wait_runs_out() {
    // The monitor never pauses the service.
    let fake = Fake::new();
    fake.moves(|m| {
        m.order(0, Order::Start { module: MODULE })
            .order(0, Order::Capture { wait_ms: 50 });
    });
    assert_eq!(run(&fake, &slow_service(100 * MS, None), &[]), 0);
    assert_eq!(
        fake.said(),
        [Said::Failed(
            "busy: its service descriptor 4 is not paused (its messages still come) (waited 50 ms)"
                .into()
        )]
    );
    // The capture's end woke the runtime.
    assert!(fake.0.borrow().sleeps.contains(&Some(50 * MS)));

    // Paused, with two requests the app took and never answers.
    let fake = Fake::new();
    fake.moves(|m| {
        m.order(0, Order::Start { module: MODULE });
    })
    .on_sleep(|s| {
        let mut p = s.services[0].borrow_mut();
        p.deliver(7, true, "b:3", b"one");
        p.deliver(8, true, "b:3", b"two");
        p.deliver(9, false, "b:3", b"one way");
        p.pause();
        drop(p);
        let now = s.now;
        let m = s.mover.as_mut().unwrap();
        m.order(now, Order::Capture { wait_ms: 20 });
    });
    assert_eq!(run(&fake, &slow_service(100 * MS, None), &[]), 0);
    assert_eq!(
        fake.said(),
        [Said::Failed(
            "busy: its service descriptor 4 has 2 requests unanswered (waited 20 ms)".into()
        )]
    );
    let s = fake.0.borrow();
    assert!(s.services[0].borrow().answers.is_empty());
    assert!(s.services[0].borrow().paused);
    assert!(s.services[0].borrow().incoming.is_empty());
}

/// An event app that opens file `/data` (4), connects to 10.0.0.1:80 (5),
/// listens on 127.0.0.1:7000 (6) and watches the fabric (7), interested in
/// 5 and 7, with a timer due in 1 ms. Each batch it writes its events to
/// standard error, then tries to read 4 and 5 and prints both errnos (a
/// byte each); then it ends.
fn holder() -> Vec<u8> {
    module(
        r#"(data (i32.const 300) "data")
           (data (i32.const 320) "10.0.0.1:80")
           (data (i32.const 340) "127.0.0.1:7000")
           (func $read (param $fd i32) (result i32)
             (i32.store (i32.const 8) (i32.const 1024))
             (i32.store (i32.const 12) (i32.const 16))
             (call $fd_read (local.get $fd) (i32.const 8) (i32.const 1) (i32.const 16)))
           (func (export "_start")
             (drop (call $event_buffer (i32.const 4096) (i32.const 8)))
             (drop (call $path_open (i32.const 3) (i32.const 0) (i32.const 300) (i32.const 4)
               (i32.const 0) (i64.const 2) (i64.const 0) (i32.const 0) (i32.const 400)))
             (drop (call $tcp_connect (i32.const 320) (i32.const 11) (i32.const 404)))
             (drop (call $tcp_listen (i32.const 340) (i32.const 14) (i32.const 408)))
             (drop (call $fabric_watch (i32.const 412)))
             (drop (call $interest (i32.const 5) (i32.const 1)))
             (drop (call $interest (i32.const 7) (i32.const 1)))
             (drop (call $timer (i64.const 1) (i64.const 1000000))))
           (func (export "weft_on_events") (param $n i32)
             (drop (call $print (i32.const 2) (i32.const 4096) (i32.mul (local.get $n) (i32.const 16))))
             (i32.store8 (i32.const 200) (call $read (i32.const 4)))
             (i32.store8 (i32.const 201) (call $read (i32.const 5)))
             (drop (call $print (i32.const 1) (i32.const 200) (i32.const 2)))
             (call $proc_exit (i32.const 0)))"#,
    )
}

#[test]
fn files_and_sockets_are_closed_at_the_destination_and_the_app_told() {
    let source = Fake::new();
    source.file("/data", b"abc");
    source
        .0
        .borrow_mut()
        .reachable
        .insert("10.0.0.1:80".parse().unwrap());
    let (_, mut app) = first(&source, &holder());
    handle(&source, &mut app, 0);
    let snap = captured(&mut app).expect("files and sockets do not hold an app");
    let records: Vec<_> = snapshot::read(&snap).unwrap().host.iter().collect();
    let closed = |fd, what| HostRecord::Descriptor {
        fd,
        kind: Descriptor::Closed { what },
    };
    let descriptors: Vec<_> = records
        .iter()
        .filter(|r| matches!(r, HostRecord::Descriptor { .. }))
        .copied()
        .collect();
    assert_eq!(
        descriptors,
        [
            closed(4, moved::FILE),
            closed(5, moved::TCP_CONNECTION),
            closed(6, moved::TCP_LISTENER),
            closed(7, moved::FABRIC_WATCH),
        ]
    );
    assert!(
        !records
            .iter()
            .any(|r| matches!(r, HostRecord::Interest { .. })),
        "interests go with their descriptors: {records:?}"
    );
    // Nothing changed at the source.
    assert!(
        source.0.borrow().connections[0]
            .borrow()
            .outgoing
            .is_empty()
    );

    // The destination preopens a grant at 4: the snapshot's number wins.
    let there = Fake::new();
    there.file("/data", b"abc");
    let system = System::new(there.clone()).unwrap();
    let grant = "127.0.0.1:9000".parse().unwrap();
    let app = restore(&system, 0, &holder(), MODULE, &snap, vec![grant]).unwrap();
    assert_eq!(sched::run(&system, app, None), 0);
    let first_batch = vec![
        EventRecord::moved(4, moved::FILE),
        EventRecord::moved(5, moved::TCP_CONNECTION),
        EventRecord::moved(6, moved::TCP_LISTENER),
        EventRecord::moved(7, moved::FABRIC_WATCH),
    ];
    assert_eq!(batches(&there), [first_batch]);
    assert_eq!(
        there.0.borrow().stdout,
        [errno::BADF as u8, errno::BADF as u8]
    );
}

#[test]
fn an_interest_in_a_descriptor_the_snapshot_does_not_hold_is_refused() {
    let args: [&[u8]; 1] = [b"app.wasm"];
    let host = [
        HostRecord::Pid(1),
        HostRecord::Args(ByteStrings::new(&args)),
        HostRecord::Descriptor {
            fd: 5,
            kind: Descriptor::Closed { what: moved::FILE },
        },
        HostRecord::EventBuffer {
            at: 4096,
            capacity: 8,
        },
        // Dropped with the descriptor closed; then one never held.
        HostRecord::Interest { fd: 5, bits: 1 },
        HostRecord::Interest { fd: 6, bits: 1 },
    ];
    let memory = vec![0u8; snapshot::PAGE];
    let plan = Plan::new().memory(&memory).host(&host);
    let mut snap = Vec::new();
    let mut w = Writer::new(|b: &[u8]| snap.extend_from_slice(b));
    w.header(MODULE, &plan).unwrap();
    w.memory(&memory, None).unwrap();
    w.host(&host).unwrap();
    w.finish().unwrap();
    let system = System::new(Fake::new()).unwrap();
    let error = restore(&system, 0, &holder(), MODULE, &snap, Vec::new())
        .map(|_| ())
        .unwrap_err();
    assert!(matches!(error, RestoreError::Interest { fd: 6 }), "{error}");
    assert_eq!(
        error.to_string(),
        "it has an interest in descriptor 6, which it does not hold"
    );
}
