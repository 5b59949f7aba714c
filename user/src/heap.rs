//! The program heap: a linked-list allocator that grows by asking the kernel for
//! more contiguous anonymous memory (`map` returns consecutive addresses).

use core::alloc::{GlobalAlloc, Layout};
use core::ptr::null_mut;
use linked_list_allocator::Heap;

/// Smallest growth step.
const GROW_MIN: u64 = 64 * 1024;

struct GrowingHeap(spin_free::Cell);

mod spin_free {
    //! Programs are single-threaded, so the heap needs exclusion only against
    //! itself; a flag catches re-entrance instead of deadlocking.
    use core::cell::UnsafeCell;
    use core::sync::atomic::{AtomicBool, Ordering};
    use linked_list_allocator::Heap;

    pub struct Cell {
        busy: AtomicBool,
        heap: UnsafeCell<Heap>,
    }

    // SAFETY: access to `heap` is serialized by `busy` (see `with`).
    unsafe impl Sync for Cell {}

    impl Cell {
        pub const fn new() -> Self {
            Self { busy: AtomicBool::new(false), heap: UnsafeCell::new(Heap::empty()) }
        }

        /// Runs `f` with exclusive access, or returns `None` if re-entered.
        pub fn with<R>(&self, f: impl FnOnce(&mut Heap) -> R) -> Option<R> {
            if self.busy.swap(true, Ordering::Acquire) {
                return None;
            }
            // SAFETY: `busy` was false and is now true, so this is the only
            // live reference until it is cleared below.
            let r = f(unsafe { &mut *self.heap.get() });
            self.busy.store(false, Ordering::Release);
            Some(r)
        }
    }
}

fn grow(heap: &mut Heap, need: usize) -> bool {
    let by = (need as u64 + 4096).max(GROW_MIN);
    let Ok(addr) = crate::syscall::map(by) else { return false };
    if heap.size() == 0 {
        // SAFETY: `map` returned `by` bytes of fresh read/write memory that
        // nothing else uses.
        unsafe { heap.init(addr as *mut u8, by as usize) };
    } else if heap.top() as u64 == addr {
        // SAFETY: the new memory starts exactly at the heap's top.
        unsafe { heap.extend(by as usize) };
    } else {
        return false;
    }
    true
}

// SAFETY: allocation and deallocation go through `Heap`, serialized by the cell.
unsafe impl GlobalAlloc for GrowingHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.0
            .with(|h| match h.allocate_first_fit(layout) {
                Ok(p) => p.as_ptr(),
                Err(()) if grow(h, layout.size() + layout.align()) => {
                    h.allocate_first_fit(layout).map_or(null_mut(), |p| p.as_ptr())
                }
                Err(()) => null_mut(),
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
static HEAP: GrowingHeap = GrowingHeap(spin_free::Cell::new());
