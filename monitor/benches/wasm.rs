//! `make bench`: Wasm CoreMark in the guest, beside the same module on the
//! host with the same engine, and beside a native build of the same source,
//! all measured in the same run, under both of the guest's engines (the
//! interpreter and the ahead-of-time tier, [`aot`]); then file I/O from Wasm
//! against wasmtime ([`file_io`]: `wasm_file_io`), the wall time of a Wasm
//! hello against the native one ([`hello`]: `hello_wasm_wall_ms`) and the
//! cost of starting a cached AOT module ([`aot::spawn`]: `aot_spawn_us`),
//! each printed with its ratio and its raw samples kept.
//!
//! Every figure is CoreMark's own score (iterations per second of its timed
//! loop, from its `coremark_iterations_per_sec=` line), so boot and module
//! loading are left out alike (and so is compiling, under AOT). Each is the
//! median of [`RUNS`] runs, the five kinds alternated so drift hits them
//! alike; each run must validate its CRCs (exit status 0). Raw samples:
//! `coremark_guest`, `coremark_host_engine`, `coremark_native`,
//! `coremark_aot`, `coremark_host_wasmtime`.
//!
//! - `coremark_guest_vs_host_engine`: `weft run coremark.wasm N` (the guest's
//!   Wasm runtime at ring 3) against the same `.wasm` run in this process by
//!   [`host_engine`]: the same `wasmi` with the same features and
//!   configuration as the guest runtime (`weft_wasm_run::engine`, shared
//!   with it). Target: ratio ≥ 0.9.
//! - `coremark_guest_vs_native`: the guest against the host build of the same
//!   program (`target/wasm/release/coremark`, a process, run for more
//!   iterations than the interpreters so it also lasts about a second).
//! - `coremark_host_engine_vs_native`: the host engine against native: the
//!   cost of interpreting, without the guest.
//! - `coremark_aot_vs_native`: `weft run --engine aot coremark.wasm N` (the
//!   monitor's Cranelift artifact, from a cache warmed by one untimed run,
//!   run by the guest's `wasm-aot` at ring 3; [`AOT_ITERATIONS`], about as
//!   long as a native run) against the native build. Target: ratio ≥ 0.75.
//! - `coremark_aot_vs_host_wasmtime`: the guest's AOT run against the same
//!   `.wasm` and N under wasmtime in this process, compiled with the
//!   guest's settings for the host ([`aot::HostWasmtime`]): what the guest
//!   costs compiled code. Target: ratio ≥ 0.9.
//! - `coremark_guard_pages_vs_explicit_checks`: the two ways of trapping
//!   an access outside linear memory, on the host with the guest's
//!   settings otherwise ([`aot::HostWasmtime::guarded`] against
//!   [`aot::HostWasmtime::new`]): what guard pages would win the guest,
//!   whose kernel does not yet deliver page faults to a program. No target.
//! - `coremark_host_wasmtime_default_vs_native`: the same `.wasm` under
//!   wasmtime with its own defaults on the host
//!   ([`aot::HostWasmtime::unconstrained`]: guard pages instead of bounds
//!   checks, signals, every CPU feature) against the native build: the
//!   most `coremark_aot_vs_native` could reach with Cranelift here. No
//!   target.
//! - `aot_spawn_us` ([`aot::spawn`]): median wall time of `weft run --engine
//!   aot noop.wasm` (a cached module whose `_start` returns at once) minus
//!   that of `weft run exit-code 0`, a native bundled program, in the same
//!   run, alternated, [`SPAWN_RUNS`] of each. Target: ≤ 1000 µs. Raw
//!   samples: `aot_noop_wall_us`, `exit_code_wall_us`.

use std::process::Command;
use weft_benchkit::{Record, median, record};

#[path = "wasm/aot.rs"]
mod aot;
#[path = "wasm/file_io.rs"]
mod file_io;
#[path = "wasm/hello.rs"]
mod hello;
#[path = "wasm/shim.rs"]
mod shim;

