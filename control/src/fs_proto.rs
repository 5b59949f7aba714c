//! The file-system protocols (PROTOCOL.md §10): a `FILE_OPEN` stream is one
//! open file (read, write, seek, stat, sync, set its size and times); an
//! `FS_SESSION` stream carries path operations (stat, list, create and
//! remove directories, remove and rename files, read and make links, set
//! times).
//!
//! Every path is an [`At`]: a directory beneath the root, and a path beneath
//! that directory, so a program's directory descriptor confines the paths
//! resolved from it as the root confines every path.
//!
//! Requests are answered in order, one reply each, except `READ_DIR`, whose
//! reply is any number of `ENTRIES` frames and then `END`. A failing request
//! is answered with an `ERROR` frame (§9.3) and the stream stays usable.
//!
//! Invariants: decoding never panics and refuses trailing bytes; paths and
//! names are UTF-8 `bytes16`; everything a decoder returns borrows the body.

use crate::frame::{Decoder, Encoder, HEADER, Header, MAX_BODY, WireError};

/// Frame kinds of the file-system protocols (the first frames themselves are
/// `frame::kind::FILE_OPEN` and `frame::kind::FS_SESSION`).
pub mod kind {
    /// File stream: read up to `max` bytes at the file position.
    pub const READ: u16 = 0x0110;
    /// File stream: write bytes at the file position.
    pub const WRITE: u16 = 0x0111;
    /// File stream: move the file position.
    pub const SEEK: u16 = 0x0112;
    /// File stream: the open file's metadata.
    pub const FSTAT: u16 = 0x0113;
    /// File stream: flush the file to the host's storage.
    pub const SYNC: u16 = 0x0114;
    /// File stream: cut or extend the file to a length.
    pub const SET_SIZE: u16 = 0x0115;
    /// File stream: set the file's access and modification times.
    pub const SET_FILE_TIMES: u16 = 0x0116;
    /// Session: a path's metadata (symlinks followed, or not).
    pub const STAT: u16 = 0x0120;
    /// Session: list a directory.
    pub const READ_DIR: u16 = 0x0121;
    /// Session: create a directory.
    pub const CREATE_DIR: u16 = 0x0122;
    /// Session: remove a file (or symlink).
    pub const REMOVE_FILE: u16 = 0x0123;
    /// Session: remove an empty directory.
    pub const REMOVE_DIR: u16 = 0x0124;
    /// Session: rename a file or directory.
    pub const RENAME: u16 = 0x0125;
    /// Session: the target of a symlink.
    pub const READ_LINK: u16 = 0x0126;
    /// Session: make a symlink.
    pub const SYMLINK: u16 = 0x0127;
    /// Session: make a hard link.
    pub const HARD_LINK: u16 = 0x0128;
    /// Session: set a path's access and modification times.
    pub const SET_TIMES: u16 = 0x0129;

    /// Reply to `FILE_OPEN`: the file is open; its metadata.
    pub const FILE_OPENED: u16 = 0x8100;
    /// Reply to `FS_SESSION`: the session is ready.
    pub const SESSION_OPENED: u16 = 0x8101;
    /// Reply to `READ`: the bytes read (none: end of file).
    pub const DATA: u16 = 0x8110;
    /// Reply to `WRITE`: how many bytes were written.
    pub const WRITTEN: u16 = 0x8111;
    /// Reply to `SEEK`: the new file position.
    pub const POSITION: u16 = 0x8112;
    /// Reply to `FSTAT` and `STAT`.
    pub const METADATA: u16 = 0x8113;
    /// Reply to the requests that only change something.
    pub const DONE: u16 = 0x8114;
    /// Part of the reply to `READ_DIR`: some entries.
    pub const ENTRIES: u16 = 0x8121;
    /// Last frame of the reply to `READ_DIR`.
    pub const END: u16 = 0x8122;
    /// Reply to `READ_LINK`: the link's target.
    pub const LINK_TARGET: u16 = 0x8123;
}

/// Bytes of an encoded [`Metadata`].
pub const METADATA_LEN: usize = 1 + 4 + 8 * 7;

/// The longest file a guest may make, 64 GiB (§10.2): a `WRITE` or
/// `SET_SIZE` that would put a file's end past it is refused with
/// `TooLarge`, so a guest cannot make huge sparse files on the host.
pub const MAX_FILE_SIZE: u64 = 64 << 30;

/// `FILE_OPEN` flags (a `u32` bit set). Any other bit is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpenFlags(u32);

