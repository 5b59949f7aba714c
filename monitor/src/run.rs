//! `weft run`: build the VM, boot, serve exits until the guest stops, report.

use crate::affinity::{self, Role};
use crate::boot::{self, BootError, BootSpec};
use crate::catalog::Catalog;
use crate::exit::{Exit, ExitContext, Outcome, Stop, handle_exit};
use crate::gdb;
use crate::guest_memory::{self, MemoryError};
use crate::host;
use crate::kvm_streams::KvmGuest;
use crate::process_view::{GuestClock, ProcessBook, ProcessView};
use crate::processes::{Booted, FirstProgram, Processes};
use crate::report::{self, Context};
use crate::sandbox::{self, SandboxError};
use crate::stats::{self, MemoryFigures, Stats};
use crate::status::ExitStatus;
use crate::stopper::{self, StopRequest};
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

/// Local APIC timer frequency under KVM (one bus cycle per nanosecond).
const KVM_APIC_TIMER_HZ: u64 = 1_000_000_000;

/// What to run.
pub struct RunConfig<'a> {
    pub kernel: &'a [u8],
    pub program: &'a [u8],
    /// The payload block's bytes (a Wasm module), if any.
    pub payload: Option<&'a [u8]>,
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
    /// Whether the monitor enters its sandbox (`crate::sandbox`) once the
    /// VM is built: `weft run`'s own process, not a daemon's (whose Zenoh
    /// session needs more).
    pub sandbox: bool,
    /// `--gdb PORT`: wait for a debugger on this loopback port before the
    /// first guest instruction (PROTOCOL.md §21).
    pub gdb: Option<u16>,
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
}

