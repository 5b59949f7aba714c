//! The program heap: a linked-list allocator over the anonymous memory area. Its
//! first `heap_mapped` bytes at `USER_HEAP_BASE` (the system page says how
//! many, PROTOCOL.md §4.2) are mapped before the program starts, so most
//! programs never enter the kernel to allocate; beyond that the heap grows
//! with the `map` syscall, which hands out consecutive addresses right after
//! it.

use crate::cell::ExclusiveCell;
use core::alloc::{GlobalAlloc, Layout};
use core::ptr::null_mut;
use linked_list_allocator::Heap;
use weft_control::layout::USER_HEAP_BASE;

/// Smallest growth step.
const GROW_MIN: u64 = 64 * 1024;
struct GrowingHeap(ExclusiveCell<Heap>);

fn grow(heap: &mut Heap, need: usize) -> bool {
    if heap.size() == 0 {
        // Exactly what the monitor mapped for this process: at least
        // USER_HEAP_INITIAL for the first program, what the spawn request
        // asked for (2 MiB by default) for a spawned one (§4.2, §14.2).
        let mapped = crate::time::info().heap_mapped;
        if mapped < GROW_MIN {
            return false;
        }
        // SAFETY: the monitor maps `mapped` bytes read/write at
        // USER_HEAP_BASE before the program starts, used by nothing else
        // (§4.2); this runs once, under the heap's cell.
        unsafe { heap.init(USER_HEAP_BASE as *mut u8, mapped as usize) };
        return true;
    }
    // Whole pages: `map` hands out whole pages consecutively, so a ragged
    // size would leave the next mapping short of the heap's top.
    let by = (need as u64 + 4096).next_multiple_of(4096).max(GROW_MIN);
    match crate::syscall::map(by) {
        Ok(addr) if addr == heap.top() as u64 => {
            // SAFETY: `map` returned `by` fresh read/write bytes starting
            // exactly at the heap's top.
            unsafe { heap.extend(by as usize) };
            true
        }
        _ => false,
    }
}

// SAFETY: allocation and deallocation go through `Heap`, serialized by the cell.
unsafe impl GlobalAlloc for GrowingHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.0
            .with(|h| {
                // At most: the first use initializes, a second growth maps more.
                for _ in 0..3 {
                    if let Ok(p) = h.allocate_first_fit(layout) {
                        return p.as_ptr();
                    }
                    if !grow(h, layout.size() + layout.align()) {
                        break;
                    }
                }
                null_mut()
            })
            .unwrap_or(null_mut())
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if let Some(p) = core::ptr::NonNull::new(ptr) {
            // SAFETY: `ptr` came from `alloc` with the same layout.
            self.0.with(|h| unsafe { h.deallocate(p, layout) });
        }
    }
}

#[global_allocator]
static HEAP: GrowingHeap = GrowingHeap(ExclusiveCell::new(Heap::empty()));