impl OpenFlags {
    /// Open for reading.
    pub const READ: Self = Self(1);
    /// Open for writing.
    pub const WRITE: Self = Self(2);
    /// Create the file if it does not exist.
    pub const CREATE: Self = Self(4);
    /// Cut the file to length 0.
    pub const TRUNCATE: Self = Self(8);
    /// Every write goes to the end of the file.
    pub const APPEND: Self = Self(16);
    /// Create the file; fail if it exists.
    pub const EXCLUSIVE: Self = Self(32);
    /// Do not follow a symlink as the last component (`Loop` if it is one).
    pub const NO_FOLLOW: Self = Self(64);
    const ALL: u32 = 127;
    /// Flags that may change the file system.
    const MODIFYING: u32 =
        Self::WRITE.0 | Self::CREATE.0 | Self::TRUNCATE.0 | Self::APPEND.0 | Self::EXCLUSIVE.0;

    /// No flags.
    pub const fn empty() -> Self {
        Self(0)
    }

    /// The bits.
    pub const fn bits(self) -> u32 {
        self.0
    }

    /// Whether every flag of `other` is set.
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// These flags and `other`'s.
    #[must_use]
    pub const fn with(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    /// These flags without `other`'s.
    #[must_use]
    pub const fn without(self, other: Self) -> Self {
        Self(self.0 & !other.0)
    }

    /// Whether the file will be written (`WRITE` or `APPEND`).
    pub const fn writes(self) -> bool {
        self.0 & (Self::WRITE.0 | Self::APPEND.0) != 0
    }

    /// Whether an open with these flags may change the file system (refused
    /// under `--read-only`).
    pub const fn modifies(self) -> bool {
        self.0 & Self::MODIFYING != 0
    }

    /// Checks raw flags: no unknown bit, reading or writing asked for,
    /// `TRUNCATE` only when writing (a file may be created to be only
    /// read, as `open(2)` allows). The error names the rule broken.
    pub fn from_bits(bits: u32) -> Result<Self, &'static str> {
        let f = Self(bits);
        if bits & !Self::ALL != 0 {
            Err("unknown open flag")
        } else if !f.contains(Self::READ) && !f.writes() {
            Err("open neither for reading nor for writing")
        } else if !f.writes() && f.contains(Self::TRUNCATE) {
            Err("truncate without write")
        } else {
            Ok(f)
        }
    }
}

/// What a path names.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum FileKind {
    /// A regular file.
    File = 0,
    /// A directory.
    Dir = 1,
    /// A symbolic link (in listings, and from `STAT` without `follow`).
    Symlink = 2,
    /// Anything else (device, FIFO, socket).
    Other = 3,
}

impl FileKind {
    fn decode(v: u8) -> Result<Self, WireError> {
        Ok(match v {
            0 => Self::File,
            1 => Self::Dir,
            2 => Self::Symlink,
            3 => Self::Other,
            _ => return Err(WireError::Field("kind")),
        })
    }
}

/// A file's metadata (61 bytes): `kind: u8, mode: u32, size: u64,
/// modified_ns: i64, accessed_ns: i64, changed_ns: i64, device: u64,
/// inode: u64, links: u64`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Metadata {
    /// What the path names.
    pub kind: FileKind,
    /// Permission bits (`mode & 0o7777` on the host).
    pub mode: u32,
    /// Length in bytes.
    pub size: u64,
    /// Last modification, nanoseconds since the Unix epoch.
    pub modified_ns: i64,
    /// Last access, nanoseconds since the Unix epoch.
    pub accessed_ns: i64,
    /// Last change of the file's metadata, nanoseconds since the Unix epoch.
    pub changed_ns: i64,
    /// The host's device number of the file system holding it.
    pub device: u64,
    /// The host's inode number.
    pub inode: u64,
    /// How many hard links name it.
    pub links: u64,
}

impl Metadata {
    fn encode(&self, e: &mut Encoder<'_>) {
        e.u8(self.kind as u8)
            .u32(self.mode)
            .u64(self.size)
            .u64(self.modified_ns as u64)
            .u64(self.accessed_ns as u64)
            .u64(self.changed_ns as u64)
            .u64(self.device)
            .u64(self.inode)
            .u64(self.links);
    }

    fn decode(d: &mut Decoder<'_>) -> Result<Self, WireError> {
        Ok(Self {
            kind: FileKind::decode(d.u8()?)?,
            mode: d.u32()?,
            size: d.u64()?,
            modified_ns: d.u64()? as i64,
            accessed_ns: d.u64()? as i64,
            changed_ns: d.u64()? as i64,
            device: d.u64()?,
            inode: d.u64()?,
            links: d.u64()?,
        })
    }
}

/// Where a `SEEK` offset counts from.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Whence {
    /// From the start of the file (the offset must not be negative).
    Start = 0,
    /// From the current position.
    Current = 1,
    /// From the end of the file.
    End = 2,
}

/// A UTF-8 `bytes16`; `field` names it in the error.
fn text<'a>(d: &mut Decoder<'a>, field: &'static str) -> Result<&'a str, WireError> {
    core::str::from_utf8(d.short_bytes()?).map_err(|_| WireError::Field(field))
}

