//! Edge cases of the table: spawn refusals, `map` arithmetic, CPU time.

use super::*;
use crate::end::End;

const HEAP: u64 = 0x4000_0080_0000;

fn admitted(root: u64) -> Admitted {
    Admitted {
        root,
        heap_base: HEAP,
        kernel_stack: 0xFFFF_8000_0001_0000 + root,
    }
}

const KERNEL_STACK: u64 = 0xFFFF_FFFF_C000_0000;

fn started() -> Table {
    let mut t = Table::new();
    t.start(0x1000, HEAP, KERNEL_STACK, 7);
    t
}

#[test]
fn the_first_program_is_pid_1_in_slot_0() {
    let t = started();
    let p = t.running().unwrap();
    assert_eq!((p.pid(), p.parent(), p.state()), (1, 0, State::Runnable));
    assert!(t.occupied().eq([0]));
}

#[test]
fn spawn_skips_refused_slots_and_stops_at_other_errors() {
    let mut t = started();
    let mut offered = [0; 4];
    let mut n = 0;
    let pid = t.spawn(|a| {
        offered[n] = a.slot;
        n += 1;
        assert_eq!(a.caller_root, 0x1000);
        if a.slot < 3 {
            Err(ErrorCode::TooManyProcesses)
        } else {
            Ok(admitted(0x2000))
        }
    });
    assert_eq!(pid, Ok(2));
    assert_eq!(offered[..n], [1, 2, 3]);
    assert_eq!(t.find(2), Some(3));
    assert_eq!(t.process(3).map(|p| p.parent()), Some(1));
    // Another error ends the spawn; the pid is used up all the same.
    assert_eq!(
        t.spawn(|_| Err(ErrorCode::BadImage)),
        Err(ErrorCode::BadImage)
    );
    assert_eq!(t.spawn(|_| Ok(admitted(0x3000))), Ok(4));
    assert_eq!(t.find(4), Some(1));
}

#[test]
fn a_full_table_refuses_spawns_without_asking() {
    let mut t = started();
    for i in 1..MAX_PROCESSES {
        assert_eq!(t.spawn(|_| Ok(admitted(i as u64))), Ok(i as u32 + 1));
    }
    let asked = t.spawn(|_| panic!("no free slot to offer"));
    assert_eq!(asked, Err(ErrorCode::TooManyProcesses));
    // Every slot refusing is the same answer.
    t.end(5, 0);
    assert_eq!(t.collect(6), Ok(Some(0)));
    assert_eq!(
        t.spawn(|_| Err(ErrorCode::TooManyProcesses)),
        Err(ErrorCode::TooManyProcesses)
    );
}

#[test]
fn map_hands_out_consecutive_pages_and_refuses_the_impossible() {
    let mut t = started();
    let mut asked = None;
    let at = t.map(1, |r| {
        asked = Some(r);
        Ok(())
    });
    assert_eq!(at, Ok(HEAP));
    assert_eq!(
        asked,
        Some(MapRequest {
            slot: 0,
            root: 0x1000,
            start: HEAP,
            pages: 1
        })
    );
    assert_eq!(t.map(PAGE_SIZE + 1, |_| Ok(())), Ok(HEAP + PAGE_SIZE));
    // A refusal by the monitor leaves the area where it was.
    assert_eq!(
        t.map(PAGE_SIZE, |_| Err(ErrorCode::OutOfMemory)),
        Err(ErrorCode::OutOfMemory)
    );
    assert_eq!(t.map(PAGE_SIZE, |_| Ok(())), Ok(HEAP + 3 * PAGE_SIZE));
    assert_eq!(t.map(0, |_| Ok(())), Err(ErrorCode::BadLength));
    assert_eq!(t.map(u64::MAX, |_| Ok(())), Err(ErrorCode::BadLength));
    assert_eq!(
        t.map(USER_HEAP_TOP, |_| Ok(())),
        Err(ErrorCode::OutOfMemory)
    );
    let rest = USER_HEAP_TOP - (HEAP + 4 * PAGE_SIZE);
    assert_eq!(t.map(rest, |_| Ok(())), Ok(HEAP + 4 * PAGE_SIZE));
    assert_eq!(t.map(1, |_| Ok(())), Err(ErrorCode::OutOfMemory));
}

