//! The MOVE stream (PROTOCOL.md §19.3): a Wasm runtime's line to its
//! daemon, over which its app is started afresh or restored from a
//! snapshot, and later captured to move to another device.
//!
//! The stream asks the daemon once how the runtime begins
//! ([`MoveAsk::Open`]); the answer ([`Begin`]) carries the channel the
//! daemon sends its [`MoveOrder`]s on, one at a time. A capture's parts are
//! checked as they come (never more than [`MAX_SNAPSHOT`] bytes) and the
//! whole against `CAPTURED`'s length and `snapshot::check`; the daemon gets
//! the bytes or why there are none.
//!
//! Invariants: nothing the runtime sends blocks the daemon (it waits only
//! on one-shot answers, which end when the stream does); a stream that
//! ends or breaks the protocol drops its order channel, so the daemon's
//! later orders fail at once; the stream serves nothing outside a daemon.

use super::fabric::FabricLink;
use super::framed::{Failure, StreamIo};
use super::region::Shared;
use crate::streams::FabricAsk;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};
use weft_control::frame::Code;
use weft_control::move_proto::{MAX_SMALL, MAX_SNAPSHOT, Order, PART, Report};
use weft_control::snapshot;

/// What a MOVE stream asks the daemon.
#[derive(Debug)]
pub enum MoveAsk {
    /// The runtime of pipe region `region` opened its stream: how does its
    /// app begin?
    Open {
        region: u64,
        granted: oneshot::Sender<Begin>,
    },
    /// The app of the runtime of pipe region `region` asks to be moved to
    /// device `to` (`GO`).
    Go { region: u64, to: String },
}

/// How a runtime's app begins, as the daemon says.
#[derive(Debug)]
pub enum Begin {
    /// From its module, whose SHA-256 this is.
    Start {
        module: [u8; 32],
        orders: mpsc::Receiver<MoveOrder>,
    },
    /// From `snapshot`, of the module whose SHA-256 this is; `restored`
    /// learns whether the runtime took it.
    Restore {
        module: [u8; 32],
        snapshot: Arc<Vec<u8>>,
        restored: oneshot::Sender<Result<(), String>>,
        orders: mpsc::Receiver<MoveOrder>,
    },
    /// The process cannot move (why): the stream ends `Unsupported`, and
    /// the runtime runs its app without moves.
    Refused(String),
    /// A snapshot of about `len` bytes is on its way (the runtime was
    /// started ahead of it, §19.4): the runtime is told to ready its memory
    /// (`PREPARE`); `ready` learns when it has (`READY`), and `then` says
    /// how it begins once the snapshot is here.
    Prepare {
        len: u64,
        ready: oneshot::Sender<()>,
        then: oneshot::Receiver<Begin>,
    },
}

/// Why a capture gave no snapshot.
#[derive(Debug)]
pub enum Uncaptured {
    /// The runtime said why (`FAILED`), or its stream ended: the app goes
    /// on (a runtime whose stream ends releases a held app).
    Refused(String),
    /// Its snapshot failed the check: the runtime holds the app until it
    /// is told `RELEASE`.
    Broken(String),
}

/// What the daemon orders a runtime's stream.
#[derive(Debug)]
pub enum MoveOrder {
    /// Capture the app within `wait_ms`: each part of its snapshot goes
    /// to `parts` as it comes, and `captured` gets the header of the
    /// snapshot once it was checked whole, or why there is none. The app
    /// is held after a snapshot.
    Capture {
        wait_ms: u32,
        parts: mpsc::UnboundedSender<Vec<u8>>,
        captured: oneshot::Sender<Result<snapshot::Header, Uncaptured>>,
    },
    /// The move failed: the held app goes on.
    Release,
    /// The app moved: the runtime ends.
    End,
}

/// Serves a stream whose first frame was `MOVE` with `params` (none), for
/// the process of pipe region `shared`.
pub async fn serve(io: StreamIo, params: &[u8], link: Option<&FabricLink>, shared: &Shared) {
    let Some(link) = link else {
        let why = "this guest is not a device of a fabric: apps move only under `weft daemon`";
        return io.fail(Failure::new(Code::Unsupported, why)).await;
    };
    if !params.is_empty() {
        let why = format!(
            "MOVE first frame has {} bytes after its version",
            params.len()
        );
        return io.fail(Failure::protocol(why)).await;
    }
    let (granted, begin) = oneshot::channel();
    let ask = MoveAsk::Open {
        region: shared.index(),
        granted,
    };
    let mut begin = match link.send(FabricAsk::Move(ask)).await {
        Ok(()) => begin.await.ok(),
        Err(_) => None,
    };
    let mut io = io;
    if let Some(Begin::Prepare { len, ready, then }) = begin {
        if let Err(f) = prepare(&mut io, len).await {
            return io.fail(f).await;
        }
        let _ = ready.send(());
        begin = then.await.ok();
    }
    let ended = match begin {
        None => Err(Failure::new(Code::Unsupported, "the fabric daemon is gone")),
        Some(Begin::Refused(why)) => Err(Failure::new(Code::Unsupported, why)),
        Some(Begin::Prepare { .. }) => Err(Failure::new(
            Code::Invalid,
            "the daemon prepared the runtime twice",
        )),
        Some(Begin::Start { module, orders }) => {
            match io.write_frame(&small(Order::Start { module })).await {
                Ok(()) => follow(&mut io, orders, link, shared.index()).await,
                Err(f) => Err(f),
            }
        }
        Some(Begin::Restore {
            module,
            snapshot,
            restored,
            orders,
        }) => match restore(&mut io, module, &snapshot).await {
            Ok(()) => {
                let _ = restored.send(Ok(()));
                follow(&mut io, orders, link, shared.index()).await
            }
            Err(why) => {
                let _ = restored.send(Err(why.message.clone()));
                Err(why)
            }
        },
    };
    if let Err(f) = ended {
        io.fail(f).await;
    }
}

