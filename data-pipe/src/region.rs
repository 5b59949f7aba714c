//! Regions that own their memory (feature `std`): [`HeapRegion`] for tests
//! and benchmarks inside one process, [`MemfdRegion`] for memory shared with
//! another process through a memfd.

use std::alloc::{self, Layout};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::ptr::NonNull;

use crate::access::{Memory, RawRegion, forward_memory};
use crate::layout::CACHE_LINE;

/// A zeroed, 64-byte aligned heap allocation used as a shared region by
/// threads of one process.
#[derive(Debug)]
pub struct HeapRegion {
    region: RawRegion,
    layout: Layout,
}

impl HeapRegion {
    /// Allocates `len` zeroed bytes (at least one cache line).
    ///
    /// # Panics
    ///
    /// If the allocation fails or `len` overflows a layout.
    pub fn new(len: usize) -> Self {
        let layout = Layout::from_size_align(len.max(CACHE_LINE), CACHE_LINE)
            .expect("region length overflows a layout");
        // SAFETY: `layout` has a non-zero size (at least one cache line).
        let ptr = unsafe { alloc::alloc_zeroed(layout) };
        let Some(ptr) = NonNull::new(ptr) else {
            alloc::handle_alloc_error(layout)
        };
        // SAFETY: `ptr` is a fresh allocation of `len` bytes, valid until
        // `drop` frees it; `region` never leaves this value except by
        // reference, so no copy outlives the allocation.
        let region = unsafe { RawRegion::new(ptr, len) }.expect("allocation is 64-byte aligned");
        Self { region, layout }
    }
}

impl Drop for HeapRegion {
    fn drop(&mut self) {
        let ptr = self.region.base_ptr();
        // SAFETY: `ptr` was returned by `alloc_zeroed(self.layout)` in `new`
        // and is freed once, here.
        unsafe { alloc::dealloc(ptr, self.layout) }
    }
}

forward_memory!(impl[] HeapRegion => |s| s.region);

/// `len` bytes of a memfd mapped shared into this process. Another process
/// that maps the same fd (inherited across `fork`, or passed over a Unix
/// socket) shares the bytes.
#[derive(Debug)]
pub struct MemfdRegion {
    region: RawRegion,
    fd: OwnedFd,
}

impl MemfdRegion {
    /// Creates a memfd of `len` bytes and maps it shared, read-write.
    pub fn new(len: usize) -> io::Result<Self> {
        // SAFETY: the name is a NUL-terminated string; flags are valid.
        let raw = unsafe { libc::memfd_create(c"weft-data-pipe".as_ptr(), libc::MFD_CLOEXEC) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a freshly created fd that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let size =
            libc::off_t::try_from(len).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        // SAFETY: `fd` is a valid memfd.
        if unsafe { libc::ftruncate(fd.as_raw_fd(), size) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a fresh shared mapping of the whole file, at an address the
        // kernel chooses; no existing memory is affected.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len.max(1),
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr =
            NonNull::new(ptr.cast::<u8>()).ok_or_else(|| io::Error::from(io::ErrorKind::Other))?;
        // SAFETY: the mapping is `len` bytes, readable and writable, page
        // aligned, and stays mapped until `drop`; `region` is only lent out
        // by reference, so no copy outlives the mapping. The other process
        // is the untrusted peer the ring is designed for.
        let region = unsafe { RawRegion::new(ptr, len) }
            .map_err(|_| io::Error::from(io::ErrorKind::Other))?;
        Ok(Self { region, fd })
    }

    /// The memfd, to hand to the peer process.
    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl Drop for MemfdRegion {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `new`, once; no copy of
        // `region` outlives `self`.
        unsafe { libc::munmap(self.region.base_ptr().cast(), self.region.size().max(1)) };
    }
}

forward_memory!(impl[] MemfdRegion => |s| s.region);