const WEFT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/release/weft");
const WASM: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../target/wasm/wasm32-wasip1/release/coremark.wasm"
);
const NATIVE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../target/wasm/release/coremark"
);
/// CoreMark iterations per interpreted run: about 2 s here.
const ITERATIONS: &str = "1200";
/// Iterations per native run: about 1 s here, so CoreMark's 1 ms clock
/// ticks cost no precision.
const NATIVE_ITERATIONS: &str = "30000";
/// Iterations per AOT run (in the guest and under wasmtime on the host):
/// about as long as a native run here.
const AOT_ITERATIONS: &str = "18000";
const RUNS: usize = 7;
/// Runs of `file-io.wasm` under each (about 0.3 s each).
const FILE_IO_RUNS: usize = 11;
/// Runs of each hello (tens of milliseconds each).
const HELLO_RUNS: usize = 21;
/// Runs of each side of `aot_spawn_us` (under 10 ms each).
const SPAWN_RUNS: usize = 101;
/// The line CoreMark's program prints its score on.
const SCORE: &str = "coremark_iterations_per_sec=";

fn main() {
    let wasm =
        std::fs::read(WASM).unwrap_or_else(|e| panic!("{WASM}: {e} (run `make build` first)"));
    let guest = || {
        let out = Command::new(WEFT)
            .args(["run", "--engine", "interp", WASM, ITERATIONS])
            .output()
            .expect("spawn weft");
        score("guest", out.status.code(), &out.stdout, &out.stderr)
    };
    let host = || {
        let out = host_engine::run(&wasm, &["coremark.wasm", ITERATIONS]).expect("host engine");
        score("host engine", Some(out.status), &out.stdout, &out.stderr)
    };
    let native = || {
        let out = Command::new(NATIVE)
            .arg(NATIVE_ITERATIONS)
            .output()
            .expect("spawn native coremark");
        score("native", out.status.code(), &out.stdout, &out.stderr)
    };
    let cache = aot::Cache::new();
    let guest_aot = || {
        let out = cache.coremark(WEFT, WASM, AOT_ITERATIONS);
        score("guest AOT", out.status.code(), &out.stdout, &out.stderr)
    };
    let on_host = |what: &str, engine: &aot::HostWasmtime| {
        let out = engine
            .run(&["coremark.wasm", AOT_ITERATIONS])
            .expect("host wasmtime");
        score(what, Some(out.status), &out.stdout, &out.stderr)
    };
    let (wasmtime, guarded, unconstrained) = (
        aot::HostWasmtime::new(&wasm),
        aot::HostWasmtime::guarded(&wasm),
        aot::HostWasmtime::unconstrained(&wasm),
    );
    let host_wasmtime = || on_host("host wasmtime", &wasmtime);
    let host_guarded = || on_host("host wasmtime, guard pages", &guarded);
    let host_default = || on_host("host wasmtime, defaults", &unconstrained);
    // Warm the page cache, the binaries and the AOT cache, then alternate.
    let _ = (
        guest(),
        host(),
        native(),
        guest_aot(),
        host_wasmtime(),
        host_guarded(),
        host_default(),
    );
    let (mut g, mut h, mut n) = (Vec::new(), Vec::new(), Vec::new());
    let (mut a, mut w, mut d, mut p) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..RUNS {
        g.push(guest());
        h.push(host());
        n.push(native());
        a.push(guest_aot());
        w.push(host_wasmtime());
        p.push(host_guarded());
        d.push(host_default());
    }

    let unit = "iterations/s";
    let host_baseline = "same .wasm, same wasmi and configuration, on the host in-process";
    let native_baseline = "native host build of the same program";
    let records = [
        Record::new(
            "coremark_guest_vs_host_engine",
            median(&g),
            unit,
            host_baseline,
            median(&h),
        ),
        Record::new(
            "coremark_guest_vs_native",
            median(&g),
            unit,
            native_baseline,
            median(&n),
        ),
        Record::new(
            "coremark_host_engine_vs_native",
            median(&h),
            unit,
            native_baseline,
            median(&n),
        ),
        Record::new(
            "coremark_aot_vs_native",
            median(&a),
            unit,
            native_baseline,
            median(&n),
        ),
        Record::new(
            "coremark_aot_vs_host_wasmtime",
            median(&a),
            unit,
            "same .wasm and iterations under wasmtime 48 on the host in-process, compiled with the guest's settings (weft_wasm_run::aot::config, the same CPU flags)",
            median(&w),
        ),
        Record::new(
            "coremark_guard_pages_vs_explicit_checks",
            median(&p),
            unit,
            "the same .wasm under wasmtime 48 on the host with the guest's settings and bounds checked in code (coremark_host_wasmtime), against the same with guard pages and signals instead",
            median(&w),
        ),
        Record::new(
            "coremark_host_wasmtime_default_vs_native",
            median(&d),
            unit,
            "the ceiling of coremark_aot_vs_native: the same .wasm under wasmtime 48 on the host with its defaults (guard pages instead of bounds checks, signals, every CPU feature) against the native build",
            median(&n),
        ),
    ];
    record(
        &records,
        &[
            ("coremark_guest", &g),
            ("coremark_host_engine", &h),
            ("coremark_native", &n),
            ("coremark_aot", &a),
            ("coremark_host_wasmtime", &w),
            ("coremark_host_wasmtime_guard_pages", &p),
            ("coremark_host_wasmtime_default", &d),
        ],
    )
    .expect("write results");
    println!(
        "CoreMark, {ITERATIONS} iterations ({NATIVE_ITERATIONS} native, {AOT_ITERATIONS} AOT), median of {RUNS} runs:"
    );
    for r in &records {
        println!(
            "{:<32} {:>10.1} {unit} baseline {:>10.1}  ratio {:.3}",
            r.name, r.value, r.baseline_value, r.ratio
        );
    }
    println!(
        "targets: coremark_guest_vs_host_engine ratio >= 0.9, coremark_aot_vs_native ratio >= 0.75, coremark_aot_vs_host_wasmtime ratio >= 0.9"
    );
    startup_and_files();
    aot_spawn(&cache);
}

