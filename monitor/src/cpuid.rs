//! The guest's CPUID table (PROTOCOL.md §2.4): a short whitelist built from the
//! host's own CPUID, not from `KVM_GET_SUPPORTED_CPUID`.
//!
//! `KVM_GET_SUPPORTED_CPUID` was measured at ~0.5 ms on nested KVM (every host
//! CPUID traps), a sixth of a whole `weft run hello`. The guest needs only what
//! KVM itself consults (long mode, NX and SYSCALL for EFER, x2APIC for the APIC
//! base, the address widths) plus baseline scalar features, so the table has
//! five leaves and every feature bit not listed below is cleared.

use kvm_bindings::kvm_cpuid_entry2;

/// Leaf 1 EDX: FPU, TSC, MSR, PAE, CX8, APIC, PGE, CMOV, PAT, CLFSH, MMX,
/// FXSR, SSE, SSE2.
const LEAF1_EDX: u32 = (1 << 0)
    | (1 << 4)
    | (1 << 5)
    | (1 << 6)
    | (1 << 8)
    | (1 << 9)
    | (1 << 13)
    | (1 << 15)
    | (1 << 16)
    | (1 << 19)
    | (1 << 23)
    | (1 << 24)
    | (1 << 25)
    | (1 << 26);
/// Leaf 1 ECX kept from the host: SSE3, SSSE3, SSE4.1, SSE4.2, POPCNT.
const LEAF1_ECX: u32 = (1 << 0) | (1 << 9) | (1 << 19) | (1 << 20) | (1 << 23);
/// Leaf 1 ECX always set: x2APIC, hypervisor present.
const LEAF1_ECX_SET: u32 = (1 << 21) | (1 << 31);
/// Leaf 0x8000_0001 EDX: SYSCALL, NX, long mode.
const EXT1_EDX: u32 = (1 << 11) | (1 << 20) | (1 << 29);
/// Leaf 0x8000_0001 ECX: LAHF/SAHF in long mode.
const EXT1_ECX: u32 = 1 << 0;

/// Builds the table from `host(leaf, subleaf) -> [eax, ebx, ecx, edx]`.
pub fn guest_cpuid(host: impl Fn(u32, u32) -> [u32; 4]) -> Vec<kvm_cpuid_entry2> {
    let entry = |function: u32, [eax, ebx, ecx, edx]: [u32; 4]| kvm_cpuid_entry2 {
        function,
        index: 0,
        flags: 0,
        eax,
        ebx,
        ecx,
        edx,
        ..Default::default()
    };
    let [_, vb, vc, vd] = host(0, 0);
    let [a1, b1, c1, d1] = host(1, 0);
    let [_, xb, xc, xd] = host(0x8000_0000, 0);
    let [_, _, x1c, x1d] = host(0x8000_0001, 0);
    let [x8a, ..] = host(0x8000_0008, 0);
    vec![
        entry(0, [1, vb, vc, vd]),
        // Family/model/stepping; CLFLUSH line size; one logical CPU, APIC id 0.
        entry(
            1,
            [
                a1,
                (b1 & 0xFF00) | (1 << 16),
                (c1 & LEAF1_ECX) | LEAF1_ECX_SET,
                d1 & LEAF1_EDX,
            ],
        ),
        entry(0x8000_0000, [0x8000_0008, xb, xc, xd]),
        entry(0x8000_0001, [0, 0, x1c & EXT1_ECX, x1d & EXT1_EDX]),
        // Physical and linear address widths only.
        entry(0x8000_0008, [x8a & 0xFFFF, 0, 0, 0]),
    ]
}

/// The host's CPUID.
pub fn host_cpuid(leaf: u32, subleaf: u32) -> [u32; 4] {
    let r = std::arch::x86_64::__cpuid_count(leaf, subleaf);
    [r.eax, r.ebx, r.ecx, r.edx]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_keeps_only_whitelisted_bits() {
        let t = guest_cpuid(|leaf, _| match leaf {
            0 => [0x20, 1, 2, 3],
            1 => [0x00A5_0F00, 0xFF12_3456, u32::MAX, u32::MAX],
            0x8000_0000 => [0x8000_0023, 4, 5, 6],
            0x8000_0008 => [0x1234_3030, 9, 9, 9],
            _ => [u32::MAX; 4],
        });
        let leaf = |f: u32| t.iter().find(|e| e.function == f).copied().unwrap();
        assert_eq!(t.len(), 5);
        assert_eq!(
            (leaf(0).eax, leaf(0).ebx, leaf(0).ecx, leaf(0).edx),
            (1, 1, 2, 3)
        );
        let l1 = leaf(1);
        assert_eq!(l1.eax, 0x00A5_0F00);
        assert_eq!(
            l1.ebx, 0x0001_3400,
            "APIC id 0, one logical CPU, CLFLUSH size kept"
        );
        assert_eq!(l1.ecx, LEAF1_ECX | LEAF1_ECX_SET);
        assert_eq!(l1.ecx & (1 << 3), 0, "MONITOR hidden");
        assert_eq!(l1.edx, LEAF1_EDX);
        assert_eq!(leaf(0x8000_0000).eax, 0x8000_0008);
        assert_eq!(leaf(0x8000_0001).edx, EXT1_EDX);
        assert_eq!(leaf(0x8000_0008).eax, 0x3030);
    }
}
