//! `weft run`: build the VM, boot, serve exits until the guest stops, report.

pub use crate::address_space::Payload;
use crate::affinity::{self, Role};
use crate::boot::{self, BootError, BootSpec, VmmShape};
use crate::catalog::Catalog;
use crate::exit::{Exit, ExitContext, Outcome, Stop, handle_exit};
use crate::gdb;
use crate::guest_memory::{self, MemoryError};
use crate::host;
use crate::kvm_streams::KvmGuest;
use crate::process_view::{GuestClock, ProcessBook, ProcessView};
use crate::processes::{self, FirstProgram, Processes};
use crate::report::{self, Context};
use crate::sandbox::{self, Profile, SandboxError};
use crate::stats::{self, MemoryFigures, Stats};
use crate::status::ExitStatus;
use crate::stopper;
use crate::streams::{DRAIN_LIMIT, DeviceLink, FabricLink, Policy, Relay, RelayError, host_output};
use crate::symbols::Symbols;
use crate::vm::{self, VmError};
use kvm_ioctls::VcpuFd;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use thiserror::Error;
use vm_memory::{Bytes, GuestAddress};
use weft_control::boot::{BootInfo, BootStamps};
use weft_control::process::StatusPage;
use weft_control::system::SystemInfo;

/// Local APIC timer frequency under KVM and QEMU alike (one bus cycle per
/// nanosecond).
const APIC_TIMER_HZ: u64 = 1_000_000_000;

/// What to run.
pub struct RunConfig<'a> {
    pub kernel: &'a [u8],
    pub program: &'a [u8],
    /// The payload block (a Wasm module, or one compiled), if any.
    pub payload: Option<Payload<'a>>,
    /// The program's name as given (for reports).
    pub program_name: &'a str,
    /// The program's arguments, its name first.
    pub args: Vec<Vec<u8>>,
    /// The program's environment variables, `(KEY, VALUE)` (PROTOCOL.md §4).
    pub env: Vec<(Vec<u8>, Vec<u8>)>,
    pub mem_bytes: u64,
    pub timeout: Option<Duration>,
    pub stats: bool,
    /// What the guest's streams may reach.
    pub policy: Policy,
    /// The programs the guest may spawn by name.
    pub catalog: &'a dyn Catalog,
    /// For a device guest: the link its agent (the first program) takes
    /// with a `DEVICE` stream (PROTOCOL.md §15), so that the link's handle
    /// drives it.
    pub device: Option<DeviceLink>,
    /// For a device guest: where its programs' fabric calls (`FABRIC`
    /// streams, PROTOCOL.md §17) go. Without it they are refused.
    pub fabric: Option<FabricLink>,
    /// The sandbox the monitor enters once the VM is built
    /// (`crate::sandbox`), if any: `weft run`'s (files, ports and system
    /// calls), or a daemon's (system calls only: its threads run already,
    /// and its Zenoh node and state directory need more).
    pub sandbox: Option<sandbox::Profile>,
    /// `--gdb PORT`: wait for a debugger on this loopback port before the
    /// first guest instruction (PROTOCOL.md §21).
    pub gdb: Option<u16>,
    /// Which VMM runs the guest (`--vmm`, `--accel`).
    pub engine: Engine,
}

/// The VMM that runs the guest.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Engine {
    /// Weft's own KVM monitor, in this process.
    #[default]
    Weft,
    /// QEMU, in a child process, with this accelerator (PROTOCOL.md §22).
    Qemu(Accel),
}

/// QEMU's accelerator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accel {
    /// KVM: the guest runs on the CPU.
    Kvm,
    /// TCG: QEMU translates the guest's code; no `/dev/kvm` needed.
    Tcg,
}

