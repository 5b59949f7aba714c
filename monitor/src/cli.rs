//! The `weft` command line (the contract in the README and `weft --help`).

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use std::ffi::OsString;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use weft_monitor::run::{Accel, Engine};
use weft_monitor::streams::budget::Limits;

/// Boot programs in the Weft unikernel under KVM.
#[derive(Debug, Parser)]
#[command(name = "weft", version)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Boot a guest running PROGRAM with ARGS.
    ///
    /// PROGRAM is the name of a bundled program (listed below), a path to a
    /// user-procedure ELF built with weft-user, or a path to a Wasm module
    /// (a wasm32-wasip1 program, or an event app), which runs in the bundled
    /// Wasm runtime. The program's standard input, output and error are
    /// weft's own; it reaches files and the network only as the options
    /// below grant.
    ///
    /// Everything after PROGRAM is the program's: `weft run hello --help`
    /// passes `--help` to hello. PROGRAM names a file if it contains a `/`
    /// or ends in `.wasm` (`./hello` is the file hello in the current
    /// directory), and a bundled program otherwise.
    #[command(override_usage = "weft run [OPTIONS] <PROGRAM> [ARGS]...")]
    Run(RunArgs),
    /// Run this device of a fabric: a long-running guest whose processes
    /// are the device's apps, reachable from every device of the fabric.
    Daemon(DaemonArgs),
    /// Create, join and manage a fabric of devices.
    #[command(subcommand)]
    Fabric(FabricCommand),
    /// List the processes of every available device (or of one).
    Ps(PsArgs),
    /// Start FILE on a device (default: this one) and print its pid.
    ///
    /// FILE is a Wasm module (its bytes travel to the device by content
    /// hash), or the name of one of the device's own native programs.
    Spawn(SpawnArgs),
    /// End a process anywhere in the fabric (it exits with status 137).
    Kill(PidArgs),
    /// Show one process: device, name, state, CPU time, memory, streams.
    Stats(StatsArgs),
    /// Move a running Wasm event app to another device, with its state.
    ///
    /// The app keeps its pid, memory, globals, timers and arguments; it
    /// goes on at DEVICE from its next event batch. A native program, a
    /// command, or an app holding files or connections cannot move.
    Move(MoveArgs),
    /// Services by GUID: list them, call one (print its reply), send to one.
    #[command(subcommand)]
    Ipc(IpcCommand),
    /// Write the bundled kernel and programs as ELF files, for gdb.
    ///
    /// Writes DIR/weft-kernel and DIR/NAME for each bundled PROGRAM named
    /// (every bundled program if none is) and prints each path. With
    /// `weft run --gdb PORT NAME`: `gdb DIR/NAME -ex 'add-symbol-file
    /// DIR/weft-kernel' -ex 'target remote :PORT'`.
    Symbols(SymbolsArgs),
}

/// Options of `weft symbols`.
#[derive(Debug, Args)]
pub struct SymbolsArgs {
    /// The directory to write into (created if missing).
    #[arg(long, value_name = "DIR", default_value = "weft-symbols")]
    pub out: PathBuf,
    /// Bundled programs to write (default: all).
    #[arg(value_name = "PROGRAM")]
    pub programs: Vec<String>,
}

/// `weft ipc ...`.
#[derive(Debug, Subcommand)]
pub enum IpcCommand {
    /// List the services running on every available device: GUID, name, pid.
    Services(ServicesArgs),
    /// Send DATA as a request to service GUID and print the reply.
    Call(IpcCallArgs),
    /// Send DATA to service GUID, one way (no reply; done once it is queued).
    Send(IpcSendArgs),
}

