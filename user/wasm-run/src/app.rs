//! One app: a module instance in its own store, with its descriptors,
//! its event registrations, and the call it is in.
//!
//! An app runs in calls of its exports, each given [`FUEL_SLICE`] units of
//! fuel at a time: a call that uses them up is suspended and resumed on its
//! next turn, so an app that spins cannot starve the others. A host call
//! that would wait (a socket read with nothing to read, `poll_oneoff`)
//! suspends the call too, until what it waits for is ready. Two kinds of
//! app:
//! - a *command* (it exports `_start` and not `weft_on_events`): `_start`
//!   runs to its end, which ends the app (status 0, or `proc_exit`'s);
//! - an *event app* (it exports `weft_on_events`): its entry point (`_start`,
//!   or a reactor's `_initialize`) sets up and returns, then
//!   `weft_on_events` runs for each batch of events ([`crate::events`]); it
//!   ends when it exits or nothing can wake it any more.

use crate::engine::{Compiled, FUEL_SLICE, LoadError, START_FUEL};
use crate::events::EventState;
use crate::fds::Fds;
use crate::host::Host;
use crate::ops::{Op, Wait};
use crate::system::System;
use crate::wasi;
use alloc::boxed::Box;
use alloc::format;
use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::net::SocketAddr;
use wasmi::{
    Func, Instance, Linker, Memory, Module, ResumableCall, ResumableCallHostTrap,
    ResumableCallOutOfFuel, Store, StoreLimits, StoreLimitsBuilder, Val,
};
use weft_control::app::{
    INTERFACE_BYTES, INTERFACE_SECTION, MODULE, ON_EVENTS, TRAPPED_STATUS, errno,
};
use weft_wasm_instrument::{CURRENT_FUNCTION, FunctionNames, State};

/// What the host functions of one app see, whichever engine runs it: the
/// app's own state, and `x`, what its engine keeps beside it ([`Interp`]
/// for the interpreter, the default; the ahead-of-time tier's in
/// [`crate::aot`]).
pub struct Ctx<H: Host, X = Interp<H>> {
    pub pid: u32,
    /// The app's arguments, its name first.
    pub args: Vec<Vec<u8>>,
    /// The app's environment variables, each `KEY=VALUE` (`weft run --env`
    /// for the first app; spawned and restored apps have none).
    pub env: Vec<Vec<u8>>,
    pub fds: Fds<H>,
    pub events: EventState,
    /// The reply of the latest fabric call, kept when it did not fit the
    /// app's buffer ([`crate::fabric`]).
    pub fabric_reply: Option<Vec<u8>>,
    /// The streams, files, clocks and randomness.
    pub host: H,
    pub x: X,
}

/// What the interpreter keeps beside an app's state.
pub struct Interp<H: Host> {
    /// The app's exported memory, once known.
    pub memory: Option<Memory>,
    pub limits: StoreLimits,
    /// Set by a host call that would wait: what to do again, and when.
    pub blocked: Option<(Op, Wait)>,
    /// The runtime's shared state: the process table, the engine.
    pub system: Rc<System<H>>,
}

/// Raised by a host call that must wait; the runtime suspends the call.
#[derive(Debug)]
pub struct MustWait;

impl fmt::Display for MustWait {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the call waits")
    }
}

impl core::error::Error for MustWait {}
impl wasmi::errors::HostError for MustWait {}

/// Where the app is.
pub enum Run {
    /// A call to begin.
    Begin(Func, Vec<Val>),
    /// A call that used up its fuel.
    Fuel(ResumableCallOutOfFuel),
    /// A call whose waiting host call finished with this errno.
    Resume(ResumableCallHostTrap, i32),
    /// A call waiting in a host call.
    Blocked(ResumableCallHostTrap, Op, Wait),
    /// An event app between calls.
    Idle,
}

/// How an app ended.
pub enum End {
    Exit(i32),
    /// A trap, described.
    Trap(String),
}

impl End {
    pub fn status(&self) -> i32 {
        match self {
            End::Exit(s) => *s,
            End::Trap(_) => TRAPPED_STATUS,
        }
    }
}

