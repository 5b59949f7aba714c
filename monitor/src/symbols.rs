//! Symbolization of guest addresses and frame-pointer stack walks.
//!
//! Guest code is built with frame pointers (`.cargo/config.toml`), so a stack
//! is a chain of `[saved rbp, return address]` pairs. The walk reads the guest's
//! memory through its page tables and stops at the first frame that is not
//! mapped, not aligned or not above the previous one: the chain is guest data.

use crate::guest_memory::{PhysRam, Ram};
use object::{Object, ObjectSymbol, SymbolKind};
use std::cell::OnceCell;
use weft_image::paging::{Access, PhysMemory, translate};

/// Most frames a backtrace shows.
pub const MAX_FRAMES: usize = 32;

/// The function symbols of one ELF image, read and demangled on the first
/// lookup: only a report of a fault or a panic needs them, and a large
/// program's take milliseconds (the Wasm runtime's ~2 ms here).
pub struct Symbols<'a> {
    /// Which image ("kernel" or the program's name), for reports.
    pub image: String,
    elf: &'a [u8],
    /// (start, size, demangled name), sorted by start.
    funcs: OnceCell<Vec<(u64, u64, String)>>,
}

impl<'a> Symbols<'a> {
    /// The symbols of `elf`, read when first looked up; an image without
    /// symbols (or not an ELF at all) yields an empty table.
    pub fn new(image: &str, elf: &'a [u8]) -> Self {
        Self {
            image: image.to_owned(),
            elf,
            funcs: OnceCell::new(),
        }
    }

    /// The function symbols, sorted by start.
    fn funcs(&self) -> &[(u64, u64, String)] {
        self.funcs.get_or_init(|| {
            let mut funcs: Vec<(u64, u64, String)> = object::File::parse(self.elf)
                .map(|f| {
                    f.symbols()
                        // Functions, and the untyped global labels of assembly stubs.
                        .filter(|s| {
                            let label = matches!(s.kind(), SymbolKind::Unknown | SymbolKind::Label)
                                && s.is_global();
                            (s.kind() == SymbolKind::Text || label)
                                && !s.is_undefined()
                                && s.address() != 0
                        })
                        .filter_map(|s| {
                            let name = s.name().ok()?;
                            Some((
                                s.address(),
                                s.size(),
                                format!("{:#}", rustc_demangle::demangle(name)),
                            ))
                        })
                        .collect()
                })
                .unwrap_or_default();
            funcs.sort_by_key(|f| f.0);
            funcs
        })
    }

    /// `name+0xoffset` for `addr`, if a function covers it.
    pub fn lookup(&self, addr: u64) -> Option<String> {
        let funcs = self.funcs();
        let i = funcs.partition_point(|f| f.0 <= addr).checked_sub(1)?;
        let (start, size, name) = &funcs[i];
        let off = addr - start;
        (*size == 0 || off < *size).then(|| format!("{name}+{off:#x}"))
    }
}

/// Describes `addr` with the first table that knows it.
pub fn describe(addr: u64, tables: &[&Symbols<'_>]) -> String {
    for t in tables {
        if let Some(s) = t.lookup(addr) {
            return format!("{addr:#018x} {s} [{}]", t.image);
        }
    }
    format!("{addr:#018x} ??")
}

/// The return addresses of the frame chain starting at `rbp`, in the address
/// space `root`; `user` requires user-accessible stack pages.
pub fn walk(ram: &Ram, root: u64, mut rbp: u64, user: bool) -> Vec<u64> {
    let mem = PhysRam(ram);
    let access = Access {
        user,
        write: false,
        execute: false,
    };
    let read = |vaddr: u64| -> Option<u64> {
        let phys = translate(&mem, root, vaddr, access).ok()?;
        mem.read_u64(phys)
    };
    let mut frames = Vec::new();
    while frames.len() < MAX_FRAMES && rbp != 0 && rbp.is_multiple_of(8) {
        let (Some(next), Some(ret)) = (read(rbp), rbp.checked_add(8).and_then(read)) else {
            break;
        };
        if ret == 0 {
            break;
        }
        frames.push(ret);
        if next <= rbp {
            break;
        }
        rbp = next;
    }
    frames
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_finds_the_enclosing_function() {
        let s = Symbols {
            image: "k".into(),
            elf: b"",
            funcs: OnceCell::from(vec![(0x1000, 0x10, "a".into()), (0x2000, 0, "b".into())]),
        };
        assert_eq!(s.lookup(0x1004).as_deref(), Some("a+0x4"));
        assert_eq!(s.lookup(0x1010), None);
        assert_eq!(s.lookup(0xFFF), None);
        assert_eq!(s.lookup(0x2345).as_deref(), Some("b+0x345"));
        assert_eq!(describe(0x1004, &[&s]), "0x0000000000001004 a+0x4 [k]");
        assert_eq!(describe(0x10, &[&s]), "0x0000000000000010 ??");
    }

    #[test]
    fn symbols_of_garbage_are_empty() {
        assert!(Symbols::new("x", b"not an elf").lookup(0).is_none());
    }
}
