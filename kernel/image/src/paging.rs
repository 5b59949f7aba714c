//! x86_64 4-level page tables, built ([`map_4k`], [`map_2m`]) and walked
//! ([`translate`], [`translate_range`]) through the [`PhysMemory`] trait, so the
//! monitor (over the guest-memory mapping), the kernel (over its direct map) and
//! host tests (over a `Vec<u8>`) share one implementation.
//!
//! # Invariants
//!
//! - Tables are only reached through `PhysMemory`; an address outside memory is an
//!   error (`BadTable`), never a panic. A walk visits at most four entries, so a
//!   table that points at itself cannot make it loop.
//! - Entries this module creates: intermediate entries (PML4E, PDPTE, PDE pointing
//!   to a table) are `PRESENT | WRITABLE | USER | ACCESSED`, so the leaf alone
//!   decides the effective permissions; leaves are `PRESENT | ACCESSED`, plus
//!   `WRITABLE | DIRTY`, `USER`, `GLOBAL` as asked, plus `NX` unless executable.
//!   Nothing reads the accessed and dirty bits; set from the start, they leave
//!   a hypervisor that shadows these tables no bit to set on a first access
//!   (an exit each), and let it map a faulting page's neighbours at once.
//!   Existing intermediate entries are never modified, and no existing leaf is
//!   ever replaced.
//! - The low 12 bits of `root` are ignored, as the CPU ignores CR3's flag bits.
//! - Physical addresses are bits 12..51 of an entry ([`PTE_ADDR_MASK`]).
//!
//! A failed map may leave newly allocated, empty intermediate tables behind; they
//! map nothing and are harmless.

#[cfg(test)]
mod tests;
mod walk;

pub use walk::{Access, RangeError, WalkError, translate, translate_range};

use core::fmt;

/// Entry maps something (a table or a page).
pub const PTE_PRESENT: u64 = 1 << 0;
/// Writes allowed (if every level allows them).
pub const PTE_WRITABLE: u64 = 1 << 1;
/// User-mode access allowed (if every level allows it).
pub const PTE_USER: u64 = 1 << 2;
/// Set by the CPU on access.
pub const PTE_ACCESSED: u64 = 1 << 5;
/// Set by the CPU on write to a leaf.
pub const PTE_DIRTY: u64 = 1 << 6;
/// In a PDPTE or PDE: the entry is a 1 GiB or 2 MiB leaf (reserved in a PML4E).
pub const PTE_HUGE: u64 = 1 << 7;
/// Leaf survives CR3 reloads (with CR4.PGE).
pub const PTE_GLOBAL: u64 = 1 << 8;
/// No instruction fetch (with EFER.NXE).
pub const PTE_NX: u64 = 1 << 63;
/// An intermediate entry's bits (besides the table's address): the leaf
/// alone decides the permissions.
const TABLE_BITS: u64 = PTE_PRESENT | PTE_WRITABLE | PTE_USER | PTE_ACCESSED;
/// Physical-address bits 12..51 of an entry.
pub const PTE_ADDR_MASK: u64 = 0x000F_FFFF_FFFF_F000;

/// Size of a 4 KiB page.
pub const SIZE_4K: u64 = 1 << 12;
/// Size of a 2 MiB page.
pub const SIZE_2M: u64 = 1 << 21;
/// Size of a 1 GiB page.
pub const SIZE_1G: u64 = 1 << 30;

/// Byte access to physical memory, 8 bytes at a time (page-table entries).
pub trait PhysMemory {
    /// The little-endian `u64` at `phys`, or `None` if it is outside memory.
    fn read_u64(&self, phys: u64) -> Option<u64>;
    /// Stores `value` at `phys`, or returns `None` if it is outside memory.
    fn write_u64(&mut self, phys: u64, value: u64) -> Option<()>;
}

/// A source of page-table frames.
pub trait FrameAllocator {
    /// The physical address of a fresh, zeroed, 4 KiB-aligned frame, or `None`
    /// when memory is exhausted.
    fn alloc_zeroed(&mut self) -> Option<u64>;
}

/// Permissions of a leaf mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageFlags {
    pub writable: bool,
    pub user: bool,
    pub executable: bool,
    pub global: bool,
}

impl PageFlags {
    /// The leaf-entry bits for these flags (without `PRESENT` or `HUGE`).
    pub const fn bits(self) -> u64 {
        let mut bits = PTE_ACCESSED;
        if self.writable {
            bits |= PTE_WRITABLE | PTE_DIRTY;
        }
        if self.user {
            bits |= PTE_USER;
        }
        if !self.executable {
            bits |= PTE_NX;
        }
        if self.global {
            bits |= PTE_GLOBAL;
        }
        bits
    }
}

