//! The FABRIC stream (PROTOCOL.md §17): fabric calls from a program in a
//! device guest — list devices and processes, stats, kill, spawn, wait —
//! handed to the device's daemon as the calls of its local socket.
//!
//! The run is given a [`FabricLink`] (under `weft daemon`; none under
//! `weft run`, where a `FABRIC` first frame is refused). Any process of the
//! guest may open FABRIC streams. On each, the stream's task reads the
//! requests in order, validates each whole (a `SPAWN` with its image), and
//! sends it over the link as a [`FabricCall`]; the daemon's answer becomes
//! the reply frame, written as soon as it comes: requests are answered in
//! any order, each by its id. At most [`MAX_IN_FLIGHT`] calls of one stream
//! are in flight; the next request is read only once one is answered.
//!
//! A `WATCH` request asks the daemon for a [`FabricWatch`]; once it is
//! answered `WATCHING`, the stream's watch task ([`watch`]) writes the
//! daemon's events as `EVENT` frames between the replies, through a queue
//! of its own with a fixed limit. One watch per stream; it ends with the
//! stream, or when the program closes its end.
//!
//! Invariants: every request is answered exactly once while the stream
//! lives (a daemon that is gone or drops a call is a `FAILED` reply, as is
//! an answer that does not fit the call or one frame); a frame that breaks
//! the protocol ends the stream as a protocol violation; when the stream
//! ends, its calls still in flight are abandoned (their answers dropped).

mod watch;

pub use watch::{FabricEvent, FabricWatch, MAX_QUEUED};

use super::framed::{Failure, Reader, StreamIo, Writer, read_frame, write_frame};
use crate::catalog::Tier;
use std::sync::Arc;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::task::JoinSet;
use weft_control::fabric_proto::{
    self as proto, DeviceEntry, DeviceHead, List, ProcessHead, Reply, Request, kind, source,
};
use weft_control::frame::{Code, HEADER, Header, MAX_BODY};
use weft_fabric::local::{LocalRequest, LocalResponse, Program};
use weft_fabric::wire::{Device, Process};

/// Calls of one stream in flight at most.
pub const MAX_IN_FLIGHT: usize = 16;

/// A fabric call from the guest: the daemon answers it on `reply`.
#[derive(Debug)]
pub struct FabricCall {
    pub request: LocalRequest,
    pub reply: oneshot::Sender<LocalResponse>,
}

/// What a FABRIC stream asks of the daemon.
#[derive(Debug)]
pub enum FabricAsk {
    /// A call, answered once.
    Call(FabricCall),
    /// A watch: the daemon answers with the devices available now and a
    /// subscription to its events.
    Watch(oneshot::Sender<FabricWatch>),
    /// IPC (§18) from an `IPC` stream: handled in the order asked.
    Ipc(super::ipc::IpcAsk),
    /// A UDP stream's bind: the daemon says where it is served (§16.7).
    Udp(super::udp::UdpBindAsk),
    /// A Wasm runtime's MOVE stream (§19.3).
    Move(super::mover::MoveAsk),
}

/// How the guest's FABRIC streams reach the daemon.
pub type FabricLink = mpsc::Sender<FabricAsk>;

/// What answer a request wants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Wants {
    Devices,
    Processes,
    Process,
    Done,
    Spawned,
    Exit,
}

/// Serves a stream whose first frame was `FABRIC` with `params` (none).
pub async fn serve(io: StreamIo, params: &[u8], link: Option<&FabricLink>) {
    let Some((mut io, link)) = open(io, params, link, "FABRIC", kind::READY).await else {
        return;
    };
    let (answers, mut replies) = mpsc::channel(MAX_IN_FLIGHT);
    let mut calls = JoinSet::new();
    let mut watching = None;
    let ended = {
        let reading = read_requests(&mut io.rx, link, answers, &mut calls, &mut watching);
        let writing = write_replies(&mut io.tx, &mut replies);
        tokio::pin!(reading, writing);
        tokio::select! {
            r = &mut reading => match r {
                // The program closed its end (which ended its watch):
                // answer what is in flight.
                Ok(()) => writing.await,
                Err(f) => Err(f),
            },
            r = &mut writing => r,
        }
    };
    // Abandons the calls still in flight, and the watch.
    drop(calls);
    if let Some(w) = watching {
        w.abort();
    }
    if let Err(f) = ended {
        io.fail(f).await;
    }
}

