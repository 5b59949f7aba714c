//! Builds the whole boot state in guest memory before the first guest
//! instruction (PROTOCOL.md §1, §2): kernel and program images, page tables,
//! GDT, TSS, IDT, per-CPU block, hypercall mailbox, arguments and boot info.
//!
//! Ring-0 code is emulated on the machines Weft targets, so everything the
//! kernel would otherwise compute at boot is computed here, natively.

use crate::descriptors::{self, GDT_LEN, GateDpl, IDT_LEN, TSS_LEN};
use crate::guest_memory::{BootFrames, MemoryError, PhysRam, Ram};
use crate::loader::{Frames, LoadError, Owner, Space};
use thiserror::Error;
use vm_memory::{Bytes, GuestAddress};
use weft_control::INTERFACE_VERSION;
use weft_control::args;
use weft_control::boot::{
    BootInfo, KernelManifest, MANIFEST_MAGIC, MANIFEST_SECTION, PerCpu, region_kind,
};
use weft_control::layout::*;
use weft_control::streams::{
    DOORBELL_GPA, PIPE_REGION_GPA, PIPE_REGION_SIZE, USER_DOORBELLS_ADDR, USER_PIPES_ADDR,
    region_gpa,
};
use weft_image::elf::{self, ElfError, LoadPlan};
use weft_image::paging::{MapError, PageFlags, leaf_table, link_table, map_2m};

/// Size of a large page of the direct map.
const LARGE_PAGE: u64 = 2 << 20;

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
    /// The arguments do not fit.
    #[error("the program's arguments exceed {USER_ARGS_MAX} bytes")]
    ArgsTooLarge,
    /// The payload (a Wasm module) does not fit its block.
    #[error("the module is {0} bytes; at most {max} fit", max = USER_PAYLOAD_MAX - 8)]
    PayloadTooLarge(usize),
    /// Guest memory is too small or could not be laid out.
    #[error(transparent)]
    Memory(#[from] MemoryError),
    /// An image could not be loaded.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// A page-table entry could not be written.
    #[error("cannot build the page tables: {0}")]
    Map(MapError),
    /// A write to guest memory failed (a bug: addresses come from the allocator).
    #[error("cannot write boot structures into guest memory at {0:#x}")]
    Write(u64),
}

