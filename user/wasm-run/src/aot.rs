//! The ahead-of-time tier (PROTOCOL.md §13.8): a module the monitor
//! compiled with wasmtime's Cranelift runs as native code at ring 3 under
//! wasmtime's `no_std` runtime, with the same WASI functions as the
//! interpreter ([`crate::wasi::define_wasi`], bound here to wasmtime's
//! caller).
//!
//! One app per process: the kernel's timer preempts it as any program, so
//! a call that must wait waits in place ([`Host::wait`]), and no fuel is
//! counted. Its linear memory is a heap allocation with explicit bounds
//! checks (no guard pages), capped as the interpreter's is. An event app
//! (PROTOCOL.md §13.2) gets its batches as under the interpreter
//! ([`crate::events::gather`]); its process calls ([`Procs`]) see only
//! itself: `spawn` is `ENOTSUP` and `move_self` `ENOTCAPABLE` in this
//! tier.
//!
//! [`config`] holds every setting the artifact records and the runtime
//! checks: the monitor compiles with it (adding the target and the
//! compiler's flags), the runtime loads with it. Both link the same
//! wasmtime (one `Cargo.lock`), whose artifacts load only into its own
//! version.

use crate::app::Ctx;
use crate::bind::{Call, Procs, Trap};
use crate::events::EventState;
use crate::fds::Fds;
use crate::host::{Host, Interest, WasiResult};
use crate::mem::Env;
use crate::ops::{Flow, Op};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::net::SocketAddr;
use wasmtime::{Caller, Config, Extern, Memory, StoreLimits};
use weft_control::app::{FIRST_PID, MODULE, ON_EVENTS, ProcessRecord, errno, name_of};

/// The most native stack Wasm code may use. A ring-3 program's stack is
/// 256 KiB (PROTOCOL.md §1); the rest is left to the runtime and the host
/// calls under the deepest Wasm frame. Deeper recursion traps
/// (`call stack exhausted`).
pub const MAX_WASM_STACK: usize = 160 << 10;

/// The settings an artifact records and its runtime must share: no
/// virtual memory (linear memory on the heap, bounds checked in code, no
/// copy-on-write images), no signal handlers (every trap an explicit
/// check), the stack of [`MAX_WASM_STACK`].
pub fn config() -> Config {
    let mut c = Config::new();
    c.signals_based_traps(false);
    c.memory_reservation(0);
    c.memory_guard_size(0);
    c.guard_before_linear_memory(false);
    c.memory_init_cow(false);
    c.max_wasm_stack(MAX_WASM_STACK);
    // SAFETY: the guest's programs are built soft-float; the artifact's
    // code passes floats in SSE registers. No float crosses between the
    // two: every host function takes and returns integers, and SSE 4.1
    // (which the monitor requires and compiles for, `CPU_FLAGS`) keeps
    // Cranelift from calling float helpers of the runtime.
    unsafe {
        c.x86_float_abi_ok(true);
    }
    c
}

/// The Cranelift flags the monitor compiles with, each a CPU feature the
/// runtime checks the guest has before it loads the artifact. Only
/// legacy-encoded SSE: the guest kernel enables no AVX state.
pub const CPU_FLAGS: &[(&str, &str)] = &[
    ("has_sse3", "sse3"),
    ("has_ssse3", "ssse3"),
    ("has_sse41", "sse4.1"),
    ("has_sse42", "sse4.2"),
    ("has_popcnt", "popcnt"),
];

/// What the runtime keeps beside an app's state.
pub struct Aot {
    /// The app's exported memory, once known.
    memory: Option<Memory>,
    limits: StoreLimits,
}

/// The app alone: it spawns nothing, and cannot be moved in this tier.
impl<H: Host> Procs<H> for Aot {
    fn spawn(_: &mut Ctx<H, Aot>, _: &str, _: Vec<Vec<u8>>, _: Option<usize>) -> WasiResult<u32> {
        Err(errno::NOTSUP)
    }

    fn kill(ctx: &mut Ctx<H, Aot>, pid: u32) -> i32 {
        match pid == ctx.pid {
            true => errno::PERM,
            false => errno::SRCH,
        }
    }

