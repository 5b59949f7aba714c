//! `wasm-run`: the Wasm runtime. `weft run app.wasm ARGS` boots this program
//! with the module in its payload block (PROTOCOL.md §4.1); it runs the
//! module in an interpreter (`wasmi`) at ring 3, with WASI preview 1
//! ([`wasi`]) and the event app ABI ([`events`]) on top of the stream API.
//! Apps spawn other apps; the scheduler ([`sched`]) runs them all, a slice
//! of fuel at a time.
//!
//! Exit status: the first app's own (`proc_exit`, or 0 when `_start`
//! returns or an event app has nothing left to wait for); 125 with a report
//! on standard error when it traps; 2 when it cannot be loaded (not valid
//! Wasm, an import this runtime lacks, no entry point), as for a program
//! that is not a valid ELF.
#![no_std]
#![no_main]

extern crate alloc;

mod app;
mod events;
mod fds;
mod mem;
mod ops;
mod sched;
mod system;
mod wasi;

use app::{DEFAULT_MEMORY_LIMIT, Spawn};
use system::{FIRST_PID, System};
use weft_control::layout::{USER_PAYLOAD_ADDR, USER_PAYLOAD_MAX};
use weft_user::{Args, eprintln};

weft_user::entry!(main);

/// Status for a module that cannot be loaded.
const UNUSABLE: i32 = 2;

/// WASI error numbers used here.
pub mod errno {
    pub const SUCCESS: i32 = 0;
    pub const ACCES: i32 = 2;
    pub const ADDRINUSE: i32 = 3;
    pub const AGAIN: i32 = 6;
    pub const BADF: i32 = 8;
    pub const CONNREFUSED: i32 = 14;
    pub const CONNRESET: i32 = 15;
    pub const EXIST: i32 = 20;
    pub const FAULT: i32 = 21;
    pub const FBIG: i32 = 22;
    pub const HOSTUNREACH: i32 = 23;
    pub const ILSEQ: i32 = 25;
    pub const INVAL: i32 = 28;
    pub const IO: i32 = 29;
    pub const ISDIR: i32 = 31;
    pub const NOENT: i32 = 44;
    pub const NOEXEC: i32 = 45;
    pub const NOSYS: i32 = 52;
    pub const NOTCONN: i32 = 53;
    pub const NOTDIR: i32 = 54;
    pub const NOTEMPTY: i32 = 55;
    pub const NOTSOCK: i32 = 57;
    pub const NOTSUP: i32 = 58;
    pub const PERM: i32 = 63;
    pub const PIPE: i32 = 64;
    pub const ROFS: i32 = 69;
    pub const SPIPE: i32 = 70;
    pub const SRCH: i32 = 71;
    pub const TIMEDOUT: i32 = 73;
    pub const NOTCAPABLE: i32 = 76;
}

/// The module bytes in the payload block.
fn payload() -> &'static [u8] {
    // SAFETY: the monitor maps the payload block read-only at
    // USER_PAYLOAD_ADDR for every program, for its whole life, and nothing
    // writes it (§4.1); the length word comes first.
    let len = unsafe { core::ptr::read_volatile(USER_PAYLOAD_ADDR as *const u64) };
    let len = len.min(USER_PAYLOAD_MAX - 8) as usize;
    // SAFETY: as above; the block holds `len` bytes after the length word
    // (clamped to the block's largest size).
    unsafe { core::slice::from_raw_parts((USER_PAYLOAD_ADDR + 8) as *const u8, len) }
}

fn main(args: Args) -> i32 {
    let module = payload();
    if module.is_empty() {
        eprintln!("wasm-run: no module: run a .wasm file with `weft run app.wasm`");
        return UNUSABLE;
    }
    let name = args.get(0).unwrap_or("module");
    let system = match System::new() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("weft: cannot start the Wasm runtime: {e}");
            return UNUSABLE;
        }
    };
    let first = system.load(
        0,
        Spawn {
            pid: system.next_pid(),
            bytes: module,
            args: args.iter().map(|a| a.as_bytes().to_vec()).collect(),
            grants: weft_user::net::listen_grants().collect(),
            memory_limit: DEFAULT_MEMORY_LIMIT,
        },
    );
    match first {
        Ok(app) => {
            debug_assert_eq!(app.pid(), FIRST_PID);
            sched::run(&system, app)
        }
        Err(e) => {
            eprintln!("weft: {name}: {e}");
            UNUSABLE
        }
    }
}