/// Options of `weft ipc services`.
#[derive(Debug, Args)]
pub struct ServicesArgs {
    #[command(flatten)]
    pub state: State,
    /// One JSON array instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// What `weft ipc send` and `weft ipc call` both take.
#[derive(Debug, Args)]
pub struct IpcSendArgs {
    #[command(flatten)]
    pub state: State,
    /// Only this instance of the service (DEVICE:N).
    #[arg(long, value_name = "PID")]
    pub pid: Option<String>,
    /// The service, an RFC 9562 UUID (8-4-4-4-12 hex digits).
    pub guid: String,
    /// The message (UTF-8 as given).
    pub data: String,
}

/// Options of `weft ipc call`.
#[derive(Debug, Args)]
pub struct IpcCallArgs {
    #[command(flatten)]
    pub send: IpcSendArgs,
    /// Wait at most SECS for the reply.
    #[arg(long, value_name = "SECS", default_value_t = 30.0, value_parser = parse_ipc_timeout)]
    pub timeout: f64,
}

/// The fabric's own commands.
#[derive(Debug, Subcommand)]
pub enum FabricCommand {
    /// Create a new fabric in DIR; this device is its first.
    Create(CreateArgs),
    /// Print a one-time token with which one more device can join.
    Invite(InviteArgs),
    /// Pair this device with a fabric, using a token from `weft fabric invite`.
    Join(JoinArgs),
    /// List the fabric's known devices: name, id, available, addresses.
    Devices(DevicesArgs),
    /// Remove a device from the fabric, for good: every daemon refuses it.
    Remove(RemoveArgs),
}

/// The state directory option every fabric command takes.
#[derive(Debug, Args)]
pub struct State {
    /// The device's state directory (key, certificates, known devices).
    #[arg(long, value_name = "DIR", env = "WEFT_STATE")]
    pub state: PathBuf,
}

/// Options of `weft daemon`.
#[derive(Debug, Args)]
pub struct DaemonArgs {
    #[command(flatten)]
    pub state: State,
    /// Where the device listens for the fabric's (TLS) connections.
    #[arg(long, value_name = "ADDR:PORT", default_value = "0.0.0.0:7447")]
    pub bind: SocketAddr,
    /// A device to connect to at start (repeatable); known devices are
    /// connected to as well.
    #[arg(long, value_name = "ADDR:PORT")]
    pub peer: Vec<SocketAddr>,
    /// A fabric address this device owns (repeatable): an address of this
    /// host on which apps of any device may bind UDP sockets, within this
    /// device's --listen grants; this device holds the sockets.
    #[arg(long = "fabric-ip", value_name = "IP")]
    pub fabric_ip: Vec<IpAddr>,
    /// Run without the sandbox (the daemon makes only the system calls it
    /// needs; see PROTOCOL.md §20.2). For debugging the daemon.
    #[arg(long)]
    pub no_sandbox: bool,
    /// Boot the device guest with this kernel ELF instead of the bundled one.
    #[arg(long, value_name = "PATH")]
    pub kernel: Option<PathBuf>,
    /// How the Wasm modules spawned on this device run, unless a spawn
    /// asks (`weft spawn --engine`): aot (compiled by the monitor with
    /// Cranelift, run as native code; such apps do not move), interp
    /// (interpreted), or auto: aot unless the module is an event app
    /// (which moves only interpreted) or imports a process call only the
    /// interpreter serves (spawn, kill, processes, move_self).
    #[arg(long = "engine", value_enum, default_value_t = WasmEngine::Auto)]
    pub wasm_engine: WasmEngine,
    #[command(flatten)]
    pub grants: Grants,
}

/// Options of `weft fabric create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    #[command(flatten)]
    pub state: State,
    /// This device's name (1-32 of a-z, 0-9 and -).
    #[arg(long)]
    pub name: String,
}

/// Options of `weft fabric invite`.
#[derive(Debug, Args)]
pub struct InviteArgs {
    #[command(flatten)]
    pub state: State,
    /// Seconds the token stays valid.
    #[arg(long, value_name = "SECS", default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..=604_800))]
    pub expires: u64,
}

/// Options of `weft fabric join`.
#[derive(Debug, Args)]
pub struct JoinArgs {
    #[command(flatten)]
    pub state: State,
    /// This device's name (1-32 of a-z, 0-9 and -), unique in the fabric.
    #[arg(long)]
    pub name: String,
    /// The token `weft fabric invite` printed.
    pub token: String,
}

/// Options of `weft fabric devices`.
#[derive(Debug, Args)]
pub struct DevicesArgs {
    #[command(flatten)]
    pub state: State,
    /// Only the devices online now.
    #[arg(long)]
    pub available: bool,
    /// One JSON array instead of a table.
    #[arg(long)]
    pub json: bool,
    /// After the list, print a line each time a device comes or goes
    /// (`NAME available` / `NAME unavailable`; with --json, one JSON object
    /// per line), until interrupted.
    #[arg(long)]
    pub watch: bool,
}

