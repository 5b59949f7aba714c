//! Moving an app (PROTOCOL.md §19): the snapshot of an event app taken
//! between two event batches ([`capture`]), and the app made again from one
//! ([`restore`]).
//!
//! A snapshot carries the linear memory, the module's own mutable globals
//! (reachable through the exports the load-time instrumentation adds,
//! `weft_wasm_instrument::global_export`), and the host records: the app's
//! pid, arguments and memory cap, and its event registrations
//! ([`EventState::records`](crate::events::EventState::records)). What it
//! does not carry yet, and so what an app must not hold to move: a
//! descriptor past the root directory (a file, a socket, an IPC end, a
//! watch), a fabric reply it has not read, or a module that changes its
//! tables or drops segments, or one with a start function (making the
//! instance again would run it again). The tables and segments of an app
//! that may move are therefore always those of a fresh instance of its
//! module, which is what a restore makes.
//!
//! Invariants: a capture changes nothing in the app and writes nothing
//! unless the app may move; a restore returns an idle event app whose
//! memory, globals and registrations are the snapshot's, or an error saying
//! what did not fit.

use crate::app::{App, Run, Spawn};
use crate::engine::LoadError;
use crate::host::Host;
use crate::system::System;
use alloc::rc::Rc;
use alloc::vec::Vec;
use core::fmt;
use wasmi::Val;
use weft_control::snapshot::{
    self, ByteStrings, Global, HostRecord, Plan, SnapshotError, ValType, Writer,
};
use weft_wasm_instrument::global_export;

/// Why an app cannot be captured now.
#[derive(Debug)]
pub enum CaptureError {
    /// A command: it is inside its entry point until it ends.
    Command,
    /// It is inside a call (an event batch, its entry point).
    Busy,
    /// It holds this descriptor, which cannot move.
    Holds(i32),
    /// A fabric reply waits for it to read it.
    FabricReply,
    /// Its module changes a table or drops a segment.
    ChangesTables,
    /// Its module has a start function.
    Start,
    /// Its global of this index holds a value a snapshot cannot carry (a
    /// reference or a vector), or is not reachable.
    Global(u32),
    /// The snapshot could not be written (a bug: the writer refuses only
    /// what the rules of §19.1 refuse).
    Write(SnapshotError),
}

impl fmt::Display for CaptureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Command => {
                f.write_str("a command cannot move: only an event app between batches")
            }
            Self::Busy => f.write_str("busy: it is handling events"),
            Self::Holds(fd) => write!(
                f,
                "it holds descriptor {fd} (a file, socket, IPC end or watch), which cannot move yet"
            ),
            Self::FabricReply => f.write_str("a fabric reply waits for it to read it"),
            Self::ChangesTables => f.write_str(
                "its module changes its tables or drops segments, which a move cannot carry yet",
            ),
            Self::Start => f.write_str(
                "its module has a start function, which would run again at the destination",
            ),
            Self::Global(index) => write!(f, "its global {index} holds a value that cannot move"),
            Self::Write(e) => write!(f, "cannot write its snapshot: {e}"),
        }
    }
}

impl core::error::Error for CaptureError {}

impl From<SnapshotError> for CaptureError {
    fn from(e: SnapshotError) -> Self {
        Self::Write(e)
    }
}

/// Writes the snapshot of `app`, whose module's SHA-256 is `module`, to
/// `sink`; returns its length. The app must be an idle event app holding
/// nothing that cannot move (see the [module](self) docs).
pub fn capture<H: Host>(
    app: &App<H>,
    module: [u8; 32],
    sink: impl FnMut(&[u8]),
) -> Result<u64, CaptureError> {
    may_move(app)?;
    let ctx = app.store.data();
    let globals = app
        .state
        .globals
        .iter()
        .map(|&index| global_of(app, index))
        .collect::<Result<Vec<_>, _>>()?;
    let memory = ctx.memory.map(|m| {
        let max = m.ty(&app.store).maximum();
        (m.data(&app.store), max.and_then(|p| u32::try_from(p).ok()))
    });
    let args: Vec<&[u8]> = ctx.args.iter().map(Vec::as_slice).collect();
    let mut host = alloc::vec![
        HostRecord::Pid(ctx.pid),
        HostRecord::Args(ByteStrings::new(&args)),
        HostRecord::MemoryLimit(app.memory_limit as u64),
    ];
    host.extend(ctx.events.records(ctx.system.host().monotonic_ns()));
    let mut plan = Plan::new().globals(&globals).host(&host);
    if let Some((bytes, _)) = memory {
        plan = plan.memory(bytes);
    }
    let mut writer = Writer::new(sink);
    writer.header(module, &plan)?;
    if let Some((bytes, max)) = memory {
        writer.memory(bytes, max)?;
    }
    writer.globals(&globals)?;
    writer.host(&host)?;
    Ok(writer.finish()?)
}