/// Tells the runtime to ready its memory for a snapshot of about `len`
/// bytes, and waits until it has.
async fn prepare(io: &mut StreamIo, len: u64) -> Result<(), Failure> {
    let order = Order::Prepare {
        len: len.clamp(1, MAX_SNAPSHOT),
    };
    io.write_frame(&small(order)).await?;
    let mut body = Vec::new();
    match read_report(io, &mut body).await? {
        Report::Ready => Ok(()),
        other => Err(Failure::protocol(format!("{other:?} where READY was due"))),
    }
}

/// An order that is not a part, as a frame.
fn small(order: Order<'_>) -> Vec<u8> {
    let mut buf = vec![0u8; MAX_SMALL];
    // Orders other than parts are at most 48 bytes: they always fit.
    let n = order.encode(&mut buf).unwrap_or(0);
    buf.truncate(n);
    buf
}

/// Hands the runtime `snapshot` and waits for its answer.
async fn restore(io: &mut StreamIo, module: [u8; 32], snapshot: &[u8]) -> Result<(), Failure> {
    let len = snapshot.len() as u64;
    io.write_frame(&small(Order::Restore { module, len }))
        .await?;
    let mut buf = vec![0u8; PART + 64];
    for part in snapshot.chunks(PART) {
        let n = Order::Part(part)
            .encode(&mut buf)
            .ok_or_else(|| Failure::protocol("a snapshot part does not fit a frame"))?;
        io.write_frame(&buf[..n]).await?;
    }
    let mut body = Vec::new();
    match read_report(io, &mut body).await? {
        Report::Restored => Ok(()),
        Report::Failed(why) => Err(Failure::new(
            Code::Invalid,
            format!("the runtime refused the snapshot: {why}"),
        )),
        other => Err(Failure::protocol(format!(
            "{other:?} where RESTORED or FAILED was due"
        ))),
    }
}

/// Reads the runtime's next frame, which must be a report; the end of the
/// stream here is a failure too.
async fn read_report<'b>(io: &mut StreamIo, body: &'b mut Vec<u8>) -> Result<Report<'b>, Failure> {
    let header = io
        .read_frame(body)
        .await?
        .ok_or_else(|| Failure::new(Code::Closed, "the runtime closed its MOVE stream"))?;
    Report::decode(header.kind, body).map_err(Failure::protocol)
}

/// Carries out the daemon's orders until the runtime ends the stream, the
/// daemon drops its end, or the runtime breaks the protocol; hands the
/// daemon the app's own requests to move (`GO`).
async fn follow(
    io: &mut StreamIo,
    mut orders: mpsc::Receiver<MoveOrder>,
    link: &FabricLink,
    region: u64,
) -> Result<(), Failure> {
    let mut body = Vec::new();
    loop {
        // Between orders the runtime sends only `GO`; the end of the stream
        // is its end.
        let order = tokio::select! {
            order = orders.recv() => order,
            frame = io.read_frame(&mut body) => {
                let Some(header) = frame? else { return Ok(()) };
                match Report::decode(header.kind, &body).map_err(Failure::protocol)? {
                    Report::Go(to) => {
                        let go = MoveAsk::Go { region, to: to.to_string() };
                        if link.send(FabricAsk::Move(go)).await.is_err() {
                            return Ok(());
                        }
                        continue;
                    }
                    other => return Err(Failure::protocol(format!(
                        "{other:?} where the runtime had nothing to answer"
                    ))),
                }
            }
        };
        match order {
            None => return Ok(()),
            Some(MoveOrder::Capture {
                wait_ms,
                parts,
                captured,
            }) => {
                io.write_frame(&small(Order::Capture { wait_ms })).await?;
                let result = capture(io, &mut body, &parts).await?;
                let _ = captured.send(result);
            }
            Some(MoveOrder::Release) => io.write_frame(&small(Order::Release)).await?,
            Some(MoveOrder::End) => io.write_frame(&small(Order::End)).await?,
        }
    }
}

/// Reads a capture's answer, handing each part to `parts` as it comes
/// and checking the snapshot on the way ([`snapshot::Checker`]; it is
/// never held whole here): its header once it passed the check, or why
/// there is none. A frame that breaks the protocol ends the stream
/// (`Err`).
async fn capture(
    io: &mut StreamIo,
    body: &mut Vec<u8>,
    parts: &mpsc::UnboundedSender<Vec<u8>>,
) -> Result<Result<snapshot::Header, Uncaptured>, Failure> {
    let mut checker = snapshot::Checker::new();
    loop {
        match read_report(io, body).await? {
            Report::Part(part) => {
                if checker.len() + part.len() as u64 > MAX_SNAPSHOT {
                    return Err(Failure::protocol(format!(
                        "a snapshot of more than {MAX_SNAPSHOT} bytes"
                    )));
                }
                checker.update(part);
                // Nobody takes them once the hand-over failed.
                let _ = parts.send(part.to_vec());
            }
            Report::Captured { len } => {
                if len != checker.len() {
                    return Err(Failure::protocol(format!(
                        "CAPTURED says {len} bytes, its parts carried {}",
                        checker.len()
                    )));
                }
                return Ok(checker
                    .finish()
                    .map_err(|e| Uncaptured::Broken(format!("its snapshot is broken: {e}"))));
            }
            Report::Failed(why) if checker.is_empty() => {
                return Ok(Err(Uncaptured::Refused(why.to_string())));
            }
            other => {
                return Err(Failure::protocol(format!(
                    "{other:?} inside a capture's answer"
                )));
            }
        }
    }
}
