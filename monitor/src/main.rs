//! `weft`: the Weft monitor's command line. Boots the Weft kernel in a KVM
//! virtual machine, runs one program in it, and relays its output and exit
//! status.
//!
//! Module map: `cli` (the command line), `environment` (the program's
//! environment from `--env`), `fabric_cli` and `ipc_cli` (the commands
//! that ask a device's daemon), `out` (their standard output), `programs`
//! (the kernel and the programs bundled into the binary, and how PROGRAM
//! is resolved). The
//! monitor itself is the `weft_monitor` library (`src/lib.rs` has its map):
//! this file turns the command line into a [`run::RunConfig`] and the
//! outcome into an exit status.

mod cli;
mod environment;
mod fabric_cli;
mod ipc_cli;
mod out;
mod programs;

use cli::WasmEngine;
use out::say;
use std::os::unix::ffi::OsStrExt;
use std::process::ExitCode;
use std::time::{Duration, Instant};
use weft_monitor::catalog::Catalog;
use weft_monitor::run;
use weft_monitor::status::ExitStatus;
use weft_monitor::streams::Policy;

fn main() -> ExitCode {
    let start = Instant::now();
    let status = match cli::Cli::parse_with_examples(programs::examples_help()).command {
        cli::Command::Run(args) => run(&args, start),
        cli::Command::Daemon(args) => daemon(&args, start),
        cli::Command::Fabric(command) => fabric_cli::fabric(&command),
        cli::Command::Ps(args) => fabric_cli::ps(&args),
        cli::Command::Spawn(args) => fabric_cli::spawn(&args),
        cli::Command::Kill(args) => fabric_cli::kill(&args),
        cli::Command::Move(args) => fabric_cli::move_app(&args),
        cli::Command::Stats(args) => fabric_cli::stats(&args),
        cli::Command::Ipc(command) => ipc_cli::ipc(&command),
        cli::Command::Symbols(args) => symbols(&args),
    };
    ExitCode::from(status.code())
}

/// `weft symbols`: writes the files and prints their paths.
fn symbols(args: &cli::SymbolsArgs) -> ExitStatus {
    let files = match programs::symbol_files(&args.programs) {
        Ok(files) => files,
        Err(e) => {
            eprintln!("weft: {e}");
            return ExitStatus::Usage;
        }
    };
    let written = std::fs::create_dir_all(&args.out).and_then(|()| {
        files.iter().try_for_each(|(name, elf)| {
            let path = args.out.join(name);
            std::fs::write(&path, elf)?;
            say!("{}", path.display());
            Ok(())
        })
    });
    match written {
        Ok(()) => ExitStatus::Program(0),
        Err(e) => {
            eprintln!("weft: writing into {}: {e}", args.out.display());
            ExitStatus::Program(1)
        }
    }
}

fn policy(grants: &cli::Grants) -> Result<Policy, ExitStatus> {
    let mut policy = Policy::new(
        grants.fs_root.as_deref(),
        grants.read_only,
        grants.listen.clone(),
        grants.connect.clone(),
    )
    .map_err(|e| {
        eprintln!("weft: {e}");
        ExitStatus::Usage
    })?;
    policy.limits = grants.limits();
    policy.fs_quota = grants.fs_quota.map(weft_monitor::streams::Quota::new);
    Ok(policy)
}

fn daemon(args: &cli::DaemonArgs, start: Instant) -> ExitStatus {
    let policy = match policy(&args.grants) {
        Ok(p) => p,
        Err(s) => return s,
    };
    let kernel = match programs::kernel(args.kernel.as_deref()) {
        Ok(k) => k,
        Err(e) => {
            eprintln!("weft: kernel: {e}");
            return ExitStatus::Usage;
        }
    };
    let Some(agent) = programs::Bundled.find(weft_monitor::catalog::DEVICE_AGENT) else {
        eprintln!("weft: this build bundles no device agent");
        return ExitStatus::Usage;
    };
    let catalog: &'static dyn Catalog = match compiled_catalog(args.wasm_engine, Where::Device) {
        // The daemon's tasks hold it for as long as the process runs.
        Ok(Some(c)) => DEVICE_CATALOG.get_or_init(|| c),
        Ok(None) => &programs::Bundled,
        Err(s) => return s,
    };
    let cfg = weft_monitor::daemon::DaemonConfig {
        state: args.state.state.clone(),
        bind: args.bind,
        peers: args.peer.clone(),
        kernel: &kernel,
        agent: &agent,
        mem_bytes: args.grants.mem_bytes(),
        policy,
        fabric_ips: args.fabric_ip.clone(),
        catalog,
        sandbox: !args.no_sandbox,
    };
    weft_monitor::daemon::run(cfg, start)
}

