//! Integration tests of native processes (PROTOCOL.md §14): each case boots a
//! real KVM guest whose first program, `procs`, spawns others through the
//! kernel, and asserts on what they print and how they end.

mod common;

use common::{TempDir, guest_program, run, wasm};

fn procs(args: &[&str]) -> (i32, String, String) {
    let mut all = vec!["run", "--timeout", "120", "procs"];
    all.extend_from_slice(args);
    run(&all)
}

fn ended(out: &str, name: &str, pid: u32, status: u32) -> bool {
    out.lines()
        .any(|l| l == format!("procs: {name} (pid {pid}) exited with status {status}"))
}

#[test]
fn two_programs_run_as_separate_processes() {
    let (code, out, err) = procs(&["hello", "one", "--", "exit-code", "3"]);
    assert_eq!(code, 0, "stderr: {err}");
    assert!(out.contains("Hello from Weft!\none\n"), "{out}");
    assert!(ended(&out, "hello", 2, 0), "{out}");
    assert!(ended(&out, "exit-code", 3, 3), "{out}");
}

#[test]
fn a_spinning_process_is_preempted_and_can_be_killed() {
    // `procs` waits for `spin` first; `hello` can only run (and `procs`
    // only wake to kill `spin`) if the timer takes the CPU from `spin`.
    let (code, out, err) = procs(&["--kill-after", "3000", "spin", "--", "hello"]);
    assert_eq!(code, 0, "stderr: {err}");
    assert!(out.contains("Hello from Weft!\n"), "{out}");
    assert!(ended(&out, "spin", 2, 137), "{out}");
    assert!(ended(&out, "hello", 3, 0), "{out}");
}

#[test]
fn a_fault_ends_only_the_faulting_process_with_a_report() {
    let (code, out, err) = procs(&["fault", "--", "hello"]);
    assert_eq!(code, 0, "stderr: {err}");
    assert!(
        err.contains(
            "weft: process 2 (`fault`) crashed with status 125: page fault at address 0xdead (read from ring 3, page not mapped)"
        ),
        "{err}"
    );
    assert!(err.contains("weft_program_main+"), "not symbolized: {err}");
    assert!(ended(&out, "fault", 2, 125), "{out}");
    assert!(out.contains("Hello from Weft!\n"), "{out}");
    assert!(ended(&out, "hello", 3, 0), "{out}");
}

#[test]
fn processes_are_listed_with_their_figures() {
    let (code, out, err) = procs(&[
        "--list",
        "--kill-after",
        "2000",
        "sleep",
        "500",
        "--",
        "spin",
    ]);
    assert_eq!(code, 0, "stderr: {err}");
    let rows: Vec<Vec<&str>> = out
        .lines()
        .skip_while(|l| !l.contains("PID PARENT STATE"))
        .skip(1)
        .take(3)
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows.len(), 3, "{out}");
    for (row, (pid, parent, name)) in
        rows.iter()
            .zip([("1", "0", "procs"), ("2", "1", "sleep"), ("3", "1", "spin")])
    {
        assert_eq!((row[0], row[1], row[6]), (pid, parent, name), "{out}");
        let mem_kib: u64 = row[4].parse().unwrap();
        let streams: u32 = row[5].parse().unwrap();
        assert!(mem_kib >= 256, "memory of {name}: {out}");
        assert!(streams >= 3, "streams of {name}: {out}");
    }
    assert!(out.contains("slept 500 ms"), "{out}");
    assert!(ended(&out, "sleep", 2, 0), "{out}");
    assert!(ended(&out, "spin", 3, 137), "{out}");
}

fn fs_root(tag: &str) -> TempDir {
    TempDir::new(&format!("procs-{tag}"))
}

/// Whether `lines` are whole lines of `out`, in this order (others may
/// come between them).
fn in_order(out: &str, lines: &[&str]) -> bool {
    let mut rest = out.lines();
    lines.iter().all(|l| rest.any(|o| o == *l))
}

#[test]
fn programs_are_spawned_from_files_and_use_their_own_streams() {
    let root = fs_root("files");
    std::fs::copy(guest_program("hello"), root.join("hello")).unwrap();
    std::fs::copy(wasm("hello"), root.join("hello.wasm")).unwrap();
    std::fs::write(root.join("junk"), b"\x7fELF but not really").unwrap();
    std::fs::write(root.join("data.txt"), "read by a child\n").unwrap();
    let (code, out, err) = run(&[
        "run",
        "--timeout",
        "120",
        "--fs-root",
        root.to_str().unwrap(),
        "procs",
        "/hello",
        "from a file",
        "--",
        "/hello.wasm",
        "wasm arg",
        "--",
        "cat",
        "/data.txt",
        "--",
        "/junk",
        "--",
        "nosuch",
    ]);
    assert_eq!(code, 1, "stderr: {err}");
    // The programs run at once: each one's lines come in its order, but
    // another's may come between them.
    assert!(
        in_order(&out, &["Hello from Weft!", "from a file"]),
        "{out}"
    );
    assert!(
        in_order(&out, &["Hello from Wasm!", "arg: wasm arg"]),
        "{out}"
    );
    assert!(out.contains("read by a child\n"), "{out}");
    assert!(ended(&out, "/hello", 2, 0), "{out}");
    assert!(ended(&out, "/hello.wasm", 3, 0), "{out}");
    assert!(ended(&out, "cat", 4, 0), "{out}");
    assert!(
        err.contains("procs: /junk: cannot start: not a valid program image"),
        "{err}"
    );
    assert!(
        err.contains("procs: nosuch: cannot start: no such bundled program"),
        "{err}"
    );
}

