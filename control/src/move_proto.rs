//! The move protocol (PROTOCOL.md §19.3): the stream over which the monitor
//! of a device guest starts, captures and restores the Wasm app a runtime
//! (`wasm-run`) runs, so that the app can move to another device.
//!
//! The runtime opens the stream with the first frame `frame::kind::MOVE`
//! (its `version` only), before it makes its first app. The monitor
//! answers [`Order::Start`] (make the app from its module, as spawned) or
//! [`Order::Restore`] (make it from the snapshot that follows in
//! [`Order::Part`] frames; the runtime answers [`Report::Restored`] or
//! [`Report::Failed`]). Later the monitor may send [`Order::Capture`]: at
//! the app's next moment between two event batches, within the wait the
//! order states, the runtime writes the app's snapshot (§19.1) in
//! [`Report::Part`] frames and ends it with [`Report::Captured`], or
//! answers [`Report::Failed`] saying why it cannot. A captured app is
//! *held* (it is given no events and runs nothing) until [`Order::Release`]
//! (the move failed: it goes on) or [`Order::End`] (it moved: the runtime
//! ends).
//!
//! Invariants: decoding never panics and refuses trailing bytes, empty
//! parts and texts that are too long or not UTF-8, so each frame has
//! exactly one encoding; everything a decoder returns borrows the body.

use crate::frame::{Decoder, Encoder, HEADER, MAX_BODY, WireError};

/// Frame kinds of the move protocol (the first frame itself is
/// `frame::kind::MOVE`).
pub mod kind {
    /// Make the app from its module: its SHA-256 follows.
    pub const START: u16 = 0x8700;
    /// Make the app from a snapshot: the module's SHA-256 and the
    /// snapshot's length follow; the snapshot comes in `PART` frames.
    pub const RESTORE: u16 = 0x8701;
    /// The next bytes of the snapshot being restored.
    pub const RESTORE_PART: u16 = 0x8702;
    /// Capture the app at its next moment between batches.
    pub const CAPTURE: u16 = 0x8703;
    /// The move failed: the held app goes on.
    pub const RELEASE: u16 = 0x8704;
    /// The app moved: the runtime ends.
    pub const END: u16 = 0x8705;
    /// A snapshot of about this many bytes is on its way: ready the memory
    /// it will need. Only before `RESTORE`.
    pub const PREPARE: u16 = 0x8706;

    /// The app was restored and runs.
    pub const RESTORED: u16 = 0x0701;
    /// The next bytes of the snapshot being captured.
    pub const CAPTURE_PART: u16 = 0x0702;
    /// The snapshot is whole: its length follows. The app is held.
    pub const CAPTURED: u16 = 0x0703;
    /// The restore or capture was refused: why follows.
    pub const FAILED: u16 = 0x0704;
    /// The app asks to be moved to a device: its name follows.
    pub const GO: u16 = 0x0705;
    /// The memory a `PREPARE` asked for is ready.
    pub const READY: u16 = 0x0706;
}

/// The most snapshot bytes one part frame carries.
pub const MAX_PART: usize = MAX_BODY;
/// The snapshot bytes each part frame carries as the runtime and the
/// monitor write them (the last part of a snapshot fewer): a quarter of a
/// ring, so that the writer fills the next part while the reader takes one
/// (parts of a whole ring made each side wait for the other, ~0.5 ms a
/// MiB here).
pub const PART: usize = 64 << 10;
/// The largest snapshot a move carries: 1 GiB of memory and 64 MiB more.
pub const MAX_SNAPSHOT: u64 = (1 << 30) + (64 << 20);
/// The longest reason a `FAILED` carries.
pub const MAX_TEXT: usize = 1024;
/// The longest wait a `CAPTURE` may state, in milliseconds (one minute).
pub const MAX_WAIT_MS: u32 = 60_000;
/// Room for the longest frame other than a part.
pub const MAX_SMALL: usize = HEADER + 2 + MAX_TEXT;

