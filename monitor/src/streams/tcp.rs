//! TCP streams (PROTOCOL.md §11): listeners that announce the connections
//! they accept, and connections — taken from a listener or made outward —
//! relayed as raw bytes.
//!
//! A listener stream's task accepts while its backlog ([`BACKLOG`]
//! connections announced and not yet taken) has room, parks each accepted
//! socket in [`Pending`] and announces it with a `CONNECTION` frame. The
//! guest takes one on a new stream (`TCP_ACCEPT`), whose task then relays it.
//! Ids come from one counter, so a stale id never names a newer connection,
//! even after a listener's slot is reused.
//!
//! The relay moves both directions at once, between the socket and the rings
//! in place (`readv`/`writev`, no buffer in between: [`zero_copy`]).
//! A direction's end is passed on (guest closes its ring → `shutdown(Write)`;
//! socket end-of-file → the `to_guest` ring is closed); a socket error sets
//! the status word and ends the stream, which closes both rings; a ring the
//! guest corrupted ends it with `Protocol` and a line on `weft`'s standard
//! error (§7.7).
//!
//! The policy ([`Policy::grant_listen`], [`Policy::grant_connect`]) is
//! checked before any socket is made or handed over: a listener takes the
//! grant's socket bound at start ([`super::prebound`]) only once the grant
//! is found. The parked connections ([`Pending`])
//! are one region's: a process takes only connections its own listeners
//! announced.

use super::budget::Budgets;
use super::dispatch::Services;
use super::framed::{self, Failure, Reader, StreamIo};
use super::policy::Policy;
use super::region::Shared;
use super::zero_copy;
use std::collections::HashMap;
use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWriteExt, ReadBuf};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};
use weft_control::frame::Code;
use weft_control::net_proto::{MAX_TCP_FRAME, TcpReply, TcpRequest};
use weft_control::streams::RING_CAPACITY;
use weft_data_pipe::RawRegion;

/// Connections a listener announces and the guest has not taken yet; while
/// this many wait, the listener accepts no more (the host's backlog holds
/// further peers).
pub const BACKLOG: usize = 64;
/// How long an outgoing connection may take before `TimedOut`.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a closed stream's last bytes may take to reach a slow peer.
const LINGER: Duration = Duration::from_secs(30);
/// Pause after a failed `accept` (e.g. out of descriptors) before retrying.
const ACCEPT_RETRY: Duration = Duration::from_millis(50);

/// Serves a stream whose first frame was `kind` with `params`, with its
/// region's services (the grants, the region's backlog, the budgets).
pub async fn serve(
    mut io: StreamIo,
    kind: u16,
    params: &[u8],
    shared: &Shared,
    services: &Services,
) {
    let (policy, pending) = (&services.policy, &services.pending);
    let budgets = &services.budgets;
    let request = match TcpRequest::decode_params(kind, params) {
        Ok(r) => r,
        Err(e) => return io.fail(Failure::protocol(e)).await,
    };
    let result = match request {
        TcpRequest::Listen { addr } => listen(&mut io, addr, policy, pending).await,
        TcpRequest::Connect { addr } => match connect(addr, policy).await {
            Ok(s) => return relay(io, s, addr, Connection::Connected, shared, budgets).await,
            Err(f) => Err(f),
        },
        TcpRequest::Accept { listener, id } => match pending.take(listener.into(), id) {
            Some((s, peer)) => {
                return relay(io, s, peer, Connection::Accepted, shared, budgets).await;
            }
            None => Err(Failure::new(
                Code::Closed,
                format!(
                    "no connection {id} waits on listener stream {listener}: never announced, \
                     already taken, or not a listener of this process"
                ),
            )),
        },
    };
    match result {
        Ok(()) => {
            let _ = io.tx.shutdown().await;
        }
        Err(f) => io.fail(f).await,
    }
}

/// Binds a listener and announces its connections until the guest closes
/// its side of the stream (`Ok`) or breaks the protocol.
async fn listen(
    io: &mut StreamIo,
    asked: SocketAddr,
    policy: &Policy,
    pending: &Pending,
) -> Result<(), Failure> {
    let addr = policy.grant_listen(asked, "listening on")?;
    let listener = policy
        .listeners
        .listener(addr)
        .and_then(TcpListener::from_std)
        .map_err(|e| Failure::io(&format!("listen on {addr}"), &e))?;
    let local = listener
        .local_addr()
        .map_err(|e| Failure::io("listener address", &e))?;
    send(io, TcpReply::Listening { local }).await?;
    let slot = io.slot;
    // Removes this listener's parked connections however the task ends
    // (including when `CLOSE` aborts it).
    let _backlog = pending.open(slot);
    let mut probe = [0u8; 1];
    loop {
        let event = poll_fn(|cx| {
            let mut buf = ReadBuf::new(&mut probe);
            if let Poll::Ready(r) = Pin::new(&mut io.rx).poll_read(cx, &mut buf) {
                return Poll::Ready(Event::Guest(r.map(|()| buf.filled().len())));
            }
            if pending.poll_room(slot, cx).is_ready()
                && let Poll::Ready(r) = listener.poll_accept(cx)
            {
                return Poll::Ready(Event::Accepted(r));
            }
            Poll::Pending
        })
        .await;
        match event {
            Event::Guest(Ok(0)) => return Ok(()),
            Event::Guest(Ok(_)) => {
                return Err(Failure::protocol(
                    "the guest wrote to a listener stream, which takes no frames",
                ));
            }
            Event::Guest(Err(e)) => return Err(Failure::to_monitor(&e)),
            Event::Accepted(Ok((socket, peer))) => {
                let id = pending.park(slot, socket, peer);
                send(io, TcpReply::Connection { id, peer }).await?;
            }
            Event::Accepted(Err(_)) => tokio::time::sleep(ACCEPT_RETRY).await,
        }
    }
}

