//! The device protocol (PROTOCOL.md §15): the stream over which the monitor
//! drives the resident agent of a device guest, which starts and ends
//! processes for it and tells it when they end. (The monitor lists and
//! inspects processes without the agent, from the status page, §14.6.)
//!
//! The agent opens the stream with the first frame `frame::kind::DEVICE`
//! (its `version` only) and the monitor answers [`kind::ATTACHED`]. Then the
//! monitor sends requests (bit 15 set), each with a `request` id it chooses,
//! and the agent answers each, in order, with one reply carrying the id:
//! [`kind::SPAWNED`], [`kind::DONE`] or [`kind::FAILED`]. Unasked, the
//! agent sends [`kind::EXITED`] once for every process it spawned, when
//! that process ends; the monitor's [`kind::REAP`] (no id, no reply) tells
//! it a process of the guest ended, so it never has to look by itself.
//!
//! A `SPAWN` frame states the image's length; the image itself (a bundled
//! program's name, or the bytes of an ELF or a Wasm module, at most
//! [`MAX_IMAGE`]) follows at once in [`kind::IMAGE`] frames of the same
//! request, in order, each at most [`MAX_CHUNK`] bytes, nothing else in
//! between.
//!
//! Invariants: decoding never panics and refuses trailing bytes, like every
//! frame (§9.3); each value has exactly one encoding (argument lists are
//! validated whole, record lists are whole records); everything a decoder
//! returns borrows the body.

use crate::error::ErrorCode;
use crate::frame::{Decoder, Encoder, HEADER, MAX_BODY, WireError};

/// Frame kinds of the device protocol (the first frame itself is
/// `frame::kind::DEVICE`).
pub mod kind {
    /// Reply to the first frame: the monitor drives this agent.
    pub const ATTACHED: u16 = 0x8400;
    /// Start a process: its image's source and length, and its arguments.
    pub const SPAWN: u16 = 0x8401;
    /// Part of a `SPAWN`'s image.
    pub const IMAGE: u16 = 0x8402;
    /// End a process (it exits with status 137).
    pub const KILL: u16 = 0x8403;
    /// End every spawned process, then the agent (and so the guest).
    pub const SHUTDOWN: u16 = 0x8406;
    /// A process of the guest ended: collect the ended children (no reply).
    pub const REAP: u16 = 0x8407;

    /// Reply to `SPAWN`: the new process's pid.
    pub const SPAWNED: u16 = 0x0401;
    /// Reply to `KILL` and `SHUTDOWN`.
    pub const DONE: u16 = 0x0402;
    /// Reply to any request the agent could not carry out: an error code.
    pub const FAILED: u16 = 0x0404;
    /// Event: a process the agent spawned ended.
    pub const EXITED: u16 = 0x0405;
}

/// The largest image a `SPAWN` hands over.
pub const MAX_IMAGE: usize = 16 << 20;
/// The longest bundled program name (§14.2).
pub const MAX_NAME: usize = 256;
/// The most image bytes one `IMAGE` frame carries.
pub const MAX_CHUNK: usize = MAX_BODY - 4;
/// Room for the longest reply or event the agent sends.
pub const MAX_REPLY: usize = HEADER + 8;

/// `SPAWN`'s [`SpawnHead::source`] values (as §14.2's).
pub mod source {
    /// The image is a bundled program's name (UTF-8, at most
    /// [`super::MAX_NAME`] bytes).
    pub const BUNDLED: u32 = crate::process::source::BUNDLED;
    /// The image is an ELF executable or a Wasm module.
    pub const BYTES: u32 = crate::process::source::ELF;
}

crate::wire_layout! {
    /// The fixed start of a `SPAWN` body: 16 bytes (§15.2; the FABRIC
    /// stream's `SPAWN` has the same, §17.2).
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct SpawnHead: 16 {
        /// The request id.
        [0] pub request: u32,
        /// [`source`] (the FABRIC stream's: `fabric_proto::source`).
        [4] pub source: u32,
        /// Bytes of the image the `IMAGE` frames carry: 1..=[`MAX_IMAGE`]
        /// ([`MAX_NAME`] for a name; the FABRIC stream's own limits).
        [8] pub image_len: u32,
        /// How a Wasm module runs: a [`crate::process::tier`] value, 0 for
        /// any other image.
        [12] pub tier: u32,
    }
}

