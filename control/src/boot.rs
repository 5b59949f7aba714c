//! The boot-info block and the kernel manifest (PROTOCOL.md §2).
//!
//! The monitor reads the [`KernelManifest`] out of the kernel ELF before booting,
//! refuses a magic or version mismatch, and builds the interrupt table and
//! `SYSCALL` target from it. It then writes one [`BootInfo`] page into guest memory
//! and passes its kernel virtual address in `rdi` at the kernel entry point.
//! [`PerCpu`] is the block `GS` points at in the kernel.

use crate::assert_layout;
use crate::codec::{Reader, Writer};
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
    /// Entry points for vectors 0..=32, [`vector::STREAM`], then
    /// [`vector::SPURIOUS`]; entry [`vector::SYSCALL`] is the syscall gate.
    pub vectors: [u64; vector::TABLE_LEN],
}
assert_layout!(
    KernelManifest,
    size = 296,
    magic = 0,
    version = 8,
    vector_count = 12,
    vectors = 16
);

impl KernelManifest {
    /// Size in bytes of the encoded manifest.
    pub const SIZE: usize = core::mem::size_of::<Self>();

    /// Decodes a manifest from the start of `bytes` (little-endian).
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let mut r = Reader::new(bytes.get(..Self::SIZE)?);
        let (magic, version, vector_count) = (r.u64(), r.u32(), r.u32());
        let mut vectors = [0u64; vector::TABLE_LEN];
        for v in vectors.iter_mut() {
            *v = r.u64();
        }
        Some(Self {
            magic,
            version,
            vector_count,
            vectors,
        })
    }

    /// The vector number served by entry `index` of `vectors`.
    pub const fn vector_of(index: usize) -> u8 {
        match index {
            0..=32 => index as u8,
            33 => vector::STREAM,
            _ => vector::SPURIOUS,
        }
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
    /// RAM the monitor hands out to processes (`SPAWN`, `MAP`, §14.4); the
    /// kernel never allocates from it.
    pub const PROCESSES: u32 = 6;
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
impl MemoryRegion {
    /// An all-zero entry.
    pub const EMPTY: Self = Self {
        base: 0,
        len: 0,
        kind: 0,
        reserved: 0,
    };
}

assert_layout!(
    MemoryRegion,
    size = 24,
    base = 0,
    len = 8,
    kind = 16,
    reserved = 20
);

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
assert_layout!(
    ProgramInfo,
    size = 48,
    root = 0,
    entry = 8,
    stack_top = 16,
    args_addr = 24,
    args_len = 32,
    heap_base = 40
);

impl ProgramInfo {
    /// Size in bytes of the encoded block.
    pub const SIZE: usize = core::mem::size_of::<Self>();

    /// The fields in order, as laid out in memory.
    fn words(&self) -> [u64; 6] {
        [
            self.root,
            self.entry,
            self.stack_top,
            self.args_addr,
            self.args_len,
            self.heap_base,
        ]
    }

    /// The block's bytes (as in the boot info, and in the mailbox after
    /// `SPAWN`, §14.4).
    pub fn encode(&self) -> [u8; Self::SIZE] {
        let mut out = [0u8; Self::SIZE];
        let mut w = Writer::new(&mut out);
        for v in self.words() {
            w.u64(v);
        }
        out
    }

    /// Decodes the block.
    pub fn decode(b: &[u8; Self::SIZE]) -> Self {
        let mut r = Reader::new(b);
        Self {
            root: r.u64(),
            entry: r.u64(),
            stack_top: r.u64(),
            args_addr: r.u64(),
            args_len: r.u64(),
            heap_base: r.u64(),
        }
    }
}

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
assert_layout!(
    PipeInfo,
    size = 32,
    phys = 0,
    len = 8,
    doorbell = 16,
    vector = 24,
    flags = 28
);

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
assert_layout!(
    BootStamps,
    size = 32,
    kernel_entry = 0,
    kernel_ready = 8,
    program_entry = 16
);

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
assert_layout!(
    BootInfo,
    size = 928,
    magic = 0,
    version = 8,
    region_count = 12,
    tsc_hz = 16,
    apic_timer_hz = 24,
    mem_size = 32,
    kernel_root = 40,
    program = 48,
    control_pipe = 96,
    stamps = 128,
    regions = 160
);

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
        }
    }

    /// Size in bytes of the encoded block.
    pub const SIZE: usize = core::mem::size_of::<Self>();

    /// The block's bytes as laid out in guest memory (§2.2).
    pub fn encode(&self) -> [u8; Self::SIZE] {
        let mut out = [0u8; Self::SIZE];
        let mut w = Writer::new(&mut out);
        w.u64(self.magic);
        w.u32(self.version);
        w.u32(self.region_count);
        for v in [
            self.tsc_hz,
            self.apic_timer_hz,
            self.mem_size,
            self.kernel_root,
        ] {
            w.u64(v);
        }
        for v in self.program.words() {
            w.u64(v);
        }
        let c = &self.control_pipe;
        for v in [c.phys, c.len, c.doorbell] {
            w.u64(v);
        }
        w.u32(c.vector);
        w.u32(c.flags);
        let s = &self.stamps;
        for v in [s.kernel_entry, s.kernel_ready, s.program_entry, s.reserved] {
            w.u64(v);
        }
        for r in &self.regions {
            w.u64(r.base);
            w.u64(r.len);
            w.u32(r.kind);
            w.u32(r.reserved);
        }
        out
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

impl BootStamps {
    /// Size in bytes of the encoded stamps.
    pub const SIZE: usize = core::mem::size_of::<Self>();

    /// Decodes stamps read back from guest memory.
    pub fn decode(bytes: &[u8; Self::SIZE]) -> Self {
        let mut r = Reader::new(bytes);
        Self {
            kernel_entry: r.u64(),
            kernel_ready: r.u64(),
            program_entry: r.u64(),
            reserved: r.u64(),
        }
    }
}

/// The per-CPU block `GS` points at in the kernel (§2.4). The monitor fills it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PerCpu {
    /// Kernel virtual address of this block.
    pub self_addr: u64,
    /// Top of this CPU's kernel stack.
    pub kernel_rsp: u64,
    /// Zero (reserved for the user stack pointer on a fast-syscall path).
    pub user_rsp: u64,
    /// Kernel virtual address of this CPU's hypercall mailbox (§3.2).
    pub mailbox: u64,
    /// Kernel virtual address of the boot info.
    pub boot_info: u64,
    /// Index of this CPU (0 is the bootstrap CPU).
    pub cpu_index: u64,
    /// Kernel virtual address of this CPU's task-state segment (the kernel
    /// points its `RSP0` at the running process's kernel stack).
    pub tss: u64,
    /// Zero.
    pub reserved: u64,
}
assert_layout!(
    PerCpu,
    size = 64,
    self_addr = 0,
    kernel_rsp = 8,
    user_rsp = 16,
    mailbox = 24,
    boot_info = 32,
    cpu_index = 40,
    tss = 48,
    reserved = 56
);

