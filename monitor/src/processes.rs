//! The monitor's side of processes (PROTOCOL.md §14.4): it builds each
//! spawned program's address space natively (ring 0 is emulated here, so
//! the kernel only asks), owns its memory and its pipe region, and takes
//! both back when the process ends.
//!
//! Everything the kernel passes is checked: slots are in range and match
//! what was built there, the spawn request and everything it points to is
//! read through the caller's page tables with user access required, sizes
//! are bounded, images are validated ELF files (or Wasm modules, run by
//! the bundled runtime). A bad request is an error code for the caller,
//! never a monitor failure.

use crate::address_space::{self, ProgramImage};
use crate::boot;
use crate::catalog::{self, Catalog, Tier};
use crate::exit::ProcessHost;
use crate::guest_memory::{Ram, read_user};
use crate::host;
use crate::loader::{LoadError, Space};
use crate::process_memory::{Grant, Owned, Pool, map_demand};
use crate::process_view::ProcessBook;
use crate::report::{self, Context};
use crate::streams::{Relay, RelayError, host_output};
use crate::symbols::Symbols;
use crate::vm;
use kvm_ioctls::VmFd;
use std::borrow::Cow;
use std::sync::Arc;
use vm_memory::{Bytes, GuestAddress};
use weft_control::args::Args;
use weft_control::boot::{ProgramInfo, region_kind};
use weft_control::error::ErrorCode;
use weft_control::hypercall::FaultReport;
use weft_control::layout::{
    PAGE_SIZE, USER_ARGS_ADDR, USER_ARGS_MAX, USER_HEAP_BASE, USER_HEAP_TOP, USER_STACK_TOP,
};
use weft_control::process::{
    DEFAULT_HEAP, MAX_HEAP, MAX_PROCESSES, NAME_LEN, SlotFigures, SpawnRequest, end, name_of,
    name_text, source,
};
use weft_control::system::SystemInfo;
use weft_image::paging::PageFlags;

/// Longest bundled-program name a request may give.
const MAX_NAME: u64 = 256;
/// Largest program image a request may hand over (ELF or Wasm).
const MAX_IMAGE: u64 = 256 << 20;

/// The pipe regions, one per slot (the relay serves them; shared with the
/// run loop, so every method takes `&self`).
pub trait Regions {
    /// Why a region could not be opened.
    type Error: std::fmt::Display;
    /// Opens region `index` for a new process.
    fn open(&self, index: u64) -> Result<(), Self::Error>;
    /// Closes region `index`'s streams: what they hold is still delivered.
    fn close(&self, index: u64);
    /// Whether region `index` can be opened now.
    fn free(&self, index: u64) -> bool;
    /// Streams open in region `index`.
    fn streams(&self, index: u64) -> u32;
}

impl Regions for Relay {
    type Error = RelayError;

    fn open(&self, index: u64) -> Result<(), RelayError> {
        self.open_region(index)
    }
    fn close(&self, index: u64) {
        self.close_region(index);
    }
    fn free(&self, index: u64) -> bool {
        self.region_free(index)
    }
    fn streams(&self, index: u64) -> u32 {
        self.open_streams(index)
    }
}

/// One live process, as the monitor knows it.
struct Slot {
    pid: u32,
    root: u64,
    name: [u8; NAME_LEN],
    /// What it runs, as the IPC registry names it
    /// ([`catalog::identity_of_bytes`]).
    identity: Arc<str>,
    /// The tier of the Wasm module it runs; `None` for a native program.
    tier: Option<Tier>,
    /// Memory handed out after boot.
    owned: Owned,
    /// Memory it was given at boot (the first program's).
    boot_bytes: u64,
    /// Its ELF, for symbolizing a fault report.
    elf: Cow<'static, [u8]>,
}

impl Slot {
    /// Bytes of guest memory it holds.
    fn memory(&self) -> u64 {
        self.boot_bytes + self.owned.bytes()
    }
}

/// The process in `slots[slot]`, if there is one and its page tables are at
/// `root`.
fn live(slots: &mut [Option<Slot>], slot: u64, root: u64) -> Result<&mut Slot, ErrorCode> {
    usize::try_from(slot)
        .ok()
        .and_then(|s| slots.get_mut(s)?.as_mut())
        .filter(|s| s.root == root)
        .ok_or(ErrorCode::BadArgument)
}

/// The index of `slot` if it is one spawned processes may hold (1..16).
fn spawned_index(slot: u64) -> Option<usize> {
    usize::try_from(slot)
        .ok()
        .filter(|&s| (1..MAX_PROCESSES).contains(&s))
}

/// The first program, as boot built it.
pub struct FirstProgram {
    pub root: u64,
    pub arg0: Vec<u8>,
    pub bytes: u64,
}

