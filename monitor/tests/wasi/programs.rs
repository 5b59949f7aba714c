//! The programs of the suite and how each is run: the C programs built into
//! target/wasm/conformance/ and the Rust programs of
//! user/wasm/conformance/rust/src/bin/, each with its settings.

use std::fs;
use std::path::{Path, PathBuf};

/// What every program reads on stdin (the same bytes on both runtimes).
pub const STDIN: &str = "first line\nsecond line\n\nlast line, no newline";

/// Environment of the programs that read variables.
const ENV: &[(&str, &str)] = &[
    ("GREETING", "hello world"),
    ("EMPTY", ""),
    ("WITH_EQUALS", "a=b=c"),
];

/// Arguments of the programs that print theirs.
const ARGS: &[&str] = &["one", "two words", "", "--flag=x", "caf\u{e9}"];

/// How one program is run and compared.
#[derive(Clone, Copy)]
pub struct Settings {
    /// Arguments after argv[0].
    pub args: &'static [&'static str],
    /// Environment variables (none by default).
    pub env: &'static [(&'static str, &'static str)],
    /// The tree is granted read-only.
    pub read_only: bool,
    /// No tree is granted at all (no `--fs-root`, no preopen).
    pub no_root: bool,
    /// The program ends in a trap: stderr is compared only as "a message
    /// was printed", as the two runtimes word traps differently.
    pub traps: bool,
    /// TCP listeners granted (fds 4, 5, ...). The reference runner cannot
    /// grant sockets, so such programs are compared with a checked-in
    /// expected output instead (see `run::expected`).
    pub listeners: usize,
}

/// Programs whose settings are not the defaults.
const SETTINGS: &[(&str, Settings)] = &[
    ("c/args", WITH_ARGS),
    ("rust/args", WITH_ARGS),
    ("c/environ_vars", WITH_ENV),
    ("rust/env_vars", WITH_ENV),
    ("c/read_only_tree", READ_ONLY),
    ("c/no_root", NO_ROOT),
    ("c/trap_unreachable", TRAPS),
    ("c/trap_div_zero", TRAPS),
    ("c/trap_oob", TRAPS),
    ("rust/panic", TRAPS),
    ("c/clock_invalid", TRAPS),
    ("c/seek_whence_invalid", TRAPS),
    ("c/advise_invalid", TRAPS),
    ("c/exit_255", TRAPS),
    ("c/sock_listener", ONE_LISTENER),
    ("c/sock_two_listeners", TWO_LISTENERS),
    ("rust/net_listener", ONE_LISTENER),
];

const NONE: Settings = Settings {
    args: &[],
    env: &[],
    read_only: false,
    no_root: false,
    traps: false,
    listeners: 0,
};
const WITH_ARGS: Settings = Settings { args: ARGS, ..NONE };
const WITH_ENV: Settings = Settings { env: ENV, ..NONE };
const READ_ONLY: Settings = Settings {
    read_only: true,
    ..NONE
};
const NO_ROOT: Settings = Settings {
    no_root: true,
    ..NONE
};
const TRAPS: Settings = Settings {
    traps: true,
    ..NONE
};
const ONE_LISTENER: Settings = Settings {
    listeners: 1,
    ..NONE
};
const TWO_LISTENERS: Settings = Settings {
    listeners: 2,
    ..NONE
};

/// One program of the suite.
pub struct Program {
    /// `c/NAME` or `rust/NAME`: the name the differences list uses.
    pub name: String,
    /// The built module.
    pub wasm: PathBuf,
    pub settings: Settings,
}

/// The source directory of the suite, user/wasm/conformance.
pub fn source_dir() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../user/wasm/conformance"
    ))
}

/// Every program, C then Rust, each in name order; panics if one is not
/// built.
pub fn all(target: &Path) -> Vec<Program> {
    let src = source_dir();
    let mut out = Vec::new();
    for (lang, dir, ext, built) in [
        ("c", src.join("c"), "c", target.join("wasm/conformance")),
        (
            "rust",
            src.join("rust/src/bin"),
            "rs",
            target.join("wasm/wasm32-wasip1/release"),
        ),
    ] {
        let mut names: Vec<String> = fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .filter_map(|e| {
                let path = e.unwrap().path();
                (path.extension()? == ext).then(|| path.file_stem()?.to_str().map(String::from))?
            })
            .collect();
        names.sort();
        for stem in names {
            let wasm = built.join(format!("{stem}.wasm"));
            assert!(
                wasm.is_file(),
                "{} missing: run `make guest`",
                wasm.display()
            );
            let name = format!("{lang}/{stem}");
            let settings = settings(&name);
            out.push(Program {
                name,
                wasm,
                settings,
            });
        }
    }
    out
}

fn settings(name: &str) -> Settings {
    SETTINGS
        .iter()
        .find(|(n, _)| *n == name)
        .map_or(NONE, |(_, s)| *s)
}

/// The names the settings table gives, for checking it names only
/// programs that exist.
pub fn configured() -> impl Iterator<Item = &'static str> {
    SETTINGS.iter().map(|(n, _)| *n)
}
