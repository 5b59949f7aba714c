//! The process table (PROTOCOL.md §14): which programs exist, what each is
//! waiting for, and the calls that create and end them.
//!
//! The monitor builds every address space and owns every process's memory
//! and pipe region (the `SPAWN`, `MAP` and `PROCESS_END` hypercalls do the
//! work natively); the kernel keeps only what scheduling needs. Slot `i` of
//! the table uses pipe region `i`; slot 0 is the first program's, whose exit
//! ends the guest.
//!
//! Invariants: the table is touched only with interrupts masked on the one
//! CPU, and its lock is never held across a switch ([`crate::sched`]). A
//! slot is `None` (free), or holds a process that is runnable, blocked, or
//! ended and not yet collected by its parent. A process whose parent is
//! gone (parent 0) is freed as soon as it ends.

use crate::arch::{self, cpu};
use crate::memory::{self, FRAMES};
use crate::{hypercall, sched};
use core::sync::atomic::{AtomicU64, Ordering};
use spin::Mutex;
use weft_control::boot::BootInfo;
use weft_control::error::ErrorCode;
use weft_control::hypercall::FaultReport;
use weft_control::layout::{KERNEL_STACK_TOP, PAGE_SIZE, USER_HEAP_TOP};
use weft_control::process::{
    CRASHED_STATUS, KILLED_STATUS, MAX_PROCESSES, ProcessRecord, end, state,
};

/// Pages of each spawned process's kernel stack.
const KERNEL_STACK_PAGES: u64 = 4;

/// What a blocked process waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wait {
    /// The stream-interrupt count to differ from this one.
    Streams(u64),
    /// Only its deadline.
    Timer,
    /// Its child with this pid to end.
    Child(u32),
}

/// Where a process is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Runnable,
    /// Waiting until `wait` is over or the TSC reaches `deadline`.
    Blocked {
        wait: Wait,
        deadline: Option<u64>,
    },
    /// Ended with this status; its parent has not collected it.
    Ended(u32),
}

/// One process.
pub struct Process {
    pub pid: u32,
    /// Its spawner's pid; 0 once the spawner is gone (and for the first).
    pub parent: u32,
    pub state: State,
    /// Guest-physical address of its PML4.
    pub root: u64,
    /// Next free address of its anonymous memory area.
    heap_next: u64,
    /// TSC ticks it has run, up to its last switch out.
    pub cpu_ticks: u64,
}

/// The table.
pub struct Table {
    /// Write through [`Table::put`] and [`Table::free`], which keep
    /// `occupied` in step.
    pub slots: [Option<Process>; MAX_PROCESSES],
    /// Bit `i` set: slot `i` holds a process.
    occupied: u32,
    /// The slot running now.
    pub current: usize,
    next_pid: u32,
}

/// The one process table.
pub static TABLE: Mutex<Table> = Mutex::new(Table {
    slots: [const { None }; MAX_PROCESSES],
    occupied: 0,
    current: 0,
    next_pid: 2,
});

/// Top of each slot's kernel stack (0: not allocated yet). Slot 0 uses the
/// boot stack; the others get theirs on first use and keep it.
static STACK_TOPS: [AtomicU64; MAX_PROCESSES] = [const { AtomicU64::new(0) }; MAX_PROCESSES];

/// The top of slot `slot`'s kernel stack, allocating it on first use.
pub fn stack_top(slot: usize) -> Result<u64, ErrorCode> {
    if slot == 0 {
        return Ok(KERNEL_STACK_TOP);
    }
    let top = STACK_TOPS[slot].load(Ordering::Relaxed);
    if top != 0 {
        return Ok(top);
    }
    let base = FRAMES
        .lock()
        .alloc_contiguous(KERNEL_STACK_PAGES)
        .ok_or(ErrorCode::OutOfMemory)?;
    let top = memory::kernel_address(base) + KERNEL_STACK_PAGES * PAGE_SIZE;
    STACK_TOPS[slot].store(top, Ordering::Relaxed);
    Ok(top)
}

impl Table {
    fn put(&mut self, slot: usize, p: Process) {
        self.slots[slot] = Some(p);
        self.occupied |= 1 << slot;
    }

    fn free(&mut self, slot: usize) {
        self.slots[slot] = None;
        self.occupied &= !(1 << slot);
    }

    /// The occupied slots, in order (only these are ever looked at, so a
    /// decision costs little with few processes).
    pub fn occupied(&self) -> impl Iterator<Item = usize> + Clone + use<> {
        let mut bits = self.occupied;
        core::iter::from_fn(move || {
            (bits != 0).then(|| {
                let s = bits.trailing_zeros() as usize;
                bits &= bits - 1;
                s
            })
        })
    }