/// `aot_spawn_us`, recorded and printed.
fn aot_spawn(cache: &aot::Cache) {
    let (noop, exit_code) = aot::spawn(WEFT, cache, SPAWN_RUNS);
    let (noop_us, exit_code_us) = (median(&noop), median(&exit_code));
    let records = [Record::new(
        "aot_spawn_us",
        noop_us - exit_code_us,
        "us",
        "`weft run exit-code 0`, a native program, same run (whole process; the figure is `weft run --engine aot noop.wasm`, cached, minus it)",
        exit_code_us,
    )];
    record(
        &records,
        &[
            ("aot_noop_wall_us", &noop),
            ("exit_code_wall_us", &exit_code),
        ],
    )
    .expect("write results");
    println!("AOT start of a cached module (median of {SPAWN_RUNS}):");
    for r in &records {
        println!(
            "{:<32} {:>10.1} us (AOT noop.wasm {noop_us:.1} us - exit-code {exit_code_us:.1} us) baseline {:>10.1} us ratio {:.2}",
            r.name, r.value, r.baseline_value, r.ratio
        );
    }
    println!("target: aot_spawn_us <= 1000 us");
}

/// `wasm_file_io` and `hello_wasm_wall_ms`, recorded and printed.
fn startup_and_files() {
    let (io_weft, io_wasmtime) = file_io::measure(WEFT, FILE_IO_RUNS);
    let (hello_wasm, hello_native) = hello::measure(WEFT, HELLO_RUNS);
    let records = [
        Record::new(
            "wasm_file_io",
            median(&io_weft),
            "ms",
            "the same file-io.wasm (write then read back 5 MiB, 64 KiB a call) under wasmtime 51, timed inside the module",
            median(&io_wasmtime),
        ),
        Record::new(
            "hello_wasm_wall_ms",
            median(&hello_wasm),
            "ms",
            "`weft run hello`, the native bundled program (whole process)",
            median(&hello_native),
        ),
    ];
    record(
        &records,
        &[
            ("wasm_file_io", &io_weft),
            ("wasm_file_io_wasmtime", &io_wasmtime),
            ("hello_wasm_wall_ms", &hello_wasm),
            ("hello_native_wall_ms", &hello_native),
        ],
    )
    .expect("write results");
    println!(
        "Wasm file I/O (median of {FILE_IO_RUNS}) and hello wall time (median of {HELLO_RUNS}):"
    );
    for r in &records {
        println!(
            "{:<32} {:>10.1} ms baseline {:>10.1} ms ratio {:.2}",
            r.name, r.value, r.baseline_value, r.ratio
        );
    }
}

