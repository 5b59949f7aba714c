//! The ahead-of-time tier's figures: what `weft run --engine aot` runs
//! CoreMark with ([`Cache::coremark`]), the same module compiled the same
//! way and run on the host ([`HostWasmtime`]), and the cost of starting a
//! cached module ([`spawn`]: `aot_spawn_us`).
//!
//! Every AOT run here uses a cache directory of the bench's own
//! ([`Cache`]: `XDG_CACHE_HOME` pointed at a fresh temporary directory,
//! removed at the end), warmed with one untimed run of each module first,
//! so no timed run compiles, and neither the user's cache nor another
//! process filling it (it keeps the `KEPT` most recently used artifacts)
//! decides what a run finds.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Instant;

use wasmtime::{Caller, Config, Engine, Linker, Module, Store};
use weft_wasm_run::wasi::MODULE as WASI;

use crate::shim::{self, Ctx, Outcome};

/// `(module (func (export "_start")))`: a module whose `_start` returns at
/// once (no imports, no memory).
const NOOP: &[u8] = &[
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // magic, version 1
    0x01, 0x04, 0x01, 0x60, 0x00, 0x00, // types: [] -> []
    0x03, 0x02, 0x01, 0x00, // functions: one, of type 0
    0x07, 0x0a, 0x01, 0x06, b'_', b's', b't', b'a', b'r', b't', 0x00, 0x00, // export "_start"
    0x0a, 0x04, 0x01, 0x02, 0x00, 0x0b, // code: no locals, `end`
];

/// The AOT cache of the bench's runs, and the `noop.wasm` it starts.
pub struct Cache {
    /// `XDG_CACHE_HOME` of every AOT run (artifacts in `weft/aot` under it).
    dir: PathBuf,
    noop: PathBuf,
}

impl Cache {
    /// A fresh directory in the system's temporary directory.
    pub fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("weft-bench-aot-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temporary cache directory");
        let noop = dir.join("noop.wasm");
        std::fs::write(&noop, NOOP).expect("write noop.wasm");
        Self { dir, noop }
    }

    /// `weft run --engine aot MODULE ARGS`, compiling into (or finding the
    /// artifact in) this cache.
    fn run(&self, weft: &str, module: &str, args: &[&str]) -> Output {
        Command::new(weft)
            .env("XDG_CACHE_HOME", &self.dir)
            .args(["run", "--engine", "aot", module])
            .args(args)
            .output()
            .expect("spawn weft")
    }

    /// `weft run --engine aot COREMARK ITERATIONS`: its exit status and
    /// output.
    pub fn coremark(&self, weft: &str, wasm: &str, iterations: &str) -> Output {
        self.run(weft, wasm, &[iterations])
    }
}

impl Drop for Cache {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Microseconds of whole-process wall time (spawn to exit) of `runs` runs
/// of `weft run --engine aot noop.wasm` and of `weft run exit-code 0` (a
/// native bundled program that exits at once), alternated, after one
/// untimed run of each (which also puts noop.wasm's artifact in the cache).
/// Their medians' difference is `aot_spawn_us`: reading the module and its
/// cached artifact, hashing the module, and the guest's `wasm-aot` loading
/// the artifact, instantiating it and calling `_start`, over running a
/// native program.
pub fn spawn(weft: &str, cache: &Cache, runs: usize) -> (Vec<f64>, Vec<f64>) {
    let noop = cache.noop.to_str().expect("a UTF-8 temporary directory");
    let check = |what: &str, out: Output| {
        assert!(
            out.status.success(),
            "{what} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let aot = || {
        let t = Instant::now();
        let out = cache.run(weft, noop, &[]);
        let us = t.elapsed().as_secs_f64() * 1e6;
        check("weft run --engine aot noop.wasm", out);
        us
    };
    let native = || {
        let t = Instant::now();
        let out = Command::new(weft)
            .args(["run", "exit-code", "0"])
            .output()
            .expect("spawn weft");
        let us = t.elapsed().as_secs_f64() * 1e6;
        check("weft run exit-code 0", out);
        us
    };
    let _ = (aot(), native());
    let (mut a, mut n) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        a.push(aot());
        n.push(native());
    }
    (a, n)
}

/// A WASI command under wasmtime on the host (its WASI calls [`shim`]'s),
/// compiled as the monitor compiles for the guest (`monitor/src/aot.rs`):
/// `weft_wasm_run::aot::config()` and the Cranelift flags of
/// `weft_wasm_run::aot::CPU_FLAGS` this CPU has, for the host's target (no
/// `Config::target`), the module compiled once and instantiated afresh for
/// each run.
///
/// Without a target, Cranelift turns on every feature it finds on this CPU
/// (`cranelift_native::infer_native_flags`, the same
/// `is_x86_feature_detected!` tests the monitor makes for `CPU_FLAGS`): so
/// the `CPU_FLAGS` this CPU has are on, as for the guest, and also AVX,
/// AVX2, BMI, LZCNT, FMA, ..., which the guest's artifact never uses (the
/// guest enables no AVX state); each such flag is turned off again
/// ([`OTHER_X86_FLAGS`]), so the host's code is the guest's but for the
/// target's ABI details.
pub struct HostWasmtime {
    engine: Engine,
    module: Module,
    linker: Linker<Ctx>,
}

/// Cranelift's x86 ISA flags (cranelift-codegen 0.135, wasmtime 48) that
/// are not among `CPU_FLAGS`: off for the guest (it sets a target, so
/// nothing is inferred), and so off here.
const OTHER_X86_FLAGS: &[&str] = &[
    "has_cmpxchg16b",
    "has_avx",
    "has_avx2",
    "has_fma",
    "has_avx_vnni",
    "has_avx512bitalg",
    "has_avx512dq",
    "has_avx512vl",
    "has_avx512vbmi",
    "has_avx512f",
    "has_avx512vnni",
    "has_bmi1",
    "has_bmi2",
    "has_lzcnt",
];

impl HostWasmtime {
    /// `wasm` compiled for the host as for the guest.
    pub fn new(wasm: &[u8]) -> Self {
        Self::with(&guest_config(), wasm)
    }

