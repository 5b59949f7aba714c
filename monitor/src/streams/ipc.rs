//! The IPC stream (PROTOCOL.md §18): services by GUID, one-way messages
//! and requests, for a program in a device guest.
//!
//! The stream's task reads the program's frames in order. A `SEND` is
//! routed at once, on the stream's own thread, through the daemon's
//! [`Route`] (in the order it came, so one sender's messages to one
//! service are queued in order) as an [`Outgoing`], and a
//! task of its own waits for the answer, at most the request's timeout or
//! until the program cancels it; at most [`MAX_IN_FLIGHT`] sends of one
//! stream wait at once, and the next frame is read only once one is
//! answered. A `SERVE` makes the daemon register the process as an
//! instance of the service and hand back its [`Inbox`]: from then on the
//! stream's delivery task writes each message as a `MESSAGE` frame, and
//! keeps each request's way back until the program answers it (`REPLY`,
//! `REFUSE`). While the app is being moved the daemon [`Hold`]s the
//! delivery: it writes `PAUSED` and leaves the messages in the inbox,
//! then either writes `RESUMED` and goes on, or hands the inbox over to
//! the daemon, which forwards it to where the app went (§19.5).
//!
//! Invariants: every `SEND` is answered exactly once while the stream
//! lives; every request delivered to the stream gets exactly one answer:
//! the program's, or `ProviderEnded` when the stream ends first (its
//! [`Inbox`] and the ways back it held are dropped, and the daemon
//! withdraws the instance); a program that closes its end is withdrawn
//! at once (it can answer nothing more), while the answers to its sends
//! in flight are still written until its process ends; a frame that breaks
//! the protocol ends the stream as a protocol violation.

use super::fabric::{FabricAsk, FabricLink};
use super::framed::{CUE_SPIN, Failure, Reader, StreamIo, Writer, read_frame, write_frame};
use super::region::Shared;
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::task::{AbortHandle, JoinSet};
use weft_control::frame::HEADER;
use weft_control::ipc_proto::{
    DEFAULT_TIMEOUT_MS, Guid, IpcError, MAX_DATA, MAX_TEXT, Request, Response, kind, send_flags,
};
use weft_data_pipe::Cue;
pub use weft_fabric::ipc::Answer;
use weft_fabric::ipc::DELIVERY_LIMIT;

/// Sends of one stream waiting for their answers at most.
pub const MAX_IN_FLIGHT: usize = 64;
/// Messages queued for one instance of a service, not yet written to its
/// stream; more are answered `Busy`.
pub const INBOX: usize = 1024;
/// Requests delivered to one stream and not yet answered, beyond which
/// those whose requester stopped waiting are forgotten.
const PRUNE_AT: usize = 4096;

/// A message for the daemon to route.
#[derive(Debug)]
pub struct Outgoing {
    /// The sending process's pipe region (its slot); `None` for the
    /// device's own CLI.
    pub region: Option<u64>,
    pub guid: Guid,
    /// The instance wanted (`DEVICE:N`), if one.
    pub pid: Option<String>,
    /// Whether it wants an answer (else it is answered once queued).
    pub request: bool,
    /// How long the sender waits (the provider's side drops it after).
    pub timeout: Duration,
    pub data: Vec<u8>,
    /// Where its answer goes, exactly once.
    pub answer: oneshot::Sender<Answer>,
}

/// The daemon's routing of messages, as an IPC stream reaches it: called
/// on the stream's own thread (the relay's), so that no other thread lies
/// between a program's `SEND` and its way out, and an answer from another
/// device is awaited there too.
pub trait Route: Send + Sync {
    /// Routes `out`; returns once it is queued or on its way, so that one
    /// stream's messages are routed in the order it sent them.
    fn send(&self, out: Outgoing) -> Pin<Box<dyn Future<Output = ()> + Send + '_>>;
}

/// A message delivered to an instance of a service.
#[derive(Debug)]
pub struct Delivery {
    /// Its id on this device, for the answer.
    pub id: u64,
    pub request: bool,
    /// The sender's pid (`DEVICE:N`), or a device's name for its CLI.
    pub sender: String,
    pub data: Vec<u8>,
    /// How long its sender waits for the answer.
    pub timeout: Duration,
    /// A request's way back (none for a one-way message).
    pub answer: Option<oneshot::Sender<Answer>>,
}

/// What the daemon asks of an instance's delivery while its app is moved
/// (PROTOCOL.md §19.5).
#[derive(Debug)]
pub enum Hold {
    /// Write `PAUSED` and no message after it; answered once `PAUSED` is
    /// queued for the program (every message before it is, too).
    Pause(oneshot::Sender<()>),
    /// Write `RESUMED` and deliver again (the move failed).
    Resume,
    /// Hand the inbox over (the app runs elsewhere now): delivery ends.
    Surrender(oneshot::Sender<Inbox>),
}