crate::wire_layout! {
    /// A request id and a process id: the `KILL` request and the `SPAWNED`
    /// reply (§15.2, §15.3).
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct Target: 8 {
        /// The request id.
        [0] pub request: u32,
        /// The process.
        [4] pub pid: u32,
    }
}

crate::wire_layout! {
    /// A `FAILED` reply: the request id and why (§15.3).
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct Failed: 8 {
        /// The request id.
        [0] pub request: u32,
        /// An [`ErrorCode`] (PROTOCOL.md §6), never 0.
        [4] pub code: u32,
    }
}

crate::wire_layout! {
    /// An `EXITED` event: a spawned process ended (§15.4).
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct Exited: 8 {
        /// The process.
        [0] pub pid: u32,
        /// Its exit status (§14.1: 0..=125, 125 faulted, 137 killed).
        [4] pub status: u32,
    }
}

/// A `SPAWN`'s argument list, validated: `count: u16`, then `count`
/// `bytes16`, filling the rest of the body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArgList<'a> {
    count: u16,
    /// The `bytes16` entries.
    raw: &'a [u8],
}

impl<'a> ArgList<'a> {
    /// Encodes `args` into `buf` and returns the list, or `None` if they do
    /// not fit `buf`, or one is longer than 65 535 bytes, or there are more
    /// than 65 535.
    pub fn new<A: AsRef<[u8]>>(args: &[A], buf: &'a mut [u8]) -> Option<Self> {
        let count = u16::try_from(args.len()).ok()?;
        let mut at = 0;
        for a in args {
            let a = a.as_ref();
            let len = u16::try_from(a.len()).ok()?;
            buf.get_mut(at..at + 2)?.copy_from_slice(&len.to_le_bytes());
            buf.get_mut(at + 2..at + 2 + a.len())?.copy_from_slice(a);
            at += 2 + a.len();
        }
        Some(Self {
            count,
            raw: &buf[..at],
        })
    }

    /// Reads the list that fills the rest of `d`.
    pub(crate) fn decode(d: &mut Decoder<'a>) -> Result<Self, WireError> {
        let count = d.u16()?;
        let raw = d.rest();
        let mut check = Decoder::new(raw);
        for _ in 0..count {
            check.short_bytes()?;
        }
        check.finish()?;
        Ok(Self { count, raw })
    }

    pub(crate) fn encode(&self, e: &mut Encoder<'_>) {
        e.u16(self.count).bytes(self.raw);
    }

    /// Bytes of its encoding.
    fn wire_len(&self) -> usize {
        2 + self.raw.len()
    }

