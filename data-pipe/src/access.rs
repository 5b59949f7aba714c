//! How the ring touches shared memory: the [`Memory`] trait, and
//! [`RawRegion`], its implementation over a mapped range of address space.
//!
//! The ring never forms a Rust reference into shared memory. Header fields are
//! read and written with atomic operations by offset; data bytes are copied
//! between the region and private buffers. The same ring code runs over guest
//! memory in the kernel and in user space, over a mapping in the monitor, over
//! heap buffers in tests, and over a loom model (`tests/loom.rs`).

use core::ptr::NonNull;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crate::layout::{CACHE_LINE, LayoutError};

/// Access to a region of memory shared with a peer.
///
/// Offsets are relative to the start of the region. The ring only passes
/// offsets it derived from a checked [`Geometry`](crate::Geometry): `u64`
/// fields at multiples of 8, `u32` fields at multiples of 4, copies inside
/// the region. Implementations must still not cause undefined behaviour for
/// any offset (they may panic on an offset outside the region: that is a bug
/// in this crate, never a consequence of what the peer wrote).
pub trait Memory {
    /// Size of the region in bytes.
    fn size(&self) -> usize;
    /// Atomically loads the `u64` at `offset`.
    fn load_u64(&self, offset: usize, order: Ordering) -> u64;
    /// Atomically stores `value` at `offset`.
    fn store_u64(&self, offset: usize, value: u64, order: Ordering);
    /// Atomically loads the `u32` at `offset`.
    fn load_u32(&self, offset: usize, order: Ordering) -> u32;
    /// Atomically stores `value` at `offset`.
    fn store_u32(&self, offset: usize, value: u32, order: Ordering);
    /// A sequentially consistent fence (PROTOCOL.md §7.6).
    fn fence(&self);
    /// Copies `dst.len()` bytes starting at `offset` out of the region.
    fn copy_out(&self, offset: usize, dst: &mut [u8]);
    /// Copies `src` into the region starting at `offset`.
    fn copy_in(&self, offset: usize, src: &[u8]);
}

/// Implements [`Memory`] for a type by forwarding every method to the
/// `Memory` that `$inner` (an expression over `self`, bound to `$s`) yields.
macro_rules! forward_memory {
    (impl[$($generics:tt)*] $target:ty => |$s:ident| $inner:expr) => {
        impl<$($generics)*> $crate::Memory for $target {
            fn size(&self) -> usize { let $s = self; $inner.size() }
            fn load_u64(&self, offset: usize, order: core::sync::atomic::Ordering) -> u64 {
                let $s = self; $inner.load_u64(offset, order)
            }
            fn store_u64(&self, offset: usize, value: u64, order: core::sync::atomic::Ordering) {
                let $s = self; $inner.store_u64(offset, value, order)
            }
            fn load_u32(&self, offset: usize, order: core::sync::atomic::Ordering) -> u32 {
                let $s = self; $inner.load_u32(offset, order)
            }
            fn store_u32(&self, offset: usize, value: u32, order: core::sync::atomic::Ordering) {
                let $s = self; $inner.store_u32(offset, value, order)
            }
            fn fence(&self) { let $s = self; $inner.fence() }
            fn copy_out(&self, offset: usize, dst: &mut [u8]) { let $s = self; $inner.copy_out(offset, dst) }
            fn copy_in(&self, offset: usize, src: &[u8]) { let $s = self; $inner.copy_in(offset, src) }
        }
    };
}
#[cfg(feature = "std")]
pub(crate) use forward_memory;

forward_memory!(impl[T: Memory + ?Sized] &T => |s| (**s));
#[cfg(feature = "std")]
forward_memory!(impl[T: Memory + ?Sized] std::sync::Arc<T> => |s| (**s));

/// A range of address space shared with a peer: guest memory seen from the
/// kernel or a user program, a monitor mapping, a memfd, a heap allocation.
///
/// Invariants (established by [`RawRegion::new`]): `ptr` is 64-byte aligned
/// and valid for reads and writes of `len` bytes for as long as any copy of
/// the value exists; within it, the words the ring accesses atomically are
/// only ever accessed atomically and with the same size by this process.
#[derive(Clone, Copy, Debug)]
pub struct RawRegion {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: a `RawRegion` is a capability to access shared memory that is
// designed to be accessed concurrently: header words only through atomics,
// data bytes only in ranges the ring protocol hands to one side at a time.
unsafe impl Send for RawRegion {}
// SAFETY: as for `Send`; no method takes `&mut self` or hands out references.
unsafe impl Sync for RawRegion {}

impl RawRegion {
    /// Wraps `len` bytes at `ptr`.
    ///
    /// Fails with [`LayoutError::Misaligned`] unless `ptr` is 64-byte aligned.
    ///
    /// # Safety
    ///
    /// `ptr` must be valid for reads and writes of `len` bytes for as long as
    /// the returned value or any copy of it is used, and nothing in this
    /// process may access that memory other than through a `RawRegion` (or
    /// through atomics of the same size at the header offsets). The peer,
    /// another process or a guest, may write anything at any time: the ring
    /// treats every value it reads as untrusted.
    pub unsafe fn new(ptr: NonNull<u8>, len: usize) -> Result<Self, LayoutError> {
        if ptr.as_ptr().align_offset(CACHE_LINE) != 0 {
            return Err(LayoutError::Misaligned);
        }
        Ok(Self { ptr, len })
    }

