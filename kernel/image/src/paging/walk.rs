//! Walking page tables the way the CPU does: [`translate`] one address, or
//! [`translate_range`] a whole buffer into physically contiguous chunks.
//!
//! The tables may have been written by the guest, so every entry is an
//! allegation: reads outside memory give [`WalkError::BadTable`], reserved bits
//! give [`WalkError::Reserved`], and the walk stops after at most four levels.
//!
//! Permissions are checked as the CPU does with CR0.WP = 1 and EFER.NXE = 1:
//! user access needs `USER` at every level, write needs `WRITABLE` at every level
//! (for supervisor accesses too), and execute needs `NX` clear at every level.
//! SMEP and SMAP are not modelled: supervisor access to user pages is allowed.
//! Only bits that are reserved whatever MAXPHYADDR is are checked: `HUGE` in a
//! PML4E, and the address bits below a large page's alignment (bit 12, PAT, is
//! allowed).

use core::fmt;

use super::{
    PTE_ADDR_MASK, PTE_HUGE, PTE_NX, PTE_PRESENT, PTE_USER, PTE_WRITABLE, PhysMemory, SIZE_1G,
    SIZE_2M, SIZE_4K, is_canonical, table_index,
};

/// The kind of access a translation must allow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Access {
    pub user: bool,
    pub write: bool,
    pub execute: bool,
}

/// Why an address did not translate. `level` is 4 for the PML4, 3 for the PDPT,
/// 2 for the PD and 1 for the PT.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WalkError {
    /// The address is not canonical.
    NonCanonical { vaddr: u64 },
    /// The entry at `level` is not present.
    NotPresent { vaddr: u64, level: u32 },
    /// A user access, but some level is supervisor-only.
    NotUser { vaddr: u64 },
    /// A write, but some level is read-only.
    NotWritable { vaddr: u64 },
    /// An instruction fetch, but some level is no-execute.
    NotExecutable { vaddr: u64 },
    /// The table at `phys` (reached from the root or an entry) is outside memory.
    BadTable { phys: u64 },
    /// The entry at `level` has reserved bits set.
    Reserved { vaddr: u64, level: u32 },
}

impl fmt::Display for WalkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::NonCanonical { vaddr } => write!(f, "address {vaddr:#x} is not canonical"),
            Self::NotPresent { vaddr, level } => {
                write!(
                    f,
                    "address {vaddr:#x} is not mapped (level-{level} entry not present)"
                )
            }
            Self::NotUser { vaddr } => write!(f, "address {vaddr:#x} is not user-accessible"),
            Self::NotWritable { vaddr } => write!(f, "address {vaddr:#x} is not writable"),
            Self::NotExecutable { vaddr } => write!(f, "address {vaddr:#x} is not executable"),
            Self::BadTable { phys } => {
                write!(f, "page table at physical {phys:#x} is outside memory")
            }
            Self::Reserved { vaddr, level } => write!(
                f,
                "translating {vaddr:#x}: level-{level} entry has reserved bits set"
            ),
        }
    }
}

/// Why [`translate_range`] stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RangeError<E> {
    /// `vaddr + len` overflows `u64`.
    Overflow { vaddr: u64, len: u64 },
    /// A page of the range did not translate.
    Walk(WalkError),
    /// The callback failed.
    Callback(E),
}

impl<E: fmt::Display> fmt::Display for RangeError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Overflow { vaddr, len } => {
                write!(f, "range {vaddr:#x} + {len:#x} overflows the address space")
            }
            Self::Walk(e) => e.fmt(f),
            Self::Callback(e) => e.fmt(f),
        }
    }
}

