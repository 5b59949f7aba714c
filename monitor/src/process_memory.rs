//! The memory of spawned processes (PROTOCOL.md §14.4): the RAM the boot
//! left over, handed out in runs of frames and taken back when a process
//! ends.
//!
//! Invariants: every frame in the free list is zero (fresh host memory, or
//! returned to the host with `MADV_DONTNEED`, which makes the next touch
//! read zeros); a frame is either free or owned by exactly one process;
//! free runs are sorted, disjoint and merged with their neighbours.

use crate::guest_memory::{MemoryError, Ram};
use crate::loader::Frames;
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend};
use weft_control::layout::PAGE_SIZE;
use weft_image::paging::FrameAllocator;

/// A run of frames: first guest-physical address, number of pages.
pub type Run = (u64, u64);

/// The free runs.
#[derive(Debug, Default)]
pub struct Pool {
    free: Vec<Run>,
}

impl Pool {
    /// A pool of the whole pages in `[start, end)`.
    pub fn new(start: u64, end: u64) -> Self {
        let start = start.next_multiple_of(PAGE_SIZE);
        let pages = end.saturating_sub(start) / PAGE_SIZE;
        Self {
            free: if pages > 0 {
                vec![(start, pages)]
            } else {
                Vec::new()
            },
        }
    }

    /// `pages` contiguous zero frames (first fit).
    fn take(&mut self, pages: u64) -> Option<u64> {
        let i = self.free.iter().position(|&(_, n)| n >= pages)?;
        let (base, n) = self.free[i];
        if n == pages {
            self.free.remove(i);
        } else {
            self.free[i] = (base + pages * PAGE_SIZE, n - pages);
        }
        Some(base)
    }

    /// Returns a zeroed run.
    fn give(&mut self, (base, pages): Run) {
        let i = self.free.partition_point(|&(b, _)| b < base);
        self.free.insert(i, (base, pages));
        // Merge with the next run, then with the previous.
        if let Some(&(nb, nn)) = self.free.get(i + 1)
            && base + pages * PAGE_SIZE == nb
        {
            self.free[i].1 += nn;
            self.free.remove(i + 1);
        }
        if i > 0 {
            let (pb, pn) = self.free[i - 1];
            if pb + pn * PAGE_SIZE == base {
                self.free[i - 1].1 += self.free[i].1;
                self.free.remove(i);
            }
        }
    }

    /// Free pages.
    #[cfg(test)]
    fn free_pages(&self) -> u64 {
        self.free.iter().map(|&(_, n)| n).sum()
    }
}

/// The runs one process owns.
#[derive(Debug, Default)]
pub struct Owned {
    runs: Vec<Run>,
}

impl Owned {
    /// Bytes owned.
    pub fn bytes(&self) -> u64 {
        self.runs.iter().map(|&(_, n)| n * PAGE_SIZE).sum()
    }

    /// Gives every run back to `pool`, zeroing it by returning its host
    /// memory (`MADV_DONTNEED`).
    pub fn release(&mut self, ram: &Ram, pool: &mut Pool) {
        for run in self.runs.drain(..) {
            discard(ram, run);
            pool.give(run);
        }
    }
}

/// Returns a run's host memory: the next guest access reads zeros.
fn discard(ram: &Ram, (base, pages): Run) {
    let len = (pages * PAGE_SIZE) as usize;
    // One region holds the whole run (the pool is carved from one).
    let Ok(slice) = ram.get_slice(GuestAddress(base), len) else {
        return;
    };
    let host = slice.ptr_guard_mut().as_ptr();
    // SAFETY: `[host, host + len)` is the page-aligned guest RAM of a run
    // the pool handed out; the process that owned it has ended and the
    // guest no longer maps it, and the monitor holds no reference into
    // it, so dropping its contents is sound.
    let rc = unsafe { libc::madvise(host.cast(), len, libc::MADV_DONTNEED) };
    if rc != 0 {
        // The pages keep their contents: zero them through the slice.
        let _ = slice.write_slice(&vec![0u8; len], 0);
    }
}

/// Frames for one process's address space: taken from the pool, recorded
/// as the process's.
pub struct Grant<'a> {
    pub pool: &'a mut Pool,
    pub owned: &'a mut Owned,
}

impl Grant<'_> {
    fn record(&mut self, base: u64, pages: u64) {
        match self.owned.runs.last_mut() {
            Some((b, n)) if *b + *n * PAGE_SIZE == base => *n += pages,
            _ => self.owned.runs.push((base, pages)),
        }
    }
}

impl FrameAllocator for Grant<'_> {
    fn alloc_zeroed(&mut self) -> Option<u64> {
        let f = self.pool.take(1)?;
        self.record(f, 1);
        Some(f)
    }
}

impl Frames for Grant<'_> {
    fn alloc(&mut self, pages: u64, _kind: u32, what: &'static str) -> Result<u64, MemoryError> {
        let base = self.pool.take(pages).ok_or(MemoryError::TooSmall {
            needed: pages * PAGE_SIZE,
            what,
        })?;
        self.record(base, pages);
        Ok(base)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_are_taken_first_fit_and_merged_when_given_back() {
        let p = PAGE_SIZE;
        let mut pool = Pool::new(p, 11 * p);
        let mut owned = Owned::default();
        let mut g = Grant {
            pool: &mut pool,
            owned: &mut owned,
        };
        assert_eq!(g.alloc(3, 0, "a").unwrap(), p);
        assert_eq!(g.alloc_zeroed(), Some(4 * p));
        assert_eq!(g.alloc(6, 0, "b").unwrap(), 5 * p);
        assert!(g.alloc(1, 0, "c").is_err());
        assert_eq!(owned.runs, vec![(p, 10)]);
        assert_eq!(owned.bytes(), 10 * p);
        pool.give((5 * p, 6));
        pool.give((p, 3));
        pool.give((4 * p, 1));
        assert_eq!(pool.free, vec![(p, 10)]);
        assert_eq!(pool.free_pages(), 10);
    }

    #[test]
    fn released_memory_reads_zero_and_returns_to_the_pool() {
        let ram = crate::guest_memory::create(4 << 20).unwrap();
        let mut pool = Pool::new(1 << 20, 4 << 20);
        let mut owned = Owned::default();
        let base = Grant {
            pool: &mut pool,
            owned: &mut owned,
        }
        .alloc(2, 0, "test")
        .unwrap();
        ram.write_obj(0xABCDu64, GuestAddress(base + 8)).unwrap();
        owned.release(&ram, &mut pool);
        assert_eq!(ram.read_obj::<u64>(GuestAddress(base + 8)).unwrap(), 0);
        assert_eq!(pool.free_pages(), (3 << 20) / PAGE_SIZE);
        assert_eq!(owned.bytes(), 0);
    }
}
