//! What a ring operation can fail with.

use core::fmt;

/// Why a ring operation did not move bytes.
///
/// Only [`Error::WouldBlock`] is transient. [`Error::Corrupt`] is sticky: once
/// the peer has broken the protocol every later operation on that end fails
/// with it, and the owner should close the stream (PROTOCOL.md §7.7).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// Nothing to read yet, or no space to write yet.
    WouldBlock,
    /// Write: the consumer closed its end; the bytes would never be read.
    BrokenPipe,
    /// This end was closed by its owner; it moves no more bytes.
    Closed,
    /// The peer wrote a value the protocol forbids (an index out of range or
    /// going backwards, a close flag that is neither 0 nor 1).
    Corrupt,
    /// `commit` or `consume` of more bytes than the last `reserve` or `peek`
    /// returned.
    Overrun,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::WouldBlock => "ring operation would block",
            Self::BrokenPipe => "ring write failed: the reader closed its end",
            Self::Closed => "ring operation on an end that was closed",
            Self::Corrupt => "ring peer violated the protocol",
            Self::Overrun => "ring commit or consume exceeds what was reserved or peeked",
        })
    }
}

impl core::error::Error for Error {}

impl embedded_io::Error for Error {
    fn kind(&self) -> embedded_io::ErrorKind {
        use embedded_io::ErrorKind;
        match self {
            // The blocking adapter never returns `WouldBlock`.
            Self::WouldBlock => ErrorKind::Other,
            Self::BrokenPipe => ErrorKind::BrokenPipe,
            Self::Closed => ErrorKind::NotConnected,
            Self::Corrupt => ErrorKind::InvalidData,
            Self::Overrun => ErrorKind::InvalidInput,
        }
    }
}

#[cfg(feature = "std")]
impl From<Error> for std::io::Error {
    fn from(e: Error) -> Self {
        use std::io::ErrorKind;
        let kind = match e {
            Error::WouldBlock => ErrorKind::WouldBlock,
            Error::BrokenPipe => ErrorKind::BrokenPipe,
            Error::Closed => ErrorKind::NotConnected,
            Error::Corrupt => ErrorKind::InvalidData,
            Error::Overrun => ErrorKind::InvalidInput,
        };
        std::io::Error::new(kind, e)
    }
}
