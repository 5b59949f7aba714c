//! The boot-info block and the kernel manifest (PROTOCOL.md §2).
//!
//! The monitor reads the [`KernelManifest`] out of the kernel ELF before booting,
//! refuses a magic or version mismatch, and builds the interrupt table and
//! `SYSCALL` target from it. It then writes one [`BootInfo`] page into guest memory
//! and passes its kernel virtual address in `rdi` at the kernel entry point.
//! [`PerCpu`] is the block `GS` points at in the kernel.

use crate::assert_layout;
use crate::layout::vector;

/// `BootInfo::magic`: "WEFTBOOT" in ASCII, little-endian.
pub const BOOT_MAGIC: u64 = u64::from_le_bytes(*b"WEFTBOOT");
/// `KernelManifest::magic`: "WEFTKERN" in ASCII, little-endian.
pub const MANIFEST_MAGIC: u64 = u64::from_le_bytes(*b"WEFTKERN");
/// Name of the ELF section that holds the kernel manifest.
pub const MANIFEST_SECTION: &str = ".weft_manifest";
/// Number of memory-map entries the boot info has room for.
pub const MAX_REGIONS: usize = 32;

/// What the kernel states about itself, in its ELF section `.weft_manifest` (§2.1).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelManifest {
    /// [`MANIFEST_MAGIC`].
    pub magic: u64,
    /// The interface version the kernel was built against.
    pub version: u32,
    /// Number of valid entries in `vectors` ([`vector::TABLE_LEN`]).
    pub vector_count: u32,
    /// Kernel virtual address of the `SYSCALL` entry point (`IA32_LSTAR`).
    pub syscall_entry: u64,
    /// Entry points for vectors 0..=32 then [`vector::SPURIOUS`].
    pub vectors: [u64; vector::TABLE_LEN],
}
assert_layout!(KernelManifest, size = 296, magic = 0, version = 8, vector_count = 12,
    syscall_entry = 16, vectors = 24);

impl KernelManifest {
    /// Size in bytes of the encoded manifest.
    pub const SIZE: usize = core::mem::size_of::<Self>();

    /// Decodes a manifest from the start of `bytes` (little-endian).
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let bytes = bytes.get(..Self::SIZE)?;
        let u64_at = |o: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&bytes[o..o + 8]);
            u64::from_le_bytes(b)
        };
        let mut vectors = [0u64; vector::TABLE_LEN];
        for (i, v) in vectors.iter_mut().enumerate() {
            *v = u64_at(24 + 8 * i);
        }
        Some(Self {
            magic: u64_at(0),
            version: u64_at(8) as u32,
            vector_count: (u64_at(8) >> 32) as u32,
            syscall_entry: u64_at(16),
            vectors,
        })
    }

    /// The vector number served by entry `index` of `vectors`.
    pub const fn vector_of(index: usize) -> u8 {
        if index < vector::TABLE_LEN - 1 { index as u8 } else { vector::SPURIOUS }
    }
}

/// Kinds of [`MemoryRegion`] (§2.2).
pub mod region_kind {
    /// Free RAM the kernel may allocate from (zero-filled at boot).
    pub const USABLE: u32 = 1;
    /// Boot structures: boot info, GDT, TSS, IDT, per-CPU block, mailbox.
    pub const BOOT: u32 = 2;
    /// Page tables built by the monitor.
    pub const PAGE_TABLES: u32 = 3;
    /// The kernel image and its stacks.
    pub const KERNEL: u32 = 4;
    /// The first program's image, stack and arguments.
    pub const PROGRAM: u32 = 5;
}

/// One entry of the physical memory map (§2.2). Regions are page-aligned, sorted
/// by `base` and do not overlap.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemoryRegion {
    /// Guest-physical start address.
    pub base: u64,
    /// Length in bytes.
    pub len: u64,
    /// One of [`region_kind`].
    pub kind: u32,
    /// Zero.
    pub reserved: u32,
}
assert_layout!(MemoryRegion, size = 24, base = 0, len = 8, kind = 16, reserved = 20);

