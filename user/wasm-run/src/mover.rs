//! The runtime's side of the move stream (PROTOCOL.md §19.3): how the first
//! app begins ([`begin`]: afresh from its module, or restored from a
//! snapshot), and its captures between two event batches ([`Moves`], which
//! the scheduler consults at the start of every round).
//!
//! A capture the monitor orders waits until the first app is idle (between
//! two batches, before it is given new events) and the descriptors that
//! follow it are settled (its services and its UDP sockets on fabric
//! addresses paused by the monitor, every request it took answered, every
//! outcome of its sends and every datagram before the pause taken:
//! [`snapshot::ready`]; the app goes on running its batches meanwhile, and
//! each moment between two of them is checked again, the streams that are
//! to bring a `PAUSED` waking the runtime), then the app's snapshot goes
//! out in
//! `CAPTURE_PART` frames of [`PART`] bytes (the last one fewer) and `CAPTURED`; or
//! `FAILED` says why it cannot move, `busy: ...` with what is not settled
//! when the order's wait ran out first. A captured app is *held*: the runtime waits
//! for the next order and runs nothing meanwhile (a capture needs the first
//! app to be the only one, so nothing else could run); `RELEASE` lets the
//! app go on with the events that waited (its paused streams then say
//! `RESUMED`, and their datagrams come again), `END` ends the runtime.
//!
//! Invariants: every frame the monitor sends is decoded and checked here,
//! and nothing it sends panics the runtime; a protocol violation or a
//! failed stream is reported on standard error and ends the moves, never
//! the app (a held app is released), except during a restore, which then
//! fails; at most one capture is answered at a time, and only the first
//! app ([`FIRST_PID`]) moves.

use crate::app::{App, Run};
use crate::host::{Host, Mover, OrderFrame};
use crate::snapshot;
use crate::system::System;
use alloc::boxed::Box;
use alloc::format;
use alloc::rc::Rc;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;
use core::net::SocketAddr;
use weft_control::app::FIRST_PID;
use weft_control::frame::{HEADER, Header};
use weft_control::move_proto::{MAX_SMALL, Order, PART, Report, kind};

/// How the first app begins, as the monitor said.
pub enum Begin<H: Host> {
    /// Make it from its module, as spawned; it may move later.
    Start(Moves<H>),
    /// It was restored from a snapshot (idle, its entry point not run);
    /// it may move again later.
    Restored(Box<App<H>>, Moves<H>),
    /// No move stream (refused, or it failed or broke the protocol, which
    /// was reported): make the app from its module; it cannot move.
    WithoutMoves,
    /// The restore failed (answered `FAILED` and reported): the runtime
    /// exits with `UNUSABLE`.
    Unusable,
}

/// What the scheduler does after [`Moves::between`].
pub enum Next {
    /// Go on with the round.
    Run,
    /// Go on without moves: the stream failed or the monitor broke the
    /// protocol (reported). A held app was released.
    WithoutMoves,
    /// The app moved (`END`): the runtime exits with status 0.
    Moved,
}

/// The move stream of a runtime whose first app may move.
pub struct Moves<H: Host> {
    host: H,
    mover: H::Mover,
    /// The SHA-256 of the first app's module, which its snapshots name.
    module: [u8; 32],
    /// The capture ordered and not answered yet.
    capture: Option<Pending>,
}

/// A capture waiting for the first app to be between two batches.
#[derive(Clone, Copy)]
struct Pending {
    /// When its wait runs out (monotonic nanoseconds).
    deadline: u64,
    /// The wait it was ordered with.
    wait_ms: u32,
}

/// How a capture was answered.
enum Answer {
    /// The app is captured, and held.
    Captured,
    /// `FAILED` said why not; the app goes on.
    Failed,
    /// Not yet: the app is not settled, and the capture's wait goes on.
    Waits,
}

/// Why the moves end.
enum Broken {
    /// The stream failed or ended.
    Stream(String),
    /// The monitor sent what the protocol does not allow here.
    Protocol(String),
}

impl fmt::Display for Broken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Stream(why) => write!(f, "the move stream failed: {why}"),
            Self::Protocol(why) => write!(f, "the monitor broke the move protocol: {why}"),
        }
    }
}

