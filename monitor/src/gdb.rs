//! `weft run --gdb PORT` (PROTOCOL.md §21): a GDB remote-protocol stub
//! (the `gdbstub` crate) over the guest's one vCPU.
//!
//! The guest stops before its first instruction (in the kernel, ring 0),
//! and runs only when the debugger says so; while it runs, the monitor's
//! exit loop serves it as always ([`Exits`]). A program stops where it
//! takes an exception: the kernel offers every ring-3 exception to the
//! monitor first (the `DEBUG` hypercall, with the program's registers),
//! and the stub either resumes the program with the registers as the
//! debugger left them or lets the exception take its course. So:
//!
//! - a software breakpoint is the byte [`BREAK`] (`into`, which is #UD in
//!   64-bit mode) written over the instruction: `int3` is the system call
//!   gate (§2.5), and ring-0 code is emulated on the machines Weft targets,
//!   where KVM's own breakpoints are not reliable;
//! - a hardware breakpoint is one of the guest's debug registers 0-3
//!   (execution; not offered on nested KVM in PVM mode, where they do not
//!   fire at ring 3), and a step is the program's trap flag: both end in
//!   #DB;
//! - any other exception stops the program too, at the faulting
//!   instruction, as the signal a Unix debugger would show; resuming with
//!   that signal lets it end the program as without a debugger.
//!
//! Memory is read and written through the page tables the vCPU runs on
//! (the kernel's at the start, else the running program's, which map the
//! kernel too), and where they map nothing, through the first program's,
//! so that its breakpoints can be set before it first runs. Writes go
//! straight to guest RAM, so a breakpoint in a program's code lies in every
//! process that shares that code frame.
//!
//! Invariant: when the session ends without ending the guest (the debugger
//! detached, or its connection broke), every breakpoint is taken back, a
//! stopped program is resumed as the debugger left it, and the guest runs
//! on as if no debugger had come. A Ctrl-C from the debugger stops the
//! guest at once: while it runs, a watcher thread kicks the vCPU out of
//! `KVM_RUN` (the stopper's signal) when the debugger sends anything, and
//! the loop reads it between exits.

use crate::exit::{Exit, Stop};
use crate::guest_memory::{PhysRam, Ram};
use crate::host;
use crate::stopper::{self, StopRequest};
use crate::vm::{self, VmError};
use gdbstub::common::Signal;
use gdbstub::conn::{Connection, ConnectionExt};
use gdbstub::stub::run_blocking::{BlockingEventLoop, Event, WaitForStopReasonError};
use gdbstub::stub::{DisconnectReason, GdbStub, SingleThreadStopReason};
use gdbstub::target::ext::base::BaseOps;
use gdbstub::target::ext::base::singlethread::{
    SingleThreadBase, SingleThreadResume, SingleThreadResumeOps, SingleThreadSingleStep,
    SingleThreadSingleStepOps,
};
use gdbstub::target::ext::breakpoints::{
    Breakpoints, BreakpointsOps, HwBreakpoint, HwBreakpointOps, SwBreakpoint, SwBreakpointOps,
};
use gdbstub::target::{Target, TargetError, TargetResult};
use gdbstub_arch::x86::X86_64_SSE;
use gdbstub_arch::x86::reg::X86_64CoreRegs;
use kvm_bindings::kvm_regs;
use kvm_ioctls::VcpuFd;
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use vm_memory::{Bytes, GuestAddress};
use weft_control::error::ErrorCode;
use weft_control::hypercall::{self, DATA_OFFSET, FaultFrame, FaultReport, nr};
use weft_image::paging::{Access, translate};

/// What the monitor does with one exit that is not the debugger's: the
/// run loop's body. `Some` when the guest has ended.
pub type Exits<'r> = dyn FnMut(&mut VcpuFd, Exit) -> Result<Option<Stop>, VmError> + 'r;

