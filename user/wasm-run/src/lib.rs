//! `weft-wasm-run`: the Weft Wasm runtime. It runs Wasm modules as apps in
//! an interpreter (`wasmi`), with WASI preview 1 ([`wasi`]) and the event
//! app ABI ([`events`], PROTOCOL.md §13), UDP sockets ([`udp`], §12),
//! fabric calls ([`fabric`], §17) and IPC by GUID ([`ipc`], §18) on top of the system's streams,
//! and schedules every app a slice of fuel at a time ([`sched`]). An event
//! app between batches can be captured as a snapshot and restored from one
//! ([`snapshot`], §19); over the move stream ([`mover`], §19.3) the monitor
//! starts the first app afresh or from a snapshot, and captures it to move
//! it to another device.
//!
//! What it owns: the engine configuration ([`engine`], also used by the
//! host-engine benchmark `monitor/benches/wasm.rs`), the apps and their
//! descriptor tables, the WASI and `weft` host functions, the process
//! table, the scheduler and the moves. What it does not own: the app-facing
//! byte layouts (`weft_control::app`, shared with the SDK
//! `user/wasm/weft-app`), or any I/O: every stream, file, socket, clock,
//! random byte and order to move comes through the [`Host`] trait. The ring-3 binary `wasm-run` (built with the `guest`
//! feature for `x86_64-unknown-none`) implements it over `weft-user`; the
//! host tests implement it with in-memory files and scripted sockets.
//!
//! Invariants:
//! - every pointer and length an app passes is checked against its memory
//!   ([`mem`]): a bad one is `EFAULT`, never a trap of the runtime;
//! - an app's trap, exhausted memory or bad call ends only that app
//!   (status 125 for a trap); the first app's end ends the runtime;
//! - a host call that would wait suspends only its app; the runtime sleeps
//!   in [`Host::wait`] only when no app can go on (and waits for the
//!   monitor's next order only while an app it captured is held);
//! - nothing the monitor sends on the move stream panics the runtime: a
//!   violation ends the moves, not the app.
//!
//! ```no_run
//! # fn demo<H: weft_wasm_run::Host>(host: H, module: &[u8]) -> i32 {
//! let args = vec![b"app.wasm".to_vec()];
//! weft_wasm_run::run(host, module, args, Vec::new(), Vec::new())
//! # }
//! ```
#![no_std]
#![deny(unsafe_code)]

extern crate alloc;

// The ahead-of-time tier alone runs code the runtime cannot check (the
// monitor's compiled artifact); its unsafe blocks say what they rely on.
#[cfg(feature = "aot")]
#[allow(unsafe_code)]
pub mod aot;
pub mod app;
pub mod bind;
pub mod engine;
pub mod events;
pub mod fabric;
pub mod fds;
pub mod host;
pub mod ipc;
pub mod ipc_end;
pub mod lines;
pub mod mem;
pub mod mover;
pub mod ops;
pub mod paths;
pub mod sched;
pub mod snapshot;
pub mod system;
pub mod tables;
pub mod udp;
pub mod wasi;

pub use host::Host;
/// The engine, for users of [`engine`] (the benchmark) that need its types.
pub use wasmi;

use alloc::vec::Vec;
use app::Spawn;
use core::net::SocketAddr;
use mover::Begin;
use system::System;
use weft_control::app::DEFAULT_MEMORY_LIMIT;

/// Status for a module that cannot be loaded, as for a program that is not
/// a valid ELF ([`weft_control::status::UNUSABLE`]).
pub const UNUSABLE: i32 = weft_control::status::UNUSABLE as i32;

/// Runs `module` as the first app with `args` (its name first), the
/// environment `env` (each `KEY=VALUE`) and the listeners `grants`
/// preopened, and everything it spawns; returns the
/// first app's status: its own (`proc_exit`, or 0 when `_start` returns or
/// an event app has nothing left to wait for), 125 when it traps (with a
/// report on standard error), [`UNUSABLE`] when it cannot be loaded (not
/// valid Wasm, an import this runtime lacks, no entry point).
///
/// Where the host has a move stream ([`Host::mover`]), the monitor says
/// first whether the app starts afresh or from a snapshot (then its own
/// arguments, and these `grants`; [`UNUSABLE`] if the snapshot cannot be
/// restored), and may later move it: the runtime then returns 0 once the
/// app is captured and the monitor ends it.
pub fn run<H: Host>(
    host: H,
    module: &[u8],
    args: Vec<Vec<u8>>,
    env: Vec<Vec<u8>>,
    grants: Vec<SocketAddr>,
) -> i32 {
    let name = args
        .first()
        .map(|a| alloc::string::String::from_utf8_lossy(a).into_owned())
        .unwrap_or_else(|| "module".into());
    let system = match System::new(host.clone()) {
        Ok(s) => s,
        Err(e) => {
            host.report(format_args!("weft: cannot start the Wasm runtime: {e}"));
            return UNUSABLE;
        }
    };
    let moves = match mover::begin(&system, module, &name, &grants) {
        Begin::Start(moves) => Some(moves),
        Begin::Restored(app, moves) => return sched::run(&system, *app, Some(moves)),
        Begin::WithoutMoves => None,
        Begin::Unusable => return UNUSABLE,
    };
    let first = system.load(
        0,
        Spawn {
            pid: system.next_pid(),
            bytes: module,
            args,
            grants,
            memory_limit: DEFAULT_MEMORY_LIMIT as usize,
        },
    );
    match first {
        Ok(mut app) => {
            app.store.data_mut().env = env;
            sched::run(&system, app, moves)
        }
        Err(e) => {
            host.report(format_args!("weft: {name}: {e}"));
            UNUSABLE
        }
    }
}
