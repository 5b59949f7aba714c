//! Time and randomness without entering the kernel, from the system page
//! (PROTOCOL.md §4.2): the clocks read the TSC at ring 3 and scale it by the
//! rate the monitor measured; random bytes come from a ChaCha20 generator
//! seeded with the monitor's fresh host randomness.

use crate::cell::ExclusiveCell;
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use weft_control::layout::USER_SYSTEM_ADDR;
use weft_control::system::{SIZE, SystemInfo};

/// The system page's clock fields (its first 16 bytes), cheap enough to
/// read on every clock reading.
fn clock() -> SystemInfo {
    let word = |i: usize| {
        // SAFETY: the monitor maps the system page read-only at
        // USER_SYSTEM_ADDR for every program's whole life (§4.2); words 0
        // and 1 are its first 16 bytes, 8-aligned.
        unsafe { core::ptr::read_volatile((USER_SYSTEM_ADDR as *const u64).add(i)) }
    };
    SystemInfo {
        tsc_hz: u64::from_le(word(0)),
        realtime_at_tsc0: u64::from_le(word(1)),
        ..SystemInfo::default()
    }
}

/// The whole system page.
pub(crate) fn info() -> SystemInfo {
    let mut raw = [0u8; SIZE];
    for (i, b) in raw.iter_mut().enumerate() {
        // SAFETY: the monitor maps the system page read-only at
        // USER_SYSTEM_ADDR for every program's whole life (§4.2); SIZE bytes
        // fit in the page.
        *b = unsafe { core::ptr::read_volatile((USER_SYSTEM_ADDR as *const u8).add(i)) };
    }
    SystemInfo::decode(&raw)
}

/// The guest TSC.
fn ticks() -> u64 {
    // SAFETY: `rdtsc` has no preconditions; CR4.TSD is clear, so it runs at
    // ring 3 (§2.4).
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// Nanoseconds until the guest TSC reads `tsc` (0 if it did).
pub(crate) fn ns_until_tsc(tsc: u64) -> u64 {
    clock().ticks_to_ns(tsc.saturating_sub(ticks()))
}

/// Nanoseconds since the guest started (monotonic).
pub fn monotonic_ns() -> u64 {
    clock().ticks_to_ns(ticks())
}

/// Nanoseconds since the Unix epoch (the host's clock at boot, then the TSC).
pub fn realtime_ns() -> u64 {
    let i = clock();
    i.realtime_at_tsc0.saturating_add(i.ticks_to_ns(ticks()))
}

/// The clock's resolution in nanoseconds (at least 1).
pub fn resolution_ns() -> u64 {
    let hz = clock().tsc_hz;
    if hz == 0 {
        1
    } else {
        1_000_000_000u64.div_ceil(hz).max(1)
    }
}

static RNG: ExclusiveCell<Option<ChaCha20Rng>> = ExclusiveCell::new(None);

/// Fills `buf` with random bytes; `false` if re-entered (never in practice).
pub fn fill_random(buf: &mut [u8]) -> bool {
    RNG.with(|rng| {
        rng.get_or_insert_with(|| ChaCha20Rng::from_seed(info().seed))
            .fill_bytes(buf)
    })
    .is_some()
}
