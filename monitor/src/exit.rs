//! The exit dispatcher: a pure function from one VM exit to what happens next
//! (PROTOCOL.md §3). It reads and writes guest memory and the console sinks it is
//! given, and nothing else, so it is unit-tested with made-up exits and no KVM.
//!
//! Everything in the mailbox is an allegation: lengths are bounded, user ranges
//! are walked through the guest's page tables with user-access checks, and a
//! malformed request either returns an error code to the kernel (the program's
//! fault: a bad user pointer) or stops the VM as a protocol violation (the
//! kernel's fault). An access to memory that is not RAM is judged by who made
//! it: by ring 3 it is the running program's fault, refused with a page fault
//! in the program (`stray_mmio`); by ring 0 it is a violation.

use crate::guest_memory::{PhysRam, Ram, read_user};
use crate::stats::Stats;
use crate::stopper::StopRequest;
use crate::stray_mmio::{self, PageFault};
use std::io::Write;
use thiserror::Error;
use vm_memory::{Bytes, GuestAddress};
use weft_control::boot::ProgramInfo;
use weft_control::error::ErrorCode;
use weft_control::hypercall::{self, DATA_LEN, DATA_OFFSET, DONE, FaultReport, console, nr};
use weft_control::process::{MAX_PROCESSES, SlotFigures, end};
use weft_control::streams;

/// A VM exit, reduced to what the dispatcher needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// `out` to `port` of `size` bytes with `value`.
    IoOut { port: u16, size: u8, value: u32 },
    /// `in` from `port`.
    IoIn { port: u16 },
    /// An access to guest-physical memory that is not RAM, made by `ring`.
    Mmio { addr: u64, write: bool, ring: Ring },
    /// The vCPU halted.
    Hlt,
    /// The vCPU shut down (triple fault).
    Shutdown,
    /// `KVM_RUN` was interrupted by a signal.
    Interrupted,
    /// A debug exit: KVM's single step, which only the debugger turns on
    /// (`weft run --gdb`, stepping the kernel before the first program).
    Debug,
    /// Anything else, by name.
    Other(&'static str),
}

/// The privilege level an access was made at, as the vCPU's registers
/// tell (CPL, and CR3 for a program).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ring {
    /// Ring 0: the kernel.
    Kernel,
    /// Ring 3: the running program, with its CR3 (its PML4's guest-physical
    /// address, and flag bits).
    User { cr3: u64 },
}

/// Why the VM stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stop {
    /// The program exited with this status.
    Exited(u8),
    /// The kernel panicked.
    Panic {
        message: String,
        rip: u64,
        rbp: u64,
        rsp: u64,
        cr3: u64,
    },
    /// The kernel reported an exception.
    Fault(FaultReport),
    /// The vCPU shut down.
    TripleFault,
    /// The guest broke the protocol.
    Violation(Violation),
    /// `--timeout` expired.
    Timeout,
    /// `weft` was asked to stop by this signal (SIGINT, SIGTERM).
    Signal(i32),
}

impl From<StopRequest> for Stop {
    fn from(request: StopRequest) -> Self {
        match request {
            StopRequest::Timeout => Stop::Timeout,
            StopRequest::Signal(sig) => Stop::Signal(sig),
        }
    }
}

/// What the dispatcher decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Resume the vCPU.
    Continue,
    /// Stop the VM.
    Stop(Stop),
    /// The guest rang the stream doorbell (§8.2); resume after waking the
    /// relay.
    Doorbell,
    /// A program read the park page (§8.4): hold the vCPU while the relay
    /// says so, then complete the read with what ended the hold.
    Park,
    /// The running program accessed memory that is not RAM (§3.6): resume
    /// with this page fault taken in place of the access, which the
    /// kernel's fault path turns into the program's end (§14.1).
    Refuse(PageFault),
}

