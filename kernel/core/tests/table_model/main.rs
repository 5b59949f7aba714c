//! The process table and the scheduling decision against a simple model:
//! random sequences of spawn, exit, fault, kill, await, block, map, stream
//! events, clock ticks and scheduling steps are applied to a
//! [`Table`] and to a plain list of processes that follows PROTOCOL.md §14
//! written the obvious way; after every step both must agree on every
//! slot, every answer and every decision, and the table's own invariants
//! must hold.

use proptest::prelude::*;
use weft_control::error::ErrorCode;
use weft_control::layout::{PAGE_SIZE, USER_HEAP_TOP};
use weft_control::process::{CRASHED_STATUS, KILLED_STATUS, MAX_PROCESSES};
use weft_kernel_core::pick::{Next, Wait};
use weft_kernel_core::table::{Admitted, MapRequest, State, Table};

mod model;

use model::Model;

const SLICE: u64 = 1_000;
const HEAP: u64 = 0x4000_0080_0000;

/// One thing that happens to the table. Calls are made by the running
/// process; while none runs (the kernel is in its scheduling loop) they
/// are skipped.
#[derive(Clone, Debug)]
enum Op {
    /// `spawn`; the monitor refuses the slots in `refuse` (their regions
    /// still drain) and, with `fail`, fails outright at the first slot it
    /// accepts.
    Spawn { refuse: u16, fail: bool },
    /// `exit(status)` (not by the first program, whose exit ends the guest).
    Exit(u32),
    /// A fault at ring 3 (likewise).
    Fault,
    /// `kill(pid)`.
    Kill(u32),
    /// `await(pid)`: collect, and if the child still runs, block on it
    /// with this timeout (`None`: no limit) unless `block` is false.
    Await {
        pid: u32,
        block: bool,
        timeout: Option<u64>,
    },
    /// A block on streams (`wait` found no interrupt since `seen`).
    WaitStreams { timeout: Option<u64> },
    /// `sleep`.
    Sleep(u64),
    /// `map(len)`; with `fail`, the monitor refuses.
    Map { len: u64, fail: bool },
    /// A stream interrupt waking these slots (bit per slot).
    Wake(u32),
    /// Time passes.
    Tick(u64),
    /// The scheduler decides and carries out its decision.
    Schedule,
}

fn op() -> impl Strategy<Value = Op> {
    let pid = 0u32..20;
    let timeout = prop::option::of(0u64..5_000);
    prop_oneof![
        4 => (any::<u16>(), prop::bool::weighted(0.1))
            .prop_map(|(refuse, fail)| Op::Spawn { refuse: refuse & refuse >> 3, fail }),
        2 => (0u32..=125).prop_map(Op::Exit),
        1 => Just(Op::Fault),
        2 => pid.clone().prop_map(Op::Kill),
        3 => (pid, any::<bool>(), timeout.clone())
            .prop_map(|(pid, block, timeout)| Op::Await { pid, block, timeout }),
        1 => timeout.prop_map(|timeout| Op::WaitStreams { timeout }),
        1 => (0u64..5_000).prop_map(Op::Sleep),
        1 => (prop_oneof![0u64..3 * PAGE_SIZE, Just(u64::MAX), Just(USER_HEAP_TOP)], prop::bool::weighted(0.2))
            .prop_map(|(len, fail)| Op::Map { len, fail }),
        2 => (1u32..=u32::MAX >> (32 - MAX_PROCESSES)).prop_map(Op::Wake),
        2 => (0u64..3_000).prop_map(Op::Tick),
        6 => Just(Op::Schedule),
    ]
}

fn admitted() -> Admitted {
    Admitted {
        root: 0x10_0000,
        heap_base: HEAP,
        kernel_stack: 0xFFFF_8000_0020_0000,
    }
}

