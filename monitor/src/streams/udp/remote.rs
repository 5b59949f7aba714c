//! A UDP stream whose socket another device holds: a bind on a fabric
//! address that device owns (PROTOCOL.md §12.4, §16.7).
//!
//! The stream's task asks the daemon ([`UdpBindAsk`]); the daemon answers
//! where the bind is served ([`UdpRoute`]): here, as any bind, or on the
//! owner, through a [`RemoteSocket`] whose queues the daemon moves over
//! the fabric. From then on the task relays as a local socket's does:
//! `SEND_TO` frames become sends, arrivals become `DATAGRAM` and `ERROR`
//! frames, and, for a binder that asked with flags (§12.5), the owner's
//! hold and release become `PAUSED` and `RESUMED`.
//!
//! Invariants: the arrivals queue is bounded and its producer never waits
//! (a guest that does not read loses datagrams, as UDP may, but the last
//! [`MARKER_ROOM`] places are kept for the owner's markers); dropping the
//! [`RemoteSocket`] (the stream ends) closes the sends queue, which tells
//! the daemon to close the owner's socket.

use super::{Binder, Incoming, write_bound};
use crate::streams::framed::{Failure, StreamIo};
use std::future::poll_fn;
use std::net::SocketAddr;
use std::task::Poll;
use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, oneshot};
use weft_control::frame::Code;
use weft_control::net_proto::{Datagram, MAX_DATAGRAM, datagram_frame_len, net_kind};

/// Places of an arrivals queue only the owner's markers (`Paused`,
/// `Resumed`) take.
pub const MARKER_ROOM: usize = 2;

/// A UDP stream's question to the daemon: where is a bind on `addr` by the
/// process of pipe region `region` served?
#[derive(Debug)]
pub struct UdpBindAsk {
    pub addr: SocketAddr,
    pub region: u64,
    pub reply: oneshot::Sender<UdpRoute>,
}

/// Where a bind is served.
#[derive(Debug)]
pub enum UdpRoute {
    /// Here: the address is no other device's fabric address.
    Local,
    /// On the device that owns the address, which bound it.
    Remote(RemoteSocket),
    /// The owner (or the fabric) refused it: `code` (§9.4) and why.
    Refused { code: Code, message: String },
}

/// What came for a remote socket.
#[derive(Debug, PartialEq, Eq)]
pub enum Arrival {
    /// A datagram the socket received from `from`.
    Datagram { from: SocketAddr, payload: Vec<u8> },
    /// A send the owner refused or the host failed.
    Error { code: Code, message: String },
    /// The owner holds what comes from now on: the app is moving.
    Paused,
    /// The owner delivers again (the move failed), what it held first.
    Resumed,
}

/// A socket held by another device, as the stream sees it.
#[derive(Debug)]
pub struct RemoteSocket {
    /// The socket's name: the fabric address and port the owner bound.
    pub local: SocketAddr,
    /// What comes for the socket (bounded; fed without waiting).
    pub arrivals: mpsc::Receiver<Arrival>,
    /// Datagrams to send from it (destination, payload).
    pub sends: mpsc::Sender<(SocketAddr, Vec<u8>)>,
    /// Why the socket is gone, if the owner went away.
    pub gone: oneshot::Receiver<String>,
}

/// What woke a remote UDP stream's task.
enum Event {
    Guest(Result<Option<weft_control::frame::Header>, Failure>),
    Arrival(Option<Arrival>),
    Gone(Result<String, oneshot::error::RecvError>),
}

/// Serves `binder`'s stream over `socket` until the guest closes its side
/// or the socket is gone.
pub async fn serve(mut io: StreamIo, socket: RemoteSocket, binder: Binder) {
    match exchange(&mut io, socket, binder).await {
        Ok(()) => {
            let _ = io.tx.shutdown().await;
        }
        Err(f) => io.fail(f).await,
    }
}

async fn exchange(
    io: &mut StreamIo,
    mut socket: RemoteSocket,
    binder: Binder,
) -> Result<(), Failure> {
    let mut out = vec![0u8; datagram_frame_len(MAX_DATAGRAM)];
    write_bound(io, socket.local, binder.bound_flags(true), &mut out).await?;
    let movable = binder.movable == Some(true);
    let mut incoming = Incoming::default();
    loop {
        let event = poll_fn(|cx| {
            if let Poll::Ready(r) = incoming.poll_next(&mut io.rx, cx) {
                return Poll::Ready(Event::Guest(r));
            }
            if let Poll::Ready(a) = socket.arrivals.poll_recv(cx) {
                return Poll::Ready(Event::Arrival(a));
            }
            std::pin::Pin::new(&mut socket.gone)
                .poll(cx)
                .map(Event::Gone)
        })
        .await;
        match event {
            Event::Guest(r) => {
                let Some(header) = r? else { return Ok(()) };
                let d = incoming.send_to(header)?;
                if socket
                    .sends
                    .send((d.addr, d.payload.to_vec()))
                    .await
                    .is_err()
                {
                    return Err(gone("the fabric daemon is gone".into()));
                }
            }
            Event::Arrival(Some(Arrival::Datagram { from, payload })) => {
                let d = Datagram {
                    addr: from,
                    payload: &payload,
                };
                let n = d.encode(net_kind::DATAGRAM, &mut out).unwrap_or(0);
                io.write_frame(&out[..n]).await?;
            }
            Event::Arrival(Some(Arrival::Error { code, message })) => {
                io.write_error(code, &message).await?;
            }
            // Only a runtime that asked is told; no one else's app moves.
            Event::Arrival(Some(marker @ (Arrival::Paused | Arrival::Resumed))) => {
                if movable {
                    let k = if marker == Arrival::Paused {
                        net_kind::PAUSED
                    } else {
                        net_kind::RESUMED
                    };
                    let n = weft_control::frame::Encoder::new(&mut out, k)
                        .finish()
                        .unwrap_or(0);
                    io.write_frame(&out[..n]).await?;
                }
            }
            Event::Arrival(None) => return Err(gone("the fabric daemon is gone".into())),
            Event::Gone(why) => {
                return Err(gone(
                    why.unwrap_or_else(|_| "the fabric daemon is gone".into()),
                ));
            }
        }
    }
}

/// The stream's end when its socket is gone.
fn gone(why: String) -> Failure {
    Failure::new(Code::Unreachable, why)
}
