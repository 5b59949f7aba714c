//! The runtime's shared state: the engine, the host functions every app
//! links against, and the process table.
//!
//! Host calls reach the table (to spawn, kill, list) through their app's
//! context; apps they spawn wait in [`Table::spawned`] until the scheduler
//! takes them after the slice, and kills in [`Table::killed`].
//!
//! Modules are rewritten at load so a trap report can name the function
//! (`weft_wasm_instrument`), then compiled; the last [`CACHED`] modules are
//! kept, by their exact bytes, so spawning the same app again only
//! instantiates it.

use crate::app::{App, Ctx, DEFAULT_MEMORY_LIMIT, Spawn};
use crate::{events, wasi};
use alloc::collections::{BTreeMap, VecDeque};
use alloc::rc::Rc;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::cell::RefCell;
use wasmi::{CompilationMode, Config, Engine, Linker, Module};
use weft_wasm_instrument::{FunctionNames, Instrumented, instrument};

/// Compiled modules kept for later spawns.
pub const CACHED: usize = 8;

/// A module ready to instantiate, with its function names.
#[derive(Clone)]
pub struct Compiled {
    pub module: Module,
    pub names: Rc<FunctionNames>,
}

/// The first app's process id; killing it is refused (it is the runtime's
/// life: when it ends, so do the others).
pub const FIRST_PID: u32 = 1;

pub struct System {
    engine: Engine,
    linker: Linker<Ctx>,
    pub table: RefCell<Table>,
    /// Recently compiled modules, by their bytes as given; newest last.
    cache: RefCell<VecDeque<(Vec<u8>, Compiled)>>,
}

/// What a process is doing, as `processes` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum State {
    /// Running or ready to run.
    Running = 1,
    /// Waiting for a stream, a timer or an event.
    Waiting = 2,
}

/// One process, as listed.
#[derive(Clone, Debug)]
pub struct Info {
    /// The spawner's id; 0 for the first app.
    pub parent: u32,
    pub name: String,
    pub state: State,
    /// Guest time spent running it, in nanoseconds.
    pub cpu_ns: u64,
    /// Its linear memory in bytes.
    pub memory: u64,
    /// Its open sockets.
    pub sockets: u32,
}

#[derive(Default)]
pub struct Table {
    next_pid: u32,
    pub procs: BTreeMap<u32, Info>,
    /// Apps spawned during a slice, not yet scheduled.
    pub spawned: Vec<App>,
    /// Processes killed during a slice, not yet ended.
    pub killed: Vec<u32>,
}

impl Table {
    /// Whether `pid` has children still alive.
    pub fn has_children(&self, pid: u32) -> bool {
        self.procs.values().any(|p| p.parent == pid)
    }
}

/// Why a process could not be killed.
pub enum KillError {
    NoSuchProcess,
    First,
}

impl System {
    /// The engine (fuel metering on, functions compiled when the module
    /// is) and the host functions.
    pub fn new() -> Result<Rc<Self>, wasmi::Error> {
        let mut config = Config::default();
        config.consume_fuel(true);
        // Lazy compilation charges a function's compilation to the fuel of
        // its first call, and running out there is not resumable in wasmi
        // 2: a large function called near the end of a slice would trap.
        // Compiled modules are cached, so eager compilation is paid once.
        config.compilation_mode(CompilationMode::Eager);
        let engine = Engine::new(&config);
        let mut linker = <Linker<Ctx>>::new(&engine);
        wasi::define(&mut linker)?;
        events::define(&mut linker)?;
        Ok(Rc::new(Self {
            engine,
            linker,
            table: RefCell::new(Table {
                next_pid: FIRST_PID,
                ..Table::default()
            }),
            cache: RefCell::new(VecDeque::new()),
        }))
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub fn linker(&self) -> &Linker<Ctx> {
        &self.linker
    }

    /// The module of `bytes`, instrumented and compiled, or from the cache.
    pub fn compile(&self, bytes: &[u8]) -> Result<Compiled, String> {
        let mut cache = self.cache.borrow_mut();
        let found = cache.iter().position(|(b, _)| b.as_slice() == bytes);
        if let Some(hit) = found.and_then(|at| cache.remove(at)) {
            let compiled = hit.1.clone();
            cache.push_back(hit);
            return Ok(compiled);
        }
        let Instrumented { module, names } = instrument(bytes).map_err(|e| e.to_string())?;
        let compiled = Compiled {
            module: Module::new(&self.engine, &module).map_err(|e| e.to_string())?,
            names: Rc::new(names),
        };
        if cache.len() == CACHED {
            cache.pop_front();
        }
        cache.push_back((bytes.to_vec(), compiled.clone()));
        Ok(compiled)
    }

    /// Loads a module as a new process of `parent`; returns the app for the
    /// scheduler, or why the module cannot run.
    pub fn load(self: &Rc<Self>, parent: u32, s: Spawn<'_>) -> Result<App, String> {
        let app = App::load(self, s)?;
        self.table.borrow_mut().procs.insert(
            app.pid(),
            Info {
                parent,
                name: app.name.clone(),
                state: State::Running,
                cpu_ns: 0,
                memory: app.memory_bytes(),
                sockets: 0,
            },
        );
        Ok(app)
    }

    /// A fresh process id.
    pub fn next_pid(&self) -> u32 {
        let mut t = self.table.borrow_mut();
        let pid = t.next_pid;
        t.next_pid = t.next_pid.wrapping_add(1).max(FIRST_PID + 1);
        pid
    }

    /// Spawns `bytes` as a child of `parent` with `args` (its name first);
    /// returns its id.
    pub fn spawn(
        self: &Rc<Self>,
        parent: u32,
        bytes: &[u8],
        args: Vec<Vec<u8>>,
        memory_limit: Option<usize>,
    ) -> Result<u32, String> {
        let pid = self.next_pid();
        let app = self.load(
            parent,
            Spawn {
                pid,
                bytes,
                args,
                grants: Vec::new(),
                memory_limit: memory_limit.unwrap_or(DEFAULT_MEMORY_LIMIT),
            },
        )?;
        self.table.borrow_mut().spawned.push(app);
        Ok(pid)
    }

    /// Marks `pid` to be ended after the current slice.
    pub fn kill(&self, pid: u32) -> Result<(), KillError> {
        let mut t = self.table.borrow_mut();
        if pid == FIRST_PID {
            return Err(KillError::First);
        }
        if !t.procs.contains_key(&pid) {
            return Err(KillError::NoSuchProcess);
        }
        t.killed.push(pid);
        Ok(())
    }
}
