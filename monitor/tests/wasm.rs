//! Integration tests of Wasm programs: real KVM guests running the bundled
//! Wasm runtime on modules built by the stock `wasm32-wasip1` toolchain,
//! compared with a host build of the same source.

mod common;

use common::{TempDir, target, wasm, weft};
use std::io::Write;
use std::process::{Command, Output, Stdio};

fn native(name: &str) -> Command {
    let p = target().join("wasm/release").join(name);
    assert!(p.is_file(), "{} missing: run `make guest`", p.display());
    Command::new(p)
}

fn run_with_input(mut cmd: Command, input: &[u8]) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().expect("wait")
}

#[test]
fn a_wasi_program_behaves_as_its_native_build() {
    for (args, input) in [
        (&["one", "two words", "exit=3"][..], &b""[..]),
        (&["-"][..], &b"piped\ninput\n"[..]),
        (&[][..], &b""[..]),
        (&["time", "x"][..], &b""[..]),
    ] {
        let mut guest = weft();
        guest
            .args(["run", "--timeout", "60", &wasm("hello")])
            .args(args);
        let guest = run_with_input(guest, input);
        let mut host = native("hello");
        host.args(args);
        let host = run_with_input(host, input);
        assert_eq!(guest.status.code(), host.status.code(), "{args:?}");
        assert_eq!(
            String::from_utf8_lossy(&guest.stdout),
            String::from_utf8_lossy(&host.stdout),
            "{args:?}"
        );
        assert_eq!(
            String::from_utf8_lossy(&guest.stderr),
            String::from_utf8_lossy(&host.stderr),
            "{args:?}"
        );
    }
}

/// A module whose `_start` executes `unreachable`.
const TRAPS: &[u8] = &[
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // magic, version
    0x01, 0x04, 0x01, 0x60, 0x00, 0x00, // type 0: () -> ()
    0x03, 0x02, 0x01, 0x00, // function 0 has type 0
    0x07, 0x0a, 0x01, 0x06, b'_', b's', b't', b'a', b'r', b't', 0x00, 0x00, // export
    0x0a, 0x05, 0x01, 0x03, 0x00, 0x00, 0x0b, // body: unreachable
];

#[test]
fn a_trap_ends_the_program_with_125_and_bad_modules_with_2() {
    let dir = TempDir::new("wasm-traps");
    let traps = dir.join("traps.wasm");
    std::fs::write(&traps, TRAPS).unwrap();
    let mut bad_import = TRAPS[..8].to_vec();
    // An import of `env::f`, which no runtime provides.
    bad_import.extend_from_slice(&[0x01, 0x04, 0x01, 0x60, 0x00, 0x00]);
    bad_import.extend_from_slice(&[
        0x02, 0x09, 0x01, 0x03, b'e', b'n', b'v', 0x01, b'f', 0x00, 0x00,
    ]);
    let imports = dir.join("imports.wasm");
    std::fs::write(&imports, &bad_import).unwrap();
    let garbage = dir.join("garbage.wasm");
    std::fs::write(&garbage, b"\0asm\x01\0\0\0\xff\xff").unwrap();

    let out = weft()
        .args(["run", "--timeout", "60"])
        .arg(&traps)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(125), "{err}");
    assert!(err.contains("trap") && err.contains("unreachable"), "{err}");

    // Modules that cannot be loaded are usage errors, as a bad ELF is.
    let out = weft()
        .args(["run", "--timeout", "60"])
        .arg(&imports)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("env::f"), "{err}");

    let out = weft()
        .args(["run", "--timeout", "60"])
        .arg(&garbage)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.starts_with("weft: "), "{err}");
}

#[test]
fn wasi_files_behave_as_in_the_native_build() {
    let base = TempDir::new("wasm-wc");
    let (guest_root, host_root) = (base.join("guest"), base.join("host"));
    for root in [&guest_root, &host_root] {
        std::fs::create_dir_all(root).unwrap();
        std::fs::write(root.join("a.txt"), "one two\nthree\n").unwrap();
        std::fs::write(root.join("b.txt"), "x y  z\n\n\tw\n".repeat(5000)).unwrap();
    }
    let args = ["a.txt", "b.txt", "missing.txt", "--out", "reports/r.txt"];
    let guest = weft()
        .args(["run", "--timeout", "60", "--fs-root"])
        .arg(&guest_root)
        .arg(wasm("wc"))
        .args(args)
        .output()
        .unwrap();
    let host = native("wc")
        .current_dir(&host_root)
        .args(args)
        .output()
        .unwrap();
    let guest_err = String::from_utf8_lossy(&guest.stderr);
    assert_eq!(guest.status.code(), host.status.code(), "{guest_err}");
    assert_eq!(guest.status.code(), Some(1), "{guest_err}");
    assert_eq!(guest.stdout, host.stdout);
    assert_eq!(
        String::from_utf8_lossy(&guest.stderr),
        String::from_utf8_lossy(&host.stderr)
    );
    let report = |root: &std::path::Path| std::fs::read(root.join("reports/r.txt")).unwrap();
    assert_eq!(report(&guest_root), report(&host_root));

    // Under --read-only the report cannot be written: the program reports
    // the error and fails, and nothing is written.
    std::fs::remove_dir_all(guest_root.join("reports")).unwrap();
    let ro = weft()
        .args(["run", "--timeout", "60", "--read-only", "--fs-root"])
        .arg(&guest_root)
        .arg(wasm("wc"))
        .args(args)
        .output()
        .unwrap();
    assert_ne!(ro.status.code(), Some(0));
    assert!(!guest_root.join("reports").exists());
}

#[test]
fn a_wasi_program_cannot_leave_the_root() {
    let base = TempDir::new("wasm-escape");
    let root = base.join("root");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(base.join("secret.txt"), "not for the guest\n").unwrap();
    std::os::unix::fs::symlink(base.join("secret.txt"), root.join("link.txt")).unwrap();
    for path in ["../secret.txt", "/../secret.txt", "link.txt"] {
        let out = weft()
            .args(["run", "--timeout", "60", "--fs-root"])
            .arg(&root)
            .arg(wasm("wc"))
            .arg(path)
            .output()
            .unwrap();
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert_eq!(out.status.code(), Some(1), "{path}: {stderr}");
        assert!(
            stderr.contains(&format!("wc: {path}: ")),
            "{path}: {stderr}"
        );
        assert!(
            stdout.contains("0       0       0 total"),
            "{path}: {stdout}"
        );
    }
}

/// A Wasm program sees its standard output as a terminal exactly when
/// weft's is one (`script` gives weft a terminal), as under wasmtime.
#[test]
fn standard_output_is_a_terminal_only_when_weft_s_is() {
    let isatty = target().join("wasm/conformance/isatty.wasm");
    assert!(
        isatty.is_file(),
        "{} missing: run `make guest`",
        isatty.display()
    );
    let line = format!(
        "{} run --timeout 60 {}",
        env!("CARGO_BIN_EXE_weft"),
        isatty.display()
    );
    let on_terminal = Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .expect("script (util-linux) runs");
    let text = String::from_utf8_lossy(&on_terminal.stdout);
    assert!(text.contains("isatty(1) 1 ok"), "{text}");
    let piped = weft()
        .args(["run", "--timeout", "60"])
        .arg(&isatty)
        .output()
        .expect("run");
    let text = String::from_utf8_lossy(&piped.stdout);
    assert!(text.contains("isatty(1) 0 ENOTTY"), "{text}");
}