/// The software breakpoint: `into`, invalid (#UD) in 64-bit mode.
const BREAK: u8 = 0xce;
/// Exception vectors.
const DEBUG_VECTOR: u64 = 1;
const INVALID_OPCODE: u64 = 6;
/// RFLAGS bits: the trap flag (step), interrupts enabled, I/O privilege,
/// resume (no instruction breakpoint for one instruction), and the
/// reserved bit that is always 1.
const TF: u64 = 1 << 8;
const IF: u64 = 1 << 9;
const IOPL: u64 = 3 << 12;
const RF: u64 = 1 << 16;
const RESERVED_1: u64 = 1 << 1;
/// DR6: breakpoint conditions 0-3 met.
const DR6_HITS: u64 = 0xf;
/// Where the program half of the address space ends.
const USER_END: u64 = 0x0000_8000_0000_0000;
const PAGE: u64 = 4096;
/// How often the watcher looks whether its session ended, and how soon
/// it kicks again while the debugger's bytes wait (a kick that lands just
/// before `KVM_RUN` is lost, as the stopper's may be).
const WATCH_POLL: Duration = Duration::from_millis(50);
const KICK_AGAIN: Duration = Duration::from_millis(5);

/// A debugger's port, listened on.
pub struct Listening {
    listener: TcpListener,
    /// Where: what `waiting for gdb` names.
    addr: std::net::SocketAddr,
    /// Whether the guest's debug registers fire at ring 3 here: not on
    /// nested KVM in PVM mode (measured), where hardware breakpoints are
    /// then not offered rather than never hit.
    debug_registers: bool,
}

/// Listens for the debugger on loopback port `port` (before the sandbox,
/// which allows binding only the `--listen` ports and reading no
/// `/proc/cmdline`).
pub fn listen(port: u16) -> std::io::Result<Listening> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, port))?;
    let addr = listener.local_addr()?;
    let pvm = std::fs::read_to_string("/proc/cmdline")
        .is_ok_and(|c| c.split_whitespace().any(|w| w.starts_with("nested_pvm")));
    Ok(Listening {
        listener,
        addr,
        debug_registers: !pvm,
    })
}

/// Waits for the debugger on `listener`: its connection (or why none
/// came), or `Err` with the stop requested first (`--timeout`, SIGINT,
/// SIGTERM). The standard library's `accept` retries when a signal
/// interrupts it, and would wait through a stop: the listener is polled
/// instead, as often as the watch polls.
fn await_debugger(listener: &TcpListener) -> Result<std::io::Result<TcpStream>, StopRequest> {
    Ok(readable_unless_stopped(listener.as_raw_fd())?
        .and_then(|()| listener.accept().map(|(conn, _)| conn)))
}

/// Waits until `fd` is readable (`Ok(Ok(()))`), fails (`Ok(Err)`), or a
/// stop is requested (`Err`), looking for the stop every [`WATCH_POLL`]:
/// a blocking call would be retried through the stop's signal.
fn readable_unless_stopped(fd: RawFd) -> Result<std::io::Result<()>, StopRequest> {
    loop {
        if let Some(stop) = stopper::requested() {
            return Err(stop);
        }
        match host::wait_readable(fd, Some(WATCH_POLL)) {
            Ok(true) => return Ok(Ok(())),
            Ok(false) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Ok(Err(e)),
        }
    }
}

/// The debugger's connection. The stub reads it blocking while the guest
/// is stopped; that read gives way to a stop (`--timeout`, SIGINT,
/// SIGTERM) with an error, which ends the session ([`debug`] then finds
/// the stop requested).
struct Debugger(TcpStream);

impl Connection for Debugger {
    type Error = std::io::Error;

    fn write(&mut self, byte: u8) -> std::io::Result<()> {
        Connection::write(&mut self.0, byte)
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        Connection::write_all(&mut self.0, buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Connection::flush(&mut self.0)
    }
}

impl ConnectionExt for Debugger {
    fn read(&mut self) -> std::io::Result<u8> {
        match readable_unless_stopped(self.0.as_raw_fd()) {
            Ok(Ok(())) => ConnectionExt::read(&mut self.0),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(std::io::Error::other("the run was stopped")),
        }
    }

