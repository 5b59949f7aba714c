//! The QEMU process (PROTOCOL.md §22.2): its command line, the firmware
//! ROM it boots, the hypercall socket, the monitor socket that lets the
//! stopped machine start, and its standard error, passed on to `weft`'s
//! without the one warning its memory layout always causes.

use super::QemuError;
use crate::boot::BootState;
use crate::host;
use crate::run::Accel;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};
use weft_control::firmware::{self, Params};
use weft_control::hypercall;
use weft_control::layout::KERNEL_STACK_TOP;

/// The QEMU binary (Debian's `qemu-system-x86`).
pub const QEMU: &str = "qemu-system-x86_64";

/// The warning QEMU prints for any `max-ram-below-4g` that is not a whole
/// number of GiB, which Weft's layout never is (§22.1).
const LAYOUT_WARNING: &str = "not a multiple of 1G; possible bad performance";

/// How long QEMU may take to exit once it closed a socket.
const EXIT_LIMIT: Duration = Duration::from_secs(2);

/// How long QEMU may take to answer its control socket.
const QMP_LIMIT: Duration = Duration::from_secs(10);

/// What QEMU runs.
pub struct Spec<'a> {
    pub accel: Accel,
    /// Guest RAM in bytes.
    pub mem_size: u64,
    /// The memory file: RAM, then the pipe regions.
    pub memory: &'a File,
    /// The kernel ELF, whose firmware section the ROM carries.
    pub kernel: &'a [u8],
    pub boot: &'a BootState,
    /// `--gdb PORT`: QEMU's own stub on this loopback port, stopped
    /// before the first instruction.
    pub gdb: Option<u16>,
}

/// A QEMU process, started stopped.
pub struct Machine {
    child: Child,
    /// The monitor's end of the hypercall socket.
    hypercalls: UnixStream,
    /// The monitor's end of QEMU's control socket (QMP).
    control: UnixStream,
}

