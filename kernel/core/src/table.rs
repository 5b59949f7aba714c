//! The process table (PROTOCOL.md §14.1, §14.4): which processes exist, in
//! which slot, with which pid and parent, and what each is doing.
//!
//! Invariants, kept by every method here:
//! - Slot `i`'s bit in `occupied` is set exactly when slot `i` holds a
//!   process (only `put` and `free` change either), so a slot is never held
//!   twice and a decision looks only at occupied slots.
//! - Slot 0 holds the first program (pid 1), whose end is the guest's: the
//!   kernel never ends it in the table, and no spawn lands there.
//! - Pids are handed out counting up from 2, one per spawn attempt, and are
//!   not reused while the guest runs (after `u32::MAX` spawns they would
//!   start again at 2).
//! - A slot is free, or holds a process that is runnable, blocked, or ended
//!   and not yet collected by its parent. A process whose parent is gone
//!   (parent 0) is freed as soon as it ends ([`crate::end`]).
//! - `current` is the slot that runs, or last ran: between a process's end
//!   and the next switch it may name an ended or free slot.
//! - CPU time is charged to `current` from `switched_in` until the next
//!   switch, or until the CPU halts (`idle`): halted time is no one's.
//! - The masks `runnable`, `streams`, `timed` and `children` say, bit per
//!   slot, which processes are runnable, blocked on streams, blocked with a
//!   deadline and blocked on a child; they always agree with the states
//!   (only `set_state` and `free` change a state or a mask), so a decision
//!   looks at the few slots concerned, with bit operations. `dirty` names
//!   the slots whose status-page entry changed since [`Table::take_dirty`].
//!
//! The kernel does the work (the monitor's hypercalls, the stack and page
//! table switch) in callbacks the methods take or after they answer; the
//! table changes only once that work has succeeded.

use crate::clock;
use crate::pick::Wait;
use weft_control::error::ErrorCode;
use weft_control::layout::{PAGE_SIZE, USER_HEAP_TOP};
use weft_control::process::{MAX_PROCESSES, ProcessRecord, SlotFigures, SlotStatus, state};

const _: () = assert!(MAX_PROCESSES <= u32::BITS as usize);

/// Where a process is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Running, or ready to run.
    Runnable,
    /// Waiting until `wait` is over or the TSC reaches `deadline`.
    Blocked { wait: Wait, deadline: Option<u64> },
    /// Ended with this status; its parent has not collected it.
    Ended(u32),
}

impl State {
    /// Its [`state`] code and the exit status (0 unless ended), as records
    /// and the status page give them.
    pub fn code(self) -> (u32, u32) {
        match self {
            Self::Runnable => (state::RUNNABLE, 0),
            Self::Blocked { .. } => (state::BLOCKED, 0),
            Self::Ended(s) => (state::ENDED, s),
        }
    }
}

/// One process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Process {
    pid: u32,
    parent: u32,
    pub(crate) state: State,
    root: u64,
    kernel_stack: u64,
    heap_next: u64,
    cpu_ticks: u64,
}

impl Process {
    /// Its pid.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Its spawner's pid; 0 once the spawner is gone (and for the first).
    pub fn parent(&self) -> u32 {
        self.parent
    }

    /// Where it is in its life.
    pub fn state(&self) -> State {
        self.state
    }

    /// Guest-physical address of its PML4.
    pub fn root(&self) -> u64 {
        self.root
    }

    /// TSC ticks it has run, up to its last switch out.
    pub fn cpu_ticks(&self) -> u64 {
        self.cpu_ticks
    }

    pub(crate) fn ended(&self) -> bool {
        matches!(self.state, State::Ended(_))
    }

    pub(crate) fn orphan(&mut self) {
        self.parent = 0;
    }
}

/// A slot offered to a spawn: the callback of [`Table::spawn`] builds the
/// process there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Admission {
    pub slot: usize,
    pub pid: u32,
    /// The spawner's PML4 (its request is read through it).
    pub caller_root: u64,
}

/// What the kernel built for an admitted process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Admitted {
    /// Guest-physical address of its PML4.
    pub root: u64,
    /// Where its `map` area starts.
    pub heap_base: u64,
    /// Top of its slot's kernel stack.
    pub kernel_stack: u64,
}

/// Pages to map for a `map` call, which the callback of [`Table::map`]
/// asks the monitor for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapRequest {
    pub slot: usize,
    pub root: u64,
    pub start: u64,
    pub pages: u64,
}