    fn peek(&mut self) -> std::io::Result<Option<u8>> {
        ConnectionExt::peek(&mut self.0)
    }
}

/// How a debugging session ended.
pub enum Session {
    /// The guest ended (or the debugger killed it).
    Ended(Stop),
    /// The debugger left; the guest runs on undebugged.
    Detached,
}

/// Where the guest is stopped.
enum Halt {
    /// Between two exits (before the first instruction, or at a Ctrl-C):
    /// the vCPU's registers; a step is KVM's.
    Vcpu,
    /// A program's exception, offered by the kernel: its registers.
    Trap(FaultFrame),
    /// Running.
    Running,
}

/// The guest's parts the stub works on, borrowed from the run.
pub struct Guest<'r, 'e> {
    pub vcpu: &'r mut VcpuFd,
    pub ram: &'r Ram,
    /// The vCPU's hypercall mailbox (guest-physical).
    pub mailbox: u64,
    /// The first program's page-table root.
    pub program_root: u64,
    pub exits: &'r mut Exits<'e>,
}

/// Takes one debugger on `listener` and serves it until the guest ends or
/// the debugger leaves. The guest has not run yet.
pub fn debug(listening: Listening, guest: Guest<'_, '_>) -> Result<Session, VmError> {
    let Listening {
        listener,
        addr,
        debug_registers,
    } = listening;
    // Said once a stop is honoured (the stopper is armed): from here on,
    // `--timeout`, SIGINT and SIGTERM end the wait.
    eprintln!("weft: waiting for gdb on {addr} (target remote {addr})");
    let conn = match await_debugger(&listener) {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) => {
            eprintln!("weft: gdb: no debugger came ({e}); running without one");
            return Ok(Session::Detached);
        }
        // The guest has not run.
        Err(stop) => return Ok(Session::Ended(stop.into())),
    };
    drop(listener);
    let _ = conn.set_nodelay(true);
    let watch = Watch::start(&conn);
    let mut machine = Machine {
        guest,
        soft: BTreeMap::new(),
        hard: [None; 4],
        debug_registers,
        halt: Halt::Vcpu,
        stepping: false,
        ended: None,
        running: watch.as_ref().map(|w| w.running.clone()),
    };
    let outcome = GdbStub::new(Debugger(conn)).run_blocking::<Loop<'_, '_>>(&mut machine);
    let session = match outcome {
        Ok(DisconnectReason::TargetExited(_) | DisconnectReason::TargetTerminated(_)) => machine
            .ended
            .take()
            .map_or(Session::Detached, Session::Ended),
        Ok(DisconnectReason::Kill) => Session::Ended(Stop::Signal(libc::SIGKILL)),
        Ok(DisconnectReason::Disconnect) => Session::Detached,
        Err(e) if e.is_target_error() => match e.into_target_error() {
            Some(e) => return Err(e),
            None => Session::Detached,
        },
        Err(e) => match stopper::requested() {
            // Asked while the guest was stopped: the read gave way to it.
            Some(stop) => Session::Ended(stop.into()),
            None => {
                eprintln!("weft: gdb: the connection failed ({e}); running without a debugger");
                Session::Detached
            }
        },
    };
    drop(watch);
    if let Session::Detached = session {
        machine.forget()?;
    }
    Ok(session)
}

/// The watcher of the debugger's connection while the guest runs.
struct Watch {
    /// Whether the guest runs (the loop sets it around its runs).
    running: Arc<AtomicBool>,
    done: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Watch {
    /// Starts watching `conn` for the vCPU thread, the calling one (`None`
    /// if no thread or descriptor could be had: Ctrl-C then waits for the
    /// guest's next exit).
    fn start(conn: &TcpStream) -> Option<Watch> {
        let peer = conn.try_clone().ok()?;
        let vcpu = host::Thread::current();
        let (running, done) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicBool::new(false)),
        );
        let (r, d) = (running.clone(), done.clone());
        let thread = std::thread::Builder::new()
            .name("weft-gdb-watch".into())
            .spawn(move || {
                let mut byte = [0u8];
                while !d.load(Ordering::Acquire) {
                    let ready = host::wait_readable(peer.as_raw_fd(), Some(WATCH_POLL));
                    if !matches!(ready, Ok(true)) {
                        continue;
                    }
                    match peer.peek(&mut byte) {
                        // The debugger went away: the loop finds out.
                        Ok(0) => return,
                        Ok(_) if r.load(Ordering::Acquire) => vcpu.kick(host::kick_signal()),
                        _ => {}
                    }
                    std::thread::sleep(KICK_AGAIN);
                }
            })
            .ok()?;
        Some(Watch {
            running,
            done,
            thread: Some(thread),
        })
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.done.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The guest and the breakpoints, as the stub sees them.
struct Machine<'r, 'e> {
    guest: Guest<'r, 'e>,
    /// Software breakpoints: address → (guest-physical address, the byte
    /// [`BREAK`] replaced).
    soft: BTreeMap<u64, (u64, u8)>,
    /// Hardware breakpoints (debug registers 0-3).
    hard: [Option<u64>; 4],
    /// Whether hardware breakpoints are offered ([`Listening`]).
    debug_registers: bool,
    halt: Halt,
    /// Whether the guest was resumed for one step.
    stepping: bool,
    /// How the guest ended, once it has.
    ended: Option<Stop>,
    /// Set while the guest runs, for the watcher.
    running: Option<Arc<AtomicBool>>,
}

impl Machine<'_, '_> {
    /// The guest-physical address of `addr` in the current address space,
    /// else in the first program's.
    fn physical(&self, addr: u64) -> Result<Option<u64>, VmError> {
        let any = Access {
            user: false,
            write: false,
            execute: false,
        };
        let memory = PhysRam(self.guest.ram);
        let root = self.guest.vcpu.get_sregs().map_err(VmError::Run)?.cr3;
        Ok(translate(&memory, root, addr, any)
            .or_else(|_| translate(&memory, self.guest.program_root, addr, any))
            .ok())
    }

