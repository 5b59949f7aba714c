//! The frame allocator and kernel stacks against a model: random boot
//! memory maps (unaligned, overlapping the top of the address space, of
//! every kind) and random requests. Every allocation must be page-aligned,
//! inside one `USABLE` region, clear of every other allocation, and equal
//! to what a plain list of remaining page ranges hands out; a request too
//! large to express is refused and changes nothing. Maps that break §2.2's
//! rule (sorted, disjoint) are generated too: the regions out of order are
//! ignored.

use proptest::prelude::*;
use weft_control::boot::{MAX_REGIONS, MemoryRegion, region_kind};
use weft_control::error::ErrorCode;
use weft_control::layout::PAGE_SIZE;
use weft_control::process::MAX_PROCESSES;
use weft_kernel_core::memory::{
    DIRECT_MAP_END, Frames, HEAP_BYTES, KERNEL_STACK_PAGES, KernelStacks, kernel_address,
};

fn region() -> impl Strategy<Value = MemoryRegion> {
    let base = prop_oneof![
        4 => (0u64..64).prop_map(|p| p * PAGE_SIZE * 16),
        1 => 0u64..(1 << 20),
        1 => (u64::MAX - 64 * PAGE_SIZE)..=u64::MAX,
    ];
    let len = prop_oneof![
        4 => (0u64..80).prop_map(|p| p * PAGE_SIZE),
        1 => 0u64..(1 << 19),
        1 => Just(u64::MAX),
    ];
    let kind = prop_oneof![
        3 => Just(region_kind::USABLE),
        1 => Just(region_kind::BOOT),
        1 => Just(region_kind::PAGE_TABLES),
    ];
    (base, len, kind).prop_map(|(base, len, kind)| MemoryRegion {
        base,
        len,
        kind,
        reserved: 0,
    })
}

#[derive(Clone, Debug)]
enum Request {
    Pages(u64),
    Heap,
    Stack(usize),
}

fn request() -> impl Strategy<Value = Request> {
    prop_oneof![
        6 => (0u64..24).prop_map(Request::Pages),
        1 => prop_oneof![Just(u64::MAX), Just(u64::MAX / PAGE_SIZE), Just(1 << 52)]
            .prop_map(Request::Pages),
        1 => Just(Request::Heap),
        2 => (0..MAX_PROCESSES + 1).prop_map(Request::Stack),
    ]
}

/// The model: the usable page ranges not yet given up, in map order; an
/// allocation comes from the front range or gives it up for good.
struct Model {
    ranges: Vec<(u64, u64)>,
}

impl Model {
    fn new(map: &[MemoryRegion]) -> Self {
        let page = u128::from(PAGE_SIZE);
        let mut ranges: Vec<(u64, u64)> = Vec::new();
        for r in map.iter().filter(|r| r.kind == region_kind::USABLE) {
            let base = u128::from(r.base).div_ceil(page) * page;
            let end = (u128::from(r.base) + u128::from(r.len)).min(u128::from(DIRECT_MAP_END))
                / page
                * page;
            let after_last = ranges.last().is_none_or(|&(_, e)| base >= u128::from(e));
            if base < end && after_last {
                ranges.push((base as u64, end as u64));
            }
        }
        ranges.truncate(MAX_REGIONS);
        Self { ranges }
    }

    fn alloc(&mut self, pages: u64) -> Option<u64> {
        let bytes = u128::from(pages) * u128::from(PAGE_SIZE);
        if bytes > u128::from(u64::MAX) {
            return None;
        }
        while let Some(&(base, end)) = self.ranges.first() {
            if u128::from(base) + bytes > u128::from(u64::MAX) {
                return None;
            }
            if u128::from(base) + bytes <= u128::from(end) {
                self.ranges[0].0 = base + bytes as u64;
                return Some(base);
            }
            self.ranges.remove(0);
        }
        None
    }
}

/// Whether `[start, start + bytes)` lies inside one usable region of `map`.
fn inside_usable(map: &[MemoryRegion], start: u64, bytes: u64) -> bool {
    map.iter().any(|r| {
        r.kind == region_kind::USABLE
            && r.base <= start
            && u128::from(start) + u128::from(bytes) <= u128::from(r.base) + u128::from(r.len)
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    #[test]
    fn frames_follow_the_model(
        map in prop::collection::vec(region(), 0..=MAX_REGIONS + 2),
        requests in prop::collection::vec(request(), 1..60),
    ) {
        let mut frames = Frames::empty();
        frames.load(&map);
        let mut model = Model::new(&map);
        let mut stacks = KernelStacks::new();
        let mut stack_tops = vec![None; MAX_PROCESSES];
        let mut given: Vec<(u64, u64)> = Vec::new();
        for r in &requests {
            let (got, pages) = match *r {
                Request::Pages(pages) => {
                    let got = frames.alloc_contiguous(pages);
                    prop_assert_eq!(got, model.alloc(pages));
                    (got, pages)
                }
                Request::Heap => {
                    let pages = HEAP_BYTES / PAGE_SIZE;
                    let got = frames.carve_heap();
                    prop_assert_eq!(got, model.alloc(pages));
                    (got, pages)
                }
                Request::Stack(slot) => {
                    let got = stacks.top(slot, &mut frames);
                    if slot >= MAX_PROCESSES {
                        prop_assert_eq!(got, Err(ErrorCode::BadArgument));
                        continue;
                    }
                    if slot == 0 || stack_tops[slot].is_some() {
                        // Slot 0 runs on the boot stack; the others keep theirs.
                        prop_assert!(got.is_ok());
                        prop_assert!(slot == 0 || Some(got) == stack_tops[slot]);
                        continue;
                    }
                    let want = model.alloc(KERNEL_STACK_PAGES);
                    let bytes = KERNEL_STACK_PAGES * PAGE_SIZE;
                    prop_assert_eq!(
                        got,
                        want.map(|b| kernel_address(b) + bytes).ok_or(ErrorCode::OutOfMemory)
                    );
                    if got.is_ok() {
                        stack_tops[slot] = Some(got);
                    }
                    (want, KERNEL_STACK_PAGES)
                }
            };
            let Some(start) = got else { continue };
            let bytes = pages * PAGE_SIZE;
            prop_assert_eq!(start % PAGE_SIZE, 0);
            if bytes == 0 {
                continue;
            }
            prop_assert!(inside_usable(&map, start, bytes), "{:#x}+{:#x} outside", start, bytes);
            let end = start + bytes;
            for &(s, e) in &given {
                prop_assert!(end <= s || e <= start, "{:#x}..{:#x} overlaps {:#x}..{:#x}", start, end, s, e);
            }
            given.push((start, end));
        }
    }
}
