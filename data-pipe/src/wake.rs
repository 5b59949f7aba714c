//! Wake-up suppression (PROTOCOL.md §7.6): how a side goes to sleep and how
//! its peer decides whether to wake it.
//!
//! A side that finds nothing to do and wants to sleep calls
//! [`Waitable::prepare_wait`]: it publishes a fresh sleep epoch in its wait
//! word, issues a sequentially consistent fence, and re-checks the ring. Only
//! if the re-check still finds nothing does it sleep ([`Wait::wait`]). A side
//! that publishes (an index or a close flag) issues the same fence and then
//! reads the peer's wait word; it calls [`Notify::notify`] only if the word
//! holds an epoch it has not notified yet. The two fences guarantee that at
//! least one side sees the other's store, so no wake-up is lost; a peer that
//! is awake (word 0) or already notified for this sleep is not notified.

use crate::error::Error;

/// Wakes the peer: an ioeventfd doorbell from the guest, an irqfd from the
/// monitor, an eventfd between host threads.
pub trait Notify {
    /// Signals the peer's wait object. Must not block; may be coalesced.
    fn notify(&self);
}

/// A [`Notify`] for a peer that never sleeps (it polls), or for tests.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoNotify;

impl Notify for NoNotify {
    fn notify(&self) {}
}

impl<T: Notify + ?Sized> Notify for &T {
    fn notify(&self) {
        (**self).notify()
    }
}

#[cfg(feature = "std")]
impl<T: Notify + ?Sized> Notify for std::sync::Arc<T> {
    fn notify(&self) {
        (**self).notify()
    }
}

/// Blocks until the peer's [`Notify`] fires. Spurious returns are allowed:
/// callers always re-check the ring.
pub trait Wait {
    /// Sleeps until notified (or returns early).
    fn wait(&mut self);

    /// Whether to poll a ring end that is not ready once more rather than
    /// sleep, `polls` polls into this spin (0 before the first). Polling is
    /// cheaper than a sleep and a wake-up when the peer answers soon, and
    /// wasted when the CPU has other work. By default, up to the
    /// [`Blocking`](crate::Blocking) end's count.
    fn poll_again(&mut self, polls: u32) -> bool {
        let _ = polls;
        true
    }

    /// An operation found the ring end not ready and is about to wait.
    fn blocked(&mut self) {}

    /// The operation that [`blocked`](Self::blocked) went through.
    fn unblocked(&mut self) {}
}

/// A [`Wait`] that only pauses the CPU briefly: for a side that polls.
#[derive(Clone, Copy, Debug, Default)]
pub struct Spin;

impl Wait for Spin {
    fn wait(&mut self) {
        core::hint::spin_loop();
    }
}

/// A [`Wait`] that yields the thread to the OS scheduler (feature `std`).
#[cfg(feature = "std")]
#[derive(Clone, Copy, Debug, Default)]
pub struct Yield;

#[cfg(feature = "std")]
impl Wait for Yield {
    fn wait(&mut self) {
        std::thread::yield_now();
    }
}

#[cfg(feature = "std")]
impl Notify for vmm_sys_util::eventfd::EventFd {
    fn notify(&self) {
        // A full counter (EAGAIN) already means "notified"; nothing to do.
        let _ = self.write(1);
    }
}

#[cfg(feature = "std")]
impl Wait for vmm_sys_util::eventfd::EventFd {
    fn wait(&mut self) {
        // Errors (EINTR, or EAGAIN on a non-blocking fd) are spurious wake-ups.
        let _ = self.read();
    }
}

/// The outcome of [`Waitable::prepare_wait`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitDecision {
    /// The re-check found work: do not sleep (the wait word is cleared).
    Ready,
    /// Nothing to do: sleep, then call [`Waitable::end_wait`].
    Sleep,
}

/// An end of a ring that can wait for its peer: a [`Producer`](crate::Producer)
/// waits for space, a [`Consumer`](crate::Consumer) for data.
pub trait Waitable {
    /// Whether the next operation would not fail with
    /// [`Error::WouldBlock`] (it may still fail otherwise, e.g. at a closed
    /// peer).
    fn ready(&mut self) -> Result<bool, Error>;
    /// Announces that this end is about to sleep, then re-checks the ring.
    /// After [`WaitDecision::Sleep`], sleep and then call [`end_wait`](Self::end_wait).
    fn prepare_wait(&mut self) -> Result<WaitDecision, Error>;
    /// Announces that this end is awake again (no-op if it was not waiting).
    fn end_wait(&mut self);
}

/// Private bookkeeping for sleeping and notifying (never read from shared
/// memory).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct WakeState {
    /// The last epoch this side published in its own wait word.
    epoch: u64,
    /// Whether this side's wait word currently holds `epoch`.
    waiting: bool,
    /// The last peer epoch this side notified.
    notified: u64,
}

impl WakeState {
    /// The next sleep epoch (never 0, which means "awake").
    pub(crate) fn begin(&mut self) -> u64 {
        self.epoch = self.epoch.wrapping_add(1).max(1);
        self.waiting = true;
        self.epoch
    }

    /// Whether this side must clear its wait word.
    pub(crate) fn end(&mut self) -> bool {
        core::mem::take(&mut self.waiting)
    }

    /// Whether a peer wait word of `observed` calls for a notification.
    pub(crate) fn should_notify(&mut self, observed: u64) -> bool {
        if observed == 0 || observed == self.notified {
            return false;
        }
        self.notified = observed;
        true
    }
}

/// Implements [`Waitable`] for a ring end type whose `end` field is its ring
/// state and whose module has a `ready(&mut End) -> Result<bool, Error>`
/// function saying whether an operation would now make progress.
macro_rules! impl_waitable {
    ($end:ident) => {
        impl<M: Memory, N: Notify> $crate::wake::Waitable for $end<M, N> {
            fn ready(&mut self) -> Result<bool, Error> {
                ready(&mut self.end)
            }

            fn prepare_wait(&mut self) -> Result<$crate::wake::WaitDecision, Error> {
                self.end.prepare_wait(ready)
            }

            fn end_wait(&mut self) {
                self.end.end_wait();
            }
        }
    };
}
pub(crate) use impl_waitable;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epochs_skip_zero_and_notify_once_per_epoch() {
        let mut s = WakeState {
            epoch: u64::MAX,
            ..WakeState::default()
        };
        assert_eq!(s.begin(), 1);
        assert!(s.end());
        assert!(!s.end());
        assert!(!s.should_notify(0));
        assert!(s.should_notify(7));
        assert!(!s.should_notify(7));
        assert!(s.should_notify(8));
    }
}
