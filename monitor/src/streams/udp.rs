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
    Datagram, MAX_DATAGRAM, datagram_frame_len, decode_lone_addr, encode_addr, net_kind,
};

/// Senders remembered as allowed destinations.
const PEERS: usize = 1024;
/// Receive buffer: larger than any datagram, so a too-large one is seen
/// whole and dropped rather than cut.
const RECV_BUF: usize = 64 * 1024;

/// Serves a stream whose first frame was `UDP_BIND` with `params`.
pub async fn serve(mut io: StreamIo, params: &[u8], policy: &Policy) {
    let socket = match bind(params, policy).await {
        Ok(s) => s,
        Err(f) => return io.fail(f).await,
    };
    match exchange(&mut io, &socket, policy).await {
        Ok(()) => {
            let _ = io.tx.shutdown().await;
        }
        Err(f) => io.fail(f).await,
    }
}

/// Binds the socket the parameters ask for, if `--listen` grants it, and
/// returns it once the guest was told its address.
async fn bind(params: &[u8], policy: &Policy) -> Result<UdpSocket, Failure> {
    let asked = decode_lone_addr(params).map_err(Failure::protocol)?;
    let addr = policy.grant_listen(asked, "binding UDP to")?;
    UdpSocket::bind(addr)
        .await
        .map_err(|e| Failure::io(&format!("bind UDP to {addr}"), &e))
}

/// Tells the guest the bound address, then relays datagrams until the guest
/// closes its side (`Ok`) or breaks the protocol.
async fn exchange(io: &mut StreamIo, socket: &UdpSocket, policy: &Policy) -> Result<(), Failure> {
    let local = socket
        .local_addr()
        .map_err(|e| Failure::io("socket address", &e))?;
    let mut out = vec![0u8; datagram_frame_len(MAX_DATAGRAM)];
    let n = {
        let mut e = weft_control::frame::Encoder::new(&mut out, net_kind::BOUND);
        encode_addr(&mut e, local);
        e.finish().unwrap_or(0)
    };
    io.write_frame(&out[..n]).await?;
    let mut incoming = Incoming::default();
    let mut peers = VecDeque::with_capacity(PEERS);
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
                if header.kind != net_kind::SEND_TO {
                    return Err(Failure::protocol(format!(
                        "frame kind {:#06x} on a UDP stream",
                        header.kind
                    )));
                }
                let d = Datagram::decode(&incoming.body).map_err(Failure::protocol)?;
                if let Err(f) = send(socket, d, &peers, policy).await {
                    io.write_error(f.code, &f.message).await?;
                }
            }
            Event::Socket(Ok((from, len))) if len <= MAX_DATAGRAM => {
                if !peers.contains(&from) {
                    if peers.len() == PEERS {
                        peers.pop_front();
                    }
                    peers.push_back(from);
                }
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

/// Sends `d` if the policy allows its destination.
async fn send(
    socket: &UdpSocket,
    d: Datagram<'_>,
    peers: &VecDeque<SocketAddr>,
    policy: &Policy,
) -> Result<(), Failure> {
    policy.grant_send(d.addr, peers.contains(&d.addr))?;
    socket
        .send_to(d.payload, d.addr)
        .await
        .map(drop)
        .map_err(|e| Failure::new(code_of(&e), format!("send to {}: {e}", d.addr)))
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
