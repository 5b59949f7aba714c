//! A cell for the runtime's global state. Programs are single-threaded, so a
//! global needs exclusion only against re-entrance (an allocation inside a
//! print, say); a flag catches that instead of deadlocking.

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, Ordering};

/// Exclusive access to a `T`, refused (not waited for) when already taken.
pub struct ExclusiveCell<T> {
    busy: AtomicBool,
    value: UnsafeCell<T>,
}

// SAFETY: access to `value` is serialized by `busy` (see `with`).
unsafe impl<T: Send> Sync for ExclusiveCell<T> {}

impl<T> ExclusiveCell<T> {
    /// A cell holding `value`.
    pub const fn new(value: T) -> Self {
        Self {
            busy: AtomicBool::new(false),
            value: UnsafeCell::new(value),
        }
    }

    /// Runs `f` with exclusive access, or returns `None` if re-entered.
    pub fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> Option<R> {
        if self.busy.swap(true, Ordering::Acquire) {
            return None;
        }
        // SAFETY: `busy` was false and is now true, so this is the only live
        // reference until it is cleared below.
        let r = f(unsafe { &mut *self.value.get() });
        self.busy.store(false, Ordering::Release);
        Some(r)
    }
}
