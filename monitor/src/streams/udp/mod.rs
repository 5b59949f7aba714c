//! UDP streams (PROTOCOL.md §12): one bound socket per stream, one datagram
//! per frame each way.
//!
//! The task waits for whichever comes first: a `SEND_TO` frame from the
//! guest or a datagram from the socket. Frames are gathered by [`Incoming`],
//! which keeps a partly read frame across waits, so neither wait loses
//! bytes. A send the policy refuses (or the host fails) is answered with an
//! `ERROR` frame and the stream goes on; a frame that breaks the protocol
//! ends it.
//!
//! Sending is allowed to `--connect` addresses and to the last [`PEERS`]
//! distinct addresses a datagram came from (so a server can answer). While
//! the guest does not read its datagrams the task stops receiving, and the
//! host drops what overflows the socket's buffer, as UDP may.
//!
//! Under `weft daemon`, a bind on a fabric address (this device's or
//! another's) is served by [`remote`]: the address's owner holds the
//! socket (PROTOCOL.md §16.7), so that it can follow its app when the app
//! moves (§12.5). Every other bind is local, as under `weft run`.

mod remote;

pub use remote::{Arrival, MARKER_ROOM, RemoteSocket, UdpBindAsk, UdpRoute};

use super::fabric::{FabricAsk, FabricLink};
use super::framed::{Failure, Reader, StreamIo, code_of};
use super::policy::Policy;
use std::collections::VecDeque;
use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use tokio::io::{AsyncRead, AsyncWriteExt, ReadBuf};
use tokio::net::UdpSocket;
use weft_control::frame::{HEADER, Header};
use weft_control::net_proto::{
    Datagram, MAX_DATAGRAM, bind_flags, bound_flags, datagram_frame_len, decode_flagged,
    encode_bound, net_kind,
};

/// Senders remembered as allowed destinations.
const PEERS: usize = 1024;
/// Receive buffer: larger than any datagram, so a too-large one is seen
/// whole and dropped rather than cut.
const RECV_BUF: usize = 64 * 1024;

/// How a UDP stream's binder asked: with flags or not (§12.5: with flags
/// `BOUND` carries flags too), and whether its app may move (then a socket
/// that follows it carries `PAUSED` and `RESUMED`).
#[derive(Clone, Copy, Debug)]
pub struct Binder {
    pub movable: Option<bool>,
}

impl Binder {
    /// The flags `BOUND` carries for a socket that `follows` or not.
    fn bound_flags(self, follows: bool) -> Option<u32> {
        self.movable
            .map(|_| if follows { bound_flags::FOLLOWS } else { 0 })
    }
}

/// Serves a stream of the process of pipe region `region` whose first
/// frame was `UDP_BIND` with `params`; under a daemon (`fabric`), a bind on
/// a fabric address is served by its owner.
pub async fn serve(
    mut io: StreamIo,
    params: &[u8],
    region: u64,
    policy: &Policy,
    fabric: Option<&FabricLink>,
) {
    let (asked, flags) = match decode_flagged(params, bind_flags::ALL) {
        Ok(a) => a,
        Err(e) => return io.fail(Failure::protocol(e)).await,
    };
    let binder = Binder {
        movable: flags.map(|f| f & bind_flags::MOVABLE != 0),
    };
    if let Some(link) = fabric
        && !asked.ip().is_unspecified()
    {
        match route(link, asked, region).await {
            UdpRoute::Local => {}
            UdpRoute::Remote(socket) => return remote::serve(io, socket, binder).await,
            UdpRoute::Refused { code, message } => {
                return io.fail(Failure::new(code, message)).await;
            }
        }
    }
    let socket = match bind(asked, policy).await {
        Ok(s) => s,
        Err(f) => return io.fail(f).await,
    };
    match exchange(&mut io, &socket, policy, binder.bound_flags(false)).await {
        Ok(()) => {
            let _ = io.tx.shutdown().await;
        }
        Err(f) => io.fail(f).await,
    }
}

/// Asks the daemon where a bind on `addr` by the process of `region` is
/// served.
async fn route(link: &FabricLink, addr: SocketAddr, region: u64) -> UdpRoute {
    let (reply, answer) = tokio::sync::oneshot::channel();
    if link
        .send(FabricAsk::Udp(UdpBindAsk {
            addr,
            region,
            reply,
        }))
        .await
        .is_err()
    {
        return UdpRoute::Local;
    }
    // A daemon that drops the question has no fabric to route to.
    answer.await.unwrap_or(UdpRoute::Local)
}

/// Binds the socket asked for, if `--listen` grants it.
async fn bind(asked: SocketAddr, policy: &Policy) -> Result<UdpSocket, Failure> {
    let addr = policy.grant_listen(asked, "binding UDP to")?;
    UdpSocket::bind(addr)
        .await
        .map_err(|e| Failure::io(&format!("bind UDP to {addr}"), &e))
}