/// Whether `app` may be captured now.
fn may_move<H: Host>(app: &App<H>) -> Result<(), CaptureError> {
    if !app.event_app {
        return Err(CaptureError::Command);
    }
    if !matches!(app.run, Run::Idle) {
        return Err(CaptureError::Busy);
    }
    if app.state.changes_tables {
        return Err(CaptureError::ChangesTables);
    }
    if app.state.start {
        return Err(CaptureError::Start);
    }
    let ctx = app.store.data();
    if let Some(fd) = ctx.fds.first_held() {
        return Err(CaptureError::Holds(fd));
    }
    if ctx.fabric_reply.is_some() {
        return Err(CaptureError::FabricReply);
    }
    Ok(())
}

/// The value of `app`'s global `index`, for its snapshot.
fn global_of<H: Host>(app: &App<H>, index: u32) -> Result<Global, CaptureError> {
    let global = app
        .instance
        .get_global(&app.store, &global_export(index))
        .ok_or(CaptureError::Global(index))?;
    let (ty, bits) = match global.get(&app.store) {
        Val::I32(v) => (ValType::I32, u64::from(v as u32)),
        Val::I64(v) => (ValType::I64, v as u64),
        Val::F32(v) => (ValType::F32, u64::from(v.to_bits())),
        Val::F64(v) => (ValType::F64, v.to_bits()),
        _ => return Err(CaptureError::Global(index)),
    };
    Ok(Global { index, ty, bits })
}

/// Why a snapshot cannot be restored.
#[derive(Debug)]
pub enum RestoreError {
    /// It is not a valid snapshot.
    Snapshot(SnapshotError),
    /// It holds an instance of another module than the one given.
    OtherModule,
    /// The module cannot run as an app.
    Load(LoadError),
    /// Its memory does not fit the module's (`pages`, in Wasm pages).
    Memory { pages: u32 },
    /// Its global `index` is not one of the module's mutable globals, or
    /// has another type.
    Global(u32),
    /// A host record of this kind that a restore cannot take (yet).
    Record(u16),
    /// It has no `PID` or no `ARGS` record.
    Missing(&'static str),
    /// Its pid names a process that runs here already.
    PidTaken(u32),
    /// Its module has a start function, which making the app would run.
    Start,
}

impl fmt::Display for RestoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Snapshot(e) => write!(f, "not a usable snapshot: {e}"),
            Self::OtherModule => f.write_str("the snapshot is of another module"),
            Self::Load(e) => write!(f, "cannot load its module: {e}"),
            Self::Memory { pages } => {
                write!(f, "its memory of {pages} pages does not fit the module's")
            }
            Self::Global(index) => write!(f, "its global {index} does not fit the module's"),
            Self::Record(kind) => write!(f, "its host record of kind {kind} cannot be restored"),
            Self::Missing(what) => write!(f, "it has no {what} record"),
            Self::PidTaken(pid) => write!(f, "process {pid} runs here already"),
            Self::Start => f.write_str("its module has a start function, which would run again"),
        }
    }
}

impl core::error::Error for RestoreError {}

impl From<SnapshotError> for RestoreError {
    fn from(e: SnapshotError) -> Self {
        Self::Snapshot(e)
    }
}

