//! The boot-info block and the kernel manifest (PROTOCOL.md §2).
//!
//! The monitor reads the [`KernelManifest`] out of the kernel ELF before booting,
//! refuses a magic or version mismatch, and builds the interrupt table and
//! `SYSCALL` target from it. It then writes one [`BootInfo`] page into guest memory
//! and passes its kernel virtual address in `rdi` at the kernel entry point.
//! [`PerCpu`] is the block `GS` points at in the kernel.

use crate::layout::vector;

/// `BootInfo::magic`: "WEFTBOOT" in ASCII, little-endian.
pub const BOOT_MAGIC: u64 = u64::from_le_bytes(*b"WEFTBOOT");
/// `KernelManifest::magic`: "WEFTKERN" in ASCII, little-endian.
pub const MANIFEST_MAGIC: u64 = u64::from_le_bytes(*b"WEFTKERN");
/// Name of the ELF section that holds the kernel manifest.
pub const MANIFEST_SECTION: &str = ".weft_manifest";
/// `ProgramManifest::magic`: "WEFTPROG" in ASCII, little-endian.
pub const PROGRAM_MAGIC: u64 = u64::from_le_bytes(*b"WEFTPROG");
/// Name of the ELF section that holds a program's manifest.
pub const PROGRAM_SECTION: &str = ".weft_program";
/// Number of memory-map entries the boot info has room for.
pub const MAX_REGIONS: usize = 32;

crate::wire_layout! {
    /// What the kernel states about itself, in its ELF section `.weft_manifest` (§2.1).
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct KernelManifest: 312, in_place {
        /// [`MANIFEST_MAGIC`].
        [0] pub magic: u64,
        /// The interface version the kernel was built against.
        [8] pub version: u32,
        /// Number of valid entries in `vectors` ([`vector::TABLE_LEN`]).
        [12] pub vector_count: u32,
        /// Entry points for vectors 0..=32, [`vector::STREAM`],
        /// [`vector::SPURIOUS`], then the xAPIC variants of the timer and
        /// stream entries (§2.5); entry [`vector::SYSCALL`] is the syscall
        /// gate.
        [16] pub vectors: [u64; vector::TABLE_LEN],
    }
}

impl KernelManifest {
    /// Decodes a manifest from the start of `bytes`; `None` if it is shorter.
    pub fn decode_prefix(bytes: &[u8]) -> Option<Self> {
        bytes.first_chunk::<{ Self::SIZE }>().map(Self::decode)
    }

    /// The vector number served by entry `index` of `vectors`.
    pub const fn vector_of(index: usize) -> u8 {
        match index {
            0..=32 => index as u8,
            33 | 36 => vector::STREAM,
            35 => vector::TIMER,
            _ => vector::SPURIOUS,
        }
    }

    /// The IDT's gates: `(vector, entry point)` for every vector the kernel
    /// serves, with the local APIC's two taken from the xAPIC variants if
    /// `xapic` (the APIC is reached through memory, not MSRs, §2.5).
    pub fn gates(&self, xapic: bool) -> impl Iterator<Item = (u8, u64)> + '_ {
        let apic = |i: usize| (32..=33).contains(&i) || (35..=36).contains(&i);
        let chosen = move |i: usize| !apic(i) || (i >= 35) == xapic;
        self.vectors
            .iter()
            .enumerate()
            .filter(move |&(i, _)| chosen(i))
            .map(|(i, &entry)| (Self::vector_of(i), entry))
    }
}

crate::wire_layout! {
    /// What a program states about itself, in its ELF section
    /// `.weft_program` (§2.1): the interface version it was built for. The
    /// user runtime (`weft-user`) emits it; the monitor refuses a program
    /// without it or with another version.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct ProgramManifest: 16, strict {
        /// [`PROGRAM_MAGIC`].
        [0] pub magic: u64,
        /// The interface version the program was built against.
        [8] pub version: u32,
    }
}