/// Options of `weft fabric remove`.
#[derive(Debug, Args)]
pub struct RemoveArgs {
    #[command(flatten)]
    pub state: State,
    /// The device to remove.
    pub name: String,
}

/// Options of `weft ps`.
#[derive(Debug, Args)]
pub struct PsArgs {
    #[command(flatten)]
    pub state: State,
    /// Only this device's processes.
    #[arg(long, value_name = "NAME")]
    pub device: Option<String>,
    /// One JSON array instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Options of `weft spawn`.
#[derive(Debug, Args)]
pub struct SpawnArgs {
    #[command(flatten)]
    pub state: State,
    /// The device to run it on (default: this one).
    #[arg(long, value_name = "NAME")]
    pub device: Option<String>,
    /// Wait for the process to end and exit with its status.
    #[arg(long)]
    pub wait: bool,
    /// How a Wasm module runs: aot (compiled by the device's monitor, run
    /// as native code; it cannot move) or interp (interpreted; event apps
    /// move). Default: as the device's `weft daemon --engine` says.
    #[arg(long = "engine", value_enum, value_name = "ENGINE")]
    pub engine: Option<SpawnEngine>,
    /// FILE (a Wasm module's path, or a native program's name), then its
    /// arguments: everything after FILE is the program's, also what looks
    /// like an option of weft's.
    #[arg(
        value_name = "FILE",
        required = true,
        num_args = 1..,
        trailing_var_arg = true
    )]
    pub command: Vec<String>,
}

impl SpawnArgs {
    /// FILE as given (`command` holds at least it).
    pub fn file(&self) -> &str {
        self.command.first().map_or("", String::as_str)
    }

    /// The program's arguments, after FILE.
    pub fn args(&self) -> &[String] {
        self.command.get(1..).unwrap_or_default()
    }
}

/// A command on one process.
#[derive(Debug, Args)]
pub struct PidArgs {
    #[command(flatten)]
    pub state: State,
    /// The process, DEVICE:N.
    pub pid: String,
}

/// Options of `weft move`.
#[derive(Debug, Args)]
pub struct MoveArgs {
    #[command(flatten)]
    pub pid: PidArgs,
    /// The device to move it to.
    pub device: String,
    /// How long to wait for the app's event batch to end, in seconds
    /// (0.001 to 60); a busy app fails the move after it.
    #[arg(long, value_name = "SECS", default_value_t = 5.0, value_parser = parse_move_wait)]
    pub wait: f64,
}

/// A move's wait: 0.001 to 60 seconds.
fn parse_move_wait(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (0.001..=60.0).contains(&v) => Ok(v),
        _ => Err(format!("{s:?} is not a number of seconds from 0.001 to 60")),
    }
}

/// Options of `weft stats`.
#[derive(Debug, Args)]
pub struct StatsArgs {
    #[command(flatten)]
    pub pid: PidArgs,
    /// One JSON object instead of lines.
    #[arg(long)]
    pub json: bool,
}

/// An IPC request's timeout: 0.001 to 3600 seconds.
fn parse_ipc_timeout(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (0.001..=3600.0).contains(&v) => Ok(v),
        _ => Err(format!(
            "{s:?} is not a number of seconds from 0.001 to 3600"
        )),
    }
}

/// What a guest's programs may reach (`weft run` and `weft daemon`).
#[derive(Debug, Args)]
pub struct Grants {
    /// The directory the guest sees as `/` (file streams are refused without it).
    #[arg(long, value_name = "DIR")]
    pub fs_root: Option<PathBuf>,
    /// File streams cannot modify the --fs-root directory (only with
    /// --fs-root).
    #[arg(long, requires = "fs_root")]
    pub read_only: bool,
    /// The most the guest may add, net, to the sizes of the files under
    /// --fs-root while it runs: BYTES, or with a suffix K, M, G or T
    /// (powers of 1024). Past it a write fails with QuotaExceeded
    /// (PROTOCOL.md §10.4). Only with --fs-root.
    #[arg(long, value_name = "BYTES", requires = "fs_root", value_parser = parse_size)]
    pub fs_quota: Option<u64>,
    /// Allow the guest to listen (TCP) or bind (UDP) on ADDR:PORT
    /// (repeatable); the guest asks for 0.0.0.0:PORT to get the granted
    /// address with that port.
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: Vec<SocketAddr>,
    /// Allow the guest to connect (TCP) or send datagrams (UDP) to ADDR:PORT
    /// (repeatable).
    #[arg(long, value_name = "ADDR:PORT")]
    pub connect: Vec<SocketAddr>,
    /// Guest RAM in MiB (16-3072; rounded up to an even number).
    #[arg(long, value_name = "MIB", default_value_t = 64, value_parser = clap::value_parser!(u64).range(16..=3072))]
    pub mem: u64,
    /// Streams the whole guest may hold open at once (default: as many as
    /// fit in host memory the size of --mem, at least 128; PROTOCOL.md
    /// §20.1).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_streams: Option<u32>,
    /// Streams one process may hold open at once (default: all but an
    /// eighth of --max-streams, which the other processes keep).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_process_streams: Option<u32>,
    /// Closed TCP streams that may go on delivering their last bytes at
    /// once (default: a quarter of --max-streams); past it a close resets
    /// its connection.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
    pub max_lingering: Option<u32>,
}

