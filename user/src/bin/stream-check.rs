//! `stream-check`: exercises the control pipe and first frames, printing one
//! line per check for the integration tests: an unknown first-frame kind, a
//! wrong version, a file stream without `--fs-root`, opening every free
//! slot, and closing and reopening them.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec::Vec;
use weft_control::frame::{Encoder, kind};
use weft_user::stream::Stream;
use weft_user::{Args, println};

weft_user::entry!(main);

fn main(_args: Args) -> i32 {
    let mut reply = Vec::new();
    let r = Stream::connect(0x0777, b"", &mut reply);
    println!("unknown kind: {:?}", r.err().map(|e| e.code()));
    let mut s = Stream::open().expect("open");
    let mut buf = [0u8; 16];
    let mut e = Encoder::new(&mut buf, kind::TCP_CONNECT);
    e.u32(99);
    let n = e.finish().unwrap_or(0);
    let r = s.call(&buf[..n], &mut reply);
    println!(
        "bad version: {:?} status {:?}",
        r.err().map(|e| e.code()),
        s.status()
    );
    drop(s);
    let r = Stream::connect(kind::FILE_OPEN, b"", &mut reply);
    println!("file without root: {:?}", r.err().map(|e| e.code()));
    let mut open = Vec::new();
    let err = loop {
        match Stream::open() {
            Ok(s) => open.push(s),
            Err(e) => break e,
        }
    };
    println!("opened {} then: {}", open.len(), err);
    let first = open.first().map(Stream::slot);
    open.clear();
    let again = Stream::open().map(|s| s.slot());
    println!("reopened slot {:?} (first was {:?})", again.ok(), first);
    0
}
