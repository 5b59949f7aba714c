//! The payloads of UDP on the fabric's addresses (PROTOCOL.md §16.7): the
//! puts on `weft/dev/<name>/udp/<id>` that carry datagrams between the
//! device that holds a socket (the owner of its fabric address) and the
//! device whose app uses it.
//!
//! A payload is binary: a kind byte, then the kind's fields.
//!
//! | kind | direction | fields after the kind byte |
//! |---|---|---|
//! | `1` SEND | app's device → owner | `to` (§11.1 address, 19 bytes), payload (the rest) |
//! | `2` DATAGRAM | owner → app's device | `from` (19 bytes), payload (the rest) |
//! | `3` ERROR | owner → app's device | `code: u32` LE (§9.4), message (UTF-8, the rest, ≤ [`MAX_MESSAGE`]) |
//! | `4` HELD | owner → app's device | none: nothing comes after it until RESUMED (the app moves) |
//! | `5` RESUMED | owner → app's device | none: what was held comes next |
//!
//! A payload is at most [`MAX_PUT`] bytes. [`UdpPut::decode`] refuses
//! anything else with a [`UdpError`]; nothing a peer puts can make a
//! daemon panic.

use std::net::SocketAddr;
use thiserror::Error;
use weft_control::net_proto::{ADDR, MAX_DATAGRAM, addr_bytes, addr_from_bytes};

/// The kind byte of each payload.
pub mod kind {
    pub const SEND: u8 = 1;
    pub const DATAGRAM: u8 = 2;
    pub const ERROR: u8 = 3;
    pub const HELD: u8 = 4;
    pub const RESUMED: u8 = 5;
}

/// The longest message of an ERROR payload, in bytes.
pub const MAX_MESSAGE: usize = 256;
/// The longest payload: a kind byte, an address and the largest datagram.
pub const MAX_PUT: usize = 1 + ADDR + MAX_DATAGRAM;

/// A payload that does not decode.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum UdpError {
    #[error("empty payload")]
    Empty,
    #[error("payload of {0} bytes is over the {MAX_PUT}-byte limit")]
    TooLarge(usize),
    #[error("unknown kind {0}")]
    Kind(u8),
    #[error("kind {0} carries no fields, but bytes follow")]
    Trailing(u8),
    #[error("truncated {0}")]
    Truncated(&'static str),
    #[error("bad address: {0}")]
    Address(String),
    #[error("error message of {0} bytes is over {MAX_MESSAGE} or not UTF-8")]
    Message(usize),
}

