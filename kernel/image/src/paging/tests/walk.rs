//! Walk tests: garbage entries, missing levels, `translate_range`, and a
//! proptest that walks random tables.

use super::*;
use proptest::prelude::*;
use std::vec::Vec;

#[test]
fn garbage_entries_give_errors_not_panics() {
    let (mut mem, mut alloc) = setup();
    let va = 0x40_0000;
    map_4k(&mut mem, &mut alloc, ROOT, va, 0x1000, RW_USER).unwrap();
    set_entry(
        &mut mem,
        va,
        3,
        0x7_0000_0000 | PTE_PRESENT | PTE_WRITABLE | PTE_USER,
    );
    assert_eq!(
        translate(&mem, ROOT, va, READ),
        Err(WalkError::BadTable {
            phys: 0x7_0000_0000
        })
    );
    let map = map_4k(&mut mem, &mut alloc, ROOT, va + SIZE_4K, 0x2000, RW_USER);
    assert_eq!(
        map,
        Err(MapError::BadTable {
            phys: 0x7_0000_0000
        })
    );
    assert_eq!(
        translate(&mem, 1 << 40, va, READ),
        Err(WalkError::BadTable { phys: 1 << 40 })
    );
    // HUGE in a PML4E is reserved; so are address bits below a large page's size.
    update_entry(&mut mem, va, 4, |e| e | PTE_HUGE);
    assert_eq!(
        translate(&mem, ROOT, va, READ),
        Err(WalkError::Reserved {
            vaddr: va,
            level: 4
        })
    );
    set_entry(&mut mem, va, 4, 0x1000 | PTE_PRESENT);
    set_entry(&mut mem, va, 3, 0x2000 | PTE_PRESENT);
    set_entry(&mut mem, va, 2, 0x20_4000 | PTE_PRESENT | PTE_HUGE);
    assert_eq!(
        translate(&mem, ROOT, va, READ),
        Err(WalkError::Reserved {
            vaddr: va,
            level: 2
        })
    );
    set_entry(&mut mem, va, 2, 0x20_1000 | PTE_PRESENT | PTE_HUGE); // bit 12 is PAT
    assert_eq!(translate(&mem, ROOT, va + 5, READ), Ok(0x20_0005));
}

#[test]
fn not_present_reports_the_level_and_self_reference_terminates() {
    let (mut mem, mut alloc) = setup();
    assert_eq!(
        translate(&mem, ROOT, 0x40_0000, READ),
        Err(WalkError::NotPresent {
            vaddr: 0x40_0000,
            level: 4
        })
    );
    map_4k(&mut mem, &mut alloc, ROOT, 0x40_0000, 0x1000, RW_USER).unwrap();
    assert_eq!(
        translate(&mem, ROOT, 0x40_1000, READ),
        Err(WalkError::NotPresent {
            vaddr: 0x40_1000,
            level: 1
        })
    );
    assert_eq!(
        translate(&mem, ROOT, 0x8000_0000, READ),
        Err(WalkError::NotPresent {
            vaddr: 0x8000_0000,
            level: 3
        })
    );
    assert_eq!(
        translate(&mem, ROOT, 1 << 47, READ),
        Err(WalkError::NonCanonical { vaddr: 1 << 47 })
    );
    // A PML4 entry pointing at the PML4 itself: the walk still stops after four levels.
    mem.write_u64(ROOT + 511 * 8, ROOT | PTE_PRESENT | PTE_WRITABLE)
        .unwrap();
    let recursive = 0xFFFF_FFFF_FFFF_F000;
    assert_eq!(translate(&mem, ROOT, recursive, READ), Ok(ROOT));
}

#[test]
fn translate_range_splits_at_page_boundaries() {
    let (mut mem, mut alloc) = setup();
    map_4k(&mut mem, &mut alloc, ROOT, 0x1000_0000, 0x8000, RW_USER).unwrap();
    map_4k(&mut mem, &mut alloc, ROOT, 0x1000_1000, 0x3000, RW_USER).unwrap();
    let mut chunks = Vec::new();
    let r = translate_range(&mem, ROOT, 0x1000_0FF0, 0x20, USER_READ, |p, n| {
        chunks.push((p, n));
        Ok::<(), ()>(())
    });
    assert_eq!(r, Ok(()));
    assert_eq!(chunks, [(0x8FF0, 0x10), (0x3000, 0x10)]);
    // 2 MiB leaves split at 2 MiB boundaries.
    map_2m(&mut mem, &mut alloc, ROOT, 0x20_0000, 0x40_0000, RW_USER).unwrap();
    map_2m(&mut mem, &mut alloc, ROOT, 0x40_0000, 0x60_0000, RW_USER).unwrap();
    chunks.clear();
    let r = translate_range(&mem, ROOT, 0x20_0100, SIZE_2M, USER_WRITE, |p, n| {
        chunks.push((p, n));
        Ok::<(), ()>(())
    });
    assert_eq!(r, Ok(()));
    assert_eq!(chunks, [(0x40_0100, SIZE_2M - 0x100), (0x60_0000, 0x100)]);
}

#[test]
fn translate_range_checks_everything_before_calling_back() {
    let (mut mem, mut alloc) = setup();
    map_4k(&mut mem, &mut alloc, ROOT, 0x1000_0000, 0x8000, RW_USER).unwrap();
    let mut calls = 0;
    let mut count = |_: u64, _: u64| {
        calls += 1;
        Err::<(), &str>("stop")
    };
    let r = translate_range(&mem, ROOT, 0x1000_0F00, 0x200, USER_READ, &mut count);
    assert_eq!(
        r,
        Err(RangeError::Walk(WalkError::NotPresent {
            vaddr: 0x1000_1000,
            level: 1
        }))
    );
    let r = translate_range(&mem, ROOT, u64::MAX - 4, 8, USER_READ, &mut count);
    assert_eq!(
        r,
        Err(RangeError::Overflow {
            vaddr: u64::MAX - 4,
            len: 8
        })
    );
    assert_eq!(
        translate_range(&mem, ROOT, 0x4000_0000, 0, USER_READ, &mut count),
        Ok(())
    );
    let r = translate_range(&mem, ROOT, 0x1000_0000, 0x10, USER_WRITE, &mut count);
    assert_eq!(r, Err(RangeError::Callback("stop")));
    assert_eq!(calls, 1);
}

proptest! {
    #[test]
    fn walking_garbage_never_panics(words in proptest::collection::vec(any::<u64>(), 64),
                                    vaddr in any::<u64>(), len in 0u64..0x10_0000,
                                    user in any::<bool>(), write in any::<bool>()) {
        // Scatter random entries over the root and the tables garbage may point to.
        let (mut mem, _) = setup();
        for (i, w) in words.iter().enumerate() {
            let at = (i as u64 % 16) * SIZE_4K + (w >> 3) % 512 * 8;
            // Mostly entries pointing at one of the 16 frames, sometimes raw garbage.
            let e = if w & (1 << 20) != 0 { *w } else { (w & (0xFFF | PTE_NX)) | ((w >> 21) % 16) << 12 | PTE_PRESENT };
            mem.write_u64(at, e).unwrap();
        }
        let access = Access { user, write, execute: false };
        let _ = translate(&mem, ROOT, vaddr, access);
        let _ = translate(&mem, ROOT, vaddr & 0x0000_7FFF_FFFF_FFFF, access);
        let _ = translate_range(&mem, ROOT, vaddr & 0x0000_7FFF_FFFF_FFFF, len, access, |_, _| Ok::<(), ()>(()));
    }
}
