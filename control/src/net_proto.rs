//! The TCP and UDP protocols (PROTOCOL.md §11, §12): socket addresses on the
//! wire and the typed frames of listener, connection and datagram streams.
//!
//! An address is always [`ADDR`] bytes: `family: u8` (4 or 6), `port: u16`,
//! then 16 address bytes (an IPv4 address uses the first 4, the other 12 are
//! 0). Any other family, or non-zero padding, is refused, so each address has
//! exactly one encoding.
//!
//! A reply kind is its request kind with bit 15 set; announcements and
//! datagrams take the next numbers. Decoding never panics and refuses
//! trailing bytes, like every frame (§9.3).

use crate::frame::{Decoder, Encoder, HEADER, MAX_BODY, WireError, kind};
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Bytes of an encoded socket address.
pub const ADDR: usize = 19;
/// Bytes of the longest TCP frame (`ACCEPTED`/`CONNECTED`: two addresses).
pub const MAX_TCP_FRAME: usize = HEADER + 2 * ADDR;
/// The largest datagram payload a `SEND_TO` or `DATAGRAM` frame carries: the
/// largest UDP payload (65 535 bytes less the 8-byte UDP header; over IPv4
/// the host refuses sends above 65 507).
pub const MAX_DATAGRAM: usize = 65_527;
const _: () = assert!(MAX_DATAGRAM <= MAX_BODY - ADDR);

/// Kinds of the TCP and UDP protocols after their first frames.
pub mod net_kind {
    /// TCP: the listener is bound (reply to `TCP_LISTEN`).
    pub const LISTENING: u16 = 0x8200;
    /// TCP: the connection is open (reply to `TCP_CONNECT`).
    pub const CONNECTED: u16 = 0x8201;
    /// TCP: the announced connection is taken (reply to `TCP_ACCEPT`).
    pub const ACCEPTED: u16 = 0x8202;
    /// TCP: a listener accepted a connection the guest may take.
    pub const CONNECTION: u16 = 0x8203;
    /// UDP: send one datagram.
    pub const SEND_TO: u16 = 0x0301;
    /// UDP: the socket is bound (reply to `UDP_BIND`).
    pub const BOUND: u16 = 0x8300;
    /// UDP: one datagram arrived.
    pub const DATAGRAM: u16 = 0x8301;
    /// UDP, a socket that follows its app: no datagram comes after this
    /// one until `RESUMED` (its owner holds them while the app moves).
    pub const PAUSED: u16 = 0x8302;
    /// UDP, a socket that follows its app: datagrams come again.
    pub const RESUMED: u16 = 0x8303;
}

/// The flags of a `UDP_BIND` that carries them (PROTOCOL.md §12.5).
pub mod bind_flags {
    /// The binder is a runtime whose app may move: `BOUND` says whether
    /// the socket can follow it, and the stream may carry `PAUSED` and
    /// `RESUMED`.
    pub const MOVABLE: u32 = 1;
    /// Every flag this monitor knows.
    pub const ALL: u32 = MOVABLE;
}

/// The flags of a `BOUND` that answers a `UDP_BIND` with flags.
pub mod bound_flags {
    /// The socket is held by its fabric address's owner and follows the
    /// app when it moves (§12.5).
    pub const FOLLOWS: u32 = 1;
}

/// `addr` in its [`ADDR`]-byte form.
pub fn addr_bytes(addr: SocketAddr) -> [u8; ADDR] {
    let mut out = [0u8; ADDR];
    match addr.ip() {
        IpAddr::V4(v4) => {
            out[0] = 4;
            out[3..7].copy_from_slice(&v4.octets());
        }
        IpAddr::V6(v6) => {
            out[0] = 6;
            out[3..19].copy_from_slice(&v6.octets());
        }
    }
    out[1..3].copy_from_slice(&addr.port().to_le_bytes());
    out
}

