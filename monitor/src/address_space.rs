//! Address spaces (PROTOCOL.md §1.2, §1.3): the kernel half every space
//! shares (the direct map of guest RAM and the pipe regions, the kernel
//! image, its stacks), each program's half (image, stack, heap, arguments,
//! system page, status page, payload, its pipe region and the doorbell
//! page), and the
//! pipe regions' last-level tables, built once and linked into every space
//! that maps the region.
//!
//! Page tables are written into guest memory natively, before the guest
//! runs or while the caller waits (ring 0 is emulated here). Frames come
//! from a [`Frames`] allocator: the boot allocator at boot, the process
//! pool for spawned programs. Invariant: every program's PML4 entries
//! 256..512 are copies of the kernel's, so the kernel half is one set of
//! tables shared by every space.

use crate::boot::VmmShape;
use crate::guest_memory::{BootFrames, MemoryError, PhysRam, Ram};
use crate::loader::{Frames, LoadError, Owner, Space};
use thiserror::Error;
use vm_memory::{Bytes, GuestAddress};
use weft_control::boot::region_kind;
use weft_control::layout::*;
use weft_control::streams::{
    DOORBELL_GPA, PARK_GPA, PIPE_REGION_GPA, PIPE_REGION_SIZE, USER_DOORBELLS_ADDR, USER_PARK_ADDR,
    USER_PIPES_ADDR, region_gpa,
};
use weft_image::elf::LoadPlan;
use weft_image::paging::{MapError, PageFlags, leaf_table, link_table, map_2m};

/// Size of a large page of the direct map.
pub const LARGE_PAGE: u64 = 2 << 20;

/// Why an address space could not be built.
#[derive(Debug, Error)]
pub enum SpaceError {
    /// The payload (a Wasm module) does not fit its block.
    #[error("the module is {0} bytes; at most {max} fit", max = USER_PAYLOAD_MAX - 8)]
    PayloadTooLarge(usize),
    /// Guest memory is too small, or the frames ran out.
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

impl SpaceError {
    /// True if the error is the program's fault (the user gave a bad file).
    pub fn is_program_error(&self) -> bool {
        matches!(self, SpaceError::PayloadTooLarge(_))
    }
}

/// Writes `bytes` at guest-physical `phys`.
pub fn write(ram: &Ram, phys: u64, bytes: &[u8]) -> Result<(), SpaceError> {
    ram.write_slice(bytes, GuestAddress(phys))
        .map_err(|_| SpaceError::Write(phys))
}

/// A payload block's bytes (§4.1) and whether the program may run them
/// (the ahead-of-time runtime's compiled module, §13.8); never writable.
#[derive(Clone, Copy, Debug)]
pub struct Payload<'a> {
    pub bytes: &'a [u8],
    pub executable: bool,
}

/// What goes into a program's address space (§1.3).
pub struct ProgramImage<'a> {
    /// The ELF and its validated plan.
    pub elf: &'a [u8],
    pub plan: &'a LoadPlan,
    /// The encoded arguments block (§4).
    pub args: &'a [u8],
    /// The payload block (§4.1), if any.
    pub payload: Option<Payload<'a>>,
    /// Anonymous memory mapped before entry, a multiple of 2 MiB.
    pub heap_bytes: u64,
    /// The last-level tables that map its pipe region ([`pipe_tables`]).
    pub pipe_tables: &'a [u64],
    /// Guest-physical address of the process status page (§14.6), which
    /// every program sees read-only.
    pub status_page: u64,
}

/// Last-level tables that map one pipe region.
pub const PIPE_TABLES: u64 = PIPE_REGION_SIZE / LARGE_PAGE;

