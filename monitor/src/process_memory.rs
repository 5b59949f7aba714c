//! The memory of spawned processes (PROTOCOL.md §14.4): the RAM the boot
//! left over, handed out in runs of frames and taken back when a process
//! ends.
//!
//! Invariants: every free frame is zero (fresh host memory, or returned to
//! the host with `MADV_DONTNEED`, which makes the next touch read zeros); a
//! frame is either free or owned by exactly one process; free runs are
//! sorted, disjoint and merged with their neighbours.
//!
//! A frame that has been a page table is never a page table again: it is
//! *retired* and handed out only as a data page. Under shadow paging (the
//! nested KVM Weft targets), the host keeps shadows of the guest's page
//! tables keyed by frame and does not see the monitor rewrite a frame from
//! outside the guest; a recycled table frame was seen to keep translating
//! through its old shadow (a spawned program's output went to another
//! process's pipe region).

use crate::guest_memory::{MemoryError, Ram};
use crate::loader::Frames;
use std::collections::BTreeSet;
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend};
use weft_control::layout::PAGE_SIZE;
use weft_image::paging::FrameAllocator;

/// A run of frames: first guest-physical address, number of pages.
pub type Run = (u64, u64);

/// The free frames of the process pool.
#[derive(Debug, Default)]
pub struct Pool {
    /// Clean free runs: zero, and not a page table since the last launder.
    free: Vec<Run>,
    /// Tainted free frames: zero, single data pages only until laundered.
    tainted_free: Vec<u64>,
    /// Every frame handed out as a page table and not laundered since: it
    /// returns to `tainted_free` whenever it is freed, also after serving
    /// as data.
    tainted: BTreeSet<u64>,
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
            tainted_free: Vec::new(),
            tainted: BTreeSet::new(),
        }
    }

    /// A page-table frame: a clean one, the highest free (data runs are
    /// taken from the bottom, so tables do not cut them up).
    fn take_table(&mut self) -> Option<u64> {
        let (base, n) = self.free.last_mut()?;
        *n -= 1;
        let f = *base + *n * PAGE_SIZE;
        if *n == 0 {
            self.free.pop();
        }
        self.tainted.insert(f);
        Some(f)
    }

    /// Takes back a zeroed run: tainted frames to `tainted_free`, the rest
    /// to the free runs.
    fn give_back(&mut self, (base, pages): Run) {
        let mut start = base;
        let end = base + pages * PAGE_SIZE;
        for f in (base..end).step_by(PAGE_SIZE as usize) {
            if self.tainted.contains(&f) {
                if f > start {
                    self.give((start, (f - start) / PAGE_SIZE));
                }
                self.tainted_free.push(f);
                start = f + PAGE_SIZE;
            }
        }
        if end > start {
            self.give((start, (end - start) / PAGE_SIZE));
        }
    }

    /// `pages` contiguous zero frames for data: a tainted frame for a
    /// single page, else a clean run (first fit).
    fn take_data(&mut self, pages: u64) -> Option<u64> {
        if pages == 1
            && let Some(f) = self.tainted_free.pop()
        {
            return Some(f);
        }
        let i = self.free.iter().position(|&(_, n)| n >= pages)?;
        let (base, n) = self.free[i];
        if n == pages {
            self.free.remove(i);
        } else {
            self.free[i] = (base + pages * PAGE_SIZE, n - pages);
        }
        Some(base)
    }

    /// Whether a launder would make more frames clean.
    pub fn launderable(&self) -> bool {
        !self.tainted_free.is_empty()
    }

    /// Makes every free frame clean. Only right after the host dropped
    /// every shadow page of the pool's frames (`vm::reset_ram_slot`):
    /// frames still in use stay tainted, since the guest may go on using
    /// their tables, and with them a fresh shadow.
    pub fn launder(&mut self) {
        for f in std::mem::take(&mut self.tainted_free) {
            self.tainted.remove(&f);
            self.give((f, 1));
        }
    }

    /// Returns a zeroed clean run.
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

    /// Free pages (tainted ones included).
    #[cfg(test)]
    fn free_pages(&self) -> u64 {
        self.free.iter().map(|&(_, n)| n).sum::<u64>() + self.tainted_free.len() as u64
    }
}

/// The frames one process owns.
#[derive(Debug, Default)]
pub struct Owned {
    /// Data runs.
    runs: Vec<Run>,
    /// Page-table frames.
    tables: Vec<u64>,
}

impl Owned {
    /// Bytes owned.
    pub fn bytes(&self) -> u64 {
        let data: u64 = self.runs.iter().map(|&(_, n)| n).sum();
        (data + self.tables.len() as u64) * PAGE_SIZE
    }

    /// Gives every frame back to `pool`, zeroing it by returning its host
    /// memory (`MADV_DONTNEED`); page-table frames are retired.
    pub fn release(&mut self, ram: &Ram, pool: &mut Pool) {
        for run in self
            .runs
            .drain(..)
            .chain(self.tables.drain(..).map(|t| (t, 1)))
        {
            discard(ram, run);
            pool.give_back(run);
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
    /// A page-table frame: never a retired one.
    fn alloc_zeroed(&mut self) -> Option<u64> {
        let f = self.pool.take_table()?;
        self.owned.tables.push(f);
        Some(f)
    }
}

impl Frames for Grant<'_> {
    fn alloc(&mut self, pages: u64, _kind: u32, what: &'static str) -> Result<u64, MemoryError> {
        let base = self.pool.take_data(pages).ok_or(MemoryError::TooSmall {
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
        assert_eq!(g.alloc(1, 0, "b").unwrap(), 4 * p);
        assert_eq!(g.alloc(6, 0, "c").unwrap(), 5 * p);
        assert!(g.alloc(1, 0, "d").is_err());
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
        let table = Grant {
            pool: &mut pool,
            owned: &mut owned,
        }
        .alloc_zeroed()
        .unwrap();
        ram.write_obj(0xABCDu64, GuestAddress(base + 8)).unwrap();
        ram.write_obj(0x1234u64, GuestAddress(table)).unwrap();
        assert_eq!(owned.bytes(), 3 * PAGE_SIZE);
        owned.release(&ram, &mut pool);
        assert_eq!(ram.read_obj::<u64>(GuestAddress(base + 8)).unwrap(), 0);
        assert_eq!(ram.read_obj::<u64>(GuestAddress(table)).unwrap(), 0);
        assert_eq!(pool.free_pages(), (3 << 20) / PAGE_SIZE);
        assert_eq!(owned.bytes(), 0);
        // The former table comes back as a data page, never as a table.
        let mut g = Grant {
            pool: &mut pool,
            owned: &mut owned,
        };
        assert_ne!(g.alloc_zeroed(), Some(table));
        assert_eq!(g.alloc(1, 0, "data").unwrap(), table);
        // ... and, freed again as data, stays retired.
        owned.release(&ram, &mut pool);
        assert!(pool.tainted_free.contains(&table));
        assert!(
            pool.free
                .iter()
                .all(|&(b, n)| table < b || table >= b + n * PAGE_SIZE)
        );
    }
}
