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

mod wasi;

use weft_control::layout::{USER_PAYLOAD_ADDR, USER_PAYLOAD_MAX};
use weft_user::{Args, eprintln};

weft_user::entry!(main);

/// Status for a module that traps.
const TRAPPED: i32 = 125;
/// Status for a module that cannot be loaded.
const UNUSABLE: i32 = 2;

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