/// Opens the move stream and follows its first order for the first app,
/// the module `bytes` run as `name` with the listeners `grants`: a start,
/// or a restore (answered `RESTORED` or `FAILED`).
pub fn begin<H: Host>(
    system: &Rc<System<H>>,
    bytes: &[u8],
    name: &str,
    grants: &[SocketAddr],
) -> Begin<H> {
    let host = system.host();
    // Compiled before the first order is awaited, so that it overlaps the
    // snapshot's journey (a prepared runtime, §19.4) or the monitor's
    // answer; a module that does not compile is refused by the load or the
    // restore that follows, which find it in the cache otherwise.
    let _ = system.compile(bytes);
    let Some(mut mover) = host.mover() else {
        return Begin::WithoutMoves;
    };
    let mut frame = match mover.order() {
        Ok(frame) => frame,
        Err(e) => return without_moves(host, name, &Broken::Stream(e)),
    };
    if let Ok(Order::Prepare { len }) = decode(&frame) {
        warm(len);
        host.ready_code();
        // For the app's next move: its capture writes its parts there.
        mover.ready_send();
        let next = send::<H>(&mut mover, Report::Ready)
            .and_then(|()| mover.order().map_err(Broken::Stream));
        frame = match next {
            Ok(frame) => frame,
            Err(broken) => return without_moves(host, name, &broken),
        };
    }
    match decode(&frame) {
        Ok(Order::Start { module }) => Begin::Start(Moves::new(host, mover, module)),
        Ok(Order::Restore { module, len }) => {
            let made = receive::<H>(&mut mover, len)
                .and_then(|snap| restore_first(system, bytes, module, &snap, grants));
            restored(system, mover, made, module, name)
        }
        Ok(other) => {
            let broken = unexpected(&other, "where START or RESTORE was due");
            without_moves(host, name, &broken)
        }
        Err(broken) => without_moves(host, name, &broken),
    }
}

/// How much fresh heap [`warm`] touches at most, beyond the estimate, and
/// at least (less is not worth it).
const WARM_MAX: usize = 320 << 20;
const WARM_SLACK: usize = 4 << 20;
const WARM_MIN: usize = 1 << 20;

/// Readies the memory a restore needs, `len` being the source's estimate
/// of it (what the app's last restore needed, or what its runtime was
/// given, §19.4): the snapshot's buffer, the app's linear memory as the
/// module makes it and as it grows to the snapshot's size (a copy, while
/// both are live). Touches that much fresh heap and [`WARM_SLACK`] more
/// (at most [`WARM_MAX`]; halved until the guest has it) and frees it, so
/// that the restore reuses memory this process has touched already: the
/// first touch of a page costs ~30 µs on a machine with shadow paging
/// (the host builds its entry), which made a 1 MiB app's restore take
/// ~25 ms while the app was away (PROTOCOL.md §19.3). The monitor captures
/// the app at the source only once this is done (`READY`).
fn warm(len: u64) {
    let mut want = usize::try_from(len)
        .unwrap_or(usize::MAX)
        .saturating_add(WARM_SLACK)
        .min(WARM_MAX);
    let mut heap: Vec<u8> = Vec::new();
    while heap.try_reserve_exact(want).is_err() {
        want /= 2;
        if want < WARM_MIN {
            return;
        }
    }
    heap.resize(want, 0);
    core::hint::black_box(&heap);
}

/// Reports why the app begins without moves.
fn without_moves<H: Host>(host: &H, name: &str, broken: &Broken) -> Begin<H> {
    give_up(host, name, broken);
    Begin::WithoutMoves
}

/// Reports that the moves end, and why.
fn give_up<H: Host>(host: &H, name: &str, broken: &Broken) {
    host.report(format_args!("weft: {name}: cannot move any more: {broken}"));
}

/// Answers a restore of the first app (of the module whose SHA-256 is
/// `module`): `made`, or why not.
fn restored<H: Host>(
    system: &Rc<System<H>>,
    mut mover: H::Mover,
    made: Result<App<H>, String>,
    module: [u8; 32],
    name: &str,
) -> Begin<H> {
    let answer = match &made {
        Ok(_) => Report::Restored,
        Err(why) => Report::Failed(why),
    };
    let sent = send::<H>(&mut mover, answer);
    let host = system.host();
    match (made, sent) {
        (Ok(app), Ok(())) => Begin::Restored(Box::new(app), Moves::new(host, mover, module)),
        // The monitor never learns that the app runs here: it must not.
        (Ok(_), Err(broken)) => {
            host.report(format_args!("weft: {name}: cannot restore: {broken}"));
            Begin::Unusable
        }
        (Err(why), _) => {
            host.report(format_args!("weft: {name}: cannot restore: {why}"));
            Begin::Unusable
        }
    }
}

/// Reads the `len` bytes of a snapshot from the parts that follow a
/// `RESTORE`; why not, if they do not carry exactly that.
fn receive<H: Host>(mover: &mut H::Mover, len: u64) -> Result<Vec<u8>, String> {
    let too_big = || format!("its snapshot of {len} bytes does not fit in memory");
    let len = usize::try_from(len).map_err(|_| too_big())?;
    let mut snap = Vec::new();
    snap.try_reserve_exact(len).map_err(|_| too_big())?;
    while snap.len() < len {
        let frame = mover.order().map_err(|e| Broken::Stream(e).to_string())?;
        match decode(&frame).map_err(|b| b.to_string())? {
            Order::Part(part) if part.len() <= len - snap.len() => snap.extend_from_slice(part),
            Order::Part(_) => {
                let broken = Broken::Protocol(format!("parts of more than the {len} bytes stated"));
                return Err(broken.to_string());
            }
            other => return Err(unexpected(&other, "inside a restore's parts").to_string()),
        }
    }
    Ok(snap)
}

