//! `hello [ARGS]...`: prints a greeting, then each argument on its own line.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::string::String;
use core::fmt::Write;
use weft_user::{Args, print};

weft_user::entry!(main);

fn main(args: Args) -> i32 {
    // One write for the whole output: every syscall is a trip through ring 0.
    let mut out = String::from("Hello from Weft!\n");
    for arg in args.iter().skip(1) {
        let _ = writeln!(out, "{arg}");
    }
    print!("{out}");
    0
}
