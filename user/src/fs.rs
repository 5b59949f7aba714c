//! Files and directories under the file-system root (PROTOCOL.md §10).
//!
//! The guest sees `weft run --fs-root DIR` as `/`; relative paths start at
//! `/` too. Every path argument is a `&str` or an [`At`] (a path beneath a
//! directory that it may not leave). A [`File`] is one `FILE_OPEN` stream;
//! the path operations ([`metadata`], [`symlink_metadata`], [`read_dir`],
//! [`create_dir`], [`remove_file`], [`remove_dir`], [`rename`],
//! [`read_link`], [`symlink`], [`hard_link`], [`set_times`]) share one
//! `FS_SESSION` stream, opened on first use. Everything runs at ring 3 over
//! shared rings; the kernel is entered only to sleep.
//!
//! Reading a file opened only for reading is pipelined: [`READ_AHEAD`]
//! requests of [`READ_CHUNK`] bytes stay in flight, so the monitor fills
//! the ring while the program drains it, and a reply's bytes are copied
//! from the ring straight into the caller's buffer. Any other request on
//! that file first discards the read-ahead and moves the monitor's file
//! position back to the program's.
//!
//! ```ignore
//! use weft_user::fs;
//! let text = fs::read("/etc/motd")?;
//! fs::write("/copy", &text)?;
//! ```

use crate::cell::ExclusiveCell;
use crate::error::Error;
use crate::stream::Stream;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;
use embedded_io::{ErrorType, Read, Seek, SeekFrom, Write};
use weft_control::frame::{self, Code, HEADER, Header, MAX_BODY};
use weft_control::fs_proto::{
    FileOpen, FileRequest, OpenFlags, Reply, SessionRequest, Whence, kind,
};

pub use weft_control::fs_proto::{At, FileKind, Metadata, SetTime, Times};

/// Bytes each read-ahead request asks for.
pub const READ_CHUNK: u32 = 64 * 1024;
/// Read requests kept in flight on a file opened only for reading.
pub const READ_AHEAD: u32 = 6;

/// How to open a file, as `std::fs::OpenOptions`.
#[derive(Clone, Copy, Debug)]
pub struct OpenOptions {
    flags: OpenFlags,
}

impl Default for OpenOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl OpenOptions {
    /// No access asked for yet.
    pub const fn new() -> Self {
        Self {
            flags: OpenFlags::empty(),
        }
    }

    /// Sets or clears `flag`. As with `std`, any order of calls is fine:
    /// the combination is checked when the file is opened.
    fn set(&mut self, flag: OpenFlags, on: bool) -> &mut Self {
        self.flags = if on {
            self.flags.with(flag)
        } else {
            self.flags.without(flag)
        };
        self
    }

    /// Open for reading.
    pub fn read(&mut self, on: bool) -> &mut Self {
        self.set(OpenFlags::READ, on)
    }

    /// Open for writing.
    pub fn write(&mut self, on: bool) -> &mut Self {
        self.set(OpenFlags::WRITE, on)
    }

    /// Create the file if it does not exist.
    pub fn create(&mut self, on: bool) -> &mut Self {
        self.set(OpenFlags::CREATE, on)
    }

    /// Cut the file to length 0 (needs write).
    pub fn truncate(&mut self, on: bool) -> &mut Self {
        self.set(OpenFlags::TRUNCATE, on)
    }

    /// Write at the end of the file.
    pub fn append(&mut self, on: bool) -> &mut Self {
        self.set(OpenFlags::APPEND, on)
    }

    /// Create the file, failing if it exists.
    pub fn create_new(&mut self, on: bool) -> &mut Self {
        self.set(OpenFlags::EXCLUSIVE, on)
    }

    /// Fail with `Loop` if the path's last component is a symlink,
    /// rather than follow it.
    pub fn no_follow(&mut self, on: bool) -> &mut Self {
        self.set(OpenFlags::NO_FOLLOW, on)
    }

    /// Opens `path` with these options.
    pub fn open<'a>(&self, path: impl Into<At<'a>>) -> Result<File, Error> {
        let open = FileOpen {
            flags: self.flags.bits(),
            at: path.into(),
        };
        let mut first = vec![0u8; open.frame_len()];
        let n = open
            .encode(&mut first)
            .ok_or_else(|| Error::new(Code::TooLarge, "the path is too long"))?;
        let mut stream = Stream::open()?;
        let mut reply = Vec::new();
        let k = stream.call(&first[..n], &mut reply)?;
        match decode(k, &reply)? {
            Reply::FileOpened(_) => Ok(File {
                stream,
                read_ahead: !self.flags.writes(),
                pending: 0,
                left: 0,
                eof: false,
                reply,
            }),
            _ => Err(unexpected()),
        }
    }
}

