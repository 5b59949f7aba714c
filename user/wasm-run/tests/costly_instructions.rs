//! Instructions that cost more than a slice of fuel (PROTOCOL.md §13.6):
//! wasmi charges `memory.grow`, `memory.fill` and `memory.copy` by the
//! byte (64 a unit), so growing or filling 64 MiB at once costs more than
//! [`FUEL_SLICE`]. Such a call must still finish, not run out at the same
//! instruction on every turn (which hung the guest with no exits).

// The runtime tests' fake host, of which these tests use a little.
#[allow(dead_code)]
#[path = "runtime/fake.rs"]
mod fake;

use fake::Fake;
use weft_control::app::DEFAULT_MEMORY_LIMIT;
use weft_wasm_run::app::{End, Spawn};
use weft_wasm_run::engine::FUEL_SLICE;
use weft_wasm_run::system::System;

/// Wasm pages (64 KiB) whose growing or filling costs more than a slice.
const PAGES: u64 = 1024;
const _: () = assert!(PAGES * 65536 / 64 > FUEL_SLICE);

/// A command with `pages` pages of memory that runs `body` and prints
/// "done" if it returns.
fn command(pages: u64, body: &str) -> Vec<u8> {
    wat::parse_str(format!(
        r#"(module
             (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
             (memory (export "memory") {pages})
             (data (i32.const 16) "done")
             (func (export "_start")
               {body}
               (i32.store (i32.const 0) (i32.const 16))
               (i32.store (i32.const 4) (i32.const 4))
               (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"#
    ))
    .expect("valid WAT")
}

/// Runs the command `wasm` a slice at a time, at most `most` slices; how it
/// ended and in how many slices.
fn run_slices(fake: &Fake, wasm: &[u8], most: u32) -> (End, u32) {
    let system = System::new(fake.clone()).unwrap();
    let mut app = system
        .load(
            0,
            Spawn {
                pid: system.next_pid(),
                bytes: wasm,
                args: vec![b"costly".to_vec()],
                grants: Vec::new(),
                memory_limit: DEFAULT_MEMORY_LIMIT as usize,
            },
        )
        .unwrap();
    for slices in 1..=most {
        assert!(app.runnable());
        if let Some(end) = app.step() {
            return (end, slices);
        }
    }
    panic!("the call did not finish in {most} slices");
}

fn exited(end: &End) -> Option<i32> {
    match end {
        End::Exit(status) => Some(*status),
        End::Trap(_) => None,
    }
}

#[test]
fn growing_memory_by_more_than_a_slice_pays_for_finishes() {
    let fake = Fake::new();
    // The grow must succeed (return the old size, 1), or it traps.
    let wasm = command(
        1,
        &format!(
            "(if (i32.ne (memory.grow (i32.const {PAGES})) (i32.const 1)) (then unreachable))"
        ),
    );
    let (end, slices) = run_slices(&fake, &wasm, 10);
    assert_eq!(exited(&end), Some(0));
    assert!(slices <= 3, "{slices} slices");
    assert_eq!(fake.stdout(), "done");
}

#[test]
fn filling_more_memory_than_a_slice_pays_for_finishes() {
    let fake = Fake::new();
    let bytes = PAGES * 65536;
    // Fills from byte 256 to the end, then checks the last byte.
    let wasm = command(
        PAGES,
        &format!(
            "(memory.fill (i32.const 256) (i32.const 7) (i32.const {}))
             (if (i32.ne (i32.load8_u (i32.const {})) (i32.const 7)) (then unreachable))",
            bytes - 256,
            bytes - 1
        ),
    );
    let (end, slices) = run_slices(&fake, &wasm, 10);
    assert_eq!(exited(&end), Some(0));
    assert!(slices <= 3, "{slices} slices");
    assert_eq!(fake.stdout(), "done");
}

#[test]
fn a_function_larger_than_a_slice_translates_and_runs() {
    // Functions are translated when first called, at no fuel: under
    // wasmi's default costs (9 a byte) this one's translation alone would
    // cost more than a slice, and running out there cannot be resumed.
    let fake = Fake::new();
    let body = "(drop (i32.const 1))\n".repeat(60_000);
    let wasm = wat::parse_str(format!(
        r#"(module
             (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
             (memory (export "memory") 1)
             (data (i32.const 16) "done")
             (func $big {body})
             (func (export "_start")
               (call $big)
               (i32.store (i32.const 0) (i32.const 16))
               (i32.store (i32.const 4) (i32.const 4))
               (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"#
    ))
    .expect("valid WAT");
    assert!(wasm.len() as u64 * 9 > FUEL_SLICE, "{} bytes", wasm.len());
    let (end, _) = run_slices(&fake, &wasm, 10);
    assert_eq!(exited(&end), Some(0));
    assert_eq!(fake.stdout(), "done");
}
