//! A tiny ELF writer for the tests: valid images, and knobs to break each rule.

use super::super::*;
use std::vec;
use std::vec::Vec;
use weft_control::layout::{USER_BASE, USER_TOP};

pub const ALLOWED: Range<u64> = USER_BASE..USER_TOP;
pub const R: u32 = PF_R;
pub const RW: u32 = PF_R | PF_W;
pub const RX: u32 = PF_R | PF_X;

#[derive(Clone)]
pub struct Phdr {
    pub p_type: u32,
    pub flags: u32,
    pub offset: u64,
    pub vaddr: u64,
    pub file_size: u64,
    pub mem_size: u64,
}

pub fn load(flags: u32, offset: u64, vaddr: u64, file_size: u64, mem_size: u64) -> Phdr {
    Phdr {
        p_type: PT_LOAD,
        flags,
        offset,
        vaddr,
        file_size,
        mem_size,
    }
}

/// A tiny ELF writer: header, program headers at offset 64, zero padding up to
/// `file_len`, then optionally a section-header table with a string table.
#[derive(Clone)]
pub struct Builder {
    pub e_type: u16,
    pub machine: u16,
    pub entry: u64,
    pub phdrs: Vec<Phdr>,
    pub file_len: usize,
    /// (name, sh_type, offset, size)
    pub sections: Vec<(&'static str, u32, u64, u64)>,
}

impl Builder {
    /// Text (R+X) at 0x40_1000 from file offset 0x1000, data (R+W, with .bss) at
    /// 0x40_2000 from file offset 0x2000.
    pub fn valid() -> Self {
        Builder {
            e_type: ET_EXEC,
            machine: EM_X86_64,
            entry: 0x40_1010,
            phdrs: vec![
                Phdr {
                    p_type: 0x6474_e551,
                    flags: RW,
                    offset: 0,
                    vaddr: 0,
                    file_size: 0,
                    mem_size: 0,
                },
                load(RX, 0x1000, 0x40_1000, 0x100, 0x100),
                load(RW, 0x2000, 0x40_2000, 0x80, 0x1000),
            ],
            file_len: 0x2080,
            sections: Vec::new(),
        }
    }

    pub fn build(&self) -> Vec<u8> {
        let mut f = vec![0u8; self.file_len.max(64 + 56 * self.phdrs.len())];
        f[..4].copy_from_slice(b"\x7fELF");
        f[4] = ELFCLASS64;
        f[5] = ELFDATA2LSB;
        f[6] = EV_CURRENT;
        put16(&mut f, 16, self.e_type);
        put16(&mut f, 18, self.machine);
        put32(&mut f, 20, 1);
        put64(&mut f, 24, self.entry);
        put64(&mut f, 32, 64);
        put16(&mut f, 52, 64);
        put16(&mut f, 54, 56);
        put16(&mut f, 56, self.phdrs.len() as u16);
        for (i, p) in self.phdrs.iter().enumerate() {
            let b = 64 + 56 * i;
            put32(&mut f, b, p.p_type);
            put32(&mut f, b + 4, p.flags);
            put64(&mut f, b + 8, p.offset);
            put64(&mut f, b + 16, p.vaddr);
            put64(&mut f, b + 24, p.vaddr);
            put64(&mut f, b + 32, p.file_size);
            put64(&mut f, b + 40, p.mem_size);
            put64(&mut f, b + 48, 0x1000);
        }
        if !self.sections.is_empty() {
            self.add_sections(&mut f);
        }
        f
    }

    fn add_sections(&self, f: &mut Vec<u8>) {
        let mut strtab = vec![0u8];
        let mut names = Vec::new();
        for (name, ..) in self.sections.iter().chain([&(".shstrtab", 3, 0, 0)]) {
            names.push(strtab.len() as u32);
            strtab.extend_from_slice(name.as_bytes());
            strtab.push(0);
        }
        let str_off = f.len() as u64;
        f.extend_from_slice(&strtab);
        let shoff = f.len();
        let count = self.sections.len() + 2;
        f.resize(shoff + 64 * count, 0);
        let mut shdr = |i: usize, name: u32, ty: u32, off: u64, size: u64| {
            let b = shoff + 64 * i;
            put32(f, b, name);
            put32(f, b + 4, ty);
            put64(f, b + 24, off);
            put64(f, b + 32, size);
        };
        for (i, &(_, ty, off, size)) in self.sections.iter().enumerate() {
            shdr(i + 1, names[i], ty, off, size);
        }
        shdr(count - 1, names[count - 2], 3, str_off, strtab.len() as u64);
        put64(f, 40, shoff as u64);
        put16(f, 58, 64);
        put16(f, 60, count as u16);
        put16(f, 62, (count - 1) as u16);
    }
}

pub fn put16(f: &mut [u8], at: usize, v: u16) {
    f[at..at + 2].copy_from_slice(&v.to_le_bytes());
}
pub fn put32(f: &mut [u8], at: usize, v: u32) {
    f[at..at + 4].copy_from_slice(&v.to_le_bytes());
}
pub fn put64(f: &mut [u8], at: usize, v: u64) {
    f[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

pub fn parse_with(b: &Builder) -> Result<LoadPlan, ElfError> {
    parse(&b.build(), ALLOWED)
}
