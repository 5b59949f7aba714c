//! The WASI conformance suite: every program of user/wasm/conformance/ (C
//! programs built with clang and wasi-libc, Rust std programs) runs under
//! weft, in each of its engines ([`ENGINES`]: the interpreter and the
//! ahead-of-time tier, whose WASI functions are the same code), and under
//! wasmtime (the PyPI package, by tests/wasi/reference.py),
//! each in a fresh copy of the same fixture tree with the same argv,
//! environment and stdin; stdout, stderr, the exit status and the tree left
//! behind must match. Socket programs, which the reference cannot grant
//! listeners to, are compared with checked-in expected output instead.
//!
//! Known differences are listed in PROTOCOL.md §13.1's table, which the
//! test reads: it fails when an unlisted aspect differs and when a listed
//! one matches, so the table stays honest.
//!
//! For whoever works on a difference: `WEFT_WASI_ONLY=c/times,rust/env`
//! runs only those programs, and `WEFT_WASI_SHOW=1` prints the listed
//! differences too.

mod common;
#[path = "wasi/diff.rs"]
mod diff;
#[path = "wasi/differences.rs"]
mod differences;
#[path = "wasi/fixture.rs"]
mod fixture;
#[path = "wasi/programs.rs"]
mod programs;
#[path = "wasi/run.rs"]
mod run;

use common::TempDir;
use programs::Program;
use run::Outcome;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;

/// Programs run at a time (each run is one guest or one wasmtime).
const PARALLEL: usize = 2;
/// The engines of `weft run --engine`, each compared with the reference.
const ENGINES: [&str; 2] = ["interp", "aot"];

/// A program's outcomes: weft's by engine ([`ENGINES`]), and the
/// reference's.
type Outcomes = (Vec<Outcome>, Outcome);

#[test]
fn every_program_behaves_as_under_wasmtime_or_its_difference_is_listed() {
    let python = Command::new("python3")
        .args(["-c", "import wasmtime"])
        .status()
        .expect("run python3");
    assert!(
        python.success(),
        "the wasmtime Python package is missing: run `make setup`"
    );
    let source = programs::source_dir();
    let listed = differences::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../PROTOCOL.md"));
    let mut programs = programs::all(&common::target());
    let show = std::env::var_os("WEFT_WASI_SHOW").is_some();
    let only = std::env::var("WEFT_WASI_ONLY").ok();
    let mut named: Vec<&str> = programs::configured().collect();
    named.extend(listed.keys().map(|(p, _)| p.as_str()));
    for name in named {
        assert!(
            programs.iter().any(|p| p.name == name),
            "{name} is configured or listed but is no program of the suite"
        );
    }
    if let Some(only) = &only {
        programs.retain(|p| only.split(',').any(|name| name == p.name));
    }
    let scratch = TempDir::new("wasi-conformance");
    let results = run_all(&programs, &source, &scratch);
    drop(scratch);

    let mut failures = Vec::new();
    let mut known = 0;
    for (program, (wefts, reference)) in programs.iter().zip(&results) {
        for (engine, weft) in ENGINES.iter().zip(wefts) {
            for &aspect in differences::ASPECTS {
                let (a, b) = (
                    view(program, aspect, reference),
                    view(program, aspect, weft),
                );
                let key = (program.name.clone(), aspect.to_string());
                let name = format!("{} (--engine {engine})", program.name);
                match (a == b, listed.get(&key)) {
                    (true, None) => {}
                    (false, Some(_)) => {
                        known += 1;
                        if show {
                            println!(
                                "listed: {name} differs in {aspect} (- wasmtime, + weft):\n{}",
                                diff::unified(&a, &b)
                            );
                        }
                    }
                    (false, None) => failures.push(format!(
                        "{name} differs in {aspect} (- wasmtime, + weft):\n{}",
                        diff::unified(&a, &b)
                    )),
                    (true, Some(reason)) => failures.push(format!(
                        "{name} now matches in {aspect}: delete its row from PROTOCOL.md §13.1 ({reason})"
                    )),
                }
            }
        }
    }
    println!(
        "{} programs, {} listed differences seen, {} failures",
        programs.len(),
        known,
        failures.len()
    );
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

/// One aspect of an outcome as compared. A trapping program's stderr is
/// reduced to whether there is a message (the runtimes word traps
/// differently); the status is shown as a line.
fn view(program: &Program, aspect: &str, o: &Outcome) -> String {
    match aspect {
        "stdout" => o.stdout.clone(),
        "stderr" if program.settings.traps => {
            format!("a message on stderr: {}\n", !o.stderr.trim().is_empty())
        }
        "stderr" => o.stderr.clone(),
        "status" => format!("exit status {}\n", o.status),
        "tree" => o.tree.clone(),
        "client" => o.client.clone(),
        _ => unreachable!("aspect {aspect}"),
    }
}

/// Runs every program under weft's engines and the reference, `PARALLEL`
/// programs at a time; (weft's by engine, reference) outcomes in the
/// programs' order.
fn run_all(programs: &[Program], source: &Path, scratch: &Path) -> Vec<Outcomes> {
    let weft = PathBuf::from(env!("CARGO_BIN_EXE_weft"));
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Outcomes>>> = Mutex::new(programs.iter().map(|_| None).collect());
    thread::scope(|s| {
        for _ in 0..PARALLEL {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(program) = programs.get(i) else {
                        return;
                    };
                    let dir = scratch.join(program.name.replace('/', "-"));
                    let w = ENGINES
                        .iter()
                        .map(|e| run::weft(&weft, e, program, &dir.join(format!("weft-{e}"))))
                        .collect();
                    let r = if program.settings.listeners > 0 {
                        run::expected(program, source, &dir.join("expected"))
                    } else {
                        run::reference(program, &dir.join("reference"))
                    };
                    results.lock().unwrap()[i] = Some((w, r));
                }
            });
        }
    });
    results
        .into_inner()
        .unwrap()
        .into_iter()
        .map(Option::unwrap)
        .collect()
}
