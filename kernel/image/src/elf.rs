//! Validate a static x86_64 ELF executable into a [`LoadPlan`].
//!
//! The image is an allegation: every field is read through bounds-checked
//! accessors and every `offset + size` uses checked arithmetic, so no input can
//! make [`parse`] or [`section`] panic, index out of bounds or loop.
//!
//! # Invariants of an `Ok(plan)` from `parse(image, allowed)`
//!
//! - `1 <= plan.segments().len() <= MAX_SEGMENTS`, sorted by strictly increasing
//!   `vaddr`.
//! - Every segment has `0 < mem_size`, `file_size <= mem_size`,
//!   `file_offset + file_size <= image.len()` and `vaddr % 4096 == file_offset % 4096`.
//! - Every segment's `[vaddr, vaddr + mem_size)` lies inside `allowed`, and its end
//!   rounded up to a page does not overflow `u64`.
//! - No two segments share a byte; two segments that touch the same 4 KiB page have
//!   identical flags, so each page can be mapped with one set of permissions.
//! - `plan.entry` lies inside a segment whose flags include `execute`.
//!
//! Policy choices: `PT_LOAD` headers with `mem_size == 0` are skipped (they load
//! nothing) and do not count toward [`MAX_SEGMENTS`]; `p_align` and `p_paddr` are
//! ignored; `PT_INTERP`, `PT_DYNAMIC` and `PT_TLS` are rejected; every other
//! program-header type (`PT_GNU_STACK`, `PT_NOTE`, `PT_PHDR`, ...) is ignored.
//! Segments that are both writable and executable are accepted.

mod error;
mod section;
#[cfg(test)]
mod tests;

pub use error::ElfError;
pub use section::section;

use core::ops::Range;
use weft_control::layout::PAGE_SIZE;

/// Most loadable segments a plan holds.
pub const MAX_SEGMENTS: usize = 16;

const EHDR_SIZE: u64 = 64;
const PHDR_SIZE: u64 = 56;
const ELFCLASS64: u8 = 2;
const ELFDATA2LSB: u8 = 1;
const EV_CURRENT: u8 = 1;
const ET_EXEC: u16 = 2;
const ET_DYN: u16 = 3;
const EM_X86_64: u16 = 62;
const PN_XNUM: u16 = 0xFFFF;
const PT_LOAD: u32 = 1;
const PT_DYNAMIC: u32 = 2;
const PT_INTERP: u32 = 3;
const PT_TLS: u32 = 7;
const PF_X: u32 = 1;
const PF_W: u32 = 2;
const PF_R: u32 = 4;

/// Access permissions of a loadable segment (from `p_flags`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentFlags {
    pub read: bool,
    pub write: bool,
    pub execute: bool,
}

/// One loadable segment: `file_size` bytes from `file_offset` go to `vaddr`, and
/// the rest of `[vaddr, vaddr + mem_size)` is zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    pub vaddr: u64,
    pub mem_size: u64,
    pub file_offset: u64,
    pub file_size: u64,
    pub flags: SegmentFlags,
}

const EMPTY_SEGMENT: Segment = Segment {
    vaddr: 0,
    mem_size: 0,
    file_offset: 0,
    file_size: 0,
    flags: SegmentFlags {
        read: false,
        write: false,
        execute: false,
    },
};

/// A validated executable: its entry point and its loadable segments (see the
/// module docs for the invariants).
#[derive(Clone, Copy, Debug)]
pub struct LoadPlan {
    pub entry: u64,
    segments: [Segment; MAX_SEGMENTS],
    count: usize,
}

impl LoadPlan {
    /// The loadable segments, sorted by `vaddr`, never empty.
    pub fn segments(&self) -> &[Segment] {
        self.segments.get(..self.count).unwrap_or(&[])
    }

    /// `(start of the lowest page, end of the highest page)` touched by any segment.
    pub fn page_span(&self) -> (u64, u64) {
        let segs = self.segments();
        let low = segs.first().map_or(0, |s| s.vaddr & !(PAGE_SIZE - 1));
        // parse() guarantees vaddr + mem_size rounded up to a page fits in u64.
        let high = segs
            .iter()
            .map(|s| page_end(s.vaddr.saturating_add(s.mem_size)).unwrap_or(u64::MAX))
            .max()
            .unwrap_or(0);
        (low, high)
    }
}

/// `end` rounded up to a page boundary, or `None` on overflow.
fn page_end(end: u64) -> Option<u64> {
    Some(end.checked_add(PAGE_SIZE - 1)? & !(PAGE_SIZE - 1))
}

