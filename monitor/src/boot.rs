//! Builds the whole boot state in guest memory before the first guest
//! instruction (PROTOCOL.md §1, §2): kernel and program images and their
//! address spaces ([`crate::address_space`]), GDT, TSS, IDT, per-CPU block,
//! hypercall mailbox, arguments and boot info.
//!
//! Ring-0 code is emulated on the machines Weft targets, so everything the
//! kernel would otherwise compute at boot is computed here, natively.

use crate::address_space::{
    PIPE_TABLES, Payload, ProgramImage, SpaceError, kernel_space, kva, pipe_tables, program_space,
    write,
};
use crate::descriptors::{self, GDT_LEN, GateDpl, IDT_LEN, TSS_LEN};
use crate::guest_memory::{BootFrames, MemoryError, Ram};
use thiserror::Error;
use weft_control::INTERFACE_VERSION;
use weft_control::args;
use weft_control::boot::{
    BootInfo, KernelManifest, MANIFEST_MAGIC, MANIFEST_SECTION, PROGRAM_MAGIC, PROGRAM_SECTION,
    PerCpu, ProgramManifest, boot_flags, region_kind,
};
use weft_control::layout::*;
use weft_image::elf::{self, ElfError, LoadPlan};

/// Why the boot state could not be built.
#[derive(Debug, Error)]
pub enum BootError {
    /// The kernel ELF is unusable.
    #[error("kernel image: {0}")]
    KernelElf(ElfError),
    /// The kernel has no valid manifest.
    #[error("kernel image: {0}")]
    Manifest(&'static str),
    /// The kernel was built for another interface version.
    #[error(
        "kernel image speaks interface version {found}, this monitor speaks {INTERFACE_VERSION}"
    )]
    Version { found: u32 },
    /// A manifest entry point lies outside the kernel's executable segments.
    #[error("kernel manifest: entry point {0:#x} is outside the kernel's code")]
    BadEntry(u64),
    /// The program ELF is unusable.
    #[error("{0}")]
    ProgramElf(ElfError),
    /// The program has no valid manifest: not built with `weft-user`.
    #[error("not a Weft program: {0} (build it with weft-user)")]
    ProgramManifest(&'static str),
    /// The program was built for another interface version.
    #[error(
        "the program was built for interface version {found}, this weft speaks {INTERFACE_VERSION} (rebuild it against this weft-user)"
    )]
    ProgramVersion { found: u32 },
    /// The arguments and environment do not make a block (too large, or
    /// a malformed variable).
    #[error("the program's arguments block: {0}")]
    Args(args::ArgsError),
    /// Guest memory is too small or could not be laid out.
    #[error(transparent)]
    Memory(#[from] MemoryError),
    /// An address space could not be built.
    #[error(transparent)]
    Space(#[from] SpaceError),
    /// A write to guest memory failed (a bug: addresses come from the allocator).
    #[error("cannot write boot structures into guest memory at {0:#x}")]
    Write(u64),
}

impl BootError {
    /// True if the error is the program's fault (the user gave a bad file).
    pub fn is_program_error(&self) -> bool {
        match self {
            BootError::ProgramElf(_)
            | BootError::ProgramManifest(_)
            | BootError::ProgramVersion { .. }
            | BootError::Args(_) => true,
            BootError::Space(e) => e.is_program_error(),
            _ => false,
        }
    }
}

/// What to boot.
pub struct BootSpec<'a> {
    /// Guest RAM size in bytes (a multiple of 2 MiB).
    pub mem_size: u64,
    /// The kernel ELF.
    pub kernel: &'a [u8],
    /// The program ELF.
    pub program: &'a [u8],
    /// The program's arguments, its name first.
    pub args: &'a [Vec<u8>],
    /// The program's environment variables, `(KEY, VALUE)`.
    pub env: &'a [(Vec<u8>, Vec<u8>)],
    /// The payload block (§4.1), if any.
    pub payload: Option<Payload<'a>>,
    /// Guest TSC frequency.
    pub tsc_hz: u64,
    /// Local APIC timer frequency.
    pub apic_timer_hz: u64,
    /// How the VMM differs from Weft's own (§2.2, §22).
    pub vmm: VmmShape,
}

/// What the boot state must allow for in the VMM that runs it: nothing
/// under Weft's own monitor (the default); QEMU's firmware, APIC mode and
/// missing stream interrupt under QEMU (PROTOCOL.md §22).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VmmShape {
    /// The kernel is entered by Weft's firmware (QEMU): its page tables
    /// identity-map the firmware's 2 MiB page.
    pub firmware: bool,
    /// The local APIC is in xAPIC mode (QEMU's TCG has no x2APIC).
    pub xapic: bool,
    /// No stream interrupt comes: idle halts last at most this long (ns).
    pub idle_poll_ns: Option<u64>,
}

