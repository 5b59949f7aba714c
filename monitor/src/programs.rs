//! The kernel and example programs bundled into `weft` (the catalog the
//! guest's spawn requests name programs from), and how a PROGRAM argument
//! is resolved: a bundled name, else a path to a file.

use std::borrow::Cow;
use std::path::Path;
use thiserror::Error;
use weft_monitor::aot;
use weft_monitor::catalog::{self, Catalog, NotRunnable, Program, Tier};

include!(concat!(env!("OUT_DIR"), "/bundled.rs"));

/// Why a program could not be found or read.
#[derive(Debug, Error)]
pub enum ProgramError {
    /// A path ([`names_a_file`]) to no file.
    #[error("{name}: no such file")]
    NoFile { name: String },
    /// A name of no bundled program; `file_here` if the current directory
    /// has a file by that name (which a bundled name never means).
    #[error(
        "{name}: no bundled program by that name (bundled: {}){}",
        bundled_names(),
        if *file_here {
            format!("; to run the file {name} in this directory, give it as ./{name}")
        } else {
            String::new()
        }
    )]
    NotBundled { name: String, file_here: bool },
    /// A Wasm module that cannot run: no runtime for it, or the
    /// ahead-of-time compiler refused it.
    #[error("{name}: {why}")]
    NotRunnable {
        name: String,
        why: catalog::NotRunnable,
    },
    /// The file exists but could not be read.
    #[error("{path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    /// Not a file nor a pipe (a directory, a device such as `/dev/zero`):
    /// what could have no end is not read.
    #[error("{path}: not a regular file or a pipe")]
    NotAFile { path: String },
    /// Longer than any program or kernel may be ([`MAX_PROGRAM`]).
    #[error("{path}: larger than {} MiB, the most weft reads of a program or kernel", MAX_PROGRAM >> 20)]
    TooLarge { path: String },
}

/// The longest program (or kernel) file `weft run` reads: what the
/// payload block can hold (PROTOCOL.md §4.1).
pub const MAX_PROGRAM: u64 = weft_control::layout::USER_PAYLOAD_MAX;

/// The programs bundled into `weft`.
#[derive(Clone, Copy, Debug)]
pub struct Bundled;

impl Catalog for Bundled {
    fn find(&self, name: &str) -> Option<Cow<'static, [u8]>> {
        bundled(name)
    }
}

/// How a guest runs the Wasm modules whose spawn leaves it the choice
/// (`--engine`, PROTOCOL.md §13.8).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DefaultTier {
    /// Compiled, unless the module needs the interpreter
    /// ([`aot::needs_interpreter`]; `movable` in a device's guest, where
    /// event apps move).
    Auto { movable: bool },
    /// Compiled.
    Compiled,
    /// Interpreted.
    Interp,
}

/// The bundled programs, with Wasm modules compiled ahead of time
/// (PROTOCOL.md §13.8) as each spawn asks ([`Tier`]), and as `default`
/// says where it leaves the choice.
pub struct Compiled {
    compiler: aot::Compiler,
    default: DefaultTier,
}

impl Compiled {
    /// A catalog compiling with a compiler that caches in the user's
    /// cache directory.
    pub fn new(default: DefaultTier) -> Result<Self, aot::AotError> {
        let compiler = aot::Compiler::new()?;
        Ok(Self { compiler, default })
    }

    /// A catalog whose compiler caches nothing on disk (a daemon's, whose
    /// sandbox holds it to its state directory from the start).
    pub fn uncached(default: DefaultTier) -> Result<Self, aot::AotError> {
        let compiler = aot::Compiler::with_cache(None)?;
        Ok(Self { compiler, default })
    }

    /// Compiles without the cache from now on ([`aot::Compiler::stop_caching`]):
    /// the modules the guest spawns are compiled in the sandbox.
    pub fn stop_caching(&self) {
        self.compiler.stop_caching();
    }
}

