//! IPC by GUID through the `weft` module (PROTOCOL.md §13.7, §18): a
//! service's messages as events, a blocking receive that suspends only its
//! app, answers on a sending descriptor, and every bad argument an errno.

use crate::{Fake, batches, module, run};
use weft_control::app::{EventRecord, IpcRecord, errno, ipc_flags, ipc_kind, kind};
use weft_control::ipc_proto::Guid;
use weft_wasm_run::host::IpcItem;

/// The GUID the test modules use (bytes 1 to 16), as a WAT data segment
/// at 256.
pub const GUID_DATA: &str =
    r#"(data (i32.const 256) "\01\02\03\04\05\06\07\08\09\0a\0b\0c\0d\0e\0f\10")"#;

pub fn guid() -> Guid {
    Guid(core::array::from_fn(|i| i as u8 + 1))
}

/// The record at the start of `bytes` and what follows it.
fn record(bytes: &[u8]) -> (IpcRecord, &[u8]) {
    let (r, rest) = bytes.split_at(IpcRecord::SIZE);
    (IpcRecord::decode(r.try_into().unwrap()), rest)
}

/// An event app providing the service (named `kv`): each batch, it takes
/// every message, prints its record and bytes, and answers each request
/// with the message's data; then it prints the errno that ended the batch
/// and exits.
fn echo_service() -> Vec<u8> {
    module(&format!(
        r#"{GUID_DATA}
           (data (i32.const 272) "kv")
           (func (export "_start")
             (drop (call $event_buffer (i32.const 400) (i32.const 8)))
             (i32.store8 (i32.const 200)
               (call $ipc_serve (i32.const 256) (i32.const 272) (i32.const 2) (i32.const 300)))
             (drop (call $print (i32.const 1) (i32.const 200) (i32.const 1)))
             (drop (call $interest (i32.load (i32.const 300)) (i32.const 1))))
           (func (export "weft_on_events") (param $n i32) (local $e i32)
             (loop $next
               (local.set $e (call $ipc_receive (i32.load (i32.const 300))
                 (i32.const 1024) (i32.const 512) (i32.const 304) (i32.const 0)))
               (if (i32.eqz (local.get $e)) (then
                 (drop (call $print (i32.const 1) (i32.const 304) (i32.const 32)))
                 (drop (call $print (i32.const 1) (i32.const 1024)
                   (i32.add (i32.load (i32.const 324)) (i32.load (i32.const 328)))))
                 (if (i32.load (i32.const 308)) (then
                   (drop (call $ipc_reply (i32.load (i32.const 300)) (i64.load (i32.const 312))
                     (i32.add (i32.const 1024) (i32.load (i32.const 324)))
                     (i32.load (i32.const 328))))))
                 (br $next))))
             (i32.store8 (i32.const 200) (local.get $e))
             (drop (call $print (i32.const 1) (i32.const 200) (i32.const 1)))
             (call $proc_exit (i32.const 0)))"#
    ))
}

#[test]
fn a_service_gets_its_messages_as_events_and_answers_requests() {
    let fake = Fake::new();
    fake.on_sleep(|s| {
        let mut p = s.services[0].borrow_mut();
        p.deliver(7, true, "b:3", b"hello");
        p.deliver(8, false, "dev", b"x");
    });
    assert_eq!(run(&fake, &echo_service(), &[]), 0);
    let s = fake.0.borrow();
    let p = s.services[0].borrow();
    assert_eq!(p.serving, Some((guid(), "kv".into())));
    assert_eq!(
        p.answers,
        [(7, Ok(b"hello".to_vec()))],
        "one-way: no answer"
    );
    assert_eq!(s.stdout[0], errno::SUCCESS as u8);
    let (first, rest) = record(&s.stdout[1..]);
    let message = |id, flags, sender_len, data_len| IpcRecord {
        kind: ipc_kind::MESSAGE,
        flags,
        id,
        sender_len,
        data_len,
        ..IpcRecord::default()
    };
    assert_eq!(first, message(7, ipc_flags::REQUEST, 3, 5));
    assert_eq!(&rest[..8], b"b:3hello");
    let (second, rest) = record(&rest[8..]);
    assert_eq!(second, message(8, 0, 3, 1));
    assert_eq!(rest, [b'd', b'e', b'v', b'x', errno::AGAIN as u8]);
}