/// The address of an [`ADDR`]-byte form.
pub fn addr_from_bytes(b: &[u8; ADDR]) -> Result<SocketAddr, WireError> {
    let port = u16::from_le_bytes([b[1], b[2]]);
    let ip = match b[0] {
        4 if b[7..].iter().all(|x| *x == 0) => IpAddr::V4(Ipv4Addr::new(b[3], b[4], b[5], b[6])),
        4 => return Err(WireError::Field("address padding")),
        6 => {
            let mut raw = [0u8; 16];
            raw.copy_from_slice(&b[3..19]);
            IpAddr::V6(Ipv6Addr::from(raw))
        }
        _ => return Err(WireError::Field("address family")),
    };
    Ok(SocketAddr::new(ip, port))
}

/// Appends `addr` in its [`ADDR`]-byte form.
pub fn encode_addr(e: &mut Encoder<'_>, addr: SocketAddr) {
    e.bytes(&addr_bytes(addr));
}

/// Reads an address in its [`ADDR`]-byte form.
pub fn decode_addr(d: &mut Decoder<'_>) -> Result<SocketAddr, WireError> {
    let raw: [u8; ADDR] = d
        .bytes(ADDR)?
        .try_into()
        .map_err(|_| WireError::Truncated)?;
    addr_from_bytes(&raw)
}

/// The parameters of a TCP first frame (after its `version`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TcpRequest {
    /// `TCP_LISTEN`: listen on `addr` (§11.1 says what an unspecified IP means).
    Listen { addr: SocketAddr },
    /// `TCP_CONNECT`: connect to `addr`.
    Connect { addr: SocketAddr },
    /// `TCP_ACCEPT`: take connection `id` that listener stream `listener`
    /// announced.
    Accept { listener: u32, id: u64 },
}

/// Room for a TCP first frame: header, version and the longest parameters.
pub const MAX_TCP_FIRST: usize = HEADER + 4 + ADDR;

impl TcpRequest {
    /// The first frame's kind.
    pub fn kind(&self) -> u16 {
        match self {
            Self::Listen { .. } => kind::TCP_LISTEN,
            Self::Connect { .. } => kind::TCP_CONNECT,
            Self::Accept { .. } => kind::TCP_ACCEPT,
        }
    }

    /// Encodes the parameters (what follows `version`) into `buf` and
    /// returns them.
    pub fn encode_params<'b>(&self, buf: &'b mut [u8; MAX_TCP_FIRST]) -> &'b [u8] {
        let mut e = Encoder::new(buf, self.kind());
        match *self {
            Self::Listen { addr } | Self::Connect { addr } => encode_addr(&mut e, addr),
            Self::Accept { listener, id } => {
                e.u32(listener).u64(id);
            }
        }
        let n = e.finish().unwrap_or(HEADER);
        &buf[HEADER..n]
    }

    /// Decodes the parameters of a first frame of `kind`.
    pub fn decode_params(kind: u16, params: &[u8]) -> Result<Self, WireError> {
        let mut d = Decoder::new(params);
        let r = match kind {
            kind::TCP_LISTEN => Self::Listen {
                addr: decode_addr(&mut d)?,
            },
            kind::TCP_CONNECT => Self::Connect {
                addr: decode_addr(&mut d)?,
            },
            kind::TCP_ACCEPT => Self::Accept {
                listener: d.u32()?,
                id: d.u64()?,
            },
            other => return Err(WireError::Kind(other)),
        };
        d.finish()?;
        Ok(r)
    }
}

/// A frame the monitor sends on a TCP stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TcpReply {
    /// The listener is bound to `local`.
    Listening { local: SocketAddr },
    /// An outgoing connection is open.
    Connected { local: SocketAddr, peer: SocketAddr },
    /// An accepted connection is now this stream's.
    Accepted { local: SocketAddr, peer: SocketAddr },
    /// The listener accepted connection `id` from `peer`.
    Connection { id: u64, peer: SocketAddr },
}