impl BootError {
    /// True if the error is the program's fault (the user gave a bad file).
    pub fn is_program_error(&self) -> bool {
        matches!(
            self,
            BootError::ProgramElf(_) | BootError::ArgsTooLarge | BootError::PayloadTooLarge(_)
        )
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
    /// Bytes for the payload block (§4.1), if any.
    pub payload: Option<&'a [u8]>,
    /// Guest TSC frequency.
    pub tsc_hz: u64,
    /// Local APIC timer frequency.
    pub apic_timer_hz: u64,
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

/// What goes into a program's address space (§1.3).
pub struct ProgramImage<'a> {
    /// The ELF and its validated plan.
    pub elf: &'a [u8],
    pub plan: &'a LoadPlan,
    /// The encoded arguments block (§4).
    pub args: &'a [u8],
    /// The payload block's bytes (§4.1), if any.
    pub payload: Option<&'a [u8]>,
    /// Anonymous memory mapped before entry, a multiple of 2 MiB.
    pub heap_bytes: u64,
    /// The last-level tables that map its pipe region ([`pipe_tables`]).
    pub pipe_tables: &'a [u64],
}

/// Last-level tables that map one pipe region.
const PIPE_TABLES: u64 = PIPE_REGION_SIZE / LARGE_PAGE;

/// Builds the last-level tables that map pipe region `region` read/write
/// for ring 3, one per 2 MiB, each written in one go. They are the same in
/// every address space that uses the region, so they are built once and
/// linked in (§14.4): 16384 entries written one by one took ~0.6 ms.
pub fn pipe_tables<F: Frames>(
    ram: &Ram,
    frames: &mut F,
    region: u64,
) -> Result<Vec<u64>, BootError> {
    let flags = PageFlags {
        writable: true,
        user: true,
        executable: false,
        global: false,
    };
    (0..PIPE_TABLES)
        .map(|k| {
            let table = frames.alloc_zeroed().ok_or_else(no_page_tables)?;
            let entries =
                leaf_table(region_gpa(region) + k * LARGE_PAGE, flags).map_err(BootError::Map)?;
            let bytes: Vec<u8> = entries.iter().flat_map(|e| e.to_le_bytes()).collect();
            write(ram, table, &bytes)?;
            Ok(table)
        })
        .collect()
}

/// The direct-map (kernel) virtual address of `phys`.
pub const fn kva(phys: u64) -> u64 {
    DIRECT_MAP_BASE + phys
}

/// Parses the kernel ELF and its manifest.
pub fn kernel_plan(kernel: &[u8]) -> Result<(LoadPlan, KernelManifest), BootError> {
    let plan =
        elf::parse(kernel, KERNEL_IMAGE_BASE..KERNEL_IMAGE_TOP).map_err(BootError::KernelElf)?;
    let bytes = elf::section(kernel, MANIFEST_SECTION)
        .ok_or(BootError::Manifest("no .weft_manifest section"))?;
    let m = KernelManifest::decode(bytes).ok_or(BootError::Manifest(
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

/// Parses the program ELF.
pub fn program_plan(program: &[u8]) -> Result<LoadPlan, BootError> {
    elf::parse(program, USER_BASE..USER_HEAP_BASE).map_err(BootError::ProgramElf)
}

fn write(ram: &Ram, phys: u64, bytes: &[u8]) -> Result<(), BootError> {
    ram.write_slice(bytes, GuestAddress(phys))
        .map_err(|_| BootError::Write(phys))
}

/// Builds everything in `ram`.
pub fn build(ram: &Ram, spec: &BootSpec<'_>) -> Result<BootState, BootError> {
    let (kplan, manifest) = kernel_plan(spec.kernel)?;
    let pplan = program_plan(spec.program)?;
    let mut args_block = vec![0u8; USER_ARGS_MAX as usize];
    let args_len =
        args::encode(spec.args, &mut args_block).map_err(|_| BootError::ArgsTooLarge)? as u64;

    let mut frames = BootFrames::new(spec.mem_size);
    // Boot structures: boot info, CPU page (GDT, TSS, per-CPU), IDT, mailbox.
    let boot_info_phys = frames.alloc(1, region_kind::BOOT, "boot structures")?;
    let cpu_phys = frames.alloc(1, region_kind::BOOT, "boot structures")?;
    let idt_phys = frames.alloc(1, region_kind::BOOT, "boot structures")?;
    let mailbox_phys = frames.alloc(1, region_kind::BOOT, "boot structures")?;
    let (gdt_phys, tss_phys, percpu_phys) = (cpu_phys, cpu_phys + 0x80, cpu_phys + 0x100);
    const _: () = assert!(GDT_LEN <= 0x80 && TSS_LEN <= 0x80 && PerCpu::SIZE <= 0x100);

    let gib = spec.mem_size.div_ceil(1 << 30);
    let image_pages = |p: &LoadPlan| {
        let (lo, hi) = p.page_span();
        (hi - lo) / PAGE_SIZE
    };
    let payload_pages = (8 + spec.payload.map_or(0, <[u8]>::len) as u64).div_ceil(PAGE_SIZE);
    // One page table per 2 MiB of premapped heap.
    let heap_tables = heap_premapped(spec.mem_size) >> 21;
    frames.reserve_page_tables(
        80 + PIPE_TABLES
            + gib
            + heap_tables
            + (image_pages(&kplan) + image_pages(&pplan) + payload_pages) / 256,
    )?;

    let kernel_root = kernel_space(ram, &mut frames, spec, &kplan)?;
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
        },
    )?;
    cpu_tables(
        ram,
        &manifest,
        CpuPage {
            gdt: gdt_phys,
            tss: tss_phys,
            percpu: percpu_phys,
            idt: idt_phys,
        },
        mailbox_phys,
        boot_info_phys,
    )?;

    // The boot info, last: it carries the final memory map.
    let mut info = BootInfo::new();
    info.tsc_hz = spec.tsc_hz;
    info.apic_timer_hz = spec.apic_timer_hz;
    info.mem_size = spec.mem_size;
    info.kernel_root = kernel_root;
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

fn no_page_tables() -> BootError {
    BootError::Memory(MemoryError::TooSmall {
        needed: PAGE_SIZE,
        what: "page tables",
    })
}

/// The kernel half (§1.2): direct map, kernel image, stacks. Returns the
/// kernel PML4.
fn kernel_space(
    ram: &Ram,
    frames: &mut BootFrames,
    spec: &BootSpec<'_>,
    plan: &LoadPlan,
) -> Result<u64, BootError> {
    let root =
        weft_image::paging::FrameAllocator::alloc_zeroed(frames).ok_or_else(no_page_tables)?;
    let direct = PageFlags {
        writable: true,
        user: false,
        executable: false,
        global: true,
    };
    let regions = weft_control::streams::REGIONS * PIPE_REGION_SIZE;
    for (start, len) in [(0, spec.mem_size), (PIPE_REGION_GPA, regions)] {
        for phys in (start..start + len).step_by(LARGE_PAGE as usize) {
            map_2m(&mut PhysRam(ram), frames, root, kva(phys), phys, direct)
                .map_err(BootError::Map)?;
        }
    }
    let mut space = Space { ram, frames, root };
    space.load(spec.kernel, plan, Owner::Kernel, region_kind::KERNEL)?;
    for (top, size) in [
        (KERNEL_STACK_TOP, KERNEL_STACK_SIZE),
        (FAULT_STACK_TOP, FAULT_STACK_SIZE),
    ] {
        space.map_anonymous(
            top - size,
            size / PAGE_SIZE,
            direct,
            region_kind::KERNEL,
            "the kernel stacks",
        )?;
    }
    Ok(root)
}

/// A program's address space (§1.3): a new PML4 sharing the kernel half,
/// the image, stack, initial heap, the arguments block, the system page
/// (left for the caller to fill), the payload block and its pipe region.
/// Returns the PML4 and the system page.
pub fn program_space<F: Frames>(
    ram: &Ram,
    frames: &mut F,
    kernel_root: u64,
    image: &ProgramImage<'_>,
) -> Result<(u64, u64), BootError> {
    let root =
        weft_image::paging::FrameAllocator::alloc_zeroed(frames).ok_or_else(no_page_tables)?;
    for i in 256..512u64 {
        let e = ram
            .read_obj::<u64>(GuestAddress(kernel_root + i * 8))
            .map_err(|_| BootError::Write(kernel_root))?;
        ram.write_obj(e, GuestAddress(root + i * 8))
            .map_err(|_| BootError::Write(root))?;
    }
    let mut space = Space { ram, frames, root };
    space.load(image.elf, image.plan, Owner::Program, region_kind::PROGRAM)?;
    let rw = PageFlags {
        writable: true,
        user: true,
        executable: false,
        global: false,
    };
    let kind = region_kind::PROGRAM;
    space.map_fresh(
        USER_STACK_TOP - USER_STACK_SIZE,
        USER_STACK_SIZE / PAGE_SIZE,
        rw,
        kind,
        "the program stack",
    )?;
    space.map_fresh(
        USER_HEAP_BASE,
        image.heap_bytes / PAGE_SIZE,
        rw,
        kind,
        "the program heap",
    )?;
    let ro = PageFlags {
        writable: false,
        ..rw
    };
    let pages = (image.args.len() as u64).div_ceil(PAGE_SIZE).max(1);
    let args_phys =
        space.map_anonymous(USER_ARGS_ADDR, pages, ro, kind, "the program arguments")?;
    write(ram, args_phys, image.args)?;
    // The system page, filled once the vCPU exists (§4.2).
    let system_phys = space.map_anonymous(USER_SYSTEM_ADDR, 1, ro, kind, "the system page")?;
    // Always mapped, so a program can tell "no payload" (length 0).
    {
        let payload = image.payload.unwrap_or(&[]);
        let len = 8 + payload.len() as u64;
        if len > USER_PAYLOAD_MAX {
            return Err(BootError::PayloadTooLarge(payload.len()));
        }
        let phys = space.map_anonymous(
            USER_PAYLOAD_ADDR,
            len.div_ceil(PAGE_SIZE),
            ro,
            kind,
            "the payload",
        )?;
        write(ram, phys, &(payload.len() as u64).to_le_bytes())?;
        write(ram, phys + 8, payload)?;
    }
    // The pipe region and the doorbell page (§8).
    for (k, table) in image.pipe_tables.iter().enumerate() {
        let vaddr = USER_PIPES_ADDR + k as u64 * LARGE_PAGE;
        link_table(&mut PhysRam(ram), space.frames, root, vaddr, *table).map_err(BootError::Map)?;
    }
    space.map_range(USER_DOORBELLS_ADDR, DOORBELL_GPA, 1, rw)?;
    Ok((root, system_phys))
}

/// Guest-physical addresses of the structures in the CPU page and the IDT.
struct CpuPage {
    gdt: u64,
    tss: u64,
    percpu: u64,
    idt: u64,
}

/// GDT, TSS, IDT (from the manifest's vectors) and the per-CPU block (§2.4,
/// §2.5).
fn cpu_tables(
    ram: &Ram,
    manifest: &KernelManifest,
    at: CpuPage,
    mailbox: u64,
    boot_info: u64,
) -> Result<(), BootError> {
    write(ram, at.gdt, &descriptors::gdt(kva(at.tss)))?;
    write(
        ram,
        at.tss,
        &descriptors::tss(KERNEL_STACK_TOP, FAULT_STACK_TOP),
    )?;
    let mut idt = vec![0u8; IDT_LEN];
    for (i, handler) in manifest.vectors.iter().enumerate() {
        let v = usize::from(KernelManifest::vector_of(i));
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
        idt[v * 16..v * 16 + 16].copy_from_slice(&descriptors::idt_gate(*handler, ist, dpl));
    }
    write(ram, at.idt, &idt)?;
    let percpu = PerCpu {
        self_addr: kva(at.percpu),
        kernel_rsp: KERNEL_STACK_TOP,
        user_rsp: 0,
        mailbox: kva(mailbox),
        boot_info: kva(boot_info),
        cpu_index: 0,
        tss: kva(at.tss),
        reserved: 0,
    };
    write(ram, at.percpu, &percpu.encode())
}