impl RunError {
    /// The exit status for this error: configuration problems are 2, a VM
    /// that fails while running is a crash.
    pub fn status(&self) -> ExitStatus {
        match self {
            RunError::Vm(VmError::Run(_) | VmError::Refuse { .. }) | RunError::Relay(_) => {
                ExitStatus::Crash
            }
            RunError::Vm(VmError::Open(_) | VmError::Kvm { .. })
            | RunError::Boot(_)
            | RunError::Memory(_)
            | RunError::Seed(_)
            | RunError::Signals(_)
            | RunError::Sandbox(_)
            | RunError::Gdb(_) => ExitStatus::Usage,
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
    vcpu: &kvm_ioctls::VcpuFd,
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
    let guest_ns = vm::guest_tsc(vcpu).map_or(0, |t| info.ticks_to_ns(t));
    info.realtime_at_tsc0 = now.saturating_sub(guest_ns);
    host::fill_random(&mut info.seed).map_err(RunError::Seed)?;
    ram.write_slice(&info.encode(), GuestAddress(phys))
        .map_err(|_| RunError::Boot(BootError::Write(phys)))?;
    Ok(info)
}

/// Runs the guest; returns its exit status after printing any report.
pub fn run(cfg: RunConfig<'_>, start: Instant) -> Result<ExitStatus, RunError> {
    let mut stats = Stats::default();
    // Validate both images before creating anything.
    boot::kernel_plan(cfg.kernel)?;
    boot::program_plan(cfg.program)?;

    // Bound before the sandbox, which allows binding `--listen` ports only.
    let gdb = cfg
        .gdb
        .map(gdb::listen)
        .transpose()
        .map_err(RunError::Gdb)?;
    let ram = guest_memory::create(cfg.mem_bytes)?;
    let guest = Arc::new(KvmGuest::new(vm::create(&ram)?, ram.clone()));
    // Files and ports, while this is the only thread; `/dev/kvm` is open.
    if cfg.sandbox {
        let p = &cfg.policy;
        stats.sandbox = Some(sandbox::restrict_files(&sandbox::Grants {
            fs_root: p.fs_root.as_ref(),
            read_only: p.read_only,
            listen: &p.listen,
            connect: &p.connect,
        })?);
    }
    let listen = cfg.policy.listen.clone();
    let view_slot = cfg.device.as_ref().map(DeviceLink::view_slot);
    let relay = Relay::start(guest.clone(), cfg.policy, cfg.device, cfg.fabric)?;
    stats.phases.vm_created = Some(start.elapsed());
    // The vCPU is created after the boot state, but the TSC rate is the host's.
    let spec = BootSpec {
        mem_size: cfg.mem_bytes,
        kernel: cfg.kernel,
        program: cfg.program,
        args: &cfg.args,
        env: &cfg.env,
        payload: cfg.payload,
        tsc_hz: 0,
        apic_timer_hz: KVM_APIC_TIMER_HZ,
    };
    let state = boot::build(&ram, &spec)?;
    let page = guest_memory::host_object::<StatusPage>(&ram, state.status_phys)
        .ok_or(BootError::Write(state.status_phys))?;
    // SAFETY: the status page is a BOOT page of guest RAM (`ram`, which the
    // relay's VMM holds for as long as the relay lives); the monitor
    // otherwise only reads the page (`ProcessView`), never its `wake` word.
    unsafe { relay.set_status_page(page) };
    let mut vcpu = vm::create_vcpu(guest.vm(), &state)?;
    let tsc_hz = vm::tsc_hz(&vcpu);
    ram.write_obj(
        tsc_hz,
        GuestAddress(state.boot_info_phys + std::mem::offset_of!(BootInfo, tsc_hz) as u64),
    )
    .map_err(|_| BootError::Write(state.boot_info_phys))?;
    let system = write_system_page(
        &ram,
        &vcpu,
        state.system_phys,
        tsc_hz,
        cfg.mem_bytes,
        &listen,
    )?;
    let book = Arc::new(ProcessBook::default());
    if let Some(slot) = view_slot {
        let clock = GuestClock::new(Instant::now(), vm::guest_tsc(&vcpu).unwrap_or(0), system);
        let view = ProcessView::new(
            ram.clone(),
            state.status_phys,
            clock,
            book.clone(),
            relay.stream_counts(),
        );
        // Empty: a link goes to one run only (the run takes it).
        let _ = slot.set(view);
    }
    stats.phases.kernel_loaded = Some(start.elapsed());
    stopper::arm(cfg.timeout).map_err(RunError::Signals)?;
    if cfg.sandbox {
        sandbox::restrict_calls()?;
    }

    affinity::pin(Role::Vcpu);
    let stop = {
        let mut processes = Processes::new(
            &ram,
            guest.vm(),
            &relay,
            cfg.catalog,
            Booted {
                pool: state.process_pool,
                kernel_root: state.kernel_root,
                status_page: state.status_phys,
                kernel_elf: cfg.kernel,
                system,
                first: FirstProgram {
                    root: state.program_root,
                    arg0: cfg.args.first().cloned().unwrap_or_default(),
                    bytes: state.program_bytes,
                },
                book,
            },
        );
        // One exit's handling: the run loop's body, and the debugger's
        // when one is attached (`--gdb`).
        let mut exits = |vcpu: &mut VcpuFd, exit: Exit| -> Result<Option<Stop>, VmError> {
            match stopper::requested() {
                Some(StopRequest::Timeout) => return Ok(Some(Stop::Timeout)),
                Some(StopRequest::Signal(sig)) => return Ok(Some(Stop::Signal(sig))),
                None => {}
            }
            // Console writes (§3.3) join the queues the relay's copies go
            // to, waiting for room only until a stop is requested.
            let stopping = || stopper::requested().is_some();
            let mut cx = ExitContext {
                ram: &ram,
                mailbox: state.mailbox_phys,
                stdout: host_output::stdout().until(stopping),
                stderr: host_output::stderr().until(stopping),
                stats: &mut stats,
                processes: &mut processes,
            };
            match handle_exit(exit, &mut cx) {
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
                    mailbox: state.mailbox_phys,
                    program_root: state.program_root,
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
            ram: &ram,
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
        if let (Ok(()), Some(tsc_now)) = (
            ram.read_slice(&mut raw, GuestAddress(at)),
            vm::guest_tsc(&vcpu),
        ) {
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
            guest_resident_kib: guest_memory::resident_bytes(&ram) / 1024,
        };
        last += &stats.render(&mem);
    }
    host_output::settle(&last, deadline);
    Ok(status)
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
