//! The Weft kernel: ring 0 of the guest.
//!
//! It starts in 64-bit mode on state the monitor prepared (page tables, GDT,
//! IDT, TSS, MSRs, boot info: PROTOCOL.md §2) and keeps ring-0 work O(1), because
//! ring-0 code is emulated on the machines Weft targets. Boot is: record the
//! mailbox, take the memory map, set up the heap, enter the program. After that
//! the kernel runs only on syscalls, interrupts and exceptions.
//!
//! The decisions (the process table, scheduling, the timer deadline, frame
//! and heap arithmetic) live in `weft-kernel-core`, which has no `unsafe`
//! and is tested on the host; this crate holds the hardware half: `arch`
//! (every `asm!`: entry stubs, the switch, privileged instructions), `apic`
//! (the timer), `hypercall` (the mailbox), `memory` (the direct map and the
//! heap), `sched` (the table's home, switching and halting), and `process`
//! and `syscall` (the calls, glued to the monitor's hypercalls). Modules
//! depend one way: `syscall` → `process` → `sched` → `apic`, `arch`.
#![no_std]
#![no_main]

extern crate alloc;

mod apic;
mod arch;
mod exception;
mod hypercall;
mod memory;
mod process;
mod sched;
mod syscall;
mod usercopy;

use arch::cpu;
use core::ptr::{addr_of_mut, write_volatile};
use weft_control::boot::{BootInfo, PerCpu, boot_flags};

/// Called by `_start` with the boot info's kernel virtual address.
extern "C" fn kernel_main(info: *mut BootInfo) -> ! {
    let percpu = cpu::percpu();
    // SAFETY: `gs` points at the per-CPU block the monitor filled (§2.4).
    hypercall::init(unsafe { (*percpu).mailbox } as *mut _);
    // SAFETY: the boot info page stays mapped and is written by no one else
    // while the kernel runs (§2.2).
    let boot: &BootInfo = unsafe { &*info };
    memory::init(boot);
    apic::init(boot.apic_timer_hz, boot.flags & boot_flags::XAPIC != 0);
    let idle_poll = match boot.flags & boot_flags::NO_STREAM_INTERRUPT {
        0 => 0,
        _ => boot.idle_poll_ns,
    };
    // SAFETY: as for the mailbox.
    sched::init(
        boot.tsc_hz,
        unsafe { &*percpu },
        boot.kernel_root,
        idle_poll,
    );
    // SAFETY: as above; the stamp is a plain report for the monitor (§2.3).
    unsafe { write_volatile(addr_of_mut!((*info).stamps.kernel_ready), cpu::rdtsc()) };
    process::start(info)
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    hypercall::panic(format_args!("{info}"), cpu::current_rip())
}

const _: () = assert!(core::mem::size_of::<PerCpu>() == 64);
