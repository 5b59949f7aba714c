//! The KVM virtual machine: creation, its memory slots, the vCPU's initial
//! state (PROTOCOL.md §2.4), the single `KVM_RUN` loop, and the one change
//! the monitor makes to a running vCPU: a page fault in place of a
//! program's access to memory that is not RAM (§3.6).

use crate::boot::BootState;
use crate::exit::{Exit, Ring};
use crate::guest_memory::Ram;
use crate::stray_mmio::PageFault;
use kvm_bindings::{
    CpuId, KVM_CAP_SPLIT_IRQCHIP, Msrs, kvm_enable_cap, kvm_msr_entry, kvm_regs, kvm_segment,
    kvm_userspace_memory_region, kvm_vcpu_events__bindgen_ty_1,
};
use kvm_bindings::{
    KVM_IRQ_ROUTING_MSI, KvmIrqRouting, kvm_irq_routing_entry, kvm_irq_routing_entry__bindgen_ty_1,
    kvm_irq_routing_msi,
};
use kvm_ioctls::{IoEventAddress, Kvm, NoDatamatch, VcpuExit, VcpuFd, VmFd};
use thiserror::Error;
use vm_memory::{GuestMemoryBackend, GuestMemoryRegion};
use vmm_sys_util::eventfd::{EFD_NONBLOCK, EventFd};
use weft_control::layout::selector;

/// Failures setting up or running the VM.
#[derive(Debug, Error)]
pub enum VmError {
    /// `/dev/kvm` could not be opened.
    #[error("cannot open /dev/kvm (is KVM available and accessible?): {0}")]
    Open(kvm_ioctls::Error),
    /// `KVM_RUN` failed: the VM cannot go on (the guest crashed it, or
    /// KVM did).
    #[error("KVM run vCPU failed: {0}")]
    Run(kvm_ioctls::Error),
    /// A KVM ioctl that sets the VM up failed.
    #[error("KVM {op} failed: {source}")]
    Kvm {
        op: &'static str,
        source: kvm_ioctls::Error,
    },
    /// Turning a program's access into a page fault failed: the VM cannot
    /// go on.
    #[error(
        "cannot refuse the program's access to memory that is not RAM: KVM {op} failed: {source}"
    )]
    Refuse {
        op: &'static str,
        source: kvm_ioctls::Error,
    },
}

fn kvm(op: &'static str) -> impl FnOnce(kvm_ioctls::Error) -> VmError {
    move |source| VmError::Kvm { op, source }
}

/// Guest-physical address KVM may use for its real-mode TSS (above RAM).
const KVM_TSS_ADDR: usize = 0xFFFB_D000;
/// GSI routes reserved for a (user-space) IOAPIC.
const IOAPIC_PINS: u8 = 24;
/// x2APIC base MSR value: base 0xFEE00000, enabled, x2APIC mode, bootstrap CPU.
const APIC_BASE: u64 = 0xFEE0_0000 | (1 << 11) | (1 << 10) | (1 << 8);

const MSR_TSC: u32 = 0x10;

/// Creates the VM, maps `ram` and adds the in-kernel local APIC.
pub fn create(ram: &Ram) -> Result<VmFd, VmError> {
    let kvm_fd = Kvm::new().map_err(VmError::Open)?;
    let vm = kvm_fd.create_vm().map_err(kvm("create VM"))?;
    vm.set_tss_address(KVM_TSS_ADDR)
        .map_err(kvm("set TSS address"))?;
    // SAFETY: `ram` outlives the VM (both live until the monitor exits).
    unsafe { map_memory(&vm, ram, 0) }?;
    // The local APIC in the kernel, no PIC or IOAPIC (interrupts from the
    // monitor will be MSIs). Measured here: a full in-kernel irqchip made VM
    // teardown cost ~15 ms (split: ~0.4 ms) and, created before the memory
    // slot, made the slot cost ~5 ms.
    let mut cap = kvm_enable_cap {
        cap: KVM_CAP_SPLIT_IRQCHIP,
        ..Default::default()
    };
    cap.args[0] = u64::from(IOAPIC_PINS);
    vm.enable_cap(&cap)
        .map_err(kvm("enable the split interrupt controller"))?;
    Ok(vm)
}