    /// The first byte of the region.
    #[cfg(feature = "std")]
    pub(crate) fn base_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// The address of `len` bytes at `offset` (a [`Chunk`](crate::Chunk)'s
    /// bytes), for handing to the host kernel, which copies to or from them
    /// without a Rust reference ever being formed; `None` if the range is not
    /// inside the region. The pointer is valid as long as the region; the
    /// ring protocol, not this function, says which side may touch the bytes.
    pub fn span(&self, offset: usize, len: usize) -> Option<*mut u8> {
        let end = offset.checked_add(len)?;
        // SAFETY: `offset <= end <= len`, so the result stays inside (or one
        // past the end of) the allocation `ptr` is valid for (`new`).
        (end <= self.len).then(|| unsafe { self.ptr.as_ptr().add(offset) })
    }

    /// Pointer to `offset`, after checking that `size` bytes there are inside
    /// the region and that `offset` is a multiple of `align`.
    fn at(&self, offset: usize, size: usize, align: usize) -> *mut u8 {
        let end = offset.checked_add(size);
        assert!(
            end.is_some_and(|end| end <= self.len) && offset.is_multiple_of(align),
            "ring accessed offset {offset} (+{size}) outside its {}-byte region",
            self.len
        );
        // SAFETY: `offset + size <= len` was just checked, and `ptr` is valid
        // for `len` bytes (invariant of `RawRegion::new`), so the result stays
        // inside the same allocation.
        unsafe { self.ptr.as_ptr().add(offset) }
    }

    fn u64_at(&self, offset: usize) -> &AtomicU64 {
        let p = self.at(offset, 8, 8).cast::<u64>();
        // SAFETY: `p` is in bounds and 8-aligned (`at` checked the offset, the
        // base is 64-aligned), valid for the region's lifetime (`new`), and
        // this process accesses the word only atomically as a u64 (`new`).
        // The reference is to an atomic, which permits concurrent mutation.
        unsafe { AtomicU64::from_ptr(p) }
    }

    fn u32_at(&self, offset: usize) -> &AtomicU32 {
        let p = self.at(offset, 4, 4).cast::<u32>();
        // SAFETY: as in `u64_at`, for a 4-aligned u32.
        unsafe { AtomicU32::from_ptr(p) }
    }
}

impl Memory for RawRegion {
    fn size(&self) -> usize {
        self.len
    }

    fn load_u64(&self, offset: usize, order: Ordering) -> u64 {
        self.u64_at(offset).load(order)
    }

    fn store_u64(&self, offset: usize, value: u64, order: Ordering) {
        self.u64_at(offset).store(value, order)
    }

    fn load_u32(&self, offset: usize, order: Ordering) -> u32 {
        self.u32_at(offset).load(order)
    }

    fn store_u32(&self, offset: usize, value: u32, order: Ordering) {
        self.u32_at(offset).store(value, order)
    }

    fn fence(&self) {
        core::sync::atomic::fence(Ordering::SeqCst);
    }

    fn copy_out(&self, offset: usize, dst: &mut [u8]) {
        let src = self.at(offset, dst.len(), 1);
        // SAFETY: the source range is inside the region (`at`) and the
        // destination is a private buffer, so they do not overlap. An honest
        // peer does not write these bytes until we publish `consumed` past
        // them (§7.6); a hostile peer writing concurrently can only change the
        // bytes we copy, which are untrusted data anyway. (A concurrent
        // foreign write is outside Rust's memory model, as for any memory
        // shared with another process; the bytes land in `dst` and are never
        // re-read from the region.)
        unsafe { core::ptr::copy_nonoverlapping(src, dst.as_mut_ptr(), dst.len()) }
    }

    fn copy_in(&self, offset: usize, src: &[u8]) {
        let dst = self.at(offset, src.len(), 1);
        // SAFETY: the destination range is inside the region (`at`), the
        // source is a private buffer, so they do not overlap; an honest peer
        // does not read these bytes until we publish `produced` past them.
        unsafe { core::ptr::copy_nonoverlapping(src.as_ptr(), dst, src.len()) }
    }
}
