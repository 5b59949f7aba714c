//! The IPC protocol (PROTOCOL.md §18): services named by GUID, one-way
//! messages and requests that get exactly one answer, between programs of
//! any devices of a fabric.
//!
//! A program opens the stream with the first frame `frame::kind::IPC` (its
//! `version` only); the monitor answers [`kind::READY`]. On the stream it
//! may send messages ([`Request::Send`]; with [`send_flags::REQUEST`] the
//! message is a request, answered by [`Response::Answer`] or
//! [`Response::Failed`]), cancel its requests, and provide one service
//! ([`Request::Serve`]): from its `SERVING` on, the monitor delivers the
//! service's messages as [`Response::Message`] frames, and the program
//! answers each request among them with [`Request::Reply`] or
//! [`Request::Refuse`].
//!
//! Strings ("text") are a `u16` length and that many bytes of UTF-8, at
//! most [`MAX_TEXT`]. A GUID is 16 bytes in RFC 9562 order (the bytes of
//! its text form, left to right).
//!
//! Invariants: decoding never panics and refuses trailing bytes, unknown
//! flags, unknown error codes and out-of-range fields, so each value has
//! exactly one encoding; everything a decoder returns borrows the body.

use crate::frame::{Decoder, Encoder, WireError};
use core::fmt;

/// Frame kinds of the IPC protocol (the first frame itself is
/// `frame::kind::IPC`).
pub mod kind {
    /// Request: provide a service on this stream.
    pub const SERVE: u16 = 0x0601;
    /// Request: send a message (or a request) to a service.
    pub const SEND: u16 = 0x0602;
    /// Request: give up waiting for a request's answer.
    pub const CANCEL: u16 = 0x0603;
    /// The provider's answer to a request it was delivered.
    pub const REPLY: u16 = 0x0604;
    /// The provider refuses to answer a request it was delivered.
    pub const REFUSE: u16 = 0x0605;

    /// Reply to the first frame: the stream serves IPC.
    pub const READY: u16 = 0x8600;
    /// Reply to `SERVE`: messages to the service follow.
    pub const SERVING: u16 = 0x8601;
    /// Reply to a one-way `SEND`: the message is in the provider's queue.
    pub const SENT: u16 = 0x8602;
    /// Reply to a request `SEND`: the provider's answer.
    pub const ANSWER: u16 = 0x8603;
    /// Reply to `SERVE` or `SEND`: why it failed.
    pub const FAILED: u16 = 0x8604;
    /// Sent by the monitor on a serving stream, unasked: one message.
    pub const MESSAGE: u16 = 0x8605;
    /// Sent by the monitor on a serving stream, unasked: no message follows
    /// until `RESUMED` (the app is being moved, PROTOCOL.md §19.5).
    pub const PAUSED: u16 = 0x8606;
    /// Sent by the monitor on a paused serving stream: messages follow
    /// again (the move failed).
    pub const RESUMED: u16 = 0x8607;
}

/// The longest text a frame carries (a pid, a message, a reason).
pub const MAX_TEXT: usize = 1024;
/// The longest display name of a service.
pub const MAX_NAME: usize = 64;
/// The most bytes one message (or answer) carries.
pub const MAX_DATA: usize = 65536;
/// A request's timeout when its `SEND` states 0, in milliseconds.
pub const DEFAULT_TIMEOUT_MS: u32 = 30_000;
/// The longest timeout a `SEND` may state, in milliseconds (one hour).
pub const MAX_TIMEOUT_MS: u32 = 3_600_000;

/// [`Request::Send`]'s and [`Response::Message`]'s flags.
pub mod send_flags {
    /// The message is a request: it gets exactly one answer.
    pub const REQUEST: u32 = 1;
    /// Every bit that means something.
    pub const ALL: u32 = REQUEST;
}

/// A service's identity: an RFC 9562 UUID.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Guid(pub [u8; 16]);