    /// `wasm` compiled as for the guest, but with its linear memory behind
    /// guard pages (a 4 GiB reservation and 2 GiB of guard: no bounds
    /// checks in code) and traps by signals: the other way of trapping
    /// (PROTOCOL.md §13.8), measured against the guest's explicit checks
    /// ([`HostWasmtime::new`]) on the host, where signals exist.
    pub fn guarded(wasm: &[u8]) -> Self {
        let mut c = guest_config();
        c.signals_based_traps(true);
        c.memory_reservation(4 << 30);
        c.memory_guard_size(2 << 30);
        Self::with(&c, wasm)
    }

    /// `wasm` compiled with wasmtime's own defaults on this host: linear
    /// memory behind guard pages (no bounds checks in code), traps by
    /// signals, every CPU feature Cranelift finds (AVX included). What
    /// Cranelift's code reaches here at best: the ceiling of
    /// `coremark_aot_vs_native`.
    pub fn unconstrained(wasm: &[u8]) -> Self {
        Self::with(&Config::new(), wasm)
    }

    fn with(c: &Config, wasm: &[u8]) -> Self {
        let engine = Engine::new(c).expect("wasmtime engine for the host");
        let module = Module::new(&engine, wasm).expect("compile the module for the host");
        let linker = linker(&engine, &module).expect("WASI functions");
        Self {
            engine,
            module,
            linker,
        }
    }

    /// Runs `_start` with `args` (the program's name first) to its end.
    pub fn run(&self, args: &[&str]) -> Result<Outcome, wasmtime::Error> {
        let mut store = Store::new(&self.engine, Ctx::new(args));
        let instance = self.linker.instantiate(&mut store, &self.module)?;
        let start = instance.get_typed_func::<(), ()>(&mut store, "_start")?;
        let status = match start.call(&mut store, ()) {
            Ok(()) => 0,
            // `proc_exit`'s status.
            Err(e) => match e.downcast_ref::<i32>() {
                Some(status) => *status,
                None => return Err(e),
            },
        };
        Ok(store.into_data().outcome(status))
    }
}

/// The guest's settings, for the host: `weft_wasm_run::aot::config()` with
/// every CPU feature the guest's artifact does not use turned off.
fn guest_config() -> Config {
    let mut c = weft_wasm_run::aot::config();
    for flag in OTHER_X86_FLAGS {
        // SAFETY: turning a feature off only narrows the code.
        unsafe {
            c.cranelift_flag_set(flag, "false");
        }
    }
    c
}

/// A linker with [`shim`]'s WASI calls for `module`, `proc_exit` failing
/// with its status (an `i32`) as the error's message, which
/// [`HostWasmtime::run`] finds again.
fn linker(engine: &Engine, module: &Module) -> Result<Linker<Ctx>, wasmtime::Error> {
    let mut l = Linker::new(engine);
    l.func_wrap(WASI, "proc_exit", |_: Caller<'_, Ctx>, status: i32| {
        Err::<(), _>(wasmtime::Error::msg(status))
    })?;
    shim::link_wasi!(wasmtime, l, module);
    Ok(l)
}
