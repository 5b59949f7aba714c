//! The file-system quota (`--fs-quota BYTES`, PROTOCOL.md §10.4): how much
//! the guest may add, net, to the sizes of the regular files under
//! `--fs-root` while it runs.
//!
//! Growth is charged before it happens (a write past a file's end, a size
//! set larger) and refused with `QuotaExceeded` when it would take the net
//! growth past the limit; what a guest takes back is credited once done (a
//! size set smaller, a truncating open, the removal of a file or of the
//! file a rename replaces, when that was the file's last name). Sizes are
//! what the monitor sees when it acts, so a file changed by the host
//! meanwhile is counted as it is then.
//!
//! Invariant: the net growth never exceeds the limit by a charge of this
//! module; it may fall below zero (a guest that removes files it found
//! may then add as much).

use crate::streams::framed::Failure;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use weft_control::frame::Code;

/// A guest's quota, shared by all its file streams.
#[derive(Debug)]
pub struct Quota {
    limit: i64,
    /// Bytes added, net, so far.
    added: AtomicI64,
    /// Requests refused.
    refused: AtomicU64,
}

/// A quota's figures, for `--stats`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuotaFigures {
    pub limit: u64,
    pub added: i64,
    pub refused: u64,
}

impl Quota {
    pub fn new(limit: u64) -> Self {
        Self {
            limit: i64::try_from(limit).unwrap_or(i64::MAX),
            added: AtomicI64::new(0),
            refused: AtomicU64::new(0),
        }
    }

    /// Takes `bytes` of growth for the request `what` names (only for the
    /// error), or refuses it, taking nothing.
    pub fn charge(&self, bytes: u64, what: impl FnOnce() -> String) -> Result<(), Failure> {
        let Ok(bytes) = i64::try_from(bytes) else {
            return Err(self.refusal(&what(), u64::MAX));
        };
        self.added
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |added| {
                added.checked_add(bytes).filter(|now| *now <= self.limit)
            })
            .map(drop)
            .map_err(|_| self.refusal(&what(), bytes as u64))
    }

    /// Gives back `bytes` (growth that did not happen, or space freed).
    pub fn credit(&self, bytes: u64) {
        let bytes = i64::try_from(bytes).unwrap_or(i64::MAX);
        let _ = self
            .added
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |added| {
                Some(added.saturating_sub(bytes))
            });
    }

    /// Charges (`to > from`) or credits the change of a size.
    pub fn resize(&self, from: u64, to: u64, what: impl FnOnce() -> String) -> Result<(), Failure> {
        if to > from {
            self.charge(to - from, what)
        } else {
            self.credit(from - to);
            Ok(())
        }
    }

    /// Bytes added, net, so far.
    pub fn added(&self) -> i64 {
        self.added.load(Ordering::Acquire)
    }

    pub fn figures(&self) -> QuotaFigures {
        QuotaFigures {
            limit: self.limit as u64,
            added: self.added(),
            refused: self.refused.load(Ordering::Relaxed),
        }
    }

    fn refusal(&self, what: &str, bytes: u64) -> Failure {
        self.refused.fetch_add(1, Ordering::Relaxed);
        Failure::new(
            Code::QuotaExceeded,
            format!(
                "{what}: {bytes} more bytes would pass --fs-quota {} ({} added so far)",
                self.limit,
                self.added()
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn growth_is_refused_past_the_limit_and_freed_space_is_given_back() {
        let q = Quota::new(100);
        q.charge(60, || "write".into()).unwrap();
        let e = q.charge(41, || "write at 60".into()).unwrap_err();
        assert_eq!(e.code, Code::QuotaExceeded);
        assert!(
            e.message.starts_with("write at 60: 41 more bytes"),
            "{}",
            e.message
        );
        assert_eq!(q.added(), 60, "a refused charge takes nothing");
        q.charge(40, || "write".into()).unwrap();
        q.resize(100, 30, || "set size".into()).unwrap();
        assert_eq!(q.added(), 30);
        q.credit(50);
        assert_eq!(q.added(), -20, "removing files found there makes room");
        q.charge(120, || "write".into()).unwrap();
        assert!(q.resize(0, 1, || "set size".into()).is_err());
        assert!(q.charge(u64::MAX, || "write".into()).is_err());
        let f = q.figures();
        assert_eq!((f.limit, f.added, f.refused), (100, 100, 3));
    }
}
