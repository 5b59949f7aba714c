//! UDP sockets through the `weft` module (PROTOCOL.md §12, §13.3): bind,
//! send and receive through the fake host's sockets, readiness as events,
//! the app's bad arguments, refused sends, and closing. What becomes of
//! them when their app moves is `udp_moves`.

use crate::{Fake, batches, module, run};
use std::net::SocketAddr;
use std::rc::Rc;
use weft_control::app::{EventRecord, errno, kind};

fn peer() -> SocketAddr {
    "10.0.0.1:5000".parse().unwrap()
}

/// An event app binds `127.0.0.1:0`, says its address, finds nothing to
/// take (`EAGAIN`) and waits for its socket to be readable; then takes a
/// datagram longer than its 4-byte buffer (cut, its whole length written),
/// echoes what it got to the sender, finds nothing more, and closes the
/// socket, which ends the app.
#[test]
fn an_event_app_binds_waits_receives_echoes_and_closes() {
    let wasm = module(
        r#"(data (i32.const 256) "127.0.0.1:0")
           (func (export "_start")
             (i32.store8 (i32.const 300) (call $udp_bind (i32.const 256) (i32.const 11) (i32.const 200)))
             (i32.store8 (i32.const 301)
               (call $udp_local_addr (i32.load (i32.const 200)) (i32.const 400) (i32.const 64) (i32.const 464)))
             (i32.store8 (i32.const 302)
               (call $udp_recv_from (i32.load (i32.const 200)) (i32.const 2048) (i32.const 4)
                 (i32.const 2100) (i32.const 64) (i32.const 2200)))
             (drop (call $print (i32.const 1) (i32.const 300) (i32.const 3)))
             (drop (call $print (i32.const 1) (i32.const 400) (i32.load (i32.const 464))))
             (drop (call $event_buffer (i32.const 1024) (i32.const 8)))
             (drop (call $interest (i32.load (i32.const 200)) (i32.const 1))))
           (func (export "weft_on_events") (param $n i32)
             (drop (call $print (i32.const 2) (i32.const 1024) (i32.mul (local.get $n) (i32.const 16))))
             (i32.store8 (i32.const 303)
               (call $udp_recv_from (i32.load (i32.const 200)) (i32.const 2048) (i32.const 4)
                 (i32.const 2100) (i32.const 64) (i32.const 2200)))
             (drop (call $print (i32.const 1) (i32.const 303) (i32.const 1)))
             (drop (call $print (i32.const 1) (i32.const 2200) (i32.const 8)))
             (drop (call $print (i32.const 1) (i32.const 2048) (i32.const 4)))
             (drop (call $print (i32.const 1) (i32.const 2100) (i32.load (i32.const 2204))))
             (i32.store8 (i32.const 304)
               (call $udp_send_to (i32.load (i32.const 200)) (i32.const 2048) (i32.const 4)
                 (i32.const 2100) (i32.load (i32.const 2204))))
             (i32.store8 (i32.const 305)
               (call $udp_recv_from (i32.load (i32.const 200)) (i32.const 2048) (i32.const 4)
                 (i32.const 2100) (i32.const 64) (i32.const 2200)))
             (drop (call $print (i32.const 1) (i32.const 304) (i32.const 2)))
             (drop (call $fd_close (i32.load (i32.const 200)))))"#,
    );
    let fake = Fake::new();
    fake.on_sleep(|s| {
        s.udp[0].borrow_mut().datagram(peer(), b"hello!");
    });
    assert_eq!(run(&fake, &wasm, &[]), 0);
    let mut expected = vec![
        errno::SUCCESS as u8,
        errno::SUCCESS as u8,
        errno::AGAIN as u8,
    ];
    expected.extend_from_slice(b"127.0.0.1:40000");
    expected.push(errno::SUCCESS as u8);
    expected.extend_from_slice(&6u32.to_le_bytes());
    expected.extend_from_slice(&13u32.to_le_bytes());
    expected.extend_from_slice(b"hell10.0.0.1:5000");
    expected.extend_from_slice(&[errno::SUCCESS as u8, errno::AGAIN as u8]);
    assert_eq!(fake.0.borrow().stdout, expected);
    let readable = EventRecord {
        kind: kind::READABLE,
        id: 4,
        value: 0,
    };
    assert_eq!(batches(&fake), [vec![readable]]);
    let pipe = fake.0.borrow().udp[0].clone();
    assert_eq!(pipe.borrow().sent, [(peer(), b"hell".to_vec())]);
    // Closed: only the test holds the socket's pipe now.
    assert_eq!(Rc::strong_count(&pipe), 2);
    assert_eq!(fake.0.borrow().sleeps, [None]);
}