/// Applies `op` to both; returns an error describing the first difference.
/// `wakes` holds the monitor's wake bits until the next decision takes them.
fn step(t: &mut Table, m: &mut Model, wakes: &mut u32, op: &Op) -> Result<(), TestCaseError> {
    let running = m.running().map(|p| p.slot);
    prop_assert_eq!(
        t.running()
            .filter(|p| p.state() == State::Runnable)
            .map(|_| t.current()),
        running
    );
    match *op {
        // The kernel takes the monitor's wake bits at its next decision.
        Op::Wake(bits) => *wakes |= bits,
        Op::Tick(dt) => m.now += dt,
        Op::Schedule => {
            let bits = std::mem::take(wakes);
            for (slot, pending) in m.pending.iter_mut().enumerate() {
                *pending |= bits & (1 << slot) != 0;
            }
            let want = m.pick();
            let got = t.pick(m.now, bits, SLICE);
            prop_assert_eq!(got, want);
            match got.next {
                Next::Run(slot) => {
                    prop_assert_eq!(t.process(slot).map(|p| p.state()), Some(State::Runnable));
                    let s = t.switch_to(slot, m.now);
                    prop_assert_eq!(s.map(|s| (s.from, s.to)), Some((m.current, slot)));
                    m.switch(slot);
                }
                Next::Stay => {
                    prop_assert_eq!(t.running().map(|p| p.state()), Some(State::Runnable))
                }
                Next::Idle => prop_assert!(
                    t.occupied()
                        .all(|s| t.process(s).is_some_and(|p| p.state() != State::Runnable))
                ),
            }
        }
        // Every other op is a call by the running process.
        _ if running.is_none() => {}
        Op::Spawn { refuse, fail } => {
            let (want_offered, want) = m.spawn(refuse, fail);
            let mut offered = Vec::new();
            let got = t.spawn(|a| {
                offered.push(a.slot);
                if refuse & (1 << a.slot) != 0 {
                    Err(ErrorCode::TooManyProcesses)
                } else if fail {
                    Err(ErrorCode::OutOfMemory)
                } else {
                    Ok(admitted())
                }
            });
            prop_assert_eq!(offered, want_offered);
            prop_assert_eq!(got, want);
            if let Ok(pid) = got {
                // Pids only increase, so none is handed out twice.
                prop_assert!(pid > m.last_spawned);
                m.last_spawned = pid;
            }
        }
        Op::Exit(_) | Op::Fault if running == Some(0) => {}
        Op::Exit(status) => {
            let pid = m.running_mut().pid;
            m.end(pid, status);
            t.end(t.current(), status);
        }
        Op::Fault => {
            let pid = m.running_mut().pid;
            m.end(pid, CRASHED_STATUS);
            t.end(t.current(), CRASHED_STATUS);
        }
        Op::Kill(pid) => {
            let got = t.kill_target(pid).map(|slot| t.end(slot, KILLED_STATUS));
            prop_assert_eq!(got, m.kill(pid));
        }
        Op::Await {
            pid,
            block,
            timeout,
        } => {
            let me = m.running_mut().pid;
            let want = m.collect(pid);
            prop_assert_eq!(t.collect(pid), want);
            if let Ok(Some(status)) = want {
                // Only the parent learns a status, and it is the one the
                // child ended with.
                prop_assert!(m.ended_with.contains(&(pid, status)));
                prop_assert!(me != pid);
            }
            if want == Ok(None) && block {
                m.block(Wait::Child(pid), timeout);
                t.block(Wait::Child(pid), timeout.map(|d| m.now + d));
            }
        }
        Op::WaitStreams { timeout } => {
            m.block(Wait::Streams, timeout);
            t.block(Wait::Streams, timeout.map(|d| m.now + d));
        }
        Op::Sleep(ns) => {
            m.block(Wait::Timer, Some(ns));
            t.block(Wait::Timer, Some(m.now + ns));
        }
        Op::Map { len, fail } => {
            let want = m.map(len, fail);
            let slot = t.current();
            let got = t.map(len, |r: MapRequest| {
                assert_eq!((r.slot, r.root), (slot, t_root(slot)));
                assert!(r.start + r.pages * PAGE_SIZE <= USER_HEAP_TOP);
                if fail {
                    Err(ErrorCode::OutOfMemory)
                } else {
                    Ok(())
                }
            });
            prop_assert_eq!(got, want);
        }
    }
    same(t, m)
}

