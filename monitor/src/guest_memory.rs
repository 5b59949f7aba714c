//! Guest RAM: creation, typed access for the page-table code, and the boot-time
//! frame allocator that records the physical memory map (PROTOCOL.md §1, §2.2).
//!
//! Guest RAM is one anonymous mapping starting at guest-physical 0, zero-filled
//! by the host, so every frame handed out at boot is already zero. The pipe
//! regions (PROTOCOL.md §8.1) are guest memory too: region 0 is mapped with
//! RAM; regions 1.. are one more mapping, made with the first spawn.

use crate::host;
use thiserror::Error;
use vm_memory::{
    Address, Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion,
};
use weft_control::boot::{MAX_REGIONS, MemoryRegion, region_kind};
use weft_control::layout::PAGE_SIZE;
use weft_control::streams::{PIPE_REGION_GPA, PIPE_REGION_SIZE, REGIONS, region_gpa};
use weft_image::paging::{Access, FrameAllocator, PhysMemory, SIZE_2M, translate_range};

/// The first frame handed out at boot: the first MiB is never used, so
/// that QEMU's legacy window (0xA_0000..0x10_0000: VGA memory, the BIOS
/// shadow) holds nothing of the guest's (§1.1).
pub const FIRST_FRAME: u64 = 0x10_0000;

/// Guest RAM as the monitor sees it.
pub type Ram = GuestMemoryMmap<()>;

/// Failures creating or laying out guest memory.
#[derive(Debug, Error)]
pub enum MemoryError {
    /// The host could not map guest RAM.
    #[error("cannot allocate {0} bytes of guest memory: {1}")]
    Map(u64, vm_memory::mmap::FromRangesError),
    /// The host could not make the memory file QEMU shares.
    #[error("cannot make a {0}-byte guest memory file: {1}")]
    File(u64, std::io::Error),
    /// Boot allocations did not fit.
    #[error("guest memory is too small: {needed} more bytes needed while laying out {what}")]
    TooSmall { needed: u64, what: &'static str },
    /// More distinct regions than the boot info can describe.
    #[error("the boot memory map needs more than {MAX_REGIONS} regions")]
    TooManyRegions,
}

/// Maps `size` bytes of zeroed guest RAM at guest-physical 0 and the zeroed
/// pipe region at `PIPE_REGION_GPA` (PROTOCOL.md §1.1, §8).
pub fn create(size: u64) -> Result<Ram, MemoryError> {
    let len = usize::try_from(size).map_err(|_| MemoryError::TooSmall {
        needed: size,
        what: "RAM",
    })?;
    GuestMemoryMmap::from_ranges(&[
        (GuestAddress(0), len),
        (GuestAddress(PIPE_REGION_GPA), PIPE_REGION_SIZE as usize),
    ])
    .map_err(|e| MemoryError::Map(size, e))
}

/// Asks the host to back the guest RAM `[gpa, gpa + len)` with transparent
/// huge pages where it has them, so that guest 2 MiB pages over it are
/// shadowed 2 MiB at a time ([`crate::loader::Space::map_fresh_large`]).
/// Only advice: without it, or outside RAM, nothing changes. Untouched
/// memory still costs the host nothing; a touched 2 MiB is resident whole.
pub fn advise_huge_pages(ram: &Ram, gpa: u64, len: u64) {
    let Ok(len) = usize::try_from(len) else {
        return;
    };
    let base = ram
        .get_slice(GuestAddress(gpa), len)
        .ok()
        .and_then(|s| std::ptr::NonNull::new(s.ptr_guard_mut().as_ptr()));
    if let Some(base) = base {
        let _ = host::advise_huge_pages(base, len);
    }
}

/// Maps the zeroed memory of pipe regions 1.. (PROTOCOL.md §8.1): one
/// private anonymous mapping at `region_gpa(1)`, reserved but not committed
/// (`MAP_NORESERVE`), so host memory is taken only as the guest touches it.
pub fn create_spawn_regions() -> Result<Ram, MemoryError> {
    let len = (REGIONS - 1) * PIPE_REGION_SIZE;
    GuestMemoryMmap::from_ranges(&[(GuestAddress(region_gpa(1)), len as usize)])
        .map_err(|e| MemoryError::Map(len, e))
}

/// The host address and length of pipe region `index`, if `memory` maps the
/// whole of it.
pub fn pipe_region(memory: &Ram, index: u64) -> Option<(std::ptr::NonNull<u8>, usize)> {
    if index >= REGIONS {
        return None;
    }
    let start = GuestAddress(region_gpa(index));
    let region = memory.find_region(start)?;
    let offset = region.to_region_addr(start)?;
    region.check_address(offset.checked_add(PIPE_REGION_SIZE - 1)?)?;
    let host = region.get_host_address(offset).ok()?;
    Some((std::ptr::NonNull::new(host)?, PIPE_REGION_SIZE as usize))
}

/// The host address of the `T` at `gpa` of `memory`, if `gpa` is aligned
/// for `T` and the whole `T` lies in one region.
pub fn host_object<T>(memory: &Ram, gpa: u64) -> Option<std::ptr::NonNull<T>> {
    if !gpa.is_multiple_of(std::mem::align_of::<T>() as u64) {
        return None;
    }
    let start = GuestAddress(gpa);
    let region = memory.find_region(start)?;
    let offset = region.to_region_addr(start)?;
    region.check_address(offset.checked_add(std::mem::size_of::<T>().checked_sub(1)? as u64)?)?;
    let host = region.get_host_address(offset).ok()?;
    std::ptr::NonNull::new(host.cast())
}

/// Zeroes pipe region `index` of `memory` by handing its pages back to the
/// host (`MADV_DONTNEED`): the next access reads a fresh zero page, in the
/// monitor and, through KVM's MMU notifier, in the guest.
pub fn zero_pipe_region(memory: &Ram, index: u64) -> std::io::Result<()> {
    let (ptr, len) = pipe_region(memory, index).ok_or(std::io::ErrorKind::InvalidInput)?;
    // SAFETY: `[ptr, ptr + len)` is a page-aligned range (regions start at
    // multiples of 64 MiB) of a private anonymous mapping owned by `memory`
    // (every `Ram` is one: `create`, `create_spawn_regions`), so
    // `MADV_DONTNEED` only replaces its contents with zeroes. No Rust
    // reference into guest memory exists (the monitor reaches it through
    // `RawRegion`'s atomics and copies, as it does while the guest writes
    // it), so changing the bytes underneath is sound.
    unsafe { host::discard_pages(ptr, len) }
}

/// [`PhysMemory`] over guest RAM: every access is bounds-checked by vm-memory.
pub struct PhysRam<'a>(pub &'a Ram);