#[test]
fn nothing_running_is_a_bad_argument() {
    let mut t = Table::new();
    assert_eq!(t.map(1, |_| Ok(())), Err(ErrorCode::BadArgument));
    assert_eq!(t.spawn(|_| Ok(admitted(1))), Err(ErrorCode::BadArgument));
    assert_eq!(t.collect(2), Err(ErrorCode::BadArgument));
    assert_eq!(t.switch_to(3, 0), None);
    assert_eq!(t.switch_to(MAX_PROCESSES, 0), None);
}

#[test]
fn cpu_time_is_charged_at_switches_and_reported() {
    let mut t = started();
    t.spawn(|_| Ok(admitted(0x2000))).unwrap();
    let s = t.switch_to(1, 107).unwrap();
    assert_eq!(
        s,
        Switch {
            from: 0,
            to: 1,
            root: 0x2000,
            kernel_stack: 0xFFFF_8000_0001_2000
        }
    );
    assert_eq!(t.process(0).map(|p| p.cpu_ticks()), Some(100));
    assert_eq!(t.running_ticks(150), 43);
    let mut figures = [SlotFigures::default(); MAX_PROCESSES];
    figures[1].memory = 4096;
    figures[1].streams = 3;
    // At 1 GHz a tick is a nanosecond.
    let (records, n) = t.records(150, &figures, 1_000_000_000);
    assert_eq!(n, 2);
    assert_eq!((records[0].pid, records[0].cpu_ns), (1, 100));
    let r = records[1];
    assert_eq!(
        (r.pid, r.parent, r.state, r.cpu_ns, r.memory, r.streams),
        (2, 1, state::RUNNABLE, 43, 4096, 3)
    );
    t.block(Wait::Timer, None);
    t.switch_to(0, 200).unwrap();
    t.end(1, End::Killed.status());
    let (records, n) = t.records(250, &figures, 1_000_000_000);
    assert_eq!(n, 2);
    assert_eq!((records[0].cpu_ns, records[1].cpu_ns), (150, 93));
    assert_eq!((records[1].state, records[1].status), (state::ENDED, 137));
}

#[test]
fn a_blocked_process_is_reported_blocked() {
    let mut t = started();
    t.block(Wait::Streams, Some(10));
    let (records, n) = t.records(8, &[SlotFigures::default(); MAX_PROCESSES], 1);
    assert_eq!(
        (n, records[0].state, records[0].status),
        (1, state::BLOCKED, 0)
    );
}

#[test]
fn halted_time_is_no_ones_and_the_status_page_says_so() {
    let mut t = started();
    t.spawn(|_| Ok(admitted(0x2000))).unwrap();
    // Slot 0 runs 7..50, blocks; the CPU halts until 1_000.
    t.block(Wait::Timer, None);
    t.halt(50);
    assert!(t.idle());
    assert_eq!(t.running_ticks(900), 0);
    // The child wakes it: switched in at 1_000, charged from there.
    t.switch_to(1, 1_000).unwrap();
    assert!(!t.idle());
    t.switch_to(0, 1_030).unwrap();
    assert_eq!(t.process(0).map(|p| p.cpu_ticks()), Some(43));
    assert_eq!(t.process(1).map(|p| p.cpu_ticks()), Some(30));
    // Halting again and staying: the time starts again at the wake.
    t.halt(1_040);
    t.stay(2_000);
    assert_eq!(t.switched_in(), 2_000);
    assert_eq!(t.running_ticks(2_005), 5);
    assert_eq!(t.process(0).map(|p| p.cpu_ticks()), Some(53));
    let s = t.slot_status(1);
    assert_eq!(
        (s.pid, s.parent, s.state, s.status, s.cpu_ticks),
        (2, 1, state::RUNNABLE, 0, 30)
    );
    t.end(1, End::Killed.status());
    let s = t.slot_status(1);
    assert_eq!((s.state, s.status), (state::ENDED, 137));
    assert_eq!(t.occupied_bits(), 0b11);
    assert_eq!(t.slot_status(5), SlotStatus::default());
}
