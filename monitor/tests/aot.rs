//! Integration tests of the ahead-of-time tier (PROTOCOL.md §13.8): real
//! KVM guests running modules the monitor compiled, with `weft run
//! --engine aot`. (The WASI conformance suite runs under this tier too:
//! `wasi_conformance.rs`.) Each case uses a cache directory of its own.

mod common;

use common::{TempDir, wasm, weft};
use std::path::{Path, PathBuf};
use std::process::Output;

/// A fresh directory for this test's files.
fn scratch(tag: &str) -> TempDir {
    TempDir::new(&format!("aot-{tag}"))
}

/// `weft run --engine aot ARGS...` with its artifact cache in `cache`.
fn aot(cache: &Path, args: &[&str]) -> Output {
    weft()
        .env("XDG_CACHE_HOME", cache)
        .args(["run", "--timeout", "60", "--engine", "aot"])
        .args(args)
        .output()
        .expect("spawn weft")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The artifacts in the cache.
fn cached(cache: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(cache.join("weft/aot"))
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default()
}

#[test]
fn a_module_runs_compiled_as_it_runs_interpreted_and_its_artifact_is_cached() {
    let dir = scratch("hello");
    let hello = wasm("hello");
    let interp = weft()
        .args(["run", "--timeout", "60", &hello, "one", "two words"])
        .output()
        .unwrap();
    let first = aot(&dir, &[&hello, "one", "two words"]);
    assert_eq!(first.status.code(), Some(0), "{}", text(&first.stderr));
    assert_eq!(text(&first.stdout), text(&interp.stdout));
    assert!(text(&first.stdout).contains("arg: two words"));
    let artifacts = cached(&dir);
    assert_eq!(artifacts.len(), 1, "{artifacts:?}");
    let made = std::fs::metadata(&artifacts[0]).unwrap().len();
    // The second run loads the cached artifact (it is not written again).
    let again = aot(&dir, &[&hello, "one", "two words"]);
    assert_eq!(text(&again.stdout), text(&interp.stdout));
    assert_eq!(cached(&dir), artifacts);
    assert_eq!(std::fs::metadata(&artifacts[0]).unwrap().len(), made);
}

/// Each trap ends the app with 125 and a report naming the trap and the
/// function it happened in, as the interpreter's does.
#[test]
fn traps_end_the_app_with_125_and_name_the_trap_and_its_function() {
    let dir = scratch("traps");
    let cases = [
        (
            "(func $oob (export \"_start\") (drop (i32.load (i32.const 70000)))) (memory 1)",
            "out of bounds memory access",
            "oob",
        ),
        (
            "(func $divide (export \"_start\") (drop (i32.div_s (i32.const 1) (i32.const 0))))",
            "integer divide by zero",
            "divide",
        ),
        (
            "(func $deep (export \"_start\") (call $deep))",
            "call stack exhausted",
            "deep",
        ),
        (
            "(func $explode (export \"_start\") unreachable)",
            "unreachable",
            "explode",
        ),
    ];
    for (body, what, function) in cases {
        let module = wat::parse_str(format!("(module {body})")).unwrap();
        let path = dir.join(format!("{function}.wasm"));
        std::fs::write(&path, module).unwrap();
        let out = aot(&dir, &[path.to_str().unwrap()]);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(125), "{function}: {err}");
        assert!(err.contains("trap: ") && err.contains(what), "{err}");
        assert!(err.contains(&format!("in `{function}`")), "{err}");
    }
    // A Rust program's trap, several frames deep, names the innermost.
    let out = aot(&dir, &[&wasm("trap")]);
    assert_eq!(out.status.code(), Some(125));
    assert!(text(&out.stdout).contains("trap: exploding"));
    assert!(
        text(&out.stderr).contains("in `explode`"),
        "{}",
        text(&out.stderr)
    );
}