/// Ways the guest can break the protocol; each stops the VM with status 125.
#[derive(Clone, Copy, Debug, Error, PartialEq, Eq)]
pub enum Violation {
    /// Port I/O to a port that is not the hypercall port.
    #[error("port {direction} on port {port:#x}, which no device serves")]
    UnexpectedPort { port: u16, direction: &'static str },
    /// The hypercall `out` was not one byte wide.
    #[error("hypercall written with a {0}-byte access (must be 1)")]
    HypercallWidth(u8),
    /// An unknown hypercall number.
    #[error("unknown hypercall {0}")]
    UnknownHypercall(u32),
    /// The mailbox could not be read or written.
    #[error("the hypercall mailbox at {0:#x} is outside guest memory")]
    Mailbox(u64),
    /// An inline console write longer than the mailbox data area.
    #[error("inline console write of {0} bytes exceeds the mailbox's {DATA_LEN}")]
    InlineLength(u64),
    /// An exit status outside 0..=125.
    #[error("exit status {0} is outside 0..=125")]
    ExitStatus(u64),
    /// An access to guest-physical memory that is not RAM, by the kernel
    /// (or by ring 3 through no user mapping of the page tables).
    #[error("{} guest-physical address {addr:#x}, which is not RAM", if *write { "write to" } else { "read from" })]
    Mmio { addr: u64, write: bool },
    /// Something KVM reported that the monitor does not handle.
    #[error("unexpected VM exit: {0}")]
    UnexpectedExit(&'static str),
}

/// What the process hypercalls (§14.4) act on: the monitor's side of
/// processes, behind a trait so the dispatcher stays testable without KVM.
/// Arguments come from the kernel; implementations validate them.
pub trait ProcessHost {
    /// `SPAWN`: builds process `pid` in `slot` from the request at user
    /// address `request` of the caller's address space `caller_root`.
    fn spawn(
        &mut self,
        slot: u64,
        pid: u32,
        caller_root: u64,
        request: u64,
    ) -> Result<ProgramInfo, ErrorCode>;
    /// `MAP`: maps `pages` zeroed user pages at `vaddr` into `slot`'s
    /// address space `root`.
    fn map(&mut self, slot: u64, root: u64, vaddr: u64, pages: u64) -> Result<(), ErrorCode>;
    /// `PROCESS_END`: process `pid` in `slot` ended (`how`, with its fault
    /// report if it faulted).
    fn end(&mut self, slot: u64, pid: u32, how: u64, fault: Option<&FaultReport>);
    /// `FIGURES`: what the monitor knows of each slot.
    fn figures(&self) -> [SlotFigures; MAX_PROCESSES];
}

/// What the dispatcher may touch.
pub struct ExitContext<'a, O: Write, E: Write> {
    pub ram: &'a Ram,
    /// Guest-physical address of the vCPU's mailbox.
    pub mailbox: u64,
    pub stdout: O,
    pub stderr: E,
    pub stats: &'a mut Stats,
    pub processes: &'a mut dyn ProcessHost,
}

/// Decides what one exit means.
pub fn handle_exit<O: Write, E: Write>(exit: Exit, cx: &mut ExitContext<'_, O, E>) -> Outcome {
    let e = &mut cx.stats.exits;
    match exit {
        Exit::IoOut { port, size, value } if port == hypercall::PORT => {
            e.io += 1;
            if size != hypercall::WIDTH {
                return Outcome::Stop(Stop::Violation(Violation::HypercallWidth(size)));
            }
            match hypercall_exit(value, cx) {
                Ok(outcome) => outcome,
                Err(v) => Outcome::Stop(Stop::Violation(v)),
            }
        }
        Exit::IoOut { port, .. } => {
            e.io += 1;
            Outcome::Stop(Stop::Violation(Violation::UnexpectedPort {
                port,
                direction: "output",
            }))
        }
        Exit::IoIn { port } => {
            e.io += 1;
            Outcome::Stop(Stop::Violation(Violation::UnexpectedPort {
                port,
                direction: "input",
            }))
        }
        Exit::Mmio { addr, write, ring } => {
            e.mmio += 1;
            if write && is_doorbell(addr) {
                return Outcome::Doorbell;
            }
            if !write && matches!(ring, Ring::User { .. }) && is_park(addr) {
                return Outcome::Park;
            }
            let refused = match ring {
                Ring::User { cr3 } => stray_mmio::refusal(&PhysRam(cx.ram), cr3, addr, write),
                Ring::Kernel => None,
            };
            refused.map_or(
                Outcome::Stop(Stop::Violation(Violation::Mmio { addr, write })),
                Outcome::Refuse,
            )
        }
        Exit::Hlt => {
            e.hlt += 1;
            Outcome::Continue
        }
        Exit::Shutdown => {
            e.shutdown += 1;
            Outcome::Stop(Stop::TripleFault)
        }
        Exit::Interrupted => {
            e.interrupted += 1;
            Outcome::Continue
        }
        Exit::Other(name) => {
            e.other += 1;
            Outcome::Stop(Stop::Violation(Violation::UnexpectedExit(name)))
        }
        // Only a debugger turns debug exits on, and it takes them first.
        Exit::Debug => {
            e.other += 1;
            Outcome::Stop(Stop::Violation(Violation::UnexpectedExit(
                "debug exception with no debugger",
            )))
        }
    }
}

/// Whether `addr` is in the doorbell page (§8.2).
fn is_doorbell(addr: u64) -> bool {
    in_page(addr, streams::DOORBELL_GPA)
}

/// Whether `addr` is in the park page (§8.4).
fn is_park(addr: u64) -> bool {
    in_page(addr, streams::PARK_GPA)
}

fn in_page(addr: u64, page: u64) -> bool {
    addr.checked_sub(page)
        .is_some_and(|off| off < weft_control::layout::PAGE_SIZE)
}

fn read_u64(ram: &Ram, addr: u64) -> Result<u64, Violation> {
    ram.read_obj::<u64>(GuestAddress(addr))
        .map_err(|_| Violation::Mailbox(addr))
}

fn hypercall_exit<O: Write, E: Write>(
    number: u32,
    cx: &mut ExitContext<'_, O, E>,
) -> Result<Outcome, Violation> {
    let mb = cx.mailbox;
    let mut args = [0u64; 6];
    for (i, a) in args.iter_mut().enumerate() {
        *a = read_u64(cx.ram, mb + 8 * i as u64)?;
    }
    let h = &mut cx.stats.hypercalls;
    let outcome = match number {
        nr::CONSOLE_WRITE => {
            h.console_write += 1;
            let result = match console_write(&args, cx) {
                Ok(n) => {
                    cx.stats.console_bytes += n;
                    0
                }
                Err(ConsoleError::Guest(code)) => code as u64,
                Err(ConsoleError::Violation(v)) => return Err(v),
            };
            cx.ram
                .write_obj(result, GuestAddress(mb + 48))
                .map_err(|_| Violation::Mailbox(mb))?;
            Outcome::Continue
        }
        nr::EXIT => {
            h.exit += 1;
            let status = u8::try_from(args[0])
                .ok()
                .filter(|s| *s <= 125)
                .ok_or(Violation::ExitStatus(args[0]))?;
            Outcome::Stop(Stop::Exited(status))
        }
        nr::PANIC => {
            h.panic += 1;
            let len = (args[0] as usize).min(DATA_LEN);
            let mut msg = vec![0u8; len];
            cx.ram
                .read_slice(&mut msg, GuestAddress(mb + DATA_OFFSET as u64))
                .map_err(|_| Violation::Mailbox(mb))?;
            let message = String::from_utf8_lossy(&msg).into_owned();
            Outcome::Stop(Stop::Panic {
                message,
                rip: args[1],
                rbp: args[2],
                rsp: args[3],
                cr3: args[4],
            })
        }
        nr::FAULT => {
            h.fault += 1;
            let mut bytes = [0u8; FaultReport::SIZE];
            cx.ram
                .read_slice(&mut bytes, GuestAddress(mb + DATA_OFFSET as u64))
                .map_err(|_| Violation::Mailbox(mb))?;
            Outcome::Stop(Stop::Fault(FaultReport::decode(&bytes)))
        }
        // No debugger (`weft run --gdb` takes these first): the program's
        // exception takes its course (§21).
        nr::DEBUG => {
            cx.ram
                .write_obj(ErrorCode::Unsupported as u64, GuestAddress(mb + 48))
                .map_err(|_| Violation::Mailbox(mb))?;
            Outcome::Continue
        }
        nr::SPAWN | nr::MAP | nr::PROCESS_END | nr::FIGURES => {
            h.process += 1;
            process_call(number, &args, cx)?;
            Outcome::Continue
        }
        other => {
            h.unknown += 1;
            return Err(Violation::UnknownHypercall(other));
        }
    };
    // The answer is complete: the kernel may read it (§3.1).
    if outcome == Outcome::Continue {
        cx.ram
            .write_obj(DONE, GuestAddress(mb + 56))
            .map_err(|_| Violation::Mailbox(mb))?;
    }
    Ok(outcome)
}

/// The process hypercalls (§14.4): the result code goes to the mailbox,
/// and the data area receives what the call returns.
fn process_call<O: Write, E: Write>(
    number: u32,
    args: &[u64; 6],
    cx: &mut ExitContext<'_, O, E>,
) -> Result<(), Violation> {
    let mb = cx.mailbox;
    let data = GuestAddress(mb + DATA_OFFSET as u64);
    let pid = |a: u64| u32::try_from(a).map_err(|_| ErrorCode::BadArgument);
    let result = match number {
        nr::SPAWN => pid(args[1])
            .and_then(|p| cx.processes.spawn(args[0], p, args[2], args[3]))
            .map(|info| info.encode().to_vec()),
        nr::MAP => cx
            .processes
            .map(args[0], args[1], args[2], args[3])
            .map(|()| Vec::new()),
        nr::PROCESS_END => {
            let fault = if args[2] == end::FAULTED {
                let mut bytes = [0u8; FaultReport::SIZE];
                cx.ram
                    .read_slice(&mut bytes, data)
                    .map_err(|_| Violation::Mailbox(mb))?;
                Some(FaultReport::decode(&bytes))
            } else {
                None
            };
            pid(args[1]).map(|p| {
                cx.processes.end(args[0], p, args[2], fault.as_ref());
                Vec::new()
            })
        }
        // FIGURES, the one left (`hypercall_exit` routes only these four).
        _ => Ok(cx
            .processes
            .figures()
            .iter()
            .flat_map(SlotFigures::encode)
            .collect()),
    };
    let code = match result {
        Ok(bytes) => {
            cx.ram
                .write_slice(&bytes, data)
                .map_err(|_| Violation::Mailbox(mb))?;
            0
        }
        Err(e) => e as u64,
    };
    cx.ram
        .write_obj(code, GuestAddress(mb + 48))
        .map_err(|_| Violation::Mailbox(mb))
}

enum ConsoleError {
    /// Reported back to the kernel as an error code.
    Guest(ErrorCode),
    /// Stops the VM.
    Violation(Violation),
}

/// `CONSOLE_WRITE` (§3.3): returns the number of bytes written.
fn console_write<O: Write, E: Write>(
    args: &[u64; 6],
    cx: &mut ExitContext<'_, O, E>,
) -> Result<u64, ConsoleError> {
    let [stream, len, source, addr, root, _] = *args;
    let out: &mut dyn Write = match stream {
        console::STDOUT => &mut cx.stdout,
        console::STDERR => &mut cx.stderr,
        _ => return Err(ConsoleError::Guest(ErrorCode::BadArgument)),
    };
    match source {
        console::SOURCE_INLINE => {
            if len > DATA_LEN as u64 {
                return Err(ConsoleError::Violation(Violation::InlineLength(len)));
            }
            let mut buf = vec![0u8; len as usize];
            cx.ram
                .read_slice(&mut buf, GuestAddress(cx.mailbox + DATA_OFFSET as u64))
                .map_err(|_| ConsoleError::Violation(Violation::Mailbox(cx.mailbox)))?;
            let _ = out.write_all(&buf);
        }
        console::SOURCE_USER => {
            if len > console::MAX_USER_WRITE {
                return Err(ConsoleError::Guest(ErrorCode::BadLength));
            }
            let buf = read_user(cx.ram, root, addr, len)
                .ok_or(ConsoleError::Guest(ErrorCode::BadAddress))?;
            let _ = out.write_all(&buf);
        }
        _ => return Err(ConsoleError::Guest(ErrorCode::BadArgument)),
    }
    let _ = out.flush();
    Ok(len)
}

#[cfg(test)]
#[path = "exit_tests.rs"]
mod tests;