/// The first app made from `snap`; why not.
fn restore_first<H: Host>(
    system: &Rc<System<H>>,
    bytes: &[u8],
    module: [u8; 32],
    snap: &[u8],
    grants: &[SocketAddr],
) -> Result<App<H>, String> {
    // The restored app is the runtime's first: the apps it spawns take the
    // process ids after it.
    let first = system.next_pid();
    // The monitor checked the snapshot whole before it sent it.
    let snap = (snap, snapshot::Checking::Summed);
    let app = snapshot::restore_checked(system, 0, bytes, module, snap, grants.to_vec())
        .map_err(|e| e.to_string())?;
    if app.pid() != first {
        return Err(format!(
            "its app is process {}, not a runtime's first ({first})",
            app.pid()
        ));
    }
    Ok(app)
}

impl<H: Host> Moves<H> {
    fn new(host: &H, mover: H::Mover, module: [u8; 32]) -> Self {
        Self {
            host: host.clone(),
            mover,
            module,
            capture: None,
        }
    }

    /// At the start of a round, between two batches of every app: hands
    /// the monitor the first app's own request to move to `go` (`GO`),
    /// takes the orders that came, answers a capture the first app is
    /// ready for (or whose wait ran out), and holds a captured app until
    /// the next order. `apps` are the runtime's apps.
    pub fn between(&mut self, apps: &mut [App<H>], go: Option<&str>) -> Next {
        let asked = match go {
            Some(to) => send::<H>(&mut self.mover, Report::Go(to)),
            None => Ok(()),
        };
        match asked.and_then(|()| self.follow(apps)) {
            Ok(next) => next,
            Err(broken) => {
                let name = first(apps).map_or("module", |a| a.name.as_str());
                give_up(&self.host, name, &broken);
                Next::WithoutMoves
            }
        }
    }

    /// What the scheduler waits on for the next order: the stream, and when
    /// the wait of a capture runs out.
    pub fn waits(&mut self) -> (&mut H::Stream, Option<u64>) {
        (self.mover.stream(), self.capture.map(|c| c.deadline))
    }

    /// Whether a capture was ordered and is not answered yet (it waits for
    /// the first app to be between batches, with the descriptors that
    /// follow it settled).
    pub fn capturing(&self) -> bool {
        self.capture.is_some()
    }

    fn follow(&mut self, apps: &mut [App<H>]) -> Result<Next, Broken> {
        let now = self.host.monotonic_ns();
        while let Some(frame) = self.mover.try_order().map_err(Broken::Stream)? {
            match (decode(&frame)?, self.capture) {
                (Order::Capture { wait_ms }, None) => {
                    let wait_ns = u64::from(wait_ms) * 1_000_000;
                    self.capture = Some(Pending {
                        deadline: now.saturating_add(wait_ns),
                        wait_ms,
                    });
                }
                (other, None) => return Err(unexpected(&other, "where only CAPTURE may come")),
                (other, Some(_)) => return Err(unexpected(&other, "while a capture is answered")),
            }
        }
        let others = apps.len().saturating_sub(1);
        let (Some(pending), Some(app)) = (self.capture, first_mut(apps)) else {
            return Ok(Next::Run);
        };
        let waiting = now < pending.deadline;
        // A command is never between batches: it is answered at once.
        if app.event_app && !matches!(app.run, Run::Idle) && waiting {
            return Ok(Next::Run);
        }
        match self.answer(app, others, pending.wait_ms, waiting)? {
            Answer::Waits => Ok(Next::Run),
            Answer::Failed => {
                self.capture = None;
                Ok(Next::Run)
            }
            Answer::Captured => {
                self.capture = None;
                self.hold()
            }
        }
    }

