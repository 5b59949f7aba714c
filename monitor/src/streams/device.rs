//! The DEVICE stream (PROTOCOL.md §15): how the host drives the resident
//! agent of a device guest, which starts and kills processes in it and
//! reports when they end; and the device's processes, which a handle lists
//! and inspects without the agent, from the run's [`ProcessView`] (§14.6).
//!
//! [`device_link`] makes the two ends: the [`DeviceLink`] goes into the run
//! ([`crate::run::RunConfig::device`]) and is taken by the first `DEVICE`
//! stream the guest's first program opens; the [`DeviceHandle`] (cloned
//! freely, used from any tokio runtime: only tokio's channels join the two)
//! sends requests and hears of exits.
//!
//! The stream's task runs two halves at once: one writes each request
//! (after recording it as pending), and a `REAP` whenever a process of the
//! guest ended (the view's book says so), the other reads every reply and event,
//! validates it (a reply must answer a pending request with a kind that
//! fits it; an `EXITED` must name a pid the agent spawned and has not yet
//! reported) and hands it on. A frame that breaks the protocol ends the
//! stream as a protocol violation (reported on `weft`'s standard error).
//!
//! Invariants: a call never hangs. When the stream ends, the guest stops or
//! the link is dropped unused, the link's state becomes gone, every pending
//! call's answer is dropped and the command queue closes, so pending and
//! later calls get [`DeviceError::Gone`]. Only the first program (region 0)
//! may open a `DEVICE` stream, once per guest.

use super::framed::{Failure, Reader, StreamIo, Writer, read_frame, write_frame};
use crate::catalog::Tier;
use crate::process_view::ProcessView;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use thiserror::Error;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use weft_control::device_proto::{
    ArgList, MAX_CHUNK, MAX_IMAGE, MAX_NAME, Reply, Request, SpawnHead, Target, kind, source,
};
use weft_control::error::ErrorCode;
use weft_control::frame::{Code, HEADER, Header};
use weft_control::process::ProcessRecord;

/// Exit events kept for a receiver that has not read them yet; one that
/// falls further behind skips the oldest (`RecvError::Lagged`).
const EXIT_BACKLOG: usize = 1024;

/// Why a call on a [`DeviceHandle`] failed.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum DeviceError {
    /// The guest or its agent is gone (it ended, crashed, broke the
    /// protocol, or never started).
    #[error("the device guest is gone (its agent ended or the guest stopped)")]
    Gone,
    /// The agent could not carry out the request (`op`: `spawn`, `kill`,
    /// or `shutdown`; `stats` of no such process); `code` is what the
    /// kernel said.
    #[error("the device agent refused a {op} request: {code}")]
    Refused { op: &'static str, code: ErrorCode },
    /// The processes could not be read from the status page.
    #[error("the device's processes cannot be read: {0}")]
    Unreadable(String),
    /// A spawn image is empty or larger than [`MAX_IMAGE`].
    #[error("a spawn image of {0} bytes: it must be 1 to {MAX_IMAGE} bytes")]
    ImageSize(usize),
    /// A bundled program's name is empty or longer than [`MAX_NAME`].
    #[error("a bundled program name of {0} bytes: it must be 1 to {MAX_NAME} bytes")]
    NameSize(usize),
    /// More than 65 535 spawn arguments, or one longer than 65 535 bytes.
    #[error("spawn arguments: at most 65 535, each at most 65 535 bytes")]
    Args,
    /// The request does not fit one frame (a spawn's arguments are too
    /// long together).
    #[error("a {op} request of {bytes} bytes does not fit one frame")]
    RequestSize { op: &'static str, bytes: usize },
}

/// What a new process runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SpawnImage {
    /// A program bundled with `weft`, by name.
    Bundled(String),
    /// An ELF executable, or a Wasm module (run as the guest runs modules
    /// by default).
    Bytes(Vec<u8>),
    /// A Wasm module run in the tier given (PROTOCOL.md §13.8).
    Wasm(Vec<u8>, Tier),
}

/// A process the agent spawned ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exit {
    pub pid: u32,
    /// Its exit status (PROTOCOL.md §14.1: 125 faulted, 137 killed).
    pub status: u32,
}