    fn processes(ctx: &Ctx<H, Aot>) -> Vec<ProcessRecord> {
        let name = ctx.args.first().map_or(&[][..], Vec::as_slice);
        alloc::vec![ProcessRecord {
            pid: ctx.pid,
            parent: 0,
            state: crate::system::State::Running as u32,
            sockets: ctx.fds.sockets() as u32,
            cpu_ns: 0,
            memory: 0,
            name: name_of(name),
        }]
    }

    fn move_self(_: &mut Ctx<H, Aot>, _: String) -> WasiResult<()> {
        Err(errno::NOTCAPABLE)
    }

    fn has_children(_: &Ctx<H, Aot>) -> bool {
        false
    }
}

/// `proc_exit`'s status, carried out of the app's call.
#[derive(Debug)]
struct Exit(i32);

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "exit with status {}", self.0)
    }
}

impl core::error::Error for Exit {}

/// A trap a host function raised, with its description.
#[derive(Debug)]
struct HostTrap(String);

impl fmt::Display for HostTrap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl core::error::Error for HostTrap {}

impl Trap for wasmtime::Error {
    fn exit(status: i32) -> Self {
        wasmtime::Error::new(Exit(status))
    }

    fn trap(message: String) -> Self {
        wasmtime::Error::new(HostTrap(message))
    }
}

impl<H: Host> Call<H> for Caller<'_, Ctx<H, Aot>> {
    type X = Aot;
    type Trap = wasmtime::Error;

    fn ctx(&mut self) -> &mut Ctx<H, Aot> {
        self.data_mut()
    }

    fn with_env<R>(
        &mut self,
        f: impl FnOnce(&mut Env<'_, H, Aot>) -> WasiResult<R>,
    ) -> WasiResult<R> {
        let memory = match self.data().x.memory {
            Some(m) => m,
            None => {
                let m = self
                    .get_export("memory")
                    .and_then(Extern::into_memory)
                    .ok_or(errno::FAULT)?;
                self.data_mut().x.memory = Some(m);
                m
            }
        };
        let (mem, ctx) = memory.data_and_store_mut(&mut *self);
        f(&mut Env { mem, ctx })
    }

    /// Waits in place: the app is its process's only one.
    fn op(&mut self, op: Op) -> Result<i32, wasmtime::Error> {
        loop {
            let wait = match self.with_env(|e| Ok(op.run(e))) {
                Err(errno) | Ok(Flow::Done(errno)) => return Ok(errno),
                Ok(Flow::Wait(wait)) => wait,
            };
            let Ctx { fds, host, .. } = self.data_mut();
            fds.flush_output();
            let mut streams: Vec<(&mut H::Stream, Interest)> = Vec::new();
            fds.streams_for(&wait.fds, false, &mut streams);
            let timeout = wait.deadline.map(|d| d.saturating_sub(host.monotonic_ns()));
            if timeout != Some(0) {
                host.wait(&mut streams, timeout);
            }
        }
    }

    /// The kernel's timer shares the CPU; there is no turn to give up.
    fn yield_now(&mut self) {}
}

/// Why a module cannot run in this tier.
#[derive(Debug)]
pub enum LoadError {
    /// The artifact does not load: another version or configuration of
    /// wasmtime made it, or the CPU lacks a feature it was compiled for.
    Artifact(wasmtime::Error),
    /// It imports `module::name`, which this tier does not provide.
    Import { module: String, name: String },
    /// Its `weft_on_events` is not `(i32) -> ()`.
    Handler,
    /// Instantiating it failed (its start function trapped, a memory or
    /// table too large).
    Instantiate(wasmtime::Error),
    /// It exports no `_start`.
    NoEntry,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::Artifact(e) => write!(f, "the compiled module does not load: {e:#}"),
            LoadError::Import { module, name } => write!(
                f,
                "imports {module}::{name}, which this runtime does not provide"
            ),
            LoadError::Handler => write!(f, "its `{ON_EVENTS}` is not a function (i32) -> ()"),
            LoadError::Instantiate(e) => write!(f, "cannot instantiate: {e:#}"),
            LoadError::NoEntry => {
                f.write_str("the module exports neither `_start` nor `weft_on_events`")
            }
        }
    }
}