impl Catalog for Compiled {
    fn find(&self, name: &str) -> Option<Cow<'static, [u8]>> {
        bundled(name)
    }

    fn compile(&self, module: &[u8], tier: Tier) -> Option<Result<Vec<u8>, NotRunnable>> {
        let compiled = match (tier, self.default) {
            (Tier::Compiled, _) | (Tier::Default, DefaultTier::Compiled) => true,
            (Tier::Interp, _) | (Tier::Default, DefaultTier::Interp) => false,
            (Tier::Default, DefaultTier::Auto { movable }) => {
                !aot::needs_interpreter(module, movable)
            }
        };
        compiled.then(|| {
            self.compiler
                .payload(module)
                .map_err(|e| NotRunnable::Compile(e.to_string()))
        })
    }
}

/// The bundled programs a user runs by name: each one's usage and what it
/// does (`weft run --help`). Every other bundled program is internal and
/// cannot be named: the Wasm runtimes ([`catalog::WASM_RUNTIME`] and
/// [`catalog::AOT_RUNTIME`], for compiled modules), which run `.wasm`
/// files, the device agent ([`catalog::DEVICE_AGENT`]), which `weft daemon`
/// boots as its guest's first program (`Bundled.find(DEVICE_AGENT)` gives
/// its ELF), and `crash-kernel`, which asks a kernel built with the
/// `crash-test` feature to crash (a device's guest spawns it by name, so
/// that a daemon started with `--kernel` on such a kernel can be crashed;
/// the bundled kernel refuses the request and it exits 1).
pub const EXAMPLES: &[(&str, &str)] = &[
    (
        "hello [ARGS]...",
        "prints a greeting, then each argument on its own line",
    ),
    (
        "env",
        "prints its environment (--env), one KEY=VALUE a line",
    ),
    ("exit-code N", "exits with status N"),
    (
        "fault",
        "reads an unmapped address: weft reports the fault and exits 125",
    ),
    ("spin", "loops forever (try --timeout 2)"),
    ("sleep MS", "sleeps on the kernel's timer, then exits 0"),
    (
        "cat [PATH]...",
        "copies files under --fs-root (or standard input) to standard output",
    ),
    ("ls [DIR]", "lists a directory under --fs-root"),
    ("cp SRC DST", "copies a file under --fs-root"),
    (
        "echo-server PORT",
        "TCP echo, many connections at once (needs --listen)",
    ),
    (
        "http-get HOST:PORT PATH",
        "HTTP/1.1 GET, the body to standard output (needs --connect)",
    ),
    (
        "udp-echo PORT",
        "echoes each UDP datagram to its sender (needs --listen)",
    ),
    (
        "httpd PORT",
        "serves the files under --fs-root over HTTP/1.1 (needs --listen)",
    ),
    (
        "procs [--list] [--kill-after MS] PROG ARGS [-- PROG ARGS]...",
        "runs programs as processes side by side and reports how each ended",
    ),
    (
        "fabric-ls [spawn PROGRAM [DEVICE] | kill PID | wait PID SECS | watch COUNT [slow]]",
        "lists the fabric's devices and processes, or spawns, kills, waits (in a device guest under `weft daemon`)",
    ),
    (
        "kv serve GUID | kv set|get|del GUID KEY [VALUE]",
        "a key-value service by GUID, and its client (IPC, under `weft daemon`)",
    ),
    (
        "ipc-check serve GUID | call GUID N TAG [PID] | send GUID N TAG | cancel GUID | rtt GUID N",
        "exercises IPC: a checking service, requests, one-way sends, cancel, timing",
    ),
];

/// The name of an [`EXAMPLES`] entry.
fn example_name(usage: &str) -> &str {
    usage.split(' ').next().unwrap_or(usage)
}