    /// How many arguments.
    pub fn len(&self) -> usize {
        self.count.into()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The arguments in order.
    pub fn iter(&self) -> impl Iterator<Item = &'a [u8]> + use<'a> {
        let mut d = Decoder::new(self.raw);
        // Validated whole when the list was made: every entry is there.
        (0..self.count).map_while(move |_| d.short_bytes().ok())
    }
}

/// A frame the monitor sends the agent after `ATTACHED`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request<'a> {
    /// Start a process; its image follows in `Image` frames.
    Spawn { head: SpawnHead, args: ArgList<'a> },
    /// The next bytes of request `request`'s image.
    Image { request: u32, chunk: &'a [u8] },
    /// End process `pid`.
    Kill(Target),
    /// End every spawned process, answer, then exit 0.
    Shutdown { request: u32 },
    /// A process ended: collect and report the ended children (no id, no
    /// reply).
    Reap,
}

impl<'a> Request<'a> {
    /// The request id (0 for `Reap`, which has none).
    pub fn id(&self) -> u32 {
        match *self {
            Self::Spawn { head, .. } => head.request,
            Self::Kill(t) => t.request,
            Self::Image { request, .. } | Self::Shutdown { request } => request,
            Self::Reap => 0,
        }
    }

    /// Bytes of the whole frame.
    pub fn frame_len(&self) -> usize {
        HEADER
            + match self {
                Self::Spawn { args, .. } => SpawnHead::SIZE + args.wire_len(),
                Self::Image { chunk, .. } => 4 + chunk.len(),
                Self::Kill(_) => Target::SIZE,
                Self::Shutdown { .. } => 4,
                Self::Reap => 0,
            }
    }

    /// The frame's kind.
    pub fn kind(&self) -> u16 {
        match self {
            Self::Spawn { .. } => kind::SPAWN,
            Self::Image { .. } => kind::IMAGE,
            Self::Kill(_) => kind::KILL,
            Self::Shutdown { .. } => kind::SHUTDOWN,
            Self::Reap => kind::REAP,
        }
    }

    /// Encodes the frame into `buf`; its length, or `None` if it does not
    /// fit `buf` or [`MAX_BODY`].
    pub fn encode(&self, buf: &mut [u8]) -> Option<usize> {
        let mut e = Encoder::new(buf, self.kind());
        match self {
            Self::Spawn { head, args } => {
                e.bytes(&head.encode());
                args.encode(&mut e);
            }
            Self::Image { request, chunk } => {
                e.u32(*request).bytes(chunk);
            }
            Self::Kill(t) => {
                e.bytes(&t.encode());
            }
            Self::Shutdown { request } => {
                e.u32(*request);
            }
            Self::Reap => {}
        }
        e.finish()
    }

    /// Decodes a frame of `kind` with `body`.
    pub fn decode(kind: u16, body: &'a [u8]) -> Result<Self, WireError> {
        let mut d = Decoder::new(body);
        let r = match kind {
            kind::SPAWN => Self::Spawn {
                head: SpawnHead::decode(fixed(&mut d)?),
                args: ArgList::decode(&mut d)?,
            },
            kind::IMAGE => {
                let request = d.u32()?;
                let chunk = d.rest();
                if chunk.is_empty() {
                    return Err(WireError::Field("image chunk"));
                }
                Self::Image { request, chunk }
            }
            kind::KILL => Self::Kill(Target::decode(fixed(&mut d)?)),
            kind::SHUTDOWN => Self::Shutdown { request: d.u32()? },
            kind::REAP => Self::Reap,
            other => return Err(WireError::Kind(other)),
        };
        d.finish()?;
        Ok(r)
    }
}

/// The next `N` bytes of `d` as an array (a fixed layout's bytes).
fn fixed<'a, const N: usize>(d: &mut Decoder<'a>) -> Result<&'a [u8; N], WireError> {
    d.bytes(N)?.try_into().map_err(|_| WireError::Truncated)
}

/// A frame the agent sends the monitor after `ATTACHED`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reply {
    /// `SPAWN` started process `pid`.
    Spawned(Target),
    /// `KILL` or `SHUTDOWN` is done.
    Done { request: u32 },
    /// The request failed with `code`.
    Failed { request: u32, code: ErrorCode },
    /// A spawned process ended (not a reply: no request id).
    Exited(Exited),
}

impl Reply {
    /// The frame's kind.
    pub fn kind(&self) -> u16 {
        match self {
            Self::Spawned(_) => kind::SPAWNED,
            Self::Done { .. } => kind::DONE,
            Self::Failed { .. } => kind::FAILED,
            Self::Exited(_) => kind::EXITED,
        }
    }

    /// Encodes the frame into `buf` (at least [`MAX_REPLY`] bytes suffice);
    /// its length, or `None` if it does not fit.
    pub fn encode(&self, buf: &mut [u8]) -> Option<usize> {
        let mut e = Encoder::new(buf, self.kind());
        match self {
            Self::Spawned(t) => {
                e.bytes(&t.encode());
            }
            Self::Done { request } => {
                e.u32(*request);
            }
            Self::Failed { request, code } => {
                let f = Failed {
                    request: *request,
                    code: *code as u32,
                };
                e.bytes(&f.encode());
            }
            Self::Exited(x) => {
                e.bytes(&x.encode());
            }
        }
        e.finish()
    }