/// Registers each region of `memory` as guest memory, in KVM memory slots
/// from `first_slot` on (which must be free; the regions must not overlap
/// guest memory already registered).
///
/// # Safety
///
/// `memory` must stay mapped for as long as the guest may run: KVM resolves
/// guest accesses through these host addresses, so after an unmapping the
/// guest would reach whatever the host maps there next.
pub unsafe fn map_memory(vm: &VmFd, memory: &Ram, first_slot: u32) -> Result<(), VmError> {
    for (slot, region) in (first_slot..).zip(memory.iter()) {
        let mem = memory_slot(slot, region)?;
        // SAFETY: the region is a live mapping owned by `memory`, which the
        // caller keeps mapped while the guest may run (this function's
        // contract). A busy slot or an overlap is refused by KVM.
        unsafe { vm.set_user_memory_region(mem) }.map_err(kvm("set memory region"))?;
    }
    Ok(())
}

/// The KVM memory slot `slot` over `region`.
fn memory_slot(
    slot: u32,
    region: &vm_memory::GuestRegionMmap<()>,
) -> Result<kvm_userspace_memory_region, VmError> {
    let host = region
        .get_host_address(vm_memory::MemoryRegionAddress(0))
        .map_err(|_| VmError::Kvm {
            op: "map guest memory",
            source: kvm_ioctls::Error::new(libc::EFAULT),
        })?;
    Ok(kvm_userspace_memory_region {
        slot,
        flags: 0,
        guest_phys_addr: region.start_addr().0,
        memory_size: region.len(),
        userspace_addr: host as u64,
    })
}

/// Deletes the memory slot of guest RAM (slot 0, as [`create`] made it)
/// and adds it back unchanged. KVM drops every shadow page of the frames
/// in a deleted slot (and, by default, every shadow page of the VM:
/// `KVM_X86_QUIRK_SLOT_ZAP_ALL`), so no page-table frame translates
/// through an old shadow afterwards (`process_memory`).
///
/// # Safety
///
/// `ram` must be the memory [`create`] registered, and stay mapped for as
/// long as the guest may run (as for [`map_memory`]). The vCPU must be
/// stopped (the caller is handling one of its exits): between the two
/// calls the guest has no RAM.
pub unsafe fn reset_ram_slot(vm: &VmFd, ram: &Ram) -> Result<(), VmError> {
    let region = ram.iter().next().ok_or(VmError::Kvm {
        op: "reset guest RAM's memory slot",
        source: kvm_ioctls::Error::new(libc::EINVAL),
    })?;
    let mem = memory_slot(0, region)?;
    let gone = kvm_userspace_memory_region {
        memory_size: 0,
        ..mem
    };
    // SAFETY: deleting a slot removes KVM's use of the host memory; the
    // vCPU is stopped (this function's contract), so nothing runs while
    // the guest has no RAM.
    unsafe { vm.set_user_memory_region(gone) }.map_err(kvm("delete guest RAM's memory slot"))?;
    // SAFETY: the same live mapping, owned by `ram`, that slot 0 held a
    // moment ago; the caller keeps it mapped while the guest may run.
    unsafe { vm.set_user_memory_region(mem) }.map_err(kvm("re-add guest RAM's memory slot"))
}

/// The GSI that carries the stream interrupt.
const STREAM_GSI: u32 = 0;

/// Routes the stream GSI as an MSI to the stream vector on CPU 0 and returns
/// the eventfd whose every write raises it (an irqfd, §8).
pub fn stream_interrupt(vm: &VmFd) -> Result<EventFd, VmError> {
    let mut routing = KvmIrqRouting::new(1).map_err(|_| VmError::Kvm {
        op: "build the interrupt routing table",
        source: kvm_ioctls::Error::new(libc::EINVAL),
    })?;
    routing.as_mut_slice()[0] = kvm_irq_routing_entry {
        gsi: STREAM_GSI,
        type_: KVM_IRQ_ROUTING_MSI,
        u: kvm_irq_routing_entry__bindgen_ty_1 {
            msi: kvm_irq_routing_msi {
                // Destination APIC 0, fixed delivery, edge-triggered.
                address_lo: 0xFEE0_0000,
                data: u32::from(weft_control::layout::vector::STREAM),
                ..Default::default()
            },
        },
        ..Default::default()
    };
    vm.set_gsi_routing(&routing)
        .map_err(kvm("set interrupt routing"))?;
    let fd = eventfd()?;
    vm.register_irqfd(&fd, STREAM_GSI)
        .map_err(kvm("register the stream irqfd"))?;
    Ok(fd)
}

/// A non-blocking eventfd.
pub fn eventfd() -> Result<EventFd, VmError> {
    EventFd::new(EFD_NONBLOCK).map_err(|e| VmError::Kvm {
        op: "create an eventfd",
        source: e.into(),
    })
}

