//! Host tests for `paging`: a `Vec<u8>` as physical memory and a bump allocator;
//! mapping and permission tests here, walking garbage and ranges in `walk`.

mod walk;

use super::*;
use std::vec;
use std::vec::Vec;

/// 64 KiB of "physical memory"; the root table is the frame at 0.
struct Mem(Vec<u8>);

impl PhysMemory for Mem {
    fn read_u64(&self, phys: u64) -> Option<u64> {
        let at = usize::try_from(phys).ok()?;
        Some(u64::from_le_bytes(
            self.0.get(at..at.checked_add(8)?)?.try_into().ok()?,
        ))
    }
    fn write_u64(&mut self, phys: u64, value: u64) -> Option<()> {
        let at = usize::try_from(phys).ok()?;
        self.0
            .get_mut(at..at.checked_add(8)?)?
            .copy_from_slice(&value.to_le_bytes());
        Some(())
    }
}

/// Hands out frames `next, next + 4096, ...` below `end`; memory starts zeroed
/// and frames are never reused, so every frame is zeroed.
struct Bump {
    next: u64,
    end: u64,
}

impl FrameAllocator for Bump {
    fn alloc_zeroed(&mut self) -> Option<u64> {
        (self.next < self.end).then(|| {
            self.next += SIZE_4K;
            self.next - SIZE_4K
        })
    }
}

const MEM_SIZE: u64 = 0x1_0000;
const ROOT: u64 = 0;

fn setup() -> (Mem, Bump) {
    (
        Mem(vec![0; MEM_SIZE as usize]),
        Bump {
            next: SIZE_4K,
            end: MEM_SIZE,
        },
    )
}

const RW_USER: PageFlags = PageFlags {
    writable: true,
    user: true,
    executable: false,
    global: false,
};
const RO_USER_X: PageFlags = PageFlags {
    writable: false,
    user: true,
    executable: true,
    global: false,
};
const KERNEL_RW: PageFlags = PageFlags {
    writable: true,
    user: false,
    executable: false,
    global: true,
};
const READ: Access = Access {
    user: false,
    write: false,
    execute: false,
};
const USER_READ: Access = Access {
    user: true,
    write: false,
    execute: false,
};
const USER_WRITE: Access = Access {
    user: true,
    write: true,
    execute: false,
};
const USER_EXEC: Access = Access {
    user: true,
    write: false,
    execute: true,
};

/// The entry for `vaddr` at `level`, assuming the path down to it is present.
fn entry(mem: &Mem, vaddr: u64, level: u32) -> u64 {
    let mut table = ROOT;
    for l in (level + 1..=4).rev() {
        table = mem.read_u64(table + table_index(vaddr, l) * 8).unwrap() & PTE_ADDR_MASK;
    }
    mem.read_u64(table + table_index(vaddr, level) * 8).unwrap()
}

fn set_entry(mem: &mut Mem, vaddr: u64, level: u32, value: u64) {
    let mut table = ROOT;
    for l in (level + 1..=4).rev() {
        table = mem.read_u64(table + table_index(vaddr, l) * 8).unwrap() & PTE_ADDR_MASK;
    }
    mem.write_u64(table + table_index(vaddr, level) * 8, value)
        .unwrap();
}

fn update_entry(mem: &mut Mem, vaddr: u64, level: u32, f: impl Fn(u64) -> u64) {
    let old = entry(mem, vaddr, level);
    set_entry(mem, vaddr, level, f(old));
}

#[test]
fn map_4k_translates_back_with_exact_entry_bits() {
    let (mut mem, mut alloc) = setup();
    let va = 0x0000_1234_5678_9000;
    map_4k(&mut mem, &mut alloc, ROOT, va, 0x7_0000_0000, RW_USER).unwrap();
    assert_eq!(
        translate(&mem, ROOT, va + 0x123, USER_WRITE),
        Ok(0x7_0000_0123)
    );
    for level in 2..=4 {
        assert_eq!(
            entry(&mem, va, level) & !PTE_ADDR_MASK,
            PTE_PRESENT | PTE_WRITABLE | PTE_USER | PTE_ACCESSED
        );
    }
    // Accessed and dirty from the start (nothing reads them), so the
    // hypervisor's shadow paging has no bit to set on a first access and
    // may map the neighbouring pages at once.
    assert_eq!(
        entry(&mem, va, 1),
        0x7_0000_0000 | PTE_PRESENT | PTE_WRITABLE | PTE_USER | PTE_NX | PTE_ACCESSED | PTE_DIRTY
    );
    assert_eq!(alloc.next, 4 * SIZE_4K, "three tables allocated");
    // A neighbour shares all three tables.
    map_4k(&mut mem, &mut alloc, ROOT, va + SIZE_4K, 0x5000, KERNEL_RW).unwrap();
    assert_eq!(alloc.next, 4 * SIZE_4K);
    assert_eq!(
        entry(&mem, va + SIZE_4K, 1),
        0x5000 | PTE_PRESENT | PTE_WRITABLE | PTE_NX | PTE_GLOBAL | PTE_ACCESSED | PTE_DIRTY
    );
    // The low 12 bits of the root (CR3 flags) are ignored.
    assert_eq!(translate(&mem, ROOT | 0x18, va, READ), Ok(0x7_0000_0000));
}