/// The score of one run that exited with `status`, which must be 0 (its
/// CRCs validated).
fn score(what: &str, status: Option<i32>, stdout: &[u8], stderr: &[u8]) -> f64 {
    let stdout = String::from_utf8_lossy(stdout);
    assert_eq!(
        status,
        Some(0),
        "CoreMark ({what}) failed:\n{stdout}{}",
        String::from_utf8_lossy(stderr)
    );
    stdout
        .lines()
        .find_map(|l| l.strip_prefix(SCORE))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("CoreMark ({what}) printed no score:\n{stdout}"))
}

/// A WASI program run on the host with the engine configuration the guest's
/// Wasm runtime time-slices modules with (`weft_wasm_run::engine`: fuel
/// metering on, functions compiled eagerly, the module rewritten first by
/// the load-time instrumentation), `_start` called resumably and given
/// [`FUEL_SLICE`] more fuel each time it runs out. Its WASI calls are
/// [`shim`]'s.
mod host_engine {
    use crate::shim::{self, Ctx, Outcome};
    use weft_wasm_run::engine::{self, FUEL_SLICE};
    use weft_wasm_run::wasi::MODULE as WASI;
    use weft_wasm_run::wasmi::{Caller, Engine, Error, Linker, Module, Store, TypedResumableCall};

    /// Runs `wasm`'s `_start` with `args` (its name first) to its end.
    pub fn run(wasm: &[u8], args: &[&str]) -> Result<Outcome, Error> {
        let engine = engine::engine();
        let module = engine::compile(&engine, wasm)
            .map_err(|e| Error::new(e.to_string()))?
            .module;
        let mut store = Store::new(&engine, Ctx::new(args));
        let linker = linker(&engine, &module)?;
        store.set_fuel(FUEL_SLICE)?;
        let instance = linker.instantiate_and_start(&mut store, &module)?;
        let start = instance.get_typed_func::<(), ()>(&store, "_start")?;
        let mut call = start.call_resumable(&mut store, ())?;
        let status = loop {
            call = match call {
                TypedResumableCall::Finished(()) => break 0,
                TypedResumableCall::OutOfFuel(paused) => {
                    let left = store.get_fuel()?;
                    store.set_fuel(left + FUEL_SLICE)?;
                    paused.resume(&mut store)?
                }
                // Only `proc_exit` fails a host call here.
                TypedResumableCall::HostTrap(trap) => match trap.host_error().i32_exit_status() {
                    Some(status) => break status,
                    None => return Err(Error::new(trap.host_error().to_string())),
                },
            };
        };
        Ok(store.into_data().outcome(status))
    }

    /// A linker with [`shim`]'s WASI calls for `module`, `proc_exit` ending
    /// the run with wasmi's exit trap.
    fn linker(engine: &Engine, module: &Module) -> Result<Linker<Ctx>, Error> {
        let mut l = Linker::new(engine);
        l.func_wrap(WASI, "proc_exit", |_: Caller<'_, Ctx>, status: i32| {
            Err::<(), _>(Error::i32_exit(status))
        })?;
        shim::link_wasi!(weft_wasm_run::wasmi, l, module);
        Ok(l)
    }
}
