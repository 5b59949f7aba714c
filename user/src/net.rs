//! TCP and UDP sockets (PROTOCOL.md §11, §12), shaped like `std::net`.
//!
//! Each socket is one stream: a [`TcpListener`] reads `CONNECTION`
//! announcements and takes each connection on a new stream (`TCP_ACCEPT`);
//! a [`TcpStream`] carries raw bytes once the monitor said `CONNECTED` or
//! `ACCEPTED`; a [`UdpSocket`] carries one datagram per frame. What the
//! guest may reach is the monitor's `--listen` and `--connect` grants;
//! asking to listen on `0.0.0.0:PORT` means the granted address with that
//! port.
//!
//! Dropping a [`TcpStream`] closes it like a host socket: what was written
//! is still delivered, then the peer reads end-of-file.
//!
//! Every socket exposes its [`Stream`] (`as_stream_mut`) for
//! [`stream::poll`](crate::stream::poll): a listener is ready to
//! [`try_accept`](TcpListener::try_accept) when it is readable.

use crate::error::Error;
use crate::stream::{Interest, Stream, poll};
use alloc::format;
use alloc::vec::Vec;
use core::net::SocketAddr;
use embedded_io::{ErrorType, Read, Write};
use weft_control::frame::{Code, HEADER, Header, WireError, kind};
pub use weft_control::net_proto::MAX_DATAGRAM;
use weft_control::net_proto::{
    self as proto, Datagram, MAX_TCP_FIRST, TcpReply, TcpRequest, net_kind,
};

/// The addresses `--listen` granted, as the system page lists them (the
/// first 16, in order).
pub fn listen_grants() -> impl Iterator<Item = SocketAddr> {
    crate::time::info().listen.into_iter().flatten()
}

/// Parses `IP:PORT` (`[IPv6]:PORT` for IPv6). Host names are not resolved.
pub fn parse_addr(s: &str) -> Result<SocketAddr, Error> {
    s.parse()
        .map_err(|_| Error::new(Code::Invalid, format!("`{s}` is not an IP:PORT address")))
}

fn wire(e: WireError) -> Error {
    Error::new(Code::Protocol, format!("{e}"))
}

/// Opens a TCP stream with `request` and returns it with the reply.
fn tcp_stream(request: TcpRequest) -> Result<(Stream, TcpReply), Error> {
    let mut params = [0u8; MAX_TCP_FIRST];
    let mut body = Vec::new();
    let (stream, k) = Stream::connect(
        request.kind(),
        request.encode_params(&mut params),
        &mut body,
    )?;
    let reply = TcpReply::decode(k, &body).map_err(wire)?;
    Ok((stream, reply))
}

fn unexpected(reply: impl core::fmt::Debug) -> Error {
    Error::new(Code::Protocol, format!("unexpected reply {reply:?}"))
}

/// A TCP listener: the monitor accepts, announces, and the guest takes.
pub struct TcpListener {
    stream: Stream,
    local: SocketAddr,
    /// A partly read announcement.
    frame: [u8; HEADER + MAX_ANNOUNCEMENT],
    got: usize,
    /// An announced connection not taken yet: taking it failed for want of
    /// a stream (a budget or every slot used up), so the next
    /// [`TcpListener::try_accept`] tries again before reading on.
    untaken: Option<(u64, SocketAddr)>,
}

/// The longest frame body a listener stream carries: an `ERROR` frame.
const MAX_ANNOUNCEMENT: usize = 4 + weft_control::frame::MAX_MESSAGE;