    fn find(&self, pid: u32) -> Option<usize> {
        self.occupied()
            .find(|&s| self.slots[s].as_ref().is_some_and(|p| p.pid == pid))
    }

    /// The running process.
    pub fn running(&mut self) -> Option<&mut Process> {
        self.slots[self.current].as_mut()
    }

    /// Whether `wait` is over.
    pub fn wait_over(&self, wait: Wait) -> bool {
        match wait {
            Wait::Streams(seen) => crate::apic::stream_events() != seen,
            Wait::Timer => false,
            Wait::Child(pid) => self.find(pid).is_none_or(|s| {
                matches!(
                    self.slots[s].as_ref().map(|p| p.state),
                    Some(State::Ended(_))
                )
            }),
        }
    }

    /// Marks the process in `slot` ended: its children lose their parent
    /// (the ended ones are freed), and it is freed at once if it has no
    /// parent to collect it.
    fn end(&mut self, slot: usize, status: u32) {
        let Some(pid) = self.slots[slot].as_ref().map(|p| p.pid) else {
            return;
        };
        for s in self.occupied() {
            let Some(child) = self.slots[s].as_mut().filter(|c| c.parent == pid) else {
                continue;
            };
            if matches!(child.state, State::Ended(_)) {
                self.free(s);
            } else {
                child.parent = 0;
            }
        }
        match self.slots[slot].as_mut() {
            Some(p) if p.parent != 0 => p.state = State::Ended(status),
            _ => self.free(slot),
        }
    }
}

/// Records the first program (slot 0, pid 1) and enters it at ring 3.
pub fn start(info: *mut BootInfo) -> ! {
    // SAFETY: the boot info page is the monitor's and ours alone (§2.2).
    let p = unsafe { (*info).program };
    TABLE.lock().put(
        0,
        Process {
            pid: 1,
            parent: 0,
            state: State::Runnable,
            root: p.root,
            heap_next: p.heap_base,
            cpu_ticks: 0,
        },
    );
    sched::start_clock();
    // SAFETY: as above; the stamp is a plain report for the monitor (§2.3).
    unsafe {
        core::ptr::write_volatile(
            core::ptr::addr_of_mut!((*info).stamps.program_entry),
            cpu::rdtsc(),
        )
    };
    // SAFETY: the monitor validated the program and built `root` with the
    // kernel half shared; entry and stack are mapped user addresses (§2.2).
    unsafe { arch::enter_user(p.entry, p.stack_top, p.args_addr, p.args_len, p.root) }
}

/// The running process's page-table root.
pub fn current_root() -> Result<u64, ErrorCode> {
    TABLE
        .lock()
        .running()
        .map(|p| p.root)
        .ok_or(ErrorCode::BadArgument)
}

/// `map`: maps `len` bytes (rounded up to pages) of zeroed read/write
/// memory into the running process (the monitor does the work).
pub fn map(len: u64) -> Result<u64, ErrorCode> {
    if len == 0 {
        return Err(ErrorCode::BadLength);
    }
    let bytes = len
        .checked_next_multiple_of(PAGE_SIZE)
        .ok_or(ErrorCode::BadLength)?;
    let mut t = TABLE.lock();
    let slot = t.current;
    let p = t.running().ok_or(ErrorCode::BadArgument)?;
    let start = p.heap_next;
    let end = start
        .checked_add(bytes)
        .filter(|e| *e <= USER_HEAP_TOP)
        .ok_or(ErrorCode::OutOfMemory)?;
    hypercall::map(slot, p.root, start, bytes / PAGE_SIZE)?;
    p.heap_next = end;
    Ok(start)
}

/// `spawn`: starts the program the caller's request names in a free slot
/// and returns its pid.
pub fn spawn(request: u64) -> Result<u64, ErrorCode> {
    let (caller, caller_root, pid) = {
        let mut t = TABLE.lock();
        let pid = t.next_pid;
        t.next_pid = t.next_pid.checked_add(1).unwrap_or(2);
        let p = t.running().ok_or(ErrorCode::BadArgument)?;
        (p.pid, p.root, pid)
    };
    // The monitor may refuse a slot whose pipe region is still draining
    // the streams of its previous process: try the next free one. (Nothing
    // else runs meanwhile: one CPU, interrupts masked.)
    let mut refused = ErrorCode::TooManyProcesses;
    for slot in 1..MAX_PROCESSES {
        if TABLE.lock().slots[slot].is_some() {
            continue;
        }
        let top = stack_top(slot)?;
        let info = match hypercall::spawn(slot, pid, caller_root, request) {
            Ok(info) => info,
            Err(ErrorCode::TooManyProcesses) => continue,
            Err(e) => {
                refused = e;
                break;
            }
        };
        sched::prepare(
            slot,
            top,
            arch::first_frame(info.entry, info.stack_top, info.args_addr, info.args_len),
        );
        TABLE.lock().put(
            slot,
            Process {
                pid,
                parent: caller,
                state: State::Runnable,
                root: info.root,
                heap_next: info.heap_base,
                cpu_ticks: 0,
            },
        );
        return Ok(u64::from(pid));
    }
    Err(refused)
}

