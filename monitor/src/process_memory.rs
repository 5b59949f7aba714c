//! The memory of spawned processes (PROTOCOL.md §14.4): the RAM the boot
//! left over, handed out as page-table frames and runs of data frames, and
//! taken back when a process ends.
//!
//! Invariants: every free frame is zero (fresh host memory, or returned to
//! the host with `MADV_DONTNEED`, which makes the next touch read zeros); a
//! frame is either free or owned by exactly one process; clean free runs
//! are sorted, disjoint and merged with their neighbours.
//!
//! # Page-table frames and shadow paging
//!
//! Under shadow paging (the nested KVM Weft targets, "PVM"), the host keeps
//! shadows of the guest's page tables keyed by frame, write-protects them
//! against the guest, and does not see the monitor rewrite a frame from
//! outside the guest. A recycled table frame was seen to keep translating
//! through its old shadow: a spawned program's output went to another
//! process's pipe region. Flushing the TLB on every switch did not help.
//!
//! So a frame handed out as a page table is *tainted*: once freed, it is
//! handed out again (as anything) only after a *launder*. The process host
//! launders when a spawn runs short (then builds it again) and before a
//! `MAP` the clean frames cannot cover: it deletes guest RAM's memory slot
//! and adds it back (`vm::reset_ram_slot`), which makes KVM drop every
//! shadow page of the frames in it, then [`Pool::launder`] takes every
//! tainted free frame as clean. Frames in use stay tainted (the guest goes
//! on using their tables, and with them a fresh shadow). A pool that kept
//! former tables out of table use for ever ran out after ~360 spawns at
//! `--mem 64`, however its data was placed.
//!
//! Measured on the development machine (`proc-bench`: the 40 spawns one
//! after another of `monitor/tests/processes.rs`):
//! - tables reused at once with no launder (tables come from the top of
//!   the pool, so a freed table frame is the next one handed out): output
//!   lost in 10 runs of 10, 7 to 11 children of 40 heard;
//! - a launder before every spawn, tables reused at once: every child
//!   heard in 60 runs of 60;
//! - cost of a launder: the two slot calls take ~0.2 ms (median of 100; up
//!   to 10 ms), the next spawn ~0.5 ms more (2.1 against 1.6 ms, medians of
//!   300) while the host shadows the kernel's tables again. Laundering
//!   only when the pool runs short is rare: `churn` (3,000 spawns, 4 at a
//!   time) laundered 11 times at `--mem 64` and once at `--mem 256`.
//!
//! The slot deleted is the whole of RAM's rather than one of the pool's
//! own: by default KVM drops every shadow page of the VM on any slot
//! deletion (`KVM_X86_QUIRK_SLOT_ZAP_ALL`), so a slot of its own would
//! save nothing, and deleting RAM's drops the pool's shadows under either
//! rule. Not tried: having the kernel write to a reused table frame so
//! that the host zaps its shadow (KVM does, after a few emulated writes to
//! a shadowed frame): a heuristic of the host's, and every write an exit
//! from emulated ring 0.
//!
//! # Fragmentation
//!
//! Data frames need not be contiguous (address spaces map page by page):
//! stacks, heaps and anonymous memory take whatever runs there are
//! ([`Frames::alloc_part`]), so a spawn succeeds whenever enough frames are
//! free, after a launder if need be. Only areas the monitor fills through
//! their physical address (arguments, system page, payload) need one run.
//! Tables come from the top of the pool, data from the bottom.