    /// Captures `app`, which has `others` apps beside it, or says why it
    /// cannot move; or, if it is not settled yet and the capture is still
    /// `waiting`, leaves the capture for the next moment between batches.
    fn answer(
        &mut self,
        app: &mut App<H>,
        others: usize,
        wait_ms: u32,
        waiting: bool,
    ) -> Result<Answer, Broken> {
        let checked = if others > 0 && matches!(app.run, Run::Idle) {
            Err(format!(
                "it has {others} child apps running, which cannot move"
            ))
        } else {
            match snapshot::ready(app) {
                Ok(()) => Ok(()),
                Err(e) if e.waits() && waiting => return Ok(Answer::Waits),
                Err(e) if e.waits() => Err(format!("{e} (waited {wait_ms} ms)")),
                Err(e) => Err(e.to_string()),
            }
        };
        let why = match checked {
            Ok(()) => {
                let mut parts = Parts::<H>::new(&mut self.mover);
                match snapshot::capture(app, self.module, |b| parts.write(b)) {
                    Ok(len) => {
                        parts.finish().map_err(Broken::Stream)?;
                        send::<H>(&mut self.mover, Report::Captured { len })?;
                        return Ok(Answer::Captured);
                    }
                    // Something came on a stream since: nothing was written.
                    Err(e) if e.waits() && waiting => return Ok(Answer::Waits),
                    Err(e) if e.waits() => format!("{e} (waited {wait_ms} ms)"),
                    Err(e) => e.to_string(),
                }
            }
            Err(why) => why,
        };
        send::<H>(&mut self.mover, Report::Failed(&why))?;
        Ok(Answer::Failed)
    }

    /// Waits for what becomes of the held app.
    fn hold(&mut self) -> Result<Next, Broken> {
        let frame = self.mover.order().map_err(Broken::Stream)?;
        match decode(&frame)? {
            Order::Release => Ok(Next::Run),
            Order::End => Ok(Next::Moved),
            other => Err(unexpected(&other, "while the app is held")),
        }
    }
}

/// The runtime's first app, among `apps`.
fn first<H: Host>(apps: &[App<H>]) -> Option<&App<H>> {
    apps.iter().find(|a| a.pid() == FIRST_PID)
}

/// The runtime's first app, among `apps`, to capture.
fn first_mut<H: Host>(apps: &mut [App<H>]) -> Option<&mut App<H>> {
    apps.iter_mut().find(|a| a.pid() == FIRST_PID)
}

/// The order `frame` holds.
fn decode(frame: &OrderFrame) -> Result<Order<'_>, Broken> {
    Order::decode(frame.kind, &frame.body)
        .map_err(|e| Broken::Protocol(format!("a frame that does not decode: {e}")))
}

/// A violation: `order` came `when` (where it may not).
fn unexpected(order: &Order<'_>, when: &str) -> Broken {
    let name = match order {
        Order::Start { .. } => "START",
        Order::Restore { .. } => "RESTORE",
        Order::Part(_) => "RESTORE_PART",
        Order::Capture { .. } => "CAPTURE",
        Order::Release => "RELEASE",
        Order::End => "END",
        Order::Prepare { .. } => "PREPARE",
    };
    Broken::Protocol(format!("{name} {when}"))
}

/// Sends a report other than a part.
fn send<H: Host>(mover: &mut H::Mover, report: Report<'_>) -> Result<(), Broken> {
    let mut frame = [0u8; MAX_SMALL];
    let n = report
        .encode(&mut frame)
        .ok_or_else(|| Broken::Stream("a report does not fit its frame".into()))?;
    mover.send(&frame[..n]).map_err(Broken::Stream)
}

/// A capture's sink: its bytes in `CAPTURE_PART` frames of [`PART`]
/// bytes, the last one shorter, each built in place and sent when full.
/// The first failed send is kept, and nothing is sent after it.
struct Parts<'m, H: Host> {
    mover: &'m mut H::Mover,
    /// The frame being filled: a header's room, then its body.
    frame: Vec<u8>,
    failed: Option<String>,
}

impl<'m, H: Host> Parts<'m, H> {
    fn new(mover: &'m mut H::Mover) -> Self {
        let mut frame = Vec::with_capacity(HEADER + PART);
        frame.resize(HEADER, 0);
        Self {
            mover,
            frame,
            failed: None,
        }
    }

    fn write(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() && self.failed.is_none() {
            let room = HEADER + PART - self.frame.len();
            let (now, later) = bytes.split_at(room.min(bytes.len()));
            self.frame.extend_from_slice(now);
            bytes = later;
            if self.frame.len() == HEADER + PART {
                self.flush();
            }
        }
    }

    /// Sends the frame filled so far, if it has a body.
    fn flush(&mut self) {
        let len = self.frame.len() - HEADER;
        if len == 0 || self.failed.is_some() {
            return;
        }
        let header = Header::new(kind::CAPTURE_PART, len).encode();
        self.frame[..HEADER].copy_from_slice(&header);
        if let Err(e) = self.mover.send(&self.frame) {
            self.failed = Some(e);
        }
        self.frame.truncate(HEADER);
    }

    /// Sends the last part; why a send failed, if one did.
    fn finish(mut self) -> Result<(), String> {
        self.flush();
        self.failed.map_or(Ok(()), Err)
    }
}