/// Opens a stream the daemon serves (`protocol`: FABRIC, IPC): its first
/// frame carries nothing after its version, and only a device guest has a
/// daemon (`link`); answers `ready`, or ends the stream saying why.
pub(super) async fn open<'a>(
    mut io: StreamIo,
    params: &[u8],
    link: Option<&'a FabricLink>,
    protocol: &str,
    ready: u16,
) -> Option<(StreamIo, &'a FabricLink)> {
    let failure = match link {
        _ if !params.is_empty() => Failure::protocol(format!(
            "{protocol} first frame has {} bytes after its version",
            params.len()
        )),
        None => Failure::new(
            Code::Unsupported,
            format!(
                "this guest is not a device of a fabric: {protocol} streams are served only under `weft daemon`"
            ),
        ),
        Some(link) => match io.write_frame(&Header::new(ready, 0).encode()).await {
            Ok(()) => return Some((io, link)),
            Err(f) => f,
        },
    };
    io.fail(failure).await;
    None
}

/// Writes each reply frame as it comes, until every sender is gone.
async fn write_replies(
    tx: &mut Writer,
    replies: &mut mpsc::Receiver<Vec<u8>>,
) -> Result<(), Failure> {
    while let Some(frame) = replies.recv().await {
        write_frame(tx, &frame).await?;
    }
    Ok(())
}

/// Reads requests until the program closes its end, starting a call for
/// each (at most [`MAX_IN_FLIGHT`] at once) and the watch a `WATCH` asks
/// for (into `watching`; ended when the program closes its end).
async fn read_requests(
    rx: &mut Reader,
    link: &FabricLink,
    answers: mpsc::Sender<Vec<u8>>,
    calls: &mut JoinSet<()>,
    watching: &mut Option<tokio::task::JoinHandle<()>>,
) -> Result<(), Failure> {
    let slots = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let mut body = Vec::new();
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return Ok(());
        };
        let Some(header) = read_frame(rx, &mut body).await? else {
            if let Some(w) = watching.take() {
                w.abort();
            }
            return Ok(());
        };
        let request = Request::decode(header.kind, &body).map_err(Failure::protocol)?;
        let id = request.id();
        let (call, wants) = match request {
            Request::Devices { available, .. } => {
                (LocalRequest::Devices { available }, Wants::Devices)
            }
            Request::Processes { device, .. } => (
                LocalRequest::Ps {
                    device: device.map(str::to_string),
                },
                Wants::Processes,
            ),
            Request::Stats { pid, .. } => (LocalRequest::Stats { pid: pid.into() }, Wants::Process),
            Request::Kill { pid, .. } => (LocalRequest::Kill { pid: pid.into() }, Wants::Done),
            Request::Move {
                pid,
                device,
                wait_ms,
                ..
            } => (
                LocalRequest::Move {
                    pid: pid.into(),
                    to: device.into(),
                    wait_ms,
                },
                Wants::Done,
            ),
            Request::Wait {
                limit_secs, pid, ..
            } => (
                LocalRequest::Wait {
                    pid: pid.into(),
                    limit_secs: limit_secs.into(),
                },
                Wants::Exit,
            ),
            Request::Spawn { head, device, args } => {
                let device = device.map(str::to_string);
                // Validated UTF-8 by the decoder.
                let args = args
                    .iter()
                    .map(|a| String::from_utf8_lossy(a).into_owned())
                    .collect();
                let image = read_image(rx, head).await?;
                let program = match head.source {
                    source::NAME => Program::Name {
                        name: String::from_utf8(image).map_err(|_| {
                            Failure::protocol("SPAWN names a program that is not UTF-8")
                        })?,
                    },
                    _ => Program::Module { bytes: image },
                };
                // Validated by the decoder.
                let engine = Tier::from_wire(head.tier).and_then(Tier::engine);
                let call = LocalRequest::Spawn {
                    device,
                    program,
                    args,
                    engine,
                };
                (call, Wants::Spawned)
            }
            Request::Image { request, .. } => {
                return Err(Failure::protocol(format!(
                    "IMAGE frame of request {request}, which is no SPAWN being sent"
                )));
            }
            Request::Watch { request } => {
                if watching.is_some() {
                    let frame = failed(request, "this stream already watches the fabric");
                    let _ = answers.send(frame).await;
                } else {
                    *watching = Some(tokio::spawn(start_watch(
                        request,
                        link.clone(),
                        answers.clone(),
                    )));
                }
                drop(slot);
                continue;
            }
        };
        let (link, answers) = (link.clone(), answers.clone());
        // Forget the calls answered so far: a stream may make many.
        while calls.try_join_next().is_some() {}
        calls.spawn(async move {
            let frame = reply_frame(id, wants, ask(&link, call).await);
            // The stream may have ended meanwhile.
            let _ = answers.send(frame).await;
            drop(slot);
        });
    }
}

