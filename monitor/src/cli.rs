//! The `weft` command line (the contract in the README and `weft --help`).

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;

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
    Run(RunArgs),
}

/// Options of `weft run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The directory the guest sees as `/` (file streams are refused without it).
    #[arg(long, value_name = "DIR")]
    pub fs_root: Option<PathBuf>,
    /// File streams cannot modify the --fs-root directory.
    #[arg(long)]
    pub read_only: bool,
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
    /// The program: a bundled program's name, or a path to an ELF file or a
    /// Wasm module.
    pub program: String,
    /// Arguments passed to the program.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<OsString>,
}

/// The exit statuses (the contract in the README), at the end of `--help`.
const EXIT_STATUSES: &str = "\
Exit status: the program's own (0-125; a Rust program that panics exits 101);
2 for a usage or configuration error (bad option, unknown program, a file
that is not a valid Weft program or Wasm module); 124 when --timeout expired;
125 when the guest crashed (kernel panic, fault, triple fault, protocol violation,
a Wasm trap), with a report on stderr; 128+N when stopped by signal N (SIGINT,
SIGTERM), after the guest's output and --stats.";

impl Cli {
    /// Parses the command line; `run --help` lists `examples` (the bundled
    /// programs), and both helps end with the exit statuses.
    pub fn parse_with_examples(examples: String) -> Self {
        let command = Self::command()
            .after_help(EXIT_STATUSES)
            .mut_subcommand("run", |run| {
                run.after_help(format!("{examples}\n{EXIT_STATUSES}"))
            });
        let matches = command.get_matches();
        match Self::from_arg_matches(&matches) {
            Ok(cli) => cli,
            Err(e) => e.exit(),
        }
    }
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
        let Command::Run(r) = cli.command;
        Ok(r)
    }

    #[test]
    fn program_args_keep_their_dashes() {
        let r = parse(&[
            "run",
            "--stats",
            "--timeout",
            "2.5",
            "hello",
            "-x",
            "--mem",
            "y",
        ])
        .unwrap();
        assert!(r.stats);
        assert_eq!(r.timeout, Some(2.5));
        assert_eq!(r.program, "hello");
        assert_eq!(r.args, ["-x", "--mem", "y"]);
        assert_eq!(r.mem, 64);
    }

    #[test]
    fn bad_options_are_usage_errors() {
        for bad in [
            &["run"][..],
            &["run", "--timeout", "0", "hello"],
            &["run", "--mem", "8", "hello"],
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
        assert_eq!(r.listen.len(), 2);
        assert_eq!(r.connect, ["10.0.0.1:443".parse().unwrap()]);
        assert!(parse(&["run", "--listen", "localhost", "hello"]).is_err());
    }
}
