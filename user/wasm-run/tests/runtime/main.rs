//! Host tests of the runtime: real (small) Wasm modules, written as WAT,
//! run by `weft_wasm_run` over a fake host ([`fake::Fake`]).

mod descriptors;
mod environ;
mod events;
mod fabric;
mod fake;
mod fds;
mod ipc;
mod mover;
mod sched;
mod snapshot;
mod tables;
mod udp;
mod udp_moves;
mod wasi;

use fake::Fake;
use weft_control::app::{INTERFACE_BYTES, INTERFACE_SECTION};

/// The imports every test module may use, a memory, and `$print` (writes
/// `len` bytes at `ptr` to descriptor `fd`; its errno). Bytes 0–255 are
/// the helpers' scratch space.
const PRELUDE: &str = r#"
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_close" (func $fd_close (param i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_readdir" (func $fd_readdir (param i32 i32 i32 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_open" (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_sizes_get" (func $args_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_get" (func $args_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_sizes_get" (func $environ_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_get" (func $environ_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "clock_time_get" (func $clock_time_get (param i32 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll_oneoff (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "sock_accept" (func $sock_accept (param i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (import "weft" "event_buffer" (func $event_buffer (param i32 i32) (result i32)))
  (import "weft" "interest" (func $interest (param i32 i32) (result i32)))
  (import "weft" "timer" (func $timer (param i64 i64) (result i32)))
  (import "weft" "tcp_listen" (func $tcp_listen (param i32 i32 i32) (result i32)))
  (import "weft" "tcp_connect" (func $tcp_connect (param i32 i32 i32) (result i32)))
  (import "weft" "spawn" (func $spawn (param i32 i32 i32 i32 i64 i32) (result i32)))
  (import "weft" "fabric_call" (func $fabric_call (param i32 i32 i32 i32 i32) (result i32)))
  (import "weft" "fabric_reply" (func $fabric_reply (param i32 i32 i32) (result i32)))
  (import "weft" "fabric_watch" (func $fabric_watch (param i32) (result i32)))
  (import "weft" "fabric_event" (func $fabric_event (param i32 i32 i32 i32) (result i32)))
  (import "weft" "ipc_serve" (func $ipc_serve (param i32 i32 i32 i32) (result i32)))
  (import "weft" "ipc_open" (func $ipc_open (param i32) (result i32)))
  (import "weft" "ipc_send" (func $ipc_send (param i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (import "weft" "ipc_receive" (func $ipc_receive (param i32 i32 i32 i32 i32) (result i32)))
  (import "weft" "ipc_reply" (func $ipc_reply (param i32 i64 i32 i32) (result i32)))
  (import "weft" "ipc_refuse" (func $ipc_refuse (param i32 i64 i32 i32) (result i32)))
  (import "weft" "ipc_cancel" (func $ipc_cancel (param i32 i32) (result i32)))
  (import "weft" "udp_bind" (func $udp_bind (param i32 i32 i32) (result i32)))
  (import "weft" "udp_send_to" (func $udp_send_to (param i32 i32 i32 i32 i32) (result i32)))
  (import "weft" "udp_recv_from" (func $udp_recv_from (param i32 i32 i32 i32 i32 i32) (result i32)))
  (import "weft" "udp_local_addr" (func $udp_local_addr (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func $print (param $fd i32) (param $ptr i32) (param $len i32) (result i32)
    (i32.store (i32.const 0) (local.get $ptr))
    (i32.store (i32.const 4) (local.get $len))
    (call $fd_write (local.get $fd) (i32.const 0) (i32.const 1) (i32.const 8)))
"#;

/// The module of `body` (exports and data) after the prelude, stating this
/// interface version as the SDK does (PROTOCOL.md §13.3).
pub fn module(body: &str) -> Vec<u8> {
    wat::parse_str(format!(
        "(module {} {PRELUDE} {body})",
        interface_section(&INTERFACE_BYTES)
    ))
    .expect("valid WAT")
}

/// A custom section stating `bytes` as the interface version.
pub fn interface_section(bytes: &[u8]) -> String {
    let escaped: String = bytes.iter().map(|b| format!("\\{b:02x}")).collect();
    format!(r#"(@custom "{INTERFACE_SECTION}" "{escaped}")"#)
}

/// `text` as a WAT string's contents.
fn wat_string(text: &str) -> String {
    text.replace('\n', "\\n")
}

/// A command that prints `text` (at most 64 bytes) to standard output.
/// A command that sleeps one second (`poll_oneoff` on a clock), then
/// prints `woke`.
pub fn sleeper() -> Vec<u8> {
    module(
        r#"(data (i32.const 256) "woke\n")
           (func (export "_start")
             (i32.store (i32.const 528) (i32.const 1))
             (i64.store (i32.const 536) (i64.const 1000000000))
             (drop (call $poll_oneoff (i32.const 512) (i32.const 1024) (i32.const 1) (i32.const 16)))
             (drop (call $print (i32.const 1) (i32.const 256) (i32.const 5))))"#,
    )
}

pub fn printer(text: &str) -> Vec<u8> {
    module(&format!(
        r#"(data (i32.const 256) "{}")
           (func (export "_start") (drop (call $print (i32.const 1) (i32.const 256) (i32.const {}))))"#,
        wat_string(text),
        text.len()
    ))
}

/// Runs `wasm` as the first app named `app.wasm` with `args` after its
/// name; its status.
pub fn run(fake: &Fake, wasm: &[u8], args: &[&str]) -> i32 {
    let mut argv = vec![b"app.wasm".to_vec()];
    argv.extend(args.iter().map(|a| a.as_bytes().to_vec()));
    weft_wasm_run::run(fake.clone(), wasm, argv, Vec::new(), Vec::new())
}

/// An event app that spawns `children` (guest paths, in order) and writes
/// each batch of events it gets, as records, to standard error (one write a
/// batch). It ends when all its children have.
pub fn supervisor(children: &[&str]) -> Vec<u8> {
    let mut data = String::new();
    let mut spawns = String::new();
    for (i, path) in children.iter().enumerate() {
        let at = 256 + 64 * i;
        data += &format!(r#"(data (i32.const {at}) "{path}")"#);
        spawns += &format!(
            "(drop (call $spawn (i32.const {at}) (i32.const {}) (i32.const 0) (i32.const 0) (i64.const 0) (i32.const 16)))",
            path.len()
        );
    }
    module(&format!(
        r#"{data}
           (func (export "_start")
             (drop (call $event_buffer (i32.const 4096) (i32.const 8)))
             {spawns})
           (func (export "weft_on_events") (param $n i32)
             (drop (call $print (i32.const 2) (i32.const 4096) (i32.mul (local.get $n) (i32.const 16)))))"#
    ))
}

/// The event records of each batch written to standard error.
pub fn batches(fake: &Fake) -> Vec<Vec<weft_control::app::EventRecord>> {
    use weft_control::app::EventRecord;
    fake.0
        .borrow()
        .stderr
        .iter()
        .map(|w| {
            w.chunks_exact(EventRecord::SIZE)
                .map(|r| EventRecord::decode(r.try_into().unwrap()))
                .collect()
        })
        .collect()
}

/// A command that spins for at least `slices` slices of fuel (each
/// iteration costs at least one unit), then prints `text`.
pub fn spinner(slices: u64, text: &str) -> Vec<u8> {
    let iterations = slices * weft_wasm_run::engine::FUEL_SLICE;
    module(&format!(
        r#"(data (i32.const 256) "{}")
           (func (export "_start") (local $i i64)
             (loop $spin
               (local.set $i (i64.add (local.get $i) (i64.const 1)))
               (br_if $spin (i64.lt_u (local.get $i) (i64.const {iterations}))))
             (drop (call $print (i32.const 1) (i32.const 256) (i32.const {}))))"#,
        wat_string(text),
        text.len()
    ))
}
