//! The control pipe (slot 0, PROTOCOL.md §9.1): it only opens and closes
//! stream pairs. Every request carries a request id the guest chooses; the
//! reply carries it back, so requests from many guest threads may be in
//! flight and replies are matched by id, not by order.

use crate::frame::{Code, Decoder, Encoder, HEADER, Header, WireError, kind};
use crate::streams::{RING_CAPACITY, SlotRings};

/// Bytes of the longest control frame (an `OPENED` reply).
pub const MAX_FRAME: usize = HEADER + 24;

/// A request from the guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    /// Open a stream pair in a free slot.
    Open {
        /// The guest's id for this request.
        request: u32,
    },
    /// Close the stream pair in `slot`; the guest no longer touches it.
    Close {
        /// The guest's id for this request.
        request: u32,
        /// The slot an `OPENED` reply named.
        slot: u32,
    },
}

/// A reply from the monitor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reply {
    /// A stream pair is open: both rings are initialised and empty.
    Opened {
        /// The request this answers.
        request: u32,
        /// The stream's slot (its id).
        slot: u32,
        /// Where its rings and status word are (offsets into the region).
        rings: SlotRings,
        /// Data capacity of each ring.
        capacity: u32,
    },
    /// The stream pair is closed; its slot may be handed out again.
    Closed {
        /// The request this answers.
        request: u32,
        /// The closed slot.
        slot: u32,
        /// The stream's final status word (0: no error).
        status: u32,
    },
    /// The request was refused.
    Refused {
        /// The request this answers.
        request: u32,
        /// Why.
        code: Code,
    },
}

impl Request {
    /// Encodes the request as a frame into `buf`.
    pub fn encode(&self, buf: &mut [u8; MAX_FRAME]) -> usize {
        let n = match *self {
            Self::Open { request } => {
                let mut e = Encoder::new(buf, kind::OPEN);
                e.u32(request);
                e.finish()
            }
            Self::Close { request, slot } => {
                let mut e = Encoder::new(buf, kind::CLOSE);
                e.u32(request).u32(slot);
                e.finish()
            }
        };
        n.unwrap_or(0)
    }

    /// Decodes a request frame.
    pub fn decode(header: Header, body: &[u8]) -> Result<Self, WireError> {
        let mut d = Decoder::new(body);
        let r = match header.kind {
            kind::OPEN => Self::Open { request: d.u32()? },
            kind::CLOSE => Self::Close {
                request: d.u32()?,
                slot: d.u32()?,
            },
            other => return Err(WireError::Kind(other)),
        };
        d.finish()?;
        Ok(r)
    }
}

impl Reply {
    /// The request this reply answers.
    pub fn request(&self) -> u32 {
        match *self {
            Self::Opened { request, .. }
            | Self::Closed { request, .. }
            | Self::Refused { request, .. } => request,
        }
    }

    /// Encodes the reply as a frame into `buf`.
    pub fn encode(&self, buf: &mut [u8; MAX_FRAME]) -> usize {
        let n = match *self {
            Self::Opened {
                request,
                slot,
                rings,
                capacity,
            } => {
                let mut e = Encoder::new(buf, kind::OPENED);
                e.u32(request)
                    .u32(slot)
                    .u32(rings.to_monitor as u32)
                    .u32(rings.to_guest as u32)
                    .u32(rings.status as u32)
                    .u32(capacity);
                e.finish()
            }
            Self::Closed {
                request,
                slot,
                status,
            } => {
                let mut e = Encoder::new(buf, kind::CLOSED);
                e.u32(request).u32(slot).u32(status);
                e.finish()
            }
            Self::Refused { request, code } => {
                let mut e = Encoder::new(buf, kind::REFUSED);
                e.u32(request).u32(code as u32);
                e.finish()
            }
        };
        n.unwrap_or(0)
    }

    /// Decodes a reply frame. An `OPENED` reply must name exactly the rings
    /// of its slot in the fixed layout (§8.1) and [`RING_CAPACITY`]: the guest
    /// never trusts an offset it could not have computed itself.
    pub fn decode(header: Header, body: &[u8]) -> Result<Self, WireError> {
        let mut d = Decoder::new(body);
        let r = match header.kind {
            kind::OPENED => {
                let request = d.u32()?;
                let slot = d.u32()?;
                let stated = SlotRings {
                    to_monitor: d.u32()?.into(),
                    to_guest: d.u32()?.into(),
                    status: d.u32()?.into(),
                };
                let capacity = d.u32()?;
                let rings = crate::streams::rings(slot.into())
                    .filter(|r| *r == stated)
                    .ok_or(WireError::Field("rings"))?;
                if u64::from(capacity) != RING_CAPACITY {
                    return Err(WireError::Field("capacity"));
                }
                Self::Opened {
                    request,
                    slot,
                    rings,
                    capacity,
                }
            }
            kind::CLOSED => Self::Closed {
                request: d.u32()?,
                slot: d.u32()?,
                status: d.u32()?,
            },
            kind::REFUSED => Self::Refused {
                request: d.u32()?,
                code: Code::from_u32(d.u32()?).ok_or(WireError::Field("code"))?,
            },
            other => return Err(WireError::Kind(other)),
        };
        d.finish()?;
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::tests::whole as split;
    use crate::streams::rings;

    #[test]
    fn requests_and_replies_round_trip() {
        let mut buf = [0u8; MAX_FRAME];
        for r in [
            Request::Open { request: 7 },
            Request::Close {
                request: 8,
                slot: 9,
            },
        ] {
            let n = r.encode(&mut buf);
            let (h, body) = split(&buf[..n]);
            assert_eq!(Request::decode(h, body), Ok(r));
        }
        for r in [
            Reply::Opened {
                request: 1,
                slot: 5,
                rings: rings(5).unwrap(),
                capacity: RING_CAPACITY as u32,
            },
            Reply::Closed {
                request: 2,
                slot: 5,
                status: 14,
            },
            Reply::Refused {
                request: 3,
                code: Code::NoSlots,
            },
        ] {
            let n = r.encode(&mut buf);
            let (h, body) = split(&buf[..n]);
            assert_eq!(Reply::decode(h, body), Ok(r));
            assert_eq!(Reply::decode(h, body).unwrap().request(), r.request());
        }
    }

    #[test]
    fn opened_replies_with_foreign_offsets_are_refused() {
        let mut buf = [0u8; MAX_FRAME];
        let good = Reply::Opened {
            request: 1,
            slot: 5,
            rings: rings(6).unwrap(),
            capacity: RING_CAPACITY as u32,
        };
        let n = good.encode(&mut buf);
        let (h, body) = split(&buf[..n]);
        assert_eq!(Reply::decode(h, body), Err(WireError::Field("rings")));
        let (h, body) = split(&buf[..n]);
        assert_eq!(Request::decode(h, body), Err(WireError::Kind(kind::OPENED)));
        assert_eq!(
            Request::decode(Header::new(kind::OPEN, 5), &[0; 5]),
            Err(WireError::Trailing)
        );
    }
}
