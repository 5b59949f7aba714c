//! Host tests for `elf`: hand-built images, one per rule (see `builder`), plus
//! mutation proptests (see `mutation`).

mod builder;
mod mutation;

use super::*;
use builder::{ALLOWED, Builder, Phdr, R, RW, RX, load, parse_with, put16, put64};
use mutation::check_invariants;
use std::string::ToString;
use std::vec;
use weft_control::layout::{USER_BASE, USER_TOP};

#[test]
fn valid_two_segment_image() {
    let image = Builder::valid().build();
    let plan = parse(&image, ALLOWED).unwrap();
    let rx = SegmentFlags {
        read: true,
        write: false,
        execute: true,
    };
    let rw = SegmentFlags {
        read: true,
        write: true,
        execute: false,
    };
    assert_eq!(plan.entry, 0x40_1010);
    assert_eq!(
        plan.segments(),
        &[
            Segment {
                vaddr: 0x40_1000,
                mem_size: 0x100,
                file_offset: 0x1000,
                file_size: 0x100,
                flags: rx
            },
            Segment {
                vaddr: 0x40_2000,
                mem_size: 0x1000,
                file_offset: 0x2000,
                file_size: 0x80,
                flags: rw
            },
        ]
    );
    assert_eq!(plan.page_span(), (0x40_1000, 0x40_3000));
    check_invariants(&plan, &image, &ALLOWED);
}

#[test]
fn segments_come_out_sorted_and_empty_loads_are_skipped() {
    let mut b = Builder::valid();
    b.phdrs.swap(1, 2);
    b.phdrs.push(load(RW, 0, 0x50_0000, 0, 0));
    let plan = parse_with(&b).unwrap();
    assert_eq!(plan.segments().len(), 2);
    assert!(plan.segments()[0].vaddr < plan.segments()[1].vaddr);
}

#[test]
fn every_truncation_is_an_error() {
    let image = Builder::valid().build();
    for len in 0..image.len() {
        assert!(
            parse(&image[..len], ALLOWED).is_err(),
            "prefix of {len} bytes parsed"
        );
    }
}

#[test]
fn identity_checks() {
    assert_eq!(parse(b"", ALLOWED).unwrap_err(), ElfError::NotElf);
    assert_eq!(
        parse(b"MZ\x90\x00\x03", ALLOWED).unwrap_err().to_string(),
        "not an ELF file"
    );
    let mut image = Builder::valid().build();
    image[4] = 1;
    assert_eq!(
        parse(&image, ALLOWED).unwrap_err(),
        ElfError::Not64Bit { class: 1 }
    );
    image[4] = ELFCLASS64;
    image[5] = 2;
    assert_eq!(
        parse(&image, ALLOWED).unwrap_err(),
        ElfError::NotLittleEndian { data: 2 }
    );
}

#[test]
fn position_independent_and_wrong_machine_are_refused() {
    let mut b = Builder::valid();
    b.e_type = ET_DYN;
    let err = parse_with(&b).unwrap_err();
    assert_eq!(err, ElfError::PositionIndependent);
    assert!(
        err.to_string()
            .contains("link with -C relocation-model=static")
    );
    b.e_type = 1; // ET_REL
    assert_eq!(
        parse_with(&b).unwrap_err(),
        ElfError::NotExecutable { e_type: 1 }
    );
    let mut b = Builder::valid();
    b.machine = 183; // aarch64
    assert_eq!(
        parse_with(&b).unwrap_err(),
        ElfError::WrongMachine { machine: 183 }
    );
}

#[test]
fn segment_past_end_of_file() {
    let mut b = Builder::valid();
    b.phdrs[2].file_size = 0x81;
    let err = parse_with(&b).unwrap_err();
    assert_eq!(
        err,
        ElfError::SegmentPastEndOfFile {
            index: 2,
            offset: 0x2000,
            file_size: 0x81,
            file_len: 0x2080
        }
    );
    assert_eq!(
        err.to_string(),
        "segment 2 extends past the end of the file (offset 0x2000 + 0x81 > 0x2080)"
    );
    b.phdrs[2].offset = u64::MAX - 0x40;
    b.phdrs[2].vaddr = 0x40_2000 + (u64::MAX - 0x40) % PAGE_SIZE;
    assert!(matches!(
        parse_with(&b),
        Err(ElfError::SegmentPastEndOfFile { index: 2, .. })
    ));
}