/// An open file: `embedded_io::{Read, Write, Seek}`. Dropping it closes it.
pub struct File {
    stream: Stream,
    /// Reads are pipelined (the file is not open for writing).
    read_ahead: bool,
    /// `READ` requests sent whose reply header is still in the ring.
    pending: u32,
    /// Bytes of the current `DATA` reply still in the ring.
    left: usize,
    /// An empty `DATA` reply came: no new read-ahead until it is drained.
    eof: bool,
    /// Reply bodies, reused.
    reply: Vec<u8>,
}

impl File {
    /// Opens `path` for reading.
    pub fn open(path: &str) -> Result<Self, Error> {
        OpenOptions::new().read(true).open(path)
    }

    /// Opens `path` for writing, created if missing and cut to length 0.
    pub fn create(path: &str) -> Result<Self, Error> {
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
    }

    /// The open file's metadata.
    pub fn metadata(&mut self) -> Result<Metadata, Error> {
        match self.call(FileRequest::Fstat)? {
            Reply::Metadata(m) => Ok(m),
            _ => Err(unexpected()),
        }
    }

    /// Flushes the file to the host's storage.
    pub fn sync_all(&mut self) -> Result<(), Error> {
        self.call_done(FileRequest::Sync)
    }

    /// Cuts or extends the file to `size` bytes (it must be open for
    /// writing); the position stays.
    pub fn set_len(&mut self, size: u64) -> Result<(), Error> {
        self.call_done(FileRequest::SetSize(size))
    }

    /// Sets the file's access and modification times.
    pub fn set_times(&mut self, times: Times) -> Result<(), Error> {
        self.call_done(FileRequest::SetTimes(times))
    }

    fn call_done(&mut self, request: FileRequest<'_>) -> Result<(), Error> {
        match self.call(request)? {
            Reply::Done => Ok(()),
            _ => Err(unexpected()),
        }
    }

    /// Sends `request` (after settling any read-ahead) and returns the reply.
    fn call(&mut self, request: FileRequest<'_>) -> Result<Reply<'_>, Error> {
        self.settle()?;
        self.call_now(request)
    }

    fn call_now(&mut self, request: FileRequest<'_>) -> Result<Reply<'_>, Error> {
        let mut frame = [0u8; HEADER + 40];
        let n = request.encode(&mut frame).ok_or_else(unexpected)?;
        let k = self.stream.call(&frame[..n], &mut self.reply)?;
        decode(k, &self.reply)
    }

    /// Sends `READ` requests until [`READ_AHEAD`] are in flight.
    fn fill(&mut self) -> Result<(), Error> {
        while !self.eof && self.pending < READ_AHEAD {
            self.send_read(READ_CHUNK)?;
        }
        Ok(())
    }

    fn send_read(&mut self, max: u32) -> Result<(), Error> {
        let mut frame = [0u8; HEADER + 4];
        let n = FileRequest::Read { max }
            .encode(&mut frame)
            .ok_or_else(unexpected)?;
        self.stream.send(&frame[..n])?;
        self.pending += 1;
        Ok(())
    }

    /// Reads the next `DATA` reply's header: its body's length.
    fn next_data(&mut self) -> Result<usize, Error> {
        self.pending -= 1;
        let header = self.stream.recv_header()?;
        if header.kind != kind::DATA {
            return Err(unexpected());
        }
        self.left = header.len as usize;
        Ok(self.left)
    }

    /// Drops the rest of the current `DATA` body.
    fn skip_left(&mut self) -> Result<(), Error> {
        let mut scratch = [0u8; 4096];
        while self.left > 0 {
            let n = self.left.min(scratch.len());
            self.stream.recv_body(&mut scratch[..n])?;
            self.left -= n;
        }
        Ok(())
    }

    /// Discards the read-ahead and moves the monitor's file position back
    /// to the first byte the program has not read.
    fn settle(&mut self) -> Result<(), Error> {
        let mut unread = self.left as u64;
        self.skip_left()?;
        while self.pending > 0 {
            // A failed read delivered nothing: it moved nothing either.
            if let Ok(n) = self.next_data() {
                unread += n as u64;
                self.skip_left()?;
            }
        }
        self.eof = false;
        if unread > 0 {
            let offset = -(unread as i64);
            self.call_now(FileRequest::Seek {
                whence: Whence::Current,
                offset,
            })?;
        }
        Ok(())
    }
}

impl ErrorType for File {
    type Error = Error;
}

impl Read for File {
    /// Blocks until at least one byte; `Ok(0)` at end of file.
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Error> {
        if buf.is_empty() {
            return Ok(0);
        }
        if !self.read_ahead {
            self.send_read(buf.len().min(MAX_BODY) as u32)?;
        }
        loop {
            if self.left > 0 {
                let n = buf.len().min(self.left);
                // What is there already (at least a byte): the rest of a
                // long reply may still be on its way.
                let n = self.stream.read(&mut buf[..n])?;
                if n == 0 {
                    return Err(Error::new(Code::Closed, "the stream ended inside a reply"));
                }
                self.left -= n;
                if self.left == 0 && self.read_ahead {
                    self.fill()?;
                }
                return Ok(n);
            }
            if self.pending == 0 {
                self.eof = false;
                self.fill()?;
            }
            if self.next_data()? == 0 {
                self.eof = true;
                return Ok(0);
            }
        }
    }
}

impl Write for File {
    /// Writes up to one frame's worth of `buf`; returns how much the host
    /// took (never 0 for a non-empty `buf`: that is an error).
    fn write(&mut self, buf: &[u8]) -> Result<usize, Error> {
        if buf.is_empty() {
            return Ok(0);
        }
        self.settle()?;
        let n = buf.len().min(MAX_BODY);
        self.stream.send(&Header::new(kind::WRITE, n).encode())?;
        self.stream.send(&buf[..n])?;
        let k = self.stream.recv(&mut self.reply)?;
        match decode(k, &self.reply)? {
            Reply::Written(0) => Err(Error::new(Code::Io, "the host took no bytes")),
            Reply::Written(w) if w as usize <= n => Ok(w as usize),
            _ => Err(unexpected()),
        }
    }

    fn flush(&mut self) -> Result<(), Error> {
        Ok(())
    }
}

impl Seek for File {
    fn seek(&mut self, pos: SeekFrom) -> Result<u64, Error> {
        let (whence, offset) = match pos {
            SeekFrom::Start(n) => (
                Whence::Start,
                i64::try_from(n).map_err(|_| Error::new(Code::TooLarge, "seek past 2^63"))?,
            ),
            SeekFrom::Current(n) => (Whence::Current, n),
            SeekFrom::End(n) => (Whence::End, n),
        };
        match self.call(FileRequest::Seek { whence, offset })? {
            Reply::Position(p) => Ok(p),
            _ => Err(unexpected()),
        }
    }
}

/// A directory entry: its name, what it is (symlinks not followed) and
/// its inode number.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirEntry {
    name: String,
    kind: FileKind,
    inode: u64,
}

impl DirEntry {
    /// The entry's name (no `/`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What the entry is.
    pub fn file_type(&self) -> FileKind {
        self.kind
    }