/// A frame the monitor sends the runtime.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order<'a> {
    /// Make the app from its module, whose SHA-256 this is.
    Start { module: [u8; 32] },
    /// Make the app from the snapshot of `len` bytes that follows, of the
    /// module whose SHA-256 this is.
    Restore { module: [u8; 32], len: u64 },
    /// The next bytes of the snapshot being restored.
    Part(&'a [u8]),
    /// Capture the app between two batches, waiting at most `wait_ms` for
    /// its batch to end (at most [`MAX_WAIT_MS`]).
    Capture { wait_ms: u32 },
    /// The held app goes on.
    Release,
    /// The held app moved: the runtime ends.
    End,
    /// A snapshot of about `len` bytes (1 to [`MAX_SNAPSHOT`]) is on its
    /// way: the runtime readies the memory a restore of it needs while it
    /// waits for `RESTORE`. Only as the first order.
    Prepare { len: u64 },
}

impl<'a> Order<'a> {
    fn kind(&self) -> u16 {
        match self {
            Self::Start { .. } => kind::START,
            Self::Restore { .. } => kind::RESTORE,
            Self::Part(_) => kind::RESTORE_PART,
            Self::Capture { .. } => kind::CAPTURE,
            Self::Release => kind::RELEASE,
            Self::End => kind::END,
            Self::Prepare { .. } => kind::PREPARE,
        }
    }

    /// Encodes the frame into `buf`; its length, or `None` if it does not
    /// fit, or a part is empty or longer than [`MAX_PART`], or a wait is
    /// longer than [`MAX_WAIT_MS`].
    pub fn encode(&self, buf: &mut [u8]) -> Option<usize> {
        let mut e = Encoder::new(buf, self.kind());
        match *self {
            Self::Start { module } => {
                e.bytes(&module);
            }
            Self::Restore { module, len } => {
                e.bytes(&module).u64(len);
            }
            Self::Prepare { len } => {
                e.u64(len);
            }
            Self::Part(bytes) => {
                if bytes.is_empty() || bytes.len() > MAX_PART {
                    return None;
                }
                e.bytes(bytes);
            }
            Self::Capture { wait_ms } => {
                if wait_ms > MAX_WAIT_MS {
                    return None;
                }
                e.u32(wait_ms);
            }
            Self::Release | Self::End => {}
        }
        e.finish()
    }

    /// Decodes a frame of `kind` with `body`.
    pub fn decode(kind: u16, body: &'a [u8]) -> Result<Self, WireError> {
        let mut d = Decoder::new(body);
        let order = match kind {
            kind::START => Self::Start {
                module: module(&mut d)?,
            },
            kind::RESTORE => Self::Restore {
                module: module(&mut d)?,
                len: snapshot_len(&mut d)?,
            },
            kind::RESTORE_PART => Self::Part(part(&mut d)?),
            kind::CAPTURE => {
                let wait_ms = d.u32()?;
                if wait_ms > MAX_WAIT_MS {
                    return Err(WireError::Field("capture wait"));
                }
                Self::Capture { wait_ms }
            }
            kind::RELEASE => Self::Release,
            kind::END => Self::End,
            kind::PREPARE => Self::Prepare {
                len: snapshot_len(&mut d)?,
            },
            other => return Err(WireError::Kind(other)),
        };
        d.finish()?;
        Ok(order)
    }
}

