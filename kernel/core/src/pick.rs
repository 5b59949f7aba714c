//! The scheduling decision (PROTOCOL.md §14.5): which blocked processes
//! wake, which process runs next, and when the timer must fire.
//!
//! Rules:
//! - A blocked process wakes when its deadline has passed or its wait is
//!   over ([`Wait`]); one blocked on streams wakes when the monitor names
//!   its slot in a stream interrupt's wake bits (§8.3), and only then.
//! - Woken first, then round-robin: the next to run is the first slot
//!   this decision woke after the current one (other than the current
//!   one), else the first runnable slot
//!   after the current one, wrapping around, the current one last (so a
//!   process woken by I/O does not wait for a slice of every busy one).
//!   Blocked and ended processes are never picked; when none is runnable
//!   the CPU idles.
//! - The timer is needed only for a slice when another process is runnable
//!   besides the one picked, and for the earliest deadline of a process
//!   still blocked; whichever comes first ([`Decision::arm`]; the kernel
//!   writes the timer only for a deadline earlier than the one armed,
//!   `clock::rearm`).
//!
//! A decision works on the table's bit masks and visits only the slots
//! with a deadline or a child to wait for, so it costs a few dozen
//! instructions (ring 0 is emulated on the machines Weft targets, ~0.6 µs
//! each).

use crate::table::{Slots, State, Switch, Table};

/// What a blocked process waits for (besides its deadline).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wait {
    /// A stream interrupt naming its slot.
    Streams,
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
    /// The TSC value by which the timer must fire, if any (a timer armed
    /// for another time may fire anyway: the next decision then says).
    pub arm: Option<u64>,
}

impl Table {
    /// Whether a wait for child `pid` is over: it ended, or is gone.
    fn child_done(&self, pid: u32) -> bool {
        self.find(pid).is_none_or(|s| {
            matches!(
                self.slots[s].as_ref().map(|p| p.state),
                Some(State::Ended(_))
            )
        })
    }

    /// The deadline of blocked slot `slot`, if it has one.
    fn deadline_of(&self, slot: usize) -> Option<u64> {
        match self.slots[slot].as_ref()?.state {
            State::Blocked { deadline, .. } => deadline,
            _ => None,
        }
    }

