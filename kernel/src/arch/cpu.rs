//! One wrapper per privileged instruction the kernel uses.

use core::arch::asm;
use weft_control::hypercall::PORT;

/// Reads the time-stamp counter.
pub fn rdtsc() -> u64 {
    // SAFETY: `rdtsc` only reads the counter; CR4.TSD is clear (§2.4).
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// Reads CR2, the linear address of the last page fault.
pub fn cr2() -> u64 {
    let v: u64;
    // SAFETY: reading CR2 has no side effects.
    unsafe { asm!("mov {}, cr2", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

/// Reads CR3, the current page-table root.
pub fn cr3() -> u64 {
    let v: u64;
    // SAFETY: reading CR3 has no side effects.
    unsafe { asm!("mov {}, cr3", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

/// A process's x87/SSE register state as `fxsave64` writes it.
#[repr(C, align(16))]
pub struct FxArea(pub [u8; 512]);

impl FxArea {
    /// The state a process starts with (as after `fninit`: FCW 0x037F,
    /// MXCSR 0x1F80, every register zero).
    pub const CLEAN: FxArea = {
        let mut a = [0u8; 512];
        a[0] = 0x7F;
        a[1] = 0x03;
        a[24] = 0x80;
        a[25] = 0x1F;
        FxArea(a)
    };
}

/// Saves the x87/SSE registers (ring-3 code's: the kernel itself is built
/// without them) to `area`.
///
/// # Safety
///
/// `area` must be valid for a 512-byte write; CR4.OSFXSR is set (§2.4).
pub unsafe fn fxsave(area: *mut FxArea) {
    // SAFETY: forwarded to the caller; `FxArea` is 16-aligned.
    unsafe { asm!("fxsave64 [{}]", in(reg) area, options(nostack, preserves_flags)) };
}

/// Loads the x87/SSE registers from `area`.
///
/// # Safety
///
/// `area` must hold a state an `fxsave64` wrote (or the clean one): a
/// reserved MXCSR bit set would fault.
pub unsafe fn fxrstor(area: *const FxArea) {
    // SAFETY: forwarded to the caller; `FxArea` is 16-aligned.
    unsafe { asm!("fxrstor64 [{}]", in(reg) area, options(nostack, preserves_flags, readonly)) };
}

/// Loads CR3: switches to the address space whose PML4 is at `root`.
///
/// # Safety
///
/// `root` must be a PML4 whose kernel half equals the running kernel's, so
/// the code and stack in use stay mapped.
pub unsafe fn write_cr3(root: u64) {
    // SAFETY: forwarded to the caller.
    unsafe { asm!("mov cr3, {}", in(reg) root, options(nostack, preserves_flags)) };
}

/// Points the task-state segment's RSP0 (the stack ring-3 interrupts and
/// syscalls land on) at `top`.
///
/// # Safety
///
/// `tss` must be the kernel address of this CPU's TSS (the per-CPU block's
/// `tss`), and `top` the 16-aligned top of a kernel stack no other context
/// uses.
pub unsafe fn set_rsp0(tss: u64, top: u64) {
    // SAFETY: RSP0 is the unaligned u64 at offset 4 of the 64-bit TSS the
    // caller named; the CPU reads it only on the next ring-3 entry.
    unsafe { core::ptr::write_unaligned((tss + 4) as *mut u64, top) };
}

/// Writes a model-specific register.
///
/// # Safety
///
/// `msr` must exist and `value` must be valid for it; the caller owns whatever
/// state the register controls.
pub unsafe fn wrmsr(msr: u32, value: u64) {
    // SAFETY: forwarded to the caller.
    unsafe {
        asm!("wrmsr", in("ecx") msr, in("eax") value as u32, in("edx") (value >> 32) as u32,
            options(nostack, preserves_flags));
    }
}

/// Enables interrupts and halts until one arrives, atomically (the `sti` shadow
/// covers the `hlt`, so an interrupt pending at `sti` still ends the halt), then
/// masks interrupts again.
pub fn wait_for_interrupt() {
    // SAFETY: the kernel's interrupt handlers preserve all state of the code they
    // interrupt; masking again afterwards restores the syscall path's invariant.
    unsafe { asm!("sti", "hlt", "cli", options(nomem, nostack)) };
}

/// Halts forever with interrupts masked: the end of every fatal path (the
/// monitor stops the VM on the hypercall that precedes it).
pub fn halt_forever() -> ! {
    loop {
        // SAFETY: halting with interrupts masked has no effect on memory.
        unsafe { asm!("cli", "hlt", options(nomem, nostack)) };
    }
}

/// The one hypercall instruction (§3.1): writes `nr` to the hypercall port. The
/// arguments and result are in the mailbox, so this must not claim `nomem`.
pub fn hypercall(nr: u32) {
    // SAFETY: the port is the monitor's; the exit is synchronous and the monitor
    // only reads and writes this CPU's mailbox during it.
    // Numbers are at most 255 (`WIDTH`): one byte.
    unsafe {
        asm!("out dx, al", in("dx") PORT, in("al") nr as u8, options(nostack, preserves_flags))
    };
}

/// The current frame pointer and stack pointer, for panic reports.
pub fn frame_registers() -> (u64, u64) {
    let (rbp, rsp): (u64, u64);
    // SAFETY: reading registers has no side effects.
    unsafe {
        asm!("mov {}, rbp", "mov {}, rsp", out(reg) rbp, out(reg) rsp, options(nomem, nostack, preserves_flags))
    };
    (rbp, rsp)
}

/// The per-CPU block (`gs:[0]` holds its own address, §2.4).
pub fn percpu() -> *const weft_control::boot::PerCpu {
    let p: u64;
    // SAFETY: in the kernel, GS_BASE is the per-CPU block whose first field is
    // its own address (the monitor set it up before boot).
    unsafe { asm!("mov {}, gs:[0]", out(reg) p, options(readonly, nostack, preserves_flags)) };
    p as *const _
}

/// The address of the instruction after this call's `lea`.
#[inline(always)]
pub fn current_rip() -> u64 {
    let rip: u64;
    // SAFETY: reading the instruction pointer has no side effects.
    unsafe { asm!("lea {}, [rip]", out(reg) rip, options(nomem, nostack, preserves_flags)) };
    rip
}
