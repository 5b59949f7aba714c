//! Edge cases of the frame allocator, kernel stacks and RAM bounds.

use super::*;

fn region(base: u64, len: u64, kind: u32) -> MemoryRegion {
    MemoryRegion {
        base,
        len,
        kind,
        reserved: 0,
    }
}

fn usable(base: u64, len: u64) -> MemoryRegion {
    region(base, len, region_kind::USABLE)
}

#[test]
fn only_usable_regions_are_used_in_order() {
    let mut f = Frames::empty();
    f.load(&[
        region(0x1000, 0x1000, region_kind::BOOT),
        usable(0x10_0000, 0x2000),
        region(0x20_0000, 0x10_0000, region_kind::PAGE_TABLES),
        usable(0x40_0000, 0x3000),
    ]);
    assert_eq!(f.alloc_contiguous(1), Some(0x10_0000));
    assert_eq!(f.alloc_contiguous(1), Some(0x10_1000));
    // The first region is used up: the next comes from the second.
    assert_eq!(f.alloc_contiguous(2), Some(0x40_0000));
    assert_eq!(f.alloc_contiguous(2), None);
    assert_eq!(f.alloc_contiguous(1), None);
}

#[test]
fn a_request_that_does_not_fit_moves_on_for_good() {
    let mut f = Frames::empty();
    f.load(&[usable(0x1_0000, 0x3000), usable(0x8_0000, 0x4000)]);
    assert_eq!(f.alloc_contiguous(1), Some(0x1_0000));
    assert_eq!(f.alloc_contiguous(3), Some(0x8_0000));
    // The rest of the first region is not gone back to.
    assert_eq!(f.alloc_contiguous(1), Some(0x8_3000));
    assert_eq!(f.alloc_contiguous(1), None);
}

#[test]
fn regions_shrink_to_whole_pages_and_the_direct_maps_reach() {
    let mut f = Frames::empty();
    f.load(&[
        usable(0x1234, 0x1000),
        usable(0x3001, 0x2000),
        usable(DIRECT_MAP_END - 0x2000, 0x8000),
        usable(u64::MAX - 0x2fff, 0x8000),
    ]);
    // 0x1234..0x2234 holds no whole page; 0x3001..0x5001 holds one.
    assert_eq!(f.alloc_contiguous(1), Some(0x4000));
    assert_eq!(f.alloc_contiguous(u64::MAX), None);
    assert_eq!(f.alloc_contiguous(u64::MAX / PAGE_SIZE), None);
    // The third region ends where the direct map does; the last is beyond
    // it, so never used: every frame has a kernel address.
    assert_eq!(f.alloc_contiguous(2), Some(DIRECT_MAP_END - 0x2000));
    assert_eq!(f.alloc_contiguous(1), None);
    assert_eq!(
        kernel_address(DIRECT_MAP_END - PAGE_SIZE),
        KERNEL_IMAGE_BASE - PAGE_SIZE
    );
}

#[test]
fn zero_pages_cost_nothing_and_empty_maps_give_nothing() {
    let mut f = Frames::empty();
    assert_eq!(f.alloc_contiguous(1), None);
    f.load(&[usable(0x5000, 0x1000)]);
    assert_eq!(f.alloc_contiguous(0), Some(0x5000));
    assert_eq!(f.alloc_contiguous(1), Some(0x5000));
    f.load(&[]);
    assert_eq!(f.alloc_contiguous(1), None);
}

#[test]
fn more_regions_than_the_map_holds_are_ignored() {
    let map: [MemoryRegion; MAX_REGIONS + 1] =
        core::array::from_fn(|i| usable((i as u64 + 1) << 20, PAGE_SIZE));
    let mut f = Frames::empty();
    f.load(&map);
    for i in 0..MAX_REGIONS as u64 {
        assert_eq!(f.alloc_contiguous(1), Some((i + 1) << 20));
    }
    assert_eq!(f.alloc_contiguous(1), None);
}

#[test]
fn the_heap_is_carved_first() {
    let mut f = Frames::empty();
    f.load(&[usable(0x10_0000, HEAP_BYTES), usable(0x80_0000, HEAP_BYTES)]);
    assert_eq!(f.carve_heap(), Some(0x10_0000));
    assert_eq!(f.carve_heap(), Some(0x80_0000));
    assert_eq!(f.carve_heap(), None);
}

#[test]
fn kernel_stacks_are_taken_once_per_slot() {
    let mut f = Frames::empty();
    f.load(&[usable(0x10_0000, 2 * KERNEL_STACK_PAGES * PAGE_SIZE)]);
    let mut s = KernelStacks::new();
    assert_eq!(s.top(0, &mut f), Ok(KERNEL_STACK_TOP));
    let top = kernel_address(0x10_0000) + KERNEL_STACK_PAGES * PAGE_SIZE;
    assert_eq!(s.top(3, &mut f), Ok(top));
    assert_eq!(s.top(3, &mut f), Ok(top));
    assert_eq!(s.top(1, &mut f), Ok(top + KERNEL_STACK_PAGES * PAGE_SIZE));
    assert_eq!(s.top(2, &mut f), Err(ErrorCode::OutOfMemory));
    assert_eq!(s.top(MAX_PROCESSES, &mut f), Err(ErrorCode::BadArgument));
}

#[test]
fn ram_ranges_stay_inside_and_never_wrap() {
    let ram = Ram::new(0x1000);
    assert!(ram.contains(0, 0x1000));
    assert!(ram.contains(0x1000, 0));
    assert!(!ram.contains(0x1000, 1));
    assert!(!ram.contains(u64::MAX, 2));
    assert!(ram.holds_word(0xff8));
    assert!(!ram.holds_word(0xffc));
    assert!(!ram.holds_word(0x1000));
    assert!(!ram.holds_word(u64::MAX - 7));
}
