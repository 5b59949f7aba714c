//! `weft`: the Weft monitor's command line. Boots the Weft kernel in a KVM
//! virtual machine, runs one program in it, and relays its output and exit
//! status.
//!
//! Module map: `cli` (the command line), `programs` (the kernel and the
//! programs bundled into the binary, and how PROGRAM is resolved). The
//! monitor itself is the `weft_monitor` library (`src/lib.rs` has its map):
//! this file turns the command line into a [`run::RunConfig`] and the
//! outcome into an exit status.

mod cli;
mod programs;

use std::os::unix::ffi::OsStrExt;
use std::process::ExitCode;
use std::time::{Duration, Instant};
use weft_monitor::run;
use weft_monitor::status::ExitStatus;
use weft_monitor::streams::Policy;

fn main() -> ExitCode {
    let start = Instant::now();
    let cli::Command::Run(args) = cli::Cli::parse_with_examples(programs::examples_help()).command;
    ExitCode::from(run(&args, start).code())
}

fn run(args: &cli::RunArgs, start: Instant) -> ExitStatus {
    let policy = match Policy::new(
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
        catalog: &programs::Bundled,
        device: None,
    };
    match run::run(cfg, start) {
        Ok(status) => status,
        Err(e) => {
            if e.is_program_error() {
                eprintln!("weft: {}: {e}", args.program)
            } else {
                eprintln!("weft: {e}")
            }
            e.status()
        }
    }
}