#[test]
fn map_2m_and_1g_pages_translate() {
    let (mut mem, mut alloc) = setup();
    let va = 0xFFFF_8000_4020_0000;
    map_2m(&mut mem, &mut alloc, ROOT, va, 0x20_0000, KERNEL_RW).unwrap();
    assert_eq!(entry(&mem, va, 2) & PTE_HUGE, PTE_HUGE);
    assert_eq!(translate(&mem, ROOT, va + 0x1_2345, READ), Ok(0x21_2345));
    assert_eq!(translate(&mem, ROOT, va + SIZE_2M - 1, READ), Ok(0x3F_FFFF));
    // A hand-written 1 GiB page at PDPT level.
    map_4k(&mut mem, &mut alloc, ROOT, 0x8000_0000, 0x1000, RW_USER).unwrap();
    set_entry(
        &mut mem,
        0x4000_0000,
        3,
        0x1_4000_0000 | PTE_PRESENT | PTE_HUGE | PTE_USER,
    );
    assert_eq!(
        translate(&mem, ROOT, 0x4000_0000 + 0x3ABC_DEF0, USER_EXEC),
        Ok(0x1_7ABC_DEF0)
    );
}

#[test]
fn permissions_are_checked() {
    let (mut mem, mut alloc) = setup();
    map_4k(&mut mem, &mut alloc, ROOT, 0x40_0000, 0x1000, RO_USER_X).unwrap();
    map_4k(&mut mem, &mut alloc, ROOT, 0x40_1000, 0x2000, KERNEL_RW).unwrap();
    let va = 0x40_1008;
    assert_eq!(
        translate(&mem, ROOT, va, USER_READ),
        Err(WalkError::NotUser { vaddr: va })
    );
    assert_eq!(
        translate(
            &mem,
            ROOT,
            va,
            Access {
                write: true,
                ..READ
            }
        ),
        Ok(0x2008)
    );
    let exec = Access {
        execute: true,
        ..READ
    };
    assert_eq!(
        translate(&mem, ROOT, va, exec),
        Err(WalkError::NotExecutable { vaddr: va })
    );
    let va = 0x40_0010;
    assert_eq!(translate(&mem, ROOT, va, USER_EXEC), Ok(0x1010));
    assert_eq!(
        translate(&mem, ROOT, va, USER_WRITE),
        Err(WalkError::NotWritable { vaddr: va })
    );
    // Supervisor writes honour read-only too (CR0.WP = 1).
    let write = Access {
        write: true,
        ..READ
    };
    assert_eq!(
        translate(&mem, ROOT, va, write),
        Err(WalkError::NotWritable { vaddr: va })
    );
}

#[test]
fn effective_permissions_combine_every_level() {
    let (mut mem, mut alloc) = setup();
    let va = 0x40_0000;
    map_4k(&mut mem, &mut alloc, ROOT, va, 0x1000, RO_USER_X).unwrap();
    let pdpte = entry(&mem, va, 3);
    set_entry(&mut mem, va, 3, pdpte & !PTE_USER);
    assert_eq!(
        translate(&mem, ROOT, va, USER_READ),
        Err(WalkError::NotUser { vaddr: va })
    );
    set_entry(&mut mem, va, 3, pdpte | PTE_NX);
    assert_eq!(
        translate(&mem, ROOT, va, USER_EXEC),
        Err(WalkError::NotExecutable { vaddr: va })
    );
    set_entry(&mut mem, va, 3, pdpte);
    update_entry(&mut mem, va, 1, |e| e | PTE_WRITABLE);
    update_entry(&mut mem, va, 4, |e| e & !PTE_WRITABLE);
    assert_eq!(
        translate(&mem, ROOT, va, USER_WRITE),
        Err(WalkError::NotWritable { vaddr: va })
    );
}