/// An instance's messages; dropping it withdraws the instance.
pub struct Inbox {
    pub messages: mpsc::Receiver<Delivery>,
    /// What the daemon asks of the delivery while the app is moved.
    pub holds: mpsc::Receiver<Hold>,
    /// What keeps the instance registered while the stream lives.
    pub registration: Box<dyn Send + Sync>,
}

impl std::fmt::Debug for Inbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inbox").finish_non_exhaustive()
    }
}

/// What an IPC stream asks of the daemon.
#[derive(Debug)]
pub enum IpcAsk {
    /// Register the process of `region` as an instance of `guid`, whose
    /// stream runs on `runtime`.
    Serve {
        region: u64,
        guid: Guid,
        name: String,
        runtime: tokio::runtime::Handle,
        granted: oneshot::Sender<Result<Inbox, (IpcError, String)>>,
    },
    /// The way to route messages (asked once, at a stream's first `SEND`).
    Route(oneshot::Sender<Arc<dyn Route>>),
}

impl std::fmt::Debug for dyn Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Route")
    }
}

/// Requests delivered to this stream, by id, with their ways back.
type WaysBack = Arc<Mutex<HashMap<u64, oneshot::Sender<Answer>>>>;
/// The cancel switches of the stream's requests in flight, by request id.
type Switches = Arc<Mutex<HashMap<u32, oneshot::Sender<()>>>>;

fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // One insert or remove at a time: never left half done.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Serves a stream whose first frame was `IPC` with `params` (none), for
/// the process of pipe region `shared`.
pub async fn serve(io: StreamIo, params: &[u8], link: Option<&FabricLink>, shared: &Shared) {
    let Some((mut io, link)) = super::fabric::open(io, params, link, "IPC", kind::READY).await
    else {
        return;
    };
    let (frames, mut out) = mpsc::channel(MAX_IN_FLIGHT);
    let mut tasks = JoinSet::new();
    let ended = {
        let stream = Stream {
            link,
            region: shared.index(),
            frames,
            ways_back: WaysBack::default(),
            switches: Switches::default(),
            serving: None,
            route: None,
        };
        // The reader spins only after a cue: what the program writes after
        // a frame of its own is rarely quick (a request waits for its
        // answer), and a relay that polls holds a CPU the fabric's threads
        // need (cross-device round trip, medians of 5 runs each on a
        // 2-CPU AMD host: 380 µs polling 50 µs after every frame, 344 µs
        // not; one-way messages per second unchanged).
        io.rx.set_spin(Duration::ZERO);
        let cue = io.rx.cue(CUE_SPIN);
        let reading = stream.read(&mut io.rx, &mut tasks);
        let writing = write_all(&mut io.tx, &mut out, cue);
        tokio::pin!(reading, writing);
        tokio::select! {
            // The program closed its end: the answers to its sends in
            // flight are still written, unless it ended.
            r = &mut reading => match r {
                Ok(()) => tokio::select! {
                    r = writing => r,
                    _ = shared.stopped() => Ok(()),
                },
                Err(f) => Err(f),
            },
            r = &mut writing => r,
        }
    };
    // Abandons the sends in flight and the delivery task, which drops the
    // inbox and the ways back (their requesters learn the provider ended).
    drop(tasks);
    if let Err(f) = ended {
        io.fail(f).await;
    }
}

/// A frame for the program.
struct ToProgram {
    frame: Vec<u8>,
    /// The program is likely to write soon after reading it (a request's
    /// reply, its next send): the stream's reader spins for it.
    cues: bool,
}

impl ToProgram {
    /// A frame the program need not answer.
    fn quiet(frame: Vec<u8>) -> Self {
        Self { frame, cues: false }
    }
}

/// Writes each frame as it comes, until every sender is gone, raising
/// `cue` after those the program is likely to answer.
async fn write_all(
    tx: &mut Writer,
    frames: &mut mpsc::Receiver<ToProgram>,
    cue: Cue,
) -> Result<(), Failure> {
    while let Some(out) = frames.recv().await {
        write_frame(tx, &out.frame).await?;
        if out.cues {
            cue.raise();
        }
    }
    Ok(())
}

/// One IPC stream's reading side.
struct Stream<'a> {
    link: &'a FabricLink,
    region: u64,
    /// Frames for the program.
    frames: mpsc::Sender<ToProgram>,
    ways_back: WaysBack,
    switches: Switches,
    /// The delivery task, once the stream provides a service.
    serving: Option<AbortHandle>,
    /// The daemon's routing, once the stream has sent.
    route: Option<Arc<dyn Route>>,
}

