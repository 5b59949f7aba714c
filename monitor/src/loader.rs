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
/// page is zero and the segment's): a quarter, so at most three times as
/// much memory goes unused as is used. Each 4 KiB page a program first
/// touches costs a shadow-paging fault (see [`Space::map_fresh_large`]):
/// with half instead, the 716 KiB text of the compiled tier's runtime
/// (`wasm-aot`) took 4 KiB pages, and its start ran ~150 µs longer
/// (`weft run --stats`, `program_entered` to `exit` of a module that
/// returns at once: ~370 µs against ~225 µs) for 1.3 MiB less memory.
pub const LARGE_MIN: u64 = SIZE_2M / 4;

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
                        self.map_large(region, SIZE_2M, flags, kind, "an ELF segment")?
                {
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
        if self.map_large(bottom, bytes, flags, kind, what)?.is_none() {
            self.map_fresh(bottom, bytes / PAGE_SIZE, flags, kind, what)?;
        }
        Ok(())
    }

    /// Maps `bytes` (a whole number of 2 MiB) at `bottom` (2 MiB-aligned)
    /// with 2 MiB pages over one aligned run of fresh zeroed frames, advised
    /// to huge host pages; returns the run's first frame, or `None` (and
    /// maps nothing) if the frames give no such runs.
    fn map_large(
        &mut self,
        bottom: u64,
        bytes: u64,
        flags: PageFlags,
        kind: u32,
        what: &'static str,
    ) -> Result<Option<u64>, LoadError> {
        let Some(first) = self.frames.alloc_large(bytes / PAGE_SIZE, kind, what)? else {
            return Ok(None);
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
        Ok(Some(first))
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

#[cfg(test)]
mod tests {
    use super::*;
    use weft_control::boot::region_kind;
    use weft_control::layout::{USER_BASE, USER_HEAP_BASE};
    use weft_image::elf;

    /// A static x86_64 executable with one program header per
    /// `(flags, vaddr, offset, bytes, mem_size)`; segment bytes are
    /// `offset`'s low byte plus their index, so each byte tells where it
    /// came from.
    fn image(segments: &[(u32, u64, u64, u64, u64)], entry: u64) -> Vec<u8> {
        let end = segments.iter().map(|s| s.2 + s.3).max().unwrap_or(0);
        let mut out = vec![0u8; end.max(64 + 56 * segments.len() as u64) as usize];
        for &(_, _, offset, bytes, _) in segments {
            for i in 0..bytes {
                out[(offset + i) as usize] = (offset as u8).wrapping_add(i as u8) | 1;
            }
        }
        out[..4].copy_from_slice(b"\x7fELF");
        out[4..8].copy_from_slice(&[2, 1, 1, 0]); // 64-bit, little-endian, v1, SysV
        let put = |out: &mut Vec<u8>, at: usize, v: &[u8]| out[at..at + v.len()].copy_from_slice(v);
        put(&mut out, 16, &2u16.to_le_bytes()); // EXEC
        put(&mut out, 18, &62u16.to_le_bytes()); // x86_64
        put(&mut out, 20, &1u32.to_le_bytes());
        put(&mut out, 24, &entry.to_le_bytes());
        put(&mut out, 32, &64u64.to_le_bytes()); // program headers
        put(&mut out, 52, &64u16.to_le_bytes());
        put(&mut out, 54, &56u16.to_le_bytes());
        put(&mut out, 56, &(segments.len() as u16).to_le_bytes());
        for (i, &(flags, vaddr, offset, bytes, mem)) in segments.iter().enumerate() {
            let at = 64 + 56 * i;
            put(&mut out, at, &1u32.to_le_bytes()); // LOAD
            put(&mut out, at + 4, &flags.to_le_bytes());
            put(&mut out, at + 8, &offset.to_le_bytes());
            put(&mut out, at + 16, &vaddr.to_le_bytes());
            put(&mut out, at + 24, &vaddr.to_le_bytes());
            put(&mut out, at + 32, &bytes.to_le_bytes());
            put(&mut out, at + 40, &mem.to_le_bytes());
            put(&mut out, at + 48, &PAGE_SIZE.to_le_bytes());
        }
        out
    }

    #[test]
    fn a_segment_alone_in_half_a_large_page_is_mapped_with_one() {
        const R: u32 = 4;
        const RX: u32 = 5;
        const RW: u32 = 6;
        // Rodata, code filling 1.2 MiB of [4 MiB, 6 MiB) alone, data.
        let segments = [
            (R, 0x20_0000, 0x1000, 0x1000, 0x1000),
            (RX, 0x43_a000, 0x2000, 0x13_0000, 0x13_0000),
            (RW, 0x7a_0000, 0x13_2000, 0x10, 0x2000),
        ];
        let bytes = image(&segments, 0x43_a010);
        let plan = elf::parse(&bytes, USER_BASE..USER_HEAP_BASE).unwrap();
        let ram = guest_memory::create(64 << 20).unwrap();
        let mut frames = BootFrames::new(64 << 20);
        frames.reserve_page_tables(16).unwrap();
        let root = frames.alloc_zeroed().unwrap();
        let mut space = Space {
            ram: &ram,
            frames: &mut frames,
            root,
        };
        space
            .load(&bytes, &plan, Owner::Program, region_kind::PROGRAM)
            .unwrap();
        let read = Access {
            user: true,
            write: false,
            execute: false,
        };
        let at = |vaddr: u64| translate(&PhysRam(&ram), root, vaddr, read).ok();
        let byte = |vaddr: u64| {
            ram.read_obj::<u8>(GuestAddress(at(vaddr).unwrap()))
                .unwrap()
        };
        // Every byte of every segment is where the image put it.
        for &(_, vaddr, offset, len, _) in &segments {
            for i in [0, 1, len / 2, len - 1] {
                let want = (offset as u8).wrapping_add(i as u8) | 1;
                assert_eq!(byte(vaddr + i), want, "{:#x}", vaddr + i);
            }
        }
        // The code's 2 MiB is one page: mapped (zero) outside the segment
        // too, and physically contiguous and aligned.
        let base = at(0x40_0000).expect("the whole 2 MiB is mapped");
        assert_eq!(base % SIZE_2M, 0);
        assert_eq!(at(0x5f_ffff), Some(base + SIZE_2M - 1));
        assert_eq!(byte(0x40_0000), 0);
        // The small segments are 4 KiB pages: nothing around them.
        assert_eq!(at(0x20_1000), None);
        assert_eq!(at(0x79_f000), None);
        assert_eq!(byte(0x7a_1000), 0, "the rest of the data is zero");
        assert_eq!(at(0x7a_2000), None);
    }
}