/// A `follow: u8` flag: 0 or 1.
fn flag(d: &mut Decoder<'_>, field: &'static str) -> Result<bool, WireError> {
    match d.u8()? {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(WireError::Field(field)),
    }
}

/// A path beneath a directory (`dir: bytes16, path: bytes16`): `dir` is
/// resolved beneath the root (empty: the root itself), then `path` beneath
/// `dir`, which it may not leave (§10.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct At<'a> {
    /// The directory, a path beneath the root.
    pub dir: &'a str,
    /// The path, beneath `dir`.
    pub path: &'a str,
}

impl<'a> From<&'a str> for At<'a> {
    fn from(path: &'a str) -> Self {
        Self::root(path)
    }
}

#[cfg(feature = "alloc")]
impl<'a> From<&'a alloc::string::String> for At<'a> {
    fn from(path: &'a alloc::string::String) -> Self {
        Self::root(path)
    }
}

impl<'a> At<'a> {
    /// `path` beneath the root.
    pub const fn root(path: &'a str) -> Self {
        Self { dir: "", path }
    }

    /// Bytes of the encoded pair.
    pub const fn encoded_len(&self) -> usize {
        4 + self.dir.len() + self.path.len()
    }

    fn encode(&self, e: &mut Encoder<'_>) {
        e.short_bytes(self.dir.as_bytes())
            .short_bytes(self.path.as_bytes());
    }

    fn decode(d: &mut Decoder<'a>) -> Result<Self, WireError> {
        Ok(Self {
            dir: text(d, "dir")?,
            path: text(d, "path")?,
        })
    }
}

/// What to set a time to (`how: u8` — 0 leave it, 1 now, 2 `ns` — then
/// `ns: i64`, 0 unless `how` is 2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetTime {
    /// Leave it as it is.
    Keep,
    /// The host's current time.
    Now,
    /// Nanoseconds since the Unix epoch.
    To(i64),
}

impl SetTime {
    fn encode(&self, e: &mut Encoder<'_>) {
        let (how, ns) = match *self {
            Self::Keep => (0, 0),
            Self::Now => (1, 0),
            Self::To(ns) => (2, ns),
        };
        e.u8(how).u64(ns as u64);
    }

    fn decode(d: &mut Decoder<'_>) -> Result<Self, WireError> {
        let how = d.u8()?;
        let ns = d.u64()? as i64;
        match (how, ns) {
            (0, 0) => Ok(Self::Keep),
            (1, 0) => Ok(Self::Now),
            (2, ns) => Ok(Self::To(ns)),
            _ => Err(WireError::Field("time")),
        }
    }
}

/// A file's new access and modification times (34 bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Times {
    /// The access time.
    pub accessed: SetTime,
    /// The modification time.
    pub modified: SetTime,
}

impl Times {
    const LEN: usize = 18;

    fn encode(&self, e: &mut Encoder<'_>) {
        self.accessed.encode(e);
        self.modified.encode(e);
    }

    fn decode(d: &mut Decoder<'_>) -> Result<Self, WireError> {
        Ok(Self {
            accessed: SetTime::decode(d)?,
            modified: SetTime::decode(d)?,
        })
    }
}

/// A `FILE_OPEN` first frame: `version: u32` (§9.2), then these parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileOpen<'a> {
    /// Raw [`OpenFlags`] bits (checked by [`OpenFlags::from_bits`]).
    pub flags: u32,
    /// The file.
    pub at: At<'a>,
}

impl<'a> FileOpen<'a> {
    /// Bytes of the whole first frame.
    pub fn frame_len(&self) -> usize {
        HEADER + 4 + 4 + self.at.encoded_len()
    }

    /// Encodes the whole `FILE_OPEN` first frame (version included) into
    /// `buf`; `None` if it does not fit.
    pub fn encode(&self, buf: &mut [u8]) -> Option<usize> {
        let mut e = Encoder::new(buf, crate::frame::kind::FILE_OPEN);
        e.u32(crate::frame::VERSION).u32(self.flags);
        self.at.encode(&mut e);
        e.finish()
    }

    /// Decodes the parameters.
    pub fn decode(params: &'a [u8]) -> Result<Self, WireError> {
        let mut d = Decoder::new(params);
        let r = Self {
            flags: d.u32()?,
            at: At::decode(&mut d)?,
        };
        d.finish()?;
        Ok(r)
    }
}

/// A request on a file stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileRequest<'a> {
    /// `READ { max: u32 }`: up to `max` bytes, `1..=MAX_BODY`.
    Read {
        /// The most bytes the reply may carry.
        max: u32,
    },
    /// `WRITE { bytes: rest of body }`.
    Write(&'a [u8]),
    /// `SEEK { whence: u8, offset: i64 }`.
    Seek {
        /// Where `offset` counts from.
        whence: Whence,
        /// Bytes from `whence`.
        offset: i64,
    },
    /// `FSTAT {}`.
    Fstat,
    /// `SYNC {}`.
    Sync,
    /// `SET_SIZE { size: u64 }`.
    SetSize(u64),
    /// `SET_FILE_TIMES { times }`.
    SetTimes(Times),
}