/// A command providing the service (named `w`) that waits for one message
/// with a blocking receive, then prints `woke ` and the data.
fn blocking_waiter() -> Vec<u8> {
    module(&format!(
        r#"{GUID_DATA}
           (data (i32.const 272) "w")
           (data (i32.const 280) "woke ")
           (func (export "_start")
             (drop (call $ipc_serve (i32.const 256) (i32.const 272) (i32.const 1) (i32.const 300)))
             (drop (call $ipc_receive (i32.load (i32.const 300))
               (i32.const 1024) (i32.const 512) (i32.const 304) (i32.const 1)))
             (drop (call $print (i32.const 1) (i32.const 280) (i32.const 5)))
             (drop (call $print (i32.const 1)
               (i32.add (i32.const 1024) (i32.load (i32.const 324))) (i32.load (i32.const 328)))))"#
    ))
}

/// An event app that spawns `/wait.wasm`, starts a timer (token 9, 1 µs)
/// and writes each batch of events to standard error.
fn timer_beside_waiter() -> Vec<u8> {
    module(
        r#"(data (i32.const 256) "/wait.wasm")
           (func (export "_start")
             (drop (call $event_buffer (i32.const 4096) (i32.const 8)))
             (drop (call $spawn (i32.const 256) (i32.const 10) (i32.const 0) (i32.const 0)
               (i64.const 0) (i32.const 16)))
             (drop (call $timer (i64.const 9) (i64.const 1000))))
           (func (export "weft_on_events") (param $n i32)
             (drop (call $print (i32.const 2) (i32.const 4096) (i32.mul (local.get $n) (i32.const 16)))))"#,
    )
}

#[test]
fn a_blocking_receive_suspends_only_its_app() {
    let fake = Fake::new();
    fake.file("/wait.wasm", &blocking_waiter());
    // First sleep: the waiter is blocked and its parent idle with a timer
    // due in 1 µs; time passes, and the parent alone moves.
    fake.on_sleep(|s| s.now += 1000).on_sleep(|s| {
        s.services[0].borrow_mut().deliver(1, false, "a:1", b"now");
    });
    assert_eq!(run(&fake, &timer_beside_waiter(), &[]), 0);
    assert_eq!(fake.0.borrow().sleeps[0], Some(1000));
    let timer = EventRecord {
        kind: kind::TIMER,
        id: 0,
        value: 9,
    };
    assert_eq!(
        batches(&fake),
        [vec![timer], vec![EventRecord::exited(2, 0)]],
        "the timer fired while the waiter was blocked"
    );
    assert_eq!(fake.stdout(), "woke now");
}

/// A command that opens a sending stream, sends `hello` one way to
/// instance `b:1` and as a request to any instance, cancels the request,
/// then takes two outcomes with a blocking receive; it prints the four
/// errnos, then each outcome's record and bytes.
fn sender() -> Vec<u8> {
    module(&format!(
        r#"{GUID_DATA}
           (data (i32.const 272) "b:1")
           (data (i32.const 280) "hello")
           (func $take
             (drop (call $ipc_receive (i32.load (i32.const 300))
               (i32.const 1024) (i32.const 512) (i32.const 304) (i32.const 1)))
             (drop (call $print (i32.const 1) (i32.const 304) (i32.const 32)))
             (drop (call $print (i32.const 1) (i32.const 1024) (i32.load (i32.const 328)))))
           (func (export "_start")
             (i32.store8 (i32.const 200) (call $ipc_open (i32.const 300)))
             (i32.store8 (i32.const 201) (call $ipc_send (i32.load (i32.const 300)) (i32.const 256)
               (i32.const 272) (i32.const 3) (i32.const 280) (i32.const 5) (i32.const -1) (i32.const 296)))
             (i32.store8 (i32.const 202) (call $ipc_send (i32.load (i32.const 300)) (i32.const 256)
               (i32.const 0) (i32.const 0) (i32.const 280) (i32.const 5) (i32.const 0) (i32.const 292)))
             (i32.store8 (i32.const 203) (call $ipc_cancel (i32.load (i32.const 300)) (i32.load (i32.const 292))))
             (drop (call $print (i32.const 1) (i32.const 200) (i32.const 4)))
             (call $take)
             (call $take))"#
    ))
}

