//! `syscall-check`: passes hostile arguments to the kernel's syscalls and
//! prints each result, one per line. Used by the integration tests: the kernel
//! and the monitor must refuse each with an error, and keep running.
#![no_std]
#![no_main]

use weft_abi::nr;
use weft_user::syscall::syscall;
use weft_user::{Args, println};

weft_user::entry!(main);

fn main(_args: Args) -> i32 {
    let kernel_addr = 0xFFFF_FFFF_8000_1000u64;
    let cases: [(&str, u64, [u64; 3]); 7] = [
        ("write kernel address", nr::WRITE, [1, kernel_addr, 16]),
        (
            "write unmapped user address",
            nr::WRITE,
            [1, 0x1000_0000, 16],
        ),
        ("write wrapping range", nr::WRITE, [1, u64::MAX - 8, 64]),
        ("write huge length", nr::WRITE, [1, 0x20_0000, 1 << 40]),
        ("write bad fd", nr::WRITE, [7, 0x20_0000, 1]),
        ("exit status 200", nr::EXIT, [200, 0, 0]),
        ("unknown syscall", 0xDEAD, [0, 0, 0]),
    ];
    for (name, number, [a, b, c]) in cases {
        // SAFETY: every pointer here is deliberately invalid; the kernel must
        // refuse it without touching it on the program's behalf.
        let r = unsafe { syscall(number, a, b, c, 0) };
        println!("{name}: {r:?}");
    }
    // SAFETY: a zero-length map is refused before any memory is touched.
    println!("map zero bytes: {:?}", unsafe {
        syscall(nr::MAP, 0, 0, 0, 0)
    });
    0
}
