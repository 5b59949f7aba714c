//! TSC and timer arithmetic (PROTOCOL.md §14.5, §5.2 `sleep`, `wait`,
//! `await`).
//!
//! Times inside the kernel are TSC values; syscalls speak nanoseconds, and
//! the local APIC timer counts at its own rate. Every conversion saturates
//! instead of overflowing, and a rate of 0 counts as 1, so no input from a
//! program or the boot info can make one panic.
//!
//! The one-shot timer: each write of its count traps to the host, so
//! [`rearm`] writes only for a deadline earlier than the one armed, and
//! never stops the timer (one that fires early, or when nothing waits for
//! it, makes the scheduler decide again: one interrupt, at most once per
//! deadline, against two traps per sleep and wake); [`timer_count`] clamps
//! the count to what the register holds (a longer wait fires early and the
//! scheduler, which re-checks deadlines, arms again).

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
/// deadline already passed fires at once).
#[inline]
pub fn until(now: u64, deadline: u64, tsc_hz: u64) -> u64 {
    ticks_to_ns(deadline.saturating_sub(now), tsc_hz).max(1)
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

/// The TSC deadline to arm the timer for, given the one it is armed for
/// (`armed_at`: 0 when it is not counting, stopped or fired) and the
/// earliest the scheduler needs (`None`: none); `None` when it needs no
/// write: nothing is needed, or the timer fires no later than needed.
#[inline]
pub fn rearm(armed_at: u64, needed: Option<u64>) -> Option<u64> {
    // 0 means "not counting": a deadline of 0 is armed as 1.
    let at = needed?.max(1);
    (armed_at == 0 || at < armed_at).then_some(at)
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
        assert_eq!(until(100, 50, GHZ), 1);
        assert_eq!(until(100, 100, GHZ), 1);
        assert_eq!(until(100, 1_100, GHZ), 1_000);
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
    fn the_timer_is_written_only_for_an_earlier_deadline() {
        // Not counting: any need arms it; no need, no write (never stopped).
        assert_eq!(rearm(0, Some(7)), Some(7));
        assert_eq!(rearm(0, None), None);
        assert_eq!(rearm(0, Some(0)), Some(1));
        // Counting for 50: an earlier need re-arms; a later or no need
        // lets it fire early (the scheduler decides again then).
        assert_eq!(rearm(50, Some(40)), Some(40));
        assert_eq!(rearm(50, Some(50)), None);
        assert_eq!(rearm(50, Some(60)), None);
        assert_eq!(rearm(50, None), None);
    }
}
