//! UDP sockets for apps (PROTOCOL.md §12, §13.3): the `udp_*` imports of
//! the `weft` module, and the descriptor they make ([`UdpEnd`]).
//!
//! A UDP descriptor is one UDP stream of the [`Host`] (one datagram per
//! frame), always non-blocking: `udp_recv_from` takes the next datagram or
//! returns `EAGAIN`, and an event app registers interest (`READABLE`: a
//! datagram, or an error, waits) to be told when to call it again. Sends
//! return at once (they wait in place only while the stream's ring is
//! full); the monitor checks each destination after the send, and a
//! refusal comes back in order with the datagrams, as an `ERROR` frame.
//!
//! Invariants:
//! - everything the app passes is checked before the [`Host`] sees it:
//!   ranges (`EFAULT`), address texts (UTF-8, `EILSEQ`; `IP:PORT`,
//!   `EINVAL`), address buffers of at least [`ADDR_TEXT_MAX`] bytes
//!   (`EINVAL`), datagrams of at most [`MAX_DATAGRAM`] bytes (`EMSGSIZE`);
//!   so a call that fails on the app's arguments takes nothing from the
//!   stream and sends nothing;
//! - an `ERROR` frame is reported exactly once, by the first
//!   `udp_recv_from` or `udp_send_to` that finds it at the head of what
//!   waits: what the runtime takes from the stream before the app asks
//!   for it (a send looks at most one item ahead; a capture settles the
//!   socket, below) is held ([`UdpEnd::held`]), a datagram or an error,
//!   and is the next thing the app is given, so nothing is lost or
//!   reordered;
//! - a datagram longer than the app's buffer is delivered cut, as
//!   `recvfrom` does, and its whole length is written, so the app knows.
//!
//! When the app moves (PROTOCOL.md §19), a socket on a fabric address
//! follows it (§12.5: the [`Host`] binds movable, and the socket says
//! whether it [`follows`](UdpSocket::follows)); any other is closed at the
//! destination. A following socket must be *settled* first
//! ([`UdpEnd::settle`]): the monitor said `PAUSED` (every datagram that
//! came before it is on the stream ahead of it, and none comes after it
//! until `RESUMED`) and the app has taken everything before it, so a move
//! neither loses a datagram nor delivers one twice.

use crate::fds::Fd;
use crate::host::{Host, Interest, Stream, UdpSocket, WasiResult};
use crate::mem::Env;
use alloc::boxed::Box;
use alloc::vec::Vec;
use core::fmt::{self, Write as _};
use core::net::SocketAddr;
use weft_control::app::{ADDR_TEXT_MAX, MAX_DATAGRAM, errno};

/// A datagram: its sender and payload.
type Received = (SocketAddr, Vec<u8>);

/// A UDP descriptor: its socket, and what the runtime took from its stream
/// before the app asked for it.
pub struct UdpEnd<H: Host> {
    socket: H::Udp,
    /// Taken from the stream, not delivered yet: the next thing delivered,
    /// a datagram or a refused send's errno.
    held: Option<WasiResult<Received>>,
}

/// Why a following UDP descriptor is not settled: what a move now would
/// lose.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unsettled {
    /// The monitor has not said `PAUSED` yet: datagrams still come.
    NotPaused,
    /// A datagram waits for the app to take it.
    Unread,
    /// A refused send's error waits for the app to take it.
    ErrorUnread,
    /// The stream failed with this errno.
    Failed(i32),
}

impl fmt::Display for Unsettled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotPaused => f.write_str("is not paused yet (its datagrams still come)"),
            Self::Unread => f.write_str("has datagrams unread"),
            Self::ErrorUnread => f.write_str("has a refused send's error unread"),
            Self::Failed(e) => write!(f, "has a failed stream (errno {e})"),
        }
    }
}

impl<H: Host> UdpEnd<H> {
    pub fn new(socket: H::Udp) -> Self {
        Self { socket, held: None }
    }

    /// Whether something was taken from the stream and not delivered
    /// (readable whatever the stream says).
    pub fn held(&self) -> bool {
        self.held.is_some()
    }

    pub fn stream(&mut self) -> &mut H::Stream {
        self.socket.stream()
    }