    /// Lets the guest go on from where it stopped: one step if `step`;
    /// `deliver` lets a program's exception take its course.
    fn go(&mut self, step: bool, deliver: bool) -> Result<(), VmError> {
        if self.debug_registers {
            vm::set_breakpoints(self.guest.vcpu, &self.hard)?;
        }
        self.stepping = step;
        match std::mem::replace(&mut self.halt, Halt::Running) {
            Halt::Vcpu => vm::step_in_kvm(self.guest.vcpu, step),
            Halt::Trap(mut frame) => {
                let result = if deliver {
                    ErrorCode::Unsupported as u64
                } else {
                    frame.rflags = (frame.rflags & !(TF | IOPL)) | IF | RF | RESERVED_1;
                    if step {
                        frame.rflags |= TF;
                    }
                    self.write_mailbox(DATA_OFFSET as u64, &frame.encode())?;
                    0
                };
                self.write_mailbox(
                    std::mem::offset_of!(hypercall::Mailbox, result) as u64,
                    &result.to_le_bytes(),
                )?;
                self.write_mailbox(
                    std::mem::offset_of!(hypercall::Mailbox, done) as u64,
                    &hypercall::DONE.to_le_bytes(),
                )
            }
            Halt::Running => Ok(()),
        }
    }

    fn write_mailbox(&self, offset: u64, bytes: &[u8]) -> Result<(), VmError> {
        self.guest
            .ram
            .write_slice(bytes, GuestAddress(self.guest.mailbox + offset))
            .map_err(|_| VmError::Run(kvm_ioctls::Error::new(libc::EFAULT)))
    }

    /// Takes back every breakpoint and lets a stopped program go on.
    fn forget(&mut self) -> Result<(), VmError> {
        for (_, (phys, byte)) in std::mem::take(&mut self.soft) {
            let _ = self.guest.ram.write_obj(byte, GuestAddress(phys));
        }
        self.hard = [None; 4];
        self.go(false, false)
    }

    /// Why the program stopped at the exception in `report`.
    fn trapped(&mut self, report: &FaultReport) -> Result<SingleThreadStopReason<u64>, VmError> {
        let frame = report.frame;
        let reason = match frame.vector {
            DEBUG_VECTOR => {
                if self.stepping {
                    SingleThreadStopReason::DoneStep
                } else if self.debug_registers && vm::dr6(self.guest.vcpu)? & DR6_HITS != 0 {
                    SingleThreadStopReason::HwBreak(())
                } else {
                    SingleThreadStopReason::Signal(Signal::SIGTRAP)
                }
            }
            INVALID_OPCODE if self.soft.contains_key(&frame.rip) => {
                SingleThreadStopReason::SwBreak(())
            }
            v => SingleThreadStopReason::Signal(signal_of(v)),
        };
        self.halt = Halt::Trap(frame);
        Ok(reason)
    }
}

/// The Unix signal a debugger shows for exception vector `v`.
fn signal_of(v: u64) -> Signal {
    match v {
        0 | 16 | 19 => Signal::SIGFPE,
        1 | 3 => Signal::SIGTRAP,
        6 => Signal::SIGILL,
        17 => Signal::SIGBUS,
        _ => Signal::SIGSEGV,
    }
}

/// A KVM error as the stub reports it: fatal, the run ends with it.
fn kvm(e: kvm_ioctls::Error) -> TargetError<VmError> {
    TargetError::Fatal(VmError::Run(e))
}

fn efault() -> TargetError<VmError> {
    TargetError::Errno(libc::EFAULT as u8)
}

impl Target for Machine<'_, '_> {
    type Arch = X86_64_SSE;
    type Error = VmError;