impl Machine {
    /// Starts QEMU on the ROM and memory of `spec`, stopped before the
    /// guest's first instruction ([`Machine::resume`] starts it; with
    /// `--gdb`, gdb does).
    pub fn spawn(spec: &Spec<'_>) -> Result<Self, QemuError> {
        if spec.accel == Accel::Kvm && !std::path::Path::new("/dev/kvm").exists() {
            return Err(QemuError::NoKvm);
        }
        let rom = host::memory_file("weft-rom", firmware::ROM_SIZE).map_err(QemuError::Setup)?;
        (&rom)
            .write_all(&rom_image(spec.kernel, spec.boot, spec.accel)?)
            .map_err(QemuError::Setup)?;
        let (hypercalls, theirs) = UnixStream::pair().map_err(QemuError::Setup)?;
        let (control, qmp) = UnixStream::pair().map_err(QemuError::Setup)?;
        let passed = [
            spec.memory.as_raw_fd(),
            rom.as_raw_fd(),
            theirs.as_raw_fd(),
            qmp.as_raw_fd(),
        ];
        let mut command = Command::new(QEMU);
        command
            .args(arguments(spec, passed))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        // Its own process group: a terminal's Ctrl-C (or a signal to
        // `weft`'s group) reaches `weft`, which stops the guest and reports
        // as it would under its own monitor, not QEMU.
        command.process_group(0);
        // SAFETY: the closure runs between `fork` and `exec` and only calls
        // `fcntl` and `prctl` (async-signal-safe) on this process.
        unsafe {
            command.pre_exec(move || {
                host::die_with_parent()?;
                passed.iter().try_for_each(|&fd| host::keep_on_exec(fd))
            });
        }
        let child = command.spawn().map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => QemuError::Missing,
            _ => QemuError::Setup(e),
        })?;
        Ok(Self {
            child,
            hypercalls,
            control,
        })
    }

    /// Passes QEMU's standard error on to `weft`'s from now on, from a
    /// thread of its own.
    pub fn pass_on_stderr(&mut self) -> Result<(), QemuError> {
        if let Some(err) = self.child.stderr.take() {
            std::thread::Builder::new()
                .name("weft-qemu-stderr".into())
                .spawn(move || pass_on_stderr(err))
                .map_err(QemuError::Setup)?;
        }
        Ok(())
    }

    /// Lets the stopped machine run: QMP's capabilities handshake, then
    /// `cont`, each answered with a `return` (§22.2).
    pub fn resume(&mut self) -> Result<(), QemuError> {
        let commands = b"{\"execute\":\"qmp_capabilities\"}\n{\"execute\":\"cont\"}\n";
        self.control
            .write_all(commands)
            .map_err(|_| QemuError::Lost(self.ended()))?;
        self.control
            .set_read_timeout(Some(QMP_LIMIT))
            .map_err(QemuError::Setup)?;
        let mut answers = BufReader::new(&self.control);
        let mut returned = 0;
        let mut line = String::new();
        while returned < 2 {
            line.clear();
            match answers.read_line(&mut line) {
                Ok(0) | Err(_) => return Err(QemuError::Lost(self.ended())),
                Ok(_) if line.contains("\"error\"") => {
                    return Err(QemuError::Control(line.trim().to_owned()));
                }
                Ok(_) => returned += usize::from(line.starts_with("{\"return\"")),
            }
        }
        Ok(())
    }

    /// The next hypercall number the guest wrote (§22.3), waiting at most
    /// `timeout`: `Ok(None)` if none came by then; an error once QEMU is
    /// gone.
    pub fn next_hypercall(&mut self, timeout: Duration) -> Result<Option<u32>, QemuError> {
        let fd = self.hypercalls.as_raw_fd();
        match host::wait_readable(fd, Some(timeout)) {
            Ok(true) => {}
            Ok(false) => return Ok(None),
            // A stop request's signal: the caller looks for it.
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => return Ok(None),
            Err(e) => return Err(QemuError::Setup(e)),
        }
        let mut number = [0u8; hypercall::WIDTH as usize];
        match self.hypercalls.read_exact(&mut number) {
            Ok(()) => Ok(Some(u32::from(number[0]))),
            Err(_) => Err(QemuError::Lost(self.ended())),
        }
    }

    /// QEMU's process id.
    pub fn pid(&self) -> libc::pid_t {
        // Process ids fit: the kernel's are at most 2^22.
        self.child.id() as libc::pid_t
    }

    /// How QEMU ended, once its end of a socket closed: it is given
    /// [`EXIT_LIMIT`] to exit by itself (a triple fault's exit, §22.3),
    /// then killed.
    fn ended(&mut self) -> Option<ExitStatus> {
        let deadline = Instant::now() + EXIT_LIMIT;
        while Instant::now() < deadline {
            match self.child.try_wait() {
                Ok(Some(status)) => return Some(status),
                Ok(None) => std::thread::sleep(Duration::from_millis(5)),
                Err(_) => break,
            }
        }
        self.end()
    }

    /// Ends QEMU (if it still runs) and returns how it ended, if that can
    /// be had.
    pub fn end(&mut self) -> Option<ExitStatus> {
        // Already gone, or killed now: either way `wait` reaps it.
        let _ = self.child.kill();
        self.child.wait().ok()
    }
}

impl Drop for Machine {
    fn drop(&mut self) {
        self.end();
    }
}