fn bytes<const N: usize>(image: &[u8], offset: u64) -> Option<[u8; N]> {
    let start = usize::try_from(offset).ok()?;
    let end = start.checked_add(N)?;
    image.get(start..end)?.try_into().ok()
}
fn u16_at(image: &[u8], offset: u64) -> Option<u16> {
    bytes(image, offset).map(u16::from_le_bytes)
}
fn u32_at(image: &[u8], offset: u64) -> Option<u32> {
    bytes(image, offset).map(u32::from_le_bytes)
}
fn u64_at(image: &[u8], offset: u64) -> Option<u64> {
    bytes(image, offset).map(u64::from_le_bytes)
}

/// The fields of the ELF header this crate uses, after the identity checks.
struct Header {
    e_type: u16,
    machine: u16,
    entry: u64,
    phoff: u64,
    shoff: u64,
    phentsize: u16,
    phnum: u16,
    shentsize: u16,
    shnum: u16,
    shstrndx: u16,
}

/// Reads the ELF header and checks magic, class, byte order and version.
fn header(image: &[u8]) -> Result<Header, ElfError> {
    if image.get(..4) != Some(b"\x7fELF".as_slice()) {
        return Err(ElfError::NotElf);
    }
    let len = image.len() as u64;
    let field = |off: u64| -> Result<u16, ElfError> {
        u16_at(image, off).ok_or(ElfError::HeaderTruncated { file_len: len })
    };
    let ident = bytes::<3>(image, 4).ok_or(ElfError::HeaderTruncated { file_len: len })?;
    if ident[0] != ELFCLASS64 {
        return Err(ElfError::Not64Bit { class: ident[0] });
    }
    if ident[1] != ELFDATA2LSB {
        return Err(ElfError::NotLittleEndian { data: ident[1] });
    }
    if ident[2] != EV_CURRENT {
        return Err(ElfError::BadVersion { version: ident[2] });
    }
    if len < EHDR_SIZE {
        return Err(ElfError::HeaderTruncated { file_len: len });
    }
    let word = |off: u64| u64_at(image, off).ok_or(ElfError::HeaderTruncated { file_len: len });
    Ok(Header {
        e_type: field(16)?,
        machine: field(18)?,
        entry: word(24)?,
        phoff: word(32)?,
        shoff: word(40)?,
        phentsize: field(54)?,
        phnum: field(56)?,
        shentsize: field(58)?,
        shnum: field(60)?,
        shstrndx: field(62)?,
    })
}