pub struct App<H: Host> {
    pub name: String,
    pub store: Store<Ctx<H>>,
    pub(crate) instance: Instance,
    /// Whether it is an event app (it exports `weft_on_events`).
    pub(crate) event_app: bool,
    /// Its functions' names, for trap reports.
    names: Rc<FunctionNames>,
    /// What of its instance's state lies outside its memory.
    pub(crate) state: Rc<State>,
    /// The cap on its linear memory, in bytes.
    pub(crate) memory_limit: usize,
    pub run: Run,
    /// Guest time spent running the app, in nanoseconds.
    pub cpu_ns: u64,
}

/// What a new app is given.
pub struct Spawn<'a> {
    pub pid: u32,
    pub bytes: &'a [u8],
    /// Its arguments, its name first.
    pub args: Vec<Vec<u8>>,
    /// Listeners preopened for it (`--listen` grants, the first app only).
    pub grants: Vec<SocketAddr>,
    pub memory_limit: usize,
}

impl<H: Host> App<H> {
    /// Compiles and instantiates a module; `Err` says why it cannot run.
    pub fn load(system: &Rc<System<H>>, s: Spawn<'_>) -> Result<Self, LoadError> {
        let engine = system.engine();
        let Compiled {
            module,
            names,
            state,
        } = system.compile(s.bytes)?;
        let name = s
            .args
            .first()
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .unwrap_or_default();
        let ctx = Ctx {
            pid: s.pid,
            args: s.args,
            env: Vec::new(),
            fds: Fds::new(system.host().clone(), s.grants),
            events: EventState::default(),
            fabric_reply: None,
            host: system.host().clone(),
            x: Interp {
                memory: None,
                limits: StoreLimitsBuilder::new()
                    .memory_size(s.memory_limit)
                    .build(),
                blocked: None,
                system: system.clone(),
            },
        };
        let mut store = Store::new(engine, ctx);
        store.limiter(|c| &mut c.x.limits);
        // Fails only without fuel metering, which the engine always has.
        let _ = store.set_fuel(START_FUEL);
        let linker = linker_for(system.linker(), &module)?;
        let instance = linker
            .instantiate_and_start(&mut store, &module)
            .map_err(LoadError::Instantiate)?;
        store.data_mut().x.memory = instance.get_memory(&store, "memory");
        let func = |n| instance.get_func(&store, n);
        let event_app = func(ON_EVENTS).is_some();
        let entry = match (func("_start"), func("_initialize")) {
            (Some(f), _) => f,
            (None, Some(f)) if event_app => f,
            _ => return Err(LoadError::NoEntry),
        };
        Ok(Self {
            name,
            store,
            instance,
            event_app,
            names,
            state,
            memory_limit: s.memory_limit,
            run: Run::Begin(entry, Vec::new()),
            cpu_ns: 0,
        })
    }

    /// The app's process id.
    pub fn pid(&self) -> u32 {
        self.store.data().pid
    }

    /// Whether a call can go on now.
    pub fn runnable(&self) -> bool {
        matches!(self.run, Run::Begin(..) | Run::Fuel(_) | Run::Resume(..))
    }

    /// Starts a `weft_on_events` call for `count` events (the app must be
    /// idle).
    pub fn deliver(&mut self, count: u32) {
        if let Some(f) = self.instance.get_func(&self.store, ON_EVENTS) {
            self.run = Run::Begin(f, alloc::vec![Val::I32(count as i32)]);
        }
    }

    /// Runs the current call for one slice of fuel; `Some` if the app
    /// ended. What it wrote in the slice goes out, its lines whole
    /// ([`crate::lines`]).
    pub fn step(&mut self) -> Option<End> {
        let host = self.store.data().host.clone();
        let t0 = host.monotonic_ns();
        let end = self.slice();
        self.store.data_mut().fds.flush_output();
        self.cpu_ns += host.monotonic_ns().saturating_sub(t0);
        end
    }