impl Grants {
    /// Guest RAM in bytes.
    pub fn mem_bytes(&self) -> u64 {
        self.mem.next_multiple_of(2) << 20
    }

    /// The budgets' limits: those given, the others derived from what is
    /// given (streams) or from the guest's RAM.
    pub fn limits(&self) -> Limits {
        let mut l = Limits::for_mem(self.mem_bytes());
        if let Some(n) = self.max_streams {
            l = Limits::for_streams(n as usize);
        }
        if let Some(n) = self.max_process_streams {
            l.process_streams = n as usize;
        }
        if let Some(n) = self.max_lingering {
            l.lingering = n as usize;
        }
        l
    }
}

/// `--vmm`'s values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum VmmArg {
    Weft,
    Qemu,
}

/// `--accel`'s values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum AccelArg {
    Kvm,
    Tcg,
}

/// `--engine`'s values: how a Wasm module runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum WasmEngine {
    /// Compiled ahead of time, unless the module imports a process call
    /// (`spawn`, `kill`, `processes`, `move_self`) only the interpreter
    /// serves, or, on a device, is an event app (only interpreted apps
    /// move).
    Auto,
    /// Compiled ahead of time by the monitor (Cranelift), run as native
    /// code at ring 3 (PROTOCOL.md §13.8).
    Aot,
    /// Interpreted at ring 3 (wasmi), with fuel; apps spawn apps and move.
    Interp,
}

/// `weft spawn --engine`'s values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum SpawnEngine {
    /// Compiled ahead of time.
    Aot,
    /// Interpreted.
    Interp,
}

/// Options of `weft run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub grants: Grants,
    /// Stop the guest after SECS seconds and exit with status 124.
    #[arg(long, value_name = "SECS", value_parser = parse_timeout)]
    pub timeout: Option<f64>,
    /// Boot this kernel ELF instead of the bundled one.
    #[arg(long, value_name = "PATH")]
    pub kernel: Option<PathBuf>,
    /// Print exit, hypercall, stream (doorbells, interrupts) and boot-phase
    /// figures to stderr when the guest stops.
    #[arg(long)]
    pub stats: bool,
    /// Do not confine the monitor once the VM is built (by default it may
    /// then open files only beneath --fs-root, use only the granted TCP
    /// ports, and make only the system calls it needs; see PROTOCOL.md
    /// §20.2). For debugging the monitor.
    #[arg(long)]
    pub no_sandbox: bool,
    /// Wait for gdb on 127.0.0.1:PORT before the guest's first instruction
    /// and serve it (`target remote :PORT`); `weft symbols` writes the
    /// files that hold the symbols.
    #[arg(long, value_name = "PORT")]
    pub gdb: Option<u16>,
    /// The VMM that runs the guest: weft (its own KVM monitor) or qemu
    /// (qemu-system-x86_64 in a child process; PROTOCOL.md §22).
    #[arg(long, value_enum, default_value_t = VmmArg::Weft)]
    pub vmm: VmmArg,
    /// QEMU's accelerator: kvm, or tcg (translation, no /dev/kvm needed);
    /// by default kvm where /dev/kvm exists, else tcg. Only with --vmm
    /// qemu.
    #[arg(long, value_enum)]
    pub accel: Option<AccelArg>,
    /// How Wasm modules run (the program, and those the guest spawns):
    /// aot (compiled by the monitor with Cranelift, cached, run as native
    /// code), interp (interpreted), or auto: aot unless the module imports
    /// a process call only the interpreter serves (spawn, kill, processes,
    /// move_self).
    #[arg(long = "engine", value_enum, default_value_t = WasmEngine::Auto)]
    pub wasm_engine: WasmEngine,
    /// Set the program's environment variable KEY to VALUE; KEY alone
    /// passes weft's own value of KEY (none if weft has none). Repeatable;
    /// the program sees no other variables.
    #[arg(long, value_name = "KEY[=VALUE]")]
    pub env: Vec<OsString>,
    /// The program (a bundled program's name, or a path to an ELF file or a
    /// Wasm module), then its arguments: everything after PROGRAM is the
    /// program's, also what looks like an option of weft's.
    #[arg(
        value_name = "PROGRAM",
        required = true,
        num_args = 1..,
        trailing_var_arg = true
    )]
    pub command: Vec<OsString>,
}