/// Why a mapping was not made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapError {
    /// `vaddr` or `phys` is not aligned to the page size.
    Misaligned { vaddr: u64, phys: u64 },
    /// `vaddr` is not canonical (bits 63..47 are not all equal).
    NonCanonical { vaddr: u64 },
    /// `phys` does not fit in the 52 physical-address bits of an entry.
    PhysTooLarge { phys: u64 },
    /// A mapping already covers `vaddr` (for `map_2m`: a page table already
    /// exists for the 2 MiB region).
    AlreadyMapped { vaddr: u64 },
    /// A large page already covers `vaddr`.
    ConflictsWithLargePage { vaddr: u64 },
    /// The frame allocator is exhausted.
    OutOfFrames,
    /// A table (or a frame from the allocator) at `phys` is outside memory or
    /// misaligned.
    BadTable { phys: u64 },
}

impl fmt::Display for MapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Misaligned { vaddr, phys } => {
                write!(
                    f,
                    "cannot map {vaddr:#x} to {phys:#x}: not aligned to the page size"
                )
            }
            Self::NonCanonical { vaddr } => write!(f, "cannot map {vaddr:#x}: not canonical"),
            Self::PhysTooLarge { phys } => {
                write!(f, "cannot map physical {phys:#x}: beyond 52 address bits")
            }
            Self::AlreadyMapped { vaddr } => write!(f, "cannot map {vaddr:#x}: already mapped"),
            Self::ConflictsWithLargePage { vaddr } => {
                write!(f, "cannot map {vaddr:#x}: inside an existing large page")
            }
            Self::OutOfFrames => f.write_str("cannot map: out of page-table frames"),
            Self::BadTable { phys } => {
                write!(
                    f,
                    "cannot map: page table at {phys:#x} is outside memory or misaligned"
                )
            }
        }
    }
}

/// True if bits 63..47 of `vaddr` are all equal (48-bit virtual addresses).
pub const fn is_canonical(vaddr: u64) -> bool {
    (((vaddr << 16) as i64) >> 16) as u64 == vaddr
}

/// Index of `vaddr` in the table at `level` (4 = PML4, 3 = PDPT, 2 = PD, 1 = PT).
pub(crate) const fn table_index(vaddr: u64, level: u32) -> u64 {
    (vaddr >> (12 + 9 * (level - 1))) & 0x1FF
}

/// Maps the 4 KiB page at `vaddr` to the frame at `phys`.
pub fn map_4k(
    mem: &mut impl PhysMemory,
    alloc: &mut impl FrameAllocator,
    root: u64,
    vaddr: u64,
    phys: u64,
    flags: PageFlags,
) -> Result<(), MapError> {
    map(mem, alloc, root, vaddr, phys, flags, 1)
}

/// Maps the 2 MiB page at `vaddr` to the 2 MiB-aligned region at `phys` with one
/// PD-level entry.
pub fn map_2m(
    mem: &mut impl PhysMemory,
    alloc: &mut impl FrameAllocator,
    root: u64,
    vaddr: u64,
    phys: u64,
    flags: PageFlags,
) -> Result<(), MapError> {
    map(mem, alloc, root, vaddr, phys, flags, 2)
}

/// Maps `pages` consecutive 4 KiB pages from `vaddr` to the frames from
/// `phys`, walking the upper levels once per page table rather than once per
/// page (the same result as `pages` calls of [`map_4k`]).
pub fn map_4k_range(
    mem: &mut impl PhysMemory,
    alloc: &mut impl FrameAllocator,
    root: u64,
    vaddr: u64,
    phys: u64,
    pages: u64,
    flags: PageFlags,
) -> Result<(), MapError> {
    let mut done = 0;
    while done < pages {
        let (v, p) = (vaddr + done * SIZE_4K, phys + done * SIZE_4K);
        check(v, p, SIZE_4K)?;
        let table = walk_create(mem, alloc, root, v, 1)?;
        let first = table_index(v, 1);
        let run = (512 - first).min(pages - done);
        for k in 0..run {
            let (v, p) = (v + k * SIZE_4K, p + k * SIZE_4K);
            check(v, p, SIZE_4K)?;
            write_leaf(mem, table, v, p, flags, 1)?;
        }
        done += run;
    }
    Ok(())
}

/// Entries per table.
pub const ENTRIES: usize = 512;