impl Stream<'_> {
    /// Reads frames until the program closes its end.
    async fn read(mut self, rx: &mut Reader, tasks: &mut JoinSet<()>) -> Result<(), Failure> {
        let slots = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
        let mut body = Vec::new();
        loop {
            let Some(header) = read_frame(rx, &mut body).await? else {
                // A provider that closed its end answers nothing more: its
                // instance is withdrawn now (the delivery task drops the
                // inbox), not when the stream's last task is gone.
                if let Some(delivery) = self.serving.take() {
                    delivery.abort();
                }
                return Ok(());
            };
            // Forget the sends answered so far: a stream may live for
            // millions of them.
            while tasks.try_join_next().is_some() {}
            match Request::decode(header.kind, &body).map_err(Failure::protocol)? {
                Request::Serve {
                    request,
                    guid,
                    name,
                } => self.serve(request, guid, name, tasks).await,
                Request::Send {
                    request,
                    flags,
                    timeout_ms,
                    guid,
                    pid,
                    data,
                } => {
                    let Ok(slot) = slots.clone().acquire_owned().await else {
                        return Ok(());
                    };
                    let is_request = flags & send_flags::REQUEST != 0;
                    let timeout = if is_request {
                        let ms = if timeout_ms == 0 {
                            DEFAULT_TIMEOUT_MS
                        } else {
                            timeout_ms
                        };
                        Duration::from_millis(ms.into())
                    } else {
                        DELIVERY_LIMIT
                    };
                    let (answer, answered) = oneshot::channel();
                    let out = Outgoing {
                        region: Some(self.region),
                        guid,
                        pid: pid.map(str::to_string),
                        request: is_request,
                        timeout,
                        data: data.to_vec(),
                        answer,
                    };
                    let (cancel, cancelled) = oneshot::channel();
                    locked(&self.switches).insert(request, cancel);
                    // Routed here, in order: one sender's messages are
                    // routed in the order they were sent.
                    let routed = match self.route().await {
                        Some(route) => {
                            route.send(out).await;
                            true
                        }
                        None => false,
                    };
                    let (frames, switches) = (self.frames.clone(), self.switches.clone());
                    tasks.spawn(async move {
                        let result = if !routed {
                            Err(gone_daemon())
                        } else {
                            tokio::select! {
                                a = answered => a.unwrap_or_else(|_| Err(gone_daemon())),
                                _ = tokio::time::sleep(timeout) => Err((
                                    IpcError::Timeout,
                                    format!("no answer within {} ms", timeout.as_millis()),
                                )),
                                Ok(()) = cancelled => Err((
                                    IpcError::Cancelled,
                                    "cancelled by the sender".to_string(),
                                )),
                            }
                        };
                        locked(&switches).remove(&request);
                        let answer = ToProgram {
                            frame: send_answer(request, is_request, result),
                            cues: is_request,
                        };
                        let _ = frames.send(answer).await;
                        drop(slot);
                    });
                }
                Request::Cancel { request } => {
                    if let Some(switch) = locked(&self.switches).remove(&request) {
                        let _ = switch.send(());
                    }
                }
                Request::Reply { message, data } => {
                    if let Some(way) = locked(&self.ways_back).remove(&message) {
                        let _ = way.send(Ok(data.to_vec()));
                    }
                }
                Request::Refuse { message, reason } => {
                    if let Some(way) = locked(&self.ways_back).remove(&message) {
                        let _ = way.send(Err((IpcError::Refused, reason.to_string())));
                    }
                }
            }
        }
    }

    /// The daemon's routing, asked for once; `None` if the daemon is gone.
    async fn route(&mut self) -> Option<Arc<dyn Route>> {
        if self.route.is_none() {
            let (granted, route) = oneshot::channel();
            self.link
                .send(FabricAsk::Ipc(IpcAsk::Route(granted)))
                .await
                .ok()?;
            self.route = Some(route.await.ok()?);
        }
        self.route.clone()
    }

    /// Asks the daemon to make this process an instance of `guid`; on
    /// success answers `SERVING` and starts delivering its messages.
    async fn serve(&mut self, request: u32, guid: Guid, name: &str, tasks: &mut JoinSet<()>) {
        if self.serving.is_some() {
            let why = (
                IpcError::Invalid,
                "this stream provides a service already".to_string(),
            );
            let _ = self
                .frames
                .send(ToProgram::quiet(failed(request, &why)))
                .await;
            return;
        }
        let (granted, inbox) = oneshot::channel();
        let ask = IpcAsk::Serve {
            region: self.region,
            guid,
            name: name.to_string(),
            runtime: tokio::runtime::Handle::current(),
            granted,
        };
        let inbox = match self.link.send(FabricAsk::Ipc(ask)).await {
            Ok(()) => inbox.await.unwrap_or_else(|_| Err(gone_daemon())),
            Err(_) => Err(gone_daemon()),
        };
        match inbox {
            Ok(inbox) => {
                let serving = small(Response::Serving { request });
                let _ = self.frames.send(ToProgram::quiet(serving)).await;
                let delivery = deliver(inbox, self.frames.clone(), self.ways_back.clone());
                self.serving = Some(tasks.spawn(delivery));
            }
            Err(why) => {
                let _ = self
                    .frames
                    .send(ToProgram::quiet(failed(request, &why)))
                    .await;
            }
        }
    }
}

