//! The error of every stream operation: a [`Code`] (PROTOCOL.md §9.4) and a
//! message naming what was wrong.

use alloc::string::{String, ToString};
use core::fmt;
use embedded_io::{ErrorKind, ReadExactError};
use weft_control::frame::{Code, WireError};

/// Why a stream operation failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    code: Code,
    message: String,
}

impl Error {
    /// An error with `code` and a message.
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// An error with `code` and its description as the message.
    pub fn from_code(code: Code) -> Self {
        Self::new(code, code.description())
    }

    /// What failed.
    pub fn code(&self) -> Code {
        self.code
    }

    /// The detail: from the monitor's error frame, or the runtime's.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// A ring operation failed.
    pub(crate) fn ring(e: weft_data_pipe::Error) -> Self {
        let code = match e {
            weft_data_pipe::Error::Corrupt => Code::Protocol,
            _ => Code::Closed,
        };
        Self::new(code, e.to_string())
    }

    /// A `read_exact` on a ring failed.
    pub(crate) fn read_exact(e: ReadExactError<weft_data_pipe::Error>) -> Self {
        match e {
            ReadExactError::UnexpectedEof => Self::new(Code::Closed, "the stream ended"),
            ReadExactError::Other(e) => Self::ring(e),
        }
    }

    /// A frame from the monitor did not decode.
    pub(crate) fn wire(e: WireError) -> Self {
        Self::new(Code::Protocol, e.to_string())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.message == self.code.description() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.code, self.message)
        }
    }
}

impl core::error::Error for Error {}

impl embedded_io::Error for Error {
    fn kind(&self) -> ErrorKind {
        match self.code {
            Code::NotFound => ErrorKind::NotFound,
            Code::PermissionDenied
            | Code::NotPermitted
            | Code::NotAllowed
            | Code::Escape
            | Code::ReadOnly => ErrorKind::PermissionDenied,
            Code::Exists => ErrorKind::AlreadyExists,
            Code::ConnectionRefused => ErrorKind::ConnectionRefused,
            Code::ConnectionReset => ErrorKind::ConnectionReset,
            Code::AddressInUse => ErrorKind::AddrInUse,
            Code::TimedOut => ErrorKind::TimedOut,
            Code::Invalid => ErrorKind::InvalidInput,
            Code::Protocol => ErrorKind::InvalidData,
            Code::Closed => ErrorKind::BrokenPipe,
            Code::Unsupported => ErrorKind::Unsupported,
            Code::NoSlots | Code::TooLarge | Code::OverBudget | Code::QuotaExceeded => {
                ErrorKind::OutOfMemory
            }
            _ => ErrorKind::Other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use embedded_io::Error as _;

    #[test]
    fn messages_name_the_code_unless_they_are_its_description() {
        let e = Error::new(Code::NotFound, "open /a");
        assert_eq!(e.to_string(), format!("{}: open /a", Code::NotFound));
        assert_eq!(
            Error::from_code(Code::Closed).to_string(),
            Code::Closed.description()
        );
        assert_eq!((e.code(), e.message()), (Code::NotFound, "open /a"));
    }

    #[test]
    fn ring_and_wire_failures_map_to_stream_codes() {
        assert_eq!(
            Error::ring(weft_data_pipe::Error::Corrupt).code(),
            Code::Protocol
        );
        assert_eq!(
            Error::ring(weft_data_pipe::Error::Closed).code(),
            Code::Closed
        );
        let eof = Error::read_exact(ReadExactError::UnexpectedEof);
        assert_eq!(
            (eof.code(), eof.message()),
            (Code::Closed, "the stream ended")
        );
        let w = Error::wire(WireError::Trailing);
        assert_eq!(w.code(), Code::Protocol);
        assert_eq!(w.message(), WireError::Trailing.to_string());
    }

    #[test]
    fn codes_map_to_embedded_io_kinds() {
        let kind = |c| Error::from_code(c).kind();
        assert_eq!(kind(Code::NotFound), ErrorKind::NotFound);
        assert_eq!(kind(Code::Escape), ErrorKind::PermissionDenied);
        assert_eq!(kind(Code::ReadOnly), ErrorKind::PermissionDenied);
        assert_eq!(kind(Code::Exists), ErrorKind::AlreadyExists);
        assert_eq!(kind(Code::Closed), ErrorKind::BrokenPipe);
        assert_eq!(kind(Code::TooLarge), ErrorKind::OutOfMemory);
        assert_eq!(kind(Code::Protocol), ErrorKind::InvalidData);
    }
}