impl PerCpu {
    /// Size in bytes of the encoded block.
    pub const SIZE: usize = core::mem::size_of::<Self>();

    /// The block's bytes as laid out in guest memory (§2.4).
    pub fn encode(&self) -> [u8; Self::SIZE] {
        let mut out = [0u8; Self::SIZE];
        let mut w = Writer::new(&mut out);
        for v in [
            self.self_addr,
            self.kernel_rsp,
            self.user_rsp,
            self.mailbox,
            self.boot_info,
            self.cpu_index,
            self.tss,
            self.reserved,
        ] {
            w.u64(v);
        }
        out
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
        bytes[16 + 8 * 34..].copy_from_slice(&0xFFFF_FFFF_8000_2000u64.to_le_bytes());
        let m = KernelManifest::decode(&bytes).unwrap();
        assert_eq!(m.magic, MANIFEST_MAGIC);
        assert_eq!(m.version, 7);
        assert_eq!(m.vector_count as usize, vector::TABLE_LEN);
        assert_eq!(m.vectors[0], 0xFFFF_FFFF_8000_1000);
        assert_eq!(m.vectors[34], 0xFFFF_FFFF_8000_2000);
        assert!(KernelManifest::decode(&bytes[..KernelManifest::SIZE - 1]).is_none());
    }

    #[test]
    fn vector_of_maps_last_entry_to_spurious() {
        assert_eq!(KernelManifest::vector_of(0), 0);
        assert_eq!(KernelManifest::vector_of(32), vector::TIMER);
        assert_eq!(KernelManifest::vector_of(33), vector::STREAM);
        assert_eq!(KernelManifest::vector_of(34), vector::SPURIOUS);
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
            reserved: 0,
        };
        let b = p.encode();
        assert_eq!(b[8], 2);
        assert_eq!(b[16], 3);
        assert_eq!(b[24], 4);
        assert_eq!(b[48], 7);
    }

    #[test]
    fn regions_never_exceed_capacity() {
        let mut info = BootInfo::new();
        info.region_count = 1000;
        assert_eq!(info.regions().len(), MAX_REGIONS);
        assert_eq!(STAMP_KERNEL_ENTRY_OFFSET, 128);
    }
}
