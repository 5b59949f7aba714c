//! An app's file descriptors: 0–2 the standard streams, 3 the root
//! directory (the `--fs-root` directory, preopened as `/`; without
//! `--fs-root` too, so that a program reaching for a file is told which
//! option grants files), for the first
//! app the listeners `--listen` granted (4, 5, … in the order given), then
//! what it opens. Files and sockets are the [`Host`]'s; a directory
//! descriptor is only a path (for `*at` calls and `fd_readdir`), and the
//! paths resolved from it stay beneath it ([`Path`]).
//!
//! A granted listener binds on its first use, so an app that listens on the
//! same address itself (`weft.tcp_listen`) does not collide with it.
//!
//! When an app moves (PROTOCOL.md §19), its descriptors keep their
//! numbers: a restore puts each IPC end and each UDP socket on a fabric
//! address back at its number ([`Fds::insert_at`]) and closes the numbers
//! of those that could not follow ([`Fds::close_at`]), in place of this
//! device's grants there. Those that follow must be settled before the
//! capture ([`Fds::settle`]).
//!
//! Reads, writes and accepts on sockets never wait here: they report
//! `Ok(None)` when they would, and the caller either fails with `EAGAIN`
//! (a non-blocking descriptor) or suspends the app until the stream is
//! ready. Files and the standard streams are served in place: their
//! waits are short and bounded by the monitor.

use crate::host::{
    At, Conn, File, FileKind, Host, Interest, Listener, Metadata, OpenOptions, Output, SeekFrom,
    WasiResult, Watch,
};
use crate::ipc_end::{self, IpcEnd};
use crate::lines::Lines;
use crate::udp::{self, UdpEnd};
use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::net::SocketAddr;
use weft_control::app::{errno, moved};
use weft_control::snapshot::Descriptor;

/// The preopened root directory's descriptor and name.
pub const ROOT_FD: i32 = 3;
pub const ROOT_NAME: &str = "/";

/// WASI file types.
pub mod filetype {
    pub const UNKNOWN: u8 = 0;
    pub const CHARACTER_DEVICE: u8 = 2;
    pub const DIRECTORY: u8 = 3;
    pub const REGULAR_FILE: u8 = 4;
    pub const SOCKET_DGRAM: u8 = 5;
    pub const SOCKET_STREAM: u8 = 6;
    pub const SYMBOLIC_LINK: u8 = 7;
}

/// The `fdflags` bit for non-blocking I/O.
pub const NONBLOCK: u16 = 1 << 2;

/// One open descriptor.
pub enum Fd<H: Host> {
    Stdin,
    Stdout,
    Stderr,
    /// A directory, by its absolute guest path.
    Dir(String),
    /// Boxed: a file may be much larger than the other kinds.
    File(Box<H::File>, Access),
    /// A listener `--listen` granted, not bound yet.
    Grant(SocketAddr),
    Listener {
        listener: Box<H::Listener>,
        nonblock: bool,
    },
    Conn {
        conn: Box<H::Conn>,
        nonblock: bool,
    },
    /// A watch of the fabric (always non-blocking).
    Watch(Box<H::Watch>),
    /// An `IPC` stream: a service provided, or one for sending.
    Ipc(Box<IpcEnd<H>>),
    /// A bound UDP socket (always non-blocking).
    Udp(Box<UdpEnd<H>>),
}

/// What an open file may be used for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Access {
    pub read: bool,
    pub write: bool,
    /// Every write goes to the end.
    pub append: bool,
    /// Only noted and reported: a file never makes its app wait long.
    pub nonblock: bool,
}

/// The rights `fd_fdstat_get` reports, as wasmtime's: every right (30 bits)
/// for a file open for reading and writing, less `fd_write` for one open
/// only for reading, less `fd_read` and `fd_readdir` for one open only for
/// writing; for a directory, every right
/// but seeking, writing and setting sizes; the preopened root's own.
pub mod rights {
    pub const ALL: u64 = (1 << 30) - 1;
    pub const FD_READ: u64 = 1 << 1;
    pub const FD_WRITE: u64 = 1 << 6;
    pub const FD_READDIR: u64 = 1 << 14;
    pub const DIRECTORY: u64 = 0x3FB7_FFBB;
    pub const ROOT: u64 = 0x07B7_FE00;
    pub const ROOT_INHERITING: u64 = 0x0FF7_FFFF;
}