impl ProgramManifest {
    /// The manifest of a program built against this crate.
    pub const CURRENT: Self = Self {
        magic: PROGRAM_MAGIC,
        version: crate::INTERFACE_VERSION,
    };

    /// Decodes a manifest from the start of `bytes`; `None` if it is
    /// shorter, or its reserved bytes are not zero.
    pub fn decode_prefix(bytes: &[u8]) -> Option<Self> {
        bytes.first_chunk::<{ Self::SIZE }>().and_then(Self::decode)
    }
}

/// Bits of [`BootInfo::flags`] (§2.2). Under Weft's own monitor none is
/// set.
pub mod boot_flags {
    /// The local APIC is in xAPIC mode: its registers are memory at
    /// `DIRECT_MAP_BASE + 0xFEE0_0000`, not x2APIC MSRs.
    pub const XAPIC: u64 = 1 << 0;
    /// No stream interrupt comes (§8.3): an idle CPU halts for at most
    /// [`super::BootInfo::idle_poll_ns`] and then takes the wake word.
    pub const NO_STREAM_INTERRUPT: u64 = 1 << 1;
}

/// Kinds of [`MemoryRegion`] (§2.2).
pub mod region_kind {
    /// Free RAM the kernel may allocate from (zero-filled at boot).
    pub const USABLE: u32 = 1;
    /// Boot structures: boot info, GDT, TSS, IDT, per-CPU block, mailbox,
    /// process status page.
    pub const BOOT: u32 = 2;
    /// Page tables built by the monitor.
    pub const PAGE_TABLES: u32 = 3;
    /// The kernel image and its stacks.
    pub const KERNEL: u32 = 4;
    /// The first program's image, stack and arguments.
    pub const PROGRAM: u32 = 5;
    /// RAM the monitor hands out to processes (`SPAWN`, `MAP`, §14.4); the
    /// kernel never allocates from it.
    pub const PROCESSES: u32 = 6;
}

crate::wire_layout! {
    /// One entry of the physical memory map (§2.2). Regions are page-aligned,
    /// sorted by `base` and do not overlap.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct MemoryRegion: 24, in_place {
        /// Guest-physical start address.
        [0] pub base: u64,
        /// Length in bytes.
        [8] pub len: u64,
        /// One of [`region_kind`].
        [16] pub kind: u32,
        /// Zero.
        [20] pub reserved: u32,
    }
}

impl MemoryRegion {
    /// An all-zero entry.
    pub const EMPTY: Self = Self {
        base: 0,
        len: 0,
        kind: 0,
        reserved: 0,
    };
}

crate::wire_layout! {
    /// The first program, loaded and mapped by the monitor (§2.2); also the
    /// mailbox's contents after `SPAWN` (§14.4).
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct ProgramInfo: 48, in_place {
        /// Guest-physical address of the program's PML4 (its kernel half
        /// equals the kernel's).
        [0] pub root: u64,
        /// User virtual address of the program's entry point.
        [8] pub entry: u64,
        /// Initial user stack pointer (16-byte aligned).
        [16] pub stack_top: u64,
        /// User virtual address of the arguments block (§4).
        [24] pub args_addr: u64,
        /// Length in bytes of the arguments block.
        [32] pub args_len: u64,
        /// Next free user virtual address for anonymous memory.
        [40] pub heap_base: u64,
    }
}

crate::wire_layout! {
    /// Where the control pipe is; all zero until streams exist (§2.2).
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct PipeInfo: 32, in_place {
        /// Guest-physical start of the pipe region.
        [0] pub phys: u64,
        /// Length of the pipe region.
        [8] pub len: u64,
        /// Doorbell identifier.
        [16] pub doorbell: u64,
        /// Interrupt vector.
        [24] pub vector: u32,
        /// Zero.
        [28] pub flags: u32,
    }
}

crate::wire_layout! {
    /// Guest time-stamp counter values the kernel records during boot (§2.3).
    /// The monitor reads them after the guest stops, for `--stats`; they are
    /// reports, never trusted for anything else.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct BootStamps: 32, in_place {
        /// First kernel instruction.
        [0] pub kernel_entry: u64,
        /// Kernel initialization done.
        [8] pub kernel_ready: u64,
        /// Just before the first instruction of the program.
        [16] pub program_entry: u64,
        /// Zero.
        [24] pub reserved: u64,
    }
}