/// Where the link stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// No agent attached yet.
    Waiting,
    /// An agent's `DEVICE` stream is being served.
    Attached,
    /// The stream ended, or the link was dropped: nothing will answer.
    Gone,
}

/// Hands a reply to the caller waiting for it: the caller's answer, or
/// the protocol failure of a reply that cannot answer its request.
type Deliver = Box<dyn FnOnce(Reply) -> Result<(), Failure> + Send>;

/// A request on its way to the stream's task: its frame (and a `SPAWN`'s
/// image, sent after it in `IMAGE` frames), and where its reply goes.
struct Outgoing {
    id: u32,
    frame: Vec<u8>,
    image: Vec<u8>,
    deliver: Deliver,
}

/// The run's end of a device link: taken by the guest's `DEVICE` stream.
/// Dropping it (the stream ended, or the guest stopped without opening
/// one) makes every call on its handles fail with [`DeviceError::Gone`].
pub struct DeviceLink {
    commands: mpsc::UnboundedReceiver<Outgoing>,
    exits: broadcast::Sender<Exit>,
    phase: watch::Sender<Phase>,
    /// The run's processes, set by the run once the guest is built.
    view: Arc<OnceLock<ProcessView>>,
}

impl DeviceLink {
    /// Where the run puts its [`ProcessView`] (before the guest's first
    /// instruction, so before any agent attaches).
    pub fn view_slot(&self) -> Arc<OnceLock<ProcessView>> {
        self.view.clone()
    }
}

impl Drop for DeviceLink {
    fn drop(&mut self) {
        self.phase.send_replace(Phase::Gone);
    }
}

impl std::fmt::Debug for DeviceLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceLink")
            .field("phase", &*self.phase.borrow())
            .finish_non_exhaustive()
    }
}

/// The host's end of a device link: drives the agent. Clones share it.
/// Requests made before the agent attaches wait for it; requests in flight
/// together are answered each in turn.
#[derive(Debug)]
pub struct DeviceHandle {
    commands: mpsc::UnboundedSender<Outgoing>,
    /// Never read: each [`DeviceHandle::exits`] is a fresh subscription.
    exits: broadcast::Receiver<Exit>,
    phase: watch::Receiver<Phase>,
    ids: Arc<AtomicU32>,
    view: Arc<OnceLock<ProcessView>>,
}

impl Clone for DeviceHandle {
    fn clone(&self) -> Self {
        Self {
            commands: self.commands.clone(),
            exits: self.exits.resubscribe(),
            phase: self.phase.clone(),
            ids: self.ids.clone(),
            view: self.view.clone(),
        }
    }
}

// The daemon shares handles between threads and runtimes; the run hands
// the link to the relay's thread.
const _: () = {
    const fn crosses_threads<T: Send + Sync>() {}
    crosses_threads::<DeviceHandle>();
    crosses_threads::<DeviceLink>();
};

/// A new device link: the [`DeviceLink`] for the run, the [`DeviceHandle`]
/// for whoever drives the agent.
pub fn device_link() -> (DeviceLink, DeviceHandle) {
    let (commands_tx, commands) = mpsc::unbounded_channel();
    let (exits, exits_rx) = broadcast::channel(EXIT_BACKLOG);
    let (phase, phase_rx) = watch::channel(Phase::Waiting);
    let view = Arc::new(OnceLock::new());
    let link = DeviceLink {
        commands,
        exits,
        phase,
        view: view.clone(),
    };
    let handle = DeviceHandle {
        commands: commands_tx,
        exits: exits_rx,
        phase: phase_rx,
        ids: Arc::new(AtomicU32::new(1)),
        view,
    };
    (link, handle)
}

impl DeviceHandle {
    /// Waits until the agent has opened its stream.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only watches the link's state.
    pub async fn ready(&self) -> Result<(), DeviceError> {
        let mut phase = self.phase.clone();
        match phase.wait_for(|p| *p != Phase::Waiting).await {
            Ok(p) if *p == Phase::Attached => Ok(()),
            _ => Err(DeviceError::Gone),
        }
    }