/// Every argument is checked before the host sees it: each call's errno
/// is one byte of standard output, in order.
#[test]
fn bad_arguments_and_refused_binds_give_their_errnos() {
    let wasm = module(
        r#"(data (i32.const 256) "127.0.0.1:7000")
           (data (i32.const 272) "nonsense")
           (data (i32.const 280) "127.0.0.1:9")
           (data (i32.const 292) "\ff\fe")
           (func $e (param $i i32) (param $v i32) (i32.store8 (i32.add (i32.const 512) (local.get $i)) (local.get $v)))
           (func (export "_start")
             (call $e (i32.const 0) (call $udp_bind (i32.const 256) (i32.const 14) (i32.const 200)))
             (call $e (i32.const 1) (call $udp_bind (i32.const 256) (i32.const 14) (i32.const 204)))
             (call $e (i32.const 2) (call $udp_bind (i32.const 272) (i32.const 8) (i32.const 204)))
             (call $e (i32.const 3) (call $udp_bind (i32.const 280) (i32.const 11) (i32.const 204)))
             (call $e (i32.const 4) (call $udp_bind (i32.const 292) (i32.const 2) (i32.const 204)))
             (call $e (i32.const 5) (call $udp_bind (i32.const 65530) (i32.const 14) (i32.const 204)))
             (call $e (i32.const 6) (call $udp_bind (i32.const 256) (i32.const 14) (i32.const 65534)))
             (call $e (i32.const 7)
               (call $udp_send_to (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 256) (i32.const 14)))
             (call $e (i32.const 8)
               (call $udp_send_to (i32.const 99) (i32.const 0) (i32.const 1) (i32.const 256) (i32.const 14)))
             (call $e (i32.const 9)
               (call $udp_send_to (i32.load (i32.const 200)) (i32.const 0) (i32.const 65528) (i32.const 256) (i32.const 14)))
             (call $e (i32.const 10)
               (call $udp_send_to (i32.load (i32.const 200)) (i32.const 0) (i32.const 1) (i32.const 272) (i32.const 8)))
             (call $e (i32.const 11)
               (call $udp_send_to (i32.load (i32.const 200)) (i32.const 65535) (i32.const 2) (i32.const 256) (i32.const 14)))
             (call $e (i32.const 12)
               (call $udp_recv_from (i32.load (i32.const 200)) (i32.const 2048) (i32.const 16)
                 (i32.const 2100) (i32.const 46) (i32.const 2200)))
             (call $e (i32.const 13)
               (call $udp_recv_from (i32.load (i32.const 200)) (i32.const 65530) (i32.const 16)
                 (i32.const 2100) (i32.const 64) (i32.const 2200)))
             (call $e (i32.const 14)
               (call $udp_recv_from (i32.const 3) (i32.const 2048) (i32.const 16)
                 (i32.const 2100) (i32.const 64) (i32.const 2200)))
             (call $e (i32.const 15)
               (call $udp_local_addr (i32.load (i32.const 200)) (i32.const 2100) (i32.const 10) (i32.const 2200)))
             (call $e (i32.const 16)
               (call $udp_send_to (i32.load (i32.const 200)) (i32.const 0) (i32.const 65527) (i32.const 256) (i32.const 14)))
             (call $e (i32.const 17) (call $fd_close (i32.load (i32.const 200))))
             (call $e (i32.const 18)
               (call $udp_local_addr (i32.load (i32.const 200)) (i32.const 2100) (i32.const 64) (i32.const 2200)))
             (drop (call $print (i32.const 1) (i32.const 512) (i32.const 19))))"#,
    );
    let fake = Fake::new();
    let refused: SocketAddr = "127.0.0.1:9".parse().unwrap();
    fake.0
        .borrow_mut()
        .udp_refused
        .insert(refused, errno::ACCES);
    assert_eq!(run(&fake, &wasm, &[]), 0);
    let expected: Vec<u8> = [
        errno::SUCCESS,
        errno::ADDRINUSE,
        errno::INVAL,
        errno::ACCES,
        errno::ILSEQ,
        errno::FAULT,
        errno::FAULT,
        errno::BADF,
        errno::BADF,
        errno::MSGSIZE,
        errno::INVAL,
        errno::FAULT,
        errno::INVAL,
        errno::FAULT,
        errno::BADF,
        errno::INVAL,
        errno::SUCCESS,
        errno::SUCCESS,
        errno::BADF,
    ]
    .iter()
    .map(|&e| e as u8)
    .collect();
    assert_eq!(fake.0.borrow().stdout, expected);
    // Only the one good bind and the one good send reached the host.
    let s = fake.0.borrow();
    assert_eq!(s.udp.len(), 1);
    let sent = &s.udp[0].borrow().sent;
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].1.len(), 65_527);
}