impl TcpReply {
    /// Encodes the frame into `buf`; returns its length.
    pub fn encode(&self, buf: &mut [u8; MAX_TCP_FRAME]) -> usize {
        let n = match *self {
            Self::Listening { local } => {
                let mut e = Encoder::new(buf, net_kind::LISTENING);
                encode_addr(&mut e, local);
                e.finish()
            }
            Self::Connected { local, peer } | Self::Accepted { local, peer } => {
                let k = match self {
                    Self::Connected { .. } => net_kind::CONNECTED,
                    _ => net_kind::ACCEPTED,
                };
                let mut e = Encoder::new(buf, k);
                encode_addr(&mut e, local);
                encode_addr(&mut e, peer);
                e.finish()
            }
            Self::Connection { id, peer } => {
                let mut e = Encoder::new(buf, net_kind::CONNECTION);
                e.u64(id);
                encode_addr(&mut e, peer);
                e.finish()
            }
        };
        n.unwrap_or(0)
    }

    /// Decodes a frame of `kind` with `body`.
    pub fn decode(kind: u16, body: &[u8]) -> Result<Self, WireError> {
        let mut d = Decoder::new(body);
        let r = match kind {
            net_kind::LISTENING => Self::Listening {
                local: decode_addr(&mut d)?,
            },
            net_kind::CONNECTED => Self::Connected {
                local: decode_addr(&mut d)?,
                peer: decode_addr(&mut d)?,
            },
            net_kind::ACCEPTED => Self::Accepted {
                local: decode_addr(&mut d)?,
                peer: decode_addr(&mut d)?,
            },
            net_kind::CONNECTION => Self::Connection {
                id: d.u64()?,
                peer: decode_addr(&mut d)?,
            },
            other => return Err(WireError::Kind(other)),
        };
        d.finish()?;
        Ok(r)
    }
}

/// A datagram frame: `SEND_TO` (guest → monitor, `addr` is the
/// destination) or `DATAGRAM` (monitor → guest, `addr` is the sender).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Datagram<'a> {
    pub addr: SocketAddr,
    /// At most [`MAX_DATAGRAM`] bytes.
    pub payload: &'a [u8],
}

/// Bytes of the frame of a `len`-byte datagram.
pub const fn datagram_frame_len(len: usize) -> usize {
    HEADER + ADDR + len
}

impl<'a> Datagram<'a> {
    /// Encodes the datagram as a frame of `kind` (`SEND_TO` or `DATAGRAM`)
    /// into `buf`; `None` if the payload exceeds [`MAX_DATAGRAM`] or `buf`.
    pub fn encode(&self, kind: u16, buf: &mut [u8]) -> Option<usize> {
        if self.payload.len() > MAX_DATAGRAM {
            return None;
        }
        let mut e = Encoder::new(buf, kind);
        encode_addr(&mut e, self.addr);
        e.bytes(self.payload);
        e.finish()
    }

    /// Decodes a datagram frame's body (the payload is the rest, at most
    /// [`MAX_DATAGRAM`] bytes).
    pub fn decode(body: &'a [u8]) -> Result<Self, WireError> {
        let mut d = Decoder::new(body);
        let addr = decode_addr(&mut d)?;
        let payload = d.rest();
        if payload.len() > MAX_DATAGRAM {
            return Err(WireError::TooLong(body.len() as u32));
        }
        Ok(Self { addr, payload })
    }
}

/// Encodes the parameters of a `UDP_BIND` first frame (after `version`).
pub fn encode_bind(addr: SocketAddr, buf: &mut [u8; HEADER + ADDR]) -> &[u8] {
    let mut e = Encoder::new(buf, kind::UDP_BIND);
    encode_addr(&mut e, addr);
    let n = e.finish().unwrap_or(HEADER);
    &buf[HEADER..n]
}

/// Encodes the parameters of a `UDP_BIND` first frame with `flags`
/// ([`bind_flags`]).
pub fn encode_bind_flagged(
    addr: SocketAddr,
    flags: u32,
    buf: &mut [u8; HEADER + ADDR + 4],
) -> &[u8] {
    let mut e = Encoder::new(buf, kind::UDP_BIND);
    encode_addr(&mut e, addr);
    e.u32(flags);
    let n = e.finish().unwrap_or(HEADER);
    &buf[HEADER..n]
}

