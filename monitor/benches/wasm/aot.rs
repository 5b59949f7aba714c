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

use wasmtime::{Config, Engine, Linker, Module, Store};

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

/// A WASI command under wasmtime on the host, compiled as the monitor
/// compiles for the guest (`monitor/src/aot.rs`): `weft_wasm_run::aot::config()`
/// and the Cranelift flags of `weft_wasm_run::aot::CPU_FLAGS` this CPU has,
/// for the host's target (no `Config::target`), the module compiled once
/// and instantiated afresh for each run.
///
/// Without a target, Cranelift also turns on every other feature it finds
/// on this CPU (AVX, AVX2, BMI, LZCNT, FMA, ...), which the guest's artifact
/// never uses (the guest enables no AVX state); each such flag is turned off
/// again ([`OTHER_X86_FLAGS`]), so the host's code is the guest's but for
/// the target's ABI details.
pub struct HostWasmtime {
    engine: Engine,
    module: Module,
    linker: Linker<wasi::Ctx>,
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

/// How a host run ended and what it printed.
pub struct Outcome {
    pub status: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl HostWasmtime {
    /// `wasm` compiled for the host.
    pub fn new(wasm: &[u8]) -> Self {
        let mut c: Config = weft_wasm_run::aot::config();
        for (flag, feature) in weft_wasm_run::aot::CPU_FLAGS {
            // SAFETY: this CPU has the feature (as the monitor enables a
            // flag only when the guest's CPU, this one, has it).
            unsafe {
                if host_has(feature) {
                    c.cranelift_flag_enable(flag);
                } else {
                    c.cranelift_flag_set(flag, "false");
                }
            }
        }
        for flag in OTHER_X86_FLAGS {
            // SAFETY: turning a feature off only narrows the code.
            unsafe {
                c.cranelift_flag_set(flag, "false");
            }
        }
        let engine = Engine::new(&c).expect("wasmtime engine for the host");
        let module = Module::new(&engine, wasm).expect("compile the module for the host");
        let linker = wasi::linker(&engine, &module).expect("WASI functions");
        Self {
            engine,
            module,
            linker,
        }
    }

    /// Runs `_start` with `args` (the program's name first) to its end.
    pub fn run(&self, args: &[&str]) -> Result<Outcome, wasmtime::Error> {
        let mut store = Store::new(&self.engine, wasi::Ctx::new(args));
        let instance = self.linker.instantiate(&mut store, &self.module)?;
        let start = instance.get_typed_func::<(), ()>(&mut store, "_start")?;
        let status = match start.call(&mut store, ()) {
            Ok(()) => 0,
            Err(e) => match e.downcast_ref::<wasi::Exit>() {
                Some(wasi::Exit(status)) => *status,
                None => return Err(e),
            },
        };
        let ctx = store.into_data();
        Ok(Outcome {
            status,
            stdout: ctx.stdout,
            stderr: ctx.stderr,
        })
    }
}

/// Whether this CPU has `feature` (a name of `CPU_FLAGS`), as the monitor
/// decides it.
fn host_has(feature: &str) -> bool {
    match feature {
        "sse3" => std::arch::is_x86_feature_detected!("sse3"),
        "ssse3" => std::arch::is_x86_feature_detected!("ssse3"),
        "sse4.1" => std::arch::is_x86_feature_detected!("sse4.1"),
        "sse4.2" => std::arch::is_x86_feature_detected!("sse4.2"),
        "popcnt" => std::arch::is_x86_feature_detected!("popcnt"),
        _ => false,
    }
}

/// The WASI preview 1 calls CoreMark imports (`Module::imports` of
/// coremark.wasm: `args_sizes_get`, `args_get`, `environ_sizes_get`,
/// `environ_get`, `clock_time_get`, `fd_write`, `proc_exit`): arguments,
/// an empty environment, standard output and error (kept in memory), the
/// clocks and `proc_exit`. Any other import of `wasi_snapshot_preview1`
/// returns `ENOSYS`.
mod wasi {
    use std::fmt;
    use std::time::{Instant, SystemTime, UNIX_EPOCH};

    use wasmtime::{Caller, Engine, Extern, Linker, Module, Val};
    use weft_control::app::errno::{BADF, FAULT, INVAL, NOSYS};
    use weft_wasm_run::wasi::MODULE as WASI;

    /// The program's side of the host.
    pub struct Ctx {
        args: Vec<Vec<u8>>,
        started: Instant,
        pub stdout: Vec<u8>,
        pub stderr: Vec<u8>,
    }

    impl Ctx {
        pub fn new(args: &[&str]) -> Self {
            Self {
                args: args.iter().map(|a| a.as_bytes().to_vec()).collect(),
                started: Instant::now(),
                stdout: Vec::new(),
                stderr: Vec::new(),
            }
        }
    }

    /// `proc_exit`'s status, carried out of `_start`.
    #[derive(Debug)]
    pub struct Exit(pub i32);

    impl fmt::Display for Exit {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "exit with status {}", self.0)
        }
    }

    impl std::error::Error for Exit {}

    type C<'a> = Caller<'a, Ctx>;
    /// A WASI call's result: `Err` holds its errno.
    type Errno = Result<(), i32>;

    fn errno(r: Errno) -> i32 {
        r.err().unwrap_or(0)
    }

