//! `weft run --gdb` and `weft symbols` (PROTOCOL.md §21): real gdb
//! sessions, in batch mode, against real KVM guests. `countdown` is built
//! with full debug information by `make guest`; gdb is installed by
//! `make setup`.

mod common;

use common::{
    TempDir, free_port, guest_program, lines, run, target, wait_at_most, wait_for_line, weft,
};
use std::process::{Command, Stdio};
use std::time::Duration;

/// How long one gdb session may take.
const GDB_LIMIT: Duration = Duration::from_secs(120);

/// What a session printed: gdb's output, then `weft`'s status, standard
/// output and standard error.
struct Session {
    gdb: String,
    status: i32,
    out: String,
    err: String,
}

/// Runs `weft run --gdb PORT PROGRAM ARGS...` and, once it listens, gdb on
/// `PROGRAM`'s file (and the kernel's, written by `weft symbols`) with
/// `commands` after `target remote` (where `{weft}` is weft's pid).
fn session(program: &str, args: &[&str], commands: &[&str]) -> Session {
    session_interrupted(&[], program, args, commands, None)
}

/// [`session`], under the VMM `vmm` names (`--vmm`, `--accel`), and SIGINT
/// to gdb (a Ctrl-C at its terminal) `interrupt` after it starts.
fn session_interrupted(
    vmm: &[&str],
    program: &str,
    args: &[&str],
    commands: &[&str],
    interrupt: Option<Duration>,
) -> Session {
    let symbols = symbols_dir("session");
    let port = free_port().to_string();
    let mut child = weft()
        .arg("run")
        .args(vmm)
        .args(["--timeout", "120", "--gdb", &port, program])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn weft");
    let err_lines = lines(child.stderr.take().expect("stderr"));
    let first = wait_for_line(&err_lines, "waiting for gdb");
    assert!(first.contains(&format!("127.0.0.1:{port}")), "{first}");
    let mut gdb = Command::new("gdb");
    gdb.args(["-nx", "-batch", "-ex", "set pagination off"]);
    gdb.args(["-ex", &format!("file {program}")]);
    gdb.args([
        "-ex",
        &format!("add-symbol-file {}", symbols.join("weft-kernel").display()),
    ]);
    gdb.args(["-ex", &format!("target remote 127.0.0.1:{port}")]);
    for c in commands {
        gdb.args(["-ex", &c.replace("{weft}", &child.id().to_string())]);
    }
    let gdb = gdb
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run gdb (make setup installs it)");
    let pid = gdb.id() as libc::pid_t;
    // Ends gdb if it hangs (or interrupts it first); stopped once gdb ends.
    let (ended, watchdog) = std::sync::mpsc::channel::<()>();
    let guard = std::thread::spawn(move || {
        if let Some(after) = interrupt
            && watchdog.recv_timeout(after).is_err()
        {
            // SAFETY: `kill` has no memory effects; `pid` is gdb's, which
            // is not reaped before `ended` is sent.
            unsafe { libc::kill(pid, libc::SIGINT) };
        }
        if watchdog.recv_timeout(GDB_LIMIT).is_err() {
            // SAFETY: as above.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    });
    let gdb = gdb.wait_with_output().expect("gdb ends");
    let _ = ended.send(());
    guard.join().expect("the watchdog ends");
    let output = child.wait_with_output().expect("weft ends");
    // The reader ends with weft's standard error.
    let err: Vec<String> = err_lines.iter().collect();
    Session {
        gdb: String::from_utf8_lossy(&gdb.stdout).into_owned()
            + &String::from_utf8_lossy(&gdb.stderr),
        status: output.status.code().expect("weft exited by a signal"),
        out: String::from_utf8_lossy(&output.stdout).into_owned(),
        err: err.join("\n"),
    }
}

/// A fresh directory with the bundled kernel written by `weft symbols`.
fn symbols_dir(tag: &str) -> TempDir {
    let dir = TempDir::new(&format!("gdb-{tag}"));
    let (code, out, err) = run(&["symbols", "--out", &dir.display().to_string(), "hello"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        format!(
            "{}\n{}\n",
            dir.join("weft-kernel").display(),
            dir.join("hello").display()
        )
    );
    dir
}

#[test]
fn gdb_breaks_in_a_program_reads_its_frame_steps_and_follows_it_to_its_exit() {
    // Stopped before the guest's first instruction: the kernel's.
    let s = sum_down_session(&[], "info symbol $pc");
    let g = &s.gdb;
    assert!(g.contains("_start in section .text"), "{g}");
    assert_stopped_in_sum_down(g, 1);
    assert!(
        g.contains("[Inferior 1 (process 1) exited normally]"),
        "{g}"
    );
    assert_eq!((s.status, s.out.as_str()), (0, "sum 21\n"), "{}", s.err);
}

/// `countdown 6` under the VMM `vmm` names, with gdb running `first`,
/// then breaking in `sum_down`: `bt`, `print from`, `stepi`, `print $pc`,
/// and on to the end.
fn sum_down_session(vmm: &[&str], first: &str) -> Session {
    session_interrupted(
        vmm,
        &guest_program("countdown"),
        &["6"],
        &[
            first,
            "break countdown::sum_down",
            "continue",
            "bt",
            "print from",
            "stepi",
            "print $pc",
            "continue",
        ],
        None,
    )
}

/// Asserts gdb's output `g` shows the stop at `sum_down(6)`, the caller in
/// the backtrace, `from` printed as gdb's value `$first`, and after one
/// `stepi` the program counter (value `$first + 1`) still in `sum_down`.
fn assert_stopped_in_sum_down(g: &str, first: usize) {
    assert!(
        g.contains("Breakpoint 1, countdown::sum_down (from=6) at user/countdown/src/main.rs"),
        "{g}"
    );
    assert!(g.contains("in countdown::main"), "{g}");
    assert!(g.contains(&format!("${first} = 6")), "{g}");
    // One instruction on: still in sum_down, past the breakpoint.
    let pc = g
        .lines()
        .find(|l| l.starts_with(&format!("${} = ", first + 1)))
        .unwrap_or_else(|| panic!("no $pc printed: {g}"));
    assert!(pc.contains("<countdown::sum_down+"), "{pc}");
}

/// The same session under QEMU's own stub (TCG, PROTOCOL.md §22.5):
/// stopped at the reset vector, gdb breaks in the program by its
/// symbols, reads the frame, steps, and sees the guest end with it.
#[test]
fn under_qemu_gdb_breaks_in_a_program_reads_its_frame_and_steps() {
    let s = sum_down_session(&["--vmm", "qemu", "--accel", "tcg"], "print/x $pc");
    let g = &s.gdb;
    assert!(g.contains("$1 = 0xfff0"), "not at the reset vector: {g}");
    assert_stopped_in_sum_down(g, 2);
    assert_eq!(
        (s.status, s.out.as_str()),
        (0, "sum 21\n"),
        "{}\n{g}",
        s.err
    );
}

#[test]
fn a_register_the_debugger_writes_is_what_the_program_goes_on_with() {
    // At the breakpoint, `from` is still in RDI, untested.
    let s = session(
        &guest_program("countdown"),
        &[],
        &[
            "break countdown::sum_down",
            "continue",
            "set var $rdi = 3",
            "continue",
        ],
    );
    assert_eq!(
        (s.status, s.out.as_str()),
        (0, "sum 6\n"),
        "{}\n{}",
        s.gdb,
        s.err
    );
}

#[test]
fn after_gdb_detaches_the_program_runs_on_without_its_breakpoints() {
    let s = session(
        &guest_program("countdown"),
        &[],
        &["break countdown::sum_down", "continue", "detach"],
    );
    assert!(
        s.gdb.contains("Breakpoint 1, countdown::sum_down"),
        "{}",
        s.gdb
    );
    assert_eq!((s.status, s.out.as_str()), (0, "sum 55\n"), "{}", s.err);
}

#[test]
fn a_fault_stops_the_program_in_gdb_and_passing_it_on_ends_the_program() {
    let s = session(
        &guest_program_bundled("fault"),
        &[],
        &["continue", "x/i $pc", "continue"],
    );
    let g = &s.gdb;
    assert!(g.contains("Program received signal SIGSEGV"), "{g}");
    assert!(g.contains("<weft_program_main+"), "{g}");
    assert!(g.contains("0xdead"), "{g}");
    assert!(g.contains("Program terminated with signal SIGSEGV"), "{g}");
    // Then as without a debugger: the fault report, status 125.
    assert_eq!(s.status, 125, "{}", s.err);
    assert!(s.err.contains("page fault at address 0xdead"), "{}", s.err);
}

/// A bundled program's file, in a directory of its own while it lives.
struct Bundled {
    _dir: TempDir,
    path: String,
}

impl std::ops::Deref for Bundled {
    type Target = str;

    fn deref(&self) -> &str {
        &self.path
    }
}

/// The build's file of bundled program `name` (`weft symbols` writes the
/// same bytes).
fn guest_program_bundled(name: &str) -> Bundled {
    let dir = symbols_dir(name);
    let (code, _, err) = run(&["symbols", "--out", &dir.display().to_string(), name]);
    assert_eq!(code, 0, "{err}");
    let written = std::fs::read(dir.join(name)).expect("weft symbols wrote it");
    let built = target().join("x86_64-unknown-none/release").join(name);
    assert!(written == std::fs::read(&built).expect("make guest built it"));
    let path = dir.join(name).display().to_string();
    Bundled { _dir: dir, path }
}

#[test]
fn a_ctrl_c_in_gdb_stops_a_program_that_never_leaves_ring_3_and_kill_ends_the_guest() {
    let s = session_interrupted(
        &[],
        &guest_program_bundled("spin"),
        &[],
        &["continue", "bt 1", "kill"],
        Some(Duration::from_secs(5)),
    );
    let g = &s.gdb;
    assert!(g.contains("Program received signal SIGINT"), "{g}");
    assert!(g.contains("in weft_program_main"), "{g}");
    assert_eq!(s.status, 137, "{}", s.err);
}

#[test]
fn a_stop_ends_weft_while_an_attached_debugger_is_idle() {
    // gdb attached, the guest stopped at its first instruction: the stub
    // waits for gdb's next packet, and SIGTERM ends that wait.
    let s = session(
        &guest_program_bundled("hello"),
        &[],
        &[
            "shell kill -TERM {weft}",
            "shell sleep 2",
            "info registers rip",
        ],
    );
    assert_eq!(s.status, 143, "{}", s.err);
    assert!(s.err.contains("stopped by signal 15"), "{}", s.err);
    assert!(s.gdb.contains("Remote connection closed"), "{}", s.gdb);
    assert_eq!(s.out, "", "the guest never ran");
}

#[test]
fn hardware_breakpoints_stop_a_program_where_the_debug_registers_fire() {
    let s = session(
        &guest_program("countdown"),
        &["3"],
        &[
            "hbreak countdown::sum_down",
            "continue",
            "print from",
            "continue",
        ],
    );
    let g = &s.gdb;
    let pvm = std::fs::read_to_string("/proc/cmdline")
        .is_ok_and(|c| c.split_whitespace().any(|w| w.starts_with("nested_pvm")));
    if pvm {
        // Not offered where they would never fire: gdb cannot insert one,
        // and the program runs on once gdb leaves.
        assert!(g.contains("Cannot insert hardware breakpoint 1"), "{g}");
    } else {
        assert!(
            g.contains("Breakpoint 1, countdown::sum_down (from=3)"),
            "{g}"
        );
        assert!(g.contains("$1 = 3"), "{g}");
    }
    assert_eq!((s.status, s.out.as_str()), (0, "sum 6\n"), "{}", s.err);
}

#[test]
fn weft_symbols_refuses_a_program_it_does_not_bundle() {
    let (code, out, err) = run(&["symbols", "--out", "/nonexistent/x", "no-such-program"]);
    assert_eq!(code, 2);
    assert!(out.is_empty());
    assert!(err.contains("no-such-program: no bundled program"), "{err}");
}

#[test]
fn weft_symbols_ends_quietly_when_its_reader_is_gone() {
    // `weft symbols | head -1`, with a reader that has already gone: the
    // first line written fails with EPIPE, and `weft` ends as SIGPIPE ends
    // a filter (141), with nothing on standard error (no panic).
    let dir = TempDir::new("gdb-gone");
    let (reader, writer) = std::io::pipe().expect("a pipe");
    drop(reader);
    let out = weft()
        .args(["symbols", "--out", &dir.display().to_string(), "hello"])
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .expect("run weft symbols");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(141), "{err}");
    assert!(err.is_empty(), "{err}");
    // It wrote the kernel's file, then ended at the line naming it.
    assert!(dir.join("weft-kernel").exists());
    assert!(!dir.join("hello").exists());
}

/// `weft run --gdb PORT ARGS` that no debugger comes to, stopped by
/// `stop` (after `waiting for gdb`): its status and standard error, or a
/// failure if it is still waiting after [`GDB_LIMIT`].
fn stopped_while_waiting(args: &[&str], stop: impl FnOnce(u32)) -> (Option<i32>, String) {
    let port = free_port().to_string();
    let mut child = weft()
        .args(["run", "--gdb", &port])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn weft");
    let err_lines = lines(child.stderr.take().expect("stderr"));
    wait_for_line(&err_lines, "waiting for gdb");
    stop(child.id());
    let (status, _) = wait_at_most(&mut child, GDB_LIMIT, "waiting for gdb after the stop");
    std::thread::sleep(Duration::from_millis(100));
    (
        status.code(),
        err_lines.try_iter().collect::<Vec<_>>().join("\n"),
    )
}

#[test]
fn a_stop_ends_weft_while_it_waits_for_the_debugger() {
    let (code, err) = stopped_while_waiting(&["--timeout", "1", "hello"], |_| {});
    assert_eq!(code, Some(124), "{err}");
    assert!(err.contains("timed out after 1.0 s"), "{err}");
    let (code, err) = stopped_while_waiting(&["hello"], |pid| {
        let sent = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .expect("run kill");
        assert!(sent.success());
    });
    assert_eq!(code, Some(143), "{err}");
    assert!(err.contains("stopped by signal 15"), "{err}");
}
