//! Frames: the unit of every stream protocol except a TCP connection's raw
//! bytes (PROTOCOL.md §9).
//!
//! A frame is an 8-byte header — body length (`u32`), kind (`u16`), flags
//! (`u16`, must be 0) — followed by the body. A body is at most [`MAX_BODY`]
//! bytes, so a whole frame always fits in one ring. All integers are
//! little-endian. Decoding never panics: every length is checked against the
//! bytes at hand, and a frame with bytes left over after its last field is
//! refused ([`WireError::Trailing`]).
//!
//! Kinds are grouped by protocol (the high byte); replies set bit 15. Kind
//! [`kind::ERROR`] is the same in every protocol.

use crate::streams::RING_CAPACITY;

/// Bytes of a frame header.
pub const HEADER: usize = 8;
/// The largest frame body: a whole frame fills at most one ring.
pub const MAX_BODY: usize = RING_CAPACITY as usize - HEADER;
/// The stream protocol version every first frame states (§9.2).
pub const VERSION: u32 = 1;
/// The longest message an error frame carries.
pub const MAX_MESSAGE: usize = 256;

/// Frame kinds. Requests from the guest have bit 15 clear, replies and
/// announcements from the monitor have it set.
pub mod kind {
    /// Control pipe: open a stream pair (§9.1).
    pub const OPEN: u16 = 0x0001;
    /// Control pipe: close a stream pair.
    pub const CLOSE: u16 = 0x0002;
    /// Control pipe: a stream pair was opened.
    pub const OPENED: u16 = 0x8001;
    /// Control pipe: a stream pair was closed.
    pub const CLOSED: u16 = 0x8002;
    /// Control pipe: a request was refused.
    pub const REFUSED: u16 = 0x8003;

    /// First frame: open a file (§10).
    pub const FILE_OPEN: u16 = 0x0100;
    /// First frame: a file-system session for path operations (§10).
    pub const FS_SESSION: u16 = 0x0101;
    /// First frame: listen for TCP connections (§11).
    pub const TCP_LISTEN: u16 = 0x0200;
    /// First frame: connect to a TCP peer (§11).
    pub const TCP_CONNECT: u16 = 0x0201;
    /// First frame: take a connection a listener announced (§11).
    pub const TCP_ACCEPT: u16 = 0x0202;
    /// First frame: bind a UDP socket (§12).
    pub const UDP_BIND: u16 = 0x0300;
    /// First frame: the agent of a device guest, driven by the monitor (§15).
    pub const DEVICE: u16 = 0x0400;
    /// First frame: fabric calls of a program in a device guest (§17).
    pub const FABRIC: u16 = 0x0500;
    /// First frame: IPC services and messages of a program in a device
    /// guest (§18).
    pub const IPC: u16 = 0x0600;
    /// First frame: the moves of the Wasm app a runtime runs, in a device
    /// guest (§19.3).
    pub const MOVE: u16 = 0x0700;

    /// Any protocol: the request failed (body: [`super::ErrorBody`]).
    pub const ERROR: u16 = 0xFFFF;

    /// Whether `kind` is one of the first frames above.
    pub const fn is_first(kind: u16) -> bool {
        matches!(
            kind,
            FILE_OPEN
                | FS_SESSION
                | TCP_LISTEN
                | TCP_CONNECT
                | TCP_ACCEPT
                | UDP_BIND
                | DEVICE
                | FABRIC
                | IPC
                | MOVE
        )
    }
}

/// Why a frame could not be decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WireError {
    /// The body ends before a field.
    Truncated,
    /// The header states a body longer than [`MAX_BODY`] (or a limit of the
    /// frame's kind).
    TooLong(u32),
    /// The header's flags are not 0.
    Flags(u16),
    /// Bytes are left after the last field.
    Trailing,
    /// The frame's kind is not expected here.
    Kind(u16),
    /// A field holds a value outside its range; names the field.
    Field(&'static str),
}

impl core::fmt::Display for WireError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Truncated => f.write_str("frame body ends before its last field"),
            Self::TooLong(n) => write!(f, "frame body of {n} bytes is too long"),
            Self::Flags(v) => write!(f, "frame flags {v:#x} are not 0"),
            Self::Trailing => f.write_str("frame body has bytes after its last field"),
            Self::Kind(k) => write!(f, "frame kind {k:#06x} is not expected here"),
            Self::Field(name) => write!(f, "frame field `{name}` is out of range"),
        }
    }
}

/// A frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Body bytes after the header.
    pub len: u32,
    /// What the frame is.
    pub kind: u16,
}

impl Header {
    /// The header of a frame of `kind` with a `len`-byte body.
    pub const fn new(kind: u16, len: usize) -> Self {
        Self {
            len: len as u32,
            kind,
        }
    }