    /// The next datagram: the one held, else the stream's; `Ok(None)` if
    /// none is there; an `ERROR` frame at the head as its errno.
    pub fn take(&mut self) -> WasiResult<Option<Received>> {
        match self.held.take() {
            Some(d) => d.map(Some),
            None => self.socket.try_recv(),
        }
    }

    /// Holds what the stream has next, if nothing is held yet.
    fn look(&mut self) {
        if self.held.is_none() {
            self.held = self.socket.try_recv().transpose();
        }
    }

    /// Sends `payload` to `to`, unless an `ERROR` frame waits at the head
    /// of what came (then its errno, and nothing is sent). A datagram
    /// found there instead is held for the next [`Self::take`].
    pub fn send_to(&mut self, payload: &[u8], to: SocketAddr) -> WasiResult<()> {
        self.look();
        if let Some(Err(e)) = self.held {
            self.held = None;
            return Err(e);
        }
        self.socket.send_to(payload, to)
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.socket.local_addr()
    }

    /// Whether the socket follows the app when it moves.
    pub fn follows(&self) -> bool {
        self.socket.follows()
    }

    /// Whether a move now would lose nothing of this (following) socket:
    /// the monitor said `PAUSED` and nothing waits for the app, held or on
    /// the stream. It first takes, without waiting, what the stream has
    /// next, so a `PAUSED` that came is noted (a datagram or an error
    /// found so is held for the app; an ended stream's is not).
    pub fn settle(&mut self) -> Result<(), Unsettled> {
        self.look();
        match self.held {
            Some(Err(e)) if self.socket.stream().status().is_some() => {
                self.held = None;
                Err(Unsettled::Failed(e))
            }
            Some(Err(_)) => Err(Unsettled::ErrorUnread),
            Some(Ok(_)) => Err(Unsettled::Unread),
            None if !self.socket.paused() => Err(Unsettled::NotPaused),
            None if self.socket.stream().ready(Interest::Read) => Err(Unsettled::Unread),
            None => Ok(()),
        }
    }

    /// Whether it follows the app and the monitor has not said `PAUSED`
    /// yet, with nothing held for the app and its stream not ended: a
    /// `PAUSED` to come on its stream is what a capture waits for.
    pub fn awaits_pause(&mut self) -> bool {
        self.follows()
            && !self.socket.paused()
            && self.held.is_none()
            && self.socket.stream().status().is_none()
    }
}

/// The socket address whose UTF-8 text (`IP:PORT`, `[IPv6]:PORT`) is the
/// `len` bytes at `at`. Shared with `tcp_listen` and `tcp_connect`.
pub fn addr_at<H: Host, X>(e: &Env<'_, H, X>, at: i32, len: i32) -> WasiResult<SocketAddr> {
    e.read_str(at, len)?.parse().map_err(|_| errno::INVAL)
}

/// Checks that the address buffer of `cap` bytes at `at` is in memory and
/// holds any address text.
pub(crate) fn addr_buffer<H: Host, X>(e: &Env<'_, H, X>, at: i32, cap: i32) -> WasiResult<()> {
    if usize::try_from(cap).map_err(|_| errno::INVAL)? < ADDR_TEXT_MAX {
        return Err(errno::INVAL);
    }
    e.bytes(at, cap).map(drop)
}

/// `addr` as text (at most [`ADDR_TEXT_MAX`] bytes).
fn addr_text(addr: SocketAddr) -> alloc::string::String {
    let mut text = alloc::string::String::new();
    // Writing to a String cannot fail.
    let _ = write!(text, "{addr}");
    text
}

/// UDP descriptor `fd`; `EBADF` for another descriptor.
pub(crate) fn end<'a, H: Host, X>(
    e: &'a mut Env<'_, H, X>,
    fd: i32,
) -> WasiResult<&'a mut UdpEnd<H>> {
    match e.ctx.fds.get(fd)? {
        Fd::Udp(end) => Ok(end),
        _ => Err(errno::BADF),
    }
}

/// `udp_bind`: a socket bound on the address text at `addr`; its
/// descriptor at `out`.
pub(crate) fn bind<H: Host, X>(
    e: &mut Env<'_, H, X>,
    (addr, len): (i32, i32),
    out: i32,
) -> WasiResult<()> {
    let addr = addr_at(e, addr, len)?;
    // The out pointer is checked before the socket is made.
    e.write_u32(out, 0)?;
    let socket = e.ctx.host.udp_bind(addr)?;
    let fd = e.ctx.fds.insert(Fd::Udp(Box::new(UdpEnd::new(socket))));
    e.write_u32(out, fd as u32)
}