/// What woke a listener.
enum Event {
    /// The guest wrote to the stream or closed it (bytes read).
    Guest(io::Result<usize>),
    /// A peer connected.
    Accepted(io::Result<(TcpStream, SocketAddr)>),
}

/// Connects to `addr` if `--connect` grants it.
async fn connect(addr: SocketAddr, policy: &Policy) -> Result<TcpStream, Failure> {
    policy.grant_connect(addr)?;
    match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
        Ok(Ok(s)) => Ok(s),
        Ok(Err(e)) => Err(Failure::io(&format!("connect to {addr}"), &e)),
        Err(_) => Err(Failure::new(
            Code::TimedOut,
            format!(
                "connect to {addr}: no answer in {}s",
                CONNECT_TIMEOUT.as_secs()
            ),
        )),
    }
}

async fn send(io: &mut StreamIo, reply: TcpReply) -> Result<(), Failure> {
    let mut buf = [0u8; MAX_TCP_FRAME];
    let n = reply.encode(&mut buf);
    io.write_frame(&buf[..n]).await
}

/// How a relayed connection came to be, which names the reply.
#[derive(Clone, Copy)]
enum Connection {
    Connected,
    Accepted,
}

/// Tells the guest the connection to `peer` is its (`CONNECTED` or
/// `ACCEPTED`), then relays raw bytes both ways until both directions ended
/// or the socket failed. A peer that reset the connection before it was
/// taken is still handed over: the guest reads the reset, as from a host
/// socket. Once the guest has stopped, what the peer sends is dropped and
/// the relay ends when the guest's bytes are sent.
async fn relay(
    mut io: StreamIo,
    socket: TcpStream,
    peer: SocketAddr,
    how: Connection,
    shared: &Shared,
    budgets: &Arc<Budgets>,
) {
    let local = match socket.local_addr() {
        Ok(a) => a,
        Err(e) => return io.fail(Failure::io("connection address", &e)).await,
    };
    let reply = match how {
        Connection::Connected => TcpReply::Connected { local, peer },
        Connection::Accepted => TcpReply::Accepted { local, peer },
    };
    if let Err(f) = send(&mut io, reply).await {
        return io.fail(f).await;
    }
    let _ = socket.set_nodelay(true);
    let StreamIo {
        slot,
        rx,
        mut tx,
        status,
        region,
    } = io;
    let (from_socket, to_socket) = socket.into_split();
    let mut upstream = Upstream {
        rx,
        socket: Some(to_socket),
        region,
        budgets: budgets.clone(),
    };
    let result = {
        let up = upstream.run();
        let down = async {
            let copy = async {
                loop {
                    match zero_copy::socket_to_ring(from_socket.as_ref(), &mut tx, &region).await {
                        Ok(0) => {
                            let _ = tx.shutdown().await;
                            return Ok(());
                        }
                        Ok(_) => {}
                        Err(e) if e.raw_os_error().is_some() => {
                            return Err(Failure::io("receive", &e));
                        }
                        // The guest corrupted its reading end, or closed it:
                        // it wants no more.
                        Err(e) => {
                            let f = Failure::to_guest(&e);
                            return if f.is_protocol() { Err(f) } else { Ok(()) };
                        }
                    }
                }
            };
            tokio::select! {
                r = copy => r,
                _ = shared.stopped() => Ok(()),
            }
        };
        // Both directions at once, until both end or either fails.
        tokio::try_join!(up, down).map(drop)
    };
    if let Err(f) = result {
        // The connection is broken: nothing is left to deliver.
        upstream.socket = None;
        framed::report(slot, &f);
        // Dropping the rings (when this task returns) closes them, after
        // the status word tells the guest why.
        status.set(f.code);
    }
}

/// The guest-to-socket direction of a connection.
///
/// Invariant: bytes leave the guest's ring only once the socket took them
/// (they are sent from the ring in place); `socket` is `None` once the write
/// side is shut down (or the connection failed). When the stream's task ends
/// early — the guest closed the stream, so `CLOSE` aborted it — [`Drop`]
/// takes what the guest wrote before closing (the rest of its ring) and a
/// detached task delivers it, then shuts the write side down, as closing a
/// socket does on a host, if the guest's linger budget has room (§20.1);
/// otherwise what is left is dropped and the connection shut at once.
struct Upstream {
    rx: Reader,
    socket: Option<OwnedWriteHalf>,
    region: RawRegion,
    budgets: Arc<Budgets>,
}