/// The page-table root the harness gives the process in `slot`.
fn t_root(slot: usize) -> u64 {
    if slot == 0 { 0x1000 } else { admitted().root }
}

/// The table and the model hold the same processes, and the table's
/// invariants hold.
fn same(t: &Table, m: &Model) -> Result<(), TestCaseError> {
    prop_assert_eq!(t.current(), m.current);
    for slot in 0..MAX_PROCESSES {
        let got = t
            .process(slot)
            .map(|p| (p.pid(), p.parent(), p.state(), p.cpu_ticks()));
        let want = m
            .by_slot(slot)
            .map(|p| (p.pid, p.parent, p.state, p.cpu_ticks));
        prop_assert_eq!(got, want, "slot {}", slot);
        prop_assert_eq!(t.occupied().any(|s| s == slot), got.is_some());
    }
    let mut pids: Vec<u32> = t
        .occupied()
        .filter_map(|s| t.process(s))
        .map(|p| p.pid())
        .collect();
    let n = pids.len();
    pids.sort();
    pids.dedup();
    prop_assert_eq!(pids.len(), n, "pids are unique");
    for p in t.occupied().filter_map(|s| t.process(s)) {
        // A parent is alive and holds the process; an ended process is
        // kept only for a parent (orphans are freed).
        if p.parent() != 0 {
            let parent = t.find(p.parent()).and_then(|s| t.process(s));
            prop_assert!(parent.is_some_and(|q| !matches!(q.state(), State::Ended(_))));
        } else {
            prop_assert!(!matches!(p.state(), State::Ended(_)));
        }
        prop_assert!(p.pid() < m.next_pid);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn the_table_follows_the_model(ops in prop::collection::vec(op(), 1..200)) {
        let mut t = Table::new();
        t.start(t_root(0), HEAP, 0xFFFF_FFFF_C000_0000, 0);
        let mut m = Model::new();
        let mut wakes = 0;
        for op in &ops {
            step(&mut t, &mut m, &mut wakes, op)?;
        }
    }

    /// With only runnable processes, every one of `k` gets the CPU exactly
    /// once in any `k` consecutive decisions, and the timer is armed for a
    /// slice exactly when another could run.
    #[test]
    fn round_robin_is_fair(
        spawned in 0usize..MAX_PROCESSES,
        refuse in any::<u16>(),
        rounds in 1usize..4,
    ) {
        let mut t = Table::new();
        t.start(t_root(0), HEAP, 0, 0);
        for _ in 0..spawned {
            let _ = t.spawn(|a| {
                if refuse & (1 << a.slot) != 0 && a.slot % 3 == 0 {
                    Err(ErrorCode::TooManyProcesses)
                } else {
                    Ok(admitted())
                }
            });
        }
        let k = t.occupied().count();
        let mut now = 0;
        let mut window = Vec::new();
        for _ in 0..k * rounds {
            now += 10;
            let d = t.pick(now, 0, SLICE);
            prop_assert_eq!(d.arm, (k > 1).then_some(now + SLICE));
            let slot = match d.next {
                Next::Run(s) => s,
                Next::Stay => t.current(),
                Next::Idle => return Err(TestCaseError::fail("idle with runnable processes")),
            };
            prop_assert!(k == 1 || slot != t.current());
            t.switch_to(slot, now);
            window.push(slot);
        }
        for w in window.chunks(k) {
            let mut w = w.to_vec();
            w.sort();
            prop_assert_eq!(w, t.occupied().collect::<Vec<_>>());
        }
    }
}
