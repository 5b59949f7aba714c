//! `wasm-run`: the Wasm runtime. `weft run app.wasm ARGS` boots this program
//! with the module in its payload block (PROTOCOL.md §4.1); it runs the
//! module's `_start` in an interpreter (`wasmi`) at ring 3, with the WASI
//! preview 1 calls in [`wasi`] on top of the stream API.
//!
//! Exit status: the module's own (`proc_exit`, or 0 when `_start` returns);
//! 125 with a report on standard error when the module traps; 2 when it
//! cannot be loaded (not valid Wasm, an import this runtime lacks, no
//! `_start`), as for a program that is not a valid ELF.
#![no_std]
#![no_main]

extern crate alloc;

mod fds;
mod mem;
mod wasi;

use weft_control::layout::{USER_PAYLOAD_ADDR, USER_PAYLOAD_MAX};
use weft_user::{Args, eprintln};

weft_user::entry!(main);

/// Status for a module that traps.
const TRAPPED: i32 = 125;
/// Status for a module that cannot be loaded.
const UNUSABLE: i32 = 2;

/// What the WASI host functions see.
pub struct Ctx {
    /// The module's arguments, its name first.
    pub args: alloc::vec::Vec<alloc::vec::Vec<u8>>,
    /// Its open descriptors.
    pub fds: fds::Fds,
}

/// WASI error numbers used here.
pub mod errno {
    pub const SUCCESS: i32 = 0;
    pub const ACCES: i32 = 2;
    pub const BADF: i32 = 8;
    pub const EXIST: i32 = 20;
    pub const FAULT: i32 = 21;
    pub const FBIG: i32 = 22;
    pub const ILSEQ: i32 = 25;
    pub const INVAL: i32 = 28;
    pub const IO: i32 = 29;
    pub const ISDIR: i32 = 31;
    pub const NOENT: i32 = 44;
    pub const NOSYS: i32 = 52;
    pub const NOTDIR: i32 = 54;
    pub const NOTEMPTY: i32 = 55;
    pub const NOTSUP: i32 = 58;
    pub const ROFS: i32 = 69;
    pub const SPIPE: i32 = 70;
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
    match wasi::run(module, &args) {
        Ok(status) => status,
        Err(wasi::Failure::Load(e)) => {
            eprintln!("weft: {name}: {e}");
            UNUSABLE
        }
        Err(wasi::Failure::Trap(e)) => {
            eprintln!("weft: {name}: {e}");
            TRAPPED
        }
    }
}