/// Writes the inbox's messages as `MESSAGE` frames, keeping each
/// request's way back, and follows the daemon's [`Hold`]s; ends with the
/// stream, or when the inbox is handed over.
async fn deliver(mut inbox: Inbox, frames: mpsc::Sender<ToProgram>, ways_back: WaysBack) {
    let mut buf = vec![0u8; HEADER + 14 + MAX_TEXT + MAX_DATA];
    let mut paused = false;
    let mut held = true;
    loop {
        tokio::select! {
            biased;
            hold = inbox.holds.recv(), if held => match hold {
                Some(Hold::Pause(queued)) => {
                    if !paused && frames.send(ToProgram::quiet(small(Response::Paused))).await.is_err() {
                        return;
                    }
                    paused = true;
                    let _ = queued.send(());
                }
                Some(Hold::Resume) => {
                    if paused && frames.send(ToProgram::quiet(small(Response::Resumed))).await.is_err() {
                        return;
                    }
                    paused = false;
                }
                Some(Hold::Surrender(way)) => {
                    let _ = way.send(inbox);
                    return;
                }
                None => held = false,
            },
            d = inbox.messages.recv(), if !paused => match d {
                Some(d) => {
                    if !write_message(d, &mut buf, &frames, &ways_back).await {
                        return;
                    }
                }
                None => return,
            },
        }
    }
}

/// Writes `d` as a `MESSAGE` frame, keeping a request's way back; whether
/// the stream still takes frames.
async fn write_message(
    d: Delivery,
    buf: &mut [u8],
    frames: &mpsc::Sender<ToProgram>,
    ways_back: &WaysBack,
) -> bool {
    let flags = if d.request { send_flags::REQUEST } else { 0 };
    let frame = Response::Message {
        message: d.id,
        flags,
        sender: &d.sender,
        data: &d.data,
    };
    let Some(n) = frame.encode(buf) else {
        if let Some(way) = d.answer {
            let _ = way.send(Err((
                IpcError::Invalid,
                "the message does not fit a frame".into(),
            )));
        }
        return true;
    };
    if let Some(way) = d.answer {
        let mut ways = locked(ways_back);
        if ways.len() >= PRUNE_AT {
            ways.retain(|_, w| !w.is_closed());
        }
        ways.insert(d.id, way);
    }
    let out = ToProgram {
        frame: buf[..n].to_vec(),
        cues: d.request,
    };
    frames.send(out).await.is_ok()
}

fn gone_daemon() -> (IpcError, String) {
    (
        IpcError::Unreachable,
        "the fabric daemon is gone".to_string(),
    )
}

/// The frame answering `SEND` `request` with `result`.
fn send_answer(request: u32, is_request: bool, result: Answer) -> Vec<u8> {
    match result {
        Ok(_) if !is_request => small(Response::Sent { request }),
        Ok(data) => {
            let mut buf = vec![0u8; HEADER + 4 + data.len()];
            match (Response::Answer {
                request,
                data: &data,
            })
            .encode(&mut buf)
            {
                Some(n) => {
                    buf.truncate(n);
                    buf
                }
                None => failed(
                    request,
                    &(IpcError::Invalid, "the answer does not fit a frame".into()),
                ),
            }
        }
        Err(why) => failed(request, &why),
    }
}

/// A `FAILED` frame answering `request`.
fn failed(request: u32, (error, message): &(IpcError, String)) -> Vec<u8> {
    let mut end = message.len().min(MAX_TEXT);
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    small(Response::Failed {
        request,
        error: *error,
        message: &message[..end],
    })
}

/// A frame with no data.
fn small(r: Response<'_>) -> Vec<u8> {
    let mut buf = vec![0u8; HEADER + 8 + 2 + MAX_TEXT];
    let n = r.encode(&mut buf).unwrap_or(0);
    buf.truncate(n);
    buf
}