/// Builds the last-level tables that map pipe region `region` read/write
/// for ring 3, one per 2 MiB, each written in one go. They are the same in
/// every address space that uses the region, so they are built once and
/// linked in (§14.4): 16384 entries written one by one took ~0.6 ms.
pub fn pipe_tables<F: Frames>(
    ram: &Ram,
    frames: &mut F,
    region: u64,
) -> Result<Vec<u64>, SpaceError> {
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
                leaf_table(region_gpa(region) + k * LARGE_PAGE, flags).map_err(SpaceError::Map)?;
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

fn no_page_tables() -> SpaceError {
    SpaceError::Memory(MemoryError::TooSmall {
        needed: PAGE_SIZE,
        what: "page tables",
    })
}

/// The kernel half (§1.2): direct map, kernel image, stacks. Returns the
/// kernel PML4.
pub fn kernel_space(
    ram: &Ram,
    frames: &mut BootFrames,
    mem_size: u64,
    kernel: &[u8],
    plan: &LoadPlan,
    vmm: VmmShape,
) -> Result<u64, SpaceError> {
    let root =
        weft_image::paging::FrameAllocator::alloc_zeroed(frames).ok_or_else(no_page_tables)?;
    let direct = PageFlags {
        writable: true,
        user: false,
        executable: false,
        global: true,
    };
    let regions = weft_control::streams::REGIONS * PIPE_REGION_SIZE;
    // Under QEMU's TCG the APIC's page joins the direct map (§1.2).
    let apic = if vmm.xapic { LARGE_PAGE } else { 0 };
    for (start, len) in [
        (0, mem_size),
        (PIPE_REGION_GPA, regions),
        (XAPIC_PHYS, apic),
    ] {
        for phys in (start..start + len).step_by(LARGE_PAGE as usize) {
            map_2m(&mut PhysRam(ram), frames, root, kva(phys), phys, direct)
                .map_err(SpaceError::Map)?;
        }
    }
    if vmm.firmware {
        // The firmware turns paging on inside its ROM (§22).
        let rom = PageFlags {
            writable: false,
            user: false,
            executable: true,
            global: false,
        };
        let page = weft_control::firmware::IDENTITY_PAGE;
        map_2m(&mut PhysRam(ram), frames, root, page, page, rom).map_err(SpaceError::Map)?;
    }
    let mut space = Space { ram, frames, root };
    space.load(kernel, plan, Owner::Kernel, region_kind::KERNEL)?;
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
/// (left for the caller to fill), the status page, the payload block and
/// its pipe region.
/// Returns the PML4 and the system page.
pub fn program_space<F: Frames>(
    ram: &Ram,
    frames: &mut F,
    kernel_root: u64,
    image: &ProgramImage<'_>,
) -> Result<(u64, u64), SpaceError> {
    let root =
        weft_image::paging::FrameAllocator::alloc_zeroed(frames).ok_or_else(no_page_tables)?;
    for i in 256..512u64 {
        let e = ram
            .read_obj::<u64>(GuestAddress(kernel_root + i * 8))
            .map_err(|_| SpaceError::Write(kernel_root))?;
        ram.write_obj(e, GuestAddress(root + i * 8))
            .map_err(|_| SpaceError::Write(root))?;
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
    space.map_fresh_large(
        USER_HEAP_BASE,
        image.heap_bytes,
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
    // The kernel's status page: shared, so not the program's to free.
    space.map_range(USER_STATUS_ADDR, image.status_page, 1, ro)?;
    // Always mapped, so a program can tell "no payload" (length 0).
    {
        let (payload, executable) = image
            .payload
            .map_or((&[][..], false), |p| (p.bytes, p.executable));
        let len = 8 + payload.len() as u64;
        if len > USER_PAYLOAD_MAX {
            return Err(SpaceError::PayloadTooLarge(payload.len()));
        }
        let phys = space.map_anonymous(
            USER_PAYLOAD_ADDR,
            len.div_ceil(PAGE_SIZE),
            PageFlags { executable, ..ro },
            kind,
            "the payload",
        )?;
        write(ram, phys, &(payload.len() as u64).to_le_bytes())?;
        write(ram, phys + 8, payload)?;
    }
    // The pipe region, the doorbell page and the park page (§8).
    for (k, table) in image.pipe_tables.iter().enumerate() {
        let vaddr = USER_PIPES_ADDR + k as u64 * LARGE_PAGE;
        link_table(&mut PhysRam(ram), space.frames, root, vaddr, *table)
            .map_err(SpaceError::Map)?;
    }
    space.map_range(USER_DOORBELLS_ADDR, DOORBELL_GPA, 1, rw)?;
    space.map_range(USER_PARK_ADDR, PARK_GPA, 1, ro)?;
    Ok((root, system_phys))
}
