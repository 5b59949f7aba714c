//! Integration tests: each case boots a real KVM guest through the `weft`
//! binary and asserts on its exit status and output. The guest programs and
//! the crash-test kernel are built by `make guest` (run by `make test`).

mod common;

use common::{TempDir, crash_kernel, guest_program, run, weft};
use std::path::{Path, PathBuf};

/// File `name` of `dir`, written with `bytes`.
fn temp_file(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

#[test]
fn hello_prints_greeting_and_each_argument() {
    let (code, out, err) = run(&[
        "run",
        "--timeout",
        "60",
        "hello",
        "one",
        "two words",
        "-x",
        "--mem",
    ]);
    assert_eq!(code, 0, "stderr: {err}");
    assert_eq!(out, "Hello from Weft!\none\ntwo words\n-x\n--mem\n");
}

#[test]
fn exit_code_is_the_program_status() {
    let (code, out, err) = run(&["run", "--timeout", "60", "exit-code", "7"]);
    assert_eq!(code, 7, "stderr: {err}");
    assert!(out.is_empty());
    let (code, _, err) = run(&["run", "--timeout", "60", "exit-code", "0"]);
    assert_eq!(code, 0, "stderr: {err}");
    // The program's own usage error.
    let (code, _, err) = run(&["run", "--timeout", "60", "exit-code", "abc"]);
    assert_eq!(code, 2);
    assert!(err.contains("usage: exit-code N"), "{err}");
}

#[test]
fn program_fault_is_reported_with_address_and_symbols() {
    let (code, out, err) = run(&["run", "--timeout", "60", "fault"]);
    assert_eq!(code, 125, "stderr: {err}");
    assert_eq!(out, "reading address 0xdead\n");
    assert!(err.contains("program `fault` fault: page fault at address 0xdead (read from ring 3, page not mapped)"), "{err}");
    assert!(
        err.contains("weft_program_main+"),
        "frames not symbolized: {err}"
    );
    assert!(err.contains("weft_user::rt::weft_user_start"), "{err}");
    assert!(err.contains("cr2=0x000000000000dead"), "{err}");
}

/// Boots the crash-test kernel with `crash-kernel KIND` and checks it exits
/// 125 with every expected fragment on standard error.
fn crash_kernel_report(kind: &str, expected: &[&str]) {
    let kernel = crash_kernel();
    let program = guest_program("crash-kernel");
    let (code, _, err) = run(&[
        "run",
        "--timeout",
        "60",
        "--kernel",
        &kernel,
        &program,
        kind,
    ]);
    assert_eq!(code, 125, "stderr: {err}");
    for fragment in expected {
        assert!(err.contains(fragment), "missing {fragment:?} in: {err}");
    }
}

#[test]
fn kernel_panic_is_reported_with_message_and_symbolized_frames() {
    crash_kernel_report(
        "panic",
        &[
            "guest crash: kernel panic",
            "crash test: the program asked the kernel to panic",
            "weft_kernel::syscall::crash::nested_panic",
            "[kernel]",
        ],
    );
}

#[test]
fn kernel_fault_is_reported_with_registers_and_symbolized_frames() {
    crash_kernel_report(
        "fault",
        &[
            "kernel fault: page fault at address 0xfffffffff0000000 (read from ring 0, page not mapped)",
            "weft_kernel::syscall::crash::nested_fault",
            "weft_kernel::syscall::weft_syscall",
            "rip=",
        ],
    );
}

#[test]
fn bundled_kernel_has_no_crash_syscall() {
    let (code, _, err) = run(&[
        "run",
        "--timeout",
        "60",
        &guest_program("crash-kernel"),
        "panic",
    ]);
    assert_eq!(code, 1, "stderr: {err}");
    assert!(
        err.contains("the kernel did not crash: Err(NoSyscall)"),
        "{err}"
    );
}

#[test]
fn spin_is_stopped_by_timeout() {
    let (code, out, err) = run(&["run", "--timeout", "2", "spin"]);
    assert_eq!(code, 124, "stderr: {err}");
    assert_eq!(out, "spinning\n");
    assert!(err.contains("timed out after 2.0 s"), "{err}");
}

#[test]
fn sleep_wakes_on_the_timer_interrupt() {
    let (code, out, err) = run(&["run", "--timeout", "60", "sleep", "30"]);
    assert_eq!(code, 0, "stderr: {err}");
    assert_eq!(out, "slept 30 ms\n");
}

#[test]
fn non_elf_and_truncated_programs_are_clean_usage_errors() {
    let dir = TempDir::new("boot-bad");
    let text = temp_file(&dir, "notes.txt", b"just some text, not a program\n");
    let (code, out, err) = run(&["run", text.to_str().unwrap()]);
    assert_eq!(code, 2, "stderr: {err}");
    assert!(out.is_empty());
    assert!(err.contains("not an ELF file"), "{err}");
    assert!(!err.contains("panicked"), "{err}");

    let hello = std::fs::read(guest_program("hello")).unwrap();
    for len in [10, 64, 200, hello.len() / 2] {
        let t = temp_file(&dir, &format!("hello-{len}"), &hello[..len]);
        let (code, _, err) = run(&["run", t.to_str().unwrap()]);
        assert_eq!(code, 2, "truncated to {len}: {err}");
        assert!(
            err.starts_with("weft: ") && !err.contains("panicked"),
            "truncated to {len}: {err}"
        );
    }

    let wasm = temp_file(&dir, "app.wasm", b"\0asm\x01\0\0\0");
    let (code, _, err) = run(&["run", wasm.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(
        err.contains("exports neither `_start` nor `weft_on_events`"),
        "{err}"
    );
}

/// A program carries the interface version it was built for (PROTOCOL.md
/// §2.1); one built for another version, or without the manifest, is
/// refused before boot with a message saying so, and the spawn of one fails.
#[test]
fn programs_built_for_another_interface_are_refused() {
    let hello = std::fs::read(guest_program("hello")).unwrap();
    let at = hello
        .windows(8)
        .position(|w| w == b"WEFTPROG")
        .expect("hello has a .weft_program manifest");
    let mut old = hello.clone();
    old[at + 8..at + 12].copy_from_slice(&3u32.to_le_bytes());
    let dir = TempDir::new("boot-versions");
    let old = temp_file(&dir, "hello-v3", &old);
    let (code, out, err) = run(&["run", old.to_str().unwrap()]);
    assert_eq!(code, 2, "stderr: {err}");
    assert!(out.is_empty(), "{out}");
    assert!(
        err.contains("the program was built for interface version 3, this weft speaks"),
        "{err}"
    );

    let mut none = hello.clone();
    none[at..at + 8].copy_from_slice(b"NOTAPROG");
    let none = temp_file(&dir, "hello-unmarked", &none);
    let (code, _, err) = run(&["run", none.to_str().unwrap()]);
    assert_eq!(code, 2, "stderr: {err}");
    assert!(err.contains("not a Weft program"), "{err}");

    // Spawned from a file, the same image is refused and the spawner goes
    // on (`procs` exits 1 when a program could not start).
    let dir = old.parent().unwrap().to_str().unwrap().to_owned();
    let (code, out, err) = run(&[
        "run",
        "--fs-root",
        &dir,
        "procs",
        "/hello-v3",
        "--",
        "exit-code",
        "4",
    ]);
    assert_eq!(code, 1, "stdout: {out}\nstderr: {err}");
    assert!(err.contains("procs: /hello-v3: cannot start"), "{err}");
    assert!(out.contains("exited with status 4"), "{out}");
}

/// `weft run --help` names every bundled program a user may run, Wasm
/// modules and the exit statuses; the internal Wasm runtime stays hidden.
#[test]
fn run_help_lists_programs_wasm_and_exit_statuses() {
    let (code, out, err) = run(&["run", "--help"]);
    assert_eq!(code, 0, "{err}");
    for want in [
        "Wasm module",
        "Bundled programs:",
        "  hello [ARGS]...",
        "  httpd PORT",
        "  procs [--list]",
        "124 when --timeout expired",
        "128+N when stopped by signal N",
    ] {
        assert!(out.contains(want), "missing {want:?} in:\n{out}");
    }
    assert!(!out.contains("wasm-run"), "{out}");
    let (code, _, err) = run(&["run", "wasm-run"]);
    assert_eq!(code, 2);
    assert!(err.contains("no bundled program by that name"), "{err}");
}

#[test]
fn usage_and_configuration_errors_exit_2() {
    let (code, _, err) = run(&["run", "no-such-program"]);
    assert_eq!(code, 2);
    assert!(err.contains("no bundled program by that name"), "{err}");
    let (code, _, err) = run(&["run", "--fs-root", "/no/such/dir", "hello"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("--fs-root /no/such/dir: No such file"),
        "{err}"
    );
    let (code, _, err) = run(&["run", "--fs-root", "/etc/hostname", "hello"]);
    assert_eq!(code, 2);
    assert!(err.contains("not a directory"), "{err}");
    let (code, _, _) = run(&["run", "--mem", "1", "hello"]);
    assert_eq!(code, 2);
    let (code, _, err) = run(&["run", "--kernel", &guest_program("hello"), "hello"]);
    assert_eq!(code, 2);
    assert!(err.contains("kernel image"), "{err}");
    let (code, out, _) = run(&["--help"]);
    assert_eq!(code, 0);
    assert!(out.contains("124") && out.contains("125"), "{out}");
}

#[test]
fn stats_report_exits_hypercalls_and_phases() {
    let (code, _, err) = run(&["run", "--stats", "hello"]);
    assert_eq!(code, 0, "stderr: {err}");
    assert!(err.contains("hypercalls: console_write=0 exit=1"), "{err}");
    assert!(err.contains("streams: opened=0 bytes_out=17 "), "{err}");
    for phase in [
        "vm_created=",
        "kernel_loaded=",
        "first_instruction=",
        "kernel_ready=",
        "program_entered=",
        "exit=",
    ] {
        let value = err
            .split(phase)
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .unwrap_or("");
        assert!(
            value.parse::<u64>().is_ok(),
            "phase {phase} has no time: {err}"
        );
    }
    assert!(err.contains("rss_peak_kib="), "{err}");
}

#[test]
fn heap_grows_past_its_initial_area() {
    let (code, out, err) = run(&[
        "run",
        "--timeout",
        "120",
        &guest_program("alloc-check"),
        "10",
    ]);
    assert_eq!(code, 0, "stderr: {err}");
    // 10 MiB: past the 8 MiB mapped at entry.
    let n: u64 = 10 * (1 << 20) / 8;
    assert_eq!(out, format!("allocated 10 MiB, sum {}\n", n * (n - 1) / 2));
}

#[test]
fn hostile_syscall_arguments_get_errors_and_the_program_goes_on() {
    let (code, out, err) = run(&["run", "--timeout", "60", &guest_program("syscall-check")]);
    assert_eq!(code, 0, "stderr: {err}");
    let expected = "\
write kernel address: Err(BadAddress)
write unmapped user address: Err(BadAddress)
write wrapping range: Err(BadAddress)
write huge length: Err(BadLength)
write bad fd: Err(BadArgument)
exit status 200: Err(BadArgument)
unknown syscall: Err(NoSyscall)
map zero bytes: Err(BadLength)
";
    // The process calls that follow are checked in `processes.rs`.
    assert!(out.starts_with(expected), "{out}");
}

#[test]
fn output_far_larger_than_a_ring_arrives_whole_and_in_order() {
    // 4 MiB through a 256 KiB ring: the program sleeps on the stream
    // interrupt whenever the ring is full.
    let total = 4 << 20;
    let (code, out, err) = run(&[
        "run",
        "--timeout",
        "120",
        "--stats",
        &guest_program("flood"),
        &total.to_string(),
    ]);
    assert_eq!(code, 0, "stderr: {err}");
    assert!(err.starts_with("done\n"), "{err}");
    assert_eq!(out.len(), total);
    let expected: String = (0..total)
        .map(|i| {
            if i % 64 == 63 {
                '\n'
            } else {
                b"0123456789abcdef"[i % 16] as char
            }
        })
        .collect();
    assert!(out == expected, "output differs from the pattern");
    assert!(err.contains(&format!("bytes_out={} ", total + 5)), "{err}");
}

#[test]
fn a_corrupted_output_ring_closes_that_stream_only() {
    let (code, _out, err) = run(&["run", "--timeout", "60", &guest_program("ring-corrupt")]);
    assert_eq!(code, 7, "stderr: {err}");
    assert!(err.contains("standard error still works"), "{err}");
    assert!(
        err.contains("the guest's standard output stream was closed"),
        "{err}"
    );
}

#[test]
fn standard_input_reaches_the_program_byte_exact() {
    use std::io::Write;
    use std::process::Stdio;
    // 1 MiB of varied bytes (not valid UTF-8), more than a ring holds.
    let input: Vec<u8> = (0..1u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let mut child = weft()
        .args(["run", "--timeout", "120", &guest_program("stdin-copy")])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn weft");
    let mut stdin = child.stdin.take().expect("stdin");
    let feeder = {
        let input = input.clone();
        std::thread::spawn(move || stdin.write_all(&input))
    };
    let out = child.wait_with_output().expect("wait for weft");
    feeder.join().expect("feeder thread").expect("write stdin");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "stderr: {err}");
    assert!(
        out.stdout == input,
        "stdout differs from stdin ({} bytes)",
        out.stdout.len()
    );
    assert!(
        err.contains(&format!("copied {} bytes", input.len())),
        "{err}"
    );
}

#[test]
fn a_program_that_never_reads_leaves_stdin_alone() {
    // `hello` never reads: weft must not consume its input.
    let (code, out, err) = run(&["run", "hello"]);
    assert_eq!((code, out.as_str()), (0, "Hello from Weft!\n"), "{err}");
    let (code, _, err) = run(&["run", "--timeout", "60", &guest_program("stdin-copy")]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("copied 0 bytes"), "{err}");
}

#[test]
fn sigint_stops_the_guest_with_its_report_and_status_130() {
    let child = weft()
        .args(["run", "--stats", "--timeout", "60", "spin"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn weft");
    std::thread::sleep(std::time::Duration::from_millis(500));
    let killed = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(killed.success());
    let out = child.wait_with_output().expect("wait for weft");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{err}");
    assert!(err.contains("weft: stopped by signal 2"), "{err}");
    assert!(err.contains("weft: stats"), "{err}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "spinning\n");
}