    /// The host's inode number of what it names.
    pub fn inode(&self) -> u64 {
        self.inode
    }
}

/// The path-operation session, opened on first use.
static SESSION: ExclusiveCell<Option<Stream>> = ExclusiveCell::new(None);

/// Sends `request` on the session and passes the stream and the first
/// reply to `f`.
fn session<R>(
    request: SessionRequest<'_>,
    f: impl FnOnce(&mut Stream, Reply<'_>) -> Result<R, Error>,
) -> Result<R, Error> {
    SESSION
        .with(|s| {
            if s.is_none() {
                let mut reply = Vec::new();
                *s = Some(Stream::connect(frame::kind::FS_SESSION, &[], &mut reply)?.0);
            }
            let s = s.as_mut().ok_or_else(unexpected)?;
            let mut frame = vec![0u8; request.frame_len()];
            let n = request
                .encode(&mut frame)
                .ok_or_else(|| Error::new(Code::TooLarge, "the path is too long"))?;
            let mut body = Vec::new();
            let k = s.call(&frame[..n], &mut body)?;
            f(s, decode(k, &body)?)
        })
        .unwrap_or_else(|| Err(Error::new(Code::Invalid, "file-system session re-entered")))
}

/// Sends a request whose reply is `DONE`.
fn done(request: SessionRequest<'_>) -> Result<(), Error> {
    session(request, |_, reply| match reply {
        Reply::Done => Ok(()),
        _ => Err(unexpected()),
    })
}

/// The metadata of `path` (symlinks followed).
pub fn metadata<'a>(path: impl Into<At<'a>>) -> Result<Metadata, Error> {
    stat(path.into(), true)
}

/// The metadata of `path` itself: a symlink is described, not followed.
pub fn symlink_metadata<'a>(path: impl Into<At<'a>>) -> Result<Metadata, Error> {
    stat(path.into(), false)
}

fn stat(at: At<'_>, follow: bool) -> Result<Metadata, Error> {
    session(
        SessionRequest::Stat { at, follow },
        |_, reply| match reply {
            Reply::Metadata(m) => Ok(m),
            _ => Err(unexpected()),
        },
    )
}