    /// The header's bytes.
    pub fn encode(&self) -> [u8; HEADER] {
        let mut out = [0; HEADER];
        out[..4].copy_from_slice(&self.len.to_le_bytes());
        out[4..6].copy_from_slice(&self.kind.to_le_bytes());
        out
    }

    /// Decodes and checks a header: flags 0, body at most [`MAX_BODY`].
    pub fn decode(raw: &[u8; HEADER]) -> Result<Self, WireError> {
        let len = u32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]);
        let kind = u16::from_le_bytes([raw[4], raw[5]]);
        let flags = u16::from_le_bytes([raw[6], raw[7]]);
        if flags != 0 {
            return Err(WireError::Flags(flags));
        }
        if len as usize > MAX_BODY {
            return Err(WireError::TooLong(len));
        }
        Ok(Self { len, kind })
    }
}

/// Splits a buffer that starts with one whole frame into its checked header
/// and its body.
pub fn split(buf: &[u8]) -> Result<(Header, &[u8]), WireError> {
    let raw = buf.first_chunk::<HEADER>().ok_or(WireError::Truncated)?;
    let header = Header::decode(raw)?;
    let body = buf
        .get(HEADER..HEADER + header.len as usize)
        .ok_or(WireError::Truncated)?;
    Ok((header, body))
}

/// Reads the fields of a body in order.
#[derive(Clone, Debug)]
pub struct Decoder<'a> {
    rest: &'a [u8],
}

impl<'a> Decoder<'a> {
    /// A decoder over `body`.
    pub const fn new(body: &'a [u8]) -> Self {
        Self { rest: body }
    }

    /// The next `n` bytes.
    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if n > self.rest.len() {
            return Err(WireError::Truncated);
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        let mut out = [0; N];
        out.copy_from_slice(self.bytes(N)?);
        Ok(out)
    }

    /// The next byte.
    pub fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.array::<1>()?[0])
    }

    /// The next little-endian `u16`.
    pub fn u16(&mut self) -> Result<u16, WireError> {
        self.array().map(u16::from_le_bytes)
    }

    /// The next little-endian `u32`.
    pub fn u32(&mut self) -> Result<u32, WireError> {
        self.array().map(u32::from_le_bytes)
    }

    /// The next little-endian `u64`.
    pub fn u64(&mut self) -> Result<u64, WireError> {
        self.array().map(u64::from_le_bytes)
    }

    /// A `u16` length followed by that many bytes.
    pub fn short_bytes(&mut self) -> Result<&'a [u8], WireError> {
        let n = self.u16()?;
        self.bytes(n.into())
    }

    /// Everything left.
    pub fn rest(&mut self) -> &'a [u8] {
        core::mem::take(&mut self.rest)
    }

    /// Succeeds only if every byte was read.
    pub fn finish(self) -> Result<(), WireError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(WireError::Trailing)
        }
    }
}

/// Writes the fields of a frame into a caller's buffer, header first.
#[derive(Debug)]
pub struct Encoder<'a> {
    buf: &'a mut [u8],
    at: usize,
    overflow: bool,
}

impl<'a> Encoder<'a> {
    /// Starts a frame of `kind` in `buf` (room for its header is kept).
    pub fn new(buf: &'a mut [u8], kind: u16) -> Self {
        let mut e = Self {
            buf,
            at: 0,
            overflow: false,
        };
        e.bytes(&Header::new(kind, 0).encode());
        e
    }

    /// Appends raw bytes.
    pub fn bytes(&mut self, v: &[u8]) -> &mut Self {
        match self.buf.get_mut(self.at..self.at + v.len()) {
            Some(dst) => dst.copy_from_slice(v),
            None => self.overflow = true,
        }
        self.at += v.len();
        self
    }

    /// Appends a byte.
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.bytes(&[v])
    }

    /// Appends a little-endian `u16`.
    pub fn u16(&mut self, v: u16) -> &mut Self {
        self.bytes(&v.to_le_bytes())
    }

    /// Appends a little-endian `u32`.
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.bytes(&v.to_le_bytes())
    }

    /// Appends a little-endian `u64`.
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.bytes(&v.to_le_bytes())
    }

    /// Appends a `u16` length and the bytes (at most 65535 of them).
    pub fn short_bytes(&mut self, v: &[u8]) -> &mut Self {
        match u16::try_from(v.len()) {
            Ok(n) => self.u16(n).bytes(v),
            Err(_) => {
                self.overflow = true;
                self
            }
        }
    }

    /// Fills in the header and returns the whole frame's length, or `None`
    /// if the frame did not fit the buffer or [`MAX_BODY`].
    pub fn finish(self) -> Option<usize> {
        let body = self.at - HEADER;
        if self.overflow || body > MAX_BODY {
            return None;
        }
        self.buf[..4].copy_from_slice(&(body as u32).to_le_bytes());
        Some(self.at)
    }
}

