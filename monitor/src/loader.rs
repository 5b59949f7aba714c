//! Copies a validated ELF load plan into guest memory and maps it
//! (PROTOCOL.md §2.2). The plan's invariants (segments inside the file and the
//! allowed range, no byte overlap, shared pages only with equal permissions) come
//! from `weft_image::elf::parse`; this module adds only the copying.

use crate::guest_memory::{self, BootFrames, MemoryError, PhysRam, Ram};
use thiserror::Error;
use vm_memory::{Bytes, GuestAddress};
use weft_control::layout::PAGE_SIZE;
use weft_image::elf::{LoadPlan, Segment};
use weft_image::paging::{
    Access, FrameAllocator, MapError, PageFlags, SIZE_2M, map_2m, map_4k, map_4k_range, translate,
};

/// Failures loading an image.
#[derive(Debug, Error)]
pub enum LoadError {
    /// Out of guest memory.
    #[error(transparent)]
    Memory(#[from] MemoryError),
    /// A mapping could not be made.
    #[error("cannot map the image: {0}")]
    Map(MapError),
    /// Guest memory refused a copy (a bug: frames come from guest RAM).
    #[error("cannot copy the image into guest memory at {0:#x}")]
    Copy(u64),
}

/// Whom the image's pages are for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Owner {
    /// The kernel: supervisor, global pages.
    Kernel,
    /// A program: user pages.
    Program,
}

/// Where an address space's frames come from: the boot allocator, or the
/// pool of process memory at run time. Page tables come from
/// [`FrameAllocator::alloc_zeroed`]; everything else from [`Frames::alloc`].
pub trait Frames: FrameAllocator {
    /// `pages` contiguous zeroed frames for `kind`; returns the first.
    fn alloc(&mut self, pages: u64, kind: u32, what: &'static str) -> Result<u64, MemoryError>;

    /// Between 1 and `pages` contiguous zeroed frames for `kind`: returns
    /// the first and how many. By default all of them, as [`Self::alloc`].
    fn alloc_part(
        &mut self,
        pages: u64,
        kind: u32,
        what: &'static str,
    ) -> Result<(u64, u64), MemoryError> {
        Ok((self.alloc(pages, kind, what)?, pages))
    }

    /// `pages` (a whole number of 2 MiB) contiguous zeroed frames for
    /// `kind` starting on a 2 MiB boundary, so they can be mapped with
    /// 2 MiB pages; `None` if this allocator does not hand such runs out.
    /// By default `None`.
    fn alloc_large(
        &mut self,
        _pages: u64,
        _kind: u32,
        _what: &'static str,
    ) -> Result<Option<u64>, MemoryError> {
        Ok(None)
    }
}

impl Frames for BootFrames {
    fn alloc(&mut self, pages: u64, kind: u32, what: &'static str) -> Result<u64, MemoryError> {
        BootFrames::alloc(self, pages, kind, what)
    }

    fn alloc_large(
        &mut self,
        pages: u64,
        kind: u32,
        what: &'static str,
    ) -> Result<Option<u64>, MemoryError> {
        BootFrames::alloc_large(self, pages, kind, what).map(Some)
    }
}

/// The least of a 2 MiB stretch of address space a segment must fill for
/// [`Space::load`] to map the stretch with one 2 MiB page (the rest of the
/// page is zero and the segment's): half, so at most as much memory goes
/// unused as is used.
pub const LARGE_MIN: u64 = SIZE_2M / 2;

/// Whether segment `i` of `segments` is the only one with a byte in the
/// 2 MiB at `region`, and covers at least [`LARGE_MIN`] of it.
fn alone_and_large(segments: &[Segment], i: usize, region: u64) -> bool {
    let overlap = |s: &Segment| {
        let (lo, hi) = (
            s.vaddr.max(region),
            (s.vaddr + s.mem_size).min(region + SIZE_2M),
        );
        hi.saturating_sub(lo)
    };
    overlap(&segments[i]) >= LARGE_MIN
        && segments
            .iter()
            .enumerate()
            .all(|(j, s)| j == i || overlap(s) == 0)
}

/// One address space being built: guest RAM, the frames to build it from and
/// its PML4.
pub struct Space<'a, F: Frames> {
    pub ram: &'a Ram,
    pub frames: &'a mut F,
    pub root: u64,
}

