//! `alloc-check MIB`: allocates MIB MiB on the heap (past the area mapped at
//! entry, so the heap grows through the `map` syscall), fills it and prints a
//! checksum. Used by the integration tests.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec::Vec;
use weft_user::{Args, eprintln, println};

weft_user::entry!(main);

fn main(args: Args) -> i32 {
    let Some(Ok(mib)) = args.get(1).map(str::parse::<usize>) else {
        eprintln!("usage: alloc-check MIB");
        return 2;
    };
    let n = mib * (1 << 20) / 8;
    let mut v: Vec<u64> = Vec::with_capacity(n);
    v.extend(0..n as u64);
    let sum: u64 = v.iter().sum();
    println!("allocated {mib} MiB, sum {sum}");
    0
}