impl RunArgs {
    /// The VMM `--vmm` and `--accel` name; an error message for an
    /// `--accel` without `--vmm qemu`.
    pub fn engine(&self) -> Result<Engine, &'static str> {
        match (self.vmm, self.accel) {
            (VmmArg::Weft, None) => Ok(Engine::Weft),
            (VmmArg::Weft, Some(_)) => Err("--accel applies to --vmm qemu only"),
            (VmmArg::Qemu, Some(AccelArg::Kvm)) => Ok(Engine::Qemu(Accel::Kvm)),
            (VmmArg::Qemu, Some(AccelArg::Tcg)) => Ok(Engine::Qemu(Accel::Tcg)),
            (VmmArg::Qemu, None) if std::path::Path::new("/dev/kvm").exists() => {
                Ok(Engine::Qemu(Accel::Kvm))
            }
            (VmmArg::Qemu, None) => Ok(Engine::Qemu(Accel::Tcg)),
        }
    }

    /// PROGRAM as given, if it is UTF-8 (`command` holds at least it).
    pub fn program(&self) -> Option<&str> {
        self.command.first().and_then(|p| p.to_str())
    }
}

/// The exit statuses (the contract in the README), at the end of `--help`.
const EXIT_STATUSES: &str = "\
Exit status: the program's own (0-125; a Rust program that panics exits 101);
2 for a usage or configuration error (bad option, unknown program, a file
that is not a valid Weft program or Wasm module); 124 when --timeout expired;
125 when the guest crashed (kernel panic, fault, triple fault, protocol violation,
a Wasm trap), with a report on stderr; 128+N when stopped by signal N (SIGINT,
SIGTERM), after the guest's output and --stats.";

/// How `weft run` runs a Wasm module, in `weft run --help`.
const WASM_HELP: &str = "\
Wasm modules: a file that starts with the Wasm magic bytes runs in a bundled
Wasm runtime at ring 3: WASI preview 1 programs built for
wasm32-wasip1 run unchanged, with --fs-root preopened as `/` (descriptor 3),
the --listen grants preopened as TCP listeners (descriptors 4, 5, ... in the
order given) and --env as their environment; event apps use the `weft`
module (PROTOCOL.md section 13). A refused grant is reported on stderr.
By default (--engine auto) the monitor compiles the module with Cranelift
first (cached in ~/.cache/weft/aot by its hash) and the guest runs the native
code, unless the module spawns, kills or lists apps or moves itself, which
only the interpreter serves; --engine interp or aot chooses.";

impl Cli {
    /// Parses the command line; `run --help` says how Wasm modules run and
    /// lists `examples` (the bundled programs), and both helps end with the
    /// exit statuses.
    pub fn parse_with_examples(examples: String) -> Self {
        let command = Self::command()
            .after_help(EXIT_STATUSES)
            .mut_subcommand("run", |run| {
                run.after_help(format!("{WASM_HELP}\n\n{examples}\n{EXIT_STATUSES}"))
            });
        let matches = command.get_matches();
        match Self::from_arg_matches(&matches) {
            Ok(cli) => cli,
            Err(e) => e.exit(),
        }
    }
}