impl TcpListener {
    /// Listens on `addr` (an address `--listen` grants, or `0.0.0.0:PORT`
    /// for the granted address with that port).
    pub fn bind(addr: SocketAddr) -> Result<Self, Error> {
        match tcp_stream(TcpRequest::Listen { addr })? {
            (stream, TcpReply::Listening { local }) => Ok(Self {
                stream,
                local,
                frame: [0; HEADER + MAX_ANNOUNCEMENT],
                got: 0,
                untaken: None,
            }),
            (_, other) => Err(unexpected(other)),
        }
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Whether a connection waits that could not be taken for want of a
    /// stream (a server may close one of its own to make room).
    pub fn has_untaken(&self) -> bool {
        self.untaken.is_some()
    }

    /// Waits for a connection and takes it.
    pub fn accept(&mut self) -> Result<(TcpStream, SocketAddr), Error> {
        loop {
            if let Some(c) = self.try_accept()? {
                return Ok(c);
            }
            poll(&mut [(&mut self.stream, Interest::Read)], None);
        }
    }

    /// Takes a connection if one was announced, without waiting for one.
    /// If no stream can be opened for it (`OverBudget`, `NoSlots`), the
    /// connection stays announced and the next call tries it again.
    pub fn try_accept(&mut self) -> Result<Option<(TcpStream, SocketAddr)>, Error> {
        let Some((id, peer)) = self
            .untaken
            .take()
            .map_or_else(|| self.try_announcement(), |u| Ok(Some(u)))?
        else {
            return Ok(None);
        };
        let listener = self.stream.slot() as u32;
        let taken = tcp_stream(TcpRequest::Accept { listener, id });
        if let Err(e) = &taken
            && matches!(e.code(), Code::OverBudget | Code::NoSlots)
        {
            self.untaken = Some((id, peer));
        }
        match taken? {
            (stream, TcpReply::Accepted { local, peer }) => Ok(Some((
                TcpStream {
                    stream,
                    local,
                    peer,
                },
                peer,
            ))),
            (_, other) => Err(unexpected((other, peer))),
        }
    }

    /// Reads what has arrived of the next announcement; its id and peer once
    /// it is whole.
    fn try_announcement(&mut self) -> Result<Option<(u64, SocketAddr)>, Error> {
        loop {
            let want = match self.got.checked_sub(HEADER) {
                None => HEADER,
                Some(_) => {
                    let raw = self.frame[..HEADER]
                        .try_into()
                        .map_err(|_| wire(WireError::Truncated))?;
                    let h = Header::decode(&raw).map_err(wire)?;
                    if h.len as usize > MAX_ANNOUNCEMENT {
                        return Err(wire(WireError::TooLong(h.len)));
                    }
                    let total = HEADER + h.len as usize;
                    if self.got == total {
                        self.got = 0;
                        return self.announcement(h, total).map(Some);
                    }
                    total
                }
            };
            match self.stream.try_read(&mut self.frame[self.got..want])? {
                None => return Ok(None),
                Some(0) => return Err(self.ended()),
                Some(n) => self.got += n,
            }
        }
    }

    fn announcement(&self, h: Header, total: usize) -> Result<(u64, SocketAddr), Error> {
        let body = &self.frame[HEADER..total];
        if h.kind == kind::ERROR {
            let e = weft_control::frame::ErrorBody::decode(body).map_err(wire)?;
            return Err(Error::new(e.code, e.message));
        }
        match TcpReply::decode(h.kind, body).map_err(wire)? {
            TcpReply::Connection { id, peer } => Ok((id, peer)),
            other => Err(unexpected(other)),
        }
    }

    fn ended(&self) -> Error {
        match self.stream.status() {
            Some(code) => Error::new(code, "the monitor ended the listener"),
            None => Error::new(Code::Closed, "the listener ended"),
        }
    }

    /// The listener's stream, to wait on it with
    /// [`poll`](crate::stream::poll) (`Interest::Read`: an announcement).
    pub fn as_stream_mut(&mut self) -> &mut Stream {
        &mut self.stream
    }
}

/// A TCP connection: raw bytes both ways through `embedded_io`.
pub struct TcpStream {
    stream: Stream,
    local: SocketAddr,
    peer: SocketAddr,
}

impl TcpStream {
    /// Connects to `addr`, which `--connect` must grant.
    pub fn connect(addr: SocketAddr) -> Result<Self, Error> {
        match tcp_stream(TcpRequest::Connect { addr })? {
            (stream, TcpReply::Connected { local, peer }) => Ok(Self {
                stream,
                local,
                peer,
            }),
            (_, other) => Err(unexpected(other)),
        }
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer
    }

    /// This end's address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Closes the writing direction: the peer reads end-of-file after what
    /// was written; reading goes on.
    pub fn shutdown_write(&mut self) {
        self.stream.close_write();
    }

    /// Reads what has arrived without waiting: `Ok(None)` if nothing yet,
    /// `Ok(Some(0))` at end-of-file; a reset connection is `Err`.
    pub fn try_read(&mut self, buf: &mut [u8]) -> Result<Option<usize>, Error> {
        match self.stream.try_read(buf)? {
            Some(0) => self.stream.status().map_or(Ok(Some(0)), |code| {
                Err(Error::new(code, "the connection ended"))
            }),
            r => Ok(r),
        }
    }

    /// Writes what fits without waiting (`Ok(0)`: nothing fits now).
    pub fn try_write(&mut self, buf: &[u8]) -> Result<usize, Error> {
        self.stream.try_write(buf)
    }

