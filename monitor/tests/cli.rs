//! Integration tests of `weft run`'s command line (README "The `weft`
//! command", PROTOCOL.md §4, §11.4) in real KVM guests: the environment
//! (`--env`), arguments passed through untouched, how PROGRAM is looked
//! up, the `--listen` sockets bound at start, and the readable refusals of
//! Wasm programs.

mod common;

use common::{Server, TempDir, connect_when_up, free_port, run, wasm, weft};
use std::io::{BufRead, BufReader, Write};
use std::process::Output;
use std::thread;

/// Runs `weft ARGS` with `vars` as its own environment (and nothing else
/// of the test's); its status, standard output and error.
fn run_with_env(args: &[&str], vars: &[(&str, &str)]) -> (i32, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = weft()
        .args(args)
        .env_clear()
        .envs(vars.iter().copied())
        .output()
        .expect("spawn weft");
    (
        status.code().expect("weft exited by a signal"),
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

#[test]
fn env_sets_and_passes_variables_and_nothing_else_leaks_in() {
    let vars = [("FROM_WEFT", "inherited"), ("SECRET", "not passed")];
    let options = [
        "run",
        "--env",
        "A=1",
        "--env",
        "FROM_WEFT",
        "--env",
        "UNSET_HERE",
        "--env",
        "B=x=y",
        "--env",
        "EMPTY=",
    ];
    let mut native = options.to_vec();
    native.push("env");
    let (code, out, err) = run_with_env(&native, &vars);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "A=1\nFROM_WEFT=inherited\nB=x=y\nEMPTY=\n");

    let hello = wasm("hello");
    let mut wasm_args = options.to_vec();
    wasm_args.extend([hello.as_str(), "env"]);
    let (code, out, err) = run_with_env(&wasm_args, &vars);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        "Hello from Wasm!\narg: env\nenv: A=1\nenv: FROM_WEFT=inherited\nenv: B=x=y\nenv: EMPTY=\n"
    );

    // Without --env, the environment is empty.
    let (code, out, _) = run_with_env(&["run", "env"], &vars);
    assert_eq!((code, out.as_str()), (0, ""));
    let (code, out, _) = run_with_env(&["run", &hello, "env"], &vars);
    assert_eq!((code, out.as_str()), (0, "Hello from Wasm!\narg: env\n"));
}