/// A size in bytes: digits, then optionally K, M, G or T (powers of 1024).
fn parse_size(s: &str) -> Result<u64, String> {
    let (digits, shift) = match s.char_indices().last() {
        Some((i, 'K' | 'k')) => (&s[..i], 10),
        Some((i, 'M' | 'm')) => (&s[..i], 20),
        Some((i, 'G' | 'g')) => (&s[..i], 30),
        Some((i, 'T' | 't')) => (&s[..i], 40),
        _ => (s, 0),
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(1 << shift))
        .ok_or_else(|| format!("{s:?} is not a size (BYTES, or a number with K, M, G or T)"))
}

fn parse_timeout(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && v <= 1e9 => Ok(v),
        _ => Err(format!("`{s}` is not a positive number of seconds")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<RunArgs, clap::Error> {
        let cli = Cli::try_parse_from(std::iter::once("weft").chain(args.iter().copied()))?;
        match cli.command {
            Command::Run(r) => Ok(r),
            other => panic!("not run: {other:?}"),
        }
    }

    #[test]
    fn everything_after_the_program_is_its_own() {
        let r = parse(&[
            "run",
            "--stats",
            "--timeout",
            "2.5",
            "--env",
            "A=1",
            "hello",
            "-x",
            "--mem",
            "y",
            "--stats",
            "--help",
            "--timeout",
            "1",
            "--env",
            "B",
            "--",
            "z",
        ])
        .unwrap();
        assert!(r.stats);
        assert_eq!(r.timeout, Some(2.5));
        assert_eq!(r.env, ["A=1"]);
        assert_eq!(r.program(), Some("hello"));
        assert_eq!(
            r.command[1..],
            [
                "-x",
                "--mem",
                "y",
                "--stats",
                "--help",
                "--timeout",
                "1",
                "--env",
                "B",
                "--",
                "z"
            ]
        );
        assert_eq!(r.grants.mem, 64);
        assert_eq!(parse(&["run", "--", "--odd"]).unwrap().command, ["--odd"]);
    }

    #[test]
    fn everything_after_the_file_to_spawn_is_its_own() {
        let spawn = [
            "weft", "spawn", "--state", "/s", "--wait", "app.wasm", "--wait", "-x",
        ];
        let cli = Cli::try_parse_from(spawn).unwrap();
        let Command::Spawn(s) = cli.command else {
            panic!("not spawn");
        };
        assert!(s.wait);
        assert_eq!(s.file(), "app.wasm");
        assert_eq!(s.args(), ["--wait", "-x"]);
    }

    #[test]
    fn read_only_needs_a_root() {
        let e = parse(&["run", "--read-only", "hello"]).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("--fs-root"), "{e}");
        assert!(parse(&["run", "--fs-root", "/", "--read-only", "hello"]).is_ok());
    }

    #[test]
    fn a_quota_needs_a_root_and_takes_a_size() {
        assert!(parse(&["run", "--fs-quota", "1M", "hello"]).is_err());
        let quota = |q: &str| -> Option<u64> {
            parse(&["run", "--fs-root", "/", "--fs-quota", q, "hello"])
                .ok()?
                .grants
                .fs_quota
        };
        assert_eq!(quota("0"), Some(0));
        assert_eq!(quota("4096"), Some(4096));
        assert_eq!(quota("3k"), Some(3 << 10));
        assert_eq!(quota("100M"), Some(100 << 20));
        assert_eq!(quota("2G"), Some(2 << 30));
        assert_eq!(quota("1T"), Some(1 << 40));
        for bad in ["", "M", "-1", "1.5G", "1P", "99999999999T"] {
            assert_eq!(quota(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn bad_options_are_usage_errors() {
        for bad in [
            &["run"][..],
            &["run", "--timeout", "0", "hello"],
            &["run", "--mem", "8", "hello"],
            &["run", "--no-such-option", "hello"],
            &["fly"],
        ] {
            let e = parse(bad).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{bad:?}");
        }
        let r = parse(&[
            "run",
            "--listen",
            "127.0.0.1:80",
            "--listen",
            "[::1]:81",
            "--connect",
            "10.0.0.1:443",
            "hello",
        ])
        .unwrap();
        assert_eq!(r.grants.listen.len(), 2);
        assert_eq!(r.grants.connect, ["10.0.0.1:443".parse().unwrap()]);
        assert!(parse(&["run", "--listen", "localhost", "hello"]).is_err());
    }
}
