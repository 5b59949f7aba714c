//! Fabric calls through the `weft` module (PROTOCOL.md §13.3, §17).

use crate::{Fake, batches, module, run};
use weft_control::app::{EventRecord, errno, kind};
use weft_control::fabric_proto::{Event, Reply, Request};

fn frame(r: Request<'_>) -> Vec<u8> {
    let mut buf = vec![0u8; 256];
    let n = r.encode(&mut buf).unwrap();
    buf.truncate(n);
    buf
}

/// `bytes` as a WAT string's contents.
fn escaped(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("\\{b:02x}")).collect()
}

/// An app that makes the call of `request` with a reply buffer of `cap`
/// bytes, then takes a kept reply into 1024 bytes; it prints both errnos
/// (as bytes) and the reply to standard output.
fn caller(request: &[u8], cap: u32) -> Vec<u8> {
    module(&format!(
        r#"(data (i32.const 256) "{}")
           (func (export "_start")
             (i32.store8 (i32.const 200)
               (call $fabric_call (i32.const 256) (i32.const {}) (i32.const 1024) (i32.const {cap}) (i32.const 204)))
             (i32.store8 (i32.const 201)
               (call $fabric_reply (i32.const 1024) (i32.const 1024) (i32.const 208)))
             (drop (call $print (i32.const 1) (i32.const 200) (i32.const 2)))
             (drop (call $print (i32.const 1) (i32.const 1024) (i32.load (i32.const 204)))))"#,
        escaped(request),
        request.len()
    ))
}

#[test]
fn a_reply_that_does_not_fit_is_kept_for_fabric_reply() {
    let request = frame(Request::Kill {
        request: 3,
        pid: "a:99",
    });
    let mut reply = vec![0u8; 256];
    let n = Reply::Failed {
        request: 3,
        message: "no process a:99",
    }
    .encode(&mut reply)
    .unwrap();
    reply.truncate(n);
    let fake = Fake::new();
    fake.0.borrow_mut().fabric_replies.push_back(reply.clone());
    assert_eq!(run(&fake, &caller(&request, 8), &[]), 0);
    let mut expected = vec![errno::RANGE as u8, errno::SUCCESS as u8];
    expected.extend_from_slice(&reply);
    assert_eq!(fake.0.borrow().stdout, expected);
    assert_eq!(fake.0.borrow().fabric_calls, [request]);
}

#[test]
fn a_reply_that_fits_is_written_at_once_and_nothing_is_kept() {
    let request = frame(Request::Devices {
        request: 1,
        available: true,
    });
    let mut reply = vec![0u8; 64];
    let n = Reply::Done { request: 1 }.encode(&mut reply).unwrap();
    reply.truncate(n);
    let fake = Fake::new();
    fake.0.borrow_mut().fabric_replies.push_back(reply.clone());
    assert_eq!(run(&fake, &caller(&request, 512), &[]), 0);
    let mut expected = vec![errno::SUCCESS as u8, errno::NOENT as u8];
    expected.extend_from_slice(&reply);
    assert_eq!(fake.0.borrow().stdout, expected);
}

#[test]
fn malformed_calls_are_refused_before_the_host_sees_them() {
    let image = frame(Request::Image {
        request: 1,
        chunk: b"x",
    });
    let mut trailing = frame(Request::Devices {
        request: 1,
        available: false,
    });
    trailing.push(0);
    for request in [image, trailing, b"garbage!".to_vec()] {
        let fake = Fake::new();
        assert_eq!(run(&fake, &caller(&request, 512), &[]), 0);
        let out = fake.0.borrow().stdout.clone();
        assert_eq!(out[0], errno::INVAL as u8, "{request:?}");
        assert!(fake.0.borrow().fabric_calls.is_empty());
    }
}

#[test]
fn without_a_fabric_the_call_is_not_capable() {
    let request = frame(Request::Devices {
        request: 1,
        available: false,
    });
    let fake = Fake::new();
    assert_eq!(run(&fake, &caller(&request, 512), &[]), 0);
    assert_eq!(fake.0.borrow().stdout[0], errno::NOTCAPABLE as u8);
}

/// An event app watches the fabric: `fabric_event` refuses a descriptor
/// that is no watch and a buffer too small for any event, says `EAGAIN`
/// while nothing is there, and the app sleeps (suspended, not spinning)
/// until its watch is readable, then takes the event.
#[test]
fn a_watch_is_a_descriptor_the_app_waits_on_like_a_socket() {
    let wasm = module(
        r#"(func (export "_start")
             (i32.store8 (i32.const 300) (call $fabric_watch (i32.const 200)))
             (i32.store8 (i32.const 301)
               (call $fabric_event (i32.const 1) (i32.const 2048) (i32.const 2048) (i32.const 204)))
             (i32.store8 (i32.const 302)
               (call $fabric_event (i32.load (i32.const 200)) (i32.const 2048) (i32.const 16) (i32.const 204)))
             (i32.store8 (i32.const 303)
               (call $fabric_event (i32.load (i32.const 200)) (i32.const 2048) (i32.const 2048) (i32.const 204)))
             (drop (call $print (i32.const 1) (i32.const 300) (i32.const 4)))
             (drop (call $event_buffer (i32.const 1024) (i32.const 8)))
             (drop (call $interest (i32.load (i32.const 200)) (i32.const 1))))
           (func (export "weft_on_events") (param $n i32)
             (drop (call $print (i32.const 2) (i32.const 1024) (i32.mul (local.get $n) (i32.const 16))))
             (i32.store8 (i32.const 304)
               (call $fabric_event (i32.load (i32.const 200)) (i32.const 2048) (i32.const 2048) (i32.const 204)))
             (drop (call $print (i32.const 1) (i32.const 304) (i32.const 1)))
             (drop (call $print (i32.const 1) (i32.const 2048) (i32.load (i32.const 204))))
             (i32.store8 (i32.const 305)
               (call $fabric_event (i32.load (i32.const 200)) (i32.const 2048) (i32.const 2048) (i32.const 204)))
             (drop (call $print (i32.const 1) (i32.const 305) (i32.const 1)))
             (drop (call $interest (i32.load (i32.const 200)) (i32.const 0))))"#,
    );
    let mut frame = vec![0u8; Event::MAX_FRAME];
    let n = Event::Ended {
        pid: "b:7",
        status: 3,
    }
    .encode(&mut frame)
    .unwrap();
    frame.truncate(n);
    let fake = Fake::new();
    let sent = frame.clone();
    fake.on_sleep(move |s| s.watches[0].borrow_mut().incoming.extend(sent));
    assert_eq!(run(&fake, &wasm, &[]), 0);
    let mut expected = vec![
        errno::SUCCESS as u8,
        errno::BADF as u8,
        errno::INVAL as u8,
        errno::AGAIN as u8,
        errno::SUCCESS as u8,
    ];
    expected.extend_from_slice(&frame);
    expected.push(errno::AGAIN as u8);
    assert_eq!(fake.0.borrow().stdout, expected);
    let readable = EventRecord {
        kind: kind::READABLE,
        id: 4,
        value: 0,
    };
    assert_eq!(batches(&fake), [vec![readable]]);
    assert_eq!(fake.0.borrow().sleeps, [None]);
}