/// The physical address of `vaddr` and the size of the page that maps it.
fn walk(
    mem: &impl PhysMemory,
    root: u64,
    vaddr: u64,
    access: Access,
) -> Result<(u64, u64), WalkError> {
    if !is_canonical(vaddr) {
        return Err(WalkError::NonCanonical { vaddr });
    }
    let (mut user, mut writable, mut nx) = (true, true, false);
    let mut table = root & PTE_ADDR_MASK;
    for level in (1..=4).rev() {
        let slot = table + table_index(vaddr, level) * 8;
        let entry = mem
            .read_u64(slot)
            .ok_or(WalkError::BadTable { phys: table })?;
        if entry & PTE_PRESENT == 0 {
            return Err(WalkError::NotPresent { vaddr, level });
        }
        user &= entry & PTE_USER != 0;
        writable &= entry & PTE_WRITABLE != 0;
        nx |= entry & PTE_NX != 0;
        let size = match (level, entry & PTE_HUGE != 0) {
            (4, true) => return Err(WalkError::Reserved { vaddr, level }),
            (1, _) => SIZE_4K,
            (3, true) => SIZE_1G,
            (2, true) => SIZE_2M,
            _ => {
                table = entry & PTE_ADDR_MASK;
                continue;
            }
        };
        // In a large leaf, bit 12 is PAT; bits 13..log2(size) must be zero.
        let base = entry & PTE_ADDR_MASK;
        if size > SIZE_4K && base & (size - 1) & !SIZE_4K != 0 {
            return Err(WalkError::Reserved { vaddr, level });
        }
        if access.user && !user {
            return Err(WalkError::NotUser { vaddr });
        }
        if access.write && !writable {
            return Err(WalkError::NotWritable { vaddr });
        }
        if access.execute && nx {
            return Err(WalkError::NotExecutable { vaddr });
        }
        return Ok(((base & !(size - 1)) + (vaddr & (size - 1)), size));
    }
    // Unreachable: the level-1 entry is always a leaf.
    Err(WalkError::NotPresent { vaddr, level: 1 })
}

/// The physical address `vaddr` maps to, if the tables at `root` allow `access`.
/// Honours 4 KiB, 2 MiB and 1 GiB pages.
pub fn translate(
    mem: &impl PhysMemory,
    root: u64,
    vaddr: u64,
    access: Access,
) -> Result<u64, WalkError> {
    walk(mem, root, vaddr, access).map(|(phys, _)| phys)
}

/// Translates `[vaddr, vaddr + len)` and calls `f(phys, len)` once per page it
/// touches (the first and last chunks may be partial pages), in address order.
/// Chunks are split at every page boundary (4 KiB, or the large-page size for a
/// large leaf) and are never merged.
///
/// The whole range is checked before `f` is first called, so on a
/// [`RangeError::Walk`] or [`RangeError::Overflow`] `f` has not been called at all.
/// A zero `len` succeeds without calling `f`.
pub fn translate_range<E>(
    mem: &impl PhysMemory,
    root: u64,
    vaddr: u64,
    len: u64,
    access: Access,
    f: impl FnMut(u64, u64) -> Result<(), E>,
) -> Result<(), RangeError<E>> {
    let end = vaddr
        .checked_add(len)
        .ok_or(RangeError::Overflow { vaddr, len })?;
    chunks(mem, root, vaddr, end, access, |_, _| Ok(()))?;
    chunks(mem, root, vaddr, end, access, f)
}

/// Walks `[vaddr, end)` page by page, calling `f` for each chunk.
fn chunks<E>(
    mem: &impl PhysMemory,
    root: u64,
    vaddr: u64,
    end: u64,
    access: Access,
    mut f: impl FnMut(u64, u64) -> Result<(), E>,
) -> Result<(), RangeError<E>> {
    let mut cur = vaddr;
    while cur < end {
        let (phys, size) = walk(mem, root, cur, access).map_err(RangeError::Walk)?;
        let to_boundary = size - (cur & (size - 1));
        let n = to_boundary.min(end - cur);
        f(phys, n).map_err(RangeError::Callback)?;
        cur += n; // n <= end - cur, so no overflow
    }
    Ok(())
}