/// Asks the daemon for a watch, answers `WATCHING` (or `FAILED`), then
/// delivers its events until the stream ends.
async fn start_watch(request: u32, link: FabricLink, answers: mpsc::Sender<Vec<u8>>) {
    let (reply, granted) = oneshot::channel();
    let granted = match link.send(FabricAsk::Watch(reply)).await {
        Ok(()) => granted.await.ok(),
        Err(_) => None,
    };
    let Some(watch) = granted else {
        let _ = answers
            .send(failed(request, "the fabric daemon is gone"))
            .await;
        return;
    };
    let mut buf = vec![0u8; HEADER + 4];
    let n = Reply::Watching { request }.encode(&mut buf).unwrap_or(0);
    buf.truncate(n);
    if answers.send(buf).await.is_ok() {
        watch::forward(watch, answers).await;
    }
}

/// Reads the `IMAGE` frames of the `SPAWN` `head`: exactly its image's
/// bytes, in frames of its request, nothing else in between.
async fn read_image(rx: &mut Reader, head: proto::SpawnHead) -> Result<Vec<u8>, Failure> {
    let len = head.image_len as usize;
    let mut image = Vec::with_capacity(len);
    let mut body = Vec::new();
    while image.len() < len {
        let Some(header) = read_frame(rx, &mut body).await? else {
            return Err(Failure::protocol("the stream ended inside a SPAWN's image"));
        };
        match Request::decode(header.kind, &body).map_err(Failure::protocol)? {
            Request::Image { request, chunk }
                if request == head.request
                    && chunk.len() <= proto::MAX_CHUNK
                    && chunk.len() <= len - image.len() =>
            {
                image.extend_from_slice(chunk);
            }
            other => {
                return Err(Failure::protocol(format!(
                    "SPAWN {} expects {} more image bytes in IMAGE frames, not frame kind {:#06x}",
                    head.request,
                    len - image.len(),
                    other.kind()
                )));
            }
        }
    }
    Ok(image)
}

/// Hands `request` to the daemon and waits for its answer; a daemon that
/// is gone, or drops the call, answers an error.
async fn ask(link: &FabricLink, request: LocalRequest) -> LocalResponse {
    let (reply, answer) = oneshot::channel();
    let call = FabricAsk::Call(FabricCall { request, reply });
    if link.send(call).await.is_err() {
        return LocalResponse::Error {
            message: "the fabric daemon is gone".into(),
        };
    }
    answer.await.unwrap_or_else(|_| LocalResponse::Error {
        message: "the fabric daemon dropped the call".into(),
    })
}

