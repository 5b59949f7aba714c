//! WASI preview 1 calls over the fake host (PROTOCOL.md §13.1).

use crate::{Fake, module, printer, run};
use weft_control::app::errno;

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

#[test]
fn fd_write_prints_and_a_returning_start_exits_0() {
    let fake = Fake::new();
    assert_eq!(run(&fake, &printer("hello\n"), &[]), 0);
    assert_eq!(fake.stdout(), "hello\n");
}

#[test]
fn args_come_nul_terminated_and_the_environment_is_empty() {
    let wasm = module(
        r#"(func (export "_start")
             (drop (call $args_sizes_get (i32.const 16) (i32.const 20)))
             (drop (call $args_get (i32.const 512) (i32.const 1024)))
             (drop (call $print (i32.const 1) (i32.const 1024) (i32.load (i32.const 20))))
             (drop (call $environ_sizes_get (i32.const 24) (i32.const 28)))
             (call $proc_exit (i32.add (i32.mul (i32.load (i32.const 16)) (i32.const 10))
                                       (i32.add (i32.load (i32.const 24)) (i32.load (i32.const 28))))))"#,
    );
    let fake = Fake::new();
    assert_eq!(run(&fake, &wasm, &["a", "b c"]), 30);
    assert_eq!(fake.stdout(), "app.wasm\0a\0b c\0");
}

#[test]
fn path_open_reads_creates_and_closes_files() {
    let fake = Fake::new();
    fake.file("/in.txt", b"contents");
    let wasm = module(
        r#"(data (i32.const 256) "in.txt")
           (data (i32.const 272) "out.txt")
           (data (i32.const 288) "written")
           (func (export "_start") (local $fd i32)
             ;; read rights (bit 1), no flags
             (drop (call $path_open (i32.const 3) (i32.const 0) (i32.const 256) (i32.const 6)
                     (i32.const 0) (i64.const 2) (i64.const 0) (i32.const 0) (i32.const 16)))
             (i32.store (i32.const 32) (i32.const 1024))
             (i32.store (i32.const 36) (i32.const 64))
             (drop (call $fd_read (i32.load (i32.const 16)) (i32.const 32) (i32.const 1) (i32.const 40)))
             (drop (call $print (i32.const 1) (i32.const 1024) (i32.load (i32.const 40))))
             ;; create | truncate, write rights (bit 6)
             (drop (call $path_open (i32.const 3) (i32.const 0) (i32.const 272) (i32.const 7)
                     (i32.const 9) (i64.const 64) (i64.const 0) (i32.const 0) (i32.const 20)))
             (local.set $fd (i32.load (i32.const 20)))
             (drop (call $print (local.get $fd) (i32.const 288) (i32.const 7)))
             (drop (call $fd_close (local.get $fd)))
             (call $proc_exit (call $fd_close (local.get $fd))))"#,
    );
    assert_eq!(run(&fake, &wasm, &[]), errno::BADF);
    assert_eq!(fake.stdout(), "contents");
    assert_eq!(fake.0.borrow().files["/out.txt"], b"written");
}

#[test]
fn path_open_refuses_absolute_paths_and_missing_files() {
    let wasm = module(
        r#"(data (i32.const 256) "/in.txt")
           (func (export "_start")
             (call $proc_exit (i32.add
               (i32.mul (i32.const 100)
                 (call $path_open (i32.const 3) (i32.const 0) (i32.const 256) (i32.const 7)
                   (i32.const 0) (i64.const 2) (i64.const 0) (i32.const 0) (i32.const 16)))
               (call $path_open (i32.const 3) (i32.const 0) (i32.const 257) (i32.const 6)
                 (i32.const 0) (i64.const 2) (i64.const 0) (i32.const 0) (i32.const 16)))))"#,
    );
    let fake = Fake::new();
    assert_eq!(run(&fake, &wasm, &[]), errno::PERM * 100 + errno::NOENT);
}

#[test]
fn fd_readdir_lists_dot_entries_then_the_host_s() {
    let fake = Fake::new();
    fake.file("/a.txt", b"x");
    fake.0.borrow_mut().dirs.insert("/sub".into());
    let wasm = module(
        r#"(func (export "_start")
             (drop (call $fd_readdir (i32.const 3) (i32.const 1024) (i32.const 512) (i64.const 0) (i32.const 16)))
             (drop (call $print (i32.const 1) (i32.const 1024) (i32.load (i32.const 16)))))"#,
    );
    assert_eq!(run(&fake, &wasm, &[]), 0);
    let out = fake.0.borrow().stdout.clone();
    let mut entries = Vec::new();
    let mut at = 0;
    while at < out.len() {
        let len = u32_at(&out, at + 16) as usize;
        let name = String::from_utf8(out[at + 24..at + 24 + len].to_vec()).unwrap();
        entries.push((u64_at(&out, at), name, out[at + 20]));
        at += 24 + len;
    }
    let expected = [(1, ".", 3), (2, "..", 3), (3, "sub", 3), (4, "a.txt", 4)];
    let expected: Vec<_> = expected
        .iter()
        .map(|&(next, name, ty)| (next, name.to_string(), ty))
        .collect();
    assert_eq!(entries, expected);
}