/// The entries of directory `path`, in the host's order.
pub fn read_dir<'a>(path: impl Into<At<'a>>) -> Result<Vec<DirEntry>, Error> {
    session(SessionRequest::ReadDir(path.into()), |s, first| {
        let mut out = Vec::new();
        let mut body = Vec::new();
        let mut reply = first;
        loop {
            match reply {
                Reply::Entries(list) => out.extend(list.iter().map(|e| DirEntry {
                    name: e.name.to_string(),
                    kind: e.kind,
                    inode: e.inode,
                })),
                Reply::End => return Ok(out),
                _ => return Err(unexpected()),
            }
            let k = s.recv(&mut body)?;
            reply = decode(k, &body)?;
        }
    })
}

/// Creates directory `path` (its parent must exist).
pub fn create_dir<'a>(path: impl Into<At<'a>>) -> Result<(), Error> {
    done(SessionRequest::CreateDir(path.into()))
}

/// Removes file (or symlink) `path`.
pub fn remove_file<'a>(path: impl Into<At<'a>>) -> Result<(), Error> {
    done(SessionRequest::RemoveFile(path.into()))
}

/// Removes empty directory `path`.
pub fn remove_dir<'a>(path: impl Into<At<'a>>) -> Result<(), Error> {
    done(SessionRequest::RemoveDir(path.into()))
}

/// Renames `from` to `to`, replacing `to` if it exists.
pub fn rename<'a, 'b>(from: impl Into<At<'a>>, to: impl Into<At<'b>>) -> Result<(), Error> {
    done(SessionRequest::Rename {
        from: from.into(),
        to: to.into(),
    })
}

/// The target of symlink `path`, as stored.
pub fn read_link<'a>(path: impl Into<At<'a>>) -> Result<String, Error> {
    session(
        SessionRequest::ReadLink(path.into()),
        |_, reply| match reply {
            Reply::LinkTarget(t) => Ok(t.to_string()),
            _ => Err(unexpected()),
        },
    )
}

/// Makes a symlink at `link` to `target` (relative: an absolute target is
/// refused with `Escape`).
pub fn symlink<'a>(target: &str, link: impl Into<At<'a>>) -> Result<(), Error> {
    done(SessionRequest::Symlink {
        target,
        at: link.into(),
    })
}

/// Makes `link` a new name of what `original` names (following
/// `original` if it is a symlink and `follow`).
pub fn hard_link<'a, 'b>(
    original: impl Into<At<'a>>,
    link: impl Into<At<'b>>,
    follow: bool,
) -> Result<(), Error> {
    done(SessionRequest::HardLink {
        from: original.into(),
        follow,
        to: link.into(),
    })
}

/// Sets the access and modification times of `path` (of a symlink itself
/// unless `follow`).
pub fn set_times<'a>(path: impl Into<At<'a>>, follow: bool, times: Times) -> Result<(), Error> {
    done(SessionRequest::SetTimes {
        at: path.into(),
        follow,
        times,
    })
}

/// The whole contents of file `path`.
pub fn read(path: &str) -> Result<Vec<u8>, Error> {
    let mut file = File::open(path)?;
    let mut out = Vec::new();
    loop {
        let at = out.len();
        out.resize(at + READ_CHUNK as usize, 0);
        let n = file.read(&mut out[at..])?;
        out.truncate(at + n);
        if n == 0 {
            return Ok(out);
        }
    }
}

/// Writes `bytes` to file `path`, created or cut to length 0 first.
pub fn write(path: &str, bytes: &[u8]) -> Result<(), Error> {
    File::create(path)?.write_all(bytes)
}

/// A reply frame's body as a [`Reply`].
fn decode(kind: u16, body: &[u8]) -> Result<Reply<'_>, Error> {
    Reply::decode(Header::new(kind, body.len()), body).map_err(Error::wire)
}

fn unexpected() -> Error {
    Error::new(Code::Protocol, "unexpected file-system reply")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_set_and_clear_flags_as_std_does() {
        let mut o = OpenOptions::new();
        o.read(true).write(true).create(true).truncate(true);
        let want = OpenFlags::READ
            .with(OpenFlags::WRITE)
            .with(OpenFlags::CREATE)
            .with(OpenFlags::TRUNCATE);
        assert_eq!(o.flags.bits(), want.bits());
        o.truncate(false).write(false).append(true);
        let want = OpenFlags::READ
            .with(OpenFlags::CREATE)
            .with(OpenFlags::APPEND);
        assert_eq!(o.flags.bits(), want.bits());
        assert!(o.flags.writes());
        o.create_new(true);
        assert_ne!(o.flags.bits() & OpenFlags::EXCLUSIVE.bits(), 0);
        assert_eq!(OpenOptions::default().flags.bits(), 0);
    }
}
