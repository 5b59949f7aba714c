//! The process pool over a long run (PROTOCOL.md §14.4): a guest spawns
//! and reaps many short programs, a few at a time, and keeps spawning.

mod common;

use common::{guest_program, run};

/// Spawns in the run: at `--mem 64` the pool runs out of frames that were
/// never page tables every few hundred spawns, so it is laundered dozens of
/// times (a pool that did not launder failed after ~360).
const SPAWNS: usize = 20_000;

#[test]
fn a_small_guest_spawns_and_reaps_twenty_thousand_programs() {
    let churn = guest_program("churn");
    let spawns = SPAWNS.to_string();
    let (code, out, err) = run(&[
        "run",
        "--mem",
        "64",
        "--timeout",
        "900",
        &churn,
        &spawns,
        "4",
        "hello",
    ]);
    assert_eq!(code, 0, "stderr: {err}");
    let summary = format!("churn: {SPAWNS} spawned, {SPAWNS} exited with status 0 in ");
    assert!(
        out.lines().any(|l| l.starts_with(&summary)),
        "no `{summary}` line; stderr: {err}"
    );
    // Every child was heard: a table frame translating through a stale
    // shadow sends a child's output to another process's pipe region.
    assert_eq!(
        out.lines().filter(|l| *l == "Hello from Weft!").count(),
        SPAWNS,
        "stderr: {err}"
    );
}