    /// At TSC `now`, with `wakes` the slots the monitor woke since the last
    /// decision (bit per slot): wakes the blocked processes whose wait is
    /// over and picks the next to run, with a slice of `slice_ticks` if
    /// another is runnable too.
    pub fn pick(&mut self, now: u64, wakes: u32, slice_ticks: u64) -> Decision {
        let (streams, timed, children) = self.blocked_bits();
        let pending = self.pending | wakes;
        let mut woken = streams & pending;
        self.pending = pending & !woken;
        for slot in Slots(timed) {
            if self.deadline_of(slot).is_some_and(|d| d <= now) {
                woken |= 1 << slot;
            }
        }
        for slot in Slots(children & !woken) {
            let child = match self.slots[slot].as_ref().map(|p| p.state) {
                Some(State::Blocked {
                    wait: Wait::Child(pid),
                    ..
                }) => pid,
                _ => continue,
            };
            if self.child_done(child) {
                woken |= 1 << slot;
            }
        }
        for slot in Slots(woken) {
            self.set_state(slot, State::Runnable);
        }
        let earliest = Slots(self.blocked_bits().1)
            .filter_map(|s| self.deadline_of(s))
            .min();
        let runnable = self.runnable_bits();
        if runnable == 0 {
            return Decision {
                next: Next::Idle,
                arm: earliest,
            };
        }
        // The first slot this decision woke after the current one (it
        // waited, and mostly runs briefly before it waits again), else the
        // first runnable one after the current one; wrapping. The current
        // one, whose wait ended as it began, goes last as ever.
        let first = match woken & runnable & !(1 << self.current) {
            0 => runnable,
            woke => woke,
        };
        let later = first & !(u32::MAX >> (31 - self.current.min(31)));
        let next = if later != 0 { later } else { first }.trailing_zeros() as usize;
        let slice = (runnable & !(1 << next) != 0).then(|| now.saturating_add(slice_ticks));
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

impl Table {
    /// Whether the running process may sleep on streams (no deadline) by
    /// halting the CPU at once, with no decision: it is the only runnable
    /// process and no wake of its slot is pending, so [`Table::pick`] would
    /// say [`Next::Idle`] (and arm nothing new: deadlines of the others are
    /// armed already, §14.5). The caller blocks it ([`Table::block`]) and
    /// halts; if the first interrupt is a stream interrupt naming its slot
    /// alone, [`Table::resume`] is the decision `pick` would take.
    #[inline]
    pub fn alone(&self) -> bool {
        let me = 1u32 << self.current;
        self.runnable_bits() == me && self.pending & me == 0
    }

    /// A stream interrupt that took `wakes` while the running process was
    /// the only runnable one: if `wakes` names one
    /// slot alone, blocked on streams with no deadline, it runs at TSC
    /// `now`, as [`Table::pick`] would have it (woken, and the first
    /// runnable after the current one, wrapping) with no other decision.
    /// The caller arms a slice (the current process stays runnable) and
    /// switches. `None` (and no change): anything else, for `pick`.
    ///
    /// What `pick` also does and this does not, wake sleepers whose
    /// deadline passed, the timer armed for them does at once.
    #[inline]
    pub fn hand_over(&mut self, wakes: u32, now: u64) -> Option<Switch> {
        let me = 1u32 << self.current;
        let (streams, timed, _) = self.blocked_bits();
        if self.runnable_bits() != me
            || self.pending & streams != 0
            || !wakes.is_power_of_two()
            || wakes & streams & !timed == 0
        {
            return None;
        }
        let slot = wakes.trailing_zeros() as usize;
        self.set_state(slot, State::Runnable);
        self.switch_to(slot, now)
    }

    /// The running process blocks on streams with no deadline and the one
    /// other runnable process runs at TSC `now`, as [`Table::pick`] would
    /// have it (no slice: it runs alone), for a caller that took no wake
    /// since the last decision and found none to take. `None` (and no
    /// change) unless exactly one other process is runnable and no wake is
    /// pending for the running one or one blocked on streams (wakes kept
    /// for processes that wait for something else stay kept); what `pick`
    /// also does and this does not is as for [`Table::hand_over`].
    #[inline]
    pub fn pass(&mut self, now: u64) -> Option<Switch> {
        let me = 1u32 << self.current;
        let other = self.runnable_bits() & !me;
        let (streams, ..) = self.blocked_bits();
        if self.runnable_bits() & me == 0
            || self.pending & (streams | me) != 0
            || !other.is_power_of_two()
        {
            return None;
        }
        self.block(Wait::Streams, None);
        self.switch_to(other.trailing_zeros() as usize, now)
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
        t.block(Wait::Streams, None);
        t.switch_to(1, 0).unwrap();
        t.block(Wait::Timer, Some(50));
        t.switch_to(2, 0).unwrap();
        t.block(Wait::Child(2), Some(70));
        // Everyone waits: idle until the earliest deadline.
        assert_eq!(
            t.pick(10, 0, SLICE),
            Decision {
                next: Next::Idle,
                arm: Some(50)
            }
        );
        // A stream interrupt for slot 0 wakes it; slot 1's deadline is
        // next.
        assert_eq!(
            t.pick(20, 0b1, SLICE),
            Decision {
                next: Next::Run(0),
                arm: Some(50)
            }
        );
        t.switch_to(0, 20).unwrap();
        // Slot 1's deadline passes: two runnable, the slice is later than 70.
        assert_eq!(
            t.pick(60, 0, SLICE),
            Decision {
                next: Next::Run(1),
                arm: Some(70)
            }
        );
    }

    #[test]
    fn a_woken_process_runs_before_the_busy_ones() {
        let mut t = table(3);
        // Slot 2 waits for streams; 0, 1 and 3 are busy, 0 runs.
        t.switch_to(2, 0).unwrap();
        t.block(Wait::Streams, None);
        t.switch_to(0, 0).unwrap();
        // The monitor wakes slot 2: it runs next, not slot 1, with a slice.
        assert_eq!(
            t.pick(10, 0b100, SLICE),
            Decision {
                next: Next::Run(2),
                arm: Some(10 + SLICE)
            }
        );
        t.switch_to(2, 10).unwrap();
        // Then round-robin goes on after it.
        assert_eq!(t.pick(20, 0, SLICE).next, Next::Run(3));
    }

    #[test]
    fn a_child_wait_is_over_when_it_ends_or_is_gone() {
        let mut t = table(1);
        assert!(!t.child_done(2));
        assert!(t.child_done(77));
        t.block(Wait::Child(2), None);
        assert_eq!(t.pick(5, 0, SLICE).next, Next::Run(1));
        t.switch_to(1, 5).unwrap();
        t.end(1, 0);
        assert!(t.child_done(2));
        assert_eq!(t.pick(6, 0, SLICE).next, Next::Run(0));
    }

    #[test]
    fn a_stream_wake_goes_to_its_slot_only_and_is_kept_until_it_blocks() {
        let mut t = table(2);
        t.block(Wait::Streams, None);
        t.switch_to(1, 0).unwrap();
        t.block(Wait::Streams, None);
        t.switch_to(2, 0).unwrap();
        // Slot 2 runs; the monitor wakes slots 1 and 2.
        let d = t.pick(1, 0b110, SLICE);
        assert_eq!(d.next, Next::Run(1), "slot 0 is not woken: {d:?}");
        t.switch_to(1, 1).unwrap();
        // Slot 2's wake came while it ran: its next block ends at once.
        t.switch_to(2, 2).unwrap();
        t.block(Wait::Streams, None);
        assert_eq!(t.pick(3, 0, SLICE).next, Next::Run(1));
        assert_eq!(t.process(2).map(|p| p.state()), Some(State::Runnable));
        // Consumed: blocked again, it stays blocked.
        t.block(Wait::Streams, None);
        assert_eq!(t.pick(4, 0, SLICE).next, Next::Run(1));
        assert_eq!(t.runnable_bits(), 0b10);
    }

    #[test]
    fn a_lone_sleeper_resumes_as_a_decision_would() {
        let mut t = table(1);
        assert!(!t.alone(), "slot 1 is runnable too");
        t.switch_to(1, 0).unwrap();
        t.block(Wait::Timer, Some(90));
        t.switch_to(0, 1).unwrap();
        assert!(t.alone(), "a timed sleeper does not count");
        let mut fast = t.clone();
        // The general way: idle, then woken by the monitor, stay.
        t.block(Wait::Streams, None);
        assert_eq!(t.pick(2, 0, SLICE).next, Next::Idle);
        t.halt(2);
        assert_eq!(t.pick(5, 0b1, SLICE).next, Next::Stay);
        t.stay(5);
        // The fast way.
        fast.sleep_alone(2);
        fast.resume(5);
        assert_eq!(fast, t);
        // A wake that came while it ran makes its next sleep the general one.
        t.pick(6, 0b1, SLICE);
        assert!(!t.alone());
    }

    #[test]
    fn a_hand_over_runs_the_woken_slot_as_a_decision_would() {
        // Slot 0 runs; slot 1 waits on streams, slot 2 on its deadline.
        let mut t = table(2);
        t.switch_to(1, 0).unwrap();
        t.block(Wait::Streams, None);
        t.switch_to(2, 1).unwrap();
        t.block(Wait::Timer, Some(900));
        t.switch_to(0, 2).unwrap();
        let mut fast = t.clone();
        let d = t.pick(5, 0b10, SLICE);
        assert_eq!(d.next, Next::Run(1));
        assert_eq!(d.arm, Some(5 + SLICE), "a slice: slot 0 is runnable too");
        let general = t.switch_to(1, 5);
        assert_eq!(fast.hand_over(0b10, 5), general);
        assert_eq!(fast, t);
        // Not for a slot with a deadline, two slots, no slot, a pending
        // wake, or while another runs too.
        let mut t = table(2);
        t.switch_to(1, 0).unwrap();
        t.block(Wait::Streams, Some(50));
        t.switch_to(2, 1).unwrap();
        t.block(Wait::Streams, None);
        t.switch_to(0, 2).unwrap();
        let before = t.clone();
        for wakes in [0b10, 0b110, 0, 0b1] {
            assert_eq!(t.hand_over(wakes, 5), None);
            assert_eq!(t, before);
        }
        // A wake kept for the running process changes nothing.
        t.pick(6, 0b1, SLICE);
        let mut fast = t.clone();
        assert_eq!(t.pick(7, 0b100, SLICE).next, Next::Run(2));
        let general = t.switch_to(2, 7);
        assert_eq!(fast.hand_over(0b100, 7), general);
        assert_eq!(fast, t);
        let mut t = table(2);
        t.switch_to(2, 0).unwrap();
        t.block(Wait::Streams, None);
        t.switch_to(0, 1).unwrap();
        assert_eq!(t.hand_over(0b100, 5), None, "slot 1 is runnable");
    }

    #[test]
    fn a_pass_runs_the_other_runnable_slot_as_a_decision_would() {
        let mut t = table(2);
        t.switch_to(2, 0).unwrap();
        t.block(Wait::Timer, Some(900));
        t.switch_to(0, 1).unwrap();
        let mut fast = t.clone();
        t.block(Wait::Streams, None);
        let d = t.pick(5, 0, SLICE);
        assert_eq!(
            d,
            Decision {
                next: Next::Run(1),
                arm: Some(900)
            }
        );
        let general = t.switch_to(1, 5);
        assert_eq!(fast.pass(5), general);
        assert_eq!(fast, t);
        // Not with two others runnable, none, or a wake pending.
        let mut t = table(2);
        assert_eq!(t.pass(5), None);
        t.switch_to(1, 0).unwrap();
        t.block(Wait::Streams, None);
        t.switch_to(2, 1).unwrap();
        t.block(Wait::Streams, None);
        t.switch_to(0, 2).unwrap();
        let before = t.clone();
        assert_eq!(t.pass(5), None);
        assert_eq!(t, before);
        t.pick(6, 0b1, SLICE);
        t.pick(7, 0b10, SLICE);
        assert_eq!(t.pass(8), None, "slot 0's wake is pending");
        // A wake kept for a process that waits for a child changes
        // nothing.
        let mut t = table(2);
        t.switch_to(2, 0).unwrap();
        t.block(Wait::Child(2), None);
        t.switch_to(0, 1).unwrap();
        t.pick(2, 0b100, SLICE);
        let mut fast = t.clone();
        t.block(Wait::Streams, None);
        assert_eq!(t.pick(3, 0, SLICE).next, Next::Run(1));
        let general = t.switch_to(1, 3);
        assert_eq!(fast.pass(3), general);
        assert_eq!(fast, t);
    }

    #[test]
    fn only_changed_slots_are_dirty() {
        let mut t = table(2);
        let _ = t.take_dirty();
        assert_eq!(t.take_dirty().count(), 0);
        t.block(Wait::Timer, Some(9));
        t.switch_to(2, 3).unwrap();
        let dirty = |t: &mut Table| t.take_dirty().fold(0u32, |m, s| m | 1 << s);
        assert_eq!(dirty(&mut t), 0b1);
        t.pick(10, 0, SLICE);
        assert_eq!(dirty(&mut t), 0b1);
    }
}
