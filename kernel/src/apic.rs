//! The local APIC in x2APIC mode and its one-shot timer.
//!
//! The monitor enables x2APIC mode before boot (§2.4). Nothing here runs at boot:
//! the timer is programmed on the first sleep, so a program that never sleeps
//! costs no APIC writes (each is a trap on the machines Weft targets).

use crate::arch::cpu;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use weft_control::layout::vector;

const MSR_SVR: u32 = 0x80F;
const MSR_LVT_TIMER: u32 = 0x832;
const MSR_TIMER_INITIAL: u32 = 0x838;
const MSR_TIMER_DIVIDE: u32 = 0x83E;
/// Divide configuration value for divide-by-1.
const DIVIDE_BY_1: u64 = 0b1011;
/// SVR bit 8: APIC software enable.
const SVR_ENABLE: u64 = 1 << 8;

/// Timer interrupts taken so far (incremented by the timer stub).
pub static TIMER_TICKS: AtomicU64 = AtomicU64::new(0);
static READY: AtomicBool = AtomicBool::new(false);
static TIMER_HZ: AtomicU64 = AtomicU64::new(0);

/// Records the timer frequency from the boot info.
pub fn init(timer_hz: u64) {
    TIMER_HZ.store(timer_hz, Ordering::Relaxed);
}

fn enable_once() {
    if READY.swap(true, Ordering::Relaxed) {
        return;
    }
    // SAFETY: these are the architectural x2APIC registers, present because the
    // monitor enabled x2APIC mode; the values select the spurious vector, a
    // one-shot timer on the timer vector and divide-by-1.
    unsafe {
        cpu::wrmsr(MSR_SVR, SVR_ENABLE | u64::from(vector::SPURIOUS));
        cpu::wrmsr(MSR_TIMER_DIVIDE, DIVIDE_BY_1);
        cpu::wrmsr(MSR_LVT_TIMER, u64::from(vector::TIMER));
    }
}

/// Blocks for at least `ns` nanoseconds with the CPU halted.
pub fn sleep(ns: u64) {
    enable_once();
    let hz = TIMER_HZ.load(Ordering::Relaxed).max(1);
    let mut ticks_left = (u128::from(ns) * u128::from(hz)).div_ceil(1_000_000_000);
    while ticks_left > 0 {
        let chunk = ticks_left.min(u128::from(u32::MAX)) as u64;
        ticks_left -= u128::from(chunk);
        let before = TIMER_TICKS.load(Ordering::Relaxed);
        // SAFETY: the initial-count register of the x2APIC timer; writing it arms
        // the one-shot configured in `enable_once`.
        unsafe { cpu::wrmsr(MSR_TIMER_INITIAL, chunk) };
        while TIMER_TICKS.load(Ordering::Relaxed) == before {
            cpu::wait_for_interrupt();
        }
    }
}