    /// The module's memory and the context.
    fn memory<'a>(c: &'a mut C<'_>) -> Result<(&'a mut [u8], &'a mut Ctx), i32> {
        let mem = c
            .get_export("memory")
            .and_then(Extern::into_memory)
            .ok_or(FAULT)?;
        Ok(mem.data_and_store_mut(c))
    }

    /// A Wasm address (an `i32` argument) as an offset in memory.
    fn addr(a: i32) -> usize {
        a as u32 as usize
    }

    /// `len` bytes at offset `at` of the module's memory, bounds-checked.
    fn span(mem: &mut [u8], at: usize, len: usize) -> Result<&mut [u8], i32> {
        mem.get_mut(at..at.checked_add(len).ok_or(FAULT)?)
            .ok_or(FAULT)
    }

    fn read_u32(mem: &mut [u8], at: usize) -> Result<u32, i32> {
        let b = span(mem, at, 4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn write(mem: &mut [u8], at: usize, bytes: &[u8]) -> Errno {
        span(mem, at, bytes.len())?.copy_from_slice(bytes);
        Ok(())
    }

    fn args_sizes_get(c: &mut C<'_>, count: usize, size: usize) -> Errno {
        let (mem, ctx) = memory(c)?;
        let bytes: usize = ctx.args.iter().map(|a| a.len() + 1).sum();
        write(mem, count, &(ctx.args.len() as u32).to_le_bytes())?;
        write(mem, size, &(bytes as u32).to_le_bytes())
    }

    fn args_get(c: &mut C<'_>, ptrs: usize, buf: usize) -> Errno {
        let (mem, ctx) = memory(c)?;
        let mut at = buf;
        for (i, arg) in ctx.args.iter().enumerate() {
            write(mem, ptrs + 4 * i, &(at as u32).to_le_bytes())?;
            write(mem, at, arg)?;
            write(mem, at + arg.len(), &[0])?;
            at += arg.len() + 1;
        }
        Ok(())
    }

    fn fd_write(c: &mut C<'_>, fd: i32, iovs: usize, n: usize, written: usize) -> Errno {
        let (mem, ctx) = memory(c)?;
        let out = match fd {
            1 => &mut ctx.stdout,
            2 => &mut ctx.stderr,
            _ => return Err(BADF),
        };
        let mut total = 0u32;
        for i in 0..n {
            let ptr = read_u32(mem, iovs + 8 * i)?;
            let len = read_u32(mem, iovs + 8 * i + 4)?;
            out.extend_from_slice(span(mem, ptr as usize, len as usize)?);
            total = total.wrapping_add(len);
        }
        write(mem, written, &total.to_le_bytes())
    }

    /// Realtime (0) from the system clock; monotonic (1) and the CPU-time
    /// clocks (2, 3) as time since the program started.
    fn clock_time_get(c: &mut C<'_>, id: i32, out: usize) -> Errno {
        let ns = match id {
            0 => SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_err(|_| INVAL)?
                .as_nanos() as u64,
            1..=3 => c.data().started.elapsed().as_nanos() as u64,
            _ => return Err(INVAL),
        };
        let (mem, _) = memory(c)?;
        write(mem, out, &ns.to_le_bytes())
    }

    /// A linker with the calls above and `ENOSYS` for every other WASI
    /// import of `module`.
    pub fn linker(engine: &Engine, module: &Module) -> Result<Linker<Ctx>, wasmtime::Error> {
        let mut l = Linker::new(engine);
        l.func_wrap(WASI, "args_sizes_get", |mut c: C<'_>, n: i32, size: i32| {
            errno(args_sizes_get(&mut c, addr(n), addr(size)))
        })?;
        l.func_wrap(WASI, "args_get", |mut c: C<'_>, ptrs: i32, buf: i32| {
            errno(args_get(&mut c, addr(ptrs), addr(buf)))
        })?;
        l.func_wrap(
            WASI,
            "environ_sizes_get",
            |mut c: C<'_>, n: i32, size: i32| {
                errno(memory(&mut c).and_then(|(mem, _)| {
                    write(mem, addr(n), &0u32.to_le_bytes())?;
                    write(mem, addr(size), &0u32.to_le_bytes())
                }))
            },
        )?;
        l.func_wrap(WASI, "environ_get", |_: C<'_>, _: i32, _: i32| 0)?;
        l.func_wrap(
            WASI,
            "fd_write",
            |mut c: C<'_>, fd: i32, iovs: i32, n: i32, written: i32| {
                errno(fd_write(&mut c, fd, addr(iovs), addr(n), addr(written)))
            },
        )?;
        l.func_wrap(
            WASI,
            "clock_time_get",
            |mut c: C<'_>, id: i32, _precision: i64, out: i32| {
                errno(clock_time_get(&mut c, id, addr(out)))
            },
        )?;
        l.func_wrap(
            WASI,
            "proc_exit",
            |_: C<'_>, status: i32| -> Result<(), wasmtime::Error> {
                Err(wasmtime::Error::new(Exit(status)))
            },
        )?;
        for import in module.imports() {
            let Some(ty) = import.ty().func().cloned() else {
                continue;
            };
            if import.module() != WASI {
                continue;
            }
            let returns_errno = ty.results().len() == 1;
            // Fails only for a name defined above: nothing to do.
            let _ = l.func_new(WASI, import.name(), ty, move |_, _, out: &mut [Val]| {
                if returns_errno {
                    out[0] = Val::I32(NOSYS);
                }
                Ok(())
            });
        }
        Ok(l)
    }
}