/// QEMU's arguments; `passed` are the memory file, the ROM, the
/// hypercall socket and the control socket, inherited at the same numbers.
fn arguments(spec: &Spec<'_>, passed: [RawFd; 4]) -> Vec<String> {
    let [memory, rom, socket, control] = passed;
    let mib = spec.mem_size >> 20;
    let total = mib + (super::guest::REGION_BYTES >> 20);
    let (accel, cpu) = match spec.accel {
        Accel::Kvm => ("kvm", "host,-arch-capabilities"),
        Accel::Tcg => ("tcg", "max"),
    };
    let mut args: Vec<String> = [
        // QEMU's own seccomp filter: no new processes or privileges.
        "-sandbox",
        "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny",
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-no-reboot",
        "-smp",
        "1",
        "-S",
    ]
    .map(String::from)
    .to_vec();
    args.extend([
        "-machine".into(),
        format!(
            "pc,accel={accel},max-ram-below-4g={mib}M,memory-backend=weft-ram,\
             acpi=off,hpet=off,smbus=off,vmport=off"
        ),
        "-object".into(),
        format!(
            "memory-backend-file,id=weft-ram,size={total}M,mem-path=/proc/self/fd/{memory},share=on"
        ),
        "-m".into(),
        format!("{total}M"),
        "-cpu".into(),
        cpu.into(),
        "-bios".into(),
        format!("/proc/self/fd/{rom}"),
        "-chardev".into(),
        format!("socket,id=weft-hypercalls,fd={socket}"),
        "-device".into(),
        format!(
            "isa-debugcon,iobase={:#x},chardev=weft-hypercalls",
            hypercall::PORT
        ),
        "-chardev".into(),
        format!("socket,id=weft-control,fd={control}"),
        "-mon".into(),
        "chardev=weft-control,mode=control".into(),
    ]);
    if let Some(port) = spec.gdb {
        args.extend(["-gdb".into(), format!("tcp:127.0.0.1:{port}")]);
    }
    args
}

/// The 64 KiB ROM (§22.2): the kernel's firmware section at its start,
/// the parameters, the reset jump.
fn rom_image(kernel: &[u8], boot: &BootState, accel: Accel) -> Result<Vec<u8>, QemuError> {
    let code = weft_image::elf::section(kernel, firmware::SECTION)
        .ok_or(QemuError::NoFirmware("the kernel has no firmware section"))?;
    if code.len() as u64 > firmware::PARAMS_OFFSET {
        return Err(QemuError::NoFirmware("the kernel's firmware is too large"));
    }
    let params = Params {
        entry: boot.entry,
        rsp: KERNEL_STACK_TOP,
        rdi: boot.boot_info,
        kernel_root: boot.kernel_root,
        gs_base: boot.percpu,
        flags: match accel {
            Accel::Kvm => 0,
            Accel::Tcg => firmware::flags::XAPIC,
        },
        gdt_limit: crate::descriptors::GDT_LEN as u16 - 1,
        gdt_base: boot.gdt,
        idt_limit: crate::descriptors::IDT_LEN as u16 - 1,
        idt_base: boot.idt,
        ..Params::default()
    };
    let mut rom = vec![0u8; firmware::ROM_SIZE as usize];
    rom[..code.len()].copy_from_slice(code);
    let at = firmware::PARAMS_OFFSET as usize;
    rom[at..at + Params::SIZE].copy_from_slice(&params.encode());
    let reset = firmware::RESET_OFFSET as usize;
    rom[reset..reset + firmware::RESET_JUMP.len()].copy_from_slice(&firmware::RESET_JUMP);
    Ok(rom)
}

/// Copies QEMU's standard error to `weft`'s, line by line, but for the
/// layout warning.
fn pass_on_stderr(err: impl Read) {
    for line in BufReader::new(err).lines() {
        let Ok(line) = line else { return };
        if !line.contains(LAYOUT_WARNING) {
            crate::streams::host_output::stderr().notice(&format!("{line}\n"));
        }
    }
}

/// The host's TSC rate, which the guest's TSC keeps under QEMU (KVM and
/// TCG alike): counted against the monotonic clock over 5 ms.
pub fn tsc_hz() -> u64 {
    let span = Duration::from_millis(5);
    let (t0, c0) = (std::time::Instant::now(), rdtsc());
    while t0.elapsed() < span {
        std::hint::spin_loop();
    }
    let (elapsed, c1) = (t0.elapsed(), rdtsc());
    (u128::from(c1.wrapping_sub(c0)) * 1_000_000_000 / elapsed.as_nanos().max(1)) as u64
}

fn rdtsc() -> u64 {
    // SAFETY: `rdtsc` reads the time-stamp counter; it has no side effects.
    unsafe { core::arch::x86_64::_rdtsc() }
}
