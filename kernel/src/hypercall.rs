//! The kernel side of hypercalls (PROTOCOL.md §3): fill this CPU's mailbox, then
//! one `out` ([`crate::arch::cpu::hypercall`]).
//!
//! Invariant: the mailbox is only touched with interrupts masked on the CPU that
//! owns it (syscalls and fatal paths run masked), so a hypercall's arguments are
//! never overwritten by a nested one.

use crate::arch::cpu;
use core::fmt;
use core::ptr::{addr_of_mut, write_volatile};
use core::sync::atomic::{AtomicPtr, Ordering};
use weft_control::boot::ProgramInfo;
use weft_control::error::ErrorCode;
use weft_control::hypercall::{DATA_LEN, DONE, FaultFrame, FaultReport, Mailbox, console, nr};
use weft_control::process::{MAX_PROCESSES, SlotFigures};

static MAILBOX: AtomicPtr<Mailbox> = AtomicPtr::new(core::ptr::null_mut());

/// Records this CPU's mailbox (a kernel virtual address from the per-CPU block).
pub fn init(mailbox: *mut Mailbox) {
    MAILBOX.store(mailbox, Ordering::Relaxed);
}

fn mailbox() -> *mut Mailbox {
    MAILBOX.load(Ordering::Relaxed)
}

/// Writes `args` and makes hypercall `number`; returns the monitor's result.
fn call(number: u32, args: &[u64]) -> Result<(), ErrorCode> {
    let mb = mailbox();
    for (i, a) in args.iter().take(6).enumerate() {
        // SAFETY: `mb` is this CPU's mailbox page, mapped for the kernel's
        // lifetime (§3.2); `i < 6` keeps the write inside `args`.
        unsafe { write_volatile(addr_of_mut!((*mb).args[i]), *a) };
    }
    // SAFETY: as above.
    unsafe { write_volatile(addr_of_mut!((*mb).done), 0) };
    cpu::hypercall(number);
    // Weft's monitor answers before the `out` completes; under QEMU the
    // `out` only queues the number, and the answer comes later (§3.1).
    // SAFETY: as above.
    while unsafe { core::ptr::read_volatile(addr_of_mut!((*mb).done)) } != DONE {
        core::hint::spin_loop();
    }
    // SAFETY: as above; the monitor wrote `result` before `done`.
    let result = unsafe { core::ptr::read_volatile(addr_of_mut!((*mb).result)) };
    match result {
        0 => Ok(()),
        r => Err(u32::try_from(r)
            .ok()
            .and_then(ErrorCode::from_u32)
            .unwrap_or(ErrorCode::Unsupported)),
    }
}

/// Writes `len` bytes at user address `addr` of the address space `root` to the
/// monitor's stream `stream`. The monitor checks every page is user-accessible.
pub fn console_user(stream: u64, addr: u64, len: u64, root: u64) -> Result<(), ErrorCode> {
    call(
        nr::CONSOLE_WRITE,
        &[stream, len, console::SOURCE_USER, addr, root],
    )
}

/// The first `N` bytes of the mailbox's data area.
fn read_data<const N: usize>() -> [u8; N] {
    const { assert!(N <= DATA_LEN) };
    let mb = mailbox();
    let mut out = [0u8; N];
    for (i, b) in out.iter_mut().enumerate() {
        // SAFETY: `i < N <= DATA_LEN` keeps the read inside this CPU's
        // mailbox page, which the monitor wrote before resuming us.
        *b = unsafe { core::ptr::read_volatile(addr_of_mut!((*mb).data[i])) };
    }
    out
}

/// Builds process `pid`'s address space in slot `slot` from the spawn
/// request at user address `request` of the caller's space `caller_root`
/// (§14.4).
pub fn spawn(
    slot: usize,
    pid: u32,
    caller_root: u64,
    request: u64,
) -> Result<ProgramInfo, ErrorCode> {
    call(
        nr::SPAWN,
        &[slot as u64, u64::from(pid), caller_root, request],
    )?;
    Ok(ProgramInfo::decode(&read_data()))
}