use crate::guest_memory::{MemoryError, Ram};
use crate::host;
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
    /// Tainted free frames, zero: out of use until the next launder.
    tainted_free: Vec<u64>,
    /// Every frame handed out as a page table since the last launder that
    /// found it free (owned ones; freed ones are in `tainted_free` too).
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

    /// A page-table frame: the highest clean one (data is taken from the
    /// bottom, so tables do not cut up its runs).
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

    /// `pages` contiguous clean frames (first fit).
    fn take(&mut self, pages: u64) -> Option<u64> {
        let i = self.free.iter().position(|&(_, n)| n >= pages)?;
        Some(self.take_from(i, pages))
    }

    /// Between 1 and `pages` contiguous clean frames: the lowest run, or
    /// as much of it as is asked for.
    fn take_part(&mut self, pages: u64) -> Option<Run> {
        let n = self.free.first()?.1.min(pages);
        (n > 0).then(|| (self.take_from(0, n), n))
    }

    /// The first `pages` frames of free run `i` (which holds as many).
    fn take_from(&mut self, i: usize, pages: u64) -> u64 {
        let (base, n) = self.free[i];
        if n == pages {
            self.free.remove(i);
        } else {
            self.free[i] = (base + pages * PAGE_SIZE, n - pages);
        }
        base
    }

    /// Takes back a zeroed run: tainted frames to `tainted_free`, the rest
    /// to the clean runs.
    fn give_back(&mut self, (base, pages): Run) {
        let end = base + pages * PAGE_SIZE;
        let tainted: Vec<u64> = self.tainted.range(base..end).copied().collect();
        let mut start = base;
        for f in tainted {
            if f > start {
                self.give((start, (f - start) / PAGE_SIZE));
            }
            self.tainted_free.push(f);
            start = f + PAGE_SIZE;
        }
        if end > start {
            self.give((start, (end - start) / PAGE_SIZE));
        }
    }

    /// Clean free frames.
    pub fn clean_pages(&self) -> u64 {
        self.free.iter().map(|&(_, n)| n).sum()
    }

    /// Whether a launder would give back frames.
    pub fn launderable(&self) -> bool {
        !self.tainted_free.is_empty()
    }

    /// Takes every tainted free frame as clean. Only right after the host
    /// dropped every shadow page of the pool's frames.
    pub fn launder(&mut self) {
        let mut frames = std::mem::take(&mut self.tainted_free);
        frames.sort_unstable();
        for &f in &frames {
            self.tainted.remove(&f);
        }
        for run in coalesce(frames.iter().map(|&f| (f, 1))) {
            self.give(run);
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
}

/// Sorted, disjoint `runs` with neighbours merged.
fn coalesce(runs: impl IntoIterator<Item = Run>) -> Vec<Run> {
    let mut merged: Vec<Run> = Vec::new();
    for (base, n) in runs {
        match merged.last_mut() {
            Some((b, m)) if *b + *m * PAGE_SIZE == base => *m += n,
            _ => merged.push((base, n)),
        }
    }
    merged
}

/// The most frames mapping `pages` fresh pages may take: the pages and
/// the tables of every level that may map them.
pub fn map_demand(pages: u64) -> u64 {
    let entries = PAGE_SIZE / 8;
    let tables = |span: u64| pages.div_ceil(span) + 1;
    pages + tables(entries) + tables(entries * entries) + tables(entries * entries * entries)
}

/// The frames one process owns: data runs and page-table frames alike.
#[derive(Debug, Default)]
pub struct Owned {
    runs: Vec<Run>,
}

impl Owned {
    /// Bytes owned.
    pub fn bytes(&self) -> u64 {
        self.runs.iter().map(|&(_, n)| n * PAGE_SIZE).sum()
    }

    /// Takes over `other`'s frames.
    pub fn extend(&mut self, other: Owned) {
        self.runs.extend(other.runs);
    }

    fn record(&mut self, base: u64, pages: u64) {
        match self.runs.last_mut() {
            Some((b, n)) if *b + *n * PAGE_SIZE == base => *n += pages,
            _ => self.runs.push((base, pages)),
        }
    }

    /// Gives every frame back to `pool`, zeroing it by returning its host
    /// memory (`MADV_DONTNEED`, once per run of neighbouring frames).
    pub fn release(&mut self, ram: &Ram, pool: &mut Pool) {
        let mut runs = std::mem::take(&mut self.runs);
        runs.sort_unstable();
        for run in coalesce(runs) {
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
    let Some(host) = std::ptr::NonNull::new(slice.ptr_guard_mut().as_ptr()) else {
        return;
    };
    // SAFETY: `[host, host + len)` is the page-aligned guest RAM of a run
    // the pool handed out, in guest RAM's private anonymous mapping; the
    // process that owned it has ended and the guest no longer maps it, and
    // the monitor holds no reference into it.
    if unsafe { host::discard_pages(host, len) }.is_err() {
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

fn too_small(pages: u64, what: &'static str) -> MemoryError {
    MemoryError::TooSmall {
        needed: pages * PAGE_SIZE,
        what,
    }
}

impl FrameAllocator for Grant<'_> {
    /// A page-table frame: a clean one.
    fn alloc_zeroed(&mut self) -> Option<u64> {
        let f = self.pool.take_table()?;
        self.owned.record(f, 1);
        Some(f)
    }
}

impl Frames for Grant<'_> {
    fn alloc(&mut self, pages: u64, _kind: u32, what: &'static str) -> Result<u64, MemoryError> {
        let base = self.pool.take(pages).ok_or(too_small(pages, what))?;
        self.owned.record(base, pages);
        Ok(base)
    }

    fn alloc_part(
        &mut self,
        pages: u64,
        _kind: u32,
        what: &'static str,
    ) -> Result<Run, MemoryError> {
        let (base, n) = self.pool.take_part(pages).ok_or(too_small(pages, what))?;
        self.owned.record(base, n);
        Ok((base, n))
    }
}

#[cfg(test)]
#[path = "process_memory_tests.rs"]
mod tests;
