//! The x86_64 descriptor tables the monitor writes before boot: GDT, TSS and
//! IDT (PROTOCOL.md §2.4, §2.5). Pure encoding, no guest memory access.

use weft_control::layout::selector;

/// Bytes of the GDT: null, kernel code, kernel data, user data, user code, TSS.
pub const GDT_LEN: usize = 7 * 8;
/// Bytes of the TSS (no I/O permission bitmap: ring 3 may use no port).
pub const TSS_LEN: usize = 104;
/// Bytes of a full 256-entry IDT.
pub const IDT_LEN: usize = 256 * 16;

const KERNEL_CODE: u64 = 0x00AF_9A00_0000_FFFF;
const KERNEL_DATA: u64 = 0x00CF_9200_0000_FFFF;
const USER_DATA: u64 = 0x00CF_F200_0000_FFFF;
const USER_CODE: u64 = 0x00AF_FA00_0000_FFFF;
/// Access byte of a busy 64-bit TSS (the state `KVM_SET_SREGS` loads).
pub const TSS_TYPE_BUSY: u8 = 0xB;

/// The GDT with a TSS descriptor for a TSS at `tss_addr`.
pub fn gdt(tss_addr: u64) -> [u8; GDT_LEN] {
    let limit = (TSS_LEN - 1) as u64;
    let low = (limit & 0xFFFF)
        | ((tss_addr & 0xFF_FFFF) << 16)
        | (u64::from(0x80 | TSS_TYPE_BUSY) << 40)
        | (((limit >> 16) & 0xF) << 48)
        | (((tss_addr >> 24) & 0xFF) << 56);
    let high = tss_addr >> 32;
    let entries = [0, KERNEL_CODE, KERNEL_DATA, USER_DATA, USER_CODE, low, high];
    let mut out = [0u8; GDT_LEN];
    for (i, e) in entries.iter().enumerate() {
        out[i * 8..i * 8 + 8].copy_from_slice(&e.to_le_bytes());
    }
    debug_assert_eq!(usize::from(selector::TSS) / 8, 5);
    out
}

/// A TSS whose ring-0 stack is `rsp0` and whose IST1 is `ist1`.
pub fn tss(rsp0: u64, ist1: u64) -> [u8; TSS_LEN] {
    let mut out = [0u8; TSS_LEN];
    out[4..12].copy_from_slice(&rsp0.to_le_bytes());
    out[36..44].copy_from_slice(&ist1.to_le_bytes());
    // I/O map base at the limit: no bitmap.
    out[102..104].copy_from_slice(&(TSS_LEN as u16).to_le_bytes());
    out
}

/// Who may raise a gate with `int`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GateDpl {
    /// Only the kernel (and the CPU itself).
    Kernel,
    /// Ring 3 too: the syscall gate.
    User,
}

/// One 64-bit interrupt gate to `handler` in the kernel code segment on
/// interrupt stack `ist` (0 = none).
pub fn idt_gate(handler: u64, ist: u8, dpl: GateDpl) -> [u8; 16] {
    let mut g = [0u8; 16];
    g[0..2].copy_from_slice(&(handler as u16).to_le_bytes());
    g[2..4].copy_from_slice(&selector::KERNEL_CODE.to_le_bytes());
    g[4] = ist & 0x7;
    // Present, 64-bit interrupt gate, DPL 0 or 3.
    g[5] = match dpl {
        GateDpl::Kernel => 0x8E,
        GateDpl::User => 0xEE,
    };
    g[6..8].copy_from_slice(&((handler >> 16) as u16).to_le_bytes());
    g[8..12].copy_from_slice(&((handler >> 32) as u32).to_le_bytes());
    g
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idt_gate_splits_the_handler_address() {
        assert_eq!(idt_gate(0, 0, GateDpl::User)[5], 0xEE);
        let g = idt_gate(0xFFFF_FFFF_8012_3456, 1, GateDpl::Kernel);
        assert_eq!(u16::from_le_bytes([g[0], g[1]]), 0x3456);
        assert_eq!(u16::from_le_bytes([g[2], g[3]]), 0x08);
        assert_eq!((g[4], g[5]), (1, 0x8E));
        assert_eq!(u16::from_le_bytes([g[6], g[7]]), 0x8012);
        assert_eq!(u32::from_le_bytes([g[8], g[9], g[10], g[11]]), 0xFFFF_FFFF);
        assert_eq!(&g[12..], &[0; 4]);
    }

    #[test]
    fn gdt_tss_descriptor_carries_base_limit_and_busy_type() {
        let base = 0xFFFF_8000_0000_2080u64;
        let g = gdt(base);
        let low = u64::from_le_bytes(g[40..48].try_into().unwrap());
        let high = u64::from_le_bytes(g[48..56].try_into().unwrap());
        assert_eq!(low & 0xFFFF, 103);
        assert_eq!((low >> 16) & 0xFF_FFFF, base & 0xFF_FFFF);
        assert_eq!((low >> 40) & 0xFF, 0x8B);
        assert_eq!((low >> 56) & 0xFF, (base >> 24) & 0xFF);
        assert_eq!(high, base >> 32);
        assert_eq!(
            u64::from_le_bytes(g[8..16].try_into().unwrap()),
            KERNEL_CODE
        );
    }

    #[test]
    fn tss_has_stacks_and_no_io_bitmap() {
        let t = tss(0x1111, 0x2222);
        assert_eq!(u64::from_le_bytes(t[4..12].try_into().unwrap()), 0x1111);
        assert_eq!(u64::from_le_bytes(t[36..44].try_into().unwrap()), 0x2222);
        assert_eq!(u16::from_le_bytes([t[102], t[103]]), 104);
    }
}