crate::wire_layout! {
    /// The boot-info block (§2.2), one page at a page-aligned guest-physical
    /// address.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct BootInfo: 944, in_place {
        /// [`BOOT_MAGIC`].
        [0] pub magic: u64,
        /// [`crate::INTERFACE_VERSION`].
        [8] pub version: u32,
        /// Number of valid entries in `regions`.
        [12] pub region_count: u32,
        /// Guest TSC frequency in Hz.
        [16] pub tsc_hz: u64,
        /// Local APIC timer frequency in Hz at divide-by-1.
        [24] pub apic_timer_hz: u64,
        /// Guest RAM size in bytes (RAM is one range starting at physical 0).
        [32] pub mem_size: u64,
        /// Guest-physical address of the kernel-only PML4.
        [40] pub kernel_root: u64,
        /// The first program.
        [48] pub program: ProgramInfo,
        /// The control pipe (reserved).
        [96] pub control_pipe: PipeInfo,
        /// Boot-phase time stamps, written by the kernel.
        [128] pub stamps: BootStamps,
        /// The physical memory map.
        [160] pub regions: [MemoryRegion; MAX_REGIONS],
        /// [`boot_flags`]: how this VMM differs from Weft's own.
        [928] pub flags: u64,
        /// With [`boot_flags::NO_STREAM_INTERRUPT`]: the longest an idle
        /// CPU halts before it looks at the wake word again, in ns.
        [936] pub idle_poll_ns: u64,
    }
}

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
            program: ProgramInfo {
                root: 0,
                entry: 0,
                stack_top: 0,
                args_addr: 0,
                args_len: 0,
                heap_base: 0,
            },
            control_pipe: PipeInfo {
                phys: 0,
                len: 0,
                doorbell: 0,
                vector: 0,
                flags: 0,
            },
            stamps: BootStamps {
                kernel_entry: 0,
                kernel_ready: 0,
                program_entry: 0,
                reserved: 0,
            },
            regions: [MemoryRegion::EMPTY; MAX_REGIONS],
            flags: 0,
            idle_poll_ns: 0,
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

