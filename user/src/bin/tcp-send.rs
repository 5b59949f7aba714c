//! `tcp-send ADDR:PORT N`: connects, writes N bytes of a pattern and exits
//! at once, without closing the connection: the monitor must still deliver
//! the bytes and then end the connection, as a host process's exit would.
//! Used by the tests.
#![no_std]
#![no_main]

extern crate alloc;

use embedded_io::Write;
use weft_user::net::{TcpStream, parse_addr};
use weft_user::{Args, eprintln, exit};

weft_user::entry!(main);

fn main(args: Args) -> i32 {
    let (Some(addr), Some(n)) = (
        args.get(1).and_then(|a| parse_addr(a).ok()),
        args.get(2).and_then(|n| n.parse::<usize>().ok()),
    ) else {
        eprintln!("usage: tcp-send ADDR:PORT N");
        return 2;
    };
    let mut conn = match TcpStream::connect(addr) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("tcp-send: {e}");
            return 1;
        }
    };
    let block: alloc::vec::Vec<u8> = (0..4096u32).map(|i| (i % 251) as u8).collect();
    let mut left = n;
    while left > 0 {
        let k = left.min(block.len());
        if let Err(e) = conn.write_all(&block[..k]) {
            eprintln!("tcp-send: {e}");
            return 1;
        }
        left -= k;
    }
    // No drop, no close: the program just ends.
    exit(0)
}