/// A daemon's catalog: its tasks may use it for as long as the process
/// runs.
static DEVICE_CATALOG: std::sync::OnceLock<programs::Compiled> = std::sync::OnceLock::new();

/// Whose guest a catalog serves.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Where {
    /// `weft run`'s: it caches artifacts in the user's cache directory
    /// until its sandbox.
    Run,
    /// A device's (`weft daemon`): apps move there, and its sandbox holds
    /// it to its state directory from the start (no disk cache).
    Device,
}

/// The catalog that compiles Wasm modules as `engine` says, for spawns
/// that leave it the choice (every spawn may ask for a tier of its own);
/// `None` where nothing can be compiled and `engine` does not insist.
fn compiled_catalog(
    engine: WasmEngine,
    place: Where,
) -> Result<Option<programs::Compiled>, ExitStatus> {
    let default = match engine {
        WasmEngine::Auto => programs::DefaultTier::Auto {
            movable: place == Where::Device,
        },
        WasmEngine::Aot => programs::DefaultTier::Compiled,
        WasmEngine::Interp => programs::DefaultTier::Interp,
    };
    let made = match place {
        Where::Run => programs::Compiled::new(default),
        Where::Device => programs::Compiled::uncached(default),
    };
    match made {
        Ok(c) => Ok(Some(c)),
        Err(e) if engine == WasmEngine::Aot => {
            eprintln!("weft: {e}");
            Err(ExitStatus::Usage)
        }
        // Where nothing can be compiled, the interpreter runs every module
        // but those a spawn asks compiled, which are refused.
        Err(_) => Ok(None),
    }
}

fn run(args: &cli::RunArgs, start: Instant) -> ExitStatus {
    let policy = match policy(&args.grants) {
        Ok(p) => p,
        Err(s) => return s,
    };
    let kernel = match programs::kernel(args.kernel.as_deref()) {
        Ok(k) => k,
        Err(e) => {
            eprintln!("weft: kernel: {e}");
            return ExitStatus::Usage;
        }
    };
    let Some(name) = args.program() else {
        eprintln!(
            "weft: the program's name {:?} is not UTF-8",
            args.command[0]
        );
        return ExitStatus::Usage;
    };
    let compiled = match compiled_catalog(args.wasm_engine, Where::Run) {
        Ok(c) => c,
        Err(s) => return s,
    };
    let catalog: &dyn Catalog = match &compiled {
        Some(c) => c,
        None => &programs::Bundled,
    };
    let program = match programs::resolve(name, catalog) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("weft: {e}");
            return ExitStatus::Usage;
        }
    };
    if let Some(c) = &compiled {
        c.stop_caching();
    }
    let argv: Vec<Vec<u8>> = args.command.iter().map(|a| a.as_bytes().to_vec()).collect();
    let env = match environment::environment(&args.env, |k| std::env::var_os(k))
        .and_then(|env| environment::check_block(&argv, &env).map(|()| env))
    {
        Ok(env) => env,
        Err(e) => {
            eprintln!("weft: {e}");
            return ExitStatus::Usage;
        }
    };
    let engine = match args.engine() {
        Ok(engine) => engine,
        Err(e) => {
            eprintln!("weft: {e}");
            return ExitStatus::Usage;
        }
    };
    let cfg = run::RunConfig {
        kernel: &kernel,
        program: &program.elf,
        payload: program.payload(),
        program_name: name,
        args: argv,
        env,
        mem_bytes: args.grants.mem_bytes(),
        timeout: args.timeout.map(Duration::from_secs_f64),
        stats: args.stats,
        policy,
        catalog,
        device: None,
        fabric: None,
        sandbox: (!args.no_sandbox).then_some(weft_monitor::sandbox::Profile::Run { child: None }),
        gdb: args.gdb,
        engine,
    };
    match run::run(cfg, start) {
        Ok(status) => status,
        Err(e) => {
            if e.is_program_error() {
                eprintln!("weft: {name}: {e}")
            } else {
                eprintln!("weft: {e}")
            }
            e.status()
        }
    }
}