    fn slice(&mut self) -> Option<End> {
        // A slice, or what the instruction the call stopped at needs if that
        // is more: wasmi charges `memory.grow`, `memory.fill`, `memory.copy`
        // and the like by the byte (64 a unit), so one instruction can cost
        // more than a slice (growing by 62 MiB does), and a call resumed
        // with less would run out at the same instruction on every turn.
        let fuel = match &self.run {
            Run::Fuel(call) => FUEL_SLICE.max(call.required_fuel()),
            _ => FUEL_SLICE,
        };
        let _ = self.store.set_fuel(fuel);
        let out: &mut [Val] = &mut [];
        let called = match core::mem::replace(&mut self.run, Run::Idle) {
            Run::Begin(f, params) => f.call_resumable(&mut self.store, &params, out),
            Run::Fuel(call) => call.resume(&mut self.store, out),
            Run::Resume(call, errno) => call.resume(&mut self.store, &[Val::I32(errno)], out),
            other => {
                self.run = other;
                return None;
            }
        };
        match called {
            // An event app's entry point or handler returned: it waits for
            // events. A command's `_start` returned: it is done.
            Ok(ResumableCall::Finished) => (!self.event_app).then_some(End::Exit(0)),
            Ok(ResumableCall::OutOfFuel(call)) => {
                self.run = Run::Fuel(call);
                None
            }
            Ok(ResumableCall::HostTrap(call)) => {
                if let Some(status) = call.host_error().i32_exit_status() {
                    return Some(End::Exit(status));
                }
                if call.host_error().downcast_ref::<MustWait>().is_some()
                    && let Some((op, wait)) = self.store.data_mut().x.blocked.take()
                {
                    self.run = Run::Blocked(call, op, wait);
                    return None;
                }
                Some(End::Trap(format!(
                    "{} {}",
                    call.host_error(),
                    self.trap_site()
                )))
            }
            Err(e) => Some(match e.i32_exit_status() {
                Some(status) => End::Exit(status),
                None => End::Trap(format!("trap: {e} {}", self.trap_site())),
            }),
        }
    }

    /// Where the app trapped: "in `NAME`", from the function the load-time
    /// instrumentation recorded last.
    fn trap_site(&self) -> String {
        let current = self
            .instance
            .get_global(&self.store, CURRENT_FUNCTION)
            .and_then(|g| g.get(&self.store).i32());
        match current {
            Some(index) => format!("in `{}`", self.names.describe(index)),
            None => String::from("in an unknown function"),
        }
    }

    /// If the app waits in a host call: retries it, and readies the call to
    /// resume if it finished.
    pub fn retry(&mut self) -> bool {
        let Run::Blocked(_, op, _) = &self.run else {
            return false;
        };
        let Some(errno) = crate::ops::retry(&mut self.store, op) else {
            return false;
        };
        if let Run::Blocked(call, ..) = core::mem::replace(&mut self.run, Run::Idle) {
            self.run = Run::Resume(call, errno);
        }
        true
    }

    /// The linear memory's size in bytes.
    pub fn memory_bytes(&self) -> u64 {
        self.store
            .data()
            .x
            .memory
            .map_or(0, |m| m.data(&self.store).len() as u64)
    }
}

/// Checks that a module using the event ABI states this interface version
/// in its [`INTERFACE_SECTION`] (§13.3).
fn check_interface(module: &Module) -> Result<(), LoadError> {
    let mut stated = module
        .custom_sections()
        .filter(|s| s.name() == INTERFACE_SECTION)
        .map(|s| s.data());
    match (stated.next(), stated.next()) {
        (Some(data), None) if data == INTERFACE_BYTES => Ok(()),
        (Some(data), None) => Err(LoadError::Interface {
            found: data.try_into().ok().map(u32::from_le_bytes),
        }),
        _ => Err(LoadError::Interface { found: None }),
    }
}

/// The shared linker, plus an `ENOSYS` stub for each WASI function the
/// module imports that the runtime does not provide; refuses imports of
/// other modules.
fn linker_for<H: Host>(
    base: &Linker<Ctx<H>>,
    module: &Module,
) -> Result<Box<Linker<Ctx<H>>>, LoadError> {
    let mut linker = Box::new(base.clone());
    if module.imports().any(|i| i.module() == MODULE) {
        check_interface(module)?;
    }
    for import in module.imports() {
        let Some(ty) = import.ty().func() else {
            continue;
        };
        if import.module() == MODULE {
            // The event ABI: a name it lacks fails the instantiation.
            continue;
        }
        if import.module() != wasi::MODULE {
            return Err(LoadError::Import {
                module: import.module().into(),
                name: import.name().into(),
            });
        }
        let ty = ty.clone();
        let results = ty.results().len();
        // Fails only for a name the runtime provides: nothing to do.
        let _ = linker.func_new(
            wasi::MODULE,
            import.name(),
            ty,
            move |_, _, out: &mut [Val]| {
                if results == 1 {
                    out[0] = Val::I32(errno::NOSYS);
                }
                Ok(())
            },
        );
    }
    Ok(linker)
}
