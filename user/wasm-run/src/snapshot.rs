//! Moving an app (PROTOCOL.md §19): the snapshot of an event app taken
//! between two event batches ([`capture`]), and the app made again from one
//! ([`restore`]).
//!
//! A snapshot carries the linear memory, the module's own mutable globals
//! (reachable through the exports the load-time instrumentation adds,
//! `weft_wasm_instrument::global_export`), and the host records: the app's
//! pid, arguments and memory cap, its descriptors, and its event
//! registrations ([`EventState::records`](crate::events::EventState::records)).
//! Its IPC descriptors follow it (a restore provides the service again,
//! opens a sending stream again, at the same numbers), and so do its UDP
//! sockets on fabric addresses (PROTOCOL.md §12.5: a restore binds the
//! same address again, at the same number, and the address's owner hands
//! the socket over); every other descriptor past the root (a file, a
//! directory, a TCP listener or connection, another UDP socket, a fabric
//! watch) is listed as `CLOSED`: the restored app finds its number closed
//! and is told by a `MOVED` event in its first batch, and its interest in
//! it is dropped. The interests in descriptors that follow go with them.
//!
//! A module that changes its tables or drops segments has its tables and
//! dropped segments in its snapshot too ([`crate::tables`]): each table's
//! size and entries as function indices, and which segments are dropped;
//! a restore grows and sets the tables of the fresh instance and drops
//! those segments again. Any other module's tables and segments are always
//! those of a fresh instance of it, which is what a restore makes, and its
//! snapshot has no tables or segments section.
//!
//! What an app must not hold to move: a fabric reply it has not read, a
//! table entry the snapshot cannot name (a function its module does not
//! export as a possible table element, or a non-null `externref`), or a
//! module with a start function (making the instance again would run it
//! again); and the
//! descriptors that follow it must be *settled*
//! ([`Fds::settle`](crate::fds::Fds::settle)): its services paused by the
//! monitor with every request taken answered, its sends' outcomes all
//! taken, its following UDP sockets paused by the monitor with every
//! datagram before the pause taken, nothing left for it to take. An app
//! that is not settled yet is [`CaptureError::Unsettled`]: the capture
//! waits for it ([`crate::mover`]).
//!
//! Invariants: a capture writes nothing unless the app may move, and
//! changes nothing in the app but what settling its descriptors takes
//! from their streams (kept for the app); a restore returns an idle event
//! app whose memory, globals, tables, dropped segments, descriptors and
//! registrations are the snapshot's, or an error saying what did not fit (the descriptors it made
//! are then closed with it).

use crate::app::{App, Run, Spawn};
use crate::engine::LoadError;
use crate::fds::{Fd, Unsettled};
use crate::host::{Host, UdpSocket, WasiResult};
use crate::ipc_end::IpcEnd;
use crate::system::System;
use crate::udp::UdpEnd;
use alloc::boxed::Box;
use alloc::collections::{BTreeMap, BTreeSet};
use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::net::SocketAddr;
use wasmi::Val;
use weft_control::app::errno;
use weft_control::ipc_proto::Guid;
use weft_control::snapshot::{
    self, ByteStrings, Descriptor, Global, HostRecord, Plan, SnapshotError, ValType, Writer,
};
use weft_wasm_instrument::global_export;

/// Why an app cannot be captured now.
#[derive(Debug)]
pub enum CaptureError {
    /// A command: it is inside its entry point until it ends.
    Command,
    /// It is inside a call (an event batch, its entry point).
    Busy,
    /// A descriptor that follows it is not settled yet: a move now would
    /// lose what this says.
    Unsettled(Unsettled),
    /// A fabric reply waits for it to read it.
    FabricReply,
    /// Its tables hold what a snapshot cannot carry
    /// ([`tables::CaptureError`](crate::tables::CaptureError)).
    Tables(crate::tables::CaptureError),
    /// Its module has a start function.
    Start,
    /// Its global of this index holds a value a snapshot cannot carry (a
    /// reference or a vector), or is not reachable.
    Global(u32),
    /// The snapshot could not be written (a bug: the writer refuses only
    /// what the rules of §19.1 refuse).
    Write(SnapshotError),
}

