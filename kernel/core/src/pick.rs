//! The scheduling decision (PROTOCOL.md §14.5): which blocked processes
//! wake, which process runs next, and when the timer must fire.
//!
//! Rules:
//! - A blocked process wakes when its deadline has passed or its wait is
//!   over ([`Wait`]).
//! - Round-robin: the next to run is the first runnable slot after the
//!   current one, wrapping around, the current one last. Blocked and ended
//!   processes are never picked; when none is runnable the CPU idles.
//! - The timer is armed only when needed: for a slice when another process
//!   is runnable besides the one picked, and for the earliest deadline of a
//!   process still blocked; whichever comes first. A process alone, with no
//!   deadline pending, costs no timer interrupt.
//!
//! A decision looks only at occupied slots, so it costs little with few
//! processes (ring 0 is emulated on the machines Weft targets).

use crate::table::{State, Table};

/// What a blocked process waits for (besides its deadline).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wait {
    /// The stream-interrupt count to differ from this one.
    Streams(u64),
    /// Only its deadline.
    Timer,
    /// Its child with this pid to end (or be gone).
    Child(u32),
}

/// Who runs next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// Go on running the current process.
    Stay,
    /// Switch to this slot.
    Run(usize),
    /// Nothing can run: halt until an interrupt.
    Idle,
}

/// A scheduling decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    pub next: Next,
    /// The TSC value at which the timer must fire, if any (the kernel stops
    /// the timer otherwise).
    pub arm: Option<u64>,
}

impl Table {
    /// Whether `wait` is over, with `events` stream interrupts taken so far.
    #[inline]
    pub fn wait_over(&self, wait: Wait, events: u64) -> bool {
        match wait {
            Wait::Streams(seen) => events != seen,
            Wait::Timer => false,
            Wait::Child(pid) => self.find(pid).is_none_or(|s| {
                matches!(
                    self.slots[s].as_ref().map(|p| p.state),
                    Some(State::Ended(_))
                )
            }),
        }
    }

    /// At TSC `now`, with `events` stream interrupts taken so far: wakes
    /// the blocked processes whose wait is over and picks the next to run,
    /// with a slice of `slice_ticks` if another is runnable too.
    pub fn pick(&mut self, now: u64, events: u64, slice_ticks: u64) -> Decision {
        let mut earliest: Option<u64> = None;
        for slot in self.occupied() {
            let Some(State::Blocked { wait, deadline }) =
                self.slots[slot].as_ref().map(|p| p.state)
            else {
                continue;
            };
            if deadline.is_some_and(|d| d <= now) || self.wait_over(wait, events) {
                if let Some(p) = self.slots[slot].as_mut() {
                    p.state = State::Runnable;
                }
            } else if let Some(d) = deadline {
                earliest = Some(earliest.map_or(d, |e: u64| e.min(d)));
            }
        }
        let runnable = |t: &Self, s: usize| {
            t.slots[s]
                .as_ref()
                .is_some_and(|p| p.state == State::Runnable)
        };
        let occupied = self.occupied();
        let after = occupied.filter(|&s| s > self.current);
        let Some(next) = after
            .chain(occupied.filter(|&s| s <= self.current))
            .find(|&s| runnable(self, s))
        else {
            return Decision {
                next: Next::Idle,
                arm: earliest,
            };
        };
        let others = occupied.filter(|&s| s != next && runnable(self, s)).count();
        let slice = (others > 0).then(|| now.saturating_add(slice_ticks));
        Decision {
            next: if next == self.current {
                Next::Stay
            } else {
                Next::Run(next)
            },
            arm: [slice, earliest].into_iter().flatten().min(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::Admitted;

    const SLICE: u64 = 100;

    /// The first program and `n` children, all runnable, slot 0 running.
    fn table(n: usize) -> Table {
        let mut t = Table::new();
        t.start(0x1000, 0, 0, 0);
        for i in 0..n {
            t.spawn(|_| {
                Ok(Admitted {
                    root: 0x2000 + i as u64,
                    heap_base: 0,
                    kernel_stack: 0,
                })
            })
            .unwrap();
        }
        t
    }

    #[test]
    fn alone_it_stays_with_no_timer() {
        let mut t = table(0);
        assert_eq!(
            t.pick(5, 0, SLICE),
            Decision {
                next: Next::Stay,
                arm: None
            }
        );
    }

    #[test]
    fn round_robin_wraps_and_arms_a_slice() {
        let mut t = table(2);
        let mut order = [0; 6];
        for (i, o) in order.iter_mut().enumerate() {
            let d = t.pick(i as u64, 0, SLICE);
            assert_eq!(d.arm, Some(i as u64 + SLICE));
            let Next::Run(s) = d.next else {
                panic!("{d:?}")
            };
            t.switch_to(s, i as u64).unwrap();
            *o = s;
        }
        assert_eq!(order, [1, 2, 0, 1, 2, 0]);
    }

    #[test]
    fn blocked_processes_wake_on_their_condition_or_deadline() {
        let mut t = table(2);
        t.block(Wait::Streams(4), None);
        t.switch_to(1, 0).unwrap();
        t.block(Wait::Timer, Some(50));
        t.switch_to(2, 0).unwrap();
        t.block(Wait::Child(2), Some(70));
        // Everyone waits: idle until the earliest deadline.
        assert_eq!(
            t.pick(10, 4, SLICE),
            Decision {
                next: Next::Idle,
                arm: Some(50)
            }
        );
        // A stream interrupt wakes slot 0; slot 1's deadline is next.
        assert_eq!(
            t.pick(20, 5, SLICE),
            Decision {
                next: Next::Run(0),
                arm: Some(50)
            }
        );
        t.switch_to(0, 20).unwrap();
        // Slot 1's deadline passes: two runnable, the slice is later than 70.
        assert_eq!(
            t.pick(60, 5, SLICE),
            Decision {
                next: Next::Run(1),
                arm: Some(70)
            }
        );
    }

    #[test]
    fn a_child_wait_is_over_when_it_ends_or_is_gone() {
        let mut t = table(1);
        assert!(!t.wait_over(Wait::Child(2), 0));
        assert!(t.wait_over(Wait::Child(77), 0));
        t.end(1, 0);
        assert!(t.wait_over(Wait::Child(2), 0));
        assert!(!t.wait_over(Wait::Timer, 0));
    }
}