    fn base_ops(&mut self) -> BaseOps<'_, Self::Arch, Self::Error> {
        BaseOps::SingleThread(self)
    }

    fn support_breakpoints(&mut self) -> Option<BreakpointsOps<'_, Self>> {
        Some(self)
    }
}

/// The general registers in gdb's order (RAX, RBX, RCX, RDX, RSI, RDI,
/// RBP, RSP, R8-R15), then RIP and RFLAGS, of a program's frame.
fn frame_slots(f: &mut FaultFrame) -> [&mut u64; 18] {
    [
        &mut f.rax,
        &mut f.rbx,
        &mut f.rcx,
        &mut f.rdx,
        &mut f.rsi,
        &mut f.rdi,
        &mut f.rbp,
        &mut f.rsp,
        &mut f.r8,
        &mut f.r9,
        &mut f.r10,
        &mut f.r11,
        &mut f.r12,
        &mut f.r13,
        &mut f.r14,
        &mut f.r15,
        &mut f.rip,
        &mut f.rflags,
    ]
}

/// The same of the vCPU.
fn vcpu_slots(r: &mut kvm_regs) -> [&mut u64; 18] {
    [
        &mut r.rax,
        &mut r.rbx,
        &mut r.rcx,
        &mut r.rdx,
        &mut r.rsi,
        &mut r.rdi,
        &mut r.rbp,
        &mut r.rsp,
        &mut r.r8,
        &mut r.r9,
        &mut r.r10,
        &mut r.r11,
        &mut r.r12,
        &mut r.r13,
        &mut r.r14,
        &mut r.r15,
        &mut r.rip,
        &mut r.rflags,
    ]
}

/// RFLAGS bits a debugger may write: CF, PF, AF, ZF, SF, DF, OF.
const ARITHMETIC: u64 = 0x8d5 | (1 << 10);

impl SingleThreadBase for Machine<'_, '_> {
    fn read_registers(&mut self, regs: &mut X86_64CoreRegs) -> TargetResult<(), Self> {
        let vcpu = &self.guest.vcpu;
        let s = vcpu.get_sregs().map_err(kvm)?;
        (regs.segments.ds, regs.segments.es) = (s.ds.selector.into(), s.es.selector.into());
        (regs.segments.fs, regs.segments.gs) = (s.fs.selector.into(), s.gs.selector.into());
        let mut r = vcpu.get_regs().map_err(kvm)?;
        let slots = match &mut self.halt {
            Halt::Trap(f) => {
                (regs.segments.cs, regs.segments.ss) = (f.cs as u32, f.ss as u32);
                frame_slots(f)
            }
            _ => {
                (regs.segments.cs, regs.segments.ss) = (s.cs.selector.into(), s.ss.selector.into());
                vcpu_slots(&mut r)
            }
        };
        for (to, from) in regs.regs.iter_mut().zip(&slots) {
            *to = **from;
        }
        (regs.rip, regs.eflags) = (*slots[16], *slots[17] as u32);
        // The kernel uses no floating point: these are the program's.
        let f = vcpu.get_fpu().map_err(kvm)?;
        for (st, fpr) in regs.st.iter_mut().zip(f.fpr.iter()) {
            st.copy_from_slice(&fpr[..10]);
        }
        regs.fpu.fctrl = u32::from(f.fcw);
        regs.fpu.fstat = u32::from(f.fsw);
        regs.fpu.ftag = u32::from(f.ftwx);
        regs.fpu.fop = u32::from(f.last_opcode);
        regs.fpu.fioff = f.last_ip as u32;
        regs.fpu.fooff = f.last_dp as u32;
        for (x, bytes) in regs.xmm.iter_mut().zip(f.xmm.iter()) {
            *x = u128::from_le_bytes(*bytes);
        }
        regs.mxcsr = f.mxcsr;
        Ok(())
    }