/// Makes writes to the doorbell page signal `fd` inside the host kernel (an
/// MMIO ioeventfd, §8.2), without an exit to the monitor.
pub fn register_doorbell(vm: &VmFd, fd: &EventFd) -> Result<(), VmError> {
    let addr = weft_control::streams::DOORBELL_GPA;
    vm.register_ioevent(fd, &IoEventAddress::Mmio(addr), NoDatamatch)
        .map_err(kvm("register a doorbell"))
}

/// Local APIC register offsets in `kvm_lapic_state` and the values the kernel
/// expects at boot (PROTOCOL.md §2.4).
const LAPIC_SVR: usize = 0xF0;
const LAPIC_LVT_TIMER: usize = 0x320;
const LAPIC_TIMER_DIVIDE: usize = 0x3E0;

fn set_lapic_reg(state: &mut kvm_bindings::kvm_lapic_state, offset: usize, value: u32) {
    for (i, b) in value.to_le_bytes().into_iter().enumerate() {
        state.regs[offset + i] = b as libc::c_char;
    }
}

/// Creates vCPU 0 with the guest's CPUID; [`set_boot_state`] gives it
/// the state to start in.
pub fn create_vcpu(vm: &VmFd) -> Result<VcpuFd, VmError> {
    let vcpu = vm.create_vcpu(0).map_err(kvm("create vCPU"))?;
    let cpuid = filtered_cpuid()?;
    vcpu.set_cpuid2(&cpuid).map_err(kvm("set CPUID"))?;
    Ok(vcpu)
}

/// Puts the vCPU in the state the kernel starts in (PROTOCOL.md §2.4).
pub fn set_boot_state(vcpu: &VcpuFd, boot: &BootState) -> Result<(), VmError> {
    let mut sregs = vcpu.get_sregs().map_err(kvm("get special registers"))?;
    let code = kvm_segment {
        base: 0,
        limit: 0xFFFF_FFFF,
        selector: selector::KERNEL_CODE,
        type_: 0xB,
        present: 1,
        dpl: 0,
        db: 0,
        s: 1,
        l: 1,
        g: 1,
        avl: 0,
        unusable: 0,
        padding: 0,
    };
    let data = kvm_segment {
        selector: selector::KERNEL_DATA,
        type_: 0x3,
        db: 1,
        l: 0,
        ..code
    };
    sregs.cs = code;
    (sregs.ds, sregs.es, sregs.fs, sregs.ss) = (data, data, data, data);
    sregs.gs = kvm_segment {
        base: boot.percpu,
        ..data
    };
    sregs.tr = kvm_segment {
        base: boot.tss,
        limit: crate::descriptors::TSS_LEN as u32 - 1,
        selector: selector::TSS,
        type_: crate::descriptors::TSS_TYPE_BUSY,
        s: 0,
        db: 0,
        g: 0,
        ..code
    };
    sregs.gdt.base = boot.gdt;
    sregs.gdt.limit = crate::descriptors::GDT_LEN as u16 - 1;
    sregs.idt.base = boot.idt;
    sregs.idt.limit = crate::descriptors::IDT_LEN as u16 - 1;
    // PE | MP | ET | NE | WP | PG.
    sregs.cr0 = 0x8001_0033;
    sregs.cr3 = boot.kernel_root;
    // PAE | PGE | OSFXSR | OSXMMEXCPT.
    sregs.cr4 = 0x6A0;
    // SCE | LME | LMA | NXE.
    sregs.efer = 0xD01;
    sregs.apic_base = APIC_BASE;
    vcpu.set_sregs(&sregs)
        .map_err(kvm("set special registers"))?;

    // Software-enabled with the spurious vector, timer one-shot on its vector,
    // divide-by-1: the kernel never configures the APIC itself.
    let mut lapic = vcpu.get_lapic().map_err(kvm("get the local APIC"))?;
    let svr = 0x100 | u32::from(weft_control::layout::vector::SPURIOUS);
    set_lapic_reg(&mut lapic, LAPIC_SVR, svr);
    set_lapic_reg(
        &mut lapic,
        LAPIC_LVT_TIMER,
        u32::from(weft_control::layout::vector::TIMER),
    );
    set_lapic_reg(&mut lapic, LAPIC_TIMER_DIVIDE, 0b1011);
    vcpu.set_lapic(&lapic).map_err(kvm("set the local APIC"))?;

    let regs = kvm_regs {
        rip: boot.entry,
        rsp: weft_control::layout::KERNEL_STACK_TOP,
        rdi: boot.boot_info,
        rflags: 2,
        ..Default::default()
    };
    vcpu.set_regs(&regs).map_err(kvm("set registers"))
}

