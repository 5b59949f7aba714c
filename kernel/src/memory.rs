//! Physical memory: the direct map, the frame allocator and the kernel heap.
//!
//! Invariants (PROTOCOL.md §1, §2.2): all guest RAM is mapped at
//! `DIRECT_MAP_BASE + phys`; the `USABLE` regions of the boot memory map are
//! zero-filled at boot and used by no one else. They are small: the monitor
//! owns the memory of processes (`PROCESSES` regions, §14.4), so the kernel
//! allocates only its heap and the kernel stacks of process slots, by a bump
//! pointer, once each. Initialization is O(1).

use core::ptr::{read_volatile, write_volatile};
use core::sync::atomic::{AtomicU64, Ordering};
use linked_list_allocator::LockedHeap;
use spin::Mutex;
use weft_control::boot::{BootInfo, MAX_REGIONS, MemoryRegion, region_kind};
use weft_control::layout::{DIRECT_MAP_BASE, PAGE_SIZE};
use weft_image::paging::PhysMemory;

/// Size of the kernel heap, taken from the first usable region at boot.
const HEAP_SIZE: u64 = 256 * 1024;

#[global_allocator]
static HEAP: LockedHeap = LockedHeap::empty();

/// The frame allocator.
pub static FRAMES: Mutex<Frames> = Mutex::new(Frames::empty());

/// Bytes of guest RAM (from the boot info).
static MEM_SIZE: AtomicU64 = AtomicU64::new(0);

/// Bytes of guest RAM.
pub fn mem_size() -> u64 {
    MEM_SIZE.load(Ordering::Relaxed)
}

/// The kernel (direct-map) address of guest-physical `phys`.
pub const fn kernel_address(phys: u64) -> u64 {
    DIRECT_MAP_BASE + phys
}

/// Guest RAM `[phys, phys + len)` as a byte slice, if it lies inside RAM.
pub fn ram_slice(phys: u64, len: u64) -> Option<&'static mut [u8]> {
    let end = phys.checked_add(len)?;
    if end > mem_size() {
        return None;
    }
    // SAFETY: the range lies in guest RAM, which the direct map covers
    // read/write for the kernel's lifetime. Callers use the slice at once,
    // with interrupts masked, for memory a page walk handed them.
    Some(unsafe { core::slice::from_raw_parts_mut(kernel_address(phys) as *mut u8, len as usize) })
}

/// Guest RAM through the direct map, bounds-checked against its size.
pub struct DirectMap {
    mem_size: u64,
}

impl DirectMap {
    /// Guest RAM of `mem_size` bytes (from the boot info).
    pub fn new(mem_size: u64) -> Self {
        Self { mem_size }
    }

    fn slot(&self, phys: u64) -> Option<*mut u64> {
        let end = phys.checked_add(8)?;
        (phys.is_multiple_of(8) && end <= self.mem_size)
            .then_some((DIRECT_MAP_BASE + phys) as *mut u64)
    }
}

impl PhysMemory for DirectMap {
    fn read_u64(&self, phys: u64) -> Option<u64> {
        let p = self.slot(phys)?;
        // SAFETY: `slot` checked that the aligned 8 bytes lie in guest RAM, which
        // the direct map covers read/write.
        Some(unsafe { read_volatile(p) })
    }

    fn write_u64(&mut self, phys: u64, value: u64) -> Option<()> {
        let p = self.slot(phys)?;
        // SAFETY: as in `read_u64`; only page-table frames the kernel owns are
        // written through this.
        unsafe { write_volatile(p, value) };
        Some(())
    }
}

/// A bump allocator over the usable regions of the boot memory map.
pub struct Frames {
    regions: [MemoryRegion; MAX_REGIONS],
    count: usize,
    current: usize,
    next: u64,
}

impl Frames {
    const fn empty() -> Self {
        Self {
            regions: [MemoryRegion::EMPTY; MAX_REGIONS],
            count: 0,
            current: 0,
            next: 0,
        }
    }

    fn load(&mut self, info: &BootInfo) {
        for r in info
            .regions()
            .iter()
            .filter(|r| r.kind == region_kind::USABLE)
        {
            self.regions[self.count] = *r;
            self.count += 1;
        }
        self.next = self.regions.first().map_or(0, |r| r.base);
    }

    /// `pages` physically contiguous zeroed frames; returns the first.
    pub fn alloc_contiguous(&mut self, pages: u64) -> Option<u64> {
        let bytes = pages.checked_mul(PAGE_SIZE)?;
        while self.current < self.count {
            let r = self.regions[self.current];
            let end = r.base + r.len;
            if self.next.checked_add(bytes)? <= end {
                let frame = self.next;
                self.next += bytes;
                return Some(frame);
            }
            self.current += 1;
            self.next = self.regions.get(self.current).map_or(0, |r| r.base);
        }
        None
    }
}

/// Takes the memory map from the boot info and sets up the heap. O(1) in the
/// size of memory.
pub fn init(info: &BootInfo) {
    MEM_SIZE.store(info.mem_size, Ordering::Relaxed);
    let mut frames = FRAMES.lock();
    frames.load(info);
    match frames.alloc_contiguous(HEAP_SIZE / PAGE_SIZE) {
        // SAFETY: the frames are usable RAM handed out exactly once, mapped by
        // the direct map for the kernel's lifetime.
        Some(base) => unsafe {
            HEAP.lock()
                .init((DIRECT_MAP_BASE + base) as *mut u8, HEAP_SIZE as usize)
        },
        None => panic!("no usable region of {HEAP_SIZE} bytes for the kernel heap"),
    }
}