/// Makes an idle app of module `bytes` (whose SHA-256 is `module`) from
/// `snapshot`, in `system`, with the listeners `grants` of this device
/// preopened (as for a first app, §13.1); registers it as a child of
/// `parent`.
pub fn restore<H: Host>(
    system: &Rc<System<H>>,
    parent: u32,
    bytes: &[u8],
    module: [u8; 32],
    snapshot: &[u8],
    grants: Vec<core::net::SocketAddr>,
) -> Result<App<H>, RestoreError> {
    let contents = snapshot::read(snapshot)?;
    if contents.header.module != module {
        return Err(RestoreError::OtherModule);
    }
    let mut pid = None;
    let mut args = None;
    let mut memory_limit = weft_control::app::DEFAULT_MEMORY_LIMIT as usize;
    for record in contents.host.iter() {
        match record {
            HostRecord::Pid(p) => pid = Some(p),
            HostRecord::Args(list) => args = Some(list.iter().map(<[u8]>::to_vec).collect()),
            HostRecord::MemoryLimit(limit) => {
                memory_limit = usize::try_from(limit).unwrap_or(usize::MAX);
            }
            _ => {}
        }
    }
    let pid = pid.ok_or(RestoreError::Missing("PID"))?;
    if system.table.borrow().procs.contains_key(&pid) {
        return Err(RestoreError::PidTaken(pid));
    }
    if system
        .compile(bytes)
        .map_err(RestoreError::Load)?
        .state
        .start
    {
        return Err(RestoreError::Start);
    }
    let spawn = Spawn {
        pid,
        bytes,
        args: args.ok_or(RestoreError::Missing("ARGS"))?,
        grants,
        memory_limit,
    };
    let mut app = App::load(system, spawn).map_err(RestoreError::Load)?;
    app.run = Run::Idle;
    if let Some(view) = &contents.memory {
        fill_memory(&mut app, view)?;
    }
    for global in contents.globals.iter() {
        set_global(&mut app, global)?;
    }
    let now = system.host().monotonic_ns();
    for record in contents.host.iter() {
        // An interest names a descriptor, and none moves yet.
        let taken = match record {
            HostRecord::Pid(_) | HostRecord::Args(_) | HostRecord::MemoryLimit(_) => true,
            HostRecord::Interest { .. } => false,
            _ => app.store.data_mut().events.restore(&record, now),
        };
        if !taken {
            return Err(RestoreError::Record(record.kind()));
        }
    }
    system.admit(parent, &app);
    Ok(app)
}

/// Grows `app`'s memory to the snapshot's size and copies it in.
fn fill_memory<H: Host>(
    app: &mut App<H>,
    view: &snapshot::MemoryView<'_>,
) -> Result<(), RestoreError> {
    let pages = view.pages();
    let misfit = RestoreError::Memory { pages };
    let memory = app
        .store
        .data()
        .memory
        .ok_or(RestoreError::Memory { pages })?;
    let now = memory.size(&app.store);
    let more = u64::from(pages).checked_sub(now).ok_or(misfit)?;
    if more > 0 {
        memory
            .grow(&mut app.store, more)
            .map_err(|_| RestoreError::Memory { pages })?;
    }
    snapshot::restore_memory(view, memory.data_mut(&mut app.store))?;
    Ok(())
}

/// Sets `app`'s global as the snapshot has it.
fn set_global<H: Host>(app: &mut App<H>, g: Global) -> Result<(), RestoreError> {
    let misfit = RestoreError::Global(g.index);
    if !app.state.globals.contains(&g.index) {
        return Err(misfit);
    }
    let global = app
        .instance
        .get_global(&app.store, &global_export(g.index))
        .ok_or(RestoreError::Global(g.index))?;
    let value = match g.ty {
        ValType::I32 => Val::I32(g.bits as u32 as i32),
        ValType::I64 => Val::I64(g.bits as i64),
        ValType::F32 => Val::F32(wasmi::F32::from_bits(g.bits as u32)),
        ValType::F64 => Val::F64(wasmi::F64::from_bits(g.bits)),
    };
    global.set(&mut app.store, value).map_err(|_| misfit)
}