/// What a switch needs: where the running process's stack pointer is
/// saved, and the next one's page tables and kernel stack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Switch {
    pub from: usize,
    pub to: usize,
    pub root: u64,
    pub kernel_stack: u64,
}

/// The occupied slots of a table, in increasing order.
#[derive(Clone, Copy, Debug)]
pub struct Slots(pub(crate) u32);

impl Iterator for Slots {
    type Item = usize;

    #[inline]
    fn next(&mut self) -> Option<usize> {
        (self.0 != 0).then(|| {
            let s = self.0.trailing_zeros() as usize;
            self.0 &= self.0 - 1;
            s
        })
    }
}

/// The table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Table {
    pub(crate) slots: [Option<Process>; MAX_PROCESSES],
    /// Bit `i` set: slot `i` holds a process.
    occupied: u32,
    pub(crate) current: usize,
    next_pid: u32,
    /// TSC when the running process was switched in, or woke the CPU.
    switched_in: u64,
    /// The CPU halts with nothing to run.
    idle: bool,
    runnable: u32,
    streams: u32,
    timed: u32,
    children: u32,
    /// Slots the monitor woke (§8.3) that were not blocked on streams then:
    /// the next such block returns at once.
    pub(crate) pending: u32,
    pub(crate) dirty: u32,
}

impl Default for Table {
    fn default() -> Self {
        Self::new()
    }
}

impl Table {
    /// An empty table.
    pub const fn new() -> Self {
        Self {
            slots: [const { None }; MAX_PROCESSES],
            occupied: 0,
            current: 0,
            next_pid: 2,
            switched_in: 0,
            idle: false,
            runnable: 0,
            streams: 0,
            timed: 0,
            children: 0,
            pending: 0,
            dirty: 0,
        }
    }

    /// Records the first program (slot 0, pid 1) as running since TSC `now`.
    pub fn start(&mut self, root: u64, heap_base: u64, kernel_stack: u64, now: u64) {
        self.put(
            0,
            Process {
                pid: 1,
                parent: 0,
                state: State::Runnable,
                root,
                kernel_stack,
                heap_next: heap_base,
                cpu_ticks: 0,
            },
        );
        self.current = 0;
        self.switched_in = now;
    }

    fn put(&mut self, slot: usize, p: Process) {
        let state = p.state;
        self.slots[slot] = Some(p);
        self.occupied |= 1 << slot;
        self.pending &= !(1 << slot);
        self.set_state(slot, state);
    }

    pub(crate) fn free(&mut self, slot: usize) {
        self.slots[slot] = None;
        let keep = !(1u32 << slot);
        self.occupied &= keep;
        self.pending &= keep;
        self.clear_state_bits(keep);
    }

    /// Clears the state masks' bits outside `keep`.
    fn clear_state_bits(&mut self, keep: u32) {
        self.runnable &= keep;
        self.streams &= keep;
        self.timed &= keep;
        self.children &= keep;
    }

    /// Sets the state of the process in `slot` (if any), keeping the masks.
    pub(crate) fn set_state(&mut self, slot: usize, state: State) {
        let Some(p) = self.slots.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        p.state = state;
        let bit = 1u32 << slot;
        self.clear_state_bits(!bit);
        self.dirty |= bit;
        match state {
            State::Runnable => self.runnable |= bit,
            State::Blocked { wait, deadline } => {
                match wait {
                    Wait::Streams => self.streams |= bit,
                    Wait::Child(_) => self.children |= bit,
                    Wait::Timer => {}
                }
                if deadline.is_some() {
                    self.timed |= bit;
                }
            }
            State::Ended(_) => {}
        }
    }

    /// Bits of the runnable slots.
    #[inline]
    pub fn runnable_bits(&self) -> u32 {
        self.runnable
    }

    /// Bits of the slots blocked on streams, with a deadline, on a child.
    #[inline]
    pub(crate) fn blocked_bits(&self) -> (u32, u32, u32) {
        (self.streams, self.timed, self.children)
    }

    /// The slots whose status-page entry changed since the last call.
    #[inline]
    pub fn take_dirty(&mut self) -> Slots {
        let d = self.dirty & self.occupied;
        self.dirty = 0;
        Slots(d)
    }

    /// Whether no slot outside `slots` (bit per slot) changed since the
    /// last [`Table::take_dirty`]; if so, it takes those too.
    #[inline]
    pub fn take_dirty_within(&mut self, slots: u32) -> bool {
        if self.dirty & self.occupied & !slots != 0 {
            return false;
        }
        self.dirty = 0;
        true
    }