/// `udp_send_to`: the `data_len` bytes at `data` to the address text at
/// `addr`.
pub(crate) fn send_to<H: Host, X>(
    e: &mut Env<'_, H, X>,
    fd: i32,
    (data, data_len): (i32, i32),
    (addr, addr_len): (i32, i32),
) -> WasiResult<()> {
    end(e, fd)?;
    if usize::try_from(data_len).map_err(|_| errno::INVAL)? > MAX_DATAGRAM {
        return Err(errno::MSGSIZE);
    }
    let to = addr_at(e, addr, addr_len)?;
    let payload = e.bytes(data, data_len)?.to_vec();
    end(e, fd)?.send_to(&payload, to)
}

/// `udp_recv_from`: the next datagram, what fits of it at `buf` and its
/// sender's text at `addr`; its whole length and the text's at `out`.
pub(crate) fn recv_from<H: Host, X>(
    e: &mut Env<'_, H, X>,
    fd: i32,
    (buf, cap): (i32, i32),
    (addr, addr_cap): (i32, i32),
    out: i32,
) -> WasiResult<()> {
    end(e, fd)?;
    let cap = usize::try_from(cap).map_err(|_| errno::INVAL)?;
    e.bytes(buf, cap as i32)?;
    addr_buffer(e, addr, addr_cap)?;
    e.bytes(out, 8)?;
    let Some((from, payload)) = end(e, fd)?.take()? else {
        return Err(errno::AGAIN);
    };
    let text = addr_text(from);
    e.write(buf, &payload[..payload.len().min(cap)])?;
    e.write(addr, text.as_bytes())?;
    e.write_u32(out, payload.len() as u32)?;
    e.write_u32(out.wrapping_add(4), text.len() as u32)
}

/// `udp_local_addr`: the socket's address text at `addr`, its length at
/// `out`.
pub(crate) fn local_addr<H: Host, X>(
    e: &mut Env<'_, H, X>,
    fd: i32,
    (addr, cap): (i32, i32),
    out: i32,
) -> WasiResult<()> {
    let local = end(e, fd)?.local_addr();
    addr_buffer(e, addr, cap)?;
    e.bytes(out, 4)?;
    let text = addr_text(local);
    e.write(addr, text.as_bytes())?;
    e.write_u32(out, text.len() as u32)
}

/// Defines this module's `weft` functions on linker `$l`, as
/// [`crate::events::define_events`] (which expands this) does.
macro_rules! define_udp {
    ($l:ident, $C:ty, $T:ty) => {{
        #[allow(unused_imports)]
        use weft_control::app::{MODULE, errno, import};
        #[allow(unused_imports)]
        use $crate::bind::{Call as _, call};
        use $crate::udp::*;
        $l.func_wrap(
            MODULE,
            import::UDP_BIND,
            |mut c: $C, addr: i32, len: i32, out: i32| call(&mut c, |e| bind(e, (addr, len), out)),
        )?;
        $l.func_wrap(
            MODULE,
            import::UDP_SEND_TO,
            |mut c: $C, fd: i32, data: i32, data_len: i32, addr: i32, addr_len: i32| {
                call(&mut c, |e| {
                    send_to(e, fd, (data, data_len), (addr, addr_len))
                })
            },
        )?;
        $l.func_wrap(
            MODULE,
            import::UDP_RECV_FROM,
            |mut c: $C, fd: i32, buf: i32, cap: i32, addr: i32, addr_cap: i32, out: i32| {
                call(&mut c, |e| {
                    recv_from(e, fd, (buf, cap), (addr, addr_cap), out)
                })
            },
        )?;
        $l.func_wrap(
            MODULE,
            import::UDP_LOCAL_ADDR,
            |mut c: $C, fd: i32, addr: i32, cap: i32, out: i32| {
                call(&mut c, |e| local_addr(e, fd, (addr, cap), out))
            },
        )?;
    }};
}
pub(crate) use define_udp;