impl Upstream {
    /// Copies until the guest closes its ring (then shuts the socket's write
    /// side down) or the socket fails.
    async fn run(&mut self) -> Result<(), Failure> {
        loop {
            let Some(socket) = self.socket.as_mut() else {
                return Ok(());
            };
            let n = zero_copy::ring_to_socket(socket.as_ref(), &mut self.rx, &self.region)
                .await
                .map_err(|e| match e.raw_os_error() {
                    Some(_) => Failure::io("send", &e),
                    None => Failure::to_monitor(&e),
                })?;
            if n == 0 {
                // Half-close: the peer reads end-of-file, may still answer.
                let _ = socket.shutdown().await;
                self.socket = None;
                return Ok(());
            }
        }
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        let Some(socket) = self.socket.take() else {
            return;
        };
        // The ring is still the stream's until the task is gone; what the
        // guest published before `CLOSE` is all there, at most a ring's
        // capacity (a guest that goes on writing gets no more than that).
        // Copied through a small buffer: a stream that left its ring empty
        // (the usual close) costs no allocation.
        let mut rest = Vec::new();
        let mut chunk = [0u8; 16 << 10];
        let mut cx = Context::from_waker(Waker::noop());
        while rest.len() < RING_CAPACITY as usize {
            let mut buf = ReadBuf::new(&mut chunk);
            match Pin::new(&mut self.rx).poll_read(&mut cx, &mut buf) {
                Poll::Ready(Ok(())) if !buf.filled().is_empty() => {
                    rest.extend_from_slice(buf.filled())
                }
                _ => break,
            }
        }
        if rest.is_empty() {
            // Dropping the write half shuts it down.
            return;
        }
        // Without room in the budget the bytes are dropped, and the peer
        // is told so: the connection is reset, not ended in order (once the
        // read half is gone too).
        let Some(ticket) = self.budgets.linger() else {
            use std::os::fd::AsFd;
            let _ = crate::host::reset_on_close(socket.as_ref().as_fd());
            socket.forget();
            return;
        };
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                deliver(socket, rest).await;
                drop(ticket);
            });
        }
    }
}

/// Sends what a closed stream left, then shuts the write side down; gives
/// up after [`LINGER`] (a peer that does not read).
async fn deliver(mut socket: OwnedWriteHalf, rest: Vec<u8>) {
    let _ = tokio::time::timeout(LINGER, async {
        socket.write_all(&rest).await?;
        socket.shutdown().await
    })
    .await;
}

/// Connections accepted by listeners and not yet taken by the guest, by
/// listener slot: one region's TCP backlog, shared by its tasks.
#[derive(Default)]
pub struct Pending {
    inner: Mutex<Parked>,
}

#[derive(Default)]
struct Parked {
    /// The next connection id; never reused.
    next_id: u64,
    listeners: HashMap<u64, Backlog>,
}

/// One listener's parked connections.
#[derive(Default)]
struct Backlog {
    /// Each connection with its peer's address.
    connections: HashMap<u64, (TcpStream, SocketAddr)>,
    /// The listener, waiting for room.
    waiting: Option<Waker>,
}

/// Forgets a listener's backlog (and drops its parked sockets) when dropped.
pub struct BacklogGuard<'a> {
    pending: &'a Pending,
    slot: u64,
}

impl Drop for BacklogGuard<'_> {
    fn drop(&mut self) {
        self.pending.lock().listeners.remove(&self.slot);
    }
}

impl Pending {
    fn lock(&self) -> std::sync::MutexGuard<'_, Parked> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts an empty backlog for the listener in `slot`.
    fn open(&self, slot: u64) -> BacklogGuard<'_> {
        self.lock().listeners.insert(slot, Backlog::default());
        BacklogGuard {
            pending: self,
            slot,
        }
    }

    /// Ready when `slot`'s backlog has room; otherwise wakes `cx` when a
    /// connection is taken.
    fn poll_room(&self, slot: u64, cx: &mut Context<'_>) -> Poll<()> {
        let mut p = self.lock();
        match p.listeners.get_mut(&slot) {
            Some(b) if b.connections.len() >= BACKLOG => {
                b.waiting = Some(cx.waker().clone());
                Poll::Pending
            }
            _ => Poll::Ready(()),
        }
    }

    /// Parks an accepted connection from `peer`; returns its id.
    fn park(&self, slot: u64, socket: TcpStream, peer: SocketAddr) -> u64 {
        let mut p = self.lock();
        let id = p.next_id;
        p.next_id += 1;
        if let Some(b) = p.listeners.get_mut(&slot) {
            b.connections.insert(id, (socket, peer));
        }
        id
    }

    /// Takes connection `id` of the listener in `slot`, if it is parked.
    fn take(&self, slot: u64, id: u64) -> Option<(TcpStream, SocketAddr)> {
        let mut p = self.lock();
        let b = p.listeners.get_mut(&slot)?;
        let parked = b.connections.remove(&id)?;
        if let Some(w) = b.waiting.take() {
            w.wake();
        }
        Some(parked)
    }
}