impl Guid {
    /// Parses the canonical text form, `8-4-4-4-12` hex digits (either
    /// case); the nil UUID (all zeros) names no service and is refused.
    pub fn parse(text: &str) -> Option<Guid> {
        let raw = text.as_bytes();
        if raw.len() != 36 {
            return None;
        }
        let mut out = [0u8; 16];
        let mut digits = raw
            .iter()
            .enumerate()
            .filter(|&(i, c)| !(matches!(i, 8 | 13 | 18 | 23) && *c == b'-'))
            .map(|(_, c)| (*c as char).to_digit(16));
        for byte in &mut out {
            let hi = digits.next()??;
            let lo = digits.next()??;
            *byte = (hi * 16 + lo) as u8;
        }
        if digits.next().is_some() || out == [0; 16] {
            return None;
        }
        Some(Guid(out))
    }
}

/// The canonical text form, lower case.
impl fmt::Display for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Why a message got no answer, or a service could not be provided
/// (`FAILED`'s `error`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum IpcError {
    /// No instance of the service is running anywhere (and none could be
    /// started).
    NoProvider = 1,
    /// The provider ended (or crashed, or closed the service) before it
    /// answered.
    ProviderEnded = 2,
    /// No answer came within the request's timeout.
    Timeout = 3,
    /// The requester cancelled the request.
    Cancelled = 4,
    /// The provider refused to answer (its reason follows).
    Refused = 5,
    /// Not allowed: the service is not the sender's to reach, or not the
    /// program's to provide.
    Denied = 6,
    /// The provider's device could not be reached.
    Unreachable = 7,
    /// The provider's queue is full.
    Busy = 8,
    /// The message names no valid target (a pid that is not `DEVICE:N`,
    /// an unknown device), or the service is provided on this stream
    /// already.
    Invalid = 9,
}

impl IpcError {
    /// Every error, in numeric order.
    pub const ALL: [IpcError; 9] = [
        Self::NoProvider,
        Self::ProviderEnded,
        Self::Timeout,
        Self::Cancelled,
        Self::Refused,
        Self::Denied,
        Self::Unreachable,
        Self::Busy,
        Self::Invalid,
    ];

    /// The error numbered `n`, if any.
    pub fn from_u32(n: u32) -> Option<Self> {
        Self::ALL.into_iter().find(|e| *e as u32 == n)
    }

    /// Its name, as the CLI prints it.
    pub const fn name(self) -> &'static str {
        match self {
            Self::NoProvider => "no provider",
            Self::ProviderEnded => "provider ended",
            Self::Timeout => "timeout",
            Self::Cancelled => "cancelled",
            Self::Refused => "refused",
            Self::Denied => "denied",
            Self::Unreachable => "unreachable",
            Self::Busy => "busy",
            Self::Invalid => "invalid",
        }
    }
}

impl fmt::Display for IpcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Reads a text field of at most `limit` bytes.
fn text<'a>(d: &mut Decoder<'a>, field: &'static str, limit: usize) -> Result<&'a str, WireError> {
    let raw = d.short_bytes()?;
    if raw.len() > limit {
        return Err(WireError::TooLong(raw.len() as u32));
    }
    core::str::from_utf8(raw).map_err(|_| WireError::Field(field))
}

/// Appends a text field; `None` if it is longer than `limit`.
fn put_text(e: &mut Encoder<'_>, s: &str, limit: usize) -> Option<()> {
    (s.len() <= limit).then(|| {
        e.short_bytes(s.as_bytes());
    })
}

/// Reads a message's data: the rest of the body, at most [`MAX_DATA`].
fn data<'a>(d: &mut Decoder<'a>) -> Result<&'a [u8], WireError> {
    let data = d.rest();
    if data.len() > MAX_DATA {
        return Err(WireError::TooLong(data.len() as u32));
    }
    Ok(data)
}

fn guid(d: &mut Decoder<'_>) -> Result<Guid, WireError> {
    let raw: [u8; 16] = d.bytes(16)?.try_into().map_err(|_| WireError::Truncated)?;
    if raw == [0; 16] {
        return Err(WireError::Field("guid"));
    }
    Ok(Guid(raw))
}

