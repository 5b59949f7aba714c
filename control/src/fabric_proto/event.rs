//! The FABRIC stream's events (PROTOCOL.md §17.4): after a `WATCH` request
//! is answered `WATCHING`, the monitor sends `EVENT` frames of its own —
//! a device became available or unavailable, a process started or ended
//! anywhere in the fabric, or events were lost because the program read
//! too slowly.
//!
//! An `EVENT` body is an 8-byte [`EventHead`] and a `subject` text: the
//! device's name, the process's pid (`NAME:N`), or nothing for `LOST`.
//!
//! Invariants: each event has exactly one encoding (`status` is 0 where it
//! means nothing, the subject is empty exactly for `LOST`, a `LOST` counts
//! at least one event); decoding never panics and refuses trailing bytes.

use super::{MAX_TEXT, kind, put_text, text};
use crate::frame::{Decoder, Encoder, WireError};

/// [`EventHead::what`] values.
pub mod what {
    /// A device became available; the subject is its name.
    pub const DEVICE_UP: u32 = 1;
    /// A device became unavailable; the subject is its name.
    pub const DEVICE_DOWN: u32 = 2;
    /// A process started; the subject is its pid.
    pub const STARTED: u32 = 3;
    /// A process ended with `status`; the subject is its pid.
    pub const ENDED: u32 = 4;
    /// `status` events were dropped (the queue was full); no subject.
    pub const LOST: u32 = 5;
}

crate::wire_layout! {
    /// The fixed start of an `EVENT` body: 8 bytes (§17.4).
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct EventHead: 8 {
        /// What happened: [`what`].
        [0] pub what: u32,
        /// `ENDED`: the exit status; `LOST`: how many events were dropped;
        /// otherwise 0.
        [4] pub status: u32,
    }
}

/// One event of a watched FABRIC stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// Device `name` became available.
    DeviceUp(&'a str),
    /// Device `name` became unavailable.
    DeviceDown(&'a str),
    /// Process `pid` (`NAME:N`) started.
    Started(&'a str),
    /// Process `pid` ended with `status`.
    Ended { pid: &'a str, status: u32 },
    /// `count` events (at least one) were dropped.
    Lost(u32),
}

impl<'a> Event<'a> {
    fn head_and_subject(&self) -> (EventHead, &'a str) {
        let (what, status, subject) = match *self {
            Self::DeviceUp(name) => (what::DEVICE_UP, 0, name),
            Self::DeviceDown(name) => (what::DEVICE_DOWN, 0, name),
            Self::Started(pid) => (what::STARTED, 0, pid),
            Self::Ended { pid, status } => (what::ENDED, status, pid),
            Self::Lost(count) => (what::LOST, count, ""),
        };
        (EventHead { what, status }, subject)
    }

    /// Encodes the `EVENT` frame into `buf`; its length, or `None` if it
    /// does not fit `buf`, or the subject is longer than [`MAX_TEXT`].
    pub fn encode(&self, buf: &mut [u8]) -> Option<usize> {
        let (head, subject) = self.head_and_subject();
        let mut e = Encoder::new(buf, kind::EVENT);
        e.bytes(&head.encode());
        put_text(&mut e, subject)?;
        e.finish()
    }

    /// The bytes an `EVENT` frame takes at most (header included).
    pub const MAX_FRAME: usize = crate::frame::HEADER + EventHead::SIZE + 2 + MAX_TEXT;

    /// Decodes an `EVENT` body.
    pub fn decode(body: &'a [u8]) -> Result<Self, WireError> {
        let mut d = Decoder::new(body);
        let head = EventHead::decode(super::fixed(&mut d)?);
        let subject = text(&mut d, "event subject")?;
        d.finish()?;
        let zero = |e: Self| {
            if head.status == 0 {
                Ok(e)
            } else {
                Err(WireError::Field("event status"))
            }
        };
        let event = match (head.what, subject) {
            (what::LOST, "") if head.status > 0 => Self::Lost(head.status),
            (what::LOST, _) => return Err(WireError::Field("lost event")),
            (_, "") => return Err(WireError::Field("event subject")),
            (what::DEVICE_UP, name) => zero(Self::DeviceUp(name))?,
            (what::DEVICE_DOWN, name) => zero(Self::DeviceDown(name))?,
            (what::STARTED, pid) => zero(Self::Started(pid))?,
            (what::ENDED, pid) => Self::Ended {
                pid,
                status: head.status,
            },
            _ => return Err(WireError::Field("event what")),
        };
        Ok(event)
    }
}