impl<'a> FileRequest<'a> {
    /// Encodes the request as a frame into `buf`.
    pub fn encode(&self, buf: &mut [u8]) -> Option<usize> {
        let mut e;
        match *self {
            Self::Read { max } => {
                e = Encoder::new(buf, kind::READ);
                e.u32(max);
            }
            Self::Write(bytes) => {
                e = Encoder::new(buf, kind::WRITE);
                e.bytes(bytes);
            }
            Self::Seek { whence, offset } => {
                e = Encoder::new(buf, kind::SEEK);
                e.u8(whence as u8).u64(offset as u64);
            }
            Self::Fstat => e = Encoder::new(buf, kind::FSTAT),
            Self::Sync => e = Encoder::new(buf, kind::SYNC),
            Self::SetSize(size) => {
                e = Encoder::new(buf, kind::SET_SIZE);
                e.u64(size);
            }
            Self::SetTimes(times) => {
                e = Encoder::new(buf, kind::SET_FILE_TIMES);
                times.encode(&mut e);
            }
        }
        e.finish()
    }

    /// Decodes a request frame.
    pub fn decode(header: Header, body: &'a [u8]) -> Result<Self, WireError> {
        let mut d = Decoder::new(body);
        let r = match header.kind {
            kind::READ => {
                let max = d.u32()?;
                if max == 0 || max as usize > MAX_BODY {
                    return Err(WireError::Field("max"));
                }
                Self::Read { max }
            }
            kind::WRITE => Self::Write(d.rest()),
            kind::SEEK => Self::Seek {
                whence: match d.u8()? {
                    0 => Whence::Start,
                    1 => Whence::Current,
                    2 => Whence::End,
                    _ => return Err(WireError::Field("whence")),
                },
                offset: d.u64()? as i64,
            },
            kind::FSTAT => Self::Fstat,
            kind::SYNC => Self::Sync,
            kind::SET_SIZE => Self::SetSize(d.u64()?),
            kind::SET_FILE_TIMES => Self::SetTimes(Times::decode(&mut d)?),
            other => return Err(WireError::Kind(other)),
        };
        d.finish()?;
        Ok(r)
    }
}

