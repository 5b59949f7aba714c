//! The guest's budgets of host resources (PROTOCOL.md §20.1): how many
//! streams the guest and each of its processes may hold open, and how many
//! closed TCP streams may linger to deliver what their program wrote last.
//!
//! What a stream costs the host is bounded (its two rings, at most one
//! ring's worth of buffered bytes in the relay, a few descriptors: see
//! [`STREAM_HOST_BYTES`]), so counting streams bounds the host memory and
//! descriptors they take; the defaults give the guest as many streams as
//! fit in as much host memory as its RAM (`--mem`), at least
//! [`MIN_STREAMS`].
//!
//! Invariants: an open stream holds one [`Ticket`] of the guest's budget
//! from `OPENED` until its task is gone (dropping the ticket gives it
//! back); a process's count is its control pipe's open slots; a lingering
//! close holds one [`Ticket`] of the linger budget until it ends. Counts
//! never exceed their limits.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use weft_control::streams::RING_CAPACITY;

/// Host bytes one open stream may take at most: its two rings and one
/// ring's worth of buffers in the relay.
pub const STREAM_HOST_BYTES: u64 = 3 * RING_CAPACITY;
/// The guest's open streams at least, whatever its RAM.
pub const MIN_STREAMS: usize = 128;
/// The share of the guest's streams no one process may take: the others
/// keep `1/RESERVE_SHARE` of them (16 of 128) whatever one process holds.
pub const RESERVE_SHARE: usize = 8;

/// The limits, as given or derived from the guest's RAM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Streams open in the whole guest at once.
    pub streams: usize,
    /// Streams open in one process at once.
    pub process_streams: usize,
    /// Closed TCP streams still delivering their last bytes.
    pub lingering: usize,
}

impl Limits {
    /// The defaults for a guest of `mem_bytes` of RAM: as many streams as
    /// [`STREAM_HOST_BYTES`] fit in it (at least [`MIN_STREAMS`]), all but
    /// a [`RESERVE_SHARE`]th of them for any one process, a quarter
    /// lingering.
    pub fn for_mem(mem_bytes: u64) -> Self {
        let streams = usize::try_from(mem_bytes / STREAM_HOST_BYTES)
            .unwrap_or(usize::MAX)
            .max(MIN_STREAMS);
        Self::for_streams(streams)
    }

    /// The limits for `streams` open in the guest: all but a
    /// [`RESERVE_SHARE`]th of them for any one process (a server holding
    /// its clients' connections may use most of the guest's budget, and
    /// the other processes keep the rest), a quarter lingering.
    pub fn for_streams(streams: usize) -> Self {
        Self {
            streams,
            process_streams: (streams - streams / RESERVE_SHARE).max(1),
            lingering: streams / 4,
        }
    }
}

impl Default for Limits {
    /// The defaults for `weft run`'s default RAM (64 MiB).
    fn default() -> Self {
        Self::for_mem(64 << 20)
    }
}

/// One budget: a count and its limit.
#[derive(Debug)]
struct Pool {
    limit: usize,
    held: AtomicUsize,
    /// Requests refused because the pool was empty.
    refused: AtomicU64,
}

impl Pool {
    fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self {
            limit,
            held: AtomicUsize::new(0),
            refused: AtomicU64::new(0),
        })
    }

    fn take(self: &Arc<Self>) -> Option<Ticket> {
        let taken = self
            .held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.limit).then_some(n + 1)
            });
        match taken {
            Ok(_) => Some(Ticket(self.clone())),
            Err(_) => {
                self.refused.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }
}

/// A unit of a budget, given back when dropped.
#[derive(Debug)]
pub struct Ticket(Arc<Pool>);

impl Drop for Ticket {
    fn drop(&mut self) {
        self.0.held.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The guest's budgets, shared by every region of the relay.
#[derive(Debug)]
pub struct Budgets {
    limits: Limits,
    streams: Arc<Pool>,
    lingering: Arc<Pool>,
    /// Opens refused by a process's own limit.
    process_refused: AtomicU64,
}

/// Why a stream was not opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The guest holds its limit of streams.
    Guest(usize),
    /// The process holds its limit of streams.
    Process(usize),
}

impl Budgets {
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            streams: Pool::new(limits.streams),
            lingering: Pool::new(limits.lingering),
            process_refused: AtomicU64::new(0),
        }
    }

    /// A ticket for one more stream of a process that holds `open` already.
    pub fn open_stream(&self, open: usize) -> Result<Ticket, Refusal> {
        if open >= self.limits.process_streams {
            self.process_refused.fetch_add(1, Ordering::Relaxed);
            return Err(Refusal::Process(self.limits.process_streams));
        }
        self.streams
            .take()
            .ok_or(Refusal::Guest(self.limits.streams))
    }

    /// A ticket for one more lingering close, if the budget has room.
    pub fn linger(&self) -> Option<Ticket> {
        self.lingering.take()
    }

    /// The `--stats` line's figures.
    pub fn figures(&self) -> BudgetFigures {
        BudgetFigures {
            limits: self.limits,
            streams_open: self.streams.held.load(Ordering::Relaxed),
            streams_refused: self.streams.refused.load(Ordering::Relaxed)
                + self.process_refused.load(Ordering::Relaxed),
            lingering: self.lingering.held.load(Ordering::Relaxed),
            lingering_dropped: self.lingering.refused.load(Ordering::Relaxed),
        }
    }
}

impl Default for Budgets {
    fn default() -> Self {
        Self::new(Limits::default())
    }
}

/// What `--stats` prints of the budgets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BudgetFigures {
    pub limits: Limits,
    pub streams_open: usize,
    pub streams_refused: u64,
    pub lingering: usize,
    pub lingering_dropped: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_guest_ram() {
        let small = Limits::for_mem(16 << 20);
        assert_eq!(small.streams, MIN_STREAMS);
        assert_eq!(small.process_streams, 112);
        let big = Limits::for_mem(3 << 30);
        assert_eq!(big.streams, (3usize << 30) / (3 * (RING_CAPACITY as usize)));
        assert_eq!(big.process_streams, big.streams - big.streams / 8);
        assert_eq!(big.lingering, big.streams / 4);
    }

    #[test]
    fn tickets_are_limited_and_given_back() {
        let b = Budgets::new(Limits {
            streams: 3,
            process_streams: 2,
            lingering: 1,
        });
        assert_eq!(b.open_stream(2).unwrap_err(), Refusal::Process(2));
        let held: Vec<Ticket> = (0..3).map(|_| b.open_stream(0).unwrap()).collect();
        assert_eq!(b.open_stream(0).unwrap_err(), Refusal::Guest(3));
        assert_eq!(b.figures().streams_open, 3);
        assert_eq!(b.figures().streams_refused, 2);
        drop(held);
        assert_eq!(b.figures().streams_open, 0);
        assert!(b.open_stream(1).is_ok());
        let lingering = b.linger().unwrap();
        assert!(b.linger().is_none());
        drop(lingering);
        assert!(b.linger().is_some());
        assert_eq!(b.figures().lingering_dropped, 1);
    }
}
