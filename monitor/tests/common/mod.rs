//! Helpers shared by the integration tests: the `weft` binary, the guest
//! build directory, and running `weft` to completion.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output};

pub fn weft() -> Command {
    Command::new(env!("CARGO_BIN_EXE_weft"))
}

pub fn target() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../target"))
}

/// A guest program built but not bundled (test-only).
pub fn guest_program(name: &str) -> String {
    let p = target().join("x86_64-unknown-none/release").join(name);
    assert!(p.is_file(), "{} missing: run `make guest`", p.display());
    p.display().to_string()
}

/// The kernel built with the `crash-test` feature.
pub fn crash_kernel() -> String {
    let p = target().join("crash-test/x86_64-unknown-none/release/weft-kernel");
    assert!(p.is_file(), "{} missing: run `make guest`", p.display());
    p.display().to_string()
}

pub fn run(args: &[&str]) -> (i32, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = weft().args(args).output().expect("spawn weft");
    let code = status.code().expect("weft exited by a signal");
    (
        code,
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}