/// What a module is run with.
pub struct Start {
    /// Its arguments, its name first.
    pub args: Vec<Vec<u8>>,
    /// Its environment, each `KEY=VALUE`.
    pub env: Vec<Vec<u8>>,
    /// Listeners preopened for it.
    pub grants: Vec<SocketAddr>,
    /// The cap on its linear memory, in bytes.
    pub memory_limit: usize,
}

/// How a run ended.
pub enum End {
    /// `_start` returned (0) or the app called `proc_exit`.
    Exit(i32),
    /// A trap, described (`trap: WHAT in `FUNCTION``).
    Trap(String),
}

/// Runs the module compiled in `artifact` (already executable, in place)
/// with `start` on `host`: a command's `_start` to its end; an event
/// app's entry point, then a `weft_on_events` call for each batch of its
/// events until it exits or nothing can wake it.
///
/// # Safety
///
/// `artifact` is the output of `Engine::precompile_module` with
/// [`config`] (the runtime checks its header: version, settings, CPU
/// features, but not the code), mapped read and execute for the program's
/// life and never written.
pub unsafe fn run<H: Host>(
    engine: &wasmtime::Engine,
    host: H,
    artifact: &'static [u8],
    start: Start,
) -> Result<End, LoadError> {
    use wasmtime::{Module, Store, StoreLimitsBuilder};
    // SAFETY: forwarded to the caller.
    let module = unsafe { Module::deserialize_raw(engine, core::ptr::NonNull::from(artifact)) }
        .map_err(LoadError::Artifact)?;
    let linker = linker_for(engine, &module)?;
    let ctx = Ctx {
        pid: FIRST_PID,
        args: start.args,
        env: start.env,
        fds: Fds::new(host.clone(), start.grants),
        events: EventState::default(),
        fabric_reply: None,
        host,
        x: Aot {
            memory: None,
            limits: StoreLimitsBuilder::new()
                .memory_size(start.memory_limit)
                .build(),
        },
    };
    let mut store = Store::new(engine, ctx);
    store.limiter(|c| &mut c.x.limits);
    let instance = linker
        .instantiate(&mut store, &module)
        .map_err(LoadError::Instantiate)?;
    store.data_mut().x.memory = instance.get_memory(&mut store, "memory");
    let on_events = match instance.get_func(&mut store, ON_EVENTS) {
        Some(f) => Some(f.typed::<i32, ()>(&store).map_err(|_| LoadError::Handler)?),
        None => None,
    };
    let typed = |store: &mut Store<_>, name| instance.get_typed_func::<(), ()>(store, name).ok();
    let entry = match (
        typed(&mut store, "_start"),
        typed(&mut store, "_initialize"),
    ) {
        (Some(f), _) => f,
        (None, Some(f)) if on_events.is_some() => f,
        _ => return Err(LoadError::NoEntry),
    };
    if let Err(end) = ended(entry.call(&mut store, ())) {
        return Ok(end);
    }
    let Some(on_events) = on_events else {
        return Ok(End::Exit(0));
    };
    loop {
        let Some(memory) = store.data().x.memory else {
            return Ok(End::Exit(0));
        };
        let (mem, ctx) = memory.data_and_store_mut(&mut store);
        match crate::events::gather(&mut Env { mem, ctx }) {
            None => return Ok(End::Exit(0)),
            Some(0) => wait_for_events(store.data_mut()),
            Some(count) => {
                if let Err(end) = ended(on_events.call(&mut store, count as i32)) {
                    return Ok(end);
                }
            }
        }
    }
}

/// `Err` with how the app ended if a call of it ended it (`proc_exit`, a
/// trap).
fn ended(called: wasmtime::Result<()>) -> Result<(), End> {
    called.map_err(|e| match e.downcast_ref::<Exit>() {
        Some(Exit(status)) => End::Exit(*status),
        None => End::Trap(describe(&e)),
    })
}