impl<F: Frames> Space<'_, F> {
    /// Loads every segment of `plan` from `image` into fresh frames and maps
    /// them: with a 2 MiB page each 2 MiB of address space that one segment
    /// alone touches and fills at least [`LARGE_MIN`] of, when the frames
    /// give aligned runs ([`Frames::alloc_large`]; see
    /// [`Self::map_fresh_large`] for why); with 4 KiB pages the rest.
    pub fn load(
        &mut self,
        image: &[u8],
        plan: &LoadPlan,
        owner: Owner,
        kind: u32,
    ) -> Result<(), LoadError> {
        let segments = plan.segments();
        for (i, seg) in segments.iter().enumerate() {
            let flags = PageFlags {
                writable: seg.flags.write,
                user: owner == Owner::Program,
                executable: seg.flags.execute,
                global: owner == Owner::Kernel,
            };
            let end = seg.vaddr + seg.mem_size;
            let mut page = seg.vaddr & !(PAGE_SIZE - 1);
            while page < end {
                let region = page & !(SIZE_2M - 1);
                if page == region.max(seg.vaddr & !(PAGE_SIZE - 1))
                    && alone_and_large(segments, i, region)
                    && let Some(frame) =
                        self.frames
                            .alloc_large(SIZE_2M / PAGE_SIZE, kind, "an ELF segment")?
                {
                    guest_memory::advise_huge_pages(self.ram, frame, SIZE_2M);
                    map_2m(
                        &mut PhysRam(self.ram),
                        self.frames,
                        self.root,
                        region,
                        frame,
                        flags,
                    )
                    .map_err(LoadError::Map)?;
                    self.copy(image, seg, region, region + SIZE_2M, frame)?;
                    page = region + SIZE_2M;
                    continue;
                }
                let frame = self.page_frame(page, flags, kind)?;
                self.copy(image, seg, page, page + PAGE_SIZE, frame)?;
                page += PAGE_SIZE;
            }
        }
        Ok(())
    }

    /// Copies the part of `seg`'s file image that falls in `[lo, hi)` to
    /// the frames from `frame` (which back `lo`).
    fn copy(
        &self,
        image: &[u8],
        seg: &Segment,
        lo: u64,
        hi: u64,
        frame: u64,
    ) -> Result<(), LoadError> {
        let from = lo.max(seg.vaddr);
        let to = hi.min(seg.vaddr + seg.file_size);
        if from >= to {
            return Ok(());
        }
        let off = (seg.file_offset + (from - seg.vaddr)) as usize;
        let dst = frame + (from - lo);
        // In bounds by the plan's invariants; checked anyway.
        let bytes = image
            .get(off..off + (to - from) as usize)
            .ok_or(LoadError::Copy(dst))?;
        self.ram
            .write_slice(bytes, GuestAddress(dst))
            .map_err(|_| LoadError::Copy(dst))
    }

    /// The frame backing `page`: the existing one when an earlier segment
    /// already mapped that page (the plan guarantees equal permissions), else
    /// a new one.
    fn page_frame(&mut self, page: u64, flags: PageFlags, kind: u32) -> Result<u64, LoadError> {
        let any = Access {
            user: false,
            write: false,
            execute: false,
        };
        if let Ok(phys) = translate(&PhysRam(self.ram), self.root, page, any) {
            return Ok(phys);
        }
        let frame = self.frames.alloc(1, kind, "an ELF segment")?;
        map_4k(
            &mut PhysRam(self.ram),
            self.frames,
            self.root,
            page,
            frame,
            flags,
        )
        .map_err(LoadError::Map)?;
        Ok(frame)
    }

    /// Maps `pages` fresh zeroed, physically contiguous frames at
    /// `[bottom, bottom + pages * PAGE_SIZE)`: an area the caller fills
    /// through its physical address. Returns the first frame.
    pub fn map_anonymous(
        &mut self,
        bottom: u64,
        pages: u64,
        flags: PageFlags,
        kind: u32,
        what: &'static str,
    ) -> Result<u64, LoadError> {
        let first = self.frames.alloc(pages, kind, what)?;
        self.map_range(bottom, first, pages, flags)?;
        Ok(first)
    }

    /// Maps `pages` fresh zeroed frames at `[bottom, bottom + pages *
    /// PAGE_SIZE)`, in as many physical runs as [`Frames::alloc_part`]
    /// gives: a stack, a heap, anonymous memory.
    pub fn map_fresh(
        &mut self,
        bottom: u64,
        pages: u64,
        flags: PageFlags,
        kind: u32,
        what: &'static str,
    ) -> Result<(), LoadError> {
        let mut done = 0;
        while done < pages {
            let (first, n) = self.frames.alloc_part(pages - done, kind, what)?;
            self.map_range(bottom + done * PAGE_SIZE, first, n, flags)?;
            done += n;
        }
        Ok(())
    }

    /// Maps `bytes` (a whole number of 2 MiB) of fresh zeroed frames at
    /// `bottom` (2 MiB-aligned) with 2 MiB pages when the frames come as
    /// one aligned run ([`Frames::alloc_large`]), else as [`Self::map_fresh`]
    /// does.
    ///
    /// Under shadow paging (the nested KVM Weft targets) the first touch of
    /// each guest page is a fault the host handles (~40–65 µs); a 2 MiB page
    /// over host memory backed by huge pages (asked for here,
    /// [`guest_memory::advise_huge_pages`]) costs one such fault instead of
    /// 512. A Wasm app growing its memory by
    /// 5 MiB (which the runtime zeroes) took ~80 ms with 4 KiB pages and
    /// 2–17 ms with 2 MiB pages.
    pub fn map_fresh_large(
        &mut self,
        bottom: u64,
        bytes: u64,
        flags: PageFlags,
        kind: u32,
        what: &'static str,
    ) -> Result<(), LoadError> {
        let pages = bytes / PAGE_SIZE;
        let Some(first) = self.frames.alloc_large(pages, kind, what)? else {
            return self.map_fresh(bottom, pages, flags, kind, what);
        };
        guest_memory::advise_huge_pages(self.ram, first, bytes);
        for offset in (0..bytes).step_by(SIZE_2M as usize) {
            map_2m(
                &mut PhysRam(self.ram),
                self.frames,
                self.root,
                bottom + offset,
                first + offset,
                flags,
            )
            .map_err(LoadError::Map)?;
        }
        Ok(())
    }

    /// Maps `pages` pages at `vaddr` to the guest-physical range at `phys`
    /// (which need not be RAM: the pipe region, doorbells).
    pub fn map_range(
        &mut self,
        vaddr: u64,
        phys: u64,
        pages: u64,
        flags: PageFlags,
    ) -> Result<(), LoadError> {
        map_4k_range(
            &mut PhysRam(self.ram),
            self.frames,
            self.root,
            vaddr,
            phys,
            pages,
            flags,
        )
        .map_err(LoadError::Map)
    }
}