/// What the boot leaves for the process host.
pub struct Booted<'a> {
    /// The process pool: `[pool.0, pool.1)` is free.
    pub pool: (u64, u64),
    /// The kernel's PML4, whose upper half every address space shares.
    pub kernel_root: u64,
    /// The process status page (§14.6), mapped into every program.
    pub status_page: u64,
    /// The kernel ELF (for symbolizing crash reports).
    pub kernel_elf: &'a [u8],
    /// The system page every program sees.
    pub system: SystemInfo,
    /// The first program, in slot 0.
    pub first: FirstProgram,
    /// Where the figures of each slot are published (`process_view`).
    pub book: Arc<ProcessBook>,
}

/// The monitor's process state.
pub struct Processes<'a, R: Regions> {
    ram: &'a Ram,
    /// The KVM VM `ram` is registered with (slot 0), for laundering the
    /// pool; none under QEMU, whose memory slots the monitor cannot reset
    /// (the pool then reuses no frame for page tables, §22.4).
    vm: Option<&'a VmFd>,
    regions: &'a R,
    /// The programs a spawn request may name.
    catalog: &'a dyn Catalog,
    pool: Pool,
    kernel_root: u64,
    status_page: u64,
    kernel_elf: &'a [u8],
    /// The first program's system page; spawned programs get a copy with
    /// their own seed and heap size.
    system: SystemInfo,
    slots: [Option<Slot>; MAX_PROCESSES],
    /// Each region's page tables, built on its first spawn and shared by
    /// every process that uses it.
    pipe_tables: [Vec<u64>; MAX_PROCESSES],
    /// The frames they take (never given back).
    tables_owned: Owned,
    /// Each slot's figures, for readers on other threads.
    book: Arc<ProcessBook>,
}

impl<'a, R: Regions> Processes<'a, R> {
    /// The state after boot: the first program in slot 0, the process pool
    /// free.
    pub fn new(
        ram: &'a Ram,
        vm: Option<&'a VmFd>,
        regions: &'a R,
        catalog: &'a dyn Catalog,
        booted: Booted<'a>,
    ) -> Self {
        let Booted {
            pool,
            kernel_root,
            status_page,
            kernel_elf,
            system,
            first,
            book,
        } = booted;
        let mut slots = [const { None }; MAX_PROCESSES];
        slots[0] = Some(Slot {
            pid: 1,
            root: first.root,
            name: name_of(&first.arg0),
            identity: format!("program:{}", String::from_utf8_lossy(&first.arg0)).into(),
            tier: None,
            owned: Owned::default(),
            boot_bytes: first.bytes,
            elf: Cow::Borrowed(&[]),
        });
        let processes = Self {
            ram,
            vm,
            regions,
            catalog,
            pool: Pool::new(pool.0, pool.1),
            kernel_root,
            status_page,
            kernel_elf,
            system,
            slots,
            pipe_tables: [const { Vec::new() }; MAX_PROCESSES],
            tables_owned: Owned::default(),
            book,
        };
        processes.publish(0);
        processes
    }

    /// Publishes slot `index`'s figures in the book.
    fn publish(&self, index: usize) {
        if let Some(Some(s)) = self.slots.get(index) {
            self.book.set(index, s.pid, s.memory(), s.name);
            self.book.identify(index, s.identity.clone(), s.tier);
        }
    }

    /// Launders the pool (`process_memory`) if that frees frames for page
    /// tables: the host drops every shadow of guest page tables, then the
    /// pool takes every free frame as clean. Called while the vCPU is
    /// stopped in an exit. False if there was nothing to launder or the
    /// host refused.
    fn launder(&mut self) -> bool {
        let Some(vm) = self.vm.filter(|_| self.pool.launderable()) else {
            return false;
        };
        // SAFETY: `ram` is the memory `vm::create` registered with `vm`,
        // mapped for the whole run (`run::run` keeps both), and the vCPU
        // is stopped: this runs inside an exit.
        match unsafe { vm::reset_ram_slot(vm, self.ram) } {
            Ok(()) => {
                self.pool.launder();
                true
            }
            Err(e) => {
                host_output::stderr()
                    .notice(&format!("weft: cannot launder process memory: {e}\n"));
                false
            }
        }
    }

    fn read(&self, root: u64, addr: u64, len: u64) -> Result<Vec<u8>, ErrorCode> {
        read_user(self.ram, root, addr, len).ok_or(ErrorCode::BadAddress)
    }