impl CaptureError {
    /// Whether waiting may cure it (the app is in a batch, or the
    /// descriptors that follow it are not settled yet): a capture waits,
    /// and fails only when its wait runs out.
    pub fn waits(&self) -> bool {
        matches!(self, Self::Busy | Self::Unsettled(_))
    }
}

impl fmt::Display for CaptureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Command => {
                f.write_str("a command cannot move: only an event app between batches")
            }
            Self::Busy => f.write_str("busy: it is handling events"),
            Self::Unsettled(what) => write!(f, "busy: {what}"),
            Self::FabricReply => f.write_str("a fabric reply waits for it to read it"),
            Self::Tables(e) => write!(f, "{e}"),
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
/// nothing that cannot move, the descriptors that follow it settled (see
/// the [module](self) docs); settling them may take what waits on their
/// streams (kept for the app).
pub fn capture<H: Host>(
    app: &mut App<H>,
    module: [u8; 32],
    sink: impl FnMut(&[u8]),
) -> Result<u64, CaptureError> {
    ready(app)?;
    let ctx = app.store.data();
    let globals = app
        .state
        .globals
        .iter()
        .map(|&index| global_of(app, index))
        .collect::<Result<Vec<_>, _>>()?;
    let memory = ctx.x.memory.map(|m| {
        let max = m.ty(&app.store).maximum();
        (m.data(&app.store), max.and_then(|p| u32::try_from(p).ok()))
    });
    let args: Vec<&[u8]> = ctx.args.iter().map(Vec::as_slice).collect();
    // The descriptors it holds, and those it has not been told about yet
    // since it was last moved (unless it holds that number again).
    let mut descriptors: BTreeMap<u32, Descriptor<'_>> = ctx.fds.moving().collect();
    for &(fd, what) in &ctx.events.moved {
        descriptors.entry(fd).or_insert(Descriptor::Closed { what });
    }
    let follows = |fd: u32| {
        descriptors
            .get(&fd)
            .is_some_and(|d| !matches!(d, Descriptor::Closed { .. }))
    };
    let mut host = alloc::vec![
        HostRecord::Pid(ctx.pid),
        HostRecord::Args(ByteStrings::new(&args)),
        HostRecord::MemoryLimit(app.memory_limit as u64),
    ];
    host.extend(
        descriptors
            .iter()
            .map(|(&fd, &kind)| HostRecord::Descriptor { fd, kind }),
    );
    // An interest in a descriptor that does not follow goes with it.
    let events = ctx.events.records(ctx.host.monotonic_ns());
    host.extend(
        events
            .into_iter()
            .filter(|r| !matches!(*r, HostRecord::Interest { fd, .. } if !follows(fd))),
    );
    let moved = crate::tables::capture(app).map_err(CaptureError::Tables)?;
    let (tables, segments) = (moved.tables(), moved.segments());
    let mut plan = Plan::new()
        .globals(&globals)
        .tables(&tables)
        .segments(&segments)
        .host(&host);
    if let Some((bytes, _)) = memory {
        plan = plan.memory(bytes);
    }
    let mut writer = Writer::new(sink);
    writer.header(module, &plan)?;
    if let Some((bytes, max)) = memory {
        writer.memory(bytes, max)?;
    }
    writer.globals(&globals)?;
    writer.tables(&tables)?;
    writer.segments(&segments)?;
    writer.host(&host)?;
    Ok(writer.finish()?)
}

/// Whether `app` may be captured now ([`capture`] checks it first): what
/// cannot move at all, then whether the descriptors that follow it are
/// settled (which may take what waits on their streams, kept for the app).
pub fn ready<H: Host>(app: &mut App<H>) -> Result<(), CaptureError> {
    may_move(app)?;
    app.store
        .data_mut()
        .fds
        .settle()
        .map_err(CaptureError::Unsettled)
}