    /// Starts `image` in a new process with `args` (the program's name
    /// first, as `process::spawn` takes them); returns its pid. Its end is
    /// announced on [`DeviceHandle::exits`].
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: once sent, the request is carried out even if the
    /// future is dropped (and the process's end is still announced).
    pub async fn spawn(&self, image: SpawnImage, args: Vec<Vec<u8>>) -> Result<u32, DeviceError> {
        let (source, image, tier) = match image {
            SpawnImage::Bundled(name) if (1..=MAX_NAME).contains(&name.len()) => {
                (source::BUNDLED, name.into_bytes(), Tier::Default)
            }
            SpawnImage::Bundled(name) => return Err(DeviceError::NameSize(name.len())),
            SpawnImage::Bytes(b) => (source::BYTES, b, Tier::Default),
            SpawnImage::Wasm(b, tier) => (source::BYTES, b, tier),
        };
        if !(1..=MAX_IMAGE).contains(&image.len()) {
            return Err(DeviceError::ImageSize(image.len()));
        }
        let request = self.next_id();
        let mut raw = vec![0u8; args.iter().map(|a| 2 + a.len()).sum()];
        let args = ArgList::new(&args, &mut raw).ok_or(DeviceError::Args)?;
        let head = SpawnHead {
            request,
            source,
            image_len: image.len() as u32,
            tier: tier.wire(),
        };
        let spawned = |r: Reply| match r {
            Reply::Spawned(t) if t.pid > 1 => Some(t.pid),
            _ => None,
        };
        let spawn = Request::Spawn { head, args };
        self.call("spawn", &spawn, image, spawned).await
    }

    /// Ends process `pid` (it exits with status 137, announced on
    /// [`DeviceHandle::exits`] if the agent spawned it).
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: once sent, the process is killed.
    pub async fn kill(&self, pid: u32) -> Result<(), DeviceError> {
        let request = Request::Kill(Target {
            request: self.next_id(),
            pid,
        });
        self.call("kill", &request, Vec::new(), done).await
    }

    /// Every process's record, the agent's (pid 1) first, read from the
    /// status page without entering the guest. A process that has just
    /// ended may still be listed (state ended) until its end is announced.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads.
    pub async fn list(&self) -> Result<Vec<ProcessRecord>, DeviceError> {
        self.ready().await?;
        let view = self.view.get().ok_or(DeviceError::Gone)?;
        let records = view
            .records()
            .await
            .map_err(|e| DeviceError::Unreadable(e.to_string()))?;
        // The page outlives the guest: what it says once the guest is gone
        // is no answer.
        if *self.phase.borrow() == Phase::Gone {
            return Err(DeviceError::Gone);
        }
        Ok(records)
    }

    /// The pid and identity (what it runs) of the running process whose
    /// pipe region is `region` (its slot).
    pub fn process_of_region(&self, region: u64) -> Option<(u32, std::sync::Arc<str>)> {
        let view = self.view.get()?;
        view.book().process(usize::try_from(region).ok()?)
    }

    /// The identity (what it runs) of running process `pid`.
    pub fn identity_of(&self, pid: u32) -> Option<std::sync::Arc<str>> {
        self.view.get()?.book().identity_of(pid)
    }

    /// The tier of the Wasm module process `pid` runs (`None` for a
    /// native program, or one that ended).
    pub fn tier_of(&self, pid: u32) -> Option<Tier> {
        self.view.get()?.book().tier_of(pid)
    }

    /// Process `pid`'s record, as [`DeviceHandle::list`] reads it.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads.
    pub async fn stats(&self, pid: u32) -> Result<ProcessRecord, DeviceError> {
        self.list()
            .await?
            .into_iter()
            .find(|r| r.pid == pid)
            .ok_or(DeviceError::Refused {
                op: "stats",
                code: ErrorCode::NoProcess,
            })
    }

    /// Kills every process the agent spawned (each end announced), then
    /// ends the agent, and so the guest; returns once the stream is gone.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: once sent, the guest ends.
    pub async fn shutdown(&self) -> Result<(), DeviceError> {
        let request = Request::Shutdown {
            request: self.next_id(),
        };
        self.call("shutdown", &request, Vec::new(), done).await?;
        let mut phase = self.phase.clone();
        // An error means the link itself is gone: as good.
        let _ = phase.wait_for(|p| *p == Phase::Gone).await;
        Ok(())
    }