#[test]
fn program_headers_outside_the_file() {
    let mut image = Builder::valid().build();
    put64(&mut image, 32, u64::MAX - 8);
    assert!(matches!(
        parse(&image, ALLOWED),
        Err(ElfError::ProgramHeadersOutOfFile { .. })
    ));
    put64(&mut image, 32, 64);
    put16(&mut image, 56, 0xFFFF);
    assert_eq!(
        parse(&image, ALLOWED).unwrap_err(),
        ElfError::ExtendedProgramHeaderCount
    );
    put16(&mut image, 56, 3);
    put16(&mut image, 54, 32);
    assert_eq!(
        parse(&image, ALLOWED).unwrap_err(),
        ElfError::BadProgramHeaderSize { size: 32 }
    );
}

#[test]
fn overlapping_segments() {
    let mut b = Builder::valid();
    b.phdrs[2] = load(RX, 0x1000, 0x40_1000 + 0x80, 0x10, 0x10);
    b.phdrs[2].offset = 0x1080;
    assert_eq!(
        parse_with(&b).unwrap_err(),
        ElfError::Overlap {
            first: 1,
            second: 2,
            address: 0x40_1080
        }
    );
}

#[test]
fn virtual_range_must_be_allowed() {
    let mut b = Builder::valid();
    b.phdrs[1].vaddr = USER_BASE - PAGE_SIZE;
    b.entry = b.phdrs[1].vaddr;
    assert!(matches!(
        parse_with(&b),
        Err(ElfError::OutsideAllowedRange { index: 1, .. })
    ));
    let mut b = Builder::valid();
    b.phdrs[2].vaddr = USER_TOP - 0x1000;
    b.phdrs[2].mem_size = 0x1001;
    assert!(matches!(
        parse_with(&b),
        Err(ElfError::OutsideAllowedRange { index: 2, .. })
    ));
    let mut b = Builder::valid();
    b.phdrs[2].vaddr = !0xFFF;
    b.phdrs[2].mem_size = 0x2000;
    assert!(matches!(
        parse(&b.build(), 0..u64::MAX),
        Err(ElfError::OutsideAllowedRange { index: 2, .. })
    ));
    // Ends exactly at u64::MAX: in range, but its page end would overflow.
    b.phdrs[2].mem_size = 0xFFF;
    assert!(matches!(
        parse(&b.build(), 0..u64::MAX),
        Err(ElfError::OutsideAllowedRange { index: 2, .. })
    ));
    // The kernel half is a different allowed range.
    let mut b = Builder::valid();
    b.phdrs[1].vaddr = 0xFFFF_FFFF_8000_1000;
    b.phdrs[2].vaddr = 0xFFFF_FFFF_8000_2000;
    b.entry = 0xFFFF_FFFF_8000_1000;
    assert!(parse_with(&b).is_err());
    assert!(
        parse(
            &b.build(),
            weft_control::layout::KERNEL_SPACE_BASE..u64::MAX
        )
        .is_ok()
    );
}

#[test]
fn file_larger_than_memory_and_misaligned() {
    let mut b = Builder::valid();
    b.phdrs[1].file_size = 0x101;
    assert_eq!(
        parse_with(&b).unwrap_err(),
        ElfError::FileLargerThanMemory {
            index: 1,
            file_size: 0x101,
            mem_size: 0x100
        }
    );
    let mut b = Builder::valid();
    b.phdrs[2].vaddr += 8;
    assert_eq!(
        parse_with(&b).unwrap_err(),
        ElfError::Misaligned {
            index: 2,
            vaddr: 0x40_2008,
            offset: 0x2000
        }
    );
}