#[test]
fn outcomes_of_messages_sent_arrive_on_the_sending_descriptor() {
    let fake = Fake::new();
    fake.on_sleep(|s| {
        let mut p = s.senders[0].borrow_mut();
        p.incoming.push_back(
            IpcItem::Answer {
                request: 1,
                data: Vec::new(),
            }
            .into(),
        );
        p.incoming.push_back(
            IpcItem::Failed {
                request: 2,
                error: 5,
                message: "no such key".into(),
            }
            .into(),
        );
    });
    assert_eq!(run(&fake, &sender(), &[]), 0);
    let s = fake.0.borrow();
    assert_eq!(
        s.senders[0].borrow().sent,
        [
            (guid(), Some("b:1".into()), b"hello".to_vec(), None),
            (guid(), None, b"hello".to_vec(), Some(0)),
        ]
    );
    assert_eq!(s.senders[0].borrow().cancelled, [2], "the request's id");
    assert_eq!(s.stdout[..4], [0, 0, 0, 0]);
    let (sent, rest) = record(&s.stdout[4..]);
    assert_eq!(
        sent,
        IpcRecord {
            kind: ipc_kind::SENT,
            id: 1,
            ..IpcRecord::default()
        },
        "a one-way message's acknowledgement is SENT"
    );
    let (failed, rest) = record(rest);
    assert_eq!(
        failed,
        IpcRecord {
            kind: ipc_kind::FAILED,
            id: 2,
            error: 5,
            data_len: 11,
            ..IpcRecord::default()
        }
    );
    assert_eq!(rest, b"no such key");
}

/// A command making bad calls, each errno stored at 100 + its index; then
/// a blocking receive into 4 bytes (the message is kept) and again into
/// 64. It prints the errnos, then the last record and bytes.
fn bad_calls() -> Vec<u8> {
    let calls = [
        // A nil GUID, one past memory, an empty name, a long one, not UTF-8.
        "(call $ipc_serve (i32.const 512) (i32.const 272) (i32.const 2) (i32.const 300))",
        "(call $ipc_serve (i32.const 65530) (i32.const 272) (i32.const 2) (i32.const 300))",
        "(call $ipc_serve (i32.const 256) (i32.const 272) (i32.const 0) (i32.const 300))",
        "(call $ipc_serve (i32.const 256) (i32.const 272) (i32.const 65) (i32.const 300))",
        "(call $ipc_serve (i32.const 256) (i32.const 600) (i32.const 1) (i32.const 300))",
        // The service, and a sending stream at 304.
        "(call $ipc_serve (i32.const 256) (i32.const 272) (i32.const 2) (i32.const 300))",
        "(call $ipc_open (i32.const 304))",
        // Sending on standard output, on the service, with a bad timeout,
        // too much data, a pid out of memory.
        "(call $ipc_send (i32.const 1) (i32.const 256) (i32.const 0) (i32.const 0) (i32.const 280) (i32.const 5) (i32.const -1) (i32.const 296))",
        "(call $ipc_send (i32.load (i32.const 300)) (i32.const 256) (i32.const 0) (i32.const 0) (i32.const 280) (i32.const 5) (i32.const -1) (i32.const 296))",
        "(call $ipc_send (i32.load (i32.const 304)) (i32.const 256) (i32.const 0) (i32.const 0) (i32.const 280) (i32.const 5) (i32.const -2) (i32.const 296))",
        "(call $ipc_send (i32.load (i32.const 304)) (i32.const 256) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 65537) (i32.const 0) (i32.const 296))",
        "(call $ipc_send (i32.load (i32.const 304)) (i32.const 256) (i32.const 65535) (i32.const 8) (i32.const 280) (i32.const 5) (i32.const 0) (i32.const 296))",
        // A bad wait, a descriptor that is no IPC one, a record out of
        // memory, nothing there yet.
        "(call $ipc_receive (i32.load (i32.const 300)) (i32.const 1024) (i32.const 64) (i32.const 320) (i32.const 2))",
        "(call $ipc_receive (i32.const 1) (i32.const 1024) (i32.const 64) (i32.const 320) (i32.const 0))",
        "(call $ipc_receive (i32.load (i32.const 300)) (i32.const 1024) (i32.const 64) (i32.const 65520) (i32.const 0))",
        "(call $ipc_receive (i32.load (i32.const 300)) (i32.const 1024) (i32.const 64) (i32.const 320) (i32.const 0))",
        // Answering on the sending stream; a reason that is not UTF-8.
        "(call $ipc_reply (i32.load (i32.const 304)) (i64.const 1) (i32.const 280) (i32.const 5))",
        "(call $ipc_refuse (i32.load (i32.const 300)) (i64.const 1) (i32.const 600) (i32.const 1))",
        // Cancelling on the service, on standard output.
        "(call $ipc_cancel (i32.load (i32.const 300)) (i32.const 1))",
        "(call $ipc_cancel (i32.const 1) (i32.const 1))",
        // The message into 4 bytes (kept), then into 64.
        "(call $ipc_receive (i32.load (i32.const 300)) (i32.const 1024) (i32.const 4) (i32.const 320) (i32.const 1))",
        "(call $ipc_receive (i32.load (i32.const 300)) (i32.const 1024) (i32.const 64) (i32.const 320) (i32.const 0))",
    ];
    let body: String = calls
        .iter()
        .enumerate()
        .map(|(i, c)| format!("(i32.store8 (i32.const {}) {c})\n", 100 + i))
        .collect();
    module(&format!(
        r#"{GUID_DATA}
           (data (i32.const 272) "kv")
           (data (i32.const 280) "hello")
           (data (i32.const 600) "\ff")
           (func (export "_start")
             {body}
             (drop (call $print (i32.const 1) (i32.const 100) (i32.const {})))
             (drop (call $print (i32.const 1) (i32.const 320) (i32.const 32)))
             (drop (call $print (i32.const 1) (i32.const 1024) (i32.const 8))))"#,
        calls.len()
    ))
}