/// Sleeps until a socket the idle event app registered is ready or its
/// earliest timer is due.
fn wait_for_events<H: Host>(ctx: &mut Ctx<H, Aot>) {
    let (fds, timer) = ctx.events.wait();
    let Ctx {
        fds: table, host, ..
    } = ctx;
    table.flush_output();
    let mut streams: Vec<(&mut H::Stream, Interest)> = Vec::new();
    table.streams_for(&fds, false, &mut streams);
    let timeout = timer.map(|d| d.saturating_sub(host.monotonic_ns()));
    if timeout != Some(0) {
        host.wait(&mut streams, timeout);
    }
}

/// The linker for `module`: the WASI and `weft` functions, and an
/// `ENOSYS` stub for each WASI function it imports that the runtime does
/// not provide; other modules' imports are refused.
fn linker_for<H: Host>(
    engine: &wasmtime::Engine,
    module: &wasmtime::Module,
) -> Result<wasmtime::Linker<Ctx<H, Aot>>, LoadError> {
    let mut linker = Imported {
        linker: wasmtime::Linker::new(engine),
        module,
    };
    define(&mut linker).map_err(LoadError::Instantiate)?;
    let mut linker = linker.linker;
    for import in module.imports() {
        let Some(ty) = import.ty().func().cloned() else {
            continue;
        };
        match import.module() {
            // A `weft` name the runtime lacks fails the instantiation.
            MODULE => continue,
            crate::wasi::MODULE => {}
            other => {
                return Err(LoadError::Import {
                    module: other.into(),
                    name: import.name().into(),
                });
            }
        }
        let results = ty.results().len();
        // Fails only for a name the runtime provides: nothing to do.
        let _ = linker.func_new(
            crate::wasi::MODULE,
            import.name(),
            ty,
            move |_, _, out: &mut [wasmtime::Val]| {
                if results == 1 {
                    out[0] = wasmtime::Val::I32(errno::NOSYS);
                }
                Ok(())
            },
        );
    }
    Ok(linker)
}

/// A linker that takes only the functions its module imports: making one
/// costs a few microseconds, and a program imports a few of the ~75.
struct Imported<'a, T: 'static> {
    linker: wasmtime::Linker<T>,
    module: &'a wasmtime::Module,
}

impl<T: 'static> Imported<'_, T> {
    /// Defines `module::name` as `func` if the module imports it.
    fn func_wrap<Params, Args>(
        &mut self,
        module: &str,
        name: &str,
        func: impl wasmtime::IntoFunc<T, Params, Args>,
    ) -> wasmtime::Result<&mut Self> {
        if self
            .module
            .imports()
            .any(|i| i.module() == module && i.name() == name)
        {
            self.linker.func_wrap(module, name, func)?;
        }
        Ok(self)
    }
}

/// Binds the WASI and `weft` functions its module imports to wasmtime's
/// caller.
fn define<H: Host>(l: &mut Imported<'_, Ctx<H, Aot>>) -> Result<(), wasmtime::Error> {
    crate::wasi::define_wasi!(l, Caller<'_, Ctx<H, Aot>>, wasmtime::Error);
    crate::events::define_events!(l, Caller<'_, Ctx<H, Aot>>, wasmtime::Error);
    Ok(())
}

/// `trap: WHAT in `FUNCTION``, as the interpreter reports a trap: the
/// trap's kind (or the host function's reason) and the innermost Wasm
/// function, by its name where the module names it.
fn describe(e: &wasmtime::Error) -> String {
    let what = match (
        e.downcast_ref::<wasmtime::Trap>(),
        e.downcast_ref::<HostTrap>(),
    ) {
        // wasmtime's "wasm trap: " prefix said again what the report says.
        (Some(t), _) => {
            let t = format!("{t}");
            t.strip_prefix("wasm trap: ").map(String::from).unwrap_or(t)
        }
        (None, Some(HostTrap(m))) => m.clone(),
        (None, None) => format!("{e}"),
    };
    let site = e
        .downcast_ref::<wasmtime::WasmBacktrace>()
        .and_then(|bt| bt.frames().first())
        .map(|f| match f.func_name() {
            Some(name) => format!("in `{name}`"),
            None => format!("in function {}", f.func_index()),
        })
        .unwrap_or_else(|| String::from("in an unknown function"));
    format!("trap: {what} {site}")
}
