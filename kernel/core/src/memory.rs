//! Physical-memory arithmetic (PROTOCOL.md §1.1, §2.2): the frame
//! allocator, the kernel heap and kernel stacks carved from it, and the
//! bounds checks of guest-RAM ranges.
//!
//! The `USABLE` regions of the boot memory map are zero-filled at boot and
//! used by no one else. They are small: the monitor owns the memory of
//! processes, so the kernel allocates only its heap and the kernel stacks of
//! process slots, by a bump pointer, once each.
//!
//! Invariants of [`Frames`]:
//! - Only `USABLE` regions are used, shrunk inward to whole pages and cut at
//!   [`DIRECT_MAP_END`] (so every frame has a kernel address), and only in
//!   increasing address order without overlap.
//! - Every allocation is page-aligned, lies inside one region, and never
//!   overlaps another: the bump pointer only grows within a region, and
//!   moves to the next region (leaving the rest of the current one unused)
//!   when a request does not fit.
//! - A request whose size overflows is refused, and changes nothing.

use weft_control::boot::{MAX_REGIONS, MemoryRegion, region_kind};
use weft_control::error::ErrorCode;
use weft_control::layout::{DIRECT_MAP_BASE, KERNEL_IMAGE_BASE, KERNEL_STACK_TOP, PAGE_SIZE};
use weft_control::process::MAX_PROCESSES;

/// Size of the kernel heap, carved from the usable regions at boot.
pub const HEAP_BYTES: u64 = 256 * 1024;
/// Pages of each spawned process's kernel stack.
pub const KERNEL_STACK_PAGES: u64 = 4;

/// One past the highest physical address the direct map reaches: it ends
/// where the kernel image's range begins.
pub const DIRECT_MAP_END: u64 = KERNEL_IMAGE_BASE - DIRECT_MAP_BASE;

/// The kernel (direct-map) address of guest-physical `phys` (below
/// [`DIRECT_MAP_END`]).
#[inline]
pub const fn kernel_address(phys: u64) -> u64 {
    DIRECT_MAP_BASE + phys
}

/// A bump allocator over the usable regions of the boot memory map.
#[derive(Clone, Debug)]
pub struct Frames {
    /// `(base, end)` of each usable region, page-aligned, `base < end`.
    regions: [(u64, u64); MAX_REGIONS],
    count: usize,
    /// The region allocations come from.
    current: usize,
    /// Its next free address.
    next: u64,
}

impl Default for Frames {
    fn default() -> Self {
        Self::empty()
    }
}

impl Frames {
    /// An allocator with no memory.
    pub const fn empty() -> Self {
        Self {
            regions: [(0, 0); MAX_REGIONS],
            count: 0,
            current: 0,
            next: 0,
        }
    }

    /// Takes the usable regions of `map` (the first [`MAX_REGIONS`] of
    /// them), forgetting any it had. The map is sorted and disjoint
    /// (§2.2); a region that starts below the end of the one before is
    /// ignored, so no frame is handed out twice whatever the map says.
    pub fn load(&mut self, map: &[MemoryRegion]) {
        let mut floor = 0;
        let usable = map.iter().filter_map(|r| {
            if r.kind != region_kind::USABLE {
                return None;
            }
            let base = r.base.checked_next_multiple_of(PAGE_SIZE)?;
            let end = r.base.saturating_add(r.len).min(DIRECT_MAP_END) / PAGE_SIZE * PAGE_SIZE;
            if base >= end || base < floor {
                return None;
            }
            floor = end;
            Some((base, end))
        });
        self.count = 0;
        for (slot, r) in self.regions.iter_mut().zip(usable) {
            *slot = r;
            self.count += 1;
        }
        self.current = 0;
        self.next = self.regions[0].0;
    }

    /// `pages` physically contiguous zeroed frames; returns the first.
    pub fn alloc_contiguous(&mut self, pages: u64) -> Option<u64> {
        let bytes = pages.checked_mul(PAGE_SIZE)?;
        while self.current < self.count {
            let (_, end) = self.regions[self.current];
            if self.next.checked_add(bytes)? <= end {
                let frame = self.next;
                self.next += bytes;
                return Some(frame);
            }
            self.current += 1;
            self.next = self.regions.get(self.current).map_or(0, |r| r.0);
        }
        None
    }

    /// The kernel heap: [`HEAP_BYTES`] of contiguous frames; returns the
    /// first.
    pub fn carve_heap(&mut self) -> Option<u64> {
        self.alloc_contiguous(HEAP_BYTES / PAGE_SIZE)
    }
}

/// The kernel stack of each process slot: slot 0 uses the boot stack, the
/// others get [`KERNEL_STACK_PAGES`] from the frame allocator on first use
/// and keep them (a slot's stack is never in use by two processes: its last
/// process was switched out for good when it ended).
#[derive(Clone, Debug)]
pub struct KernelStacks {
    /// Kernel address of each slot's stack top; 0: not allocated yet.
    tops: [u64; MAX_PROCESSES],
}

impl Default for KernelStacks {
    fn default() -> Self {
        Self::new()
    }
}

impl KernelStacks {
    /// No stacks but the boot stack.
    pub const fn new() -> Self {
        let mut tops = [0; MAX_PROCESSES];
        tops[0] = KERNEL_STACK_TOP;
        Self { tops }
    }

    /// The top of slot `slot`'s kernel stack (a kernel address, 16-aligned),
    /// taking it from `frames` on first use. `OutOfMemory` if they run out,
    /// `BadArgument` for a slot that does not exist.
    pub fn top(&mut self, slot: usize, frames: &mut Frames) -> Result<u64, ErrorCode> {
        let top = self.tops.get_mut(slot).ok_or(ErrorCode::BadArgument)?;
        if *top == 0 {
            let base = frames
                .alloc_contiguous(KERNEL_STACK_PAGES)
                .ok_or(ErrorCode::OutOfMemory)?;
            *top = kernel_address(base) + KERNEL_STACK_PAGES * PAGE_SIZE;
        }
        Ok(*top)
    }
}

/// Guest RAM: `[0, size)` of guest-physical memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ram {
    size: u64,
}

impl Ram {
    /// RAM of `size` bytes (from the boot info).
    #[inline]
    pub const fn new(size: u64) -> Self {
        Self { size }
    }

    /// Whether `[phys, phys + len)` lies inside RAM (without wrapping).
    #[inline]
    pub fn contains(self, phys: u64, len: u64) -> bool {
        phys.checked_add(len).is_some_and(|end| end <= self.size)
    }

    /// Whether the 8-byte word at `phys` is aligned and inside RAM.
    #[inline]
    pub fn holds_word(self, phys: u64) -> bool {
        phys.is_multiple_of(8) && self.contains(phys, 8)
    }
}

#[cfg(test)]
mod tests;
