//! The process calls (PROTOCOL.md §14): starting the first program, and
//! `spawn`, `map`, `exit`, `kill`, `await` and the process records, with
//! the faults that end a process.
//!
//! The monitor builds every address space and owns every process's memory
//! and pipe region (the `SPAWN`, `MAP` and `PROCESS_END` hypercalls do the
//! work natively); the table (`weft_kernel_core::table`, kept in
//! [`sched::TABLE`]) decides who may do what and records the outcome. Slot
//! `i` of the table uses pipe region `i`; slot 0 is the first program's,
//! whose end is the guest's.
//!
//! Invariants: the table is touched only with interrupts masked on the one
//! CPU, and its lock is never held across a switch. This module calls into
//! [`sched`] (to block and to run others), never the other way round.
//!
//! The calls that go to the monitor are kept out of line (`inline(never)`),
//! so the syscall dispatcher's own frame stays as small as the hot calls
//! (`wait`, `sleep`) need: ring 0 is emulated, and every saved register
//! costs on every syscall.

use crate::arch::{self, cpu};
use crate::sched::{self, TABLE};
use crate::{hypercall, memory};
use weft_control::boot::BootInfo;
use weft_control::error::ErrorCode;
use weft_control::hypercall::FaultReport;
use weft_control::layout::KERNEL_STACK_TOP;
use weft_control::process::{MAX_PROCESSES, ProcessRecord};
use weft_kernel_core::clock;
use weft_kernel_core::end::{End, pid_arg};
use weft_kernel_core::pick::Wait;
use weft_kernel_core::table::Admitted;

/// Records the first program (slot 0, pid 1) and enters it at ring 3.
pub fn start(info: *mut BootInfo) -> ! {
    // SAFETY: the boot info page is the monitor's and ours alone (§2.2).
    let p = unsafe { (*info).program };
    // Slot 0 runs on the boot stack.
    {
        let mut t = TABLE.lock();
        t.start(p.root, p.heap_base, KERNEL_STACK_TOP, cpu::rdtsc());
        sched::publish(&mut t);
    }
    // SAFETY: as above; the stamp is a plain report for the monitor (§2.3).
    unsafe {
        core::ptr::write_volatile(
            core::ptr::addr_of_mut!((*info).stamps.program_entry),
            cpu::rdtsc(),
        )
    };
    // SAFETY: the monitor validated the program and built `root` with the
    // kernel half shared; entry and stack are mapped user addresses (§2.2).
    unsafe { arch::enter_user(p.entry, p.stack_top, p.args_addr, p.args_len, p.root) }
}

/// The running process's page-table root.
pub fn current_root() -> Result<u64, ErrorCode> {
    TABLE
        .lock()
        .running()
        .map(|p| p.root())
        .ok_or(ErrorCode::BadArgument)
}

/// `map`: maps `len` bytes (rounded up to pages) of zeroed read/write
/// memory into the running process (the monitor does the work).
#[inline(never)]
pub fn map(len: u64) -> Result<u64, ErrorCode> {
    TABLE
        .lock()
        .map(len, |r| hypercall::map(r.slot, r.root, r.start, r.pages))
}

/// `spawn`: starts the program the caller's request names in a free slot
/// and returns its pid. The monitor may refuse a slot whose pipe region is
/// still draining the streams of its previous process; the table then
/// offers the next free one.
#[inline(never)]
pub fn spawn(request: u64) -> Result<u64, ErrorCode> {
    let mut t = TABLE.lock();
    let pid = t.spawn(|a| {
        let top = memory::kernel_stack(a.slot)?;
        let info = hypercall::spawn(a.slot, a.pid, a.caller_root, request)?;
        sched::prepare(
            a.slot,
            top,
            arch::first_frame(info.entry, info.stack_top, info.args_addr, info.args_len),
        );
        Ok(Admitted {
            root: info.root,
            heap_base: info.heap_base,
            kernel_stack: top,
        })
    })?;
    sched::publish(&mut t);
    Ok(u64::from(pid))
}

/// Ends the process in `slot` (tells the monitor, which closes its streams
/// and frees its memory).
fn end_slot(slot: usize, end: End, report: Option<&FaultReport>) {
    let Some(pid) = TABLE.lock().process(slot).map(|p| p.pid()) else {
        return;
    };
    hypercall::process_end(slot, pid, end.how(), report);
    let mut t = TABLE.lock();
    t.end(slot, end.status());
    sched::publish(&mut t);
}

/// Ends the running process and runs the others; never returns. The first
/// program's end is the guest's (a fault report, or the exit status).
pub fn end_current(end: End, report: Option<&FaultReport>) -> ! {
    let slot = TABLE.lock().current();
    if slot == 0 {
        match report {
            Some(r) => hypercall::fault(r),
            None => hypercall::exit(u64::from(end.status())),
        }
    }
    // The monitor takes the page tables back: stop using them first.
    sched::leave_address_space();
    end_slot(slot, end, report);
    sched::schedule();
    // Unreachable: an ended process is never picked again.
    cpu::halt_forever()
}

/// A ring-3 fault ends only the faulting process (status 125).
pub fn fault(report: &FaultReport) -> ! {
    end_current(End::Faulted, Some(report))
}

/// `kill`: ends process `pid` with status 137. The first program cannot be
/// killed (its end is the guest's).
#[inline(never)]
pub fn kill(pid: u64) -> Result<u64, ErrorCode> {
    let pid = pid_arg(pid)?;
    let (slot, current) = {
        let t = TABLE.lock();
        (t.kill_target(pid)?, t.current())
    };
    if slot == current {
        end_current(End::Killed, None);
    }
    end_slot(slot, End::Killed, None);
    Ok(0)
}

/// `await`: waits for the caller's child `pid` to end (at most `timeout_ns`;
/// `u64::MAX`: no limit), collects it and returns its status.
#[inline(never)]
pub fn await_child(pid: u64, timeout_ns: u64) -> Result<u64, ErrorCode> {
    let pid = pid_arg(pid)?;
    let mut waited = false;
    loop {
        let mut t = TABLE.lock();
        if let Some(status) = t.collect(pid)? {
            sched::publish(&mut t);
            return Ok(u64::from(status));
        }
        drop(t);
        if waited || timeout_ns == 0 {
            return Err(ErrorCode::TimedOut);
        }
        sched::block(Wait::Child(pid), clock::timeout(timeout_ns));
        waited = true;
    }
}

/// The records of every process (in slot order), with the monitor's
/// figures for memory, streams and names.
#[inline(never)]
pub fn records() -> ([ProcessRecord; MAX_PROCESSES], usize) {
    let figures = hypercall::figures();
    let now = cpu::rdtsc();
    TABLE.lock().records(now, &figures, sched::tsc_hz())
}
