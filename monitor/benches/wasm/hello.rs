//! `hello_wasm_wall_ms`: whole-process wall time (spawn to exit) of
//! `weft run hello.wasm` against `weft run hello`, the native program
//! bundled in the monitor doing the same: what running a module costs over
//! running a program (the runtime, loading and compiling the module,
//! instantiating it). Target: ratio ≤ 2.

use std::process::Command;
use std::time::Instant;

const HELLO_WASM: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../target/wasm/wasm32-wasip1/release/hello.wasm"
);

/// Milliseconds of `runs` runs of each, alternated (after one warm-up run
/// of each).
pub fn measure(weft: &str, runs: usize) -> (Vec<f64>, Vec<f64>) {
    let time = |program: &str| {
        let t = Instant::now();
        let out = Command::new(weft)
            .args(["run", program])
            .output()
            .expect("spawn weft");
        assert!(
            out.status.success(),
            "weft run {program} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        t.elapsed().as_secs_f64() * 1e3
    };
    let _ = (time(HELLO_WASM), time("hello"));
    let (mut wasm, mut native) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        wasm.push(time(HELLO_WASM));
        native.push(time("hello"));
    }
    (wasm, native)
}