    /// The program a request names: its bytes (bundled, or copied from the
    /// caller), validated as runnable, and its identity
    /// ([`catalog::identity_of_bytes`]).
    fn image(
        &self,
        root: u64,
        req: &SpawnRequest,
    ) -> Result<(Cow<'static, [u8]>, String), ErrorCode> {
        match req.source {
            source::BUNDLED => {
                if req.image_len > MAX_NAME {
                    return Err(ErrorCode::BadLength);
                }
                let name = self.read(root, req.image_addr, req.image_len)?;
                let name = std::str::from_utf8(&name).map_err(|_| ErrorCode::NotFound)?;
                let bytes = self.catalog.find(name).ok_or(ErrorCode::NotFound)?;
                Ok((bytes, format!("program:{name}")))
            }
            source::ELF => {
                if req.image_len > MAX_IMAGE {
                    return Err(ErrorCode::BadLength);
                }
                let bytes = self.read(root, req.image_addr, req.image_len)?;
                let identity = catalog::identity_of_bytes(&bytes);
                Ok((Cow::Owned(bytes), identity))
            }
            _ => Err(ErrorCode::BadArgument),
        }
    }

    /// Builds the address space of the program `req` names in slot
    /// `index` (checked by the caller: one of [`spawned_index`]).
    fn build(
        &mut self,
        index: usize,
        pid: u32,
        caller_root: u64,
        req: &SpawnRequest,
    ) -> Result<(Slot, ProgramInfo), ErrorCode> {
        let heap_bytes = match req.heap_bytes {
            0 => DEFAULT_HEAP,
            n if n <= MAX_HEAP => n.next_multiple_of(2 << 20),
            _ => return Err(ErrorCode::BadArgument),
        };
        if req.args_len > USER_ARGS_MAX {
            return Err(ErrorCode::BadLength);
        }
        let args = self.read(caller_root, req.args_addr, req.args_len)?;
        let arg0 = Args::parse(&args)
            .ok()
            .and_then(|a| a.get(0))
            .ok_or(ErrorCode::BadArgument)?
            .to_vec();
        let (image, identity) = self.image(caller_root, req)?;
        let tier = catalog::Tier::from_wire(req.tier).ok_or(ErrorCode::BadArgument)?;
        let program = catalog::runnable(self.catalog, image, tier).map_err(|e| match e {
            catalog::NotRunnable::NoRuntime(_) => ErrorCode::NotFound,
            catalog::NotRunnable::Compile(_) => ErrorCode::BadImage,
            catalog::NotRunnable::NoCompiler => ErrorCode::Unsupported,
            catalog::NotRunnable::NotWasm => ErrorCode::BadArgument,
        })?;
        let plan = boot::program_plan(&program.elf).map_err(|_| ErrorCode::BadImage)?;
        if self.pipe_tables[index].is_empty() {
            let mut owned = Owned::default();
            let mut grant = Grant {
                pool: &mut self.pool,
                owned: &mut owned,
            };
            match address_space::pipe_tables(self.ram, &mut grant, index as u64) {
                Ok(tables) => {
                    self.pipe_tables[index] = tables;
                    self.tables_owned.extend(owned);
                }
                Err(_) => {
                    owned.release(self.ram, &mut self.pool);
                    return Err(ErrorCode::OutOfMemory);
                }
            }
        }
        let mut owned = Owned::default();
        let mut grant = Grant {
            pool: &mut self.pool,
            owned: &mut owned,
        };
        let built = address_space::program_space(
            self.ram,
            &mut grant,
            self.kernel_root,
            &ProgramImage {
                elf: &program.elf,
                plan: &plan,
                args: &args,
                payload: program.payload(),
                heap_bytes,
                pipe_tables: &self.pipe_tables[index],
                status_page: self.status_page,
            },
        );
        let (root, system_phys) = match built {
            Ok(b) => b,
            Err(e) => {
                owned.release(self.ram, &mut self.pool);
                return Err(if e.is_program_error() {
                    ErrorCode::BadImage
                } else {
                    ErrorCode::OutOfMemory
                });
            }
        };
        let mut system = SystemInfo {
            heap_mapped: heap_bytes,
            ..self.system
        };
        let seeded = host::fill_random(&mut system.seed);
        let written = self
            .ram
            .write_slice(&system.encode(), GuestAddress(system_phys));
        if seeded.is_err() || written.is_err() {
            owned.release(self.ram, &mut self.pool);
            return Err(ErrorCode::OutOfMemory);
        }
        let info = ProgramInfo {
            root,
            entry: plan.entry,
            stack_top: USER_STACK_TOP,
            args_addr: USER_ARGS_ADDR,
            args_len: args.len() as u64,
            heap_base: USER_HEAP_BASE + heap_bytes,
        };
        let slot = Slot {
            pid,
            root,
            name: name_of(&arg0),
            identity: identity.into(),
            tier: program.tier(),
            owned,
            boot_bytes: 0,
            elf: program.elf,
        };
        Ok((slot, info))
    }

