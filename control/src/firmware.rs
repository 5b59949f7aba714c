//! The firmware Weft gives QEMU (PROTOCOL.md §22): a 64 KiB ROM at the top
//! of the 32-bit address space that brings the CPU from its reset state to
//! the kernel's entry in the state Weft's own monitor sets directly (§2.4).
//! The code ships in the kernel ELF (section [`SECTION`], not loaded); the
//! monitor copies it to the ROM's start, writes the parameters at
//! [`PARAMS_OFFSET`] and the reset jump at [`RESET_OFFSET`].

/// The kernel ELF section holding the firmware's code.
pub const SECTION: &str = ".weft_firmware";
/// The ROM's size: QEMU maps a `-bios` image ending at 4 GiB.
pub const ROM_SIZE: u64 = 64 * 1024;
/// The ROM's guest-physical (and, while the firmware runs, virtual) base.
pub const ROM_BASE: u64 = (1 << 32) - ROM_SIZE;
/// Where in the ROM the parameters lie.
pub const PARAMS_OFFSET: u64 = 0xF000;
/// The parameters' address.
pub const PARAMS: u64 = ROM_BASE + PARAMS_OFFSET;
/// Where in the ROM the CPU starts (its reset vector, 0xFFFF_FFF0).
pub const RESET_OFFSET: u64 = 0xFFF0;
/// The reset vector's instruction: `jmp` (near, 16-bit) to the ROM's
/// first byte (the CPU starts with CS base 0xFFFF_0000, IP 0xFFF0).
pub const RESET_JUMP: [u8; 3] = [0xE9, 0x0D, 0x00];
/// The 2 MiB page, identity-mapped in the kernel's page tables under
/// QEMU, in which the firmware turns paging on (§1.2).
pub const IDENTITY_PAGE: u64 = (1 << 32) - (2 << 20);

/// Bits of the parameters' `flags`.
pub mod flags {
    /// Program the local APIC in xAPIC mode (memory), not x2APIC (MSRs).
    pub const XAPIC: u64 = 1 << 0;
}

crate::wire_layout! {
    /// The firmware's parameters, at [`PARAMS`] (§22.2). The two
    /// pseudo-descriptors end 8-aligned so `lgdt`/`lidt` read them as is.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct Params: 80, in_place {
        /// The kernel's entry point.
        [0] pub entry: u64,
        /// The boot kernel stack's top.
        [8] pub rsp: u64,
        /// The boot info's kernel address (the kernel's `rdi`).
        [16] pub rdi: u64,
        /// The kernel PML4 (guest-physical, below 4 GiB).
        [24] pub kernel_root: u64,
        /// The per-CPU block (GS base).
        [32] pub gs_base: u64,
        /// [`flags`].
        [40] pub flags: u64,
        /// Zero.
        [48] pub reserved0: [u8; 6],
        /// The GDT's limit.
        [54] pub gdt_limit: u16,
        /// The GDT's kernel address.
        [56] pub gdt_base: u64,
        /// Zero.
        [64] pub reserved1: [u8; 6],
        /// The IDT's limit.
        [70] pub idt_limit: u16,
        /// The IDT's kernel address.
        [72] pub idt_base: u64,
    }
}

const _: () = {
    assert!(ROM_BASE == 0xFFFF_0000);
    assert!(PARAMS + Params::SIZE as u64 <= ROM_BASE + RESET_OFFSET);
    assert!(IDENTITY_PAGE.is_multiple_of(2 << 20) && IDENTITY_PAGE <= ROM_BASE);
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reset_jump_lands_on_the_roms_first_byte() {
        // IP after the 3-byte jump, plus the displacement, wraps to 0.
        let after = (RESET_OFFSET as u16).wrapping_add(3);
        let disp = u16::from_le_bytes([RESET_JUMP[1], RESET_JUMP[2]]);
        assert_eq!(after.wrapping_add(disp), 0);
    }

    #[test]
    fn params_encode_at_their_offsets() {
        let p = Params {
            gdt_limit: 0x37,
            gdt_base: 0x1122,
            idt_limit: 0xFFF,
            ..Params::default()
        };
        let b = p.encode();
        assert_eq!(&b[54..56], &[0x37, 0]);
        assert_eq!(&b[56..64], &0x1122u64.to_le_bytes());
        assert_eq!(&b[70..72], &0xFFFu16.to_le_bytes());
    }
}