/// Why a stream request failed: the code in an error frame, a refused
/// control request, and a stream's status word (§9.4). 0 is not a code.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Code {
    /// A frame broke its protocol (malformed, unexpected, too long).
    Protocol = 1,
    /// The first frame states a protocol version this monitor does not speak.
    Version = 2,
    /// The protocol is not available (for files: no `--fs-root`).
    Unsupported = 3,
    /// The address is not granted by `--listen` or `--connect`.
    NotAllowed = 4,
    /// The path leaves the file-system root (`..`, absolute, or a symlink).
    Escape = 5,
    /// The file system is read-only (`--read-only`).
    ReadOnly = 6,
    /// No such file or directory.
    NotFound = 7,
    /// The file already exists.
    Exists = 8,
    /// A path component is not a directory.
    NotDirectory = 9,
    /// The path is a directory.
    IsDirectory = 10,
    /// The directory is not empty.
    NotEmpty = 11,
    /// The host refused access.
    PermissionDenied = 12,
    /// The peer refused the connection.
    ConnectionRefused = 13,
    /// The peer reset the connection.
    ConnectionReset = 14,
    /// The network or host is unreachable.
    Unreachable = 15,
    /// The address is in use.
    AddressInUse = 16,
    /// The operation timed out.
    TimedOut = 17,
    /// Every stream slot is open.
    NoSlots = 18,
    /// The slot is not one the control pipe opened, or not open.
    BadSlot = 19,
    /// An argument is invalid (flags, offset, name).
    Invalid = 20,
    /// Another host error.
    Io = 21,
    /// The stream or the thing it names is gone.
    Closed = 22,
    /// The value is too large (a datagram, a file offset).
    TooLarge = 23,
    /// A budget of the guest or of the process is used up (open streams;
    /// PROTOCOL.md §20.1).
    OverBudget = 24,
    /// Too many symlinks in a path, or a symlink where none may be
    /// followed.
    Loop = 25,
    /// A path or one of its names is too long for the host.
    NameTooLong = 26,
    /// The host does not permit the operation on what the path names (a
    /// hard link to a directory, say): `EPERM`, where `PermissionDenied`
    /// is `EACCES`.
    NotPermitted = 27,
    /// The file-system quota (`--fs-quota`, PROTOCOL.md §10.4) is used up.
    QuotaExceeded = 28,
}

impl Code {
    /// Every code, in numeric order.
    pub const ALL: [Code; 28] = [
        Self::Protocol,
        Self::Version,
        Self::Unsupported,
        Self::NotAllowed,
        Self::Escape,
        Self::ReadOnly,
        Self::NotFound,
        Self::Exists,
        Self::NotDirectory,
        Self::IsDirectory,
        Self::NotEmpty,
        Self::PermissionDenied,
        Self::ConnectionRefused,
        Self::ConnectionReset,
        Self::Unreachable,
        Self::AddressInUse,
        Self::TimedOut,
        Self::NoSlots,
        Self::BadSlot,
        Self::Invalid,
        Self::Io,
        Self::Closed,
        Self::TooLarge,
        Self::OverBudget,
        Self::Loop,
        Self::NameTooLong,
        Self::NotPermitted,
        Self::QuotaExceeded,
    ];

    /// The code numbered `n`, if any.
    pub fn from_u32(n: u32) -> Option<Self> {
        Self::ALL.into_iter().find(|c| *c as u32 == n)
    }

    /// A short lower-case description.
    pub const fn description(self) -> &'static str {
        match self {
            Self::Protocol => "protocol violation",
            Self::Version => "unsupported protocol version",
            Self::Unsupported => "not available",
            Self::NotAllowed => "address not allowed",
            Self::Escape => "path leaves the file-system root",
            Self::ReadOnly => "read-only file system",
            Self::NotFound => "not found",
            Self::Exists => "already exists",
            Self::NotDirectory => "not a directory",
            Self::IsDirectory => "is a directory",
            Self::NotEmpty => "directory not empty",
            Self::PermissionDenied => "permission denied",
            Self::ConnectionRefused => "connection refused",
            Self::ConnectionReset => "connection reset",
            Self::Unreachable => "unreachable",
            Self::AddressInUse => "address in use",
            Self::TimedOut => "timed out",
            Self::NoSlots => "no free stream slot",
            Self::BadSlot => "not an open stream slot",
            Self::Invalid => "invalid argument",
            Self::Io => "input/output error",
            Self::Closed => "closed",
            Self::TooLarge => "too large",
            Self::OverBudget => "stream budget used up (--max-streams, --max-process-streams)",
            Self::Loop => "too many levels of symbolic links",
            Self::NameTooLong => "name too long",
            Self::NotPermitted => "operation not permitted",
            Self::QuotaExceeded => "file-system quota used up (--fs-quota)",
        }
    }
}

