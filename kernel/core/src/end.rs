//! How processes end and who learns their status (PROTOCOL.md §14.1, §5.2
//! `exit`, `kill`, `await`).
//!
//! Rules:
//! - A process ends by `exit` (its status, at most [`MAX_EXIT_STATUS`]),
//!   by being killed (status [`KILLED_STATUS`]) or by a fault at ring 3
//!   (status [`CRASHED_STATUS`]).
//! - Only its parent learns the status, once, with `await`; the process
//!   keeps its slot, ended, until then.
//! - When a process ends, its children lose their parent: those already
//!   ended are freed at once, the others will be when they end. A process
//!   whose parent is gone is freed as soon as it ends.
//! - The first program (pid 1, slot 0) cannot be killed: its end is the
//!   guest's, which the kernel handles before the table is involved.

use crate::table::{State, Table};
use weft_abi::MAX_EXIT_STATUS;
use weft_control::error::ErrorCode;
use weft_control::process::{CRASHED_STATUS, KILLED_STATUS, end};

/// How a process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// It called `exit` with this status.
    Exited(u32),
    /// Another process killed it.
    Killed,
    /// It faulted at ring 3.
    Faulted,
}

impl End {
    /// `exit(status)`'s end; `BadArgument` for a status over
    /// [`MAX_EXIT_STATUS`].
    pub fn exit(status: u64) -> Result<Self, ErrorCode> {
        if status > MAX_EXIT_STATUS {
            return Err(ErrorCode::BadArgument);
        }
        // Checked just above: at most MAX_EXIT_STATUS (125).
        Ok(Self::Exited(status as u32))
    }

    /// The status its parent collects.
    pub fn status(self) -> u32 {
        match self {
            Self::Exited(s) => s,
            Self::Killed => KILLED_STATUS,
            Self::Faulted => CRASHED_STATUS,
        }
    }

    /// How it ended, as `PROCESS_END` tells the monitor ([`end`]).
    pub fn how(self) -> u64 {
        match self {
            Self::Exited(_) => end::EXITED,
            Self::Killed => end::KILLED,
            Self::Faulted => end::FAULTED,
        }
    }
}

/// A pid argument of a syscall: `NoProcess` if it cannot be one.
pub fn pid_arg(pid: u64) -> Result<u32, ErrorCode> {
    u32::try_from(pid).map_err(|_| ErrorCode::NoProcess)
}

impl Table {
    /// Marks the process in `slot` ended with `status`: its children lose
    /// their parent (the ended ones are freed), and it is freed at once if
    /// it has no parent to collect it.
    pub fn end(&mut self, slot: usize, status: u32) {
        let Some(pid) = self.process(slot).map(|p| p.pid()) else {
            return;
        };
        for s in self.occupied() {
            let Some(child) = self.slots[s].as_mut().filter(|c| c.parent() == pid) else {
                continue;
            };
            if child.ended() {
                self.free(s);
            } else {
                child.orphan();
                self.dirty |= 1 << s;
            }
        }
        match self.slots[slot].as_ref() {
            Some(p) if p.parent() != 0 => self.set_state(slot, State::Ended(status)),
            _ => self.free(slot),
        }
    }

    /// `kill(pid)`'s target: the slot of the live (not ended) process
    /// `pid`. `NoProcess` if there is none, `BadArgument` for the first
    /// program.
    pub fn kill_target(&self, pid: u32) -> Result<usize, ErrorCode> {
        let slot = self
            .find(pid)
            .filter(|&s| self.process(s).is_some_and(|p| !p.ended()))
            .ok_or(ErrorCode::NoProcess)?;
        if slot == 0 {
            return Err(ErrorCode::BadArgument);
        }
        Ok(slot)
    }

