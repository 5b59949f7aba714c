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
//! answered. A send's answer is written by whichever thread has it first
//! (a Zenoh thread with the reply, the timeout, a cancel), into the
//! stream's [`Outbox`]. A `SERVE` makes the daemon register the process
//! as an instance of the service and hand back its [`Inbox`]: from then
//! on each message is written as a `MESSAGE` frame, by the thread that
//! routes it ([`Direct`]) or, when others wait before it, by the stream's
//! delivery task, and each request's way back is kept until the program
//! answers it (`REPLY`, `REFUSE`). While the app is being moved the daemon [`Hold`]s the
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
use super::framed::{CUE_SPIN, Failure, Reader, StreamIo, read_frame, report};
use super::outbox::{Frame, Outbox};
use super::region::Shared;
use std::collections::HashMap;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::task::{AbortHandle, JoinSet};
use weft_control::frame::HEADER;
use weft_control::ipc_proto::{
    DEFAULT_TIMEOUT_MS, Guid, IpcError, MAX_TEXT, Request, Response, kind, send_flags,
};
use weft_fabric::ipc::DELIVERY_LIMIT;
pub use weft_fabric::ipc::{Answer, Answerer};

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
    pub answer: Answerer,
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
    pub answer: Option<WayBack>,
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
        /// The way to write its messages into the stream at once.
        direct: Arc<Direct>,
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

/// A delivered message's way back to its sender: answering it answers
/// the sender; dropped unanswered (the instance's stream ended, or the
/// message was dropped on its way), it answers `ProviderEnded`.
#[derive(Debug)]
pub struct WayBack(Answerer);

impl WayBack {
    pub fn new(to: Answerer) -> WayBack {
        WayBack(to)
    }

    pub fn answer(self, answer: Answer) {
        self.0.answer(answer);
    }

    /// Where the answer goes.
    pub fn answerer(&self) -> &Answerer {
        &self.0
    }
}

impl Drop for WayBack {
    fn drop(&mut self) {
        self.0.answer(Err((
            IpcError::ProviderEnded,
            "the provider ended before it answered".to_string(),
        )));
    }
}

/// Requests delivered to this stream, by id, with their ways back.
type WaysBack = Arc<Mutex<HashMap<u64, WayBack>>>;

/// An instance's way in that skips its inbox: the thread that routes a
/// message (a Zenoh thread, for one from another device) writes it into
/// the stream's ring itself, while none of the instance's messages waits
/// in the inbox or in the delivery task's hands, its delivery is not held
/// (§19.5) and the ring has room. Otherwise the message goes to the
/// inbox, and the delivery task writes it in its turn.
///
/// Invariant: the instance's messages reach the ring in the order they
/// were posted: a message is written here only when none is queued, and
/// the delivery task writes each queued one, and counts it done, under
/// the same lock.
pub struct Direct {
    state: Mutex<DirectState>,
    outbox: Arc<Outbox>,
    ways_back: WaysBack,
}

#[derive(Default)]
struct DirectState {
    /// The delivery task runs: the stream's `SERVING` went before
    /// anything written here (until then every message waits in the
    /// inbox).
    live: bool,
    /// Messages posted to the inbox and not yet written.
    queued: usize,
    /// The delivery is held (`PAUSED` was written).
    paused: bool,
    /// Every message goes through the inbox from now on: it was handed
    /// over, or the provider closed its end (and will drop it).
    closed: bool,
}

impl std::fmt::Debug for Direct {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Direct").finish_non_exhaustive()
    }
}

impl Direct {
    fn state(&self) -> MutexGuard<'_, DirectState> {
        locked(&self.state)
    }

    /// Delivers `d`: into the ring now if it may go there at once, else
    /// into `inbox` (the instance's), as `try_send` would.
    pub fn post(
        &self,
        d: Delivery,
        inbox: &mpsc::Sender<Delivery>,
    ) -> Result<(), mpsc::error::TrySendError<Delivery>> {
        let mut s = self.state();
        let d = if s.live && s.queued == 0 && !s.paused && !s.closed {
            match self.write_now(d) {
                Ok(()) => {
                    return Ok(());
                }
                Err(d) => d,
            }
        } else {
            d
        };
        inbox.try_send(d)?;
        s.queued += 1;
        Ok(())
    }

    /// Writes `d` as a `MESSAGE` frame if the ring takes it now, keeping
    /// a request's way back; gives it back otherwise.
    fn write_now(&self, d: Delivery) -> Result<(), Delivery> {
        let Some(bytes) = message_frame(&d) else {
            return Err(d);
        };
        // The way back is kept before the program can see the request.
        let mut d = d;
        if let Some(way) = d.answer.take() {
            keep_way(&self.ways_back, d.id, way);
        }
        let frame = Frame {
            bytes,
            cues: d.request,
            hold: None,
        };
        match self.outbox.try_write(frame) {
            Ok(()) => Ok(()),
            Err(_) => {
                d.answer = locked(&self.ways_back).remove(&d.id);
                Err(d)
            }
        }
    }
}