/// Validates `image` as a static x86_64 executable whose segments all lie inside
/// the virtual range `allowed`, returning where each segment goes.
pub fn parse(image: &[u8], allowed: Range<u64>) -> Result<LoadPlan, ElfError> {
    let h = header(image)?;
    let file_len = image.len() as u64;
    match h.e_type {
        ET_EXEC => {}
        ET_DYN => return Err(ElfError::PositionIndependent),
        other => return Err(ElfError::NotExecutable { e_type: other }),
    }
    if h.machine != EM_X86_64 {
        return Err(ElfError::WrongMachine { machine: h.machine });
    }
    if h.phnum == PN_XNUM {
        return Err(ElfError::ExtendedProgramHeaderCount);
    }
    if h.phnum > 0 && u64::from(h.phentsize) != PHDR_SIZE {
        return Err(ElfError::BadProgramHeaderSize { size: h.phentsize });
    }
    let table_end = u64::from(h.phnum)
        .checked_mul(PHDR_SIZE)
        .and_then(|size| h.phoff.checked_add(size));
    if table_end.is_none_or(|end| end > file_len) {
        return Err(ElfError::ProgramHeadersOutOfFile {
            offset: h.phoff,
            count: h.phnum,
            file_len,
        });
    }

    let mut plan = LoadPlan {
        entry: h.entry,
        segments: [EMPTY_SEGMENT; MAX_SEGMENTS],
        count: 0,
    };
    // Program-header index of each collected segment, kept in step with the
    // segments while sorting so errors can name the header.
    let mut indices = [0u16; MAX_SEGMENTS];
    for index in 0..h.phnum {
        let base = h.phoff + u64::from(index) * PHDR_SIZE; // inside the file: checked above
        let (
            Some(p_type),
            Some(p_flags),
            Some(offset),
            Some(vaddr),
            Some(file_size),
            Some(mem_size),
        ) = (
            u32_at(image, base),
            u32_at(image, base + 4),
            u64_at(image, base + 8),
            u64_at(image, base + 16),
            u64_at(image, base + 32),
            u64_at(image, base + 40),
        )
        else {
            return Err(ElfError::ProgramHeadersOutOfFile {
                offset: h.phoff,
                count: h.phnum,
                file_len,
            });
        };
        match p_type {
            PT_LOAD => {}
            PT_INTERP => return Err(ElfError::Interpreter { index }),
            PT_DYNAMIC => return Err(ElfError::Dynamic { index }),
            PT_TLS => return Err(ElfError::ThreadLocalStorage { index }),
            _ => continue,
        }
        if file_size > mem_size {
            return Err(ElfError::FileLargerThanMemory {
                index,
                file_size,
                mem_size,
            });
        }
        if mem_size == 0 {
            continue;
        }
        if offset
            .checked_add(file_size)
            .is_none_or(|end| end > file_len)
        {
            return Err(ElfError::SegmentPastEndOfFile {
                index,
                offset,
                file_size,
                file_len,
            });
        }
        let end = vaddr
            .checked_add(mem_size)
            .and_then(|end| page_end(end).map(|_| end));
        if !end.is_some_and(|end| vaddr >= allowed.start && end <= allowed.end) {
            return Err(ElfError::OutsideAllowedRange {
                index,
                vaddr,
                mem_size,
                allowed_start: allowed.start,
                allowed_end: allowed.end,
            });
        }
        if vaddr % PAGE_SIZE != offset % PAGE_SIZE {
            return Err(ElfError::Misaligned {
                index,
                vaddr,
                offset,
            });
        }
        let Some(slot) = plan.segments.get_mut(plan.count) else {
            return Err(ElfError::TooManySegments { max: MAX_SEGMENTS });
        };
        let flags = SegmentFlags {
            read: p_flags & PF_R != 0,
            write: p_flags & PF_W != 0,
            execute: p_flags & PF_X != 0,
        };
        *slot = Segment {
            vaddr,
            mem_size,
            file_offset: offset,
            file_size,
            flags,
        };
        if let Some(i) = indices.get_mut(plan.count) {
            *i = index;
        }
        plan.count += 1;
    }
    if plan.count == 0 {
        return Err(ElfError::NoLoadableSegments);
    }
    sort_by_vaddr(
        &mut plan.segments[..plan.count.min(MAX_SEGMENTS)],
        &mut indices,
    );
    check_neighbours(plan.segments(), &indices)?;
    let entry_ok = plan
        .segments()
        .iter()
        .any(|s| s.flags.execute && plan.entry >= s.vaddr && plan.entry - s.vaddr < s.mem_size);
    if !entry_ok {
        return Err(ElfError::EntryNotExecutable { entry: plan.entry });
    }
    Ok(plan)
}

/// Insertion sort (at most [`MAX_SEGMENTS`] elements), permuting `indices` alike.
fn sort_by_vaddr(segs: &mut [Segment], indices: &mut [u16; MAX_SEGMENTS]) {
    for i in 1..segs.len() {
        let mut j = i;
        while j > 0 && segs[j - 1].vaddr > segs[j].vaddr {
            segs.swap(j - 1, j);
            indices.swap(j - 1, j);
            j -= 1;
        }
    }
}

/// Checks each pair of neighbours in a sorted, non-empty list: no shared byte, and
/// equal flags if they share a page. Checking neighbours suffices: a segment lying
/// between two that share a page lies inside that page too.
fn check_neighbours(segs: &[Segment], indices: &[u16; MAX_SEGMENTS]) -> Result<(), ElfError> {
    for (pos, pair) in segs.windows(2).enumerate() {
        let [a, b] = pair else { continue };
        let first = indices.get(pos).copied().unwrap_or(0);
        let second = indices.get(pos + 1).copied().unwrap_or(0);
        // parse() checked that vaddr + mem_size does not overflow and mem_size > 0.
        let a_end = a.vaddr.saturating_add(a.mem_size);
        if a_end > b.vaddr {
            return Err(ElfError::Overlap {
                first,
                second,
                address: b.vaddr,
            });
        }
        let a_last_page = (a_end - 1) & !(PAGE_SIZE - 1);
        let b_first_page = b.vaddr & !(PAGE_SIZE - 1);
        if a_last_page == b_first_page && a.flags != b.flags {
            return Err(ElfError::SharedPageFlags {
                first,
                second,
                page: b_first_page,
            });
        }
    }
    Ok(())
}
