//! `fault`: reads an unmapped address, to show how a program fault is reported.
#![no_std]
#![no_main]

use weft_user::{Args, println};

weft_user::entry!(main);

/// An address no program has mapped: below the lowest load address.
const UNMAPPED: usize = 0xdead;

fn main(_args: Args) -> i32 {
    println!("reading address {UNMAPPED:#x}");
    // SAFETY: none; the read faults on purpose and the kernel ends the program.
    let v = unsafe { core::ptr::read_volatile(UNMAPPED as *const u64) };
    println!("read {v:#x}: the fault was not caught");
    1
}
