//! The local APIC (x2APIC mode): the one-shot timer and the interrupt
//! counters the entry stubs increment.
//!
//! The monitor configures the APIC before boot (PROTOCOL.md §2.4): software
//! enabled with the spurious vector, the timer LVT one-shot on
//! [`vector::TIMER`](weft_control::layout::vector::TIMER), divide-by-1. The
//! kernel only writes the timer's initial count (each write is a trap on the
//! machines Weft targets, so nothing here runs at boot).

use crate::arch::cpu;
use core::sync::atomic::{AtomicU64, Ordering};

const MSR_TIMER_INITIAL: u32 = 0x838;

/// Timer interrupts taken so far (incremented by the timer stub).
pub static TIMER_TICKS: AtomicU64 = AtomicU64::new(0);
/// Stream interrupts taken so far (incremented by the stream stub, §8).
pub static STREAM_EVENTS: AtomicU64 = AtomicU64::new(0);
static TIMER_HZ: AtomicU64 = AtomicU64::new(0);

/// Records the timer frequency from the boot info.
pub fn init(timer_hz: u64) {
    TIMER_HZ.store(timer_hz, Ordering::Relaxed);
}

fn arm(ticks: u64) {
    // SAFETY: the initial-count register of the x2APIC timer, which the
    // monitor configured one-shot; writing it (re)arms or, with 0, stops it.
    unsafe { cpu::wrmsr(MSR_TIMER_INITIAL, ticks) };
}

/// Halts until `done()` holds or `ns` nanoseconds have passed (`None`: no
/// limit). Returns whether `done()` held. Call with interrupts masked.
pub fn block_until(ns: Option<u64>, done: impl Fn() -> bool) -> bool {
    let hz = TIMER_HZ.load(Ordering::Relaxed).max(1);
    let mut left = ns.map(|ns| (u128::from(ns) * u128::from(hz)).div_ceil(1_000_000_000));
    loop {
        let armed = match left {
            Some(0) => return done(),
            Some(t) => {
                let chunk = t.min(u128::from(u32::MAX));
                left = Some(t - chunk);
                arm(chunk as u64);
                true
            }
            None => false,
        };
        let before = TIMER_TICKS.load(Ordering::Relaxed);
        loop {
            if done() {
                if armed {
                    arm(0);
                }
                return true;
            }
            if armed && TIMER_TICKS.load(Ordering::Relaxed) != before {
                break;
            }
            cpu::wait_for_interrupt();
        }
    }
}