    /// The general registers, RIP and the arithmetic flags, XMM and MXCSR;
    /// segments and the system flags stay as they are.
    fn write_registers(&mut self, regs: &X86_64CoreRegs) -> TargetResult<(), Self> {
        let vcpu = &self.guest.vcpu;
        let mut r = vcpu.get_regs().map_err(kvm)?;
        let trapped = matches!(self.halt, Halt::Trap(_));
        let slots = match &mut self.halt {
            Halt::Trap(f) => frame_slots(f),
            _ => vcpu_slots(&mut r),
        };
        for (i, to) in slots.into_iter().enumerate() {
            *to = match i {
                16 => regs.rip,
                17 => (*to & !ARITHMETIC) | (u64::from(regs.eflags) & ARITHMETIC),
                _ => regs.regs[i],
            };
        }
        if !trapped {
            vcpu.set_regs(&r).map_err(kvm)?;
        }
        let mut f = vcpu.get_fpu().map_err(kvm)?;
        for (bytes, x) in f.xmm.iter_mut().zip(regs.xmm.iter()) {
            *bytes = x.to_le_bytes();
        }
        f.mxcsr = regs.mxcsr;
        vcpu.set_fpu(&f).map_err(kvm)
    }

    fn read_addrs(&mut self, start: u64, data: &mut [u8]) -> TargetResult<usize, Self> {
        let mut done = 0;
        while done < data.len() {
            let addr = start.wrapping_add(done as u64);
            let Some(phys) = self.physical(addr).map_err(TargetError::Fatal)? else {
                break;
            };
            let n = ((PAGE - addr % PAGE) as usize).min(data.len() - done);
            let into = &mut data[done..done + n];
            if self.guest.ram.read_slice(into, GuestAddress(phys)).is_err() {
                break;
            }
            done += n;
        }
        if done == 0 && !data.is_empty() {
            return Err(efault());
        }
        Ok(done)
    }

    fn write_addrs(&mut self, start: u64, data: &[u8]) -> TargetResult<(), Self> {
        let mut done = 0;
        while done < data.len() {
            let addr = start.wrapping_add(done as u64);
            let phys = self
                .physical(addr)
                .map_err(TargetError::Fatal)?
                .ok_or_else(efault)?;
            let n = ((PAGE - addr % PAGE) as usize).min(data.len() - done);
            self.guest
                .ram
                .write_slice(&data[done..done + n], GuestAddress(phys))
                .map_err(|_| efault())?;
            done += n;
        }
        Ok(())
    }

    fn support_resume(&mut self) -> Option<SingleThreadResumeOps<'_, Self>> {
        Some(self)
    }
}

impl SingleThreadResume for Machine<'_, '_> {
    /// A signal (the debugger passes on the exception the program stopped
    /// at) lets the exception take its course.
    fn resume(&mut self, signal: Option<Signal>) -> Result<(), VmError> {
        self.go(false, signal.is_some())
    }

    fn support_single_step(&mut self) -> Option<SingleThreadSingleStepOps<'_, Self>> {
        Some(self)
    }
}

impl SingleThreadSingleStep for Machine<'_, '_> {
    fn step(&mut self, signal: Option<Signal>) -> Result<(), VmError> {
        self.go(true, signal.is_some())
    }
}

impl Breakpoints for Machine<'_, '_> {
    fn support_sw_breakpoint(&mut self) -> Option<SwBreakpointOps<'_, Self>> {
        Some(self)
    }

    fn support_hw_breakpoint(&mut self) -> Option<HwBreakpointOps<'_, Self>> {
        if self.debug_registers {
            Some(self)
        } else {
            None
        }
    }
}

/// Breakpoints go in programs only: an exception in the kernel stops the
/// guest.
impl SwBreakpoint for Machine<'_, '_> {
    fn add_sw_breakpoint(&mut self, addr: u64, _kind: usize) -> TargetResult<bool, Self> {
        if self.soft.contains_key(&addr) {
            return Ok(true);
        }
        if addr >= USER_END {
            return Ok(false);
        }
        let Some(phys) = self.physical(addr).map_err(TargetError::Fatal)? else {
            return Ok(false);
        };
        let ram = self.guest.ram;
        let Ok(byte) = ram.read_obj::<u8>(GuestAddress(phys)) else {
            return Ok(false);
        };
        if ram.write_obj(BREAK, GuestAddress(phys)).is_err() {
            return Ok(false);
        }
        self.soft.insert(addr, (phys, byte));
        Ok(true)
    }