/// Maps `pages` zeroed read/write user pages at `vaddr` into slot `slot`'s
/// address space `root`.
pub fn map(slot: usize, root: u64, vaddr: u64, pages: u64) -> Result<(), ErrorCode> {
    call(nr::MAP, &[slot as u64, root, vaddr, pages])
}

/// Tells the monitor process `pid` in `slot` ended (`how`, §14.4); a fault
/// carries its report.
pub fn process_end(slot: usize, pid: u32, how: u64, report: Option<&FaultReport>) {
    if let Some(r) = report {
        // SAFETY: as in `fault`.
        unsafe { write_volatile(addr_of_mut!((*mailbox()).data).cast::<FaultReport>(), *r) };
    }
    // The monitor cannot refuse: the process is gone either way.
    let _ = call(nr::PROCESS_END, &[slot as u64, u64::from(pid), how]);
}

/// What the monitor knows of every slot (memory, open streams, name).
pub fn figures() -> [SlotFigures; MAX_PROCESSES] {
    let mut out = [SlotFigures::default(); MAX_PROCESSES];
    if call(nr::FIGURES, &[]).is_ok() {
        let raw: [u8; MAX_PROCESSES * SlotFigures::SIZE] = read_data();
        for (f, chunk) in out.iter_mut().zip(raw.chunks_exact(SlotFigures::SIZE)) {
            let mut b = [0u8; SlotFigures::SIZE];
            b.copy_from_slice(chunk);
            *f = SlotFigures::decode(&b);
        }
    }
    out
}

/// Ends the VM with `status`.
pub fn exit(status: u64) -> ! {
    let _ = call(nr::EXIT, &[status]);
    cpu::halt_forever()
}

/// Formats into the mailbox's data area, truncating at its end.
struct DataWriter {
    len: usize,
}

impl fmt::Write for DataWriter {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mb = mailbox();
        for &b in s.as_bytes() {
            if self.len == DATA_LEN {
                break;
            }
            // SAFETY: `len < DATA_LEN` keeps the write inside the data area of
            // this CPU's mailbox.
            unsafe { write_volatile(addr_of_mut!((*mb).data[self.len]), b) };
            self.len += 1;
        }
        Ok(())
    }
}

/// Reports a kernel panic with `message` and stops.
pub fn panic(message: fmt::Arguments<'_>, rip: u64) -> ! {
    let mut w = DataWriter { len: 0 };
    let _ = fmt::write(&mut w, message);
    let (rbp, rsp) = cpu::frame_registers();
    let _ = call(nr::PANIC, &[w.len as u64, rip, rbp, rsp, cpu::cr3()]);
    cpu::halt_forever()
}

/// Offers a program's exception to a debugger (§21); returns the frame to
/// resume the program with, if one handled it.
pub fn debug(report: &FaultReport) -> Option<FaultFrame> {
    let mb = mailbox();
    // SAFETY: as in `fault`.
    unsafe { write_volatile(addr_of_mut!((*mb).data).cast::<FaultReport>(), *report) };
    call(nr::DEBUG, &[]).ok()?;
    // SAFETY: as above; the monitor wrote the frame before resuming us.
    Some(unsafe { core::ptr::read_volatile(addr_of_mut!((*mb).data).cast::<FaultFrame>()) })
}

/// Reports an exception the kernel cannot handle and stops.
pub fn fault(report: &FaultReport) -> ! {
    let mb = mailbox();
    // SAFETY: the data area starts 64 bytes into the page, so it is 8-byte
    // aligned, and `FaultReport` (192 bytes) fits in it (§3.4).
    unsafe { write_volatile(addr_of_mut!((*mb).data).cast::<FaultReport>(), *report) };
    let _ = call(nr::FAULT, &[]);
    cpu::halt_forever()
}