/// A frame the runtime sends the monitor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Report<'a> {
    /// The app was restored and runs.
    Restored,
    /// The next bytes of the snapshot being captured.
    Part(&'a [u8]),
    /// The snapshot is whole, `len` bytes; the app is held.
    Captured { len: u64 },
    /// The restore or capture was refused, and why.
    Failed(&'a str),
    /// The app asks to be moved to this device (`move_self`, §13.3).
    Go(&'a str),
    /// The memory a `PREPARE` asked for is ready (the answer to it).
    Ready,
}

impl<'a> Report<'a> {
    fn kind(&self) -> u16 {
        match self {
            Self::Restored => kind::RESTORED,
            Self::Part(_) => kind::CAPTURE_PART,
            Self::Captured { .. } => kind::CAPTURED,
            Self::Failed(_) => kind::FAILED,
            Self::Go(_) => kind::GO,
            Self::Ready => kind::READY,
        }
    }

    /// Encodes the frame into `buf`; its length, or `None` if it does not
    /// fit, or a part is empty or longer than [`MAX_PART`] (a reason
    /// longer than [`MAX_TEXT`] is cut at a character boundary).
    pub fn encode(&self, buf: &mut [u8]) -> Option<usize> {
        let mut e = Encoder::new(buf, self.kind());
        match *self {
            Self::Restored | Self::Ready => {}
            Self::Part(bytes) => {
                if bytes.is_empty() || bytes.len() > MAX_PART {
                    return None;
                }
                e.bytes(bytes);
            }
            Self::Captured { len } => {
                e.u64(len);
            }
            Self::Failed(why) => {
                e.short_bytes(cut(why).as_bytes());
            }
            Self::Go(device) => {
                if device.is_empty() || device.len() > MAX_TEXT {
                    return None;
                }
                e.short_bytes(device.as_bytes());
            }
        }
        e.finish()
    }

    /// Decodes a frame of `kind` with `body`.
    pub fn decode(kind: u16, body: &'a [u8]) -> Result<Self, WireError> {
        let mut d = Decoder::new(body);
        let report = match kind {
            kind::RESTORED => Self::Restored,
            kind::READY => Self::Ready,
            kind::CAPTURE_PART => Self::Part(part(&mut d)?),
            kind::CAPTURED => Self::Captured { len: d.u64()? },
            kind::FAILED => Self::Failed(text(&mut d, "reason")?),
            kind::GO => {
                let device = text(&mut d, "device")?;
                if device.is_empty() {
                    return Err(WireError::Field("device"));
                }
                Self::Go(device)
            }
            other => return Err(WireError::Kind(other)),
        };
        d.finish()?;
        Ok(report)
    }
}

/// A text: a `u16` length and that many bytes of UTF-8, at most
/// [`MAX_TEXT`].
fn text<'a>(d: &mut Decoder<'a>, field: &'static str) -> Result<&'a str, WireError> {
    let raw = d.short_bytes()?;
    if raw.len() > MAX_TEXT {
        return Err(WireError::Field(field));
    }
    core::str::from_utf8(raw).map_err(|_| WireError::Field(field))
}

/// `why` cut to at most [`MAX_TEXT`] bytes, at a character boundary.
fn cut(why: &str) -> &str {
    let mut end = why.len().min(MAX_TEXT);
    while !why.is_char_boundary(end) {
        end -= 1;
    }
    &why[..end]
}

/// A snapshot's length: 1 to [`MAX_SNAPSHOT`].
fn snapshot_len(d: &mut Decoder<'_>) -> Result<u64, WireError> {
    match d.u64()? {
        len @ 1..=MAX_SNAPSHOT => Ok(len),
        _ => Err(WireError::Field("snapshot length")),
    }
}

fn module(d: &mut Decoder<'_>) -> Result<[u8; 32], WireError> {
    d.bytes(32)?
        .try_into()
        .map_err(|_| WireError::Field("module"))
}

/// The rest of the body as a part: 1 or more bytes.
fn part<'a>(d: &mut Decoder<'a>) -> Result<&'a [u8], WireError> {
    let bytes = d.rest();
    if bytes.is_empty() {
        return Err(WireError::Field("snapshot part"));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::split;

    fn order_round_trip(o: Order<'_>) {
        let mut buf = [0u8; 256];
        let n = o.encode(&mut buf).expect("fits");
        let (h, body) = split(&buf[..n]).expect("a frame");
        assert_eq!(Order::decode(h.kind, body), Ok(o));
    }

    fn report_round_trip(r: Report<'_>) {
        let mut buf = [0u8; MAX_SMALL];
        let n = r.encode(&mut buf).expect("fits");
        let (h, body) = split(&buf[..n]).expect("a frame");
        assert_eq!(Report::decode(h.kind, body), Ok(r));
    }

    #[test]
    fn every_frame_round_trips() {
        order_round_trip(Order::Start { module: [7; 32] });
        order_round_trip(Order::Prepare { len: 1 << 20 });
        order_round_trip(Order::Restore {
            module: [9; 32],
            len: MAX_SNAPSHOT,
        });
        order_round_trip(Order::Part(b"snapshot bytes"));
        order_round_trip(Order::Capture { wait_ms: 5000 });
        order_round_trip(Order::Release);
        order_round_trip(Order::End);
        report_round_trip(Report::Restored);
        report_round_trip(Report::Ready);
        report_round_trip(Report::Part(&[1, 2, 3]));
        report_round_trip(Report::Captured { len: 74 });
        report_round_trip(Report::Failed("busy: it is handling events"));
        report_round_trip(Report::Go("beta"));
    }

    #[test]
    fn a_capture_is_eight_bytes_on_the_wire_plus_its_wait() {
        let mut buf = [0u8; 16];
        let n = Order::Capture { wait_ms: 2000 }.encode(&mut buf).unwrap();
        assert_eq!(
            &buf[..n],
            &[4, 0, 0, 0, 0x03, 0x87, 0, 0, 0xD0, 0x07, 0, 0][..]
        );
    }

    #[test]
    fn malformed_frames_are_refused() {
        assert!(Order::decode(kind::RESTORE_PART, &[]).is_err());
        assert!(Report::decode(kind::CAPTURE_PART, &[]).is_err());
        assert!(Order::decode(kind::START, &[0; 31]).is_err());
        assert!(Order::decode(kind::START, &[0; 33]).is_err());
        assert!(Order::decode(kind::CAPTURE, &(MAX_WAIT_MS + 1).to_le_bytes()).is_err());
        assert!(Order::decode(kind::RELEASE, &[0]).is_err());
        let mut restore = [0u8; 40];
        assert!(Order::decode(kind::RESTORE, &restore).is_err());
        restore[32..].copy_from_slice(&(MAX_SNAPSHOT + 1).to_le_bytes());
        assert!(Order::decode(kind::RESTORE, &restore).is_err());
        assert!(Order::decode(kind::PREPARE, &[0; 8]).is_err());
        assert!(Order::decode(kind::PREPARE, &(MAX_SNAPSHOT + 1).to_le_bytes()).is_err());
        assert!(Order::decode(kind::PREPARE, &[1, 0, 0, 0, 0, 0, 0, 0, 0]).is_err());
        assert!(Order::decode(kind::CAPTURED, &[0; 8]).is_err());
        assert!(Report::decode(kind::CAPTURE, &[0; 4]).is_err());
        assert!(Report::decode(kind::FAILED, &[2, 0, 0xFF, 0xFE]).is_err());
        assert!(Report::decode(kind::CAPTURED, &[0; 9]).is_err());
        assert!(
            Order::Capture {
                wait_ms: MAX_WAIT_MS + 1
            }
            .encode(&mut [0; 16])
            .is_none()
        );
        assert!(Report::Part(&[]).encode(&mut [0; 16]).is_none());
        assert!(Report::decode(kind::GO, &[0, 0]).is_err());
        assert!(Report::Go("").encode(&mut [0; 16]).is_none());
    }

    #[test]
    fn a_long_reason_is_cut_at_a_character_boundary() {
        let long = "é".repeat(MAX_TEXT);
        let mut buf = [0u8; MAX_SMALL];
        let n = Report::Failed(&long).encode(&mut buf).unwrap();
        let (h, body) = split(&buf[..n]).unwrap();
        let Ok(Report::Failed(why)) = Report::decode(h.kind, body) else {
            panic!("not a reason");
        };
        assert_eq!(why.len(), MAX_TEXT);
        assert!(why.chars().all(|c| c == 'é'));
    }
}