    /// The connection's stream, to wait on it with
    /// [`poll`](crate::stream::poll).
    pub fn as_stream_mut(&mut self) -> &mut Stream {
        &mut self.stream
    }
}

impl ErrorType for TcpStream {
    type Error = Error;
}

impl Read for TcpStream {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Error> {
        self.stream.read(buf)
    }
}

impl Write for TcpStream {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Error> {
        self.stream.write(buf)
    }

    fn flush(&mut self) -> Result<(), Error> {
        Ok(())
    }
}

/// A UDP socket: one datagram per frame.
///
/// A socket bound with [`UdpSocket::bind_movable`] (a runtime whose app may
/// move, PROTOCOL.md §12.5) knows whether it follows its app
/// ([`UdpSocket::follows`]) and takes the monitor's `PAUSED` and `RESUMED`
/// frames as they come, noting them ([`UdpSocket::paused`]); they are
/// never returned as datagrams.
pub struct UdpSocket {
    stream: Stream,
    local: SocketAddr,
    /// Frame buffer for both directions.
    frame: Vec<u8>,
    /// Bound with `MOVABLE`: its stream may carry `PAUSED` and `RESUMED`.
    movable: bool,
    /// `BOUND` said `FOLLOWS`.
    follows: bool,
    /// The monitor said `PAUSED`, and not `RESUMED` since.
    paused: bool,
}

/// What a frame on a UDP stream is, besides an `ERROR` (which
/// [`Stream::recv`] makes an `Err`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum UdpFrame {
    Datagram,
    Paused,
    Resumed,
}

/// The frame of `kind` with a `len`-byte body on a UDP stream; `PAUSED`
/// and `RESUMED` (empty) only on a stream bound `movable`.
fn udp_frame(kind: u16, len: usize, movable: bool) -> Result<UdpFrame, Error> {
    let control = match kind {
        net_kind::DATAGRAM => return Ok(UdpFrame::Datagram),
        net_kind::PAUSED if movable => UdpFrame::Paused,
        net_kind::RESUMED if movable => UdpFrame::Resumed,
        other => return Err(unexpected(other)),
    };
    if len != 0 {
        return Err(wire(WireError::Trailing));
    }
    Ok(control)
}

impl UdpSocket {
    /// Binds to `addr` (granted by `--listen`, as for [`TcpListener::bind`]).
    pub fn bind(addr: SocketAddr) -> Result<Self, Error> {
        Self::open(addr, None)
    }

    /// Binds to `addr` as [`Self::bind`] does, for an app that may move
    /// (`UDP_BIND` with `MOVABLE`, PROTOCOL.md §12.5): `BOUND` says whether
    /// the socket follows the app ([`Self::follows`]), and its stream may
    /// carry `PAUSED` and `RESUMED` ([`Self::paused`]).
    pub fn bind_movable(addr: SocketAddr) -> Result<Self, Error> {
        Self::open(addr, Some(proto::bind_flags::MOVABLE))
    }

    /// Binds with `flags`, or as §12.2 says without them.
    fn open(addr: SocketAddr, flags: Option<u32>) -> Result<Self, Error> {
        let mut plain = [0u8; HEADER + proto::ADDR];
        let mut flagged = [0u8; HEADER + proto::ADDR + 4];
        let params = match flags {
            None => proto::encode_bind(addr, &mut plain),
            Some(f) => proto::encode_bind_flagged(addr, f, &mut flagged),
        };
        let mut frame = Vec::new();
        let (stream, k) = Stream::connect(kind::UDP_BIND, params, &mut frame)?;
        if k != net_kind::BOUND {
            return Err(unexpected(k));
        }
        let (local, bound) =
            proto::decode_flagged(&frame, proto::bound_flags::FOLLOWS).map_err(wire)?;
        // A `BOUND` carries flags exactly when the bind did.
        if bound.is_some() != flags.is_some() {
            return Err(Error::new(
                Code::Protocol,
                "BOUND's flags do not answer the UDP_BIND's",
            ));
        }
        Ok(Self {
            stream,
            local,
            frame,
            movable: flags.is_some(),
            follows: bound.is_some_and(|b| b & proto::bound_flags::FOLLOWS != 0),
            paused: false,
        })
    }

    /// The address the socket is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Whether the socket follows its app when it moves (bound with
    /// [`Self::bind_movable`] on a fabric address, §12.5); `false` for a
    /// socket bound with [`Self::bind`].
    pub fn follows(&self) -> bool {
        self.follows
    }