/// Why `weft run` could not run the guest to an end.
#[derive(Debug, Error)]
pub enum RunError {
    #[error(transparent)]
    Boot(#[from] BootError),
    #[error(transparent)]
    Memory(#[from] MemoryError),
    #[error(transparent)]
    Vm(#[from] VmError),
    #[error(transparent)]
    Relay(#[from] RelayError),
    /// The host's random source gave no seed for the system page.
    #[error("cannot seed the system page: {0}")]
    Seed(std::io::Error),
    /// `--timeout` and the stop signals could not be armed.
    #[error("cannot install the stop signal handlers: {0}")]
    Signals(std::io::Error),
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    /// `--gdb`'s port could not be listened on.
    #[error("cannot listen for gdb: {0}")]
    Gdb(std::io::Error),
    /// QEMU could not be started, or failed while running the guest.
    #[error(transparent)]
    Qemu(#[from] crate::qemu::QemuError),
}

impl RunError {
    /// The exit status for this error: configuration problems are 2, a VM
    /// that fails while running is a crash.
    pub fn status(&self) -> ExitStatus {
        match self {
            RunError::Vm(VmError::Run(_) | VmError::Refuse { .. })
            | RunError::Relay(_)
            | RunError::Qemu(crate::qemu::QemuError::Lost(_)) => ExitStatus::Crash,
            RunError::Vm(VmError::Open(_) | VmError::Kvm { .. })
            | RunError::Boot(_)
            | RunError::Memory(_)
            | RunError::Seed(_)
            | RunError::Signals(_)
            | RunError::Sandbox(_)
            | RunError::Gdb(_)
            | RunError::Qemu(_) => ExitStatus::Usage,
        }
    }

    /// True if the program the user gave is at fault (a bad file): its name
    /// belongs in the message.
    pub fn is_program_error(&self) -> bool {
        matches!(self, RunError::Boot(b) if b.is_program_error())
    }
}

/// Fills the program's system page (PROTOCOL.md §4.2): the TSC rate, the
/// Unix time at which the guest TSC read 0, and a seed from the host's
/// random source. Returns what it wrote, the template of spawned
/// programs' pages.
fn write_system_page(
    ram: &guest_memory::Ram,
    guest_tsc: Option<u64>,
    phys: u64,
    tsc_hz: u64,
    mem_bytes: u64,
    listen: &[std::net::SocketAddr],
) -> Result<SystemInfo, RunError> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    use std::io::IsTerminal;
    let mut info = SystemInfo {
        tsc_hz,
        heap_mapped: weft_control::layout::heap_premapped(mem_bytes),
        stdout_terminal: std::io::stdout().is_terminal(),
        stderr_terminal: std::io::stderr().is_terminal(),
        ..SystemInfo::default()
    }
    .with_listen(listen);
    let guest_ns = guest_tsc.map_or(0, |t| info.ticks_to_ns(t));
    info.realtime_at_tsc0 = now.saturating_sub(guest_ns);
    host::fill_random(&mut info.seed).map_err(RunError::Seed)?;
    ram.write_slice(&info.encode(), GuestAddress(phys))
        .map_err(|_| RunError::Boot(BootError::Write(phys)))?;
    Ok(info)
}

/// Runs the guest; returns its exit status after printing any report.
pub fn run(cfg: RunConfig<'_>, start: Instant) -> Result<ExitStatus, RunError> {
    // Validate both images before creating anything.
    boot::kernel_plan(cfg.kernel)?;
    boot::program_plan(cfg.program)?;
    match cfg.engine {
        Engine::Weft => run_kvm(cfg, start),
        Engine::Qemu(accel) => crate::qemu::run(cfg, accel, start),
    }
}

/// The guest under Weft's own KVM monitor: the vCPU runs on this thread.
fn run_kvm(mut cfg: RunConfig<'_>, start: Instant) -> Result<ExitStatus, RunError> {
    // While this is the only thread: the threads started from here on run
    // off the vCPU's CPU.
    affinity::place_process();
    let mut stats = Stats::default();
    // Bound before the sandbox, which allows binding `--listen` ports only.
    let gdb = cfg
        .gdb
        .map(gdb::listen)
        .transpose()
        .map_err(RunError::Gdb)?;
    let ram = guest_memory::create(cfg.mem_bytes)?;
    let guest = Arc::new(KvmGuest::new(vm::create(&ram)?, ram.clone()));
    // Files and ports, while this is the only thread; `/dev/kvm` is open.
    if cfg.sandbox.is_some_and(Profile::is_run) {
        stats.sandbox = Some(restrict_files(&cfg.policy)?);
    }
    // The TSC rate is the host's: the vCPU can tell it before it has state.
    let mut vcpu = vm::create_vcpu(guest.vm())?;
    let tsc_hz = vm::tsc_hz(&vcpu);
    let booted = Booted::build(
        &cfg,
        &ram,
        VmmShape::default(),
        tsc_hz,
        vm::guest_tsc(&vcpu),
    )?;
    let (relay, launch) = Launch::start(&mut cfg, guest.clone())?;
    launch.attach(&ram, &relay, &booted, vm::guest_tsc(&vcpu))?;
    stats.phases.vm_created = Some(start.elapsed());
    vm::set_boot_state(&vcpu, &booted.state)?;
    stats.phases.kernel_loaded = Some(start.elapsed());
    stopper::arm(cfg.timeout).map_err(RunError::Signals)?;
    if let Some(profile) = cfg.sandbox {
        sandbox::restrict_calls(profile)?;
    }

    affinity::pin(Role::Vcpu);
    let stop = {
        let mut processes = booted.processes(&cfg, &ram, Some(guest.vm()), &relay);
        // One exit's handling: the run loop's body, and the debugger's
        // when one is attached (`--gdb`).
        let mut exits = |vcpu: &mut VcpuFd, exit: Exit| -> Result<Option<Stop>, VmError> {
            match dispatch(
                exit,
                &ram,
                booted.state.mailbox_phys,
                &mut stats,
                &mut processes,
            ) {
                Outcome::Continue => {}
                Outcome::Stop(s) => return Ok(Some(s)),
                Outcome::Doorbell => relay.ring(),
                Outcome::Park => {
                    let parked = relay.park(|due| vm::due_in(vcpu, due, tsc_hz));
                    vm::complete_read(vcpu, parked);
                }
                Outcome::Refuse(fault) => vm::inject_page_fault(vcpu, fault)?,
            }
            Ok(None)
        };
        let debugged = match gdb {
            Some(listening) => gdb::debug(
                listening,
                gdb::Guest {
                    vcpu: &mut vcpu,
                    ram: &ram,
                    mailbox: booted.state.mailbox_phys,
                    program_root: booted.state.program_root,
                    exits: &mut exits,
                },
            )?,
            None => gdb::Session::Detached,
        };
        match debugged {
            gdb::Session::Ended(stop) => stop,
            gdb::Session::Detached => loop {
                let exit = vm::run(&mut vcpu)?;
                if let Some(stop) = exits(&mut vcpu, exit)? {
                    break stop;
                }
            },
        }
    };
    stats.phases.exit = Some(start.elapsed());
    Ok(conclude(
        stop,
        Ending {
            cfg: &cfg,
            ram: &ram,
            relay,
            state: &booted.state,
            stats,
            start,
            tsc_hz,
            tsc_now: vm::guest_tsc(&vcpu),
        },
    ))
}

/// Landlock's half of the sandbox for `policy` (`crate::sandbox`).
pub(crate) fn restrict_files(policy: &Policy) -> Result<sandbox::FileRules, RunError> {
    Ok(sandbox::restrict_files(&grants(policy))?)
}

/// What `policy` grants the guest, as the sandbox's file rules see it.
pub(crate) fn grants(policy: &Policy) -> sandbox::Grants<'_> {
    sandbox::Grants {
        fs_root: policy.fs_root.as_ref(),
        read_only: policy.read_only,
        listen: &policy.listen,
        connect: &policy.connect,
    }
}

/// What the run keeps of its configuration once the relay took the policy
/// and the links.
pub(crate) struct Launch {
    view_slot: Option<Arc<std::sync::OnceLock<ProcessView>>>,
}

/// The guest as booted: its boot state, the system page, the book of
/// process figures.
pub(crate) struct Booted {
    pub state: boot::BootState,
    system: SystemInfo,
    book: Arc<ProcessBook>,
}

impl Launch {
    /// Starts the relay over `vmm`, handing it the run's policy and links.
    pub fn start(
        cfg: &mut RunConfig<'_>,
        vmm: Arc<dyn crate::streams::Vmm>,
    ) -> Result<(Relay, Self), RunError> {
        let launch = Self {
            view_slot: cfg.device.as_ref().map(DeviceLink::view_slot),
        };
        let relay = Relay::start(
            vmm,
            std::mem::take(&mut cfg.policy),
            cfg.device.take(),
            cfg.fabric.take(),
        )?;
        Ok((relay, launch))
    }

    /// Tells the relay where the booted guest's status page is, and gives
    /// a device link its process view; `guest_tsc` is the guest's TSC now.
    pub fn attach(
        self,
        ram: &guest_memory::Ram,
        relay: &Relay,
        booted: &Booted,
        guest_tsc: Option<u64>,
    ) -> Result<(), RunError> {
        let status = booted.state.status_phys;
        let page =
            guest_memory::host_object::<StatusPage>(ram, status).ok_or(BootError::Write(status))?;
        // SAFETY: the status page is a BOOT page of guest RAM (`ram`, which
        // the relay's VMM holds for as long as the relay lives); the
        // monitor otherwise only reads the page (`ProcessView`), never its
        // `wake` word.
        unsafe { relay.set_status_page(page) };
        if let Some(slot) = self.view_slot {
            let clock = GuestClock::new(Instant::now(), guest_tsc.unwrap_or(0), booted.system);
            let view = ProcessView::new(
                ram.clone(),
                status,
                clock,
                booted.book.clone(),
                relay.stream_counts(),
            );
            // Empty: a link goes to one run only (the run takes it).
            let _ = slot.set(view);
        }
        Ok(())
    }
}

impl Booted {
    /// Builds the boot state for the VMM `vmm` in `ram` (PROTOCOL.md
    /// §2) and fills the system page as if the guest TSC, running at
    /// `tsc_hz`, read `guest_tsc` now.
    pub fn build(
        cfg: &RunConfig<'_>,
        ram: &guest_memory::Ram,
        vmm: VmmShape,
        tsc_hz: u64,
        guest_tsc: Option<u64>,
    ) -> Result<Self, RunError> {
        let spec = BootSpec {
            mem_size: cfg.mem_bytes,
            kernel: cfg.kernel,
            program: cfg.program,
            args: &cfg.args,
            env: &cfg.env,
            payload: cfg.payload,
            tsc_hz,
            apic_timer_hz: APIC_TIMER_HZ,
            vmm,
        };
        let state = boot::build(ram, &spec)?;
        let system = write_system_page(
            ram,
            guest_tsc,
            state.system_phys,
            tsc_hz,
            cfg.mem_bytes,
            &cfg.policy.listen,
        )?;
        Ok(Self {
            state,
            system,
            book: Arc::new(ProcessBook::default()),
        })
    }
}

impl Booted {
    /// The monitor's side of the guest's processes, the first one running.
    pub fn processes<'a>(
        &self,
        cfg: &'a RunConfig<'_>,
        ram: &'a guest_memory::Ram,
        vm: Option<&'a kvm_ioctls::VmFd>,
        relay: &'a Relay,
    ) -> Processes<'a, Relay> {
        Processes::new(
            ram,
            vm,
            relay,
            cfg.catalog,
            processes::Booted {
                pool: self.state.process_pool,
                kernel_root: self.state.kernel_root,
                status_page: self.state.status_phys,
                kernel_elf: cfg.kernel,
                system: self.system,
                first: FirstProgram {
                    root: self.state.program_root,
                    arg0: cfg.args.first().cloned().unwrap_or_default(),
                    bytes: self.state.program_bytes,
                },
                book: self.book.clone(),
            },
        )
    }
}

/// Handles one exit (PROTOCOL.md §3), first honouring a requested stop;
/// says what the VMM must do next.
pub(crate) fn dispatch(
    exit: Exit,
    ram: &guest_memory::Ram,
    mailbox: u64,
    stats: &mut Stats,
    processes: &mut Processes<'_, Relay>,
) -> Outcome {
    if let Some(request) = stopper::requested() {
        return Outcome::Stop(request.into());
    }
    // Console writes (§3.3) join the queues the relay's copies go to,
    // waiting for room only until a stop is requested.
    let stopping = || stopper::requested().is_some();
    let mut cx = ExitContext {
        ram,
        mailbox,
        stdout: host_output::stdout().until(stopping),
        stderr: host_output::stderr().until(stopping),
        stats,
        processes,
    };
    handle_exit(exit, &mut cx)
}

/// What the end of a run reports from.
pub(crate) struct Ending<'a, 'c> {
    pub cfg: &'a RunConfig<'c>,
    pub ram: &'a guest_memory::Ram,
    pub relay: Relay,
    pub state: &'a boot::BootState,
    pub stats: Stats,
    pub start: Instant,
    pub tsc_hz: u64,
    /// The guest TSC now, if the VMM can tell.
    pub tsc_now: Option<u64>,
}

/// Ends the run after the guest stopped with `stop`: lets the relay
/// deliver what is left (§8.5), prints the report and `--stats`, and
/// returns the exit status.
pub(crate) fn conclude(stop: Stop, end: Ending<'_, '_>) -> ExitStatus {
    let Ending {
        cfg,
        ram,
        relay,
        state,
        mut stats,
        start,
        tsc_hz,
        tsc_now,
    } = end;
    // Nothing waits on `weft`'s output past this (§8.5).
    let deadline = Instant::now() + DRAIN_LIMIT;
    stats.doorbells = relay.forwarded();
    let budgets = relay.budgets();
    stats.fs_quota = relay.fs_quota();
    let relay_stats = relay.finish();
    stats.budgets = Some(budgets.figures());
    stats.stream_bytes = relay_stats.bytes_out.load(Ordering::Relaxed);
    stats.stream_interrupts = relay_stats.interrupts.load(Ordering::Relaxed);
    stats.streams_opened = relay_stats.opened.load(Ordering::Relaxed);
    stats.stream_doorbells = relay_stats.doorbells.load(Ordering::Relaxed);

    let kernel_syms = Symbols::new("kernel", cfg.kernel);
    let program_syms = Symbols::new(cfg.program_name, cfg.program);
    let (status, text) = report::report(
        &stop,
        &Context {
            ram,
            kernel: &kernel_syms,
            program: &program_syms,
        },
    );
    // Written through standard error's queue, never waiting past the
    // deadline: a reader that stopped reading does not hold `weft`.
    let mut last = String::new();
    if stop == Stop::Timeout {
        last += &format!(
            "weft: timed out after {:.1} s\n",
            cfg.timeout.unwrap_or_default().as_secs_f64()
        );
    }
    last += &text;
    if cfg.stats {
        let mut raw = [0u8; BootStamps::SIZE];
        let at = state.boot_info_phys + std::mem::offset_of!(BootInfo, stamps) as u64;
        if let (Ok(()), Some(tsc_now)) = (ram.read_slice(&mut raw, GuestAddress(at)), tsc_now) {
            stats.phases.set_guest_stamps(
                start,
                &BootStamps::decode(&raw),
                tsc_hz,
                tsc_now,
                Instant::now(),
            );
        }
        let mem = MemoryFigures {
            guest_mib: cfg.mem_bytes >> 20,
            rss_peak_kib: stats::rss_peak_kib(),
            guest_resident_kib: guest_memory::resident_bytes(ram) / 1024,
        };
        last += &stats.render(&mem);
    }
    host_output::settle(&last, deadline);
    status
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_control::args::ArgsError;

    #[test]
    fn a_vm_that_fails_while_running_is_a_crash_and_setup_errors_are_usage() {
        let crash = [
            RunError::Vm(VmError::Run(kvm_ioctls::Error::new(libc::EFAULT))),
            RunError::Relay(RelayError::Stopped),
        ];
        for e in crash {
            assert_eq!(e.status(), ExitStatus::Crash, "{e}");
        }
        let usage = [
            RunError::Vm(VmError::Open(kvm_ioctls::Error::new(libc::ENOENT))),
            RunError::Boot(BootError::Args(ArgsError::TooLarge)),
            RunError::Signals(std::io::ErrorKind::Other.into()),
        ];
        for e in usage {
            assert_eq!(e.status(), ExitStatus::Usage, "{e}");
        }
    }

    #[test]
    fn only_the_programs_own_faults_name_it() {
        assert!(RunError::Boot(BootError::Args(ArgsError::TooLarge)).is_program_error());
        assert!(!RunError::Boot(BootError::Write(0)).is_program_error());
        assert!(!RunError::Relay(RelayError::Stopped).is_program_error());
    }
}
