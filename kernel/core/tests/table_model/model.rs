//! The model the table is checked against: the processes in a plain list,
//! and PROTOCOL.md §14's rules spelled out one by one, with no bit sets
//! and no cleverness.

use weft_control::error::ErrorCode;
use weft_control::layout::{PAGE_SIZE, USER_HEAP_TOP};
use weft_control::process::{KILLED_STATUS, MAX_PROCESSES};
use weft_kernel_core::pick::{Decision, Next, Wait};
use weft_kernel_core::table::State;

use super::{HEAP, SLICE};

/// A process as the model keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proc {
    pub slot: usize,
    pub pid: u32,
    pub parent: u32,
    pub state: State,
    pub heap_next: u64,
    pub cpu_ticks: u64,
}

/// The model: the processes in no particular order, and the rules of §14
/// spelled out one by one.
pub struct Model {
    pub procs: Vec<Proc>,
    pub current: usize,
    pub next_pid: u32,
    pub switched_in: u64,
    pub now: u64,
    /// Slots the monitor woke whose process has not yet been woken by it.
    pub pending: [bool; MAX_PROCESSES],
    /// The status each pid ended with, to check that what `await` returns
    /// is what the child ended with.
    pub ended_with: Vec<(u32, u32)>,
    /// The last pid a spawn returned.
    pub last_spawned: u32,
}

impl Model {
    pub fn new() -> Self {
        Self {
            procs: vec![Proc {
                slot: 0,
                pid: 1,
                parent: 0,
                state: State::Runnable,
                heap_next: HEAP,
                cpu_ticks: 0,
            }],
            current: 0,
            next_pid: 2,
            switched_in: 0,
            now: 0,
            pending: [false; MAX_PROCESSES],
            ended_with: Vec::new(),
            last_spawned: 1,
        }
    }

    pub fn by_slot(&self, slot: usize) -> Option<&Proc> {
        self.procs.iter().find(|p| p.slot == slot)
    }

    pub fn by_pid(&self, pid: u32) -> Option<&Proc> {
        self.procs.iter().find(|p| p.pid == pid)
    }

    pub fn running(&self) -> Option<&Proc> {
        self.by_slot(self.current)
            .filter(|p| p.state == State::Runnable)
    }

    pub fn running_mut(&mut self) -> &mut Proc {
        let current = self.current;
        self.procs
            .iter_mut()
            .find(|p| p.slot == current)
            .expect("a running process")
    }

    /// The slots a spawn offers, in order, and the answer.
    pub fn spawn(&mut self, refuse: u16, fail: bool) -> (Vec<usize>, Result<u32, ErrorCode>) {
        let pid = self.next_pid;
        self.next_pid += 1;
        let parent = self.running_mut().pid;
        let mut offered = Vec::new();
        for slot in 1..MAX_PROCESSES {
            if self.by_slot(slot).is_some() {
                continue;
            }
            offered.push(slot);
            if refuse & (1 << slot) != 0 {
                continue;
            }
            if fail {
                return (offered, Err(ErrorCode::OutOfMemory));
            }
            self.pending[slot] = false;
            self.procs.push(Proc {
                slot,
                pid,
                parent,
                state: State::Runnable,
                heap_next: HEAP,
                cpu_ticks: 0,
            });
            return (offered, Ok(pid));
        }
        (offered, Err(ErrorCode::TooManyProcesses))
    }

    pub fn end(&mut self, pid: u32, status: u32) {
        self.ended_with.push((pid, status));
        // Children lose their parent; those already ended go at once.
        self.procs
            .retain(|c| !(c.parent == pid && matches!(c.state, State::Ended(_))));
        for c in self.procs.iter_mut().filter(|c| c.parent == pid) {
            c.parent = 0;
        }
        let p = self
            .procs
            .iter_mut()
            .find(|p| p.pid == pid)
            .expect("ending a process");
        if p.parent == 0 {
            self.procs.retain(|p| p.pid != pid);
        } else {
            p.state = State::Ended(status);
        }
    }