/// Ends the process in `slot` (tells the monitor, which closes its streams
/// and frees its memory).
fn end_slot(slot: usize, how: u64, status: u32, report: Option<&FaultReport>) {
    let Some(pid) = TABLE.lock().slots[slot].as_ref().map(|p| p.pid) else {
        return;
    };
    hypercall::process_end(slot, pid, how, report);
    TABLE.lock().end(slot, status);
}

/// Ends the running process and runs the others; never returns. The first
/// program's end is the guest's (a fault report, or the exit status).
pub fn end_current(how: u64, status: u32, report: Option<&FaultReport>) -> ! {
    let slot = TABLE.lock().current;
    if slot == 0 {
        match report {
            Some(r) => hypercall::fault(r),
            None => hypercall::exit(u64::from(status)),
        }
    }
    // The monitor takes the page tables back: stop using them first.
    sched::leave_address_space();
    end_slot(slot, how, status, report);
    sched::schedule();
    // Unreachable: an ended process is never picked again.
    cpu::halt_forever()
}

/// `exit`.
pub fn exit(status: u32) -> ! {
    end_current(end::EXITED, status, None)
}

/// A ring-3 fault ends only the faulting process (status 125).
pub fn fault(report: &FaultReport) -> ! {
    end_current(end::FAULTED, CRASHED_STATUS, Some(report))
}

/// `kill`: ends process `pid` with status 137. The first program cannot be
/// killed (its end is the guest's).
pub fn kill(pid: u64) -> Result<u64, ErrorCode> {
    let pid = u32::try_from(pid).map_err(|_| ErrorCode::NoProcess)?;
    let (slot, current) = {
        let t = TABLE.lock();
        let slot = t
            .find(pid)
            .filter(|&s| !matches!(t.slots[s].as_ref().map(|p| p.state), Some(State::Ended(_))))
            .ok_or(ErrorCode::NoProcess)?;
        (slot, t.current)
    };
    if slot == 0 {
        return Err(ErrorCode::BadArgument);
    }
    if slot == current {
        end_current(end::KILLED, KILLED_STATUS, None);
    }
    end_slot(slot, end::KILLED, KILLED_STATUS, None);
    Ok(0)
}

/// `await`: waits for the caller's child `pid` to end (at most `timeout_ns`;
/// `u64::MAX`: no limit), collects it and returns its status.
pub fn await_child(pid: u64, timeout_ns: u64) -> Result<u64, ErrorCode> {
    let pid = u32::try_from(pid).map_err(|_| ErrorCode::NoProcess)?;
    let mut waited = false;
    loop {
        {
            let mut t = TABLE.lock();
            let me = t.running().map(|p| p.pid).ok_or(ErrorCode::BadArgument)?;
            let slot = t
                .find(pid)
                .filter(|&s| t.slots[s].as_ref().is_some_and(|p| p.parent == me))
                .ok_or(ErrorCode::NoProcess)?;
            if let Some(State::Ended(status)) = t.slots[slot].as_ref().map(|p| p.state) {
                t.free(slot);
                return Ok(u64::from(status));
            }
        }
        if waited || timeout_ns == 0 {
            return Err(ErrorCode::TimedOut);
        }
        let limit = (timeout_ns != u64::MAX).then_some(timeout_ns);
        sched::block(Wait::Child(pid), limit);
        waited = true;
    }
}

/// The records of every process (in slot order), with the monitor's
/// figures for memory, streams and names.
pub fn records() -> ([ProcessRecord; MAX_PROCESSES], usize) {
    let figures = hypercall::figures();
    let now_ticks = sched::running_ticks();
    let t = TABLE.lock();
    let mut out = [ProcessRecord::default(); MAX_PROCESSES];
    let mut n = 0;
    for slot in t.occupied() {
        let Some(p) = &t.slots[slot] else { continue };
        let f = &figures[slot];
        let ticks = p.cpu_ticks + if slot == t.current { now_ticks } else { 0 };
        let (state, status) = match p.state {
            State::Runnable => (state::RUNNABLE, 0),
            State::Blocked { .. } => (state::BLOCKED, 0),
            State::Ended(s) => (state::ENDED, s),
        };
        out[n] = ProcessRecord {
            pid: p.pid,
            parent: p.parent,
            state,
            status,
            cpu_ns: sched::ticks_to_ns(ticks),
            memory: f.memory,
            streams: f.streams,
            name: f.name,
        };
        n += 1;
    }
    (out, n)
}
