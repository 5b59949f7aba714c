//! The runtime's shared state: the engine, the host functions every app
//! links against, and the process table.
//!
//! Host calls reach the table (to spawn, kill, list) through their app's
//! context; apps they spawn wait in [`Table::spawned`] until the scheduler
//! takes them after the slice, and kills in [`Table::killed`].
//!
//! Modules are compiled as [`crate::engine`] says (instrumented first, so a
//! trap report can name the function); the last [`CACHED`] modules are
//! kept, by their exact bytes, so spawning the same app again only
//! instantiates it.
//!
//! The first app ([`FIRST_PID`]) cannot be killed: it is the runtime's
//! life, and when it ends, so do the others.

use crate::app::{App, Ctx, Spawn};
use crate::engine::{self, Compiled, LoadError};
use crate::host::Host;
use crate::{events, wasi};
use alloc::collections::{BTreeMap, VecDeque};
use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec::Vec;
use core::cell::RefCell;
use wasmi::{Engine, Linker};
use weft_control::app::{DEFAULT_MEMORY_LIMIT, FIRST_PID};

/// Compiled modules kept for later spawns.
pub const CACHED: usize = 8;

pub struct System<H: Host> {
    host: H,
    engine: Engine,
    linker: Linker<Ctx<H>>,
    pub table: RefCell<Table<H>>,
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

pub struct Table<H: Host> {
    next_pid: u32,
    pub procs: BTreeMap<u32, Info>,
    /// Apps spawned during a slice, not yet scheduled.
    pub spawned: Vec<App<H>>,
    /// Processes killed during a slice, not yet ended.
    pub killed: Vec<u32>,
    /// Whether the runtime has a move stream, so its first app may move.
    pub movable: bool,
    /// The device the first app asked to move to (`move_self`), for the
    /// scheduler to hand the monitor after the slice.
    pub go: Option<String>,
}

impl<H: Host> Table<H> {
    /// Whether `pid` has children still alive.
    pub fn has_children(&self, pid: u32) -> bool {
        self.procs.values().any(|p| p.parent == pid)
    }
}

/// Why a process could not be killed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KillError {
    NoSuchProcess,
    First,
}

impl<H: Host> System<H> {
    /// The engine ([`engine::config`]) and the host functions, over `host`.
    pub fn new(host: H) -> Result<Rc<Self>, wasmi::Error> {
        let engine = engine::engine();
        let mut linker = <Linker<Ctx<H>>>::new(&engine);
        wasi::define(&mut linker)?;
        events::define(&mut linker)?;
        Ok(Rc::new(Self {
            host,
            engine,
            linker,
            table: RefCell::new(Table {
                next_pid: FIRST_PID,
                procs: BTreeMap::new(),
                spawned: Vec::new(),
                killed: Vec::new(),
                movable: false,
                go: None,
            }),
            cache: RefCell::new(VecDeque::new()),
        }))
    }

    /// The system the runtime runs on.
    pub fn host(&self) -> &H {
        &self.host
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub fn linker(&self) -> &Linker<Ctx<H>> {
        &self.linker
    }

    /// The module of `bytes`, instrumented and compiled, or from the cache.
    pub fn compile(&self, bytes: &[u8]) -> Result<Compiled, LoadError> {
        let mut cache = self.cache.borrow_mut();
        let found = cache.iter().position(|(b, _)| b.as_slice() == bytes);
        if let Some(hit) = found.and_then(|at| cache.remove(at)) {
            let compiled = hit.1.clone();
            cache.push_back(hit);
            return Ok(compiled);
        }
        let compiled = engine::compile(&self.engine, bytes)?;
        if cache.len() == CACHED {
            cache.pop_front();
        }
        cache.push_back((bytes.to_vec(), compiled.clone()));
        Ok(compiled)
    }

    /// Loads a module as a new process of `parent`; returns the app for the
    /// scheduler, or why the module cannot run.
    pub fn load(self: &Rc<Self>, parent: u32, s: Spawn<'_>) -> Result<App<H>, LoadError> {
        let app = App::load(self, s)?;
        self.admit(parent, &app);
        Ok(app)
    }

    /// Lists `app` in the process table as a child of `parent`.
    pub fn admit(&self, parent: u32, app: &App<H>) {
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
    ) -> Result<u32, LoadError> {
        let pid = self.next_pid();
        let app = self.load(
            parent,
            Spawn {
                pid,
                bytes,
                args,
                grants: Vec::new(),
                memory_limit: memory_limit.unwrap_or(DEFAULT_MEMORY_LIMIT as usize),
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