    /// The ends of the processes the agent spawns from now on, in order.
    /// The receiver's `recv` fails with `Closed` once the guest is gone
    /// and every end before was read.
    pub fn exits(&self) -> broadcast::Receiver<Exit> {
        self.exits.resubscribe()
    }

    fn next_id(&self) -> u32 {
        self.ids.fetch_add(1, Ordering::Relaxed)
    }

    /// Sends `request` (then `image`, for a spawn) and waits for its reply:
    /// `FAILED` is [`DeviceError::Refused`] naming `op`; any other reply is
    /// what `take` makes of it, and one it makes nothing of breaks the
    /// protocol.
    async fn call<T: Send + 'static>(
        &self,
        op: &'static str,
        request: &Request<'_>,
        image: Vec<u8>,
        take: fn(Reply) -> Option<T>,
    ) -> Result<T, DeviceError> {
        let bytes = request.frame_len();
        let mut frame = vec![0u8; bytes];
        let n = request
            .encode(&mut frame)
            .ok_or(DeviceError::RequestSize { op, bytes })?;
        frame.truncate(n);
        let (answer, answered) = oneshot::channel();
        let deliver: Deliver = Box::new(move |reply: Reply| {
            let kind = reply.kind();
            let result = match reply {
                Reply::Failed { code, .. } => Err(DeviceError::Refused { op, code }),
                reply => Ok(take(reply).ok_or_else(|| {
                    Failure::protocol(format!(
                        "frame kind {kind:#06x} is no valid answer to a {op} request"
                    ))
                })?),
            };
            // The caller may have stopped waiting.
            let _ = answer.send(result);
            Ok(())
        });
        let id = request.id();
        self.commands
            .send(Outgoing {
                id,
                frame,
                image,
                deliver,
            })
            .map_err(|_| DeviceError::Gone)?;
        answered.await.map_err(|_| DeviceError::Gone)?
    }
}

/// A `DONE` reply.
fn done(reply: Reply) -> Option<()> {
    matches!(reply, Reply::Done { .. }).then_some(())
}

/// The guest's one chance at a link, shared by the first program's
/// streams.
pub struct DeviceSlot(Mutex<Offer>);

enum Offer {
    /// This run drives no agent.
    Unlinked,
    Offered(DeviceLink),
    /// A stream took the link.
    Taken,
}

impl DeviceSlot {
    pub fn new(link: Option<DeviceLink>) -> Self {
        Self(Mutex::new(link.map_or(Offer::Unlinked, Offer::Offered)))
    }

    /// The link, for the first stream that asks.
    fn take(&self) -> Result<DeviceLink, Failure> {
        let mut offer = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match std::mem::replace(&mut *offer, Offer::Taken) {
            Offer::Offered(link) => Ok(link),
            Offer::Unlinked => {
                *offer = Offer::Unlinked;
                Err(Failure::new(
                    Code::Unsupported,
                    "no device link: only a device guest's agent (under `weft daemon`) opens a DEVICE stream",
                ))
            }
            Offer::Taken => Err(Failure::new(
                Code::Exists,
                "a DEVICE stream was already opened in this guest",
            )),
        }
    }
}

/// Serves a stream whose first frame was `DEVICE` with `params` (none);
/// `slot` is the guest's link if the stream is the first program's.
pub async fn serve(mut io: StreamIo, params: &[u8], slot: Option<&DeviceSlot>) {
    if !params.is_empty() {
        let f = Failure::protocol(format!(
            "DEVICE first frame has {} bytes after its version",
            params.len()
        ));
        return io.fail(f).await;
    }
    let Some(slot) = slot else {
        let f = Failure::new(
            Code::NotAllowed,
            "only the first program may open a DEVICE stream",
        );
        return io.fail(f).await;
    };
    let mut link = match slot.take() {
        Ok(link) => link,
        Err(f) => return io.fail(f).await,
    };
    if let Err(f) = io
        .write_frame(&Header::new(kind::ATTACHED, 0).encode())
        .await
    {
        return io.fail(f).await;
    }
    link.phase.send_replace(Phase::Attached);
    let pending = Mutex::new(HashMap::new());
    let view = link.view.get().cloned();
    let ended = tokio::select! {
        r = read_replies(&mut io.rx, &pending, &link.exits) => r,
        r = write_requests(&mut io.tx, &mut link.commands, &pending, view.as_ref()) => r,
    };
    // Gone: every pending and later call fails.
    drop(link);
    drop(pending);
    if let Err(f) = ended {
        io.fail(f).await;
    }
}