/// The `fdflags` bits: appending, and the synchronous writes no
/// descriptor here offers.
pub const APPEND: u16 = 1;
pub const SYNCS: u16 = 2 | 8 | 16;

/// A path beneath a directory descriptor's directory: the directory's
/// absolute guest path and the path relative to it, which the monitor
/// resolves without leaving the directory (PROTOCOL.md §10.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Path {
    pub dir: String,
    pub path: String,
}

impl Path {
    /// The path as the host takes it.
    pub fn at(&self) -> At<'_> {
        At {
            dir: &self.dir,
            path: &self.path,
        }
    }

    /// The absolute guest path (for a directory descriptor opened here):
    /// the two joined, `.` components dropped.
    fn joined(&self) -> String {
        let mut out = String::from(self.dir.trim_end_matches('/'));
        for part in self.path.split('/').filter(|p| !p.is_empty() && *p != ".") {
            out.push('/');
            out.push_str(part);
        }
        if out.is_empty() {
            out.push('/');
        }
        out
    }
}

/// The descriptor table. Invariant: a closed descriptor's slot is `None`
/// and is the first reused by [`Fds::insert`]; 0–3 are open from the start.
pub struct Fds<H: Host> {
    host: H,
    table: Vec<Option<Fd<H>>>,
    /// What was written to standard output and error after the last
    /// newline.
    lines: Lines,
    /// The number the preopened root has (it can be renumbered or
    /// closed).
    preopen: Option<i32>,
}

/// The WASI file type of `kind`.
pub fn filetype_of(kind: FileKind) -> u8 {
    match kind {
        FileKind::File => filetype::REGULAR_FILE,
        FileKind::Dir => filetype::DIRECTORY,
        FileKind::Symlink => filetype::SYMBOLIC_LINK,
        FileKind::Other => filetype::UNKNOWN,
    }
}

impl<H: Host> Fds<H> {
    /// The standard streams, the root, and a descriptor for each of
    /// `grants`, over `host`.
    pub fn new(host: H, grants: impl IntoIterator<Item = SocketAddr>) -> Self {
        let mut table = alloc::vec![
            Some(Fd::Stdin),
            Some(Fd::Stdout),
            Some(Fd::Stderr),
            Some(Fd::Dir(String::from(ROOT_NAME))),
        ];
        table.extend(grants.into_iter().map(|a| Some(Fd::Grant(a))));
        Self {
            host,
            table,
            lines: Lines::default(),
            preopen: Some(ROOT_FD),
        }
    }