#[test]
fn clocks_read_the_host_s_and_trap_on_unknown_ids() {
    let fake = Fake::new();
    fake.0.borrow_mut().now = 12_345;
    let wasm = module(
        r#"(func (export "_start")
             (drop (call $clock_time_get (i32.const 1) (i64.const 0) (i32.const 16)))
             (drop (call $clock_time_get (i32.const 0) (i64.const 0) (i32.const 24)))
             (drop (call $print (i32.const 1) (i32.const 16) (i32.const 16)))
             (call $proc_exit (call $clock_time_get (i32.const 9) (i64.const 0) (i32.const 16))))"#,
    );
    assert_eq!(run(&fake, &wasm, &[]), 125);
    let reports = fake.0.borrow().reports.join("\n");
    assert!(
        reports.contains("clock_time_get: 9 is no clock id"),
        "{reports}"
    );
    let out = fake.0.borrow().stdout.clone();
    assert_eq!(u64_at(&out, 0), 12_345);
    assert_eq!(u64_at(&out, 8), 1_700_000_000_000_012_345);
}

#[test]
fn poll_oneoff_on_a_clock_suspends_the_app_until_the_deadline() {
    let wasm = module(
        r#"(func (export "_start")
             (i64.store (i32.const 512) (i64.const 7))         ;; userdata
             (i32.store8 (i32.const 520) (i32.const 0))        ;; clock
             (i32.store (i32.const 528) (i32.const 1))         ;; monotonic
             (i64.store (i32.const 536) (i64.const 5000000))   ;; 5 ms, relative
             (drop (call $poll_oneoff (i32.const 512) (i32.const 1024) (i32.const 1) (i32.const 16)))
             (drop (call $print (i32.const 1) (i32.const 1024) (i32.const 32)))
             (call $proc_exit (i32.load (i32.const 16))))"#,
    );
    let fake = Fake::new();
    assert_eq!(run(&fake, &wasm, &[]), 1);
    let s = fake.0.borrow();
    assert_eq!(s.sleeps, [Some(5_000_000)]);
    assert_eq!(s.now, 5_000_000);
    assert_eq!(u64_at(&s.stdout, 0), 7, "userdata");
    assert_eq!(&s.stdout[8..11], &[0, 0, 0], "no error, a clock event");
}

#[test]
fn bad_descriptors_and_pointers_are_errnos_not_traps() {
    let wasm = module(
        r#"(func (export "_start")
             (call $proc_exit (i32.add
               (i32.mul (i32.const 100) (call $print (i32.const 42) (i32.const 256) (i32.const 1)))
               (call $print (i32.const 1) (i32.const 65530) (i32.const 64)))))"#,
    );
    let fake = Fake::new();
    assert_eq!(run(&fake, &wasm, &[]), errno::BADF * 100 + errno::FAULT);
    assert_eq!(fake.stdout(), "");
}

#[test]
fn unknown_wasi_functions_return_enosys_and_signals_are_not_supported() {
    let wasm = wat::parse_str(
        r#"(module
             (import "wasi_snapshot_preview1" "sock_open" (func $open (param i32 i32 i32) (result i32)))
             (import "wasi_snapshot_preview1" "proc_raise" (func $raise (param i32) (result i32)))
             (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
             (func (export "_start")
               (call $exit (i32.add
                 (i32.mul (i32.const 100) (call $open (i32.const 0) (i32.const 0) (i32.const 0)))
                 (call $raise (i32.const 6))))))"#,
    )
    .unwrap();
    assert_eq!(
        run(&Fake::new(), &wasm, &[]),
        errno::NOSYS * 100 + errno::NOTSUP
    );
}

/// An app using the event ABI must state the interface version it was
/// built for (§13.3): without it, or with another, it is refused.
#[test]
fn event_apps_built_for_another_interface_are_unusable() {
    let app = |section: &str| {
        wat::parse_str(format!(
            r#"(module {section}
                 (import "weft" "pid" (func (result i32)))
                 (func (export "_start")))"#
        ))
        .unwrap()
    };
    let cases = [
        (String::new(), "weft: app.wasm: the app imports `weft` but states no interface version (build it with weft-app)".to_owned()),
        (
            crate::interface_section(&7u32.to_le_bytes()),
            format!("weft: app.wasm: the app was built for interface version 7, this runtime speaks {} (rebuild it against this weft-app)", weft_control::INTERFACE_VERSION),
        ),
        (
            crate::interface_section(&[1, 2]),
            "weft: app.wasm: the app imports `weft` but states no interface version (build it with weft-app)".to_owned(),
        ),
    ];
    for (section, report) in cases {
        let fake = Fake::new();
        assert_eq!(
            run(&fake, &app(&section), &[]),
            weft_wasm_run::UNUSABLE,
            "{section}"
        );
        assert_eq!(fake.0.borrow().reports.as_slice(), [report]);
    }
    // A WASI command (no `weft` import) states nothing and needs not:
    // `unknown_wasi_functions_return_enosys` runs one.
}

#[test]
fn a_module_importing_another_module_is_unusable() {
    let wasm =
        wat::parse_str(r#"(module (import "env" "foo" (func)) (func (export "_start")))"#).unwrap();
    let fake = Fake::new();
    assert_eq!(run(&fake, &wasm, &[]), weft_wasm_run::UNUSABLE);
    let reports = &fake.0.borrow().reports;
    assert_eq!(
        reports.as_slice(),
        ["weft: app.wasm: imports env::foo, which this runtime does not provide"]
    );
}