#[test]
fn hostile_process_calls_get_errors() {
    let (code, out, err) = run(&["run", "--timeout", "60", &guest_program("syscall-check")]);
    assert_eq!(code, 0, "stderr: {err}");
    for line in [
        "spawn unmapped request: Err(BadAddress)",
        "spawn kernel request: Err(BadAddress)",
        "kill pid 1: Err(BadArgument)",
        "kill unknown pid: Err(NoProcess)",
        "await unknown pid: Err(NoProcess)",
        "processes into kernel memory: Err(BadAddress)",
        "process unknown pid: Err(NoProcess)",
        "spawn unknown source: Err(BadArgument)",
        "spawn unknown tier: Err(BadArgument)",
        "spawn bundled program compiled: Err(BadArgument)",
        "spawn unknown name: Err(NotFound)",
        "spawn huge heap: Err(BadArgument)",
        "spawn bad arguments block: Err(BadArgument)",
        "spawn ELF that is not one: Err(BadImage)",
    ] {
        assert!(
            out.lines().any(|l| l == line),
            "missing `{line}` in:\n{out}"
        );
    }
}

#[test]
fn slots_are_reused_and_every_spawned_program_is_heard() {
    // 40 programs one after another through 15 slots: each slot's memory,
    // page tables and pipe region are taken back and handed out again, and
    // every child's output must still arrive.
    let program = guest_program("proc-bench");
    let dir = std::path::Path::new(&program)
        .parent()
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    let (code, out, err) = run(&[
        "run",
        "--timeout",
        "120",
        "--fs-root",
        &dir,
        &program,
        "/proc-bench",
        "40",
    ]);
    assert_eq!(code, 0, "stderr: {err}");
    assert_eq!(
        out.lines().filter(|l| l.starts_with("spawn_us=")).count(),
        40,
        "{out}"
    );
}

/// A spawned program's heap starts as what its spawn request asked for (2
/// MiB by default, §14.2), and grows past it through `map` like the first
/// program's.
#[test]
fn a_spawned_programs_heap_grows_past_its_premapped_area() {
    let root = fs_root("heap");
    std::fs::copy(guest_program("alloc-check"), root.join("alloc-check")).unwrap();
    let root = root.to_str().unwrap();
    let (code, out, err) = run(&[
        "run",
        "--timeout",
        "120",
        "--fs-root",
        root,
        "procs",
        "/alloc-check",
        "3",
        "--",
        "/alloc-check",
        "12",
    ]);
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    assert!(out.contains("allocated 3 MiB, sum 77309214720\n"), "{out}");
    assert!(
        out.contains("allocated 12 MiB, sum 1236949794816\n"),
        "{out}"
    );
    assert!(
        ended(&out, "/alloc-check", 2, 0) && ended(&out, "/alloc-check", 3, 0),
        "{out}"
    );
}

/// Where `make guest` puts the test-only programs, as an `--fs-root`.
fn guest_programs_dir(program: &str) -> String {
    std::path::Path::new(&guest_program(program))
        .parent()
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned()
}

/// A program may only write the doorbell page (§8.2): a read is its fault,
/// which ends it alone with status 125 and a report naming the access,
/// while `hello` and `procs` go on.
#[test]
fn a_doorbell_read_ends_only_the_reading_process() {
    let dir = guest_programs_dir("doorbell-read");
    let (code, out, err) = run(&[
        "run",
        "--timeout",
        "120",
        "--fs-root",
        &dir,
        "procs",
        "/doorbell-read",
        "--",
        "hello",
    ]);
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    assert!(
        err.contains(
            "weft: process 2 (`doorbell-read`) crashed with status 125: page fault at address 0x710000000000 (read from ring 3, protection violation: the doorbell page may only be written)"
        ),
        "{err}"
    );
    assert!(err.contains("weft_program_main+"), "not symbolized: {err}");
    assert!(!err.contains("protocol violation"), "{err}");
    assert!(!out.contains("was not refused"), "{out}");
    assert!(ended(&out, "/doorbell-read", 2, 125), "{out}");
    assert!(out.contains("Hello from Weft!\n"), "{out}");
    assert!(ended(&out, "hello", 3, 0), "{out}");
}

/// The same read by the first program ends the guest, as any fault of the
/// first program does, and the report names that program.
#[test]
fn a_doorbell_read_by_the_first_program_is_its_fault() {
    let program = guest_program("doorbell-read");
    let (code, out, err) = run(&["run", "--timeout", "60", &program]);
    assert_eq!(code, 125, "stdout: {out}\nstderr: {err}");
    assert!(
        err.contains(&format!(
            "weft: guest crash: program `{program}` fault: page fault at address 0x710000000000 (read from ring 3, protection violation: the doorbell page may only be written)"
        )),
        "{err}"
    );
    assert!(!err.contains("protocol violation"), "{err}");
    assert!(!out.contains("was not refused"), "{out}");
}

/// Each process keeps its own SSE registers across switches (§14.5):
/// three processes load theirs with different patterns and spin past
/// several timer slices, checking them after every round.
#[test]
fn each_process_keeps_its_own_sse_registers() {
    let dir = guest_programs_dir("sse-check");
    let (code, out, err) = run(&[
        "run",
        "--timeout",
        "120",
        "--fs-root",
        &dir,
        "procs",
        "/sse-check",
        "1",
        "300",
        "--",
        "/sse-check",
        "2",
        "300",
        "--",
        "/sse-check",
        "3",
        "300",
    ]);
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    for (pid, seed) in [(2, 1), (3, 2), (4, 3)] {
        assert!(ended(&out, "/sse-check", pid, 0), "{out}\nstderr: {err}");
        assert!(
            out.contains(&format!("sse-check {seed}: kept over ")),
            "{out}"
        );
    }
}