/// What cannot run in this tier is a usage error (status 2) that says why,
/// and nothing of it is cached.
#[test]
fn a_module_that_cannot_run_compiled_is_refused_with_status_2() {
    let dir = scratch("refused");
    let cases = [
        ("garbage", b"\0asm\x01\0\0\0\xff\xff".to_vec(), "weft: "),
        (
            "import",
            wat::parse_str("(module (import \"env\" \"f\" (func)) (func (export \"_start\")))")
                .unwrap(),
            "env::f",
        ),
        (
            "no-interface",
            wat::parse_str(
                "(module (import \"weft\" \"no_such\" (func)) (func (export \"_start\")))",
            )
            .unwrap(),
            "states no interface version",
        ),
        (
            "unknown-weft-import",
            wat::parse_str(format!(
                "(module (@custom \"weft_interface\" \"{}\")
                         (import \"weft\" \"no_such\" (func)) (func (export \"_start\")))",
                weft_control::INTERFACE_VERSION
                    .to_le_bytes()
                    .iter()
                    .map(|b| format!("\\{b:02x}"))
                    .collect::<String>()
            ))
            .unwrap(),
            "no_such",
        ),
        (
            "no-start",
            wat::parse_str("(module (func (export \"main\")))").unwrap(),
            "_start",
        ),
    ];
    for (name, bytes, says) in cases {
        let path = dir.join(format!("{name}.wasm"));
        std::fs::write(&path, bytes).unwrap();
        let out = aot(&dir, &[path.to_str().unwrap()]);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}: {err}");
        assert!(err.contains(says), "{name}: {err}");
    }
    // The modules Cranelift compiled are cached (the event app without an
    // interface version was refused before).
    assert_eq!(cached(&dir).len(), 3, "{:?}", cached(&dir));
}

/// A compiled app's linear memory stops at the cap (256 MiB), with enough
/// guest memory to go past it.
#[test]
fn a_compiled_app_cannot_grow_its_memory_past_its_cap() {
    let dir = scratch("cap");
    let out = aot(&dir, &["--mem", "600", &wasm("hog")]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    let held: u32 = stdout
        .lines()
        .find_map(|l| {
            l.strip_prefix("hog: holding ")?
                .strip_suffix(" MiB")?
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!((200..256).contains(&held), "{stdout}");
}

/// A compiled app that never yields is its own kernel process, preempted
/// by the timer: a program spawned beside it runs, and it can be killed.
/// The modules are compiled in the sandboxed monitor as they are spawned.
#[test]
fn a_spinning_compiled_app_is_preempted_and_can_be_killed() {
    let dir = scratch("spin");
    let root = dir.join("root");
    std::fs::create_dir_all(&root).unwrap();
    for name in ["spin", "hello"] {
        std::fs::copy(wasm(name), root.join(format!("{name}.wasm"))).unwrap();
    }
    let out = aot(
        &dir,
        &[
            "--fs-root",
            root.to_str().unwrap(),
            "procs",
            "--kill-after",
            "2000",
            "/spin.wasm",
            "--",
            "/hello.wasm",
            "beside",
        ],
    );
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("spin: spinning"), "{stdout}");
    assert!(stdout.contains("arg: beside"), "{stdout}");
    assert!(
        stdout.contains("procs: /spin.wasm (pid 2) exited with status 137"),
        "{stdout}"
    );
    assert!(
        stdout.contains("procs: /hello.wasm (pid 3) exited with status 0"),
        "{stdout}"
    );
}

/// By default (`--engine auto`) a module is compiled, unless it imports a
/// process call only the interpreter serves: `supervise` spawns apps, so
/// it is interpreted (and the apps it spawns run beside it there), while
/// `hello` is compiled.
#[test]
fn the_default_engine_compiles_unless_the_module_needs_the_interpreter() {
    let dir = scratch("auto");
    let root = dir.join("root");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::copy(wasm("hello"), root.join("hello.wasm")).unwrap();
    let run = |args: &[&str]| {
        weft()
            .env("XDG_CACHE_HOME", dir.as_os_str())
            .args([
                "run",
                "--timeout",
                "60",
                "--fs-root",
                root.to_str().unwrap(),
            ])
            .args(args)
            .output()
            .unwrap()
    };
    let out = run(&[&wasm("supervise"), "hello.wasm", "inside"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("arg: inside"),
        "{}",
        text(&out.stdout)
    );
    assert!(cached(&dir).is_empty(), "{:?}", cached(&dir));
    let out = run(&[&wasm("hello"), "alone"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("arg: alone"));
    assert_eq!(cached(&dir).len(), 1, "{:?}", cached(&dir));
}
