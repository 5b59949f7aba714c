//! `crash-kernel panic|fault`: asks a kernel built with the `crash-test` feature
//! to panic or to take a ring-0 page fault. Used by the integration tests.
#![no_std]
#![no_main]

use weft_abi::{crash, nr};
use weft_user::{Args, eprintln};

weft_user::entry!(main);

fn main(args: Args) -> i32 {
    let kind = match args.get(1) {
        Some("panic") => crash::PANIC,
        Some("fault") => crash::PAGE_FAULT,
        _ => {
            eprintln!("usage: crash-kernel panic|fault");
            return 2;
        }
    };
    // SAFETY: no pointer arguments.
    let r = unsafe { weft_user::syscall::syscall(nr::CRASH, kind, 0, 0, 0) };
    eprintln!("the kernel did not crash: {r:?}");
    1
}
