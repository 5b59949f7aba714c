//! `env`: prints its environment (`weft run --env`), one `KEY=VALUE` a
//! line, in the order given.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec::Vec;
use weft_user::{Args, Stream};

weft_user::entry!(main);

fn main(args: Args) -> i32 {
    // One write for the whole output: the values are bytes, maybe not UTF-8.
    let mut out = Vec::new();
    for (key, value) in args.vars() {
        out.extend_from_slice(key);
        out.push(b'=');
        out.extend_from_slice(value);
        out.push(b'\n');
    }
    match Stream::Stdout.write_all(&out) {
        Ok(()) => 0,
        Err(_) => 1,
    }
}