    /// `await(pid)`'s check, for the running process: its child `pid`'s
    /// status if it has ended (the child is then freed), `None` if it still
    /// runs; `NoProcess` if `pid` is not the caller's child (or was
    /// collected), `BadArgument` if nothing runs.
    pub fn collect(&mut self, pid: u32) -> Result<Option<u32>, ErrorCode> {
        let me = self
            .running()
            .map(|p| p.pid())
            .ok_or(ErrorCode::BadArgument)?;
        let slot = self
            .find(pid)
            .filter(|&s| self.process(s).is_some_and(|p| p.parent() == me))
            .ok_or(ErrorCode::NoProcess)?;
        match self.process(slot).map(|p| p.state()) {
            Some(State::Ended(status)) => {
                self.free(slot);
                Ok(Some(status))
            }
            _ => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::Admitted;

    fn admitted(root: u64) -> Admitted {
        Admitted {
            root,
            heap_base: 0,
            kernel_stack: 0,
        }
    }

    #[test]
    fn statuses_and_ways_of_ending() {
        assert_eq!(End::exit(0), Ok(End::Exited(0)));
        assert_eq!(End::exit(125).map(End::status), Ok(125));
        assert_eq!(End::exit(126), Err(ErrorCode::BadArgument));
        assert_eq!(End::exit(u64::MAX), Err(ErrorCode::BadArgument));
        assert_eq!(
            (End::Killed.status(), End::Killed.how()),
            (137, end::KILLED)
        );
        assert_eq!(
            (End::Faulted.status(), End::Faulted.how()),
            (125, end::FAULTED)
        );
        assert_eq!(End::Exited(3).how(), end::EXITED);
        assert_eq!(pid_arg(1 << 32), Err(ErrorCode::NoProcess));
        assert_eq!(pid_arg(7), Ok(7));
    }

    #[test]
    fn a_grandchild_is_freed_when_it_ends_after_its_parent() {
        let mut t = Table::new();
        t.start(0x1000, 0, 0, 0);
        let child = t.spawn(|_| Ok(admitted(0x2000))).unwrap();
        t.switch_to(1, 1).unwrap();
        let grandchild = t.spawn(|_| Ok(admitted(0x3000))).unwrap();
        t.end(1, 0);
        // The child waits for pid 1 to collect it; the grandchild is an orphan.
        assert_eq!(t.process(1).map(|p| p.state()), Some(State::Ended(0)));
        assert_eq!(t.process(2).map(|p| p.parent()), Some(0));
        t.end(2, 5);
        assert!(t.process(2).is_none());
        assert_eq!(t.find(grandchild), None);
        t.switch_to(0, 2).unwrap();
        assert_eq!(t.collect(child), Ok(Some(0)));
        assert_eq!(t.collect(child), Err(ErrorCode::NoProcess));
    }

    #[test]
    fn the_first_program_and_the_ended_cannot_be_killed() {
        let mut t = Table::new();
        t.start(0x1000, 0, 0, 0);
        assert_eq!(t.kill_target(1), Err(ErrorCode::BadArgument));
        assert_eq!(t.kill_target(2), Err(ErrorCode::NoProcess));
        let pid = t.spawn(|_| Ok(admitted(0x2000))).unwrap();
        assert_eq!(t.kill_target(pid), Ok(1));
        t.end(1, End::Killed.status());
        assert_eq!(t.kill_target(pid), Err(ErrorCode::NoProcess));
        assert_eq!(t.collect(pid), Ok(Some(137)));
    }

    #[test]
    fn only_the_parent_collects() {
        let mut t = Table::new();
        t.start(0x1000, 0, 0, 0);
        let a = t.spawn(|_| Ok(admitted(0x2000))).unwrap();
        let b = t.spawn(|_| Ok(admitted(0x3000))).unwrap();
        assert_eq!(t.collect(a), Ok(None));
        t.switch_to(1, 1).unwrap();
        assert_eq!(t.collect(b), Err(ErrorCode::NoProcess));
        assert_eq!(t.collect(1), Err(ErrorCode::NoProcess));
        t.end(2, 9);
        assert_eq!(t.collect(b), Err(ErrorCode::NoProcess));
        t.switch_to(0, 2).unwrap();
        assert_eq!(t.collect(b), Ok(Some(9)));
    }
}
