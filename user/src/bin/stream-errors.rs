//! `stream-errors`: error paths of the stream protocols, for the
//! integration tests. It prints one line per case: the code and the message
//! the program got, and whether what must be unharmed is.
//!
//! - `stream-errors accept`: listens on the first `--listen` grant and asks
//!   to take connections that were never announced (§11.5), on its listener
//!   and on a slot that is no listener (standard output's); each must be
//!   answered with an `ERROR` frame.
//! - `stream-errors grow PATH`: creates PATH under `--fs-root` and writes a
//!   byte at offset 2^40, past the largest file the monitor lets a guest
//!   make (§10.2), which must be refused with `TooLarge`; then a byte at
//!   offset 0, on the same stream.
//! - `stream-errors corrupt ADDR`: connects to ADDR (granted by
//!   `--connect`), corrupts the `consumed` index of the connection's
//!   `to_guest` ring, connects again (the peer's cue to send) and reads:
//!   the monitor must end the first connection with `Protocol` when the
//!   peer's bytes arrive (§7.7).
//! - `stream-errors hog PATH N MS`: opens PATH (under `--fs-root`) up to N
//!   times, keeping every stream open, until the monitor refuses one (a
//!   budget, §20.1); prints how many it got and the refusal, holds them for
//!   MS milliseconds, then closes them and opens PATH once more.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::string::String;
use alloc::vec::Vec;
use embedded_io::{Read, Seek, SeekFrom, Write};
use weft_control::net_proto::{MAX_TCP_FIRST, TcpRequest};
use weft_control::streams::{USER_PIPES_ADDR, rings, slot};
use weft_data_pipe::CONSUMED;
use weft_user::fs::File;
use weft_user::net::{TcpListener, TcpStream, listen_grants, parse_addr};
use weft_user::stream::Stream;
use weft_user::{Args, Code, Error, println};

weft_user::entry!(main);

/// The code and message of a refusal, as the tests expect them.
fn refusal<T>(r: Result<T, Error>) -> (Option<Code>, String) {
    match r {
        Ok(_) => (None, String::new()),
        Err(e) => (Some(e.code()), e.message().into()),
    }
}

/// Asks to take connection `id` of the listener in slot `listener`.
fn take(listener: u32, id: u64) -> Result<(), Error> {
    let request = TcpRequest::Accept { listener, id };
    let mut params = [0u8; MAX_TCP_FIRST];
    let mut reply = Vec::new();
    Stream::connect(
        request.kind(),
        request.encode_params(&mut params),
        &mut reply,
    )
    .map(drop)
}

fn accept() -> i32 {
    let Some(addr) = listen_grants().next() else {
        println!("usage: stream-errors accept (needs --listen ADDR)");
        return 2;
    };
    let mut listener = match TcpListener::bind(addr) {
        Ok(l) => l,
        Err(e) => {
            println!("cannot listen on {addr}: {e}");
            return 1;
        }
    };
    let slot = listener.as_stream_mut().slot() as u32;
    let (code, message) = refusal(take(slot, 99));
    println!("never announced: {code:?} ({message})");
    let (code, message) = refusal(take(slot::STDOUT as u32, 0));
    println!("no listener: {code:?} ({message})");
    0
}

fn grow(path: &str) -> i32 {
    let mut file = match File::create(path) {
        Ok(f) => f,
        Err(e) => {
            println!("cannot create {path}: {e}");
            return 1;
        }
    };
    let far = file
        .seek(SeekFrom::Start(1 << 40))
        .and_then(|_| file.write(b"x"));
    let (code, message) = refusal(far);
    println!("write at 2^40: {code:?} ({message})");
    let near = file.seek(SeekFrom::Start(0)).and_then(|_| file.write(b"y"));
    println!("write at 0: {near:?}");
    match file.metadata() {
        Ok(m) => println!("size: {}", m.size),
        Err(e) => println!("metadata: {e}"),
    }
    0
}

fn hog(path: &str, n: usize, ms: u64) -> i32 {
    let mut held = Vec::new();
    let mut refused = (None, String::new());
    while held.len() < n {
        match File::open(path) {
            Ok(f) => held.push(f),
            Err(e) => {
                refused = (Some(e.code()), e.message().into());
                break;
            }
        }
    }
    let (code, message) = refused;
    println!("opened {}; refused: {code:?} ({message})", held.len());
    weft_user::sleep(core::time::Duration::from_millis(ms));
    drop(held);
    println!("after closing: {:?}", File::open(path).map(drop));
    0
}

fn corrupt(addr: &str) -> i32 {
    let connected = parse_addr(addr).and_then(TcpStream::connect);
    let mut c = match connected {
        Ok(c) => c,
        Err(e) => {
            println!("cannot connect to {addr}: {e}");
            return 1;
        }
    };
    if let Some(r) = rings(c.as_stream_mut().slot()) {
        let consumed = (USER_PIPES_ADDR + r.to_guest) as usize + CONSUMED;
        // SAFETY: the ring header lies in the pipe region, mapped read/write
        // for the program (§8); `consumed` is 8-aligned. Corrupting it is
        // the point.
        unsafe { core::ptr::write_volatile(consumed as *mut u64, u64::MAX - 3) };
    }
    // A second connection tells the peer to send: the guest consumes nothing
    // more from the corrupted ring (a read would write `consumed` again).
    let signal = parse_addr(addr).and_then(TcpStream::connect);
    println!("corrupted; second connection: {}", signal.is_ok());
    let (code, message) = refusal(c.read(&mut [0u8; 64]));
    println!("read: {code:?} ({message})");
    0
}

fn main(args: Args) -> i32 {
    match (args.get(1), args.get(2)) {
        (Some("accept"), None) => accept(),
        (Some("grow"), Some(path)) => grow(path),
        (Some("corrupt"), Some(addr)) => corrupt(addr),
        (Some("hog"), Some(path)) => {
            match (args.get(3).map(str::parse), args.get(4).map(str::parse)) {
                (Some(Ok(n)), Some(Ok(ms))) => hog(path, n, ms),
                _ => {
                    println!("usage: stream-errors hog PATH N MS");
                    2
                }
            }
        }
        _ => {
            println!("usage: stream-errors accept | grow PATH | corrupt ADDR | hog PATH N MS");
            2
        }
    }
}
