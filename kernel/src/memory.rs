//! Physical memory, the hardware half: the direct map, and the frame
//! allocator, kernel heap and kernel stacks as statics.
//!
//! The arithmetic (which frames, how the heap and the stacks are carved,
//! which ranges lie in RAM) is `weft_kernel_core::memory`'s; this module
//! holds its state and turns its answers into pointers. Invariants
//! (PROTOCOL.md §1, §2.2): all guest RAM is mapped at `DIRECT_MAP_BASE +
//! phys`; the `USABLE` regions of the boot memory map are zero-filled at
//! boot and used by no one else. Initialization is O(1) in the size of
//! memory.

use core::ptr::{read_volatile, write_volatile};
use core::sync::atomic::{AtomicU64, Ordering};
use linked_list_allocator::LockedHeap;
use spin::Mutex;
use weft_control::boot::BootInfo;
use weft_control::error::ErrorCode;
use weft_image::paging::PhysMemory;
use weft_kernel_core::memory::{Frames, HEAP_BYTES, KernelStacks, Ram, kernel_address};

#[global_allocator]
static HEAP: LockedHeap = LockedHeap::empty();

/// The frame allocator.
static FRAMES: Mutex<Frames> = Mutex::new(Frames::empty());

/// Each process slot's kernel stack.
static STACKS: Mutex<KernelStacks> = Mutex::new(KernelStacks::new());

/// Bytes of guest RAM (from the boot info).
static MEM_SIZE: AtomicU64 = AtomicU64::new(0);

/// Guest RAM.
pub fn ram() -> Ram {
    Ram::new(MEM_SIZE.load(Ordering::Relaxed))
}

/// Guest RAM `[phys, phys + len)` as a byte slice, if it lies inside RAM.
pub fn ram_slice(phys: u64, len: u64) -> Option<&'static mut [u8]> {
    if !ram().contains(phys, len) {
        return None;
    }
    // SAFETY: the range lies in guest RAM, which the direct map covers
    // read/write for the kernel's lifetime. Callers use the slice at once,
    // with interrupts masked, for memory a page walk handed them.
    Some(unsafe { core::slice::from_raw_parts_mut(kernel_address(phys) as *mut u8, len as usize) })
}

/// The top of process slot `slot`'s kernel stack, allocated on first use.
pub fn kernel_stack(slot: usize) -> Result<u64, ErrorCode> {
    STACKS.lock().top(slot, &mut FRAMES.lock())
}

/// Guest RAM through the direct map, bounds-checked against its size.
pub struct DirectMap {
    ram: Ram,
}

impl DirectMap {
    /// Guest RAM as the boot info gave it.
    pub fn new(ram: Ram) -> Self {
        Self { ram }
    }

    fn slot(&self, phys: u64) -> Option<*mut u64> {
        self.ram
            .holds_word(phys)
            .then_some(kernel_address(phys) as *mut u64)
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

/// Takes the memory map from the boot info and sets up the heap. O(1) in the
/// size of memory.
pub fn init(info: &BootInfo) {
    MEM_SIZE.store(info.mem_size, Ordering::Relaxed);
    let mut frames = FRAMES.lock();
    frames.load(info.regions());
    match frames.carve_heap() {
        // SAFETY: the frames are usable RAM handed out exactly once, mapped by
        // the direct map for the kernel's lifetime.
        Some(base) => unsafe {
            HEAP.lock()
                .init(kernel_address(base) as *mut u8, HEAP_BYTES as usize)
        },
        None => panic!("no usable region of {HEAP_BYTES} bytes for the kernel heap"),
    }
}
