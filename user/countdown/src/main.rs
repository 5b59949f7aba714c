//! `countdown [N]`: adds N, N-1, ..., 1 (N is 10 if not given) in a
//! function of its own and prints the sum. The gdb session test
//! (monitor/tests/gdb.rs) breaks in that function and reads its frame.
#![no_std]
#![no_main]

use weft_user::{Args, println};

weft_user::entry!(main);

fn main(args: Args) -> i32 {
    let from = args
        .iter()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(10);
    let total = sum_down(core::hint::black_box(from));
    println!("sum {total}");
    0
}

/// `from + (from - 1) + ... + 1`.
#[inline(never)]
fn sum_down(from: u64) -> u64 {
    let mut total = 0;
    let mut left = from;
    while left > 0 {
        total += left;
        left -= 1;
    }
    total
}
