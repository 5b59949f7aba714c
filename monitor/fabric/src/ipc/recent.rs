//! The messages a device received lately, by their stamp, with their
//! answers: a message that arrives again (sent again because its reply
//! was lost, or carried twice) is not delivered again, and gets the
//! first one's answer.
//!
//! Invariants: at most [`MAX`] stamps and [`BUDGET`] bytes of answers are
//! kept, none longer than [`KEEP`] (oldest forgotten first); a stamp is
//! either unseen or has exactly one entry, whose answer is set once.

use super::Answer;
use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Stamps kept at most.
pub const MAX: usize = 8192;
/// Bytes of answers kept at most.
pub const BUDGET: usize = 8 << 20;
/// How long a stamp is kept (longer than any sender waits to send again).
pub const KEEP: Duration = Duration::from_secs(60);

/// A message's stamp: its sending node's random origin and its number
/// there.
pub type Stamp = (u64, u64);

struct Entry {
    answer: watch::Receiver<Option<Answer>>,
    bytes: usize,
}

#[derive(Default)]
struct Inner {
    order: VecDeque<(Stamp, Instant)>,
    entries: HashMap<Stamp, Entry>,
    bytes: usize,
}

/// What [`Recent::check`] found.
pub enum Seen {
    /// A new message: set its answer here once known.
    New(watch::Sender<Option<Answer>>),
    /// One seen before: its answer comes (or came) here.
    Again(watch::Receiver<Option<Answer>>),
}

/// The recent messages of a node.
#[derive(Default)]
pub struct Recent {
    inner: Mutex<Inner>,
}

impl Recent {
    fn locked(&self) -> MutexGuard<'_, Inner> {
        // Every change keeps the three fields consistent before it can
        // panic (none of them can), so a poisoned lock is still sound.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records `stamp` if it is new.
    pub fn check(&self, stamp: Stamp) -> Seen {
        let mut inner = self.locked();
        inner.evict(Instant::now());
        if let Some(e) = inner.entries.get(&stamp) {
            return Seen::Again(e.answer.clone());
        }
        let (tx, rx) = watch::channel(None);
        inner.entries.insert(
            stamp,
            Entry {
                answer: rx,
                bytes: 0,
            },
        );
        inner.order.push_back((stamp, Instant::now()));
        inner.evict(Instant::now());
        Seen::New(tx)
    }

    /// Sets `stamp`'s answer through `tx` and counts its bytes.
    pub fn answered(&self, stamp: Stamp, tx: &watch::Sender<Option<Answer>>, answer: &Answer) {
        let bytes = answer.as_ref().map_or_else(|(_, m)| m.len(), Vec::len);
        tx.send_replace(Some(answer.clone()));
        let mut inner = self.locked();
        if let Some(e) = inner.entries.get_mut(&stamp) {
            e.bytes = bytes;
            inner.bytes += bytes;
        }
        inner.evict(Instant::now());
    }

    /// Stamps kept now.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.locked().entries.len()
    }
}

impl Inner {
    fn evict(&mut self, now: Instant) {
        while let Some(&(stamp, at)) = self.order.front() {
            let over = self.entries.len() > MAX || self.bytes > BUDGET;
            if !over && now.duration_since(at) < KEEP {
                return;
            }
            self.order.pop_front();
            if let Some(e) = self.entries.remove(&stamp) {
                self.bytes -= e.bytes;
            }
        }
    }
}