/// The first program, loaded and mapped by the monitor (§2.2).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProgramInfo {
    /// Guest-physical address of the program's PML4 (its kernel half equals the
    /// kernel's).
    pub root: u64,
    /// User virtual address of the program's entry point.
    pub entry: u64,
    /// Initial user stack pointer (16-byte aligned).
    pub stack_top: u64,
    /// User virtual address of the arguments block (§4).
    pub args_addr: u64,
    /// Length in bytes of the arguments block.
    pub args_len: u64,
    /// Next free user virtual address for anonymous memory.
    pub heap_base: u64,
}
assert_layout!(ProgramInfo, size = 48, root = 0, entry = 8, stack_top = 16,
    args_addr = 24, args_len = 32, heap_base = 40);

/// Where the control pipe is; all zero until streams exist (§2.2).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PipeInfo {
    /// Guest-physical start of the pipe region.
    pub phys: u64,
    /// Length of the pipe region.
    pub len: u64,
    /// Doorbell identifier.
    pub doorbell: u64,
    /// Interrupt vector.
    pub vector: u32,
    /// Zero.
    pub flags: u32,
}
assert_layout!(PipeInfo, size = 32, phys = 0, len = 8, doorbell = 16, vector = 24, flags = 28);

/// Guest time-stamp counter values the kernel records during boot (§2.3). The
/// monitor reads them after the guest stops, for `--stats`; they are reports,
/// never trusted for anything else.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BootStamps {
    /// First kernel instruction.
    pub kernel_entry: u64,
    /// Kernel initialization done.
    pub kernel_ready: u64,
    /// Just before the first instruction of the program.
    pub program_entry: u64,
    /// Zero.
    pub reserved: u64,
}
assert_layout!(BootStamps, size = 32, kernel_entry = 0, kernel_ready = 8, program_entry = 16);

/// The boot-info block (§2.2), one page at a page-aligned guest-physical address.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BootInfo {
    /// [`BOOT_MAGIC`].
    pub magic: u64,
    /// [`crate::INTERFACE_VERSION`].
    pub version: u32,
    /// Number of valid entries in `regions`.
    pub region_count: u32,
    /// Guest TSC frequency in Hz.
    pub tsc_hz: u64,
    /// Local APIC timer frequency in Hz at divide-by-1.
    pub apic_timer_hz: u64,
    /// Guest RAM size in bytes (RAM is one range starting at physical 0).
    pub mem_size: u64,
    /// Guest-physical address of the kernel-only PML4.
    pub kernel_root: u64,
    /// The first program.
    pub program: ProgramInfo,
    /// The control pipe (reserved).
    pub control_pipe: PipeInfo,
    /// Boot-phase time stamps, written by the kernel.
    pub stamps: BootStamps,
    /// The physical memory map.
    pub regions: [MemoryRegion; MAX_REGIONS],
}
assert_layout!(BootInfo, size = 928, magic = 0, version = 8, region_count = 12, tsc_hz = 16,
    apic_timer_hz = 24, mem_size = 32, kernel_root = 40, program = 48, control_pipe = 96,
    stamps = 128, regions = 160);

impl BootInfo {
    /// A boot info with the magic and version set and everything else zero.
    pub const fn new() -> Self {
        Self {
            magic: BOOT_MAGIC,
            version: crate::INTERFACE_VERSION,
            region_count: 0,
            tsc_hz: 0,
            apic_timer_hz: 0,
            mem_size: 0,
            kernel_root: 0,
            program: ProgramInfo { root: 0, entry: 0, stack_top: 0, args_addr: 0, args_len: 0, heap_base: 0 },
            control_pipe: PipeInfo { phys: 0, len: 0, doorbell: 0, vector: 0, flags: 0 },
            stamps: BootStamps { kernel_entry: 0, kernel_ready: 0, program_entry: 0, reserved: 0 },
            regions: [MemoryRegion { base: 0, len: 0, kind: 0, reserved: 0 }; MAX_REGIONS],
        }
    }