    /// Whether the monitor holds the socket's datagrams (it said `PAUSED`,
    /// and not `RESUMED` since): the app is about to be captured, and no
    /// datagram comes until then.
    pub fn paused(&self) -> bool {
        self.paused
    }

    /// Sends one datagram to `to` (at most [`MAX_DATAGRAM`] bytes). The
    /// monitor checks the destination after the send returns: a refusal
    /// comes back as an `Err` from a later [`recv_from`](Self::recv_from).
    pub fn send_to(&mut self, payload: &[u8], to: SocketAddr) -> Result<usize, Error> {
        if payload.len() > MAX_DATAGRAM {
            return Err(Error::new(
                Code::TooLarge,
                format!("a datagram carries at most {MAX_DATAGRAM} bytes"),
            ));
        }
        self.frame
            .resize(proto::datagram_frame_len(payload.len()), 0);
        let d = Datagram { addr: to, payload };
        let n = d
            .encode(net_kind::SEND_TO, &mut self.frame)
            .ok_or_else(|| Error::from_code(Code::TooLarge))?;
        self.stream.send(&self.frame[..n])?;
        Ok(payload.len())
    }

    /// Waits for a datagram; copies what fits of it into `buf` (the rest is
    /// dropped) and returns that length and the sender.
    pub fn recv_from(&mut self, buf: &mut [u8]) -> Result<(usize, SocketAddr), Error> {
        loop {
            if let Some(d) = self.try_datagram()? {
                let n = d.payload.len().min(buf.len());
                buf[..n].copy_from_slice(&d.payload[..n]);
                return Ok((n, d.addr));
            }
            poll(&mut [(&mut self.stream, Interest::Read)], None);
        }
    }

    /// The next datagram if one is there, without waiting for one:
    /// `Ok(None)` if none is. The `PAUSED` and `RESUMED` frames before it
    /// are taken and noted ([`Self::paused`]); after a `PAUSED` no
    /// datagram comes until `RESUMED`. An `ERROR` frame (a refused send,
    /// §12.3) is `Err`, once, and the socket goes on; an ended stream is
    /// `Err` at every call.
    pub fn try_datagram(&mut self) -> Result<Option<Datagram<'_>>, Error> {
        loop {
            if !self.stream.ready(Interest::Read) {
                return Ok(None);
            }
            // A whole frame is there or on its way: the wait is short.
            let k = self.stream.recv(&mut self.frame)?;
            match udp_frame(k, self.frame.len(), self.movable)? {
                UdpFrame::Datagram => break,
                UdpFrame::Paused => self.paused = true,
                UdpFrame::Resumed => self.paused = false,
            }
        }
        Datagram::decode(&self.frame).map(Some).map_err(wire)
    }

    /// The socket's stream, to wait on it with
    /// [`poll`](crate::stream::poll) (`Interest::Read`: a datagram).
    pub fn as_stream_mut(&mut self) -> &mut Stream {
        &mut self.stream
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paused_and_resumed_come_empty_and_only_on_a_movable_stream() {
        let frame = |kind, len, movable| udp_frame(kind, len, movable).map_err(|e| e.code());
        assert_eq!(frame(net_kind::DATAGRAM, 30, false), Ok(UdpFrame::Datagram));
        assert_eq!(frame(net_kind::DATAGRAM, 30, true), Ok(UdpFrame::Datagram));
        assert_eq!(frame(net_kind::PAUSED, 0, true), Ok(UdpFrame::Paused));
        assert_eq!(frame(net_kind::RESUMED, 0, true), Ok(UdpFrame::Resumed));
        for (kind, len, movable) in [
            (net_kind::PAUSED, 0, false),
            (net_kind::RESUMED, 0, false),
            (net_kind::PAUSED, 1, true),
            (net_kind::RESUMED, 4, true),
            (net_kind::BOUND, 19, true),
        ] {
            assert_eq!(frame(kind, len, movable), Err(Code::Protocol), "{kind:#x}");
        }
    }

    #[test]
    fn addresses_parse_as_ip_and_port_only() {
        assert_eq!(
            parse_addr("127.0.0.1:7000").unwrap(),
            SocketAddr::from(([127, 0, 0, 1], 7000))
        );
        assert_eq!(parse_addr("[::1]:53").unwrap().port(), 53);
        for bad in ["localhost:80", "127.0.0.1", "1.2.3.4:99999", ""] {
            let e = parse_addr(bad).unwrap_err();
            assert_eq!(e.code(), Code::Invalid);
            assert!(e.message().contains(bad), "{e}");
        }
    }
}