impl PhysMemory for PhysRam<'_> {
    fn read_u64(&self, phys: u64) -> Option<u64> {
        self.0.read_obj::<u64>(GuestAddress(phys)).ok()
    }

    fn write_u64(&mut self, phys: u64, value: u64) -> Option<()> {
        self.0.write_obj(value, GuestAddress(phys)).ok()
    }
}

/// Reads `len` bytes at user address `addr` of the address space whose PML4
/// is at `root`; every page must be present and user-accessible. `None` if
/// any is not (or the range wraps).
pub fn read_user(ram: &Ram, root: u64, addr: u64, len: u64) -> Option<Vec<u8>> {
    let user = Access {
        user: true,
        write: false,
        execute: false,
    };
    let mut buf = Vec::with_capacity(usize::try_from(len).ok()?);
    translate_range(&PhysRam(ram), root, addr, len, user, |phys, n| {
        let start = buf.len();
        buf.resize(start + n as usize, 0);
        ram.read_slice(&mut buf[start..], GuestAddress(phys))
            .map_err(|_| ())
    })
    .ok()?;
    Some(buf)
}

/// Hands out physical frames at boot, bottom up, and records what each range
/// is for. Page 0 is never handed out.
pub struct BootFrames {
    next: u64,
    end: u64,
    regions: Vec<MemoryRegion>,
    /// Frames reserved for page tables: `[pt_next, pt_end)`.
    pt_next: u64,
    pt_end: u64,
}

impl BootFrames {
    /// An allocator over `[PAGE_SIZE, mem_size)`.
    pub fn new(mem_size: u64) -> Self {
        Self {
            next: FIRST_FRAME,
            end: mem_size,
            regions: Vec::new(),
            pt_next: 0,
            pt_end: 0,
        }
    }

    /// `pages` contiguous zeroed frames for `kind`; returns the first.
    pub fn alloc(&mut self, pages: u64, kind: u32, what: &'static str) -> Result<u64, MemoryError> {
        let bytes = pages.saturating_mul(PAGE_SIZE);
        let base = self.next;
        let end =
            base.checked_add(bytes)
                .filter(|e| *e <= self.end)
                .ok_or(MemoryError::TooSmall {
                    needed: bytes.saturating_sub(self.end.saturating_sub(base)),
                    what,
                })?;
        self.next = end;
        match self.regions.last_mut() {
            Some(last) if last.kind == kind && last.base + last.len == base => last.len += bytes,
            _ => self.regions.push(MemoryRegion {
                base,
                len: bytes,
                kind,
                reserved: 0,
            }),
        }
        Ok(base)
    }