/// `d` as a `MESSAGE` frame; `None` if it does not fit one.
fn message_frame(d: &Delivery) -> Option<Vec<u8>> {
    let flags = if d.request { send_flags::REQUEST } else { 0 };
    let frame = Response::Message {
        message: d.id,
        flags,
        sender: &d.sender,
        data: &d.data,
    };
    let mut buf = vec![0u8; HEADER + 14 + d.sender.len() + d.data.len()];
    let n = frame.encode(&mut buf)?;
    buf.truncate(n);
    Some(buf)
}

/// Drops every way back (their senders learn the provider ended), outside
/// the lock: an answer may write another stream's frame.
fn forget_ways_back(ways_back: &WaysBack) {
    let ways = std::mem::take(&mut *locked(ways_back));
    drop(ways);
}

/// Keeps request `id`'s way back, forgetting those already answered
/// (their requesters stopped waiting) once there are many.
fn keep_way(ways_back: &WaysBack, id: u64, way: WayBack) {
    let mut ways = locked(ways_back);
    if ways.len() >= PRUNE_AT {
        ways.retain(|_, w| !w.answerer().is_done());
    }
    ways.insert(id, way);
}
/// The cancel switches of the stream's requests in flight, by request id.
type Switches = Arc<Mutex<HashMap<u32, oneshot::Sender<()>>>>;

fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // One insert or remove at a time: never left half done.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Serves a stream whose first frame was `IPC` with `params` (none), for
/// the process of pipe region `shared`.
pub async fn serve(io: StreamIo, params: &[u8], link: Option<&FabricLink>, shared: &Shared) {
    let Some((io, link)) = super::fabric::open(io, params, link, "IPC", kind::READY).await else {
        return;
    };
    let StreamIo {
        slot,
        mut rx,
        tx,
        status,
        region,
    } = io;
    // The reader spins only after a cue: what the program writes after
    // a frame of its own is rarely quick (a request waits for its
    // answer), and a relay that polls holds a CPU the fabric's threads
    // need (cross-device round trip, medians of 5 runs each on a 2-CPU
    // AMD host: 380 µs polling 50 µs after every frame, 344 µs not;
    // one-way messages per second unchanged).
    rx.set_spin(Duration::ZERO);
    let outbox = Arc::new(Outbox::new(tx, rx.cue(CUE_SPIN)));
    let (alive, mut gone) = mpsc::channel::<Infallible>(1);
    let ways_back = WaysBack::default();
    let mut tasks = JoinSet::new();
    let ended = {
        let stream = Stream {
            link,
            region: shared.index(),
            out: Out {
                outbox: outbox.clone(),
                _alive: alive,
            },
            ways_back: ways_back.clone(),
            switches: Switches::default(),
            serving: None,
            route: None,
        };
        let reading = stream.read(&mut rx, &mut tasks);
        // Ends once nothing can push a frame any more.
        let writing = outbox.run(async move {
            let _ = gone.recv().await;
        });
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
    // inbox and the ways back (their requesters learn the provider ended);
    // an answer that comes later is written nowhere.
    drop(tasks);
    forget_ways_back(&ways_back);
    let tx = outbox.close();
    if let Err(f) = ended {
        match tx {
            Some(tx) => {
                let io = StreamIo {
                    slot,
                    rx,
                    tx,
                    status,
                    region,
                };
                io.fail(f).await;
            }
            None => {
                report(slot, &f);
                status.set(f.code);
            }
        }
    }
}

/// A way to push frames to the program; the stream's writer runs while
/// one lives.
#[derive(Clone)]
struct Out {
    outbox: Arc<Outbox>,
    _alive: mpsc::Sender<Infallible>,
}

impl Out {
    fn push(&self, frame: Frame) {
        self.outbox.push(frame);
    }

    fn quiet(&self, bytes: Vec<u8>) {
        self.push(Frame::quiet(bytes));
    }
}

/// One IPC stream's reading side.
struct Stream<'a> {
    link: &'a FabricLink,
    region: u64,
    /// Frames for the program.
    out: Out,
    ways_back: WaysBack,
    switches: Switches,
    /// The delivery task and the way around it, once the stream provides
    /// a service.
    serving: Option<(AbortHandle, Arc<Direct>)>,
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
                if let Some((delivery, direct)) = self.serving.take() {
                    direct.state().closed = true;
                    delivery.abort();
                    forget_ways_back(&self.ways_back);
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
                    let (cancel, cancelled) = oneshot::channel();
                    locked(&self.switches).insert(request, cancel);
                    // The answer is written by whoever has it first (a
                    // reply on a Zenoh thread, the timeout, a cancel),
                    // and the send's slot freed once it is in the ring.
                    let (settled, done) = oneshot::channel::<()>();
                    let answer = {
                        let (out, switches) = (self.out.clone(), self.switches.clone());
                        Answerer::new(move |result| {
                            locked(&switches).remove(&request);
                            out.push(Frame {
                                bytes: send_answer(request, is_request, result),
                                cues: is_request,
                                hold: Some(slot),
                            });
                            let _ = settled.send(());
                        })
                    };
                    let out = Outgoing {
                        region: Some(self.region),
                        guid,
                        pid: pid.map(str::to_string),
                        request: is_request,
                        timeout,
                        data: data.to_vec(),
                        answer: answer.clone(),
                    };
                    // Routed here, in order: one sender's messages are
                    // routed in the order they were sent.
                    match self.route().await {
                        Some(route) => {
                            route.send(out).await;
                        }
                        None => {
                            answer.answer(Err(gone_daemon()));
                            continue;
                        }
                    }
                    tasks.spawn(async move {
                        tokio::select! {
                            _ = done => {}
                            _ = tokio::time::sleep(timeout) => {
                                answer.answer(Err((
                                    IpcError::Timeout,
                                    format!("no answer within {} ms", timeout.as_millis()),
                                )));
                            }
                            Ok(()) = cancelled => {
                                answer.answer(Err((
                                    IpcError::Cancelled,
                                    "cancelled by the sender".to_string(),
                                )));
                            }
                        }
                    });
                }
                Request::Cancel { request } => {
                    if let Some(switch) = locked(&self.switches).remove(&request) {
                        let _ = switch.send(());
                    }
                }
                Request::Reply { message, data } => {
                    if let Some(way) = locked(&self.ways_back).remove(&message) {
                        way.answer(Ok(data.to_vec()));
                    }
                }
                Request::Refuse { message, reason } => {
                    if let Some(way) = locked(&self.ways_back).remove(&message) {
                        way.answer(Err((IpcError::Refused, reason.to_string())));
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
            self.out.quiet(failed(request, &why));
            return;
        }
        let (granted, inbox) = oneshot::channel();
        let direct = Arc::new(Direct {
            state: Mutex::default(),
            outbox: self.out.outbox.clone(),
            ways_back: self.ways_back.clone(),
        });
        let ask = IpcAsk::Serve {
            region: self.region,
            guid,
            name: name.to_string(),
            runtime: tokio::runtime::Handle::current(),
            direct: direct.clone(),
            granted,
        };
        let inbox = match self.link.send(FabricAsk::Ipc(ask)).await {
            Ok(()) => inbox.await.unwrap_or_else(|_| Err(gone_daemon())),
            Err(_) => Err(gone_daemon()),
        };
        match inbox {
            Ok(inbox) => {
                self.out.quiet(small(Response::Serving { request }));
                let delivery = deliver(inbox, self.out.clone(), direct.clone());
                self.serving = Some((tasks.spawn(delivery), direct));
            }
            Err(why) => self.out.quiet(failed(request, &why)),
        }
    }
}

