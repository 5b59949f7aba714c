//! A program's access to guest-physical memory that is not RAM (PROTOCOL.md
//! §3.6, §8.2): a read of the doorbell page, or any access to an address no
//! device serves. It is the program's fault, so it becomes a fault in the
//! program: the monitor finds the user address the program used by walking
//! its page tables backwards, and the vCPU takes a page fault there (`vm`
//! injects it), which the kernel's fault path turns into the end of that
//! process, as for any other ring-3 fault (§14.1).
//!
//! Invariants:
//! - only user mappings count: the user half of the address space, every
//!   level present and user-accessible, so ring-3 code can have reached
//!   `phys` through the address found;
//! - the page tables are the guest's, an allegation: every table is read
//!   through bounds-checked guest memory, and each (table, level) pair is
//!   searched at most once, so tables that link to each other cost at most
//!   one read per table and level, never a loop.

use std::collections::HashSet;
use weft_control::hypercall::pf;
use weft_image::paging::{
    ENTRIES, PTE_ADDR_MASK, PTE_HUGE, PTE_PRESENT, PTE_USER, PhysMemory, SIZE_1G, SIZE_2M, SIZE_4K,
};

/// The page fault that refuses a program's access: what the CPU would have
/// reported had the page been a protection violation for that access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageFault {
    /// The user address the program accessed (CR2).
    pub address: u64,
    /// Whether the access was a write.
    pub write: bool,
}

impl PageFault {
    /// The page-fault error code: a protection violation at ring 3, a
    /// write or a read.
    pub fn error_code(self) -> u64 {
        let write = if self.write { pf::WRITE } else { 0 };
        pf::PRESENT | pf::USER | write
    }
}

/// The page fault that refuses an access by ring-3 code to `phys`, which
/// is not RAM, made through the page tables at `cr3` (their guest-physical
/// address, and flag bits); `None` if no user mapping of those tables
/// reaches `phys` (then ring 3 cannot have made the access: the page tables
/// are not what the monitor built).
pub fn refusal(mem: &impl PhysMemory, cr3: u64, phys: u64, write: bool) -> Option<PageFault> {
    let mut walk = ReverseWalk {
        mem,
        phys,
        searched: HashSet::new(),
    };
    let address = walk.table(cr3 & PTE_ADDR_MASK, 4, 0)?;
    Some(PageFault { address, write })
}

/// A search of one address space for a user address that maps `phys`.
struct ReverseWalk<'a, M: PhysMemory> {
    mem: &'a M,
    phys: u64,
    /// (table, level) pairs already searched without success.
    searched: HashSet<(u64, u8)>,
}