crate::wire_layout! {
    /// The per-CPU block `GS` points at in the kernel (§2.4). The monitor
    /// fills it.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct PerCpu: 64, in_place {
        /// Kernel virtual address of this block.
        [0] pub self_addr: u64,
        /// Top of this CPU's kernel stack.
        [8] pub kernel_rsp: u64,
        /// Zero (reserved for the user stack pointer on a fast-syscall path).
        [16] pub user_rsp: u64,
        /// Kernel virtual address of this CPU's hypercall mailbox (§3.2).
        [24] pub mailbox: u64,
        /// Kernel virtual address of the boot info.
        [32] pub boot_info: u64,
        /// Index of this CPU (0 is the bootstrap CPU).
        [40] pub cpu_index: u64,
        /// Kernel virtual address of this CPU's task-state segment (the
        /// kernel points its `RSP0` at the running process's kernel stack).
        [48] pub tss: u64,
        /// Kernel virtual address of the process status page (§14.6).
        [56] pub status: u64,
    }
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
        bytes[16 + 8 * 34..16 + 8 * 35].copy_from_slice(&0xFFFF_FFFF_8000_2000u64.to_le_bytes());
        let m = KernelManifest::decode_prefix(&bytes).unwrap();
        assert_eq!(m.magic, MANIFEST_MAGIC);
        assert_eq!(m.version, 7);
        assert_eq!(m.vector_count as usize, vector::TABLE_LEN);
        assert_eq!(m.vectors[0], 0xFFFF_FFFF_8000_1000);
        assert_eq!(m.vectors[34], 0xFFFF_FFFF_8000_2000);
        assert!(KernelManifest::decode_prefix(&bytes[..KernelManifest::SIZE - 1]).is_none());
    }

    #[test]
    fn program_manifests_round_trip() {
        let b = ProgramManifest::CURRENT.encode();
        assert_eq!(&b[..8], b"WEFTPROG");
        assert_eq!(
            ProgramManifest::decode_prefix(&b),
            Some(ProgramManifest::CURRENT)
        );
        assert_eq!(ProgramManifest::decode_prefix(&b[..15]), None);
    }

    #[test]
    fn vector_of_maps_last_entry_to_spurious() {
        assert_eq!(KernelManifest::vector_of(0), 0);
        assert_eq!(KernelManifest::vector_of(32), vector::TIMER);
        assert_eq!(KernelManifest::vector_of(33), vector::STREAM);
        assert_eq!(KernelManifest::vector_of(34), vector::SPURIOUS);
        assert_eq!(KernelManifest::vector_of(35), vector::TIMER);
        assert_eq!(KernelManifest::vector_of(36), vector::STREAM);
    }

    #[test]
    fn gates_take_the_apic_entries_of_the_apic_mode() {
        let mut m = KernelManifest::decode(&[0; KernelManifest::SIZE]);
        for (i, v) in m.vectors.iter_mut().enumerate() {
            *v = i as u64;
        }
        for xapic in [false, true] {
            assert_eq!(m.gates(xapic).count(), 35);
            let entry = |v: u8| m.gates(xapic).find(|g| g.0 == v).map(|g| g.1);
            let (timer, stream) = if xapic { (35, 36) } else { (32, 33) };
            assert_eq!(entry(vector::TIMER), Some(timer));
            assert_eq!(entry(vector::STREAM), Some(stream));
            assert_eq!(entry(vector::SPURIOUS), Some(34));
            assert_eq!(entry(vector::SYSCALL), Some(3));
        }
    }

    #[test]
    fn boot_info_encodes_at_documented_offsets() {
        let mut info = BootInfo::new();
        info.tsc_hz = 0x1122;
        info.program.heap_base = 0x3344;
        info.control_pipe.vector = 0x55;
        info.stamps.program_entry = 0x66;
        info.region_count = 1;
        info.regions[31] = MemoryRegion {
            base: 0x77,
            len: 0x88,
            kind: 5,
            reserved: 0,
        };
        let b = info.encode();
        let u64_at = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap());
        assert_eq!(u64_at(0), BOOT_MAGIC);
        assert_eq!(u64::from(b[8]), u64::from(crate::INTERFACE_VERSION));
        assert_eq!(u64_at(16), 0x1122);
        assert_eq!(u64_at(48 + 40), 0x3344);
        assert_eq!(b[96 + 24], 0x55);
        assert_eq!(u64_at(128 + 16), 0x66);
        assert_eq!(u64_at(160 + 31 * 24), 0x77);
        assert_eq!(u64_at(160 + 31 * 24 + 8), 0x88);
        assert_eq!(b[160 + 31 * 24 + 16], 5);
        let mut stamps = [0u8; BootStamps::SIZE];
        stamps.copy_from_slice(&b[128..160]);
        assert_eq!(BootStamps::decode(&stamps).program_entry, 0x66);
    }

    #[test]
    fn percpu_encodes_in_field_order() {
        let p = PerCpu {
            self_addr: 1,
            kernel_rsp: 2,
            user_rsp: 3,
            mailbox: 4,
            boot_info: 5,
            cpu_index: 6,
            tss: 7,
            status: 8,
        };
        let b = p.encode();
        assert_eq!(b[8], 2);
        assert_eq!(b[16], 3);
        assert_eq!(b[24], 4);
        assert_eq!(b[48], 7);
        assert_eq!(b[56], 8);
    }

    #[test]
    fn regions_never_exceed_capacity() {
        let mut info = BootInfo::new();
        info.region_count = 1000;
        assert_eq!(info.regions().len(), MAX_REGIONS);
        assert_eq!(STAMP_KERNEL_ENTRY_OFFSET, 128);
    }
}
