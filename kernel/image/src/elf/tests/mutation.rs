//! Mutation proptests: `parse` and `section` never panic on damaged images, and
//! every plan `parse` accepts keeps the documented invariants.

use super::super::*;
use super::builder::{ALLOWED, Builder, put64};
use proptest::prelude::*;
use std::vec;

/// Every documented invariant of an `Ok` plan.
pub fn check_invariants(plan: &LoadPlan, image: &[u8], allowed: &Range<u64>) {
    let segs = plan.segments();
    assert!(!segs.is_empty() && segs.len() <= MAX_SEGMENTS);
    for s in segs {
        assert!(s.mem_size > 0 && s.file_size <= s.mem_size);
        assert!(s.file_offset.checked_add(s.file_size).unwrap() <= image.len() as u64);
        assert_eq!(s.vaddr % PAGE_SIZE, s.file_offset % PAGE_SIZE);
        let end = s.vaddr.checked_add(s.mem_size).unwrap();
        assert!(s.vaddr >= allowed.start && end <= allowed.end);
        assert!(page_end(end).is_some());
    }
    for w in segs.windows(2) {
        assert!(w[0].vaddr + w[0].mem_size <= w[1].vaddr, "sorted, disjoint");
        if (w[0].vaddr + w[0].mem_size - 1) / PAGE_SIZE == w[1].vaddr / PAGE_SIZE {
            assert_eq!(w[0].flags, w[1].flags);
        }
    }
    assert!(
        segs.iter()
            .any(|s| s.flags.execute && plan.entry >= s.vaddr && plan.entry < s.vaddr + s.mem_size)
    );
    let (low, high) = plan.page_span();
    assert!(low % PAGE_SIZE == 0 && high % PAGE_SIZE == 0 && low < high);
}
fn mutation() -> impl Strategy<Value = (usize, u8)> {
    // Most mutations hit the headers, where the interesting fields are.
    prop_oneof![3 => (0usize..64 + 3 * 56, any::<u8>()), 1 => (0usize..0x2080, any::<u8>())]
}

proptest! {
    #[test]
    fn mutated_images_never_panic(mutations in proptest::collection::vec(mutation(), 1..8),
                                  cut in proptest::option::of(0usize..0x2080)) {
        let mut b = Builder::valid();
        b.sections = vec![(".weft_manifest", 1, 0x2010, 8)];
        let mut image = b.build();
        for (at, byte) in mutations {
            image[at] = byte;
        }
        if let Some(cut) = cut {
            image.truncate(cut);
        }
        if let Ok(plan) = parse(&image, ALLOWED) {
            check_invariants(&plan, &image, &ALLOWED);
        }
        let _ = section(&image, ".weft_manifest");
    }

    #[test]
    fn random_header_words_never_panic(words in proptest::collection::vec((0usize..(64 + 3 * 56) / 8, any::<u64>()), 1..4)) {
        let mut image = Builder::valid().build();
        for (at, word) in words {
            put64(&mut image, at * 8, word);
        }
        if let Ok(plan) = parse(&image, ALLOWED) {
            check_invariants(&plan, &image, &ALLOWED);
        }
    }
}
