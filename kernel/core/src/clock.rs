//! TSC and timer arithmetic (PROTOCOL.md §14.5, §5.2 `sleep`, `wait`,
//! `await`).
//!
//! Times inside the kernel are TSC values; syscalls speak nanoseconds, and
//! the local APIC timer counts at its own rate. Every conversion saturates
//! instead of overflowing, and a rate of 0 counts as 1, so no input from a
//! program or the boot info can make one panic.
//!
//! The one-shot timer: each write of its count traps to the host, so
//! [`timer_write`] says when a write can be skipped (stopping a timer that
//! is already stopped), and clamps the count to what the register holds (a
//! longer wait fires early and the scheduler, which re-checks deadlines,
//! arms again).

/// How long a process runs before another runnable one gets the CPU.
pub const SLICE_NS: u64 = 10_000_000;

const NS_PER_S: u128 = 1_000_000_000;

/// Nanoseconds for `ticks` of a `hz` clock (rounded down).
#[inline]
pub fn ticks_to_ns(ticks: u64, hz: u64) -> u64 {
    let ns = u128::from(ticks) * NS_PER_S / u128::from(hz.max(1));
    u64::try_from(ns).unwrap_or(u64::MAX)
}

/// Ticks of a `hz` clock in `ns` nanoseconds (rounded down).
#[inline]
pub fn ns_to_ticks(ns: u64, hz: u64) -> u64 {
    let ticks = u128::from(ns) * u128::from(hz) / NS_PER_S;
    u64::try_from(ticks).unwrap_or(u64::MAX)
}

/// A syscall's timeout argument: `u64::MAX` means none.
#[inline]
pub fn timeout(ns: u64) -> Option<u64> {
    (ns != u64::MAX).then_some(ns)
}

/// The TSC value `ns` nanoseconds after `now` (a TSC of `tsc_hz`).
#[inline]
pub fn deadline(now: u64, ns: u64, tsc_hz: u64) -> u64 {
    now.saturating_add(ns_to_ticks(ns, tsc_hz))
}

/// Nanoseconds from `now` until the TSC reaches `deadline`, at least 1 (a
/// deadline already passed fires at once), or `None` for no deadline.
#[inline]
pub fn until(now: u64, deadline: Option<u64>, tsc_hz: u64) -> Option<u64> {
    deadline.map(|d| ticks_to_ns(d.saturating_sub(now), tsc_hz).max(1))
}

/// The timer count to write for a one-shot of `ns` nanoseconds at
/// `timer_hz`: rounded up, at least 1, at most the 32-bit register's
/// maximum.
#[inline]
pub fn timer_count(ns: u64, timer_hz: u64) -> u64 {
    let t = (u128::from(ns) * u128::from(timer_hz.max(1))).div_ceil(NS_PER_S);
    // The clamp makes the narrowing exact.
    t.clamp(1, u128::from(u32::MAX)) as u64
}

/// What to write to the timer's count register to fire in `ns`
/// nanoseconds (`None`: stop it), given whether it may be counting now;
/// `None` when no write is needed. A returned 0 stops the timer; anything
/// else arms it.
#[inline]
pub fn timer_write(armed: bool, ns: Option<u64>, timer_hz: u64) -> Option<u64> {
    match ns {
        Some(ns) => Some(timer_count(ns, timer_hz)),
        None if armed => Some(0),
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GHZ: u64 = 1_000_000_000;

    #[test]
    fn conversions_round_down_and_saturate() {
        assert_eq!(ns_to_ticks(1_000, 3 * GHZ), 3_000);
        assert_eq!(ticks_to_ns(3_000, 3 * GHZ), 1_000);
        assert_eq!(ticks_to_ns(2, 3 * GHZ), 0);
        assert_eq!(ns_to_ticks(u64::MAX, 4 * GHZ), u64::MAX);
        assert_eq!(ticks_to_ns(u64::MAX, 1), u64::MAX);
        assert_eq!(ticks_to_ns(5, 0), 5 * 1_000_000_000);
    }

    #[test]
    fn deadlines_saturate_and_none_means_no_limit() {
        assert_eq!(timeout(u64::MAX), None);
        assert_eq!(timeout(0), Some(0));
        assert_eq!(deadline(10, 5, GHZ), 15);
        assert_eq!(deadline(10, 5, GHZ / 5), 11);
        assert_eq!(deadline(u64::MAX - 1, 5, GHZ), u64::MAX);
    }

    #[test]
    fn a_passed_deadline_fires_at_once() {
        assert_eq!(until(100, Some(50), GHZ), Some(1));
        assert_eq!(until(100, Some(100), GHZ), Some(1));
        assert_eq!(until(100, Some(1_100), GHZ), Some(1_000));
        assert_eq!(until(100, None, GHZ), None);
    }

    #[test]
    fn timer_counts_round_up_and_fit_the_register() {
        assert_eq!(timer_count(1, GHZ), 1);
        assert_eq!(timer_count(0, GHZ), 1);
        assert_eq!(timer_count(1, 1), 1);
        assert_eq!(timer_count(1_000_000_001, 1), 2);
        assert_eq!(timer_count(u64::MAX, GHZ), u64::from(u32::MAX));
        assert_eq!(timer_count(10, 0), 1);
    }

    #[test]
    fn a_stopped_timer_is_not_stopped_again() {
        assert_eq!(timer_write(false, None, GHZ), None);
        assert_eq!(timer_write(true, None, GHZ), Some(0));
        assert_eq!(timer_write(false, Some(7), GHZ), Some(7));
        assert_eq!(timer_write(true, Some(0), GHZ), Some(1));
    }
}