#[test]
fn a_bad_variable_or_a_block_too_large_is_a_usage_error() {
    let (code, _, err) = run(&["run", "--env", "=x", "env"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("--env \"=x\"") && err.contains("name is empty"),
        "{err}"
    );

    let big = format!("K={}", "v".repeat(70_000));
    let (code, _, err) = run(&["run", "--env", &big, "env"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("arguments and environment take") && err.contains("65536"),
        "{err}"
    );
}

#[test]
fn everything_after_the_program_is_passed_to_it() {
    let (code, out, err) = run(&[
        "run",
        "hello",
        "--stats",
        "--help",
        "--timeout",
        "1",
        "--env",
        "A=1",
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        "Hello from Weft!\n--stats\n--help\n--timeout\n1\n--env\nA=1\n"
    );
    // weft's --stats was not taken.
    assert!(!err.contains("weft: stats"), "{err}");

    let (code, out, err) = run(&["run", &wasm("hello"), "--stats", "--help"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "Hello from Wasm!\narg: --stats\narg: --help\n");
}

#[test]
fn a_bundled_name_is_never_taken_for_a_file_of_that_name() {
    let dir = TempDir::new("cli-names");
    // Files named like bundled programs (and one like none), in the
    // current directory: the Wasm hello module.
    let module = std::fs::read(wasm("hello")).unwrap();
    for name in ["hello", "mine", "app.wasm"] {
        std::fs::write(dir.join(name), &module).unwrap();
    }
    let in_dir = |args: &[&str]| {
        let o = weft().args(args).current_dir(&*dir).output().unwrap();
        (
            o.status.code().unwrap(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let (code, out, err) = in_dir(&["run", "hello"]);
    assert_eq!((code, out.as_str()), (0, "Hello from Weft!\n"), "{err}");
    let (code, out, err) = in_dir(&["run", "./hello"]);
    assert_eq!((code, out.as_str()), (0, "Hello from Wasm!\n"), "{err}");
    let (code, out, err) = in_dir(&["run", "app.wasm"]);
    assert_eq!((code, out.as_str()), (0, "Hello from Wasm!\n"), "{err}");
    // A name no program has: the file is not run, and the error says how.
    let (code, out, err) = in_dir(&["run", "mine"]);
    assert_eq!((code, out.as_str()), (2, ""), "{err}");
    assert!(
        err.contains("mine: no bundled program") && err.contains("./mine"),
        "{err}"
    );
    let (code, _, err) = in_dir(&["run", "missing.wasm"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("missing.wasm: no such file"), "{err}");
}

#[test]
fn a_program_is_read_from_a_file_or_a_pipe_and_nothing_else() {
    // What could have no end (a device) or is no file is refused by name.
    for path in ["/dev/zero", "/"] {
        let (code, out, err) = run(&["run", path]);
        assert_eq!((code, out.as_str()), (2, ""), "{path}: {err}");
        assert!(
            err.contains(&format!("{path}: not a regular file or a pipe")),
            "{err}"
        );
    }
    // A pipe (as `weft run <(...)` gives) is read to its end.
    let dir = TempDir::new("cli-fifo");
    let fifo = dir.join("program");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("run mkfifo");
    assert!(made.success());
    let elf = std::fs::read(common::guest_program("hello")).expect("the built hello");
    let writer = {
        let fifo = fifo.clone();
        thread::spawn(move || std::fs::write(&fifo, elf).expect("write the pipe"))
    };
    let (code, out, err) = run(&["run", &fifo.display().to_string(), "through a pipe"]);
    writer.join().unwrap();
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "Hello from Weft!\nthrough a pipe\n");
}

#[test]
fn read_only_without_a_root_is_a_usage_error() {
    let (code, out, err) = run(&["run", "--read-only", "hello"]);
    assert_eq!((code, out.as_str()), (2, ""), "{err}");
    assert!(err.contains("--fs-root"), "{err}");
}

#[test]
fn run_help_lists_wasm_every_bundled_program_and_the_exit_statuses() {
    let (code, out, err) = run(&["run", "--help"]);
    assert_eq!(code, 0, "{err}");
    for what in [
        "Wasm modules",
        "descriptors 4, 5",
        "--env",
        "Exit status",
        "124",
        "125",
        "./hello",
    ] {
        assert!(out.contains(what), "{what:?} missing:\n{out}");
    }
    for program in ["hello", "env", "cat", "httpd", "procs", "echo-server"] {
        assert!(out.contains(&format!("\n  {program}")), "{program}:\n{out}");
    }
}

/// Sends `line` on a new connection to `port` and returns the answer's
/// first line.
fn ask(port: u16, line: &str) -> String {
    let mut c = connect_when_up(port);
    c.write_all(format!("{line}\n").as_bytes()).unwrap();
    let mut answer = String::new();
    BufReader::new(&c).read_line(&mut answer).unwrap();
    answer
}

#[test]
fn every_listen_grant_is_bound_at_start_for_wasm_and_native_programs() {
    // The Wasm app serves descriptor 4, then 5: the peer of the second
    // grant connects first and waits in the host's backlog meanwhile.
    let (p1, p2) = (free_port(), free_port());
    let (l1, l2) = (format!("127.0.0.1:{p1}"), format!("127.0.0.1:{p2}"));
    let app = wasm("listeners");
    let server = Server::start(&[
        "run",
        "--listen",
        &l1,
        "--listen",
        &l2,
        "--timeout",
        "120",
        &app,
        "4",
        "5",
    ]);
    let second = thread::spawn(move || ask(p2, "second"));
    let first = ask(p1, "first");
    assert_eq!(first, "4: first\n");
    assert_eq!(second.join().unwrap(), "5: second\n");
    let _ = server.stop();

    // Native: two echo servers, one on each grant.
    let (p1, p2) = (free_port(), free_port());
    let (l1, l2) = (format!("127.0.0.1:{p1}"), format!("127.0.0.1:{p2}"));
    let (s1, s2) = (p1.to_string(), p2.to_string());
    let server = Server::start(&[
        "run",
        "--listen",
        &l1,
        "--listen",
        &l2,
        "--timeout",
        "120",
        "procs",
        "echo-server",
        &s2,
        "--",
        "echo-server",
        &s1,
    ]);
    assert_eq!(ask(p1, "one"), "one\n");
    assert_eq!(ask(p2, "two"), "two\n");
    drop(server);
}

#[test]
fn a_listen_port_in_use_is_a_usage_error_naming_it() {
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy = held.local_addr().unwrap();
    let free = format!("127.0.0.1:{}", free_port());
    for program in ["hello".to_string(), wasm("hello")] {
        let (code, out, err) = run(&[
            "run",
            "--listen",
            &free,
            "--listen",
            &busy.to_string(),
            &program,
        ]);
        assert_eq!((code, out.as_str()), (2, ""), "{err}");
        assert!(
            err.contains(&format!("--listen {busy}: port {} is in use", busy.port())),
            "{err}"
        );
    }
}

#[test]
fn wasm_refusals_name_what_was_asked_and_the_option() {
    // A listen not granted: the app's own error names the call, the
    // runtime's line the address and the option.
    let (code, out, err) = run(&["run", &wasm("echo-server"), "0.0.0.0:8080"]);
    assert_eq!((code, out.as_str()), (1, ""), "{err}");
    assert!(
        err.contains(
            "weft: address not allowed: listening on 0.0.0.0:8080 is not allowed: not granted by --listen"
        ),
        "{err}"
    );
    assert!(
        err.contains("Permission denied (os error 2), in tcp_listen"),
        "{err}"
    );
    assert!(!err.contains("WASI error"), "{err}");

    // A file without --fs-root.
    let (code, _, err) = run(&["run", &wasm("wc"), "/notes.txt"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("weft: not available: no --fs-root given"),
        "{err}"
    );

    // Given what it needs, a program prints nothing extra.
    let dir = TempDir::new("cli-granted");
    std::fs::write(dir.join("notes.txt"), "one two\n").unwrap();
    let root = dir.display().to_string();
    let listen = format!("127.0.0.1:{}", free_port());
    let (code, out, err) = run(&[
        "run",
        "--fs-root",
        &root,
        "--listen",
        &listen,
        &wasm("wc"),
        "/notes.txt",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("notes.txt"), "{out}");
    assert_eq!(err, "");
}
