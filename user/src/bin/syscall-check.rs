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
    try_all(&cases);
    // SAFETY: a zero-length map is refused before any memory is touched.
    println!("map zero bytes: {:?}", unsafe {
        syscall(nr::MAP, 0, 0, 0, 0)
    });
    let process_cases: [(&str, u64, [u64; 3]); 7] = [
        ("spawn unmapped request", nr::SPAWN, [0x1000_0000, 0, 0]),
        ("spawn kernel request", nr::SPAWN, [kernel_addr, 0, 0]),
        ("kill pid 1", nr::KILL, [1, 0, 0]),
        ("kill unknown pid", nr::KILL, [999, 0, 0]),
        ("await unknown pid", nr::AWAIT, [999, 0, 0]),
        (
            "processes into kernel memory",
            nr::PROCESSES,
            [kernel_addr, 4, 0],
        ),
        ("process unknown pid", nr::PROCESS, [999, 0x20_0000, 0]),
    ];
    try_all(&process_cases);
    spawn_requests();
    0
}

/// Makes each call and prints its result.
fn try_all(cases: &[(&str, u64, [u64; 3])]) {
    for &(name, number, [a, b, c]) in cases {
        // SAFETY: every pointer here is deliberately invalid; the kernel must
        // refuse it without touching it on the program's behalf.
        let r = unsafe { syscall(number, a, b, c, 0) };
        println!("{name}: {r:?}");
    }
}

/// Spawn requests that are well placed but wrong inside.
fn spawn_requests() {
    use weft_control::process::{SpawnRequest, source, tier};
    let name = b"hello";
    let mut args = [0u8; 64];
    let args_len = weft_control::args::encode(&["hello"], &mut args).unwrap_or(0);
    let good = SpawnRequest {
        source: source::BUNDLED,
        tier: tier::DEFAULT,
        image_addr: name.as_ptr() as u64,
        image_len: name.len() as u64,
        args_addr: args.as_ptr() as u64,
        args_len: args_len as u64,
        heap_bytes: 0,
    };
    let cases = [
        ("spawn unknown source", SpawnRequest { source: 9, ..good }),
        ("spawn unknown tier", SpawnRequest { tier: 9, ..good }),
        (
            "spawn bundled program compiled",
            SpawnRequest {
                tier: tier::COMPILED,
                ..good
            },
        ),
        (
            "spawn unknown name",
            SpawnRequest {
                image_len: 3,
                ..good
            },
        ),
        (
            "spawn huge heap",
            SpawnRequest {
                heap_bytes: 1 << 40,
                ..good
            },
        ),
        (
            "spawn bad arguments block",
            SpawnRequest {
                args_len: 3,
                ..good
            },
        ),
        (
            "spawn ELF that is not one",
            SpawnRequest {
                source: source::ELF,
                ..good
            },
        ),
    ];
    for (what, req) in cases {
        let bytes = req.encode();
        // SAFETY: the request and what it points to are live for the call.
        let r = unsafe { syscall(nr::SPAWN, bytes.as_ptr() as u64, 0, 0, 0) };
        println!("{what}: {r:?}");
    }
}