/// Tells the guest the bound address (with `flags`, if the bind had them),
/// then relays datagrams until the guest closes its side (`Ok`) or breaks
/// the protocol.
async fn exchange(
    io: &mut StreamIo,
    socket: &UdpSocket,
    policy: &Policy,
    flags: Option<u32>,
) -> Result<(), Failure> {
    let local = socket
        .local_addr()
        .map_err(|e| Failure::io("socket address", &e))?;
    let mut out = vec![0u8; datagram_frame_len(MAX_DATAGRAM)];
    write_bound(io, local, flags, &mut out).await?;
    let mut incoming = Incoming::default();
    let mut peers = Peers::default();
    let mut recv = vec![0u8; RECV_BUF];
    loop {
        let event = poll_fn(|cx| {
            if let Poll::Ready(r) = incoming.poll_next(&mut io.rx, cx) {
                return Poll::Ready(Event::Guest(r));
            }
            let mut buf = ReadBuf::new(&mut recv);
            socket
                .poll_recv_from(cx, &mut buf)
                .map(|r| Event::Socket(r.map(|from| (from, buf.filled().len()))))
        })
        .await;
        match event {
            Event::Guest(r) => {
                let Some(header) = r? else { return Ok(()) };
                let d = incoming.send_to(header)?;
                if let Err(f) = send(socket, d.addr, d.payload, &peers, policy).await {
                    io.write_error(f.code, &f.message).await?;
                }
            }
            Event::Socket(Ok((from, len))) if len <= MAX_DATAGRAM => {
                peers.saw(from);
                let d = Datagram {
                    addr: from,
                    payload: &recv[..len],
                };
                let n = d.encode(net_kind::DATAGRAM, &mut out).unwrap_or(0);
                io.write_frame(&out[..n]).await?;
            }
            // Too large for a frame, or an error the host reports for an
            // earlier send (an ICMP "port unreachable"): dropped.
            Event::Socket(_) => {}
        }
    }
}

/// Tells the guest its socket's address (`BOUND`, with `flags` if the
/// bind had them), using `out` (at least a datagram frame long).
async fn write_bound(
    io: &mut StreamIo,
    local: SocketAddr,
    flags: Option<u32>,
    out: &mut [u8],
) -> Result<(), Failure> {
    let n = encode_bound(local, flags, out).unwrap_or(0);
    io.write_frame(&out[..n]).await
}

/// The last [`PEERS`] distinct addresses datagrams came from: a socket may
/// answer them whatever `--connect` says.
#[derive(Default)]
pub struct Peers(VecDeque<SocketAddr>);

impl Peers {
    /// Remembers `from`, forgetting the oldest beyond [`PEERS`].
    pub fn saw(&mut self, from: SocketAddr) {
        if !self.0.contains(&from) {
            if self.0.len() == PEERS {
                self.0.pop_front();
            }
            self.0.push_back(from);
        }
    }

    fn contains(&self, addr: SocketAddr) -> bool {
        self.0.contains(&addr)
    }
}

/// Sends `payload` to `to` from `socket` if the policy allows `to` (a
/// `--connect` address or one of `peers`); a refusal or the host's error
/// says why, with its §9.4 code.
pub async fn send(
    socket: &UdpSocket,
    to: SocketAddr,
    payload: &[u8],
    peers: &Peers,
    policy: &Policy,
) -> Result<(), Failure> {
    policy.grant_send(to, peers.contains(to))?;
    socket
        .send_to(payload, to)
        .await
        .map(drop)
        .map_err(|e| Failure::new(code_of(&e), format!("send to {to}: {e}")))
}

/// What woke a UDP stream's task.
enum Event {
    /// A whole frame from the guest (its body is in [`Incoming::body`]),
    /// `None` at a clean end.
    Guest(Result<Option<Header>, Failure>),
    /// A datagram (sender, length in the receive buffer).
    Socket(io::Result<(SocketAddr, usize)>),
}

/// Gathers the guest's frames across waits (cancel safe: a partly read
/// frame stays here).
#[derive(Default)]
struct Incoming {
    raw: [u8; HEADER],
    got: usize,
    header: Option<Header>,
    /// The last whole frame's body once [`poll_next`](Self::poll_next)
    /// returned its header.
    body: Vec<u8>,
    filled: usize,
}

impl Incoming {
    /// The datagram of the whole frame `header` heads: a `SEND_TO`, the
    /// only frame the guest sends on a bound UDP stream.
    fn send_to(&self, header: Header) -> Result<Datagram<'_>, Failure> {
        if header.kind != net_kind::SEND_TO {
            return Err(Failure::protocol(format!(
                "frame kind {:#06x} on a UDP stream",
                header.kind
            )));
        }
        Datagram::decode(&self.body).map_err(Failure::protocol)
    }

    /// Reads until a frame is whole: its header (body in `self.body`), or
    /// `None` if the stream ended between frames.
    fn poll_next(
        &mut self,
        rx: &mut Reader,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Option<Header>, Failure>> {
        loop {
            let (dst, in_header) = match self.header {
                Some(h) if self.filled == h.len as usize => {
                    self.header = None;
                    self.got = 0;
                    return Poll::Ready(Ok(Some(h)));
                }
                Some(_) => (&mut self.body[self.filled..], false),
                None => (&mut self.raw[self.got..], true),
            };
            let mut buf = ReadBuf::new(dst);
            let read = ready!(Pin::new(&mut *rx).poll_read(cx, &mut buf));
            let n = buf.filled().len();
            if let Err(e) = read {
                return Poll::Ready(Err(Failure::protocol(format!("ring: {e}"))));
            }
            if n == 0 {
                return Poll::Ready(match (in_header, self.got) {
                    (true, 0) => Ok(None),
                    _ => Err(Failure::protocol("stream ended inside a frame")),
                });
            }
            if !in_header {
                self.filled += n;
                continue;
            }
            self.got += n;
            if self.got == HEADER {
                let h = Header::decode(&self.raw).map_err(Failure::protocol)?;
                self.body.resize(h.len as usize, 0);
                self.filled = 0;
                self.header = Some(h);
            }
        }
    }
}