/// Where things are, for setting up the vCPU and reading results back.
#[derive(Clone, Copy, Debug)]
pub struct BootState {
    /// Kernel entry point.
    pub entry: u64,
    /// Kernel virtual address of the boot info (passed in `rdi`).
    pub boot_info: u64,
    /// Guest-physical address of the boot info.
    pub boot_info_phys: u64,
    /// Guest-physical address of the kernel PML4.
    pub kernel_root: u64,
    /// Kernel virtual addresses of the GDT, IDT, TSS and per-CPU block.
    pub gdt: u64,
    pub idt: u64,
    pub tss: u64,
    pub percpu: u64,
    /// Guest-physical address of the hypercall mailbox.
    pub mailbox_phys: u64,
    /// Guest-physical address of the process status page (§14.6).
    pub status_phys: u64,
    /// Guest-physical address of the system page (§4.2), filled once the
    /// vCPU exists.
    pub system_phys: u64,
    /// Guest-physical `[start, end)` of the memory left for spawned
    /// processes (§14.4).
    pub process_pool: (u64, u64),
    /// The first program's PML4 and the bytes of memory built for it.
    pub program_root: u64,
    pub program_bytes: u64,
}

/// RAM the kernel keeps for itself (its heap and the kernel stacks of
/// process slots); the rest after boot is the monitor's to give to
/// processes.
pub const KERNEL_POOL: u64 = 1 << 20;

/// Parses the kernel ELF and its manifest.
pub fn kernel_plan(kernel: &[u8]) -> Result<(LoadPlan, KernelManifest), BootError> {
    let plan =
        elf::parse(kernel, KERNEL_IMAGE_BASE..KERNEL_IMAGE_TOP).map_err(BootError::KernelElf)?;
    let bytes = elf::section(kernel, MANIFEST_SECTION)
        .ok_or(BootError::Manifest("no .weft_manifest section"))?;
    let m = KernelManifest::decode_prefix(bytes).ok_or(BootError::Manifest(
        "the .weft_manifest section is truncated",
    ))?;
    if m.magic != MANIFEST_MAGIC {
        return Err(BootError::Manifest(
            "the .weft_manifest section has a bad magic number",
        ));
    }
    if m.version != INTERFACE_VERSION {
        return Err(BootError::Version { found: m.version });
    }
    if m.vector_count as usize != vector::TABLE_LEN {
        return Err(BootError::Manifest(
            "the manifest's vector table has the wrong length",
        ));
    }
    let in_code = |a: u64| {
        plan.segments()
            .iter()
            .any(|s| s.flags.execute && a >= s.vaddr && a < s.vaddr + s.mem_size)
    };
    for a in m.vectors.iter().copied().chain([plan.entry]) {
        if !in_code(a) {
            return Err(BootError::BadEntry(a));
        }
    }
    Ok((plan, m))
}

/// Parses the program ELF and checks its manifest (§2.1): the program must
/// have been built for this interface version.
pub fn program_plan(program: &[u8]) -> Result<LoadPlan, BootError> {
    let plan = elf::parse(program, USER_BASE..USER_HEAP_BASE).map_err(BootError::ProgramElf)?;
    let bytes = elf::section(program, PROGRAM_SECTION)
        .ok_or(BootError::ProgramManifest("no .weft_program section"))?;
    let m = ProgramManifest::decode_prefix(bytes).ok_or(BootError::ProgramManifest(
        "the .weft_program section is truncated or has reserved bits set",
    ))?;
    if m.magic != PROGRAM_MAGIC {
        return Err(BootError::ProgramManifest(
            "the .weft_program section has a bad magic number",
        ));
    }
    if m.version != INTERFACE_VERSION {
        return Err(BootError::ProgramVersion { found: m.version });
    }
    Ok(plan)
}

