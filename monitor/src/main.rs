//! `weft`: the Weft monitor. Boots the Weft kernel in a KVM virtual machine,
//! runs one program in it, and relays its output and exit status.
//!
//! Module map: `cli` (command line), `programs` (bundled images), `run`
//! (orchestration), `boot` + `loader` + `descriptors` + `guest_memory` (the
//! boot state, built before the first guest instruction), `vm` + `cpuid`
//! (KVM), `streams` (the tokio thread serving the guest's streams), `exit`
//! (the pure exit dispatcher), `symbols` + `report` (crash reports), `stats`
//! (`--stats`), `status` (exit statuses).

mod affinity;
mod boot;
mod cli;
mod cpuid;
mod descriptors;
mod exit;
mod guest_memory;
mod loader;
mod process_memory;
mod processes;
mod programs;
mod report;
mod run;
mod stats;
mod status;
mod stopper;
mod streams;
mod symbols;
mod vm;

use clap::Parser;
use status::ExitStatus;
use std::os::unix::ffi::OsStrExt;
use std::process::ExitCode;
use std::time::{Duration, Instant};

fn main() -> ExitCode {
    let start = Instant::now();
    let cli::Command::Run(args) = cli::Cli::parse().command;
    ExitCode::from(run(&args, start).code())
}

fn run(args: &cli::RunArgs, start: Instant) -> ExitStatus {
    let policy = match streams::Policy::new(
        args.fs_root.as_deref(),
        args.read_only,
        args.listen.clone(),
        args.connect.clone(),
    ) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("weft: {e}");
            return ExitStatus::Usage;
        }
    };
    let kernel = match programs::kernel(args.kernel.as_deref()) {
        Ok(k) => k,
        Err(e) => {
            eprintln!("weft: kernel: {e}");
            return ExitStatus::Usage;
        }
    };
    let program = match programs::resolve(&args.program) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("weft: {e}");
            return ExitStatus::Usage;
        }
    };
    let mut argv = vec![args.program.as_bytes().to_vec()];
    argv.extend(args.args.iter().map(|a| a.as_bytes().to_vec()));
    let cfg = run::RunConfig {
        kernel: &kernel,
        program: &program.elf,
        payload: program.payload.as_deref(),
        program_name: &args.program,
        args: argv,
        mem_bytes: args.mem.next_multiple_of(2) << 20,
        timeout: args.timeout.map(Duration::from_secs_f64),
        stats: args.stats,
        policy,
    };
    match run::run(cfg, start) {
        Ok(status) => status,
        Err(e) => {
            match &e {
                run::RunError::Boot(b) if b.is_program_error() => {
                    eprintln!("weft: {}: {e}", args.program)
                }
                _ => eprintln!("weft: {e}"),
            }
            e.status()
        }
    }
}