#[test]
fn bad_calls_are_errnos_and_a_message_too_long_for_the_buffer_is_kept() {
    let fake = Fake::new();
    fake.on_sleep(|s| {
        s.services[0].borrow_mut().deliver(4, true, "b:1", b"hello");
    });
    assert_eq!(run(&fake, &bad_calls(), &[]), 0);
    let s = fake.0.borrow();
    let (inval, fault, ilseq, badf) = (errno::INVAL, errno::FAULT, errno::ILSEQ, errno::BADF);
    let expected = [
        inval,
        fault,
        inval,
        inval,
        ilseq,
        errno::SUCCESS,
        errno::SUCCESS,
        badf,
        badf,
        inval,
        errno::MSGSIZE,
        fault,
        inval,
        badf,
        fault,
        errno::AGAIN,
        badf,
        ilseq,
        badf,
        badf,
        errno::RANGE,
        errno::SUCCESS,
    ]
    .map(|e| e as u8);
    assert_eq!(s.stdout[..expected.len()], expected);
    let (r, bytes) = record(&s.stdout[expected.len()..]);
    assert_eq!(
        (r.kind, r.id, r.sender_len, r.data_len),
        (ipc_kind::MESSAGE, 4, 3, 5)
    );
    assert_eq!(bytes, b"b:1hello");
    assert_eq!(
        s.services.len(),
        1,
        "only the good ipc_serve reached the host"
    );
    assert!(s.senders[0].borrow().sent.is_empty());
    assert!(s.services[0].borrow().answers.is_empty());
}

#[test]
fn paused_and_resumed_frames_reach_no_app_and_wait_for_nothing() {
    // A message between the monitor's frames, and a PAUSED after it that
    // is the last thing on the stream: the batch takes the message, then
    // gets EAGAIN at once (the service only looked).
    let fake = Fake::new();
    fake.on_sleep(|s| {
        let mut p = s.services[0].borrow_mut();
        p.pause();
        p.resume();
        p.deliver(7, true, "b:3", b"hello");
        p.pause();
    });
    assert_eq!(run(&fake, &echo_service(), &[]), 0);
    let s = fake.0.borrow();
    let p = s.services[0].borrow();
    assert!(p.paused && p.incoming.is_empty());
    assert_eq!(p.answers, [(7, Ok(b"hello".to_vec()))]);
    let (r, rest) = record(&s.stdout[1..]);
    assert_eq!((r.kind, r.id), (ipc_kind::MESSAGE, 7));
    assert_eq!(rest, [&b"b:3hello"[..], &[errno::AGAIN as u8]].concat());
    drop(p);
    drop(s);

    // Nothing but a PAUSED: the stream was readable, the app finds nothing.
    let fake = Fake::new();
    fake.on_sleep(|s| s.services[0].borrow_mut().pause());
    assert_eq!(run(&fake, &echo_service(), &[]), 0);
    assert_eq!(
        fake.0.borrow().stdout,
        [errno::SUCCESS as u8, errno::AGAIN as u8]
    );
    assert!(fake.0.borrow().services[0].borrow().paused);
}