/// A refused send (an `ERROR` frame, §12.3) is reported once, in order
/// with the datagrams: by the first `udp_send_to` or `udp_recv_from` that
/// finds it first in line. A send that finds a datagram first holds it
/// for the next receive; a send that finds the error sends nothing.
#[test]
fn a_refused_send_is_reported_once_in_order_with_the_datagrams() {
    let wasm = module(
        r#"(data (i32.const 256) "0.0.0.0:53")
           (data (i32.const 272) "10.0.0.1:5000")
           (func $e (param $i i32) (param $v i32) (i32.store8 (i32.add (i32.const 512) (local.get $i)) (local.get $v)))
           (func $recv (result i32)
             (call $udp_recv_from (i32.load (i32.const 200)) (i32.const 2048) (i32.const 16)
               (i32.const 2100) (i32.const 64) (i32.const 2200)))
           (func $send (param $byte i32) (result i32)
             (i32.store8 (i32.const 600) (local.get $byte))
             (call $udp_send_to (i32.load (i32.const 200)) (i32.const 600) (i32.const 1) (i32.const 272) (i32.const 13)))
           (func (export "_start")
             (drop (call $udp_bind (i32.const 256) (i32.const 10) (i32.const 200)))
             (drop (call $event_buffer (i32.const 1024) (i32.const 8)))
             (drop (call $interest (i32.load (i32.const 200)) (i32.const 1))))
           (func (export "weft_on_events") (param $n i32)
             (call $e (i32.const 0) (call $send (i32.const 120)))
             (call $e (i32.const 1) (call $recv))
             (call $e (i32.const 2) (i32.load8_u (i32.const 2048)))
             (call $e (i32.const 3) (call $send (i32.const 121)))
             (call $e (i32.const 4) (call $recv))
             (call $e (i32.const 5) (i32.load8_u (i32.const 2048)))
             (call $e (i32.const 6) (call $recv))
             (call $e (i32.const 7) (call $send (i32.const 122)))
             (call $e (i32.const 8) (call $recv))
             (drop (call $print (i32.const 1) (i32.const 512) (i32.const 9)))
             (drop (call $interest (i32.load (i32.const 200)) (i32.const 0))))"#,
    );
    let fake = Fake::new();
    fake.on_sleep(|s| {
        s.udp[0]
            .borrow_mut()
            .datagram(peer(), b"1")
            .error(errno::ACCES)
            .datagram(peer(), b"2")
            .error(errno::HOSTUNREACH);
    });
    assert_eq!(run(&fake, &wasm, &[]), 0);
    let expected: Vec<u8> = [
        errno::SUCCESS,
        errno::SUCCESS,
        b'1' as i32,
        errno::ACCES,
        errno::SUCCESS,
        b'2' as i32,
        errno::HOSTUNREACH,
        errno::SUCCESS,
        errno::AGAIN,
    ]
    .iter()
    .map(|&e| e as u8)
    .collect();
    assert_eq!(fake.0.borrow().stdout, expected);
    let sent: Vec<Vec<u8>> = fake.0.borrow().udp[0]
        .borrow()
        .sent
        .iter()
        .map(|(to, payload)| {
            assert_eq!(*to, peer());
            payload.clone()
        })
        .collect();
    assert_eq!(sent, [b"x".to_vec(), b"z".to_vec()]);
}

/// A socket whose stream the monitor ends is `CLOSED` with its code, and
/// every later call on it fails.
#[test]
fn a_socket_the_monitor_ends_is_closed_with_its_code() {
    let wasm = module(
        r#"(data (i32.const 256) "127.0.0.1:0")
           (func (export "_start")
             (drop (call $udp_bind (i32.const 256) (i32.const 11) (i32.const 200)))
             (drop (call $event_buffer (i32.const 1024) (i32.const 8)))
             (drop (call $interest (i32.load (i32.const 200)) (i32.const 1))))
           (func (export "weft_on_events") (param $n i32)
             (drop (call $print (i32.const 2) (i32.const 1024) (i32.mul (local.get $n) (i32.const 16))))
             (i32.store8 (i32.const 300)
               (call $udp_recv_from (i32.load (i32.const 200)) (i32.const 2048) (i32.const 16)
                 (i32.const 2100) (i32.const 64) (i32.const 2200)))
             (drop (call $print (i32.const 1) (i32.const 300) (i32.const 1))))"#,
    );
    let fake = Fake::new();
    let unreachable = weft_control::frame::Code::Unreachable as u32;
    fake.on_sleep(move |s| s.udp[0].borrow_mut().ended = Some(unreachable));
    assert_eq!(run(&fake, &wasm, &[]), 0);
    let closed = EventRecord {
        kind: kind::CLOSED,
        id: 4,
        value: u64::from(unreachable),
    };
    assert_eq!(batches(&fake), [vec![closed]]);
    assert_eq!(
        fake.0.borrow().stdout,
        [crate::fake::State::UDP_ENDED_ERRNO as u8]
    );
}
