//! Finding a named section's file bytes, e.g. the kernel's `.weft_manifest`.
//!
//! Like [`parse`](super::parse), every table, name and range is bounds-checked;
//! a malformed or hostile image gives `None`, never a panic. The search reads at
//! most one section header per 64 bytes of file, so it always terminates.

use super::{header, u32_at, u64_at};

const SHDR_SIZE: u64 = 64;
const SHT_NOBITS: u32 = 8;
const SHN_XINDEX: u16 = 0xFFFF;

/// The file bytes of the section called `name`, or `None` if the image has no
/// such section, the section has no file bytes (`SHT_NOBITS`), or any table,
/// name or range involved lies outside the image.
pub fn section<'a>(image: &'a [u8], name: &str) -> Option<&'a [u8]> {
    let h = header(image).ok()?;
    if h.shoff == 0 || u64::from(h.shentsize) != SHDR_SIZE {
        return None;
    }
    let shdr = |i: u64| h.shoff.checked_add(i.checked_mul(SHDR_SIZE)?);
    // Extended numbering: the real count and string-table index live in section 0.
    let count = match h.shnum {
        0 => u64_at(image, shdr(0)?.checked_add(32)?)?,
        n => u64::from(n),
    };
    let strndx = match h.shstrndx {
        SHN_XINDEX => u64::from(u32_at(image, shdr(0)?.checked_add(40)?)?),
        n => u64::from(n),
    };
    let range_of = |i: u64| -> Option<(u32, u64, u64)> {
        let base = shdr(i)?;
        let sh_type = u32_at(image, base.checked_add(4)?)?;
        Some((
            sh_type,
            u64_at(image, base.checked_add(24)?)?,
            u64_at(image, base.checked_add(32)?)?,
        ))
    };
    let slice = |offset: u64, size: u64| -> Option<&'a [u8]> {
        let start = usize::try_from(offset).ok()?;
        image.get(start..start.checked_add(usize::try_from(size).ok()?)?)
    };
    if strndx >= count {
        return None;
    }
    let (_, str_off, str_size) = range_of(strndx)?;
    let strtab = slice(str_off, str_size)?;
    for i in 0..count {
        let name_off = usize::try_from(u32_at(image, shdr(i)?)?).ok()?;
        let rest = strtab.get(name_off..)?;
        let matches =
            rest.get(..name.len()) == Some(name.as_bytes()) && rest.get(name.len()) == Some(&0);
        if matches {
            let (sh_type, offset, size) = range_of(i)?;
            if sh_type == SHT_NOBITS {
                return None;
            }
            return slice(offset, size);
        }
    }
    None
}