    fn remove_sw_breakpoint(&mut self, addr: u64, _kind: usize) -> TargetResult<bool, Self> {
        let Some((phys, byte)) = self.soft.remove(&addr) else {
            return Ok(false);
        };
        Ok(self.guest.ram.write_obj(byte, GuestAddress(phys)).is_ok())
    }
}

impl HwBreakpoint for Machine<'_, '_> {
    fn add_hw_breakpoint(&mut self, addr: u64, _kind: usize) -> TargetResult<bool, Self> {
        match self.hard.iter_mut().find(|b| b.is_none()) {
            Some(free) if addr < USER_END => {
                *free = Some(addr);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    fn remove_hw_breakpoint(&mut self, addr: u64, _kind: usize) -> TargetResult<bool, Self> {
        match self.hard.iter_mut().find(|b| **b == Some(addr)) {
            Some(used) => {
                *used = None;
                Ok(true)
            }
            None => Ok(false),
        }
    }
}

/// Marks the guest running for the watcher while it lives.
struct Running<'a>(&'a AtomicBool);

impl<'a> Running<'a> {
    fn new(flag: &'a AtomicBool) -> Self {
        flag.store(true, Ordering::Release);
        Self(flag)
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// The stub's event loop: runs the guest through the monitor's exit loop
/// until it stops for the debugger, ends, or the debugger sends a byte.
struct Loop<'r, 'e>(std::marker::PhantomData<Machine<'r, 'e>>);

impl<'r, 'e> BlockingEventLoop for Loop<'r, 'e> {
    type Target = Machine<'r, 'e>;
    type Connection = Debugger;
    type StopReason = SingleThreadStopReason<u64>;

    fn wait_for_stop_reason(
        target: &mut Machine<'r, 'e>,
        conn: &mut Debugger,
    ) -> Result<
        Event<Self::StopReason>,
        WaitForStopReasonError<VmError, <Debugger as Connection>::Error>,
    > {
        use WaitForStopReasonError::{Connection as Conn, Target as Guest};
        let flag = target.running.clone();
        let _running = flag.as_deref().map(Running::new);
        loop {
            if conn.peek().map_err(Conn)?.is_some() {
                return Ok(Event::IncomingData(conn.read().map_err(Conn)?));
            }
            let exit = vm::run(target.guest.vcpu).map_err(Guest)?;
            match exit {
                // A step of the kernel (before the first instruction).
                Exit::Debug => {
                    vm::step_in_kvm(target.guest.vcpu, false).map_err(Guest)?;
                    target.halt = Halt::Vcpu;
                    return Ok(Event::TargetStopped(SingleThreadStopReason::DoneStep));
                }
                Exit::IoOut { port, size, value }
                    if port == hypercall::PORT
                        && size == hypercall::WIDTH
                        && value == nr::DEBUG =>
                {
                    let mut bytes = [0u8; FaultReport::SIZE];
                    let at = GuestAddress(target.guest.mailbox + DATA_OFFSET as u64);
                    if target.guest.ram.read_slice(&mut bytes, at).is_ok() {
                        let reason = target
                            .trapped(&FaultReport::decode(&bytes))
                            .map_err(Guest)?;
                        return Ok(Event::TargetStopped(reason));
                    }
                }
                _ => {}
            }
            if let Some(stop) = (target.guest.exits)(target.guest.vcpu, exit).map_err(Guest)? {
                let reason = match &stop {
                    Stop::Exited(code) => SingleThreadStopReason::Exited(*code),
                    Stop::Fault(_) => SingleThreadStopReason::Terminated(Signal::SIGSEGV),
                    _ => SingleThreadStopReason::Terminated(Signal::SIGKILL),
                };
                target.ended = Some(stop);
                return Ok(Event::TargetStopped(reason));
            }
        }
    }

    /// The guest is stopped whenever the stub reads: it stops at once.
    fn on_interrupt(target: &mut Machine<'r, 'e>) -> Result<Option<Self::StopReason>, VmError> {
        target.halt = Halt::Vcpu;
        Ok(Some(SingleThreadStopReason::Signal(Signal::SIGINT)))
    }
}