    /// The occupied slots, in order.
    #[inline]
    pub fn occupied(&self) -> Slots {
        Slots(self.occupied)
    }

    /// The process in `slot`, if any.
    pub fn process(&self, slot: usize) -> Option<&Process> {
        self.slots.get(slot)?.as_ref()
    }

    /// The slot that runs (or last ran).
    pub fn current(&self) -> usize {
        self.current
    }

    /// The running process.
    pub fn running(&self) -> Option<&Process> {
        self.slots[self.current].as_ref()
    }

    fn running_mut(&mut self) -> Option<&mut Process> {
        self.slots[self.current].as_mut()
    }

    /// The slot of the process with `pid` (ended or not).
    pub fn find(&self, pid: u32) -> Option<usize> {
        self.occupied()
            .find(|&s| self.slots[s].as_ref().is_some_and(|p| p.pid == pid))
    }

    /// `spawn`: takes the next pid and offers the free slots after slot 0,
    /// in order, to `start`, which builds the process there. `start`
    /// refusing a slot with `TooManyProcesses` (its pipe region still
    /// drains) moves on to the next; any other error ends the spawn with
    /// it. The process joins the table, runnable and the caller's child,
    /// only once `start` succeeds. Returns its pid.
    pub fn spawn<F>(&mut self, mut start: F) -> Result<u32, ErrorCode>
    where
        F: FnMut(Admission) -> Result<Admitted, ErrorCode>,
    {
        let pid = self.next_pid;
        self.next_pid = self.next_pid.checked_add(1).unwrap_or(2);
        let caller = self.running().ok_or(ErrorCode::BadArgument)?;
        let (parent, caller_root) = (caller.pid, caller.root);
        let free = !self.occupied & !1 & ((1u64 << MAX_PROCESSES) - 1) as u32;
        for slot in Slots(free) {
            let admitted = match start(Admission {
                slot,
                pid,
                caller_root,
            }) {
                Ok(a) => a,
                Err(ErrorCode::TooManyProcesses) => continue,
                Err(e) => return Err(e),
            };
            self.put(
                slot,
                Process {
                    pid,
                    parent,
                    state: State::Runnable,
                    root: admitted.root,
                    kernel_stack: admitted.kernel_stack,
                    heap_next: admitted.heap_base,
                    cpu_ticks: 0,
                },
            );
            return Ok(pid);
        }
        Err(ErrorCode::TooManyProcesses)
    }

    /// `map`: the next `len` bytes (rounded up to pages) of the running
    /// process's `map` area, below [`USER_HEAP_TOP`]; `map` maps them and
    /// the area advances only if it succeeds. Returns their address.
    pub fn map<F>(&mut self, len: u64, map: F) -> Result<u64, ErrorCode>
    where
        F: FnOnce(MapRequest) -> Result<(), ErrorCode>,
    {
        if len == 0 {
            return Err(ErrorCode::BadLength);
        }
        let bytes = len
            .checked_next_multiple_of(PAGE_SIZE)
            .ok_or(ErrorCode::BadLength)?;
        let slot = self.current;
        let p = self.running_mut().ok_or(ErrorCode::BadArgument)?;
        let start = p.heap_next;
        let end = start
            .checked_add(bytes)
            .filter(|e| *e <= USER_HEAP_TOP)
            .ok_or(ErrorCode::OutOfMemory)?;
        map(MapRequest {
            slot,
            root: p.root,
            start,
            pages: bytes / PAGE_SIZE,
        })?;
        p.heap_next = end;
        Ok(start)
    }

    /// Blocks the running process until `wait` is over or the TSC reaches
    /// `deadline`.
    #[inline]
    pub fn block(&mut self, wait: Wait, deadline: Option<u64>) {
        self.set_state(self.current, State::Blocked { wait, deadline });
    }

    /// Makes `slot` the running one at TSC `now`, charging the time since
    /// the last switch to the process switched out. `None` (and no change)
    /// if `slot` holds no process.
    #[inline]
    pub fn switch_to(&mut self, slot: usize, now: u64) -> Option<Switch> {
        let next = self.slots.get(slot)?.as_ref()?;
        let (root, kernel_stack) = (next.root, next.kernel_stack);
        self.charge(now);
        let from = self.current;
        self.current = slot;
        self.switched_in = now;
        self.idle = false;
        Some(Switch {
            from,
            to: slot,
            root,
            kernel_stack,
        })
    }

    /// TSC ticks the running process has run since it was switched in (0
    /// while the CPU halts).
    #[inline]
    pub fn running_ticks(&self, now: u64) -> u64 {
        if self.idle {
            0
        } else {
            now.saturating_sub(self.switched_in)
        }
    }