/// A request on a session stream. Every path is an [`At`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionRequest<'a> {
    /// `STAT { at, follow: u8 }`: with `follow`, a symlink's target.
    Stat {
        /// What to describe.
        at: At<'a>,
        /// Follow a symlink as the last component.
        follow: bool,
    },
    /// `READ_DIR { at }`.
    ReadDir(At<'a>),
    /// `CREATE_DIR { at }`.
    CreateDir(At<'a>),
    /// `REMOVE_FILE { at }`.
    RemoveFile(At<'a>),
    /// `REMOVE_DIR { at }`.
    RemoveDir(At<'a>),
    /// `RENAME { from, to }`.
    Rename {
        /// The existing path.
        from: At<'a>,
        /// Its new path (replaced if it exists, as `rename(2)` does).
        to: At<'a>,
    },
    /// `READ_LINK { at }`.
    ReadLink(At<'a>),
    /// `SYMLINK { target: bytes16, at }`: a symlink at `at` to `target`.
    Symlink {
        /// What the link names, stored as given (relative, and not
        /// leaving the root).
        target: &'a str,
        /// Where the link is made.
        at: At<'a>,
    },
    /// `HARD_LINK { from, follow: u8, to }`: `to` names what `from` names.
    HardLink {
        /// The existing file.
        from: At<'a>,
        /// Follow `from` if it is a symlink.
        follow: bool,
        /// The new name.
        to: At<'a>,
    },
    /// `SET_TIMES { at, follow: u8, times }`.
    SetTimes {
        /// Whose times.
        at: At<'a>,
        /// Follow a symlink as the last component.
        follow: bool,
        /// The new times.
        times: Times,
    },
}

impl<'a> SessionRequest<'a> {
    /// Bytes of the encoded frame.
    pub fn frame_len(&self) -> usize {
        HEADER
            + match *self {
                Self::Stat { at, .. } => at.encoded_len() + 1,
                Self::ReadDir(at)
                | Self::CreateDir(at)
                | Self::RemoveFile(at)
                | Self::RemoveDir(at)
                | Self::ReadLink(at) => at.encoded_len(),
                Self::Rename { from, to } => from.encoded_len() + to.encoded_len(),
                Self::Symlink { target, at } => 2 + target.len() + at.encoded_len(),
                Self::HardLink { from, to, .. } => from.encoded_len() + 1 + to.encoded_len(),
                Self::SetTimes { at, .. } => at.encoded_len() + 1 + Times::LEN,
            }
    }

    /// Encodes the request as a frame into `buf`; `None` if it does not fit
    /// (or a path is longer than a `bytes16`).
    pub fn encode(&self, buf: &mut [u8]) -> Option<usize> {
        let mut e;
        match *self {
            Self::Stat { at, follow } => {
                e = Encoder::new(buf, kind::STAT);
                at.encode(&mut e);
                e.u8(follow.into());
            }
            Self::ReadDir(at)
            | Self::CreateDir(at)
            | Self::RemoveFile(at)
            | Self::RemoveDir(at)
            | Self::ReadLink(at) => {
                let k = match self {
                    Self::ReadDir(_) => kind::READ_DIR,
                    Self::CreateDir(_) => kind::CREATE_DIR,
                    Self::RemoveFile(_) => kind::REMOVE_FILE,
                    Self::RemoveDir(_) => kind::REMOVE_DIR,
                    _ => kind::READ_LINK,
                };
                e = Encoder::new(buf, k);
                at.encode(&mut e);
            }
            Self::Rename { from, to } => {
                e = Encoder::new(buf, kind::RENAME);
                from.encode(&mut e);
                to.encode(&mut e);
            }
            Self::Symlink { target, at } => {
                e = Encoder::new(buf, kind::SYMLINK);
                e.short_bytes(target.as_bytes());
                at.encode(&mut e);
            }
            Self::HardLink { from, follow, to } => {
                e = Encoder::new(buf, kind::HARD_LINK);
                from.encode(&mut e);
                e.u8(follow.into());
                to.encode(&mut e);
            }
            Self::SetTimes { at, follow, times } => {
                e = Encoder::new(buf, kind::SET_TIMES);
                at.encode(&mut e);
                e.u8(follow.into());
                times.encode(&mut e);
            }
        }
        e.finish()
    }

    /// Decodes a request frame.
    pub fn decode(header: Header, body: &'a [u8]) -> Result<Self, WireError> {
        let mut dec = Decoder::new(body);
        let d = &mut dec;
        let r = match header.kind {
            kind::STAT => Self::Stat {
                at: At::decode(d)?,
                follow: flag(d, "follow")?,
            },
            kind::READ_DIR => Self::ReadDir(At::decode(d)?),
            kind::CREATE_DIR => Self::CreateDir(At::decode(d)?),
            kind::REMOVE_FILE => Self::RemoveFile(At::decode(d)?),
            kind::REMOVE_DIR => Self::RemoveDir(At::decode(d)?),
            kind::READ_LINK => Self::ReadLink(At::decode(d)?),
            kind::RENAME => Self::Rename {
                from: At::decode(d)?,
                to: At::decode(d)?,
            },
            kind::SYMLINK => Self::Symlink {
                target: text(d, "target")?,
                at: At::decode(d)?,
            },
            kind::HARD_LINK => Self::HardLink {
                from: At::decode(d)?,
                follow: flag(d, "follow")?,
                to: At::decode(d)?,
            },
            kind::SET_TIMES => Self::SetTimes {
                at: At::decode(d)?,
                follow: flag(d, "follow")?,
                times: Times::decode(d)?,
            },
            other => return Err(WireError::Kind(other)),
        };
        dec.finish()?;
        Ok(r)
    }
}

/// One directory entry: `kind: u8, inode: u64, name: bytes16` (UTF-8, not
/// empty, no `/`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DirEntry<'a> {
    /// What the entry names (a symlink is not followed).
    pub kind: FileKind,
    /// The host's inode number of what it names.
    pub inode: u64,
    /// The entry's name (no `/`).
    pub name: &'a str,
}

impl DirEntry<'_> {
    /// Bytes of the encoded entry.
    pub fn encoded_len(&self) -> usize {
        1 + 8 + 2 + self.name.len()
    }
}

/// The entries of an `ENTRIES` frame: its body, every entry checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entries<'a> {
    raw: &'a [u8],
}

impl<'a> Entries<'a> {
    /// Checks every entry of `raw`.
    pub fn decode(raw: &'a [u8]) -> Result<Self, WireError> {
        let mut it = EntryIter {
            d: Decoder::new(raw),
        };
        while it.next_checked()?.is_some() {}
        Ok(Self { raw })
    }

    /// The entries in order.
    pub fn iter(&self) -> impl Iterator<Item = DirEntry<'a>> + 'a {
        let mut it = EntryIter {
            d: Decoder::new(self.raw),
        };
        // Checked in `decode`, so no entry fails here.
        core::iter::from_fn(move || it.next_checked().ok().flatten())
    }
}

struct EntryIter<'a> {
    d: Decoder<'a>,
}

impl<'a> EntryIter<'a> {
    fn next_checked(&mut self) -> Result<Option<DirEntry<'a>>, WireError> {
        if self.d.clone().finish().is_ok() {
            return Ok(None);
        }
        let kind = FileKind::decode(self.d.u8()?)?;
        let inode = self.d.u64()?;
        let name = core::str::from_utf8(self.d.short_bytes()?)
            .ok()
            .filter(|n| !n.is_empty() && !n.contains('/'))
            .ok_or(WireError::Field("name"))?;
        Ok(Some(DirEntry { kind, inode, name }))
    }
}