/// Decodes a single address that is a whole body: `UDP_BIND`'s parameters
/// and `BOUND`'s body.
pub fn decode_lone_addr(body: &[u8]) -> Result<SocketAddr, WireError> {
    let mut d = Decoder::new(body);
    let addr = decode_addr(&mut d)?;
    d.finish()?;
    Ok(addr)
}

/// Decodes an address that may be followed by `flags: u32`, as the whole
/// body (`UDP_BIND`'s parameters, `BOUND`'s body): the address and the
/// flags (`None` without them). Flags outside `known` are refused.
pub fn decode_flagged(body: &[u8], known: u32) -> Result<(SocketAddr, Option<u32>), WireError> {
    let mut d = Decoder::new(body);
    let addr = decode_addr(&mut d)?;
    let flags = if body.len() == ADDR {
        None
    } else {
        let flags = d.u32()?;
        if flags & !known != 0 {
            return Err(WireError::Field("flags"));
        }
        Some(flags)
    };
    d.finish()?;
    Ok((addr, flags))
}

/// Encodes a `BOUND` frame naming `local`, with `flags` ([`bound_flags`])
/// when the bind carried flags, into `buf`.
pub fn encode_bound(local: SocketAddr, flags: Option<u32>, buf: &mut [u8]) -> Option<usize> {
    let mut e = Encoder::new(buf, net_kind::BOUND);
    encode_addr(&mut e, local);
    if let Some(f) = flags {
        e.u32(f);
    }
    e.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_and_bound_carry_flags_only_when_asked() {
        let a = "10.77.0.1:9000".parse().unwrap();
        let mut buf = [0u8; HEADER + ADDR + 4];
        let params = encode_bind_flagged(a, bind_flags::MOVABLE, &mut buf).to_vec();
        assert_eq!(params.len(), ADDR + 4);
        assert_eq!(decode_flagged(&params, bind_flags::ALL), Ok((a, Some(1))));
        assert_eq!(
            decode_flagged(&params[..ADDR], bind_flags::ALL),
            Ok((a, None))
        );
        assert_eq!(
            decode_flagged(&params[..ADDR + 2], bind_flags::ALL),
            Err(WireError::Truncated)
        );
        let mut unknown = params.clone();
        unknown[ADDR] = 2;
        assert_eq!(
            decode_flagged(&unknown, bind_flags::ALL),
            Err(WireError::Field("flags"))
        );
        // Without flags a BOUND is as it always was.
        let mut frame = [0u8; HEADER + ADDR + 4];
        let n = encode_bound(a, None, &mut frame).unwrap();
        assert_eq!(n, HEADER + ADDR);
        assert_eq!(decode_lone_addr(&frame[HEADER..n]), Ok(a));
        let n = encode_bound(a, Some(bound_flags::FOLLOWS), &mut frame).unwrap();
        assert_eq!(
            decode_flagged(&frame[HEADER..n], u32::MAX),
            Ok((a, Some(bound_flags::FOLLOWS)))
        );
        assert_eq!(
            decode_lone_addr(&frame[HEADER..n]),
            Err(WireError::Trailing)
        );
    }
    use crate::frame::tests::whole as split;

    fn v4() -> SocketAddr {
        "127.0.0.1:8080".parse().unwrap()
    }

    fn v6() -> SocketAddr {
        "[2001:db8::1]:443".parse().unwrap()
    }

    #[test]
    fn addresses_round_trip_with_one_encoding() {
        for a in [v4(), v6()] {
            let mut buf = [0u8; HEADER + ADDR];
            let mut e = Encoder::new(&mut buf, 1);
            encode_addr(&mut e, a);
            let n = e.finish().unwrap();
            assert_eq!(n, HEADER + ADDR);
            assert_eq!(decode_lone_addr(&buf[HEADER..n]), Ok(a));
        }
        let mut raw = [0u8; ADDR];
        raw[0] = 4;
        raw[1] = 80;
        assert_eq!(
            decode_lone_addr(&raw),
            Ok("0.0.0.0:80".parse::<SocketAddr>().unwrap())
        );
        raw[10] = 1;
        assert_eq!(
            decode_lone_addr(&raw),
            Err(WireError::Field("address padding"))
        );
        raw[0] = 5;
        assert_eq!(
            decode_lone_addr(&raw),
            Err(WireError::Field("address family"))
        );
        assert_eq!(decode_lone_addr(&raw[..5]), Err(WireError::Truncated));
    }

    #[test]
    fn tcp_requests_round_trip() {
        for r in [
            TcpRequest::Listen { addr: v4() },
            TcpRequest::Connect { addr: v6() },
            TcpRequest::Accept {
                listener: 7,
                id: u64::MAX,
            },
        ] {
            let mut buf = [0u8; MAX_TCP_FIRST];
            let params = r.encode_params(&mut buf);
            assert_eq!(TcpRequest::decode_params(r.kind(), params), Ok(r));
        }
        assert_eq!(
            TcpRequest::decode_params(kind::TCP_ACCEPT, &[0; 13]),
            Err(WireError::Trailing)
        );
        assert_eq!(
            TcpRequest::decode_params(kind::UDP_BIND, &[]),
            Err(WireError::Kind(kind::UDP_BIND))
        );
    }

    #[test]
    fn tcp_replies_round_trip() {
        for r in [
            TcpReply::Listening { local: v4() },
            TcpReply::Connected {
                local: v4(),
                peer: v6(),
            },
            TcpReply::Accepted {
                local: v6(),
                peer: v4(),
            },
            TcpReply::Connection { id: 3, peer: v4() },
        ] {
            let mut buf = [0u8; MAX_TCP_FRAME];
            let n = r.encode(&mut buf);
            let (h, body) = split(&buf[..n]);
            assert_eq!(TcpReply::decode(h.kind, body), Ok(r));
        }
        assert_eq!(
            TcpReply::decode(net_kind::LISTENING, &[0; ADDR + 1]),
            Err(WireError::Field("address family"))
        );
        assert_eq!(
            TcpReply::decode(net_kind::SEND_TO, &[]),
            Err(WireError::Kind(net_kind::SEND_TO))
        );
    }

    #[test]
    fn datagrams_round_trip_and_respect_the_limit() {
        let mut buf = [0u8; datagram_frame_len(MAX_DATAGRAM) + 1];
        let big = [7u8; MAX_DATAGRAM + 1];
        for payload in [&big[..0], &big[..5], &big[..MAX_DATAGRAM]] {
            let d = Datagram {
                addr: v6(),
                payload,
            };
            let n = d.encode(net_kind::DATAGRAM, &mut buf).unwrap();
            assert_eq!(n, datagram_frame_len(payload.len()));
            let (h, body) = split(&buf[..n]);
            assert_eq!(h.kind, net_kind::DATAGRAM);
            assert_eq!(Datagram::decode(body), Ok(d));
        }
        let too_big = Datagram {
            addr: v4(),
            payload: &big,
        };
        let mut roomy = [0u8; datagram_frame_len(MAX_DATAGRAM + 1)];
        assert_eq!(too_big.encode(net_kind::SEND_TO, &mut roomy), None);
        assert_eq!(Datagram::decode(&[4, 0]), Err(WireError::Truncated));
        // A body one byte longer than the limit is refused.
        let empty = Datagram {
            addr: v4(),
            payload: &[],
        };
        let n = empty.encode(net_kind::SEND_TO, &mut buf).unwrap();
        let mut body = [0u8; ADDR + MAX_DATAGRAM + 1];
        body[..ADDR].copy_from_slice(&buf[HEADER..n]);
        assert!(matches!(
            Datagram::decode(&body),
            Err(WireError::TooLong(_))
        ));
    }

    #[test]
    fn bind_params_round_trip() {
        let mut buf = [0u8; HEADER + ADDR];
        assert_eq!(decode_lone_addr(encode_bind(v4(), &mut buf)), Ok(v4()));
    }
}