    /// Maps `pages` fresh zeroed frames at `vaddr` (checked by the caller)
    /// into the address space `root` of the process in `slot`.
    fn map_fresh(&mut self, slot: u64, root: u64, vaddr: u64, pages: u64) -> Result<(), ErrorCode> {
        let process = live(&mut self.slots, slot, root)?;
        let mut grant = Grant {
            pool: &mut self.pool,
            owned: &mut process.owned,
        };
        let rw = PageFlags {
            writable: true,
            user: true,
            executable: false,
            global: false,
        };
        Space {
            ram: self.ram,
            frames: &mut grant,
            root,
        }
        .map_fresh(vaddr, pages, rw, region_kind::PROGRAM, "anonymous memory")
        .map_err(|e| match e {
            LoadError::Memory(_) => ErrorCode::OutOfMemory,
            _ => ErrorCode::BadArgument,
        })
    }
}

impl<R: Regions> ProcessHost for Processes<'_, R> {
    fn spawn(
        &mut self,
        slot: u64,
        pid: u32,
        caller_root: u64,
        request: u64,
    ) -> Result<ProgramInfo, ErrorCode> {
        let index = spawned_index(slot).ok_or(ErrorCode::BadArgument)?;
        if self.slots[index].is_some() || !self.regions.free(slot) {
            return Err(ErrorCode::TooManyProcesses);
        }
        let raw = self.read(caller_root, request, SpawnRequest::SIZE as u64)?;
        let req = raw
            .as_slice()
            .try_into()
            .ok()
            .and_then(SpawnRequest::decode)
            .ok_or(ErrorCode::BadArgument)?;
        let (mut built, info) = match self.build(index, pid, caller_root, &req) {
            Err(ErrorCode::OutOfMemory) if self.launder() => {
                self.build(index, pid, caller_root, &req)?
            }
            built => built?,
        };
        if let Err(e) = self.regions.open(slot) {
            host_output::stderr().notice(&format!(
                "weft: cannot give process {pid} its streams: {e}\n"
            ));
            built.owned.release(self.ram, &mut self.pool);
            return Err(ErrorCode::OutOfMemory);
        }
        self.slots[index] = Some(built);
        self.publish(index);
        Ok(info)
    }

    fn map(&mut self, slot: u64, root: u64, vaddr: u64, pages: u64) -> Result<(), ErrorCode> {
        let end = pages
            .checked_mul(PAGE_SIZE)
            .and_then(|b| vaddr.checked_add(b))
            .ok_or(ErrorCode::BadLength)?;
        if !vaddr.is_multiple_of(PAGE_SIZE) || vaddr < USER_HEAP_BASE || end > USER_HEAP_TOP {
            return Err(ErrorCode::BadArgument);
        }
        // Refused unless the pool covers it: a partial mapping is not
        // undone (and a retry would find it mapped).
        let need = map_demand(pages);
        if need > self.pool.clean_pages() {
            self.launder();
        }
        if need > self.pool.clean_pages() {
            return Err(ErrorCode::OutOfMemory);
        }
        self.map_fresh(slot, root, vaddr, pages)?;
        if let Ok(index) = usize::try_from(slot) {
            self.publish(index);
        }
        Ok(())
    }

    fn end(&mut self, slot: u64, pid: u32, how: u64, fault: Option<&FaultReport>) {
        let Some(index) = spawned_index(slot) else {
            return;
        };
        let Some(mut process) = self.slots[index].take_if(|p| p.pid == pid) else {
            return;
        };
        if let (end::FAULTED, Some(r)) = (how, fault) {
            let name = String::from_utf8_lossy(name_text(&process.name)).into_owned();
            let kernel = Symbols::new("kernel", self.kernel_elf);
            let program = Symbols::new(&name, &process.elf);
            let cx = Context {
                ram: self.ram,
                kernel: &kernel,
                program: &program,
            };
            // Queued behind the guest's own standard error, never waiting
            // on a stalled reader (the vCPU thread must not block).
            host_output::stderr().notice(&report::process_fault(pid, r, &cx));
        }
        self.regions.close(slot);
        process.owned.release(self.ram, &mut self.pool);
        self.book.end(index);
    }

    fn figures(&self) -> [SlotFigures; MAX_PROCESSES] {
        let mut out = [SlotFigures::default(); MAX_PROCESSES];
        for (i, (f, s)) in out.iter_mut().zip(&self.slots).enumerate() {
            if let Some(s) = s {
                *f = SlotFigures {
                    memory: s.memory(),
                    streams: self.regions.streams(i as u64),
                    live: 1,
                    name: s.name,
                };
            }
        }
        out
    }
}