/// Builds everything in `ram`.
pub fn build(ram: &Ram, spec: &BootSpec<'_>) -> Result<BootState, BootError> {
    let (kplan, manifest) = kernel_plan(spec.kernel)?;
    let pplan = program_plan(spec.program)?;
    let mut args_block = vec![0u8; USER_ARGS_MAX as usize];
    let args_len = args::encode_with_env(spec.args, spec.env, &mut args_block)
        .map_err(BootError::Args)? as u64;

    let mut frames = BootFrames::new(spec.mem_size);
    // Boot structures: boot info, CPU page (GDT, TSS, per-CPU), IDT, mailbox,
    // process status page.
    let boot_info_phys = frames.alloc(1, region_kind::BOOT, "boot structures")?;
    let cpu_phys = frames.alloc(1, region_kind::BOOT, "boot structures")?;
    let idt_phys = frames.alloc(1, region_kind::BOOT, "boot structures")?;
    let mailbox_phys = frames.alloc(1, region_kind::BOOT, "boot structures")?;
    let status_phys = frames.alloc(1, region_kind::BOOT, "boot structures")?;
    let (gdt_phys, tss_phys, percpu_phys) = (cpu_phys, cpu_phys + 0x80, cpu_phys + 0x100);
    const _: () = assert!(GDT_LEN <= 0x80 && TSS_LEN <= 0x80 && PerCpu::SIZE <= 0x100);

    let gib = spec.mem_size.div_ceil(1 << 30);
    let image_pages = |p: &LoadPlan| {
        let (lo, hi) = p.page_span();
        (hi - lo) / PAGE_SIZE
    };
    let payload_pages = (8 + spec.payload.map_or(0, |p| p.bytes.len()) as u64).div_ceil(PAGE_SIZE);
    // The premapped heap takes no last-level tables: it is mapped with
    // 2 MiB pages (`Space::map_fresh_large`).
    frames.reserve_page_tables(
        80 + PIPE_TABLES + gib + (image_pages(&kplan) + image_pages(&pplan) + payload_pages) / 256,
    )?;

    let kernel_root = kernel_space(
        ram,
        &mut frames,
        spec.mem_size,
        spec.kernel,
        &kplan,
        spec.vmm,
    )?;
    let heap_bytes = heap_premapped(spec.mem_size);
    let tables = pipe_tables(ram, &mut frames, 0)?;
    let (program_root, system_phys) = program_space(
        ram,
        &mut frames,
        kernel_root,
        &ProgramImage {
            elf: spec.program,
            plan: &pplan,
            args: &args_block[..args_len as usize],
            payload: spec.payload,
            heap_bytes,
            pipe_tables: &tables,
            status_page: status_phys,
        },
    )?;
    cpu_tables(
        ram,
        &manifest,
        spec.vmm.xapic,
        CpuPage {
            gdt: gdt_phys,
            tss: tss_phys,
            percpu: percpu_phys,
            idt: idt_phys,
        },
        BootPages {
            mailbox: mailbox_phys,
            boot_info: boot_info_phys,
            status: status_phys,
        },
    )?;

    // The boot info, last: it carries the final memory map.
    let mut info = BootInfo::new();
    info.tsc_hz = spec.tsc_hz;
    info.apic_timer_hz = spec.apic_timer_hz;
    info.mem_size = spec.mem_size;
    info.kernel_root = kernel_root;
    if spec.vmm.xapic {
        info.flags |= boot_flags::XAPIC;
    }
    if let Some(ns) = spec.vmm.idle_poll_ns {
        info.flags |= boot_flags::NO_STREAM_INTERRUPT;
        info.idle_poll_ns = ns;
    }
    info.program.root = program_root;
    info.program.entry = pplan.entry;
    info.program.stack_top = USER_STACK_TOP;
    info.program.args_addr = USER_ARGS_ADDR;
    info.program.args_len = args_len;
    info.program.heap_base = USER_HEAP_BASE + heap_bytes;
    let (map, process_pool) = frames.memory_map(KERNEL_POOL)?;
    info.region_count = map.len() as u32;
    info.regions[..map.len()].copy_from_slice(&map);
    write(ram, boot_info_phys, &info.encode())?;

    Ok(BootState {
        entry: kplan.entry,
        boot_info: kva(boot_info_phys),
        boot_info_phys,
        kernel_root,
        gdt: kva(gdt_phys),
        idt: kva(idt_phys),
        tss: kva(tss_phys),
        percpu: kva(percpu_phys),
        mailbox_phys,
        status_phys,
        system_phys,
        process_pool,
        program_root,
        program_bytes: map
            .iter()
            .filter(|r| r.kind == region_kind::PROGRAM)
            .map(|r| r.len)
            .sum(),
    })
}

/// Guest-physical addresses of the structures in the CPU page and the IDT.
struct CpuPage {
    gdt: u64,
    tss: u64,
    percpu: u64,
    idt: u64,
}

/// Guest-physical addresses of the pages the per-CPU block points at.
struct BootPages {
    mailbox: u64,
    boot_info: u64,
    status: u64,
}

/// GDT, TSS, IDT (from the manifest's vectors) and the per-CPU block (§2.4,
/// §2.5).
fn cpu_tables(
    ram: &Ram,
    manifest: &KernelManifest,
    xapic: bool,
    at: CpuPage,
    pages: BootPages,
) -> Result<(), BootError> {
    write(ram, at.gdt, &descriptors::gdt(kva(at.tss)))?;
    write(
        ram,
        at.tss,
        &descriptors::tss(KERNEL_STACK_TOP, FAULT_STACK_TOP),
    )?;
    let mut idt = vec![0u8; IDT_LEN];
    for (v, handler) in manifest.gates(xapic) {
        let v = usize::from(v);
        let ist = if v == usize::from(vector::DOUBLE_FAULT) {
            1
        } else {
            0
        };
        let dpl = if v == usize::from(vector::SYSCALL) {
            GateDpl::User
        } else {
            GateDpl::Kernel
        };
        idt[v * 16..v * 16 + 16].copy_from_slice(&descriptors::idt_gate(handler, ist, dpl));
    }
    write(ram, at.idt, &idt)?;
    let percpu = PerCpu {
        self_addr: kva(at.percpu),
        kernel_rsp: KERNEL_STACK_TOP,
        user_rsp: 0,
        mailbox: kva(pages.mailbox),
        boot_info: kva(pages.boot_info),
        cpu_index: 0,
        tss: kva(at.tss),
        status: kva(pages.status),
    };
    Ok(write(ram, at.percpu, &percpu.encode())?)
}