/// The guest CPUID table (see `cpuid`).
fn filtered_cpuid() -> Result<CpuId, VmError> {
    CpuId::from_entries(&crate::cpuid::guest_cpuid(crate::cpuid::host_cpuid)).map_err(|_| {
        VmError::Kvm {
            op: "build the CPUID table",
            source: kvm_ioctls::Error::new(libc::EINVAL),
        }
    })
}

/// The guest's TSC frequency in Hz.
pub fn tsc_hz(vcpu: &VcpuFd) -> u64 {
    vcpu.get_tsc_khz().map(|k| u64::from(k) * 1000).unwrap_or(0)
}

/// The guest's current TSC value.
pub fn guest_tsc(vcpu: &VcpuFd) -> Option<u64> {
    let mut msrs = Msrs::from_entries(&[kvm_msr_entry {
        index: MSR_TSC,
        ..Default::default()
    }])
    .ok()?;
    (vcpu.get_msrs(&mut msrs).ok()? == 1).then(|| msrs.as_slice()[0].data)
}

/// How long until the guest TSC of `vcpu` (at `hz`) reads `tsc`: zero if
/// it is past, `None` if the TSC or its rate cannot be read.
pub fn due_in(vcpu: &VcpuFd, tsc: u64, hz: u64) -> Option<std::time::Duration> {
    if hz == 0 {
        return None;
    }
    let ticks = tsc.saturating_sub(guest_tsc(vcpu)?);
    let ns = u128::from(ticks) * 1_000_000_000 / u128::from(hz);
    Some(std::time::Duration::from_nanos(
        u64::try_from(ns).unwrap_or(u64::MAX),
    ))
}

/// Runs the vCPU until the next exit the monitor must see.
pub fn run(vcpu: &mut VcpuFd) -> Result<Exit, VmError> {
    let (addr, write) = match vcpu.run() {
        Ok(VcpuExit::MmioRead(addr, _)) => (addr, false),
        Ok(VcpuExit::MmioWrite(addr, _)) => (addr, true),
        Ok(exit) => {
            return Ok(match exit {
                VcpuExit::IoOut(port, data) => {
                    let mut v = [0u8; 4];
                    let n = data.len().min(4);
                    v[..n].copy_from_slice(&data[..n]);
                    Exit::IoOut {
                        port,
                        size: data.len() as u8,
                        value: u32::from_le_bytes(v),
                    }
                }
                VcpuExit::IoIn(port, _) => Exit::IoIn { port },
                VcpuExit::Hlt => Exit::Hlt,
                VcpuExit::Shutdown => Exit::Shutdown,
                VcpuExit::FailEntry(..) => Exit::Other("hardware entry failure"),
                VcpuExit::InternalError => Exit::Other("KVM internal error"),
                VcpuExit::SystemEvent(..) => Exit::Other("system event"),
                VcpuExit::Debug(_) => Exit::Debug,
                _ => Exit::Other("unhandled exit reason"),
            });
        }
        Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => {
            return Ok(Exit::Interrupted);
        }
        Err(e) => return Err(VmError::Run(e)),
    };
    let sregs = vcpu.get_sregs().map_err(VmError::Run)?;
    // In 64-bit mode the CPL is the code selector's RPL.
    let ring = if sregs.cs.selector & 3 == 3 {
        Ring::User { cr3: sregs.cr3 }
    } else {
        Ring::Kernel
    };
    Ok(Exit::Mmio { addr, write, ring })
}

/// Steps the vCPU one instruction at its next run (`on`), with
/// interrupts blocked, through KVM's guest debugging, or no longer. The
/// debugger steps the kernel this way before its first instruction; a
/// program is stepped with its own trap flag (PROTOCOL.md §21).
pub fn step_in_kvm(vcpu: &VcpuFd, on: bool) -> Result<(), VmError> {
    let mut debug = kvm_bindings::kvm_guest_debug::default();
    if on {
        debug.control = kvm_bindings::KVM_GUESTDBG_ENABLE
            | kvm_bindings::KVM_GUESTDBG_SINGLESTEP
            | kvm_bindings::KVM_GUESTDBG_BLOCKIRQ;
    }
    vcpu.set_guest_debug(&debug).map_err(kvm("set guest debug"))
}

/// DR6 with no debug condition recorded (its reserved bits set).
const DR6_CLEAR: u64 = 0xFFFF_0FF0;