/// Requests written and not yet answered, by id.
type Pending = Mutex<HashMap<u32, Deliver>>;

/// Writes each request the handles send, recording it as pending first,
/// and a `REAP` whenever `view`'s book tells of an end. Returns only when a
/// write fails (once every handle is gone it goes on with `REAP`s only).
async fn write_requests(
    tx: &mut Writer,
    commands: &mut mpsc::UnboundedReceiver<Outgoing>,
    pending: &Pending,
    view: Option<&ProcessView>,
) -> Result<(), Failure> {
    let mut buf = vec![0u8; HEADER + 4 + MAX_CHUNK];
    let mut open = true;
    loop {
        let next = tokio::select! {
            out = commands.recv(), if open => out,
            () = an_end(view) => {
                let n = Request::Reap
                    .encode(&mut buf)
                    .ok_or_else(|| Failure::new(Code::TooLarge, "a REAP frame outgrew its buffer"))?;
                write_frame(tx, &buf[..n]).await?;
                continue;
            }
        };
        let Some(out) = next else {
            open = false;
            continue;
        };
        lock(pending).insert(out.id, out.deliver);
        write_frame(tx, &out.frame).await?;
        for chunk in out.image.chunks(MAX_CHUNK) {
            let image = Request::Image {
                request: out.id,
                chunk,
            };
            let n = image
                .encode(&mut buf)
                .ok_or_else(|| Failure::new(Code::TooLarge, "an IMAGE frame outgrew its buffer"))?;
            write_frame(tx, &buf[..n]).await?;
        }
    }
}

/// Returns when a process of the guest has ended (never without a view).
///
/// # Cancel safety
///
/// Cancel safe, as [`crate::process_view::ProcessBook::ended`].
async fn an_end(view: Option<&ProcessView>) {
    match view {
        Some(v) => v.book().ended().await,
        None => std::future::pending().await,
    }
}

/// Reads the agent's replies and events until the stream ends, handing
/// each answer to its caller and each exit to the subscribers.
async fn read_replies(
    rx: &mut Reader,
    pending: &Pending,
    exits: &broadcast::Sender<Exit>,
) -> Result<(), Failure> {
    let mut body = Vec::new();
    // Pids the agent spawned and has not yet reported ended.
    let mut live = HashSet::new();
    while let Some(header) = read_frame(rx, &mut body).await? {
        match Reply::decode(header.kind, &body).map_err(Failure::protocol)? {
            Reply::Exited(x) => {
                if !live.remove(&x.pid) {
                    return Err(Failure::protocol(format!(
                        "EXITED for pid {}, which the agent did not spawn or already reported",
                        x.pid
                    )));
                }
                if x.status > u32::from(u8::MAX) {
                    return Err(Failure::protocol(format!(
                        "EXITED with status {} for pid {}",
                        x.status, x.pid
                    )));
                }
                // No subscriber is no error.
                let _ = exits.send(Exit {
                    pid: x.pid,
                    status: x.status,
                });
            }
            reply => {
                let id = request_of(&reply);
                let deliver = lock(pending).remove(&id).ok_or_else(|| {
                    Failure::protocol(format!("a reply to request {id}, which is not pending"))
                })?;
                let spawned = match reply {
                    Reply::Spawned(t) => Some(t.pid),
                    _ => None,
                };
                deliver(reply)?;
                if let Some(pid) = spawned
                    && !live.insert(pid)
                {
                    return Err(Failure::protocol(format!(
                        "SPAWNED pid {pid}, which already runs"
                    )));
                }
            }
        }
    }
    Ok(())
}

/// The request a reply answers (an event answers none: 0, never an id).
fn request_of(reply: &Reply) -> u32 {
    match *reply {
        Reply::Spawned(Target { request, .. })
        | Reply::Done { request }
        | Reply::Failed { request, .. } => request,
        Reply::Exited(_) => 0,
    }
}

fn lock(pending: &Pending) -> std::sync::MutexGuard<'_, HashMap<u32, Deliver>> {
    pending.lock().unwrap_or_else(|e| e.into_inner())
}