fn flags(d: &mut Decoder<'_>) -> Result<u32, WireError> {
    match d.u32()? {
        f if f & !send_flags::ALL == 0 => Ok(f),
        _ => Err(WireError::Field("flags")),
    }
}

/// A frame a program sends after `READY`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request<'a> {
    /// Provide service `guid`, shown as `name` (1 to [`MAX_NAME`] bytes).
    Serve {
        request: u32,
        guid: Guid,
        name: &'a str,
    },
    /// Send `data` to service `guid` (to instance `pid`, `DEVICE:N`, if
    /// given); a request (flag [`send_flags::REQUEST`]) waits at most
    /// `timeout_ms` (0: [`DEFAULT_TIMEOUT_MS`]) for its answer.
    Send {
        request: u32,
        flags: u32,
        timeout_ms: u32,
        guid: Guid,
        pid: Option<&'a str>,
        data: &'a [u8],
    },
    /// Stop waiting for request `request`'s answer: it fails `Cancelled`.
    Cancel { request: u32 },
    /// Answer delivered request `message` with `data`.
    Reply { message: u64, data: &'a [u8] },
    /// Refuse delivered request `message`, saying why.
    Refuse { message: u64, reason: &'a str },
}

impl<'a> Request<'a> {
    /// The frame's kind.
    pub fn kind(&self) -> u16 {
        match self {
            Self::Serve { .. } => kind::SERVE,
            Self::Send { .. } => kind::SEND,
            Self::Cancel { .. } => kind::CANCEL,
            Self::Reply { .. } => kind::REPLY,
            Self::Refuse { .. } => kind::REFUSE,
        }
    }

    /// Encodes the frame into `buf`; its length, or `None` if it does not
    /// fit, or a field is out of its range.
    pub fn encode(&self, buf: &mut [u8]) -> Option<usize> {
        let mut e = Encoder::new(buf, self.kind());
        match *self {
            Self::Serve {
                request,
                guid,
                name,
            } => {
                if name.is_empty() {
                    return None;
                }
                e.u32(request).bytes(&guid.0);
                put_text(&mut e, name, MAX_NAME)?;
            }
            Self::Send {
                request,
                flags,
                timeout_ms,
                guid,
                pid,
                data,
            } => {
                if data.len() > MAX_DATA || timeout_ms > MAX_TIMEOUT_MS {
                    return None;
                }
                e.u32(request).u32(flags).u32(timeout_ms).bytes(&guid.0);
                put_text(&mut e, pid.unwrap_or_default(), MAX_TEXT)?;
                e.bytes(data);
            }
            Self::Cancel { request } => {
                e.u32(request);
            }
            Self::Reply { message, data } => {
                if data.len() > MAX_DATA {
                    return None;
                }
                e.u64(message).bytes(data);
            }
            Self::Refuse { message, reason } => {
                e.u64(message);
                put_text(&mut e, reason, MAX_TEXT)?;
            }
        }
        e.finish()
    }

    /// Decodes a frame of `kind` with `body`.
    pub fn decode(kind: u16, body: &'a [u8]) -> Result<Self, WireError> {
        let mut d = Decoder::new(body);
        let r = match kind {
            kind::SERVE => Self::Serve {
                request: d.u32()?,
                guid: guid(&mut d)?,
                name: match text(&mut d, "name", MAX_NAME)? {
                    "" => return Err(WireError::Field("name")),
                    n => n,
                },
            },
            kind::SEND => Self::Send {
                request: d.u32()?,
                flags: flags(&mut d)?,
                timeout_ms: match d.u32()? {
                    t if t <= MAX_TIMEOUT_MS => t,
                    _ => return Err(WireError::Field("timeout_ms")),
                },
                guid: guid(&mut d)?,
                pid: Some(text(&mut d, "pid", MAX_TEXT)?).filter(|p| !p.is_empty()),
                data: data(&mut d)?,
            },
            kind::CANCEL => Self::Cancel { request: d.u32()? },
            kind::REPLY => Self::Reply {
                message: d.u64()?,
                data: data(&mut d)?,
            },
            kind::REFUSE => Self::Refuse {
                message: d.u64()?,
                reason: text(&mut d, "reason", MAX_TEXT)?,
            },
            other => return Err(WireError::Kind(other)),
        };
        d.finish()?;
        Ok(r)
    }
}

/// A frame the monitor sends after `READY`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Response<'a> {
    /// `SERVE` `request` succeeded: messages follow.
    Serving { request: u32 },
    /// One-way `SEND` `request` is in the provider's queue.
    Sent { request: u32 },
    /// The answer to request `SEND` `request`.
    Answer { request: u32, data: &'a [u8] },
    /// `SERVE` or `SEND` `request` failed with `error`; `message` says more.
    Failed {
        request: u32,
        error: IpcError,
        message: &'a str,
    },
    /// A message to the served service: `message` is its id (for the
    /// answer), `sender` the sending process's pid (`DEVICE:N`) or, for
    /// the device's own CLI, the device's name.
    Message {
        message: u64,
        flags: u32,
        sender: &'a str,
        data: &'a [u8],
    },
    /// No message follows until [`Response::Resumed`]: the monitor holds
    /// them (the app is being moved).
    Paused,
    /// Messages follow again after [`Response::Paused`].
    Resumed,
}

impl<'a> Response<'a> {
    /// The frame's kind.
    pub fn kind(&self) -> u16 {
        match self {
            Self::Serving { .. } => kind::SERVING,
            Self::Sent { .. } => kind::SENT,
            Self::Answer { .. } => kind::ANSWER,
            Self::Failed { .. } => kind::FAILED,
            Self::Message { .. } => kind::MESSAGE,
            Self::Paused => kind::PAUSED,
            Self::Resumed => kind::RESUMED,
        }
    }

    /// Encodes the frame into `buf`; its length, or `None` if it does not
    /// fit, or a field is out of its range.
    pub fn encode(&self, buf: &mut [u8]) -> Option<usize> {
        let mut e = Encoder::new(buf, self.kind());
        match *self {
            Self::Serving { request } | Self::Sent { request } => {
                e.u32(request);
            }
            Self::Answer { request, data } => {
                if data.len() > MAX_DATA {
                    return None;
                }
                e.u32(request).bytes(data);
            }
            Self::Failed {
                request,
                error,
                message,
            } => {
                e.u32(request).u32(error as u32);
                put_text(&mut e, message, MAX_TEXT)?;
            }
            Self::Message {
                message,
                flags,
                sender,
                data,
            } => {
                if flags & !send_flags::ALL != 0 || sender.is_empty() || data.len() > MAX_DATA {
                    return None;
                }
                e.u64(message).u32(flags);
                put_text(&mut e, sender, MAX_TEXT)?;
                e.bytes(data);
            }
            Self::Paused | Self::Resumed => {}
        }
        e.finish()
    }

    /// Decodes a frame of `kind` with `body`.
    pub fn decode(kind: u16, body: &'a [u8]) -> Result<Self, WireError> {
        let mut d = Decoder::new(body);
        let r = match kind {
            kind::SERVING => Self::Serving { request: d.u32()? },
            kind::SENT => Self::Sent { request: d.u32()? },
            kind::ANSWER => Self::Answer {
                request: d.u32()?,
                data: data(&mut d)?,
            },
            kind::FAILED => Self::Failed {
                request: d.u32()?,
                error: IpcError::from_u32(d.u32()?).ok_or(WireError::Field("error"))?,
                message: text(&mut d, "message", MAX_TEXT)?,
            },
            kind::MESSAGE => Self::Message {
                message: d.u64()?,
                flags: flags(&mut d)?,
                sender: match text(&mut d, "sender", MAX_TEXT)? {
                    "" => return Err(WireError::Field("sender")),
                    s => s,
                },
                data: data(&mut d)?,
            },
            kind::PAUSED => Self::Paused,
            kind::RESUMED => Self::Resumed,
            other => return Err(WireError::Kind(other)),
        };
        d.finish()?;
        Ok(r)
    }
}

#[cfg(test)]
mod tests;