/// Sets the guest's own execution breakpoints: debug registers 0-3 at
/// `breaks` (local enables in DR7), none where `None`; DR6 is cleared.
pub fn set_breakpoints(vcpu: &VcpuFd, breaks: &[Option<u64>; 4]) -> Result<(), VmError> {
    let mut regs = kvm_bindings::kvm_debugregs {
        dr6: DR6_CLEAR,
        ..Default::default()
    };
    for (i, addr) in breaks.iter().enumerate() {
        if let Some(addr) = addr {
            regs.db[i] = *addr;
            // L`i`; R/W and LEN 0: break on execution.
            regs.dr7 |= 1 << (2 * i);
        }
    }
    vcpu.set_debug_regs(&regs)
        .map_err(kvm("set debug registers"))
}

/// The guest's DR6: which debug conditions were met since
/// [`set_breakpoints`] cleared it.
pub fn dr6(vcpu: &VcpuFd) -> Result<u64, VmError> {
    Ok(vcpu
        .get_debug_regs()
        .map_err(kvm("get debug registers"))?
        .dr6)
}

/// Completes the MMIO read of the last exit with `value` (little-endian,
/// as wide as the read, at most 8 bytes); KVM hands it to the reading
/// instruction on the next run.
pub fn complete_read(vcpu: &mut VcpuFd, value: u32) {
    let run = vcpu.get_kvm_run();
    // SAFETY: `kvm_run`'s exit union holds plain integers, so writing its
    // `mmio` member is defined whatever the last exit was; KVM reads it
    // back only after an MMIO read exit, which is when this is called.
    let mmio = unsafe { &mut run.__bindgen_anon_1.mmio };
    let bytes = u64::from(value).to_le_bytes();
    let len = (mmio.len as usize).min(bytes.len());
    mmio.data[..len].copy_from_slice(&bytes[..len]);
}

/// The page-fault exception's vector.
const PAGE_FAULT: u8 = 14;
/// How many more exits one instruction may make while KVM finishes it: an
/// access split across two pages, a read then a write.
const MAX_FINISHING_EXITS: usize = 4;

fn refuse(op: &'static str) -> impl FnOnce(kvm_ioctls::Error) -> VmError {
    move |source| VmError::Refuse { op, source }
}

/// Makes the access of the last exit (an MMIO exit made at ring 3) take
/// `fault` instead: the vCPU resumes in the kernel's page-fault handler
/// with `fault.address` in CR2, as if the page had refused the access.
///
/// KVM finishes an MMIO instruction on the next `KVM_RUN`, so this runs the
/// vCPU once with `immediate_exit` set, which finishes it and returns
/// before any guest code runs, then puts the general registers back as
/// they were at the exit. A read had not finished then: its destination
/// and `rip` come back, and the fault names the reading instruction. (A
/// write had: `rip` is already past it.)
pub fn inject_page_fault(vcpu: &mut VcpuFd, fault: PageFault) -> Result<(), VmError> {
    let regs = vcpu.get_regs().map_err(refuse("get registers"))?;
    vcpu.set_kvm_immediate_exit(1);
    let finished = finish_instruction(vcpu);
    vcpu.set_kvm_immediate_exit(0);
    finished?;
    vcpu.set_regs(&regs).map_err(refuse("set registers"))?;
    let mut sregs = vcpu.get_sregs().map_err(refuse("get special registers"))?;
    sregs.cr2 = fault.address;
    vcpu.set_sregs(&sregs)
        .map_err(refuse("set special registers"))?;
    let mut events = vcpu.get_vcpu_events().map_err(refuse("get vCPU events"))?;
    // Injected, not pending: delivered as is on the next entry, with CR2
    // as set above (the VM has no exception payloads enabled).
    events.exception = kvm_vcpu_events__bindgen_ty_1 {
        injected: 1,
        nr: PAGE_FAULT,
        has_error_code: 1,
        pending: 0,
        // Bits 0..=2 at most: it fits.
        error_code: fault.error_code() as u32,
    };
    // None of the optional fields (NMI, SIPI, SMM, payload) is set.
    events.flags = 0;
    vcpu.set_vcpu_events(&events)
        .map_err(refuse("inject the page fault"))
}

/// Runs `vcpu`, whose `immediate_exit` is set, until KVM has finished the
/// instruction of the last exit and returned before running the guest.
fn finish_instruction(vcpu: &mut VcpuFd) -> Result<(), VmError> {
    for _ in 0..MAX_FINISHING_EXITS {
        match run(vcpu)? {
            Exit::Mmio { .. } => {}
            Exit::Interrupted => return Ok(()),
            _ => break,
        }
    }
    Err(VmError::Refuse {
        op: "finish the instruction",
        source: kvm_ioctls::Error::new(libc::EPROTO),
    })
}