#[test]
fn mapping_errors() {
    let (mut mem, mut alloc) = setup();
    map_4k(&mut mem, &mut alloc, ROOT, 0x40_0000, 0x1000, RW_USER).unwrap();
    let again = map_4k(&mut mem, &mut alloc, ROOT, 0x40_0000, 0x9000, RW_USER);
    assert_eq!(again, Err(MapError::AlreadyMapped { vaddr: 0x40_0000 }));
    let over_table = map_2m(&mut mem, &mut alloc, ROOT, 0x40_0000, 0x20_0000, RW_USER);
    assert_eq!(
        over_table,
        Err(MapError::AlreadyMapped { vaddr: 0x40_0000 })
    );
    map_2m(&mut mem, &mut alloc, ROOT, 0x60_0000, 0x20_0000, RW_USER).unwrap();
    let inside = map_4k(&mut mem, &mut alloc, ROOT, 0x61_0000, 0x1000, RW_USER);
    assert_eq!(
        inside,
        Err(MapError::ConflictsWithLargePage { vaddr: 0x61_0000 })
    );
    let bad = [
        (
            0x40_0800,
            0x1000,
            MapError::Misaligned {
                vaddr: 0x40_0800,
                phys: 0x1000,
            },
        ),
        (
            0x40_1000,
            0x1001,
            MapError::Misaligned {
                vaddr: 0x40_1000,
                phys: 0x1001,
            },
        ),
        (
            0x0000_8000_0000_0000,
            0x1000,
            MapError::NonCanonical {
                vaddr: 0x0000_8000_0000_0000,
            },
        ),
        (0x40_1000, 1 << 52, MapError::PhysTooLarge { phys: 1 << 52 }),
    ];
    for (va, pa, want) in bad {
        assert_eq!(
            map_4k(&mut mem, &mut alloc, ROOT, va, pa, RW_USER),
            Err(want)
        );
    }
    let half = map_2m(&mut mem, &mut alloc, ROOT, 0x80_0000, 0x1000, RW_USER);
    assert_eq!(
        half,
        Err(MapError::Misaligned {
            vaddr: 0x80_0000,
            phys: 0x1000
        })
    );
    let mut empty = Bump { next: 0, end: 0 };
    let none = map_4k(
        &mut mem,
        &mut empty,
        ROOT,
        0x7F00_0000_0000,
        0x1000,
        RW_USER,
    );
    assert_eq!(none, Err(MapError::OutOfFrames));
}

#[test]
fn a_range_maps_like_single_pages_across_page_tables() {
    // 700 pages from 0x1F_E000 cross two page-table boundaries.
    let (start, phys, pages) = (0x1F_E000u64, 0x10_0000u64, 700u64);
    let (mut one, mut one_alloc) = setup();
    for i in 0..pages {
        map_4k(
            &mut one,
            &mut one_alloc,
            ROOT,
            start + i * 4096,
            phys + i * 4096,
            RW_USER,
        )
        .unwrap();
    }
    let (mut range, mut range_alloc) = setup();
    map_4k_range(
        &mut range,
        &mut range_alloc,
        ROOT,
        start,
        phys,
        pages,
        RW_USER,
    )
    .unwrap();
    for i in 0..pages {
        let v = start + i * 4096;
        assert_eq!(entry(&range, v, 1), entry(&one, v, 1), "page {i}");
    }
    assert_eq!(entry(&range, start + pages * 4096, 1), 0);
    let again = map_4k_range(
        &mut range,
        &mut range_alloc,
        ROOT,
        start + 4096,
        phys,
        2,
        RW_USER,
    );
    assert_eq!(
        again,
        Err(MapError::AlreadyMapped {
            vaddr: start + 4096
        })
    );
}

#[test]
fn a_linked_leaf_table_maps_like_a_range() {
    let (start, phys) = (0x40_0000u64, 0x20_0000u64);
    let (mut range, mut range_alloc) = setup();
    map_4k_range(
        &mut range,
        &mut range_alloc,
        ROOT,
        start,
        phys,
        512,
        RW_USER,
    )
    .unwrap();
    let (mut linked, mut linked_alloc) = setup();
    let table = linked_alloc.alloc_zeroed().unwrap();
    for (k, e) in leaf_table(phys, RW_USER).unwrap().iter().enumerate() {
        linked.write_u64(table + 8 * k as u64, *e).unwrap();
    }
    link_table(&mut linked, &mut linked_alloc, ROOT, start, table).unwrap();
    for i in 0..512 {
        let v = start + i * 4096;
        assert_eq!(entry(&linked, v, 1), entry(&range, v, 1), "page {i}");
    }
    assert_eq!(
        link_table(&mut linked, &mut linked_alloc, ROOT, start, table),
        Err(MapError::AlreadyMapped { vaddr: start })
    );
    assert!(matches!(
        link_table(&mut linked, &mut linked_alloc, ROOT, start + 4096, table),
        Err(MapError::Misaligned { .. })
    ));
    assert!(matches!(
        leaf_table(phys + 1, RW_USER),
        Err(MapError::Misaligned { .. })
    ));
}
