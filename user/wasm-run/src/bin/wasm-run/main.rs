//! `wasm-run`: the Wasm runtime as a ring-3 program. `weft run app.wasm
//! ARGS` boots it with the module in its payload block (PROTOCOL.md §4.1);
//! it runs the module with `weft_wasm_run::run` over the guest's streams
//! ([`guest::Guest`]), with its arguments and environment (§4) and the
//! `--listen` grants preopened for the first app.
//! Under `weft daemon` its move stream (§19.3) may start the app from a
//! snapshot instead, and move it to another device later.
//!
//! Exit status: the first app's (see `weft_wasm_run::run`), 0 when it
//! moved; 2 when there is no module, or its snapshot cannot be restored.
#![no_std]
#![no_main]

extern crate alloc;

mod guest;
mod refusal;

use weft_control::layout::{USER_PAYLOAD_ADDR, USER_PAYLOAD_MAX};
use weft_user::{Args, eprintln};
use weft_wasm_run::UNUSABLE;

weft_user::entry!(main);

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
    let status = weft_wasm_run::run(
        guest::Guest,
        module,
        (0..args.len())
            .filter_map(|i| args.get_bytes(i).map(<[u8]>::to_vec))
            .collect(),
        args.vars().map(|(k, v)| [k, b"=", v].concat()).collect(),
        weft_user::net::listen_grants().collect(),
    );
    // A process status is 0..=125 (the rest are weft's own, or a shell's
    // for signals): say why the program ends with 125 instead, as wasmtime
    // refuses such a status with a message.
    if !(0..=125).contains(&status) {
        let name = alloc::string::String::from_utf8_lossy(args.get_bytes(0).unwrap_or(b"module"));
        eprintln!("weft: {name}: exit status {status} is outside 0..=125; ending with 125");
    }
    status
}