/// The reply frame to request `id`, which `wants` an answer of a kind, from
/// the daemon's `response`.
fn reply_frame(id: u32, wants: Wants, response: LocalResponse) -> Vec<u8> {
    let mut buf = vec![0u8; HEADER + MAX_BODY];
    let mut list = vec![0u8; MAX_BODY];
    let encoded = match (wants, &response) {
        (_, LocalResponse::Error { message }) => Reply::Failed {
            request: id,
            message: truncated(message),
        }
        .encode(&mut buf),
        (Wants::Devices, LocalResponse::Devices { devices }) => {
            encode_devices(id, devices, &mut list, &mut buf)
        }
        (Wants::Processes, LocalResponse::Processes { processes }) => {
            let entries: Vec<_> = processes.iter().map(entry).collect();
            List::<proto::Process>::encode(&entries, &mut list).and_then(|processes| {
                Reply::Processes {
                    request: id,
                    processes,
                }
                .encode(&mut buf)
            })
        }
        (Wants::Process, LocalResponse::Process { process }) => Reply::Process {
            request: id,
            process: entry(process),
        }
        .encode(&mut buf),
        (Wants::Done, LocalResponse::Done) => Reply::Done { request: id }.encode(&mut buf),
        (Wants::Spawned, LocalResponse::Spawned { pid }) => {
            Reply::Spawned { request: id, pid }.encode(&mut buf)
        }
        (Wants::Exit, LocalResponse::Exited { pid, status }) => Reply::Exited {
            request: id,
            status: *status,
            pid,
        }
        .encode(&mut buf),
        (Wants::Exit, LocalResponse::Running { pid }) => {
            Reply::Running { request: id, pid }.encode(&mut buf)
        }
        (wants, other) => {
            let message = format!("the daemon answered a {wants:?} call with {other:?}");
            return failed(id, &message);
        }
    };
    match encoded {
        Some(n) => {
            buf.truncate(n);
            buf
        }
        None => failed(id, "the answer does not fit one frame (§17.3)"),
    }
}

fn encode_devices(id: u32, devices: &[Device], list: &mut [u8], buf: &mut [u8]) -> Option<usize> {
    let addresses: Vec<Vec<&str>> = devices
        .iter()
        .map(|d| d.addresses.iter().map(String::as_str).collect())
        .collect();
    let entries: Vec<_> = devices
        .iter()
        .zip(&addresses)
        .map(|(d, addresses)| DeviceEntry {
            head: DeviceHead::new(d.available, d.figures.map(|f| (f.processes, f.memory))),
            name: &d.name,
            id: &d.id,
            addresses,
        })
        .collect();
    let devices = List::<proto::Device>::encode(&entries, list)?;
    Reply::Devices {
        request: id,
        devices,
    }
    .encode(buf)
}

/// `p` as a list entry.
fn entry(p: &Process) -> proto::Process<'_> {
    proto::Process {
        head: ProcessHead::new(p.cpu_ns, p.memory, p.streams, p.status),
        pid: &p.pid,
        device: &p.device,
        name: &p.name,
        state: &p.state,
    }
}

/// A `FAILED` reply to `id` saying `message`.
fn failed(id: u32, message: &str) -> Vec<u8> {
    let mut buf = vec![0u8; HEADER + 4 + 2 + proto::MAX_TEXT];
    let reply = Reply::Failed {
        request: id,
        message: truncated(message),
    };
    let n = reply.encode(&mut buf).unwrap_or(0);
    buf.truncate(n);
    buf
}

/// `message`, cut to at most [`proto::MAX_TEXT`] bytes on a character
/// boundary.
fn truncated(message: &str) -> &str {
    let mut end = message.len().min(proto::MAX_TEXT);
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    &message[..end]
}
