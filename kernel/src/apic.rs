//! The local APIC: the one-shot timer and the count of stream interrupts
//! the stream stub increments. Its registers are x2APIC MSRs, or, where
//! the boot info says `XAPIC` (QEMU's TCG), xAPIC memory through the
//! direct map (§2.5).
//!
//! The monitor configures the APIC before boot (PROTOCOL.md §2.4): software
//! enabled with the spurious vector, the timer LVT one-shot on
//! [`vector::TIMER`](weft_control::layout::vector::TIMER), divide-by-1. The
//! kernel only writes the timer's initial count (each write is a trap on the
//! machines Weft targets, so nothing here runs at boot).

use crate::arch::cpu;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use weft_control::layout::XAPIC_BASE;
use weft_kernel_core::clock;

const MSR_TIMER_INITIAL: u32 = 0x838;
/// The timer's initial-count register in the xAPIC page.
const XAPIC_TIMER_INITIAL: u64 = 0x380;

/// Stream interrupts taken so far (incremented by the stream stub, §8).
pub static STREAM_EVENTS: AtomicU64 = AtomicU64::new(0);
static TIMER_HZ: AtomicU64 = AtomicU64::new(0);
static XAPIC: AtomicBool = AtomicBool::new(false);

/// Records the timer frequency and the APIC's mode from the boot info.
pub fn init(timer_hz: u64, xapic: bool) {
    TIMER_HZ.store(timer_hz, Ordering::Relaxed);
    XAPIC.store(xapic, Ordering::Relaxed);
}

/// The stream-interrupt count.
pub fn stream_events() -> u64 {
    STREAM_EVENTS.load(Ordering::Relaxed)
}

/// Arms the one-shot timer to fire in `ns` nanoseconds (at most one
/// 32-bit count; the scheduler re-arms after an early interrupt).
pub fn arm_ns(ns: u64) {
    let count = clock::timer_count(ns, TIMER_HZ.load(Ordering::Relaxed));
    if XAPIC.load(Ordering::Relaxed) {
        let register = (XAPIC_BASE + XAPIC_TIMER_INITIAL) as *mut u32;
        // SAFETY: in xAPIC mode the monitor maps the APIC's page at
        // `XAPIC_BASE` (§1.2); the initial-count register is 4-aligned
        // and writing it (re)arms the one-shot timer. A count is 32 bits.
        unsafe { core::ptr::write_volatile(register, count as u32) };
        return;
    }
    // SAFETY: the initial-count register of the x2APIC timer, which the
    // monitor configured one-shot; writing it (re)arms it (`count` >= 1).
    unsafe { cpu::wrmsr(MSR_TIMER_INITIAL, count) };
}