/// Encodes as many of `entries` as fit one `ENTRIES` frame into `buf`
/// (`HEADER + MAX_BODY` bytes hold any entry). Returns the frame's length
/// and how many entries it holds; 0 entries if the first does not fit.
pub fn encode_entries(entries: &[DirEntry<'_>], buf: &mut [u8]) -> (usize, usize) {
    let room = buf.len().min(HEADER + MAX_BODY);
    let mut len = HEADER;
    let mut taken = 0;
    for entry in entries {
        if len + entry.encoded_len() > room || entry.name.len() > usize::from(u16::MAX) {
            break;
        }
        len += entry.encoded_len();
        taken += 1;
    }
    let mut e = Encoder::new(&mut buf[..len], kind::ENTRIES);
    for entry in &entries[..taken] {
        e.u8(entry.kind as u8)
            .u64(entry.inode)
            .short_bytes(entry.name.as_bytes());
    }
    (e.finish().unwrap_or(0), taken)
}

/// A reply on a file or session stream (`ERROR` frames aside).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reply<'a> {
    /// `FILE_OPENED { metadata }`.
    FileOpened(Metadata),
    /// `SESSION_OPENED {}`.
    SessionOpened,
    /// `DATA { bytes: rest of body }`; empty at end of file.
    Data(&'a [u8]),
    /// `WRITTEN { n: u32 }`.
    Written(u32),
    /// `POSITION { position: u64 }`.
    Position(u64),
    /// `METADATA { metadata }`.
    Metadata(Metadata),
    /// `DONE {}`.
    Done,
    /// `ENTRIES { entries... }`.
    Entries(Entries<'a>),
    /// `END {}`.
    End,
    /// `LINK_TARGET { target: rest of body }` (UTF-8).
    LinkTarget(&'a str),
}

impl<'a> Reply<'a> {
    /// Encodes the reply as a frame into `buf` (`Entries` copies its body).
    pub fn encode(&self, buf: &mut [u8]) -> Option<usize> {
        let mut e;
        match *self {
            Self::FileOpened(m) | Self::Metadata(m) => {
                let k = if matches!(self, Self::FileOpened(_)) {
                    kind::FILE_OPENED
                } else {
                    kind::METADATA
                };
                e = Encoder::new(buf, k);
                m.encode(&mut e);
            }
            Self::SessionOpened => e = Encoder::new(buf, kind::SESSION_OPENED),
            Self::Data(bytes) => {
                e = Encoder::new(buf, kind::DATA);
                e.bytes(bytes);
            }
            Self::Written(n) => {
                e = Encoder::new(buf, kind::WRITTEN);
                e.u32(n);
            }
            Self::Position(p) => {
                e = Encoder::new(buf, kind::POSITION);
                e.u64(p);
            }
            Self::Done => e = Encoder::new(buf, kind::DONE),
            Self::Entries(entries) => {
                e = Encoder::new(buf, kind::ENTRIES);
                e.bytes(entries.raw);
            }
            Self::End => e = Encoder::new(buf, kind::END),
            Self::LinkTarget(target) => {
                e = Encoder::new(buf, kind::LINK_TARGET);
                e.bytes(target.as_bytes());
            }
        }
        e.finish()
    }

    /// Decodes a reply frame.
    pub fn decode(header: Header, body: &'a [u8]) -> Result<Self, WireError> {
        let mut d = Decoder::new(body);
        let r = match header.kind {
            kind::FILE_OPENED => Self::FileOpened(Metadata::decode(&mut d)?),
            kind::SESSION_OPENED => Self::SessionOpened,
            kind::DATA => Self::Data(d.rest()),
            kind::WRITTEN => Self::Written(d.u32()?),
            kind::POSITION => Self::Position(d.u64()?),
            kind::METADATA => Self::Metadata(Metadata::decode(&mut d)?),
            kind::DONE => Self::Done,
            kind::ENTRIES => Self::Entries(Entries::decode(d.rest())?),
            kind::END => Self::End,
            kind::LINK_TARGET => Self::LinkTarget(
                core::str::from_utf8(d.rest()).map_err(|_| WireError::Field("target"))?,
            ),
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

    /// Every shorter body fails and one extra byte is `Trailing` (`error`
    /// decodes and returns the error, if any). Bodies that end with raw
    /// bytes take any length and are skipped.
    fn check_lengths(frame: &[u8], error: impl Fn(Header, &[u8]) -> Option<WireError>) {
        let (h, body) = split(frame);
        if matches!(
            h.kind,
            kind::WRITE | kind::DATA | kind::ENTRIES | kind::LINK_TARGET
        ) {
            return;
        }
        for cut in 0..body.len() {
            assert!(error(h, &body[..cut]).is_some(), "{h:?} cut at {cut}");
        }
        let mut long = [0u8; 128];
        long[..body.len()].copy_from_slice(body);
        let r = error(h, &long[..body.len() + 1]);
        assert_eq!(r, Some(WireError::Trailing), "{h:?}");
    }

    const META: Metadata = Metadata {
        kind: FileKind::Dir,
        mode: 0o755,
        size: 1 << 40,
        modified_ns: -5,
        accessed_ns: 7,
        changed_ns: 1 << 62,
        device: 0x803,
        inode: u64::MAX,
        links: 2,
    };

    const TIMES: Times = Times {
        accessed: SetTime::Now,
        modified: SetTime::To(-1_500_000_000),
    };

    #[test]
    fn file_requests_round_trip_and_check_lengths() {
        let mut buf = [0u8; 64];
        for r in [
            FileRequest::Read { max: 32768 },
            FileRequest::Write(b"hello"),
            FileRequest::Seek {
                whence: Whence::End,
                offset: -3,
            },
            FileRequest::Fstat,
            FileRequest::Sync,
            FileRequest::SetSize(1 << 33),
            FileRequest::SetTimes(TIMES),
        ] {
            let n = r.encode(&mut buf).unwrap();
            let (h, body) = split(&buf[..n]);
            assert_eq!(FileRequest::decode(h, body), Ok(r));
            check_lengths(&buf[..n], |h, b| FileRequest::decode(h, b).err());
        }
    }

    #[test]
    fn file_requests_refuse_out_of_range_fields() {
        let read =
            |max: u32| FileRequest::decode(Header::new(kind::READ, 4), &max.to_le_bytes()).err();
        assert_eq!(read(0), Some(WireError::Field("max")));
        assert_eq!(read(MAX_BODY as u32 + 1), Some(WireError::Field("max")));
        let mut seek = [0u8; 9];
        seek[0] = 3;
        assert_eq!(
            FileRequest::decode(Header::new(kind::SEEK, 9), &seek),
            Err(WireError::Field("whence"))
        );
        assert_eq!(
            FileRequest::decode(Header::new(kind::STAT, 0), &[]),
            Err(WireError::Kind(kind::STAT))
        );
    }

    #[test]
    fn session_requests_round_trip_and_check_lengths() {
        let mut buf = [0u8; 96];
        let sub = At {
            dir: "sub",
            path: "x",
        };
        for r in [
            SessionRequest::Stat {
                at: At::root("/a"),
                follow: true,
            },
            SessionRequest::Stat {
                at: sub,
                follow: false,
            },
            SessionRequest::ReadDir(At::root("/")),
            SessionRequest::CreateDir(At::root("d")),
            SessionRequest::RemoveFile(sub),
            SessionRequest::RemoveDir(At::root("d")),
            SessionRequest::ReadLink(sub),
            SessionRequest::Rename {
                from: At::root("a"),
                to: At {
                    dir: "é",
                    path: "b",
                },
            },
            SessionRequest::Symlink {
                target: "../t",
                at: sub,
            },
            SessionRequest::HardLink {
                from: sub,
                follow: true,
                to: At::root("h"),
            },
            SessionRequest::SetTimes {
                at: sub,
                follow: false,
                times: TIMES,
            },
        ] {
            let n = r.encode(&mut buf).unwrap();
            assert_eq!(n, r.frame_len());
            let (h, body) = split(&buf[..n]);
            assert_eq!(SessionRequest::decode(h, body), Ok(r));
            check_lengths(&buf[..n], |h, b| SessionRequest::decode(h, b).err());
        }
        assert_eq!(
            SessionRequest::decode(Header::new(kind::READ_DIR, 5), &[0, 0, 1, 0, 0xFF]),
            Err(WireError::Field("path"))
        );
        assert_eq!(
            SessionRequest::decode(Header::new(kind::STAT, 5), &[0, 0, 0, 0, 2]),
            Err(WireError::Field("follow"))
        );
        let times = |how: u8, ns: u64| {
            let mut body = [0u8; 4 + 1 + 18];
            body[5] = how;
            body[6..14].copy_from_slice(&ns.to_le_bytes());
            SessionRequest::decode(Header::new(kind::SET_TIMES, body.len()), &body).map(|_| ())
        };
        assert!(times(2, 5).is_ok());
        assert_eq!(times(1, 5), Err(WireError::Field("time")));
        assert_eq!(times(3, 0), Err(WireError::Field("time")));
        let stat = SessionRequest::ReadDir(At::root("abcdef"));
        assert_eq!(stat.encode(&mut buf[..14]), None);
    }

    #[test]
    fn file_open_params_round_trip() {
        let mut buf = [0u8; 32];
        let p = FileOpen {
            flags: OpenFlags::READ.bits(),
            at: At {
                dir: "d",
                path: "/x/y",
            },
        };
        let n = p.encode(&mut buf).unwrap();
        assert_eq!(n, p.frame_len());
        let params = HEADER + 4;
        assert_eq!(buf[HEADER..params], crate::frame::VERSION.to_le_bytes());
        assert_eq!(FileOpen::decode(&buf[params..n]), Ok(p));
        let cut = FileOpen::decode(&buf[params..n - 1]);
        assert_eq!(cut, Err(WireError::Truncated));
        buf[n] = 0;
        let long = FileOpen::decode(&buf[params..n + 1]);
        assert_eq!(long, Err(WireError::Trailing));
    }

    #[test]
    fn open_flags_follow_their_rules() {
        use OpenFlags as F;
        let ok = |f: F| F::from_bits(f.bits()).is_ok();
        assert!(ok(F::READ));
        assert!(ok(F::WRITE.with(F::CREATE).with(F::TRUNCATE)));
        assert!(ok(F::APPEND.with(F::CREATE)));
        assert!(ok(F::WRITE.with(F::EXCLUSIVE)));
        assert!(ok(F::READ.with(F::CREATE).with(F::EXCLUSIVE)));
        assert!(ok(F::APPEND.with(F::TRUNCATE)));
        assert!(!ok(F::empty()));
        assert!(!ok(F::READ.with(F::TRUNCATE)));
        assert!(ok(F::READ.with(F::NO_FOLLOW)));
        assert_eq!(F::from_bits(128), Err("unknown open flag"));
        assert!(!F::READ.modifies() && F::APPEND.modifies() && F::WRITE.writes());
    }

    #[test]
    fn replies_round_trip_and_check_lengths() {
        let mut buf = [0u8; 96];
        let mut raw = [0u8; 48];
        let entries = [
            DirEntry {
                kind: FileKind::File,
                inode: 12,
                name: "a",
            },
            DirEntry {
                kind: FileKind::Symlink,
                inode: 1 << 40,
                name: "λ",
            },
        ];
        let (n, taken) = encode_entries(&entries, &mut raw);
        assert_eq!(taken, 2);
        let (h, body) = split(&raw[..n]);
        let Ok(Reply::Entries(list)) = Reply::decode(h, body) else {
            panic!("entries did not decode");
        };
        assert!(list.iter().eq(entries.iter().copied()));
        for r in [
            Reply::FileOpened(META),
            Reply::SessionOpened,
            Reply::Data(b"xyz"),
            Reply::Data(b""),
            Reply::Written(7),
            Reply::Position(1 << 33),
            Reply::Metadata(META),
            Reply::Done,
            Reply::Entries(list),
            Reply::End,
            Reply::LinkTarget("../a"),
        ] {
            let n = r.encode(&mut buf).unwrap();
            let (h, body) = split(&buf[..n]);
            assert_eq!(Reply::decode(h, body), Ok(r));
            check_lengths(&buf[..n], |h, b| Reply::decode(h, b).err());
        }
    }

    #[test]
    fn entries_are_checked_and_split_across_frames() {
        let entry = |kind: u8, name: &[u8]| {
            let mut e = [0u8; 12];
            e[0] = kind;
            e[1] = 1;
            e[9..9 + name.len()].copy_from_slice(name);
            (e, 9 + name.len())
        };
        let decode = |(e, n): ([u8; 12], usize)| Entries::decode(&e[..n]).map(|_| ());
        let bad_kind = entry(9, &[1, 0, b'a']);
        assert_eq!(decode(bad_kind), Err(WireError::Field("kind")));
        assert_eq!(decode(entry(0, &[0, 0])), Err(WireError::Field("name")));
        let slash = entry(0, &[1, 0, b'/']);
        assert_eq!(decode(slash), Err(WireError::Field("name")));
        let short = entry(0, &[2, 0, b'a']);
        assert_eq!(decode(short), Err(WireError::Truncated));
        assert_eq!(Entries::decode(&[0, 1, 0]), Err(WireError::Truncated));
        let entries = [DirEntry {
            kind: FileKind::Dir,
            inode: 3,
            name: "0123456789",
        }; 3];
        let mut buf = [0u8; HEADER + 2 * 21 + 5];
        assert_eq!(encode_entries(&entries, &mut buf).1, 2);
        assert_eq!(
            encode_entries(&entries, &mut buf[..HEADER + 5]),
            (HEADER, 0)
        );
    }

    #[test]
    fn metadata_refuses_unknown_kinds() {
        let mut buf = [0u8; 96];
        let n = Reply::Metadata(META).encode(&mut buf).unwrap();
        buf[HEADER] = 4;
        let (h, body) = split(&buf[..n]);
        assert_eq!(Reply::decode(h, body), Err(WireError::Field("kind")));
        assert_eq!(METADATA_LEN, n - HEADER);
    }
}