impl core::fmt::Display for Code {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.description())
    }
}

/// The body of an [`kind::ERROR`] frame: a code and a UTF-8 message of at
/// most [`MAX_MESSAGE`] bytes naming what was wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ErrorBody<'a> {
    /// What failed; an unknown number decodes as [`Code::Io`].
    pub code: Code,
    /// Human-readable detail (possibly empty).
    pub message: &'a str,
}

impl<'a> ErrorBody<'a> {
    /// Encodes an error frame into `buf`, cutting the message at a character
    /// boundary to fit [`MAX_MESSAGE`].
    pub fn encode(&self, buf: &mut [u8]) -> Option<usize> {
        let mut end = self.message.len().min(MAX_MESSAGE);
        while !self.message.is_char_boundary(end) {
            end -= 1;
        }
        let mut e = Encoder::new(buf, kind::ERROR);
        e.u32(self.code as u32)
            .bytes(&self.message.as_bytes()[..end]);
        e.finish()
    }

    /// Decodes an error frame's body.
    pub fn decode(body: &'a [u8]) -> Result<Self, WireError> {
        let mut d = Decoder::new(body);
        let code = Code::from_u32(d.u32()?).unwrap_or(Code::Io);
        let rest = d.rest();
        if rest.len() > MAX_MESSAGE {
            return Err(WireError::TooLong(rest.len() as u32));
        }
        let message = core::str::from_utf8(rest).map_err(|_| WireError::Field("message"))?;
        Ok(Self { code, message })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The header and body of the one whole, valid frame `buf` starts with
    /// (for the protocol modules' tests).
    pub(crate) fn whole(buf: &[u8]) -> (Header, &[u8]) {
        split(buf).expect("a whole, valid frame")
    }

    #[test]
    fn headers_round_trip_and_refuse_flags_and_oversize() {
        let h = Header::new(kind::OPEN, 4);
        assert_eq!(Header::decode(&h.encode()), Ok(h));
        let mut raw = h.encode();
        raw[6] = 1;
        assert_eq!(Header::decode(&raw), Err(WireError::Flags(1)));
        let big = Header::new(kind::OPEN, MAX_BODY + 1).encode();
        assert_eq!(
            Header::decode(&big),
            Err(WireError::TooLong(MAX_BODY as u32 + 1))
        );
    }

    #[test]
    fn encoder_and_decoder_agree_and_check_lengths() {
        let mut buf = [0u8; 64];
        let mut e = Encoder::new(&mut buf, 0x0123);
        e.u8(1).u16(2).u32(3).u64(4).short_bytes(b"ab");
        let n = e.finish().unwrap();
        assert_eq!(n, HEADER + 1 + 2 + 4 + 8 + 2 + 2);
        let h = Header::decode(buf[..HEADER].try_into().unwrap()).unwrap();
        assert_eq!(h, Header::new(0x0123, n - HEADER));
        let mut d = Decoder::new(&buf[HEADER..n]);
        assert_eq!(
            (d.u8(), d.u16(), d.u32(), d.u64()),
            (Ok(1), Ok(2), Ok(3), Ok(4))
        );
        assert_eq!(d.short_bytes(), Ok(&b"ab"[..]));
        assert_eq!(d.clone().u8(), Err(WireError::Truncated));
        assert_eq!(d.finish(), Ok(()));
        assert_eq!(Decoder::new(&[1, 2]).finish(), Err(WireError::Trailing));
        let mut small = [0u8; 9];
        let mut e = Encoder::new(&mut small, 1);
        e.u16(7);
        assert_eq!(e.finish(), None);
    }

    #[test]
    fn error_bodies_round_trip_and_cut_long_messages() {
        let mut buf = [0u8; 512];
        let long = "é".repeat(200);
        let n = ErrorBody {
            code: Code::Escape,
            message: &long,
        }
        .encode(&mut buf)
        .unwrap();
        let e = ErrorBody::decode(&buf[HEADER..n]).unwrap();
        assert_eq!(e.code, Code::Escape);
        assert!(e.message.len() <= MAX_MESSAGE && long.starts_with(e.message));
        assert_eq!(ErrorBody::decode(&[1, 0]), Err(WireError::Truncated));
        assert_eq!(
            ErrorBody::decode(&[1, 0, 0, 0, 0xFF]),
            Err(WireError::Field("message"))
        );
    }

    #[test]
    fn codes_round_trip() {
        for c in Code::ALL {
            assert_eq!(Code::from_u32(c as u32), Some(c));
        }
        assert_eq!(Code::from_u32(0), None);
        assert_eq!(Code::from_u32(Code::ALL.len() as u32 + 1), None);
    }
}