    /// Charges the running process its time up to TSC `now`.
    #[inline]
    fn charge(&mut self, now: u64) {
        let ran = self.running_ticks(now);
        if let Some(p) = self.running_mut() {
            // A u64 of TSC ticks lasts centuries: no overflow check on
            // the switch path.
            p.cpu_ticks = p.cpu_ticks.wrapping_add(ran);
            self.dirty |= 1 << self.current;
        }
        self.switched_in = now;
    }

    /// The CPU halts at TSC `now`, nothing runnable: the last process's
    /// time stops here.
    #[inline]
    pub fn halt(&mut self, now: u64) {
        self.charge(now);
        self.idle = true;
    }

    /// The current process goes on running at TSC `now` (after a halt, its
    /// time starts again).
    #[inline]
    pub fn stay(&mut self, now: u64) {
        if self.idle {
            self.switched_in = now;
            self.idle = false;
        }
    }

    /// The running process, alone, sleeps on streams with no deadline and
    /// the CPU halts at TSC `now`: what [`Table::block`], the decision
    /// (`Idle`) and [`Table::halt`] would do, in a few stores.
    #[inline]
    pub fn sleep_alone(&mut self, now: u64) {
        let me = 1u32 << self.current;
        let ran = now.saturating_sub(self.switched_in);
        if let Some(p) = self.running_mut() {
            p.state = State::Blocked {
                wait: Wait::Streams,
                deadline: None,
            };
            p.cpu_ticks = p.cpu_ticks.wrapping_add(ran);
        }
        self.runnable &= !me;
        self.streams |= me;
        self.dirty |= me;
        self.switched_in = now;
        self.idle = true;
    }

    /// The process asleep alone was woken by the monitor (its slot alone)
    /// while the CPU halted: it runs again from TSC `now`, as the decision
    /// (`Stay`) would have it.
    #[inline]
    pub fn resume(&mut self, now: u64) {
        let me = 1u32 << self.current;
        if let Some(p) = self.running_mut() {
            p.state = State::Runnable;
        }
        self.streams &= !me;
        self.runnable |= me;
        self.dirty |= me;
        self.switched_in = now;
        self.idle = false;
    }

    /// Bit `i` set: slot `i` holds a process.
    #[inline]
    pub fn occupied_bits(&self) -> u32 {
        self.occupied
    }

    /// TSC when the current process was switched in (or woke the CPU).
    #[inline]
    pub fn switched_in(&self) -> u64 {
        self.switched_in
    }

    /// Slots the monitor woke while they did not wait for streams (§8.3).
    #[inline]
    pub fn pending_bits(&self) -> u32 {
        self.pending
    }

    /// Whether the CPU halts with nothing to run.
    #[inline]
    pub fn idle(&self) -> bool {
        self.idle
    }

    /// Slot `slot`'s entry on the status page (§14.6); all zero if free.
    #[inline]
    pub fn slot_status(&self, slot: usize) -> SlotStatus {
        self.process(slot).map_or_else(SlotStatus::default, |p| {
            let (state, status) = p.state.code();
            SlotStatus {
                pid: p.pid,
                parent: p.parent,
                state,
                status,
                cpu_ticks: p.cpu_ticks,
            }
        })
    }

    /// The records of every process at TSC `now` (in slot order), with the
    /// monitor's `figures` for memory, streams and names; returns them and
    /// how many there are.
    pub fn records(
        &self,
        now: u64,
        figures: &[SlotFigures; MAX_PROCESSES],
        tsc_hz: u64,
    ) -> ([ProcessRecord; MAX_PROCESSES], usize) {
        let mut out = [ProcessRecord::default(); MAX_PROCESSES];
        let mut n = 0;
        let processes = self
            .occupied()
            .filter_map(|s| self.slots[s].as_ref().map(|p| (s, p)));
        for ((slot, p), record) in processes.zip(out.iter_mut()) {
            let f = &figures[slot];
            let running = if slot == self.current {
                self.running_ticks(now)
            } else {
                0
            };
            let (state, status) = p.state.code();
            *record = ProcessRecord {
                pid: p.pid,
                parent: p.parent,
                state,
                status,
                cpu_ns: clock::ticks_to_ns(p.cpu_ticks.saturating_add(running), tsc_hz),
                memory: f.memory,
                streams: f.streams,
                name: f.name,
            };
            n += 1;
        }
        (out, n)
    }
}

#[cfg(test)]
mod tests;