#[test]
fn entry_must_be_in_an_executable_segment() {
    let mut b = Builder::valid();
    b.entry = 0x40_2000; // data segment
    assert_eq!(
        parse_with(&b).unwrap_err(),
        ElfError::EntryNotExecutable { entry: 0x40_2000 }
    );
    b.entry = 0x40_1100; // one past the text segment
    assert_eq!(
        parse_with(&b).unwrap_err(),
        ElfError::EntryNotExecutable { entry: 0x40_1100 }
    );
}

#[test]
fn interpreter_dynamic_and_tls_are_refused() {
    for (p_type, want) in [
        (PT_INTERP, ElfError::Interpreter { index: 3 }),
        (PT_DYNAMIC, ElfError::Dynamic { index: 3 }),
        (PT_TLS, ElfError::ThreadLocalStorage { index: 3 }),
    ] {
        let mut b = Builder::valid();
        b.phdrs.push(Phdr {
            p_type,
            ..load(R, 0x2000, 0x40_2000, 0x10, 0x10)
        });
        assert_eq!(parse_with(&b).unwrap_err(), want);
    }
    let mut b = Builder::valid();
    b.phdrs.push(Phdr {
        p_type: PT_TLS,
        ..load(R, 0, 0, 0, 0)
    });
    assert!(
        parse_with(&b)
            .unwrap_err()
            .to_string()
            .contains("thread-local storage is not supported")
    );
}

#[test]
fn segment_count_limits() {
    let mut b = Builder::valid();
    b.phdrs.retain(|p| p.p_type != PT_LOAD);
    assert_eq!(parse_with(&b).unwrap_err(), ElfError::NoLoadableSegments);
    let mut b = Builder::valid();
    b.phdrs.truncate(2);
    for i in 1..MAX_SEGMENTS as u64 {
        b.phdrs
            .push(load(RW, 0x2000, 0x40_2000 + i * 0x1000, 0x10, 0x10));
    }
    assert_eq!(parse_with(&b).unwrap().segments().len(), MAX_SEGMENTS);
    b.phdrs.push(load(RW, 0x2000, 0x60_0000, 0x10, 0x10));
    assert_eq!(
        parse_with(&b).unwrap_err(),
        ElfError::TooManySegments { max: MAX_SEGMENTS }
    );
}

#[test]
fn shared_page_needs_identical_flags() {
    let mut b = Builder::valid();
    // Data right after text, in the same page, different flags.
    b.phdrs[2] = load(RW, 0x1100, 0x40_1100, 0x10, 0x10);
    let err = parse_with(&b).unwrap_err();
    assert_eq!(
        err,
        ElfError::SharedPageFlags {
            first: 1,
            second: 2,
            page: 0x40_1000
        }
    );
    assert!(
        err.to_string()
            .contains("segments 1 and 2 share the page at 0x401000")
    );
    b.phdrs[2].flags = RX;
    assert!(parse_with(&b).is_ok());
}

#[test]
fn named_section_bytes() {
    let mut b = Builder::valid();
    b.sections = vec![
        (".text", 1, 0x1000, 0x100),
        (".weft_manifest", 1, 0x2010, 8),
        (".bss", 8 /* SHT_NOBITS */, 0x2080, 0x100),
    ];
    let mut image = b.build();
    image[0x2010..0x2018].copy_from_slice(b"MANIFEST");
    assert_eq!(section(&image, ".weft_manifest"), Some(&b"MANIFEST"[..]));
    assert_eq!(section(&image, ".text").map(<[u8]>::len), Some(0x100));
    assert_eq!(
        section(&image, ".weft"),
        None,
        "prefix of a name is not a match"
    );
    assert_eq!(section(&image, ".bss"), None);
    assert_eq!(section(&image, ".missing"), None);
    assert_eq!(section(&Builder::valid().build(), ".text"), None);
    // Out-of-range section data.
    b.sections[1].2 = u64::MAX - 2;
    assert_eq!(section(&b.build(), ".weft_manifest"), None);
    for len in 0..image.len() {
        let _ = section(&image[..len], ".weft_manifest");
    }
}