    /// The valid memory-map entries.
    pub fn regions(&self) -> &[MemoryRegion] {
        let n = (self.region_count as usize).min(MAX_REGIONS);
        &self.regions[..n]
    }
}

impl Default for BootInfo {
    fn default() -> Self {
        Self::new()
    }
}

/// The per-CPU block `GS` points at in the kernel (§2.4). The monitor fills it;
/// the kernel's `SYSCALL` entry uses the offsets below.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PerCpu {
    /// Kernel virtual address of this block.
    pub self_addr: u64,
    /// Kernel stack pointer loaded on `SYSCALL`.
    pub kernel_rsp: u64,
    /// Scratch slot for the user stack pointer during a syscall.
    pub user_rsp: u64,
    /// Kernel virtual address of this CPU's hypercall mailbox (§3.2).
    pub mailbox: u64,
    /// Kernel virtual address of the boot info.
    pub boot_info: u64,
    /// Index of this CPU (0 is the bootstrap CPU).
    pub cpu_index: u64,
    /// Zero.
    pub reserved: [u64; 2],
}
assert_layout!(PerCpu, size = 64, self_addr = 0, kernel_rsp = 8, user_rsp = 16, mailbox = 24,
    boot_info = 32, cpu_index = 40);

/// Byte offsets into [`PerCpu`] for assembly.
pub mod percpu_offset {
    /// `PerCpu::kernel_rsp`.
    pub const KERNEL_RSP: usize = core::mem::offset_of!(super::PerCpu, kernel_rsp);
    /// `PerCpu::user_rsp`.
    pub const USER_RSP: usize = core::mem::offset_of!(super::PerCpu, user_rsp);
}

/// Byte offset of `BootInfo::stamps.kernel_entry`, for the kernel's entry stub.
pub const STAMP_KERNEL_ENTRY_OFFSET: usize =
    core::mem::offset_of!(BootInfo, stamps) + core::mem::offset_of!(BootStamps, kernel_entry);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_decodes_little_endian_fields() {
        let mut bytes = [0u8; KernelManifest::SIZE];
        bytes[0..8].copy_from_slice(&MANIFEST_MAGIC.to_le_bytes());
        bytes[8..12].copy_from_slice(&7u32.to_le_bytes());
        bytes[12..16].copy_from_slice(&(vector::TABLE_LEN as u32).to_le_bytes());
        bytes[16..24].copy_from_slice(&0xFFFF_FFFF_8000_1000u64.to_le_bytes());
        bytes[24 + 8 * 33..].copy_from_slice(&0xFFFF_FFFF_8000_2000u64.to_le_bytes());
        let m = KernelManifest::decode(&bytes).unwrap();
        assert_eq!(m.magic, MANIFEST_MAGIC);
        assert_eq!(m.version, 7);
        assert_eq!(m.vector_count as usize, vector::TABLE_LEN);
        assert_eq!(m.syscall_entry, 0xFFFF_FFFF_8000_1000);
        assert_eq!(m.vectors[33], 0xFFFF_FFFF_8000_2000);
        assert!(KernelManifest::decode(&bytes[..KernelManifest::SIZE - 1]).is_none());
    }

    #[test]
    fn vector_of_maps_last_entry_to_spurious() {
        assert_eq!(KernelManifest::vector_of(0), 0);
        assert_eq!(KernelManifest::vector_of(32), vector::TIMER);
        assert_eq!(KernelManifest::vector_of(33), vector::SPURIOUS);
    }

    #[test]
    fn regions_never_exceed_capacity() {
        let mut info = BootInfo::new();
        info.region_count = 1000;
        assert_eq!(info.regions().len(), MAX_REGIONS);
        assert_eq!(STAMP_KERNEL_ENTRY_OFFSET, 128);
    }
}