    /// What each open descriptor past the root's is to a move (PROTOCOL.md
    /// §19.1), by ascending number: an IPC end and a UDP socket that
    /// follows (one on a fabric address, §12.5) follow the app, anything
    /// else (a file, a directory, a TCP listener or connection, another
    /// UDP socket, a fabric watch) is closed at the destination and the
    /// app told. A listener granted and not yet bound is the device's, as
    /// the root is: it has no record, and a restored app gets its new
    /// device's grants.
    pub fn moving(&self) -> impl Iterator<Item = (u32, Descriptor<'_>)> + '_ {
        let closed = |what| Some(Descriptor::Closed { what });
        self.table
            .iter()
            .enumerate()
            .skip((ROOT_FD + 1) as usize)
            .filter_map(move |(i, slot)| {
                let d = match slot.as_ref()? {
                    Fd::Ipc(end) => Some(end.descriptor()),
                    Fd::Udp(end) if end.follows() => Some(Descriptor::udp(end.local_addr())),
                    Fd::Grant(_) => None,
                    Fd::Dir(_) => closed(moved::DIRECTORY),
                    Fd::File(..) => closed(moved::FILE),
                    Fd::Listener { .. } => closed(moved::TCP_LISTENER),
                    Fd::Conn { .. } => closed(moved::TCP_CONNECTION),
                    Fd::Watch(_) => closed(moved::FABRIC_WATCH),
                    Fd::Udp(_) => closed(moved::UDP_SOCKET),
                    // Only ever at 0–2.
                    Fd::Stdin | Fd::Stdout | Fd::Stderr => None,
                };
                Some((u32::try_from(i).ok()?, d?))
            })
    }

    /// Settles every descriptor that follows the app ([`IpcEnd::settle`],
    /// [`UdpEnd::settle`]); the first that is not: which, and why.
    pub fn settle(&mut self) -> Result<(), Unsettled> {
        for (i, slot) in self.table.iter_mut().enumerate() {
            let fd = i as i32;
            match slot {
                Some(Fd::Ipc(end)) => end.settle().map_err(|why| Unsettled::Ipc {
                    fd,
                    service: end.is_service(),
                    why,
                })?,
                Some(Fd::Udp(end)) if end.follows() => {
                    end.settle().map_err(|why| Unsettled::Udp { fd, why })?;
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Whether `fd` is open and follows the app when it moves (an IPC end,
    /// a following UDP socket).
    pub fn follows(&mut self, fd: i32) -> bool {
        match self.get(fd) {
            Ok(Fd::Ipc(_)) => true,
            Ok(Fd::Udp(end)) => end.follows(),
            _ => false,
        }
    }

    /// Puts `fd` at number `fd` (4 or more), in place of what is there (a
    /// listener granted here, which the app never saw at that number).
    pub fn insert_at(&mut self, at: u32, fd: Fd<H>) -> WasiResult<()> {
        let i = usize::try_from(at).map_err(|_| errno::BADF)?;
        if at <= ROOT_FD as u32 || at > i32::MAX as u32 {
            return Err(errno::BADF);
        }
        if self.table.len() <= i {
            self.table.resize_with(i + 1, || None);
        }
        self.table[i] = Some(fd);
        Ok(())
    }

    /// Closes number `at` past the root's, whatever is there (a listener
    /// granted here), so a later use of it is `EBADF` until it is reused.
    pub fn close_at(&mut self, at: u32) {
        if at > ROOT_FD as u32
            && let Some(slot) = usize::try_from(at).ok().and_then(|i| self.table.get_mut(i))
        {
            *slot = None;
        }
    }

    pub fn get(&mut self, fd: i32) -> WasiResult<&mut Fd<H>> {
        usize::try_from(fd)
            .ok()
            .and_then(|i| self.table.get_mut(i))
            .and_then(Option::as_mut)
            .ok_or(errno::BADF)
    }

    pub fn insert(&mut self, fd: Fd<H>) -> i32 {
        let i = match self.table.iter().position(Option::is_none) {
            Some(i) => i,
            None => {
                self.table.push(None);
                self.table.len() - 1
            }
        };
        self.table[i] = Some(fd);
        i as i32
    }

    pub fn close(&mut self, fd: i32) -> WasiResult<()> {
        self.get(fd)?;
        self.table[fd as usize] = None;
        if self.preopen == Some(fd) {
            self.preopen = None;
        }
        Ok(())
    }

    /// Whether `fd` is the preopened root (`fd_prestat_get`): `EBADF` if
    /// not, `ENOTDIR` if it is open but no preopen (as wasmtime's
    /// `fd_prestat_dir_name`) when `open_is_notdir`.
    pub fn preopened(&mut self, fd: i32, open_is_notdir: bool) -> WasiResult<()> {
        if self.preopen == Some(fd) {
            return Ok(());
        }
        match self.get(fd) {
            Ok(_) if open_is_notdir => Err(errno::NOTDIR),
            _ => Err(errno::BADF),
        }
    }

    /// `path` beneath directory `dir`: `EBADF` if `dir` is not a
    /// directory, `EPERM` for an absolute path (WASI paths are relative to
    /// their directory descriptor).
    pub fn resolve(&mut self, dir: i32, path: &str) -> WasiResult<Path> {
        let Fd::Dir(base) = self.get(dir)? else {
            return Err(errno::BADF);
        };
        if path.starts_with('/') {
            return Err(errno::PERM);
        }
        Ok(Path {
            dir: base.clone(),
            path: String::from(path),
        })
    }

    /// `path_open`: a file (opened as asked) or a directory.
    pub fn open(&mut self, path: &Path, want: Open) -> WasiResult<i32> {
        let kind = match self.host.metadata(path.at(), want.follow) {
            Ok(m) => Some(m.kind),
            Err(errno::NOENT) if want.create => None,
            Err(e) => return Err(e),
        };
        if kind.is_some() && want.create && want.exclusive {
            return Err(errno::EXIST);
        }
        match kind {
            Some(FileKind::Dir) if want.write || want.truncate || want.create => {
                return Err(errno::ISDIR);
            }
            Some(FileKind::Dir) => return Ok(self.insert(Fd::Dir(path.joined()))),
            Some(FileKind::Symlink) => return Err(errno::LOOP),
            _ if want.directory => return Err(errno::NOTDIR),
            _ => {}
        }
        // As wasmtime: a file opened to create it is opened for writing too.
        let write = want.write || want.create;
        let read = want.read || !write;
        let file = self.host.open(
            path.at(),
            OpenOptions {
                read,
                write,
                create: want.create,
                create_new: want.create && want.exclusive,
                truncate: want.truncate,
                append: want.append,
                no_follow: !want.follow,
            },
        )?;
        let access = Access {
            read,
            write: write || want.append,
            append: want.append,
            nonblock: want.nonblock,
        };
        Ok(self.insert(Fd::File(Box::new(file), access)))
    }

    /// `fd_renumber`: `from` takes number `to`, closing what was there;
    /// both must be open.
    pub fn renumber(&mut self, from: i32, to: i32) -> WasiResult<()> {
        self.get(from)?;
        self.get(to)?;
        if from != to {
            let fd = self.table[from as usize].take();
            self.table[to as usize] = fd;
            if self.preopen == Some(to) {
                self.preopen = None;
            }
            if self.preopen == Some(from) {
                self.preopen = Some(to);
            }
        }
        Ok(())
    }

    /// For `poll_oneoff`, a descriptor with no stream to wait on: files
    /// and the standard streams are always ready, with the bytes a file
    /// has left to read (1 where that is unknown); anything else fails the
    /// whole call with `EBADF`, as under wasmtime.
    pub fn always_ready(&mut self, fd: i32, interest: Interest) -> WasiResult<u64> {
        match self.get(fd)? {
            Fd::File(f, _) if interest == Interest::Read => {
                let at = f.seek(SeekFrom::Current(0))?;
                Ok(f.metadata()?.size.saturating_sub(at))
            }
            Fd::File(..) | Fd::Stdin | Fd::Stdout | Fd::Stderr => Ok(1),
            _ => Err(errno::BADF),
        }
    }

    /// Whether `fd` is a socket (`EBADF` if it is not open).
    pub fn is_socket(&mut self, fd: i32) -> WasiResult<bool> {
        Ok(matches!(
            self.get(fd)?,
            Fd::Grant(_) | Fd::Listener { .. } | Fd::Conn { .. } | Fd::Udp(_)
        ))
    }

    /// Reads into `buf`: `Ok(None)` if a socket has nothing yet.
    pub fn read(&mut self, fd: i32, buf: &mut [u8]) -> WasiResult<Option<usize>> {
        match self.get(fd)? {
            Fd::Stdin => self.host.read_stdin(buf).map(Some),
            Fd::File(f, access) if access.read => f.read(buf).map(Some),
            Fd::Conn { conn, .. } => conn.try_read(buf),
            Fd::Dir(_) | Fd::File(..) => Err(errno::BADF),
            Fd::Grant(_) | Fd::Listener { .. } => Err(errno::NOTCONN),
            Fd::Stdout | Fd::Stderr | Fd::Watch(_) | Fd::Ipc(_) | Fd::Udp(_) => Err(errno::BADF),
        }
    }

    /// Writes `bytes` (a socket: what fits): `Ok(None)` if a socket has no
    /// room yet.
    pub fn write(&mut self, fd: i32, bytes: &[u8]) -> WasiResult<Option<usize>> {
        let to = match self.get(fd)? {
            Fd::Stdout => Output::Stdout,
            Fd::Stderr => Output::Stderr,
            Fd::File(f, access) if access.write => {
                if access.append {
                    f.seek(SeekFrom::End(0))?;
                }
                return f.write_all(bytes).map(|()| Some(bytes.len()));
            }
            Fd::Conn { conn, .. } => {
                return match conn.try_write(bytes)? {
                    0 if !bytes.is_empty() => Ok(None),
                    n => Ok(Some(n)),
                };
            }
            Fd::Dir(_) | Fd::File(..) => return Err(errno::BADF),
            Fd::Grant(_) | Fd::Listener { .. } => return Err(errno::NOTCONN),
            Fd::Stdin | Fd::Watch(_) | Fd::Ipc(_) | Fd::Udp(_) => return Err(errno::BADF),
        };
        self.lines.write(&self.host, to, bytes)?;
        Ok(Some(bytes.len()))
    }

    /// Writes what the app wrote to standard output or error after its
    /// last newline: it stops running (the end of its turn, a wait).
    pub fn flush_output(&mut self) {
        // A failing output fails the app's next write to it.
        let _ = self.lines.flush(&self.host);
    }

    /// Takes a connection from listener `fd` (binding a granted one first):
    /// `Ok(None)` if none is waiting.
    pub fn accept(&mut self, fd: i32) -> WasiResult<Option<H::Conn>> {
        self.bind_grant(fd)?;
        match self.get(fd)? {
            Fd::Listener { listener, .. } => listener.try_accept(),
            _ => Err(errno::NOTSOCK),
        }
    }

    /// Binds `fd` if it is a granted listener not bound yet.
    fn bind_grant(&mut self, fd: i32) -> WasiResult<()> {
        if let Fd::Grant(addr) = *self.get(fd)? {
            let listener = Box::new(self.host.bind(addr)?);
            self.table[fd as usize] = Some(Fd::Listener {
                listener,
                nonblock: false,
            });
        }
        Ok(())
    }

    /// The `fdflags` of `fd`: `NONBLOCK` for a non-blocking socket,
    /// `APPEND` for a file opened to append.
    pub fn fd_flags(&mut self, fd: i32) -> WasiResult<u16> {
        if let Fd::File(_, access) = self.get(fd)? {
            let append = if access.append { APPEND } else { 0 };
            return Ok(append | if access.nonblock { NONBLOCK } else { 0 });
        }
        Ok(if self.nonblocking(fd)? { NONBLOCK } else { 0 })
    }

    /// The rights of `fd`, base and inheriting ([`rights`]).
    pub fn rights(&mut self, fd: i32) -> WasiResult<(u64, u64)> {
        use rights::*;
        let both = |r| (r, r);
        Ok(match self.get(fd)? {
            Fd::Stdin => (FD_READ, 0),
            Fd::Stdout | Fd::Stderr => (FD_WRITE, 0),
            Fd::Dir(_) if fd == ROOT_FD => (ROOT, ROOT_INHERITING),
            Fd::Dir(_) => both(DIRECTORY),
            Fd::File(_, access) => {
                let mut r = ALL;
                if !access.read {
                    r &= !(FD_READ | FD_READDIR);
                }
                if !access.write {
                    r &= !FD_WRITE;
                }
                both(r)
            }
            _ => both(ALL),
        })
    }

    /// Whether `fd` is non-blocking.
    pub fn nonblocking(&mut self, fd: i32) -> WasiResult<bool> {
        Ok(match self.get(fd)? {
            Fd::Listener { nonblock, .. } | Fd::Conn { nonblock, .. } => *nonblock,
            _ => false,
        })
    }

    /// `fd_fdstat_set_flags`: `NONBLOCK` on sockets and files, `APPEND`
    /// on files (writes then go to the end); the synchronous-write flags
    /// are `EINVAL`, anything but a file or socket `EBADF`.
    pub fn set_flags(&mut self, fd: i32, flags: u16) -> WasiResult<()> {
        self.bind_grant(fd)?;
        match self.get(fd)? {
            Fd::Listener { nonblock, .. } | Fd::Conn { nonblock, .. } => {
                *nonblock = flags & NONBLOCK != 0;
            }
            Fd::File(_, _) if flags & SYNCS != 0 => return Err(errno::INVAL),
            Fd::File(_, access) => {
                access.nonblock = flags & NONBLOCK != 0;
                access.append = flags & APPEND != 0;
            }
            Fd::Udp(_) | Fd::Watch(_) | Fd::Ipc(_) => {}
            _ => return Err(errno::BADF),
        }
        Ok(())
    }

    /// `sock_shutdown`: the write side ends (the peer reads end-of-file);
    /// shutting the read side only is accepted and changes nothing.
    pub fn shutdown(&mut self, fd: i32, how: u8) -> WasiResult<()> {
        match self.get(fd)? {
            Fd::Conn { conn, .. } => {
                if how & 2 != 0 {
                    conn.shutdown_write();
                }
                Ok(())
            }
            Fd::Grant(_) | Fd::Listener { .. } => Err(errno::NOTCONN),
            _ => Err(errno::NOTSOCK),
        }
    }

    /// The stream behind socket `fd` (binding a granted listener first), to
    /// wait on it.
    pub fn stream(&mut self, fd: i32) -> Option<&mut H::Stream> {
        self.bind_grant(fd).ok()?;
        match self.get(fd).ok()? {
            Fd::Listener { listener, .. } => Some(listener.stream()),
            Fd::Conn { conn, .. } => Some(conn.stream()),
            Fd::Watch(watch) => Some(watch.stream()),
            Fd::Ipc(end) => Some(end.stream()),
            Fd::Udp(end) => Some(end.stream()),
            _ => None,
        }
    }

    /// IPC descriptor `fd`; `EBADF` for another descriptor.
    pub fn ipc(&mut self, fd: i32) -> WasiResult<&mut IpcEnd<H>> {
        match self.get(fd)? {
            Fd::Ipc(end) => Ok(end),
            _ => Err(errno::BADF),
        }
    }

    /// Whether `fd` is an IPC or UDP descriptor holding something taken
    /// but not delivered (readable whatever its stream says).
    pub fn pending(&mut self, fd: i32) -> bool {
        match self.get(fd) {
            Ok(Fd::Ipc(end)) => end.has_pending(),
            Ok(Fd::Udp(end)) => end.held(),
            _ => false,
        }
    }

    /// The next event of watch `fd`: its `EVENT` frame, `Ok(None)` if none
    /// is there yet; `EBADF` for another descriptor.
    pub fn watch_event(&mut self, fd: i32) -> WasiResult<Option<Vec<u8>>> {
        match self.get(fd)? {
            Fd::Watch(watch) => watch.try_event(),
            _ => Err(errno::BADF),
        }
    }

    /// The streams of the sockets among `wanted`, each once, to wait on
    /// them together; with `pauses`, also for reading the streams of the
    /// services and following UDP sockets that wait for the monitor's
    /// `PAUSED` (a capture waits for them, [`IpcEnd::awaits_pause`],
    /// [`UdpEnd::awaits_pause`]).
    pub fn streams_for<'a>(
        &'a mut self,
        wanted: &[(i32, Interest)],
        pauses: bool,
        out: &mut Vec<(&'a mut H::Stream, Interest)>,
    ) {
        for (i, slot) in self.table.iter_mut().enumerate() {
            let mut want = wanted
                .iter()
                .filter(|(fd, _)| *fd as usize == i)
                .map(|&(_, interest)| interest)
                .reduce(Interest::union);
            let awaits = pauses
                && match slot {
                    Some(Fd::Ipc(end)) => end.awaits_pause(),
                    Some(Fd::Udp(end)) => end.awaits_pause(),
                    _ => false,
                };
            if awaits {
                want = Some(want.map_or(Interest::Read, |w| w.union(Interest::Read)));
            }
            let Some(interest) = want else { continue };
            match slot {
                Some(Fd::Listener { listener, .. }) => out.push((listener.stream(), interest)),
                Some(Fd::Conn { conn, .. }) => out.push((conn.stream(), interest)),
                Some(Fd::Watch(watch)) => out.push((watch.stream(), interest)),
                Some(Fd::Ipc(end)) => out.push((end.stream(), interest)),
                Some(Fd::Udp(end)) => out.push((end.stream(), interest)),
                _ => {}
            }
        }
    }

    /// How many sockets are open.
    pub fn sockets(&self) -> usize {
        self.table
            .iter()
            .filter(|f| matches!(f, Some(Fd::Listener { .. } | Fd::Conn { .. } | Fd::Udp(_))))
            .count()
    }

    pub fn seek(&mut self, fd: i32, to: SeekFrom) -> WasiResult<u64> {
        match self.get(fd)? {
            Fd::File(f, _) => f.seek(to),
            Fd::Dir(_) => Err(errno::BADF),
            _ => Err(errno::SPIPE),
        }
    }

    /// The file type and metadata (none for the standard streams and
    /// sockets).
    pub fn stat(&mut self, fd: i32) -> WasiResult<(u8, Option<Metadata>)> {
        match self.get(fd)? {
            Fd::Grant(_) | Fd::Listener { .. } | Fd::Conn { .. } => {
                Ok((filetype::SOCKET_STREAM, None))
            }
            Fd::Udp(_) => Ok((filetype::SOCKET_DGRAM, None)),
            Fd::File(f, _) => f.metadata().map(|m| (filetype_of(m.kind), Some(m))),
            Fd::Dir(path) => {
                let path = path.clone();
                self.host
                    .metadata(At::root(&path), true)
                    .map(|m| (filetype::DIRECTORY, Some(m)))
            }
            Fd::Stdout => Ok((self.output_type(Output::Stdout), None)),
            Fd::Stderr => Ok((self.output_type(Output::Stderr), None)),
            _ => Ok((filetype::UNKNOWN, None)),
        }
    }

    /// `fd_sync`: only a file (wasmtime: `EBADF` for anything else).
    pub fn sync(&mut self, fd: i32) -> WasiResult<()> {
        self.file(fd)?.0.sync()
    }

    /// The file type of standard output or error: a character device if
    /// it reaches a terminal, else unknown (as wasmtime types a pipe or
    /// file).
    fn output_type(&self, to: Output) -> u8 {
        if self.host.is_terminal(to) {
            filetype::CHARACTER_DEVICE
        } else {
            filetype::UNKNOWN
        }
    }

    /// Open file `fd` (`EBADF` for anything else) and what it may do.
    pub fn file(&mut self, fd: i32) -> WasiResult<(&mut H::File, Access)> {
        match self.get(fd)? {
            Fd::File(f, access) => Ok((f, *access)),
            _ => Err(errno::BADF),
        }
    }

    /// The directory `fd` is, as a path to act on itself.
    pub fn dir_itself(&mut self, fd: i32) -> WasiResult<Path> {
        match self.get(fd)? {
            Fd::Dir(path) => Ok(Path {
                dir: path.clone(),
                path: String::new(),
            }),
            _ => Err(errno::BADF),
        }
    }

    /// The entries of directory `fd` (name, file type, inode): `.` and
    /// `..` first, then the host's. `..` of the root is the root.
    pub fn entries(&mut self, fd: i32) -> WasiResult<Vec<(String, u8, u64)>> {
        let Fd::Dir(path) = self.get(fd)? else {
            return Err(errno::BADF);
        };
        let path = path.clone();
        let here = At::root(&path);
        let inode = |at: At<'_>| self.host.metadata(at, true).map(|m| m.inode);
        let own = inode(here)?;
        let up = At {
            dir: &path,
            path: "..",
        };
        let parent = inode(up).unwrap_or(own);
        let mut out = alloc::vec![
            (String::from("."), filetype::DIRECTORY, own),
            (String::from(".."), filetype::DIRECTORY, parent),
        ];
        for e in self.host.read_dir(here)? {
            out.push((e.name, filetype_of(e.kind), e.inode));
        }
        Ok(out)
    }
}

/// A descriptor that follows the app and is not settled: its number and
/// why (a service's or a sending IPC descriptor, or a UDP socket).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unsettled {
    Ipc {
        fd: i32,
        service: bool,
        why: ipc_end::Unsettled,
    },
    Udp {
        fd: i32,
        why: udp::Unsettled,
    },
}

impl fmt::Display for Unsettled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ipc { fd, service, why } => {
                let side = if *service { "service" } else { "sending" };
                write!(f, "its {side} descriptor {fd} {why}")
            }
            Self::Udp { fd, why } => write!(f, "its UDP socket {fd} {why}"),
        }
    }
}

/// What `path_open` asks for.
#[derive(Clone, Copy, Debug, Default)]
pub struct Open {
    pub read: bool,
    pub write: bool,
    pub create: bool,
    pub directory: bool,
    pub exclusive: bool,
    pub truncate: bool,
    pub append: bool,
    /// Follow a symlink as the last component (`ELOOP` if not and it is
    /// one).
    pub follow: bool,
    /// `NONBLOCK` was given (noted, and reported by `fd_fdstat_get`).
    pub nonblock: bool,
}

/// What the app wrote last reaches its output when it ends.
impl<H: Host> Drop for Fds<H> {
    fn drop(&mut self) {
        self.flush_output();
    }
}