/// A whole last-level table mapping 512 consecutive 4 KiB pages to the
/// frames from `phys` with `flags`: to be written into a frame in one go
/// and linked into address spaces with [`link_table`] (a table that maps
/// the same 2 MiB in many address spaces is built once).
pub fn leaf_table(phys: u64, flags: PageFlags) -> Result<[u64; ENTRIES], MapError> {
    check(0, phys, SIZE_4K)?;
    check(0, phys + (ENTRIES as u64 - 1) * SIZE_4K, SIZE_4K)?;
    let mut t = [0u64; ENTRIES];
    for (k, e) in t.iter_mut().enumerate() {
        *e = (phys + k as u64 * SIZE_4K) | PTE_PRESENT | flags.bits();
    }
    Ok(t)
}

/// Makes the last-level table at `table` map the 2 MiB at `vaddr` in the
/// tables at `root` (one page-directory entry, missing upper tables
/// created). The 2 MiB must not be mapped yet.
pub fn link_table(
    mem: &mut impl PhysMemory,
    alloc: &mut impl FrameAllocator,
    root: u64,
    vaddr: u64,
    table: u64,
) -> Result<(), MapError> {
    check(vaddr, 0, SIZE_2M)?;
    check(0, table, SIZE_4K)?;
    let pd = walk_create(mem, alloc, root, vaddr, 2)?;
    let slot = pd + table_index(vaddr, 2) * 8;
    let entry = mem.read_u64(slot).ok_or(MapError::BadTable { phys: pd })?;
    if entry & PTE_PRESENT != 0 {
        return Err(MapError::AlreadyMapped { vaddr });
    }
    mem.write_u64(slot, table | TABLE_BITS)
        .ok_or(MapError::BadTable { phys: pd })
}

/// Checks a leaf's addresses: aligned to `size`, canonical, encodable.
fn check(vaddr: u64, phys: u64, size: u64) -> Result<(), MapError> {
    if (vaddr | phys) & (size - 1) != 0 {
        return Err(MapError::Misaligned { vaddr, phys });
    }
    if !is_canonical(vaddr) {
        return Err(MapError::NonCanonical { vaddr });
    }
    if phys & !PTE_ADDR_MASK != 0 {
        return Err(MapError::PhysTooLarge { phys });
    }
    Ok(())
}

/// Walks from the PML4 down to `leaf_level`, creating missing tables, then writes
/// the leaf entry if the slot is empty.
fn map(
    mem: &mut impl PhysMemory,
    alloc: &mut impl FrameAllocator,
    root: u64,
    vaddr: u64,
    phys: u64,
    flags: PageFlags,
    leaf_level: u32,
) -> Result<(), MapError> {
    check(vaddr, phys, if leaf_level == 2 { SIZE_2M } else { SIZE_4K })?;
    let table = walk_create(mem, alloc, root, vaddr, leaf_level)?;
    write_leaf(mem, table, vaddr, phys, flags, leaf_level)
}

/// The table at `leaf_level` that holds `vaddr`'s leaf entry, creating
/// missing tables on the way down.
fn walk_create(
    mem: &mut impl PhysMemory,
    alloc: &mut impl FrameAllocator,
    root: u64,
    vaddr: u64,
    leaf_level: u32,
) -> Result<u64, MapError> {
    let mut table = root & PTE_ADDR_MASK;
    for level in (leaf_level + 1..=4).rev() {
        let slot = table + table_index(vaddr, level) * 8;
        let entry = mem
            .read_u64(slot)
            .ok_or(MapError::BadTable { phys: table })?;
        if entry & PTE_PRESENT == 0 {
            let frame = alloc.alloc_zeroed().ok_or(MapError::OutOfFrames)?;
            if frame & !PTE_ADDR_MASK != 0 {
                return Err(MapError::BadTable { phys: frame });
            }
            let new = frame | TABLE_BITS;
            mem.write_u64(slot, new)
                .ok_or(MapError::BadTable { phys: table })?;
            table = frame;
        } else if entry & PTE_HUGE != 0 && level < 4 {
            return Err(MapError::ConflictsWithLargePage { vaddr });
        } else {
            table = entry & PTE_ADDR_MASK;
        }
    }
    Ok(table)
}

/// Writes `vaddr`'s leaf entry in `table` if the slot is empty.
fn write_leaf(
    mem: &mut impl PhysMemory,
    table: u64,
    vaddr: u64,
    phys: u64,
    flags: PageFlags,
    leaf_level: u32,
) -> Result<(), MapError> {
    let slot = table + table_index(vaddr, leaf_level) * 8;
    let entry = mem
        .read_u64(slot)
        .ok_or(MapError::BadTable { phys: table })?;
    if entry & PTE_PRESENT != 0 {
        return Err(MapError::AlreadyMapped { vaddr });
    }
    let huge = if leaf_level == 2 { PTE_HUGE } else { 0 };
    let leaf = phys | PTE_PRESENT | huge | flags.bits();
    mem.write_u64(slot, leaf)
        .ok_or(MapError::BadTable { phys: table })
}
