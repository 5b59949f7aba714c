//! `wasm-aot`: the ahead-of-time tier's runtime as a ring-3 program
//! (PROTOCOL.md §13.8). `weft run --engine aot app.wasm ARGS` boots it
//! with the module the monitor compiled in its payload block (§4.1),
//! mapped read and execute; it runs the module in place as a WASI command
//! with `weft_wasm_run::aot`, over the same guest streams as `wasm-run`
//! ([`guest::Guest`]), with its arguments, environment and the `--listen`
//! grants preopened.
//!
//! Exit status: the app's (0 when `_start` returns, `proc_exit`'s); 125
//! for a trap, with a report naming it and its function; 2 when the
//! payload is no compiled module or the module cannot run here.
#![no_std]
#![no_main]

extern crate alloc;

#[path = "../wasm-run/guest.rs"]
mod guest;
mod platform;
#[path = "../wasm-run/refusal.rs"]
mod refusal;

use alloc::string::String;
use alloc::vec::Vec;
use weft_control::aot::{ARTIFACT_OFFSET, Header};
use weft_control::app::{DEFAULT_MEMORY_LIMIT, TRAPPED_STATUS};
use weft_control::layout::{USER_PAYLOAD_ADDR, USER_PAYLOAD_MAX};
use weft_user::{Args, eprintln};
use weft_wasm_run::UNUSABLE;
use weft_wasm_run::aot::{self, End, Start};

weft_user::entry!(main);

/// The compiled module in the payload block, if the block holds one.
fn artifact() -> Option<&'static [u8]> {
    // SAFETY: the monitor maps the payload block at USER_PAYLOAD_ADDR for
    // every program, for its whole life, and nothing writes it (§4.1); the
    // length word comes first.
    let len = unsafe { core::ptr::read_volatile(USER_PAYLOAD_ADDR as *const u64) };
    let len = len.min(USER_PAYLOAD_MAX - 8) as usize;
    // SAFETY: as above; the block holds `len` bytes after the length word
    // (clamped to the block's largest size).
    let payload = unsafe { core::slice::from_raw_parts((USER_PAYLOAD_ADDR + 8) as *const u8, len) };
    let header = Header::decode(payload)?;
    let start = ARTIFACT_OFFSET - 8;
    payload.get(start..start + header.artifact_len as usize)
}

fn main(args: Args) -> i32 {
    let name = String::from_utf8_lossy(args.get_bytes(0).unwrap_or(b"module")).into_owned();
    let Some(artifact) = artifact() else {
        eprintln!("wasm-aot: no compiled module: run a .wasm file with `weft run --engine aot`");
        return UNUSABLE;
    };
    let engine = match platform::engine(artifact) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("weft: {name}: cannot start the ahead-of-time runtime: {e}");
            return UNUSABLE;
        }
    };
    let start = Start {
        args: (0..args.len())
            .filter_map(|i| args.get_bytes(i).map(<[u8]>::to_vec))
            .collect(),
        env: args
            .vars()
            .map(|(k, v)| [k, b"=", v].concat())
            .collect::<Vec<_>>(),
        grants: weft_user::net::listen_grants().collect(),
        memory_limit: DEFAULT_MEMORY_LIMIT as usize,
    };
    // SAFETY: the monitor compiled the artifact with `aot::config` (the
    // header, version and CPU features are checked as it loads) and maps
    // the block read and execute, never writable, for the program's life.
    match unsafe { aot::run(&engine, guest::Guest, artifact, start) } {
        Ok(End::Exit(status)) => {
            if !(0..=125).contains(&status) {
                eprintln!("weft: {name}: exit status {status} is outside 0..=125; ending with 125");
            }
            status
        }
        Ok(End::Trap(why)) => {
            eprintln!("weft: {name} (process 1): {why}");
            TRAPPED_STATUS
        }
        Err(e) => {
            eprintln!("weft: {name}: {e}");
            UNUSABLE
        }
    }
}