    /// `pages` (a whole number of 2 MiB) contiguous zeroed frames for
    /// `kind` from the next 2 MiB boundary; returns the first. The frames
    /// skipped to reach the boundary (under 2 MiB) go to `kind` too, unused.
    pub fn alloc_large(
        &mut self,
        pages: u64,
        kind: u32,
        what: &'static str,
    ) -> Result<u64, MemoryError> {
        let skip = self.next.next_multiple_of(SIZE_2M) - self.next;
        self.alloc(skip / PAGE_SIZE, kind, what)?;
        self.alloc(pages, kind, what)
    }

    /// Reserves `pages` frames from which [`FrameAllocator::alloc_zeroed`] serves
    /// page tables.
    pub fn reserve_page_tables(&mut self, pages: u64) -> Result<(), MemoryError> {
        self.pt_next = self.alloc(pages, region_kind::PAGE_TABLES, "page tables")?;
        self.pt_end = self.pt_next + pages * PAGE_SIZE;
        Ok(())
    }

    /// The memory map: every allocation so far, then up to `kernel_pool`
    /// bytes usable by the kernel, then the rest as process memory, which
    /// is returned as `[start, end)` too.
    pub fn memory_map(
        &self,
        kernel_pool: u64,
    ) -> Result<(Vec<MemoryRegion>, (u64, u64)), MemoryError> {
        let mut map = self.regions.clone();
        let pool_end = self.next.saturating_add(kernel_pool).min(self.end);
        for (base, end, kind) in [
            (self.next, pool_end, region_kind::USABLE),
            (pool_end, self.end, region_kind::PROCESSES),
        ] {
            if base < end {
                map.push(MemoryRegion {
                    base,
                    len: end - base,
                    kind,
                    reserved: 0,
                });
            }
        }
        if map.len() > MAX_REGIONS {
            return Err(MemoryError::TooManyRegions);
        }
        Ok((map, (pool_end, self.end)))
    }
}

impl FrameAllocator for BootFrames {
    fn alloc_zeroed(&mut self) -> Option<u64> {
        (self.pt_next < self.pt_end).then(|| {
            let f = self.pt_next;
            self.pt_next += PAGE_SIZE;
            f
        })
    }
}

/// Bytes of `ram` resident in host memory (for `--stats`), from `mincore`.
pub fn resident_bytes(ram: &Ram) -> u64 {
    let mut total = 0u64;
    for region in ram.iter() {
        let Ok(slice) = region.get_slice(vm_memory::MemoryRegionAddress(0), region.len() as usize)
        else {
            continue;
        };
        let Some(base) = std::ptr::NonNull::new(slice.ptr_guard_mut().as_ptr()) else {
            continue;
        };
        if let Ok(pages) = host::resident_pages(base, slice.len(), PAGE_SIZE as usize) {
            total += pages.iter().filter(|b| **b & 1 == 1).count() as u64 * PAGE_SIZE;
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boot_frames_record_merged_regions_and_usable_rest() {
        // Frames start at the first MiB's end.
        const F: u64 = FIRST_FRAME;
        let mut f = BootFrames::new(F + 64 * PAGE_SIZE);
        assert_eq!(f.alloc(2, region_kind::BOOT, "boot").unwrap(), F);
        assert_eq!(
            f.alloc(1, region_kind::BOOT, "boot").unwrap(),
            F + 2 * PAGE_SIZE
        );
        f.reserve_page_tables(4).unwrap();
        assert_eq!(f.alloc_zeroed(), Some(F + 3 * PAGE_SIZE));
        let (map, pool) = f.memory_map(8 * PAGE_SIZE).unwrap();
        assert_eq!(map.len(), 4);
        assert_eq!(pool, (F + 15 * PAGE_SIZE, F + 64 * PAGE_SIZE));
        assert_eq!(map[3].kind, region_kind::PROCESSES);
        assert_eq!(
            (map[0].base, map[0].len, map[0].kind),
            (F, 3 * PAGE_SIZE, region_kind::BOOT)
        );
        assert_eq!(map[1].kind, region_kind::PAGE_TABLES);
        assert_eq!(
            (map[2].base, map[2].kind),
            (F + 7 * PAGE_SIZE, region_kind::USABLE)
        );
        assert!(matches!(
            f.alloc(100, region_kind::KERNEL, "kernel"),
            Err(MemoryError::TooSmall { .. })
        ));
        for _ in 0..3 {
            assert!(f.alloc_zeroed().is_some());
        }
        assert_eq!(f.alloc_zeroed(), None);
    }
}