/// Whether `app` may be captured now, but for the descriptors that follow
/// it.
fn may_move<H: Host>(app: &App<H>) -> Result<(), CaptureError> {
    if !app.event_app {
        return Err(CaptureError::Command);
    }
    if !matches!(app.run, Run::Idle) {
        return Err(CaptureError::Busy);
    }
    if app.state.start {
        return Err(CaptureError::Start);
    }
    if app.store.data().fabric_reply.is_some() {
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
    /// Its service descriptor `fd` (service `guid`, shown as `name`) could
    /// not be provided here: `ipc_serve` failed with `errno` (`EACCES`:
    /// this device's registry does not let the app provide it).
    Serve {
        fd: u32,
        guid: Guid,
        name: String,
        errno: i32,
    },
    /// Its sending descriptor `fd` could not be opened here (`errno`).
    Open { fd: u32, errno: i32 },
    /// Its UDP socket `fd` on `addr` could not be bound here: `udp_bind`
    /// failed with `errno`.
    Udp {
        fd: u32,
        addr: SocketAddr,
        errno: i32,
    },
    /// Its UDP socket `fd` on `addr` was bound here, but does not follow
    /// the app (`BOUND` did not say `FOLLOWS`: `addr` is no fabric address
    /// here), so it is not the socket the app held.
    UdpStays { fd: u32, addr: SocketAddr },
    /// It has an interest in descriptor `fd`, which it does not hold.
    Interest { fd: u32 },
    /// Its tables or dropped segments do not fit the module
    /// ([`tables::RestoreError`](crate::tables::RestoreError)).
    Tables(crate::tables::RestoreError),
}

/// What an errno of `udp_bind` means, for a report.
fn udp_refusal(e: i32) -> &'static str {
    match e {
        errno::ACCES => "it is not granted (NotAllowed)",
        errno::ADDRINUSE => "the address is in use",
        errno::HOSTUNREACH => "the address's owner cannot be reached",
        _ => "the UDP stream failed",
    }
}

/// What an errno of `ipc_serve` or `ipc_open` means, for a report.
fn ipc_refusal(e: i32) -> &'static str {
    match e {
        errno::ACCES => "this device's registry does not let it provide the service (Denied)",
        errno::NOTCAPABLE => "this guest is no device of a fabric",
        errno::INVAL => "the monitor refused it as invalid",
        _ => "the IPC stream failed",
    }
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
            Self::Serve {
                fd,
                guid,
                name,
                errno,
            } => write!(
                f,
                "its service descriptor {fd} ({name}, {guid}) cannot be provided here: {} (errno {errno})",
                ipc_refusal(*errno)
            ),
            Self::Open { fd, errno } => write!(
                f,
                "its sending descriptor {fd} cannot be opened here: {} (errno {errno})",
                ipc_refusal(*errno)
            ),
            Self::Udp { fd, addr, errno } => write!(
                f,
                "its UDP socket {fd} on {addr} could not be bound here: {} (errno {errno})",
                udp_refusal(*errno)
            ),
            Self::UdpStays { fd, addr } => write!(
                f,
                "its UDP socket {fd} on {addr} does not follow here ({addr} is no fabric address here)"
            ),
            Self::Tables(e) => write!(f, "{e}"),
            Self::Interest { fd } => {
                write!(
                    f,
                    "it has an interest in descriptor {fd}, which it does not hold"
                )
            }
        }
    }
}

impl core::error::Error for RestoreError {}

impl From<SnapshotError> for RestoreError {
    fn from(e: SnapshotError) -> Self {
        Self::Snapshot(e)
    }
}

/// How much of a snapshot a restore checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Checking {
    /// All of it.
    Whole,
    /// All but its checksum, which the monitor that handed it over checked
    /// (§19.3): over a large memory, computing it again in the guest is
    /// the restore's longest step.
    Summed,
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
    grants: Vec<SocketAddr>,
) -> Result<App<H>, RestoreError> {
    let snapshot = (snapshot, Checking::Whole);
    restore_checked(system, parent, bytes, module, snapshot, grants)
}

