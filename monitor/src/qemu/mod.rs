//! `weft run --vmm qemu [--accel kvm|tcg]` (PROTOCOL.md §22): the same
//! kernel, programs, streams and reports, with QEMU running the guest in a
//! child process. The monitor builds the boot state in a memory file QEMU
//! uses as the machine's RAM, gives QEMU a firmware ROM that enters the
//! kernel, serves hypercalls from a socket QEMU's debug-port device writes
//! their numbers to, and serves the streams from the shared pipe regions
//! with the same relay as under its own KVM monitor.

mod guest;
mod machine;

use crate::boot::VmmShape;
use crate::exit::{Exit, Outcome, Stop};
use crate::guest_memory::MemoryError;
use crate::run::{self, Accel, Booted, Ending, Launch, RunConfig, RunError};
use crate::sandbox;
use crate::stats::Stats;
use crate::status::ExitStatus;
use crate::stopper;
use guest::QemuGuest;
use machine::Machine;
use std::sync::Arc;
use std::time::{Duration, Instant};
use thiserror::Error;
use weft_control::hypercall;

/// The longest the idle guest halts before it looks at its wake word:
/// the guest's half of the polling that stands in for the stream
/// interrupt (§22.4).
const IDLE_POLL: Duration = Duration::from_millis(1);

/// How long the monitor waits for a hypercall before it looks for a
/// requested stop again.
const STOP_CHECK: Duration = Duration::from_millis(20);

/// Why QEMU could not run the guest.
#[derive(Debug, Error)]
pub enum QemuError {
    /// No QEMU binary on `PATH`.
    #[error(
        "cannot run {}: not found (install Debian's qemu-system-x86, or run `make setup`)",
        machine::QEMU
    )]
    Missing,
    /// `--accel kvm` on a host without `/dev/kvm`.
    #[error("--accel kvm needs /dev/kvm, which this host does not have (use --accel tcg)")]
    NoKvm,
    /// The kernel ELF carries no usable firmware for QEMU.
    #[error("cannot build QEMU's firmware: {0}")]
    NoFirmware(&'static str),
    /// Setting QEMU up failed on the host.
    #[error("cannot start QEMU: {0}")]
    Setup(std::io::Error),
    /// QEMU ended without the guest stopping (how, if known).
    #[error("QEMU ended while the guest ran ({})", how(.0))]
    Lost(Option<std::process::ExitStatus>),
    /// QEMU refused a command on its control socket.
    #[error("QEMU refused to start the guest: {0}")]
    Control(String),
    #[error(transparent)]
    Memory(#[from] MemoryError),
}

/// How QEMU ended, for a message.
fn how(status: &Option<std::process::ExitStatus>) -> String {
    status.map_or("its status is unknown".into(), |s| s.to_string())
}

/// Runs the guest under QEMU; returns its exit status after printing any
/// report.
///
/// QEMU starts stopped. The monitor enters its sandbox (unless told not
/// to) while it is still the only thread, once QEMU, which the rules
/// would bind too, runs; only then do the relay and the other threads
/// start, and then the guest (§22.5).
pub fn run(mut cfg: RunConfig<'_>, accel: Accel, start: Instant) -> Result<ExitStatus, RunError> {
    let mut stats = Stats::default();
    let tsc_hz = machine::tsc_hz();
    let guest = Arc::new(QemuGuest::create(cfg.mem_bytes).map_err(QemuError::from)?);
    let ram = guest.ram().clone();
    let vmm = VmmShape {
        firmware: true,
        xapic: accel == Accel::Tcg,
        idle_poll_ns: Some(IDLE_POLL.as_nanos() as u64),
    };
    // QEMU starts the guest's TSC at 0 as it starts the vCPU, shortly
    // after this: the guest's clock runs behind by QEMU's start-up.
    let booted = Booted::build(&cfg, &ram, vmm, tsc_hz, Some(0))?;
    let mut machine = Machine::spawn(&machine::Spec {
        accel,
        mem_size: cfg.mem_bytes,
        memory: guest.file(),
        kernel: cfg.kernel,
        boot: &booted.state,
        gdb: cfg.gdb,
    })?;
    let sandboxed = cfg.sandbox.is_some_and(sandbox::Profile::is_run);
    if sandboxed {
        stats.sandbox = Some(run::restrict_files(&cfg.policy)?);
    }
    let (relay, launch) = Launch::start(&mut cfg, guest.clone())?;
    launch.attach(&ram, &relay, &booted, Some(0))?;
    machine.pass_on_stderr()?;
    stats.phases.vm_created = Some(start.elapsed());
    stopper::arm(cfg.timeout).map_err(RunError::Signals)?;
    if sandboxed {
        sandbox::restrict_calls(sandbox::Profile::Run {
            child: Some(machine.pid()),
        })?;
    }
    match cfg.gdb {
        Some(port) => crate::streams::host_output::stderr().notice(&format!(
            "weft: waiting for gdb on 127.0.0.1:{port} (target remote 127.0.0.1:{port}; QEMU's stub)\n"
        )),
        None => machine.resume()?,
    }
    stats.phases.kernel_loaded = Some(start.elapsed());
    let stop = {
        let mut processes = booted.processes(&cfg, &ram, None, &relay);
        loop {
            if let Some(request) = stopper::requested() {
                break request.into();
            }
            let number = match machine.next_hypercall(STOP_CHECK) {
                Ok(Some(n)) => n,
                Ok(None) => continue,
                // `-no-reboot`: a triple fault ends QEMU, with status 0.
                Err(QemuError::Lost(Some(status))) if status.success() => {
                    break Stop::TripleFault;
                }
                Err(e) => return Err(e.into()),
            };
            let exit = Exit::IoOut {
                port: hypercall::PORT,
                size: hypercall::WIDTH,
                value: number,
            };
            let mailbox = booted.state.mailbox_phys;
            // Only memory exits ask for more than going on or stopping,
            // and none reaches the monitor under QEMU.
            if let Outcome::Stop(s) = run::dispatch(exit, &ram, mailbox, &mut stats, &mut processes)
            {
                break s;
            }
        }
    };
    machine.end();
    stats.phases.exit = Some(start.elapsed());
    Ok(run::conclude(
        stop,
        Ending {
            cfg: &cfg,
            ram: &ram,
            relay,
            state: &booted.state,
            stats,
            start,
            tsc_hz,
            tsc_now: None,
        },
    ))
}