/// Names of the bundled programs a user may run, comma-separated.
pub fn bundled_names() -> String {
    EXAMPLES
        .iter()
        .map(|(usage, _)| example_name(usage))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The bundled examples, one per line, for `weft run --help`.
pub fn examples_help() -> String {
    let mut text = String::from("Bundled programs:\n");
    for (usage, what) in EXAMPLES {
        text.push_str(&format!("  {usage}\n      {what}\n"));
    }
    text
}

/// Whether PROGRAM names a file rather than a bundled program: it contains
/// a `/` or ends in `.wasm`. Which one it names never depends on what the
/// current directory holds: `hello` is always the bundled program, `./hello`
/// the file. No bundled name contains a `/` or ends in `.wasm`.
pub fn names_a_file(name: &str) -> bool {
    name.contains('/') || name.ends_with(".wasm")
}

/// What PROGRAM names ([`names_a_file`]): a file, or a bundled program. A
/// Wasm module (recognised by its magic bytes) runs in a bundled Wasm
/// runtime, as `catalog` says ([`catalog::runnable`]).
pub fn resolve(name: &str, catalog: &dyn Catalog) -> Result<Program, ProgramError> {
    let bytes = if names_a_file(name) {
        Cow::Owned(read_image(Path::new(name))?)
    } else {
        EXAMPLES
            .iter()
            .any(|(usage, _)| example_name(usage) == name)
            .then(|| bundled(name))
            .flatten()
            .ok_or_else(|| ProgramError::NotBundled {
                name: name.to_owned(),
                file_here: Path::new(name).exists(),
            })?
    };
    catalog::runnable(catalog, bytes, Tier::Default).map_err(|why| ProgramError::NotRunnable {
        name: name.to_owned(),
        why,
    })
}

/// The file `path` names, whole: a regular file, or a pipe (`weft run
/// <(...)`), of at most [`MAX_PROGRAM`] bytes.
fn read_image(path: &Path) -> Result<Vec<u8>, ProgramError> {
    use std::io::Read;
    use std::os::unix::fs::FileTypeExt;
    let shown = || path.display().to_string();
    let read = |source| ProgramError::Read {
        path: shown(),
        source,
    };
    let file = std::fs::File::open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => ProgramError::NoFile { name: shown() },
        _ => read(e),
    })?;
    let kind = file.metadata().map_err(read)?.file_type();
    if !(kind.is_file() || kind.is_fifo()) {
        return Err(ProgramError::NotAFile { path: shown() });
    }
    let mut bytes = Vec::new();
    file.take(MAX_PROGRAM + 1)
        .read_to_end(&mut bytes)
        .map_err(read)?;
    if bytes.len() as u64 > MAX_PROGRAM {
        return Err(ProgramError::TooLarge { path: shown() });
    }
    Ok(bytes)
}

/// The bundled program called `name`.
fn bundled(name: &str) -> Option<Cow<'static, [u8]>> {
    PROGRAMS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, elf)| Cow::Borrowed(*elf))
}

/// The kernel ELF: `--kernel PATH`, or the bundled one.
pub fn kernel(path: Option<&Path>) -> Result<Cow<'static, [u8]>, ProgramError> {
    match path {
        None => Ok(Cow::Borrowed(KERNEL)),
        Some(p) => read_image(p).map(Cow::Owned),
    }
}