/// [`restore`], checking the snapshot as `checking` says.
pub fn restore_checked<H: Host>(
    system: &Rc<System<H>>,
    parent: u32,
    bytes: &[u8],
    module: [u8; 32],
    (snapshot, checking): (&[u8], Checking),
    grants: Vec<SocketAddr>,
) -> Result<App<H>, RestoreError> {
    let contents = match checking {
        Checking::Whole => snapshot::read(snapshot)?,
        Checking::Summed => snapshot::read_summed(snapshot)?,
    };
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
    crate::tables::restore(&mut app, &contents.tables, &contents.segments)
        .map_err(RestoreError::Tables)?;
    let now = system.host().monotonic_ns();
    // Descriptors come before interests (records ascend by kind).
    let mut closed = BTreeSet::new();
    for record in contents.host.iter() {
        match record {
            HostRecord::Pid(_) | HostRecord::Args(_) | HostRecord::MemoryLimit(_) => {}
            HostRecord::Descriptor { fd, kind } => {
                descriptor(&mut app, fd, kind, &mut closed)?;
            }
            // Dropped with the descriptor that did not follow.
            HostRecord::Interest { fd, .. } if closed.contains(&fd) => {}
            HostRecord::Interest { fd, .. } if !app.store.data_mut().fds.follows(fd as i32) => {
                return Err(RestoreError::Interest { fd });
            }
            _ => {
                if !app.store.data_mut().events.restore(&record, now) {
                    return Err(RestoreError::Record(record.kind()));
                }
            }
        }
    }
    system.admit(parent, &app);
    Ok(app)
}

/// Makes `app`'s descriptor `fd` again as `kind` says: an IPC end provided
/// or opened here, or a UDP socket bound here on the same address and
/// following the app, at that number; or, for one that did not follow, the
/// number closed, the app to be told (`MOVED`), and `fd` added to `closed`.
fn descriptor<H: Host>(
    app: &mut App<H>,
    fd: u32,
    kind: Descriptor<'_>,
    closed: &mut BTreeSet<u32>,
) -> Result<(), RestoreError> {
    let ctx = app.store.data_mut();
    let host = ctx.host.clone();
    let end = match kind {
        Descriptor::IpcService { guid, name } => {
            let service = host
                .ipc_serve(guid, name)
                .map_err(|errno| RestoreError::Serve {
                    fd,
                    guid,
                    name: name.into(),
                    errno,
                })?;
            Fd::Ipc(Box::new(IpcEnd::service(service, guid, name.into())))
        }
        Descriptor::IpcSender => {
            let sender = host
                .ipc_open()
                .map_err(|errno| RestoreError::Open { fd, errno })?;
            Fd::Ipc(Box::new(IpcEnd::sender(sender)))
        }
        Descriptor::Closed { what } => {
            ctx.fds.close_at(fd);
            ctx.events.moved.push((fd, what));
            closed.insert(fd);
            return Ok(());
        }
        Descriptor::Udp { .. } => {
            // `Some` for every `Udp` descriptor.
            let addr = kind
                .socket_addr()
                .ok_or(RestoreError::Record(snapshot::record::DESCRIPTOR))?;
            Fd::Udp(Box::new(UdpEnd::new(rebind(&host, fd, addr)?)))
        }
    };
    // The reader admits only numbers from 4 to 2^31-1.
    let put: WasiResult<()> = ctx.fds.insert_at(fd, end);
    put.map_err(|_| RestoreError::Record(snapshot::record::DESCRIPTOR))
}

/// UDP socket `fd` of a restored app bound on `addr` again, following it.
fn rebind<H: Host>(host: &H, fd: u32, addr: SocketAddr) -> Result<H::Udp, RestoreError> {
    let socket = host
        .udp_bind(addr)
        .map_err(|errno| RestoreError::Udp { fd, addr, errno })?;
    if !socket.follows() {
        return Err(RestoreError::UdpStays { fd, addr });
    }
    Ok(socket)
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
        .x
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