    pub fn kill(&mut self, pid: u32) -> Result<(), ErrorCode> {
        match self.by_pid(pid) {
            None => Err(ErrorCode::NoProcess),
            Some(p) if matches!(p.state, State::Ended(_)) => Err(ErrorCode::NoProcess),
            Some(p) if p.slot == 0 => Err(ErrorCode::BadArgument),
            Some(_) => {
                self.end(pid, KILLED_STATUS);
                Ok(())
            }
        }
    }

    pub fn collect(&mut self, pid: u32) -> Result<Option<u32>, ErrorCode> {
        let me = self.running_mut().pid;
        match self.by_pid(pid) {
            Some(c) if c.parent == me => match c.state {
                State::Ended(status) => {
                    self.procs.retain(|p| p.pid != pid);
                    Ok(Some(status))
                }
                _ => Ok(None),
            },
            _ => Err(ErrorCode::NoProcess),
        }
    }

    pub fn map(&mut self, len: u64, fail: bool) -> Result<u64, ErrorCode> {
        if len == 0 || len > u64::MAX - (PAGE_SIZE - 1) {
            return Err(ErrorCode::BadLength);
        }
        let bytes = len.div_ceil(PAGE_SIZE) * PAGE_SIZE;
        let p = self.running_mut();
        let start = p.heap_next;
        if u128::from(start) + u128::from(bytes) > u128::from(USER_HEAP_TOP) || fail {
            return Err(ErrorCode::OutOfMemory);
        }
        p.heap_next = start + bytes;
        Ok(start)
    }

    pub fn block(&mut self, wait: Wait, timeout: Option<u64>) {
        let deadline = timeout.map(|t| self.now + t);
        self.running_mut().state = State::Blocked { wait, deadline };
    }

    /// Whether the wait of the process in `slot` is over (not counting its
    /// deadline).
    pub fn wait_over(&self, slot: usize, wait: Wait) -> bool {
        match wait {
            Wait::Streams => self.pending[slot],
            Wait::Timer => false,
            Wait::Child(pid) => self
                .by_pid(pid)
                .is_none_or(|c| matches!(c.state, State::Ended(_))),
        }
    }

    pub fn pick(&mut self) -> Decision {
        let now = self.now;
        let wakes: Vec<bool> = self
            .procs
            .iter()
            .map(|p| match p.state {
                State::Blocked { wait, deadline } => {
                    deadline.is_some_and(|d| d <= now) || self.wait_over(p.slot, wait)
                }
                _ => false,
            })
            .collect();
        let mut woken = Vec::new();
        for (p, wake) in self.procs.iter_mut().zip(wakes) {
            if wake {
                if p.slot != self.current {
                    woken.push(p.slot);
                }
                // A wake is used up by the process blocked on streams it
                // woke, however else it would have woken.
                if matches!(
                    p.state,
                    State::Blocked {
                        wait: Wait::Streams,
                        ..
                    }
                ) {
                    self.pending[p.slot] = false;
                }
                p.state = State::Runnable;
            }
        }
        let earliest = self
            .procs
            .iter()
            .filter_map(|p| match p.state {
                State::Blocked { deadline, .. } => deadline,
                _ => None,
            })
            .min();
        let mut runnable: Vec<usize> = self
            .procs
            .iter()
            .filter(|p| p.state == State::Runnable)
            .map(|p| p.slot)
            .collect();
        runnable.sort();
        woken.sort();
        // Those it woke first (the running one aside), then round-robin.
        let first = if woken.is_empty() { &runnable } else { &woken };
        let next = first
            .iter()
            .find(|&&s| s > self.current)
            .or(first.first())
            .copied();
        let Some(next) = next else {
            return Decision {
                next: Next::Idle,
                arm: earliest,
            };
        };
        let slice = (runnable.len() > 1).then_some(now + SLICE);
        Decision {
            next: if next == self.current {
                Next::Stay
            } else {
                Next::Run(next)
            },
            arm: [slice, earliest].into_iter().flatten().min(),
        }
    }

    pub fn switch(&mut self, slot: usize) {
        let ran = self.now - self.switched_in;
        let current = self.current;
        if let Some(p) = self.procs.iter_mut().find(|p| p.slot == current) {
            p.cpu_ticks += ran;
        }
        self.current = slot;
        self.switched_in = self.now;
    }
}