/// One put of a fabric UDP socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UdpPut<'a> {
    /// A datagram for the owner to send from the socket to `to`.
    Send { to: SocketAddr, payload: &'a [u8] },
    /// A datagram the owner's socket received from `from`.
    Datagram { from: SocketAddr, payload: &'a [u8] },
    /// A send the owner refused or the host failed: a §9.4 code and why.
    Error { code: u32, message: &'a str },
    /// The owner holds what comes from now on (the app is moving).
    Held,
    /// The owner delivers again, what it held first (the move failed).
    Resumed,
}

impl<'a> UdpPut<'a> {
    /// The payload's bytes.
    pub fn encode(&self) -> Vec<u8> {
        match *self {
            UdpPut::Send { to: addr, payload }
            | UdpPut::Datagram {
                from: addr,
                payload,
            } => {
                let k = if matches!(self, UdpPut::Send { .. }) {
                    kind::SEND
                } else {
                    kind::DATAGRAM
                };
                let mut out = Vec::with_capacity(1 + ADDR + payload.len());
                out.push(k);
                out.extend_from_slice(&addr_bytes(addr));
                out.extend_from_slice(payload);
                out
            }
            UdpPut::Error { code, message } => {
                let mut end = message.len().min(MAX_MESSAGE);
                while !message.is_char_boundary(end) {
                    end -= 1;
                }
                let mut out = Vec::with_capacity(5 + end);
                out.push(kind::ERROR);
                out.extend_from_slice(&code.to_le_bytes());
                out.extend_from_slice(&message.as_bytes()[..end]);
                out
            }
            UdpPut::Held => vec![kind::HELD],
            UdpPut::Resumed => vec![kind::RESUMED],
        }
    }

    /// Reads a payload.
    pub fn decode(bytes: &'a [u8]) -> Result<Self, UdpError> {
        if bytes.len() > MAX_PUT {
            return Err(UdpError::TooLarge(bytes.len()));
        }
        let (&k, rest) = bytes.split_first().ok_or(UdpError::Empty)?;
        match k {
            kind::SEND | kind::DATAGRAM => {
                let (raw, payload) = rest
                    .split_first_chunk::<ADDR>()
                    .ok_or(UdpError::Truncated("address"))?;
                let addr = addr_from_bytes(raw).map_err(|e| UdpError::Address(format!("{e:?}")))?;
                Ok(if k == kind::SEND {
                    UdpPut::Send { to: addr, payload }
                } else {
                    UdpPut::Datagram {
                        from: addr,
                        payload,
                    }
                })
            }
            kind::ERROR => {
                let (code, message) = rest
                    .split_first_chunk::<4>()
                    .ok_or(UdpError::Truncated("error code"))?;
                let message = std::str::from_utf8(message)
                    .ok()
                    .filter(|m| m.len() <= MAX_MESSAGE)
                    .ok_or(UdpError::Message(message.len()))?;
                Ok(UdpPut::Error {
                    code: u32::from_le_bytes(*code),
                    message,
                })
            }
            kind::HELD | kind::RESUMED if !rest.is_empty() => Err(UdpError::Trailing(k)),
            kind::HELD => Ok(UdpPut::Held),
            kind::RESUMED => Ok(UdpPut::Resumed),
            other => Err(UdpError::Kind(other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn puts_round_trip_byte_by_byte() {
        let to: SocketAddr = "10.77.0.1:9000".parse().unwrap();
        let send = UdpPut::Send {
            to,
            payload: b"abc",
        };
        let bytes = send.encode();
        assert_eq!(bytes[0], kind::SEND);
        assert_eq!(&bytes[1..1 + ADDR], &addr_bytes(to));
        assert_eq!(&bytes[1 + ADDR..], b"abc");
        assert_eq!(UdpPut::decode(&bytes), Ok(send));
        let from: SocketAddr = "[fd00::2]:1".parse().unwrap();
        let d = UdpPut::Datagram { from, payload: &[] };
        assert_eq!(UdpPut::decode(&d.encode()), Ok(d));
        let e = UdpPut::Error {
            code: 4,
            message: "not allowed",
        };
        let bytes = e.encode();
        assert_eq!(bytes[..5], [kind::ERROR, 4, 0, 0, 0]);
        assert_eq!(UdpPut::decode(&bytes), Ok(e));
        assert_eq!(UdpPut::Held.encode(), [kind::HELD]);
        assert_eq!(UdpPut::decode(&[kind::HELD]), Ok(UdpPut::Held));
        assert_eq!(UdpPut::decode(&[kind::RESUMED]), Ok(UdpPut::Resumed));
        assert_eq!(
            UdpPut::decode(&[kind::RESUMED, 0]),
            Err(UdpError::Trailing(kind::RESUMED))
        );
        // A long message is cut on a character boundary.
        let long = "é".repeat(MAX_MESSAGE);
        let cut = UdpPut::Error {
            code: 1,
            message: &long,
        }
        .encode();
        assert_eq!(cut.len(), 5 + MAX_MESSAGE);
        assert!(UdpPut::decode(&cut).is_ok());
    }

    #[test]
    fn bad_payloads_are_refused() {
        let good = UdpPut::Send {
            to: "10.0.0.1:1".parse().unwrap(),
            payload: b"x",
        }
        .encode();
        assert_eq!(UdpPut::decode(&[]), Err(UdpError::Empty));
        assert_eq!(UdpPut::decode(&[9]), Err(UdpError::Kind(9)));
        assert_eq!(
            UdpPut::decode(&good[..ADDR]),
            Err(UdpError::Truncated("address"))
        );
        let mut family = good.clone();
        family[1] = 5;
        assert!(matches!(UdpPut::decode(&family), Err(UdpError::Address(_))));
        assert_eq!(
            UdpPut::decode(&[kind::ERROR, 1, 0]),
            Err(UdpError::Truncated("error code"))
        );
        assert!(matches!(
            UdpPut::decode(&[kind::ERROR, 1, 0, 0, 0, 0xff]),
            Err(UdpError::Message(1))
        ));
        let huge = vec![kind::SEND; MAX_PUT + 1];
        assert_eq!(UdpPut::decode(&huge), Err(UdpError::TooLarge(MAX_PUT + 1)));
        // Every prefix and every bit flip of a good payload decodes or is
        // refused, never panics.
        for n in 0..good.len() {
            let _ = UdpPut::decode(&good[..n]);
        }
        for bit in 0..good.len() * 8 {
            let mut b = good.clone();
            b[bit / 8] ^= 1 << (bit % 8);
            let _ = UdpPut::decode(&b);
        }
    }
}