/// Writes the inbox's messages as `MESSAGE` frames, keeping each
/// request's way back, and follows the daemon's [`Hold`]s; ends with the
/// stream, or when the inbox is handed over. It pushes a message only
/// while fewer than [`MAX_IN_FLIGHT`] frames wait for the program to
/// read: the rest wait in the inbox, which is bounded. Each change of the
/// delivery's state is made under [`Direct`]'s lock, so that no message
/// goes around the inbox meanwhile.
async fn deliver(mut inbox: Inbox, out: Out, direct: Arc<Direct>) {
    direct.state().live = true;
    let mut held = true;
    loop {
        let paused = direct.state().paused;
        tokio::select! {
            biased;
            hold = inbox.holds.recv(), if held => match hold {
                Some(Hold::Pause(queued)) => {
                    let mut s = direct.state();
                    if !s.paused {
                        out.quiet(small(Response::Paused));
                    }
                    s.paused = true;
                    drop(s);
                    let _ = queued.send(());
                }
                Some(Hold::Resume) => {
                    let mut s = direct.state();
                    if s.paused {
                        out.quiet(small(Response::Resumed));
                    }
                    s.paused = false;
                }
                Some(Hold::Surrender(way)) => {
                    direct.state().closed = true;
                    let _ = way.send(inbox);
                    return;
                }
                None => held = false,
            },
            d = inbox.messages.recv(), if !paused => match d {
                Some(d) => {
                    out.outbox.room(MAX_IN_FLIGHT).await;
                    let mut s = direct.state();
                    write_message(d, &out, &direct.ways_back);
                    // A message sent into the inbox around `post` (a
                    // test's) was never counted.
                    s.queued = s.queued.saturating_sub(1);
                }
                None => return,
            },
        }
    }
}

/// Pushes `d` as a `MESSAGE` frame, keeping a request's way back.
fn write_message(d: Delivery, out: &Out, ways_back: &WaysBack) {
    let Some(bytes) = message_frame(&d) else {
        if let Some(way) = d.answer {
            way.answer(Err((
                IpcError::Invalid,
                "the message does not fit a frame".into(),
            )));
        }
        return;
    };
    if let Some(way) = d.answer {
        keep_way(ways_back, d.id, way);
    }
    out.push(Frame {
        bytes,
        cues: d.request,
        hold: None,
    });
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
