//! `wasm_file_io`: `file-io.wasm` writes 5 MiB to a file in 64 KiB writes
//! and reads it back into memory in 64 KiB reads, under `weft run` and
//! under wasmtime (the PyPI package, by `tests/wasi/reference.py`, set up
//! as `weft run` sets the program up), each in a fresh temporary root.
//!
//! The figure is the module's own: the monotonic clock read around the
//! I/O (and the allocation of the buffer it reads into), from its
//! `file_io_us=` line; so neither boot nor compiling the module counts,
//! under either. Target: ratio ≤ 2.

use std::path::Path;
use std::process::Command;

const WASM: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../target/wasm/wasm32-wasip1/release/file-io.wasm"
);
const REFERENCE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/wasi/reference.py");
/// The line the module prints its time on.
const FIGURE: &str = "file_io_us=";

/// Milliseconds of `runs` runs under weft and under wasmtime, alternated so
/// drift hits both alike (after one warm-up run of each).
pub fn measure(weft: &str, runs: usize) -> (Vec<f64>, Vec<f64>) {
    assert!(
        Path::new(WASM).exists(),
        "{WASM} missing (run `make build`)"
    );
    let root = std::env::temp_dir().join(format!("weft-bench-file-io-{}", std::process::id()));
    std::fs::create_dir_all(&root).expect("temporary root");
    let root_arg = root.to_str().expect("a UTF-8 temporary directory");
    let under_weft = || {
        let mut cmd = Command::new(weft);
        cmd.args(["run", "--fs-root", root_arg, WASM]);
        run("weft", &mut cmd)
    };
    let under_wasmtime = || {
        let mut cmd = Command::new("python3");
        cmd.args([REFERENCE, "--fs-root", root_arg, WASM]);
        run("wasmtime", &mut cmd)
    };
    let _ = (under_weft(), under_wasmtime());
    let (mut w, mut t) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        w.push(under_weft());
        t.push(under_wasmtime());
    }
    let _ = std::fs::remove_dir_all(&root);
    (w, t)
}

/// Runs `cmd` (which must exit 0): the module's figure in milliseconds.
fn run(what: &str, cmd: &mut Command) -> f64 {
    let out = cmd.output().expect("spawn");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "file-io.wasm under {what} failed:\n{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .find_map(|l| l.strip_prefix(FIGURE))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(|us| us / 1e3)
        .unwrap_or_else(|| panic!("file-io.wasm under {what} printed no figure:\n{stdout}"))
}