impl<M: PhysMemory> ReverseWalk<'_, M> {
    /// Searches the level-`level` table at `table` (4: the PML4), whose
    /// entries map upwards from user address `base`.
    fn table(&mut self, table: u64, level: u8, base: u64) -> Option<u64> {
        if !self.searched.insert((table, level)) {
            return None;
        }
        let span = SIZE_4K << (9 * (u32::from(level) - 1));
        // The user half is the PML4's lower half.
        let entries = if level == 4 { ENTRIES / 2 } else { ENTRIES };
        for (i, va) in (0..entries as u64).map(|i| (i, base + i * span)) {
            let entry = self.mem.read_u64(table + 8 * i)?;
            if entry & (PTE_PRESENT | PTE_USER) != PTE_PRESENT | PTE_USER {
                continue;
            }
            let leaf = level == 1 || (entry & PTE_HUGE != 0 && matches!(level, 2 | 3));
            let found = if leaf {
                self.leaf(entry, level, va)
            } else {
                self.table(entry & PTE_ADDR_MASK, level - 1, va)
            };
            if found.is_some() {
                return found;
            }
        }
        None
    }

    /// The address in the page `entry` maps at `va` that reaches `phys`,
    /// if it does.
    fn leaf(&self, entry: u64, level: u8, va: u64) -> Option<u64> {
        let size = match level {
            3 => SIZE_1G,
            2 => SIZE_2M,
            _ => SIZE_4K,
        };
        // A huge page's frame is aligned to its size (bit 12 is its PAT bit).
        let frame = entry & PTE_ADDR_MASK & !(size - 1);
        let offset = self.phys.checked_sub(frame).filter(|&o| o < size)?;
        Some(va + offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guest_memory::{self, BootFrames, PhysRam};
    use weft_control::boot::region_kind;
    use weft_control::streams::{DOORBELL_GPA, USER_DOORBELLS_ADDR};
    use weft_image::paging::{FrameAllocator, PageFlags, map_2m, map_4k};

    const MEM: u64 = 8 << 20;

    const USER: PageFlags = PageFlags {
        writable: true,
        user: true,
        executable: false,
        global: false,
    };

    fn space() -> (guest_memory::Ram, BootFrames, u64) {
        let ram = guest_memory::create(MEM).unwrap();
        let mut frames = BootFrames::new(MEM);
        frames.reserve_page_tables(32).unwrap();
        let root = FrameAllocator::alloc_zeroed(&mut frames).unwrap();
        (ram, frames, root)
    }

    #[test]
    fn the_doorbell_page_is_found_at_its_user_address() {
        let (ram, mut frames, root) = space();
        let data = frames.alloc(1, region_kind::PROGRAM, "data").unwrap();
        let mut mem = PhysRam(&ram);
        map_4k(&mut mem, &mut frames, root, 0x40_0000, data, USER).unwrap();
        map_4k(
            &mut mem,
            &mut frames,
            root,
            USER_DOORBELLS_ADDR,
            DOORBELL_GPA,
            USER,
        )
        .unwrap();
        let fault = refusal(&mem, root | 0x18, DOORBELL_GPA + 4, false).unwrap();
        assert_eq!(
            fault,
            PageFault {
                address: USER_DOORBELLS_ADDR + 4,
                write: false
            }
        );
        assert_eq!(fault.error_code(), pf::PRESENT | pf::USER);
        let write = refusal(&mem, root, DOORBELL_GPA, true).unwrap();
        assert_eq!(write.error_code(), pf::PRESENT | pf::USER | pf::WRITE);
    }

    #[test]
    fn huge_pages_map_an_offset_within_them() {
        let (ram, mut frames, root) = space();
        let mut mem = PhysRam(&ram);
        map_2m(
            &mut mem,
            &mut frames,
            root,
            0x20_0000_0000,
            0xFEC0_0000,
            USER,
        )
        .unwrap();
        assert_eq!(
            refusal(&mem, root, 0xFEC1_2345, true).map(|f| f.address),
            Some(0x20_0001_2345)
        );
    }

    #[test]
    fn supervisor_and_absent_mappings_are_not_the_programs() {
        let (ram, mut frames, root) = space();
        let mut mem = PhysRam(&ram);
        let kernel = PageFlags {
            user: false,
            ..USER
        };
        map_4k(&mut mem, &mut frames, root, 0x50_0000, DOORBELL_GPA, kernel).unwrap();
        assert_eq!(refusal(&mem, root, DOORBELL_GPA, false), None);
        // Nothing maps this address at all.
        assert_eq!(refusal(&mem, root, 0xFEC0_0000, false), None);
        // A root outside guest memory finds nothing (and does not panic).
        assert_eq!(refusal(&mem, 1 << 40, DOORBELL_GPA, false), None);
    }

    #[test]
    fn tables_that_link_to_themselves_are_searched_once() {
        let (ram, _, root) = space();
        let mut mem = PhysRam(&ram);
        // Every entry of the PML4 points back at the PML4: followed
        // naively, 256 × 512³ entries.
        for i in 0..ENTRIES as u64 {
            mem.write_u64(root + 8 * i, root | PTE_PRESENT | PTE_USER)
                .unwrap();
        }
        assert_eq!(refusal(&mem, root, DOORBELL_GPA, false), None);
    }
}
