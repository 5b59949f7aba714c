//! Guest→monitor signals (PROTOCOL.md §8.2): the bell pages' pending bits and
//! the one doorbell, turned into wake-ups of each slot's tasks.
//!
//! The guest sets slot `s`'s bit for a reason (data or space) in the bell
//! page of the slot's pipe region and writes the doorbell only if the bit
//! was clear, so a burst of signals costs one doorbell. Every region shares
//! the one doorbell, which signals one eventfd (an ioeventfd once busy, a
//! forwarded exit before). The relay thread drains that eventfd, takes every
//! pending word of every region served with an atomic swap
//! ([`BellPage::take_pending`]), and signals the eventfd of each slot end
//! named ([`SlotWake`]): the same object a `Consumer`/`Producer` task sleeps
//! on. This module knows neither regions nor protocols.

use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};
use vmm_sys_util::eventfd::EventFd;
use weft_control::streams::{SLOTS, bell};

/// The pending words at the start of the pipe region.
pub struct BellPage {
    base: NonNull<u8>,
}

// SAFETY: `BellPage` only performs atomic operations on guest-shared words
// (see `new`); atomics may be used from any thread.
unsafe impl Send for BellPage {}
// SAFETY: as for `Send`: its one operation takes `&self` and is atomic.
unsafe impl Sync for BellPage {}

impl BellPage {
    /// # Safety
    ///
    /// `base` must be the 8-aligned start of a pipe region, valid for
    /// reads and writes of `bell::WORDS * 8` bytes for as long as the value
    /// lives, and this process must access those bytes only through a
    /// `BellPage`.
    pub unsafe fn new(base: NonNull<u8>) -> Self {
        Self { base }
    }

    /// Takes (and clears) pending word `i`.
    fn take(&self, i: u64) -> u64 {
        if i >= bell::WORDS {
            return 0;
        }
        // SAFETY: `i < WORDS`, so the word lies inside the bell page, which
        // `new`'s contract makes valid, 8-aligned and accessed by this
        // process only atomically. The guest writes it concurrently, which
        // is what the atomic is for.
        let word = unsafe { AtomicU64::from_ptr(self.base.as_ptr().add(8 * i as usize).cast()) };
        word.swap(0, Ordering::AcqRel)
    }

    /// Takes every pending bit and calls `f(slot, reason)` for each (bits
    /// beyond the last slot are dropped).
    pub fn take_pending(&self, mut f: impl FnMut(u64, u64)) {
        for word in 0..bell::WORDS {
            let mut bits = self.take(word);
            while bits != 0 {
                let n = word * 64 + u64::from(bits.trailing_zeros());
                bits &= bits - 1;
                let (slot, reason) = (n / 2, n % 2);
                if slot < SLOTS {
                    f(slot, reason);
                }
            }
        }
    }
}

/// The eventfds one open slot's tasks sleep on.
pub struct SlotWake {
    /// Signalled when the guest published into (or closed) `to_monitor`.
    pub data: EventFd,
    /// Signalled when the guest freed space in (or closed) `to_guest`.
    pub space: EventFd,
}

impl SlotWake {
    /// Wake-up objects with the given eventfd flags: `EFD_NONBLOCK` for
    /// tasks of the runtime, 0 for a thread that sleeps in `read`.
    pub fn new(flags: i32) -> std::io::Result<Self> {
        Ok(Self {
            data: EventFd::new(flags)?,
            space: EventFd::new(flags)?,
        })
    }
}