/// The bundled ELF files `weft symbols` writes for a debugger: the kernel
/// (`weft-kernel`), then each program of `names` (every bundled one if
/// none), by name; a name of no bundled program is refused.
pub fn symbol_files(names: &[String]) -> Result<Vec<(String, &'static [u8])>, ProgramError> {
    let mut files = vec![("weft-kernel".to_string(), KERNEL)];
    if names.is_empty() {
        files.extend(PROGRAMS.iter().map(|(n, elf)| (n.to_string(), *elf)));
        return Ok(files);
    }
    for name in names {
        let (_, elf) =
            PROGRAMS
                .iter()
                .find(|(n, _)| n == name)
                .ok_or_else(|| ProgramError::NotBundled {
                    name: name.clone(),
                    file_here: false,
                })?;
        files.push((name.clone(), *elf));
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_monitor::catalog::WASM_RUNTIME;

    #[test]
    fn bundled_programs_resolve_and_unknown_names_do_not() {
        for name in ["hello", "exit-code", "fault", "spin", "sleep", "cat"] {
            let p = resolve(name, &Bundled).unwrap();
            assert!(
                p.elf.starts_with(b"\x7fELF") && p.payload.is_none(),
                "{name}"
            );
        }
        let err = resolve("no-such-program", &Bundled)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("no bundled program") && err.contains("hello"),
            "{err}"
        );
        for file in ["./no/such/file", "no-such.wasm"] {
            assert!(matches!(
                resolve(file, &Bundled),
                Err(ProgramError::NoFile { .. })
            ));
        }
        assert!(kernel(None).unwrap().starts_with(b"\x7fELF"));
    }

    /// Which modules a catalog compiles: what a spawn asks, else the
    /// guest's default, whose `auto` interprets what needs the interpreter
    /// (and, where apps move, event apps).
    #[test]
    fn each_spawn_gets_the_tier_it_asks_or_the_guests_default() {
        let parse = |text: &str| wat::parse_str(text).unwrap();
        let command = parse(r#"(module (func (export "_start")))"#);
        let event_app = parse(
            r#"(module (func (export "_initialize"))
                (func (export "weft_on_events") (param i32) (result i32) i32.const 0))"#,
        );
        // It imports a process call, and states no interface version:
        // compiled, it is refused.
        let spawner = parse(
            r#"(module (import "weft" "spawn"
                (func (param i32 i32 i32 i32 i64 i32) (result i32)))
                (func (export "_start")))"#,
        );
        // Some(true): compiled; Some(false): refused; None: interpreted.
        let runs = |default, module: &[u8], tier| {
            Compiled::uncached(default)
                .unwrap()
                .compile(module, tier)
                .map(|r| r.is_ok())
        };
        let auto = DefaultTier::Auto { movable: false };
        let device = DefaultTier::Auto { movable: true };
        for (default, module, tier, expected) in [
            (auto, &command, Tier::Default, Some(true)),
            (auto, &event_app, Tier::Default, Some(true)),
            (auto, &spawner, Tier::Default, None),
            (device, &command, Tier::Default, Some(true)),
            (device, &event_app, Tier::Default, None),
            (device, &event_app, Tier::Compiled, Some(true)),
            (device, &spawner, Tier::Default, None),
            (DefaultTier::Interp, &command, Tier::Default, None),
            (DefaultTier::Interp, &command, Tier::Compiled, Some(true)),
            (DefaultTier::Compiled, &command, Tier::Interp, None),
            (DefaultTier::Compiled, &spawner, Tier::Default, Some(false)),
            (DefaultTier::Compiled, &spawner, Tier::Interp, None),
        ] {
            assert_eq!(
                runs(default, module, tier),
                expected,
                "{default:?}, {tier:?}, {}",
                String::from_utf8_lossy(module)
            );
        }
    }

    #[test]
    fn no_bundled_name_could_be_taken_for_a_file() {
        for (name, _) in PROGRAMS {
            assert!(!names_a_file(name), "{name}");
        }
        assert!(names_a_file("./hello") && names_a_file("app.wasm"));
        assert!(!names_a_file("hello"));
    }

    /// The bundled programs that are not examples.
    const INTERNAL: &[&str] = &[
        WASM_RUNTIME,
        weft_monitor::catalog::AOT_RUNTIME,
        weft_monitor::catalog::DEVICE_AGENT,
        "crash-kernel",
    ];

    #[test]
    fn every_bundled_program_is_an_example_but_the_internal_ones() {
        let mut bundled: Vec<&str> = PROGRAMS.iter().map(|(n, _)| *n).collect();
        bundled.retain(|n| !INTERNAL.contains(n));
        let mut examples: Vec<&str> = EXAMPLES.iter().map(|(u, _)| example_name(u)).collect();
        bundled.sort_unstable();
        examples.sort_unstable();
        assert_eq!(bundled, examples);
        for internal in INTERNAL {
            assert!(matches!(
                resolve(internal, &Bundled),
                Err(ProgramError::NotBundled { .. })
            ));
            assert!(!bundled_names().contains(internal));
            let elf = Bundled.find(internal).unwrap();
            assert!(elf.starts_with(b"\x7fELF"), "{internal}");
        }
        assert!(examples_help().contains("  procs [--list]"));
    }

    #[test]
    fn wasm_files_run_in_the_runtime_with_the_module_as_payload() {
        let dir = std::env::temp_dir().join(format!("weft-programs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("app.wasm");
        std::fs::write(&f, b"\0asm\x01\0\0\0").unwrap();
        let p = resolve(f.to_str().unwrap(), &Bundled).unwrap();
        assert_eq!(p.elf, bundled(WASM_RUNTIME).unwrap());
        assert_eq!(p.payload.as_deref(), Some(&b"\0asm\x01\0\0\0"[..]));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