    /// Decodes a frame of `kind` with `body`. A `FAILED` code that is not
    /// one of §6's is refused.
    pub fn decode(kind: u16, body: &[u8]) -> Result<Self, WireError> {
        let mut d = Decoder::new(body);
        let r = match kind {
            kind::SPAWNED => Self::Spawned(Target::decode(fixed(&mut d)?)),
            kind::DONE => Self::Done { request: d.u32()? },
            kind::FAILED => {
                let f = Failed::decode(fixed(&mut d)?);
                let code = ErrorCode::from_u32(f.code).ok_or(WireError::Field("code"))?;
                Self::Failed {
                    request: f.request,
                    code,
                }
            }
            kind::EXITED => Self::Exited(Exited::decode(fixed(&mut d)?)),
            other => return Err(WireError::Kind(other)),
        };
        d.finish()?;
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::tests::whole;

    fn round_trip_request(r: Request<'_>) {
        let mut buf = [0u8; 512];
        let n = r.encode(&mut buf).unwrap();
        assert_eq!(n, r.frame_len());
        let (h, body) = whole(&buf[..n]);
        assert_eq!(Request::decode(h.kind, body), Ok(r));
        assert_eq!(Request::decode(h.kind, body).map(|r| r.id()), Ok(r.id()));
    }

    #[test]
    fn requests_round_trip() {
        let mut raw = [0u8; 64];
        let args = ArgList::new(&["hello", "", "you"], &mut raw).unwrap();
        assert!(args.iter().eq([&b"hello"[..], b"", b"you"]));
        assert_eq!(args.len(), 3);
        let head = SpawnHead {
            request: 7,
            source: source::BYTES,
            image_len: 100,
            tier: crate::process::tier::COMPILED,
        };
        round_trip_request(Request::Spawn { head, args });
        round_trip_request(Request::Image {
            request: 7,
            chunk: b"\x7fELF",
        });
        let t = Target { request: 8, pid: 3 };
        round_trip_request(Request::Kill(t));
        round_trip_request(Request::Shutdown { request: 10 });
        round_trip_request(Request::Reap);
    }

    #[test]
    fn malformed_requests_are_refused() {
        // A list that says two arguments but holds one.
        let mut body = SpawnHead::default().encode().to_vec();
        body.extend_from_slice(&[2, 0, 1, 0, b'a']);
        assert_eq!(
            Request::decode(kind::SPAWN, &body),
            Err(WireError::Truncated)
        );
        // Bytes after the last argument.
        body[16] = 1;
        body.push(0);
        assert_eq!(
            Request::decode(kind::SPAWN, &body),
            Err(WireError::Trailing)
        );
        assert_eq!(
            Request::decode(kind::IMAGE, &[1, 0, 0, 0]),
            Err(WireError::Field("image chunk"))
        );
        assert_eq!(
            Request::decode(kind::SHUTDOWN, &[1, 0, 0, 0, 0]),
            Err(WireError::Trailing)
        );
        assert_eq!(Request::decode(kind::REAP, &[0]), Err(WireError::Trailing));
        assert_eq!(
            Request::decode(kind::SPAWNED, &[0; 8]),
            Err(WireError::Kind(kind::SPAWNED))
        );
        let mut raw = [0u8; 4];
        assert_eq!(ArgList::new(&["toolong"], &mut raw), None);
    }

    #[test]
    fn replies_round_trip() {
        let mut buf = [0u8; MAX_REPLY];
        for r in [
            Reply::Spawned(Target { request: 1, pid: 2 }),
            Reply::Done { request: 3 },
            Reply::Failed {
                request: 5,
                code: ErrorCode::NoProcess,
            },
            Reply::Exited(Exited {
                pid: 2,
                status: 137,
            }),
        ] {
            let n = r.encode(&mut buf).unwrap();
            let (h, body) = whole(&buf[..n]);
            assert_eq!(Reply::decode(h.kind, body), Ok(r));
        }
    }

    #[test]
    fn malformed_replies_are_refused() {
        assert_eq!(
            Reply::decode(kind::FAILED, &[1, 0, 0, 0, 0, 0, 0, 0]),
            Err(WireError::Field("code"))
        );
        assert_eq!(
            Reply::decode(kind::EXITED, &[0; 7]),
            Err(WireError::Truncated)
        );
        assert_eq!(
            Reply::decode(kind::SPAWN, &[0; 20]),
            Err(WireError::Kind(kind::SPAWN))
        );
    }
}
