//! The boundary between the runtime and the system it runs on: the streams,
//! files, sockets, clocks and randomness that apps reach through WASI and
//! the `weft` module, and the move stream over which the monitor moves the
//! first app ([`Mover`], §19.3). The guest binary implements [`Host`] over
//! `weft-user` (the monitor's streams, PROTOCOL.md §8–§12); the host tests
//! implement it with in-memory files and scripted sockets.
//!
//! Every failure of an app's call is already a WASI errno ([`Errno`]): the
//! implementation maps its own errors (the stream error codes of §6,
//! §13.3), so the runtime never sees them; the move stream's say why in
//! words, for the runtime's report. Nothing here waits except
//! [`Host::wait`] and the move stream's [`Mover::order`] and
//! [`Mover::send`]: socket calls report `Ok(None)` when they would, and the
//! runtime decides whether to suspend the app or return `EAGAIN`.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::net::SocketAddr;
use weft_control::ipc_proto::Guid;

/// A WASI errno (`weft_control::app::errno`), never `SUCCESS`.
pub type Errno = i32;

/// The result of a WASI call: `Err` holds the errno.
pub type WasiResult<T> = Result<T, Errno>;

/// What a waiter wants of a stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Interest {
    /// Data (or the end) to read, or a connection to accept.
    Read,
    /// Room to write.
    Write,
    Both,
}

impl Interest {
    /// The interest that covers both `self` and `other`.
    pub fn union(self, other: Interest) -> Interest {
        if self == other { self } else { Interest::Both }
    }
}

/// A path beneath a directory, what a path names, its metadata, and
/// times to set: the file-system protocol's own (PROTOCOL.md §10).
pub use weft_control::fs_proto::{At, FileKind, Metadata, SetTime, Times};

/// A directory entry: its name, what it names (a symlink not followed)
/// and the inode number.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirEntry {
    pub name: String,
    pub kind: FileKind,
    pub inode: u64,
}

/// How to open a file (the host's open flags, already decided by the
/// runtime from `path_open`'s arguments).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OpenOptions {
    pub read: bool,
    pub write: bool,
    pub create: bool,
    /// Fail if the file exists.
    pub create_new: bool,
    pub truncate: bool,
    pub append: bool,
    /// Fail with `ELOOP` if the last component is a symlink.
    pub no_follow: bool,
}

/// A position to seek to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SeekFrom {
    Start(u64),
    Current(i64),
    End(i64),
}

/// The standard output streams.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    Stdout,
    Stderr,
}

/// An open file. Calls are served in place: their waits are short and
/// bounded by the monitor.
pub trait File<H: Host> {
    /// Reads into `buf`; 0 at the end.
    fn read(&mut self, buf: &mut [u8]) -> WasiResult<usize>;
    /// Writes all of `bytes`.
    fn write_all(&mut self, bytes: &[u8]) -> WasiResult<()>;
    /// Moves the position; the new one.
    fn seek(&mut self, to: SeekFrom) -> WasiResult<u64>;
    fn metadata(&mut self) -> WasiResult<Metadata>;
    /// Flushes the file to storage.
    fn sync(&mut self) -> WasiResult<()>;
    /// Cuts or extends the file to `size` bytes.
    fn set_len(&mut self, size: u64) -> WasiResult<()>;
    fn set_times(&mut self, times: Times) -> WasiResult<()>;
}

/// A stream an app's socket rides on, as the scheduler waits on it.
pub trait Stream<H: Host> {
    /// Whether a call for `interest` would do something now.
    fn ready(&mut self, interest: Interest) -> bool;
    /// The error code the monitor ended the stream with (§9.4), if it did.
    fn status(&self) -> Option<u32>;
}

/// A watch of the fabric (PROTOCOL.md §17.4): a stream of `EVENT` frames.
pub trait Watch<H: Host> {
    /// The next event's whole `EVENT` frame (header included) if one is
    /// there, `Ok(None)` if none is yet.
    fn try_event(&mut self) -> WasiResult<Option<Vec<u8>>>;
    fn stream(&mut self) -> &mut H::Stream;
}

/// What an IPC descriptor delivers (PROTOCOL.md §18): a message to a
/// service, or what became of a message sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IpcItem {
    /// A message to the served service.
    Message {
        id: u64,
        /// Whether it is a request (it must be answered, exactly once).
        request: bool,
        /// Who sent it: a pid `DEVICE:N`, or a device's name.
        sender: String,
        data: Vec<u8>,
    },
    /// Message `request` got this answer (empty for a one-way message,
    /// once queued at a provider).
    Answer { request: u32, data: Vec<u8> },
    /// Message `request` failed: the `IpcError` number and the fabric's
    /// message.
    Failed {
        request: u32,
        error: u32,
        message: String,
    },
}

/// A service this app provides (an `IPC` stream after `SERVING`).
pub trait IpcService<H: Host> {
    /// The next message if one is there, `Ok(None)` if none is yet. The
    /// monitor's `PAUSED` and `RESUMED` frames on the way (§18.3) are
    /// taken and noted ([`Self::paused`]), never returned, and never make
    /// the call wait for a message.
    fn try_message(&mut self) -> WasiResult<Option<IpcItem>>;
    /// Whether the monitor holds the service's messages: it said `PAUSED`
    /// (the app is about to be captured to move) and not `RESUMED` since.
    fn paused(&self) -> bool;
    /// Answers request `id` with `data` (at most `MAX_DATA` bytes,
    /// checked by the runtime).
    fn reply(&mut self, id: u64, data: &[u8]) -> WasiResult<()>;
    /// Refuses request `id`, saying why (at most `MAX_TEXT` bytes).
    fn refuse(&mut self, id: u64, reason: &str) -> WasiResult<()>;
    fn stream(&mut self) -> &mut H::Stream;
}

/// An `IPC` stream for sending (§18).
pub trait IpcSender<H: Host> {
    /// Sends `data` to service `guid` (instance `pid`, or any): a request
    /// waiting at most `timeout_ms` for its answer (0: the default), or
    /// one way (`None`). Its id; the answer comes by [`Self::try_answer`].
    fn submit(
        &mut self,
        guid: Guid,
        pid: Option<&str>,
        data: &[u8],
        timeout_ms: Option<u32>,
    ) -> WasiResult<u32>;
    /// The next answer ([`IpcItem::Answer`] or [`IpcItem::Failed`]) if one
    /// is there, `Ok(None)` if none is yet.
    fn try_answer(&mut self) -> WasiResult<Option<IpcItem>>;
    /// Gives up waiting for request `id`'s answer: it comes as
    /// [`IpcItem::Failed`] with `Cancelled`, unless the answer came first.
    fn cancel(&mut self, id: u32) -> WasiResult<()>;
    fn stream(&mut self) -> &mut H::Stream;
}

/// A frame the monitor sent on the move stream, as it came: its kind and
/// its body. The runtime decodes and checks it ([`crate::mover`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrderFrame {
    /// Its kind (`weft_control::move_proto::kind`).
    pub kind: u16,
    /// Its body, after the header.
    pub body: Vec<u8>,
}

/// The move stream (PROTOCOL.md §19.3): the monitor's orders to start,
/// restore, capture, release and end the first app, and the runtime's
/// reports. Frames pass whole and undecoded, so every check of what the
/// monitor sends is the runtime's ([`crate::mover`]). An `Err` says why the
/// stream failed (the monitor ended it or it broke); the runtime then goes
/// on without moves.
pub trait Mover<H: Host> {
    /// The next order's frame if one is there, `Ok(None)` if none is yet.
    fn try_order(&mut self) -> Result<Option<OrderFrame>, String>;
    /// The next order's frame, waiting for it as long as it takes: only
    /// at the beginning and while the app is held, when nothing else runs.
    fn order(&mut self) -> Result<OrderFrame, String>;
    /// Sends one whole report frame, waiting for room.
    fn send(&mut self, frame: &[u8]) -> Result<(), String>;
    /// Readies the stream for a capture's parts: touches the pages they
    /// will be written to, where that costs (§19.3's `PREPARE`).
    fn ready_send(&mut self);
    /// The stream, as the scheduler waits on it for the next order.
    fn stream(&mut self) -> &mut H::Stream;
}

/// A bound TCP listener.
pub trait Listener<H: Host> {
    /// A waiting connection, `Ok(None)` if none is.
    fn try_accept(&mut self) -> WasiResult<Option<H::Conn>>;
    fn stream(&mut self) -> &mut H::Stream;
}

/// A TCP connection.
pub trait Conn<H: Host> {
    /// Reads what is there into `buf` (`Some(0)` at the end), `Ok(None)`
    /// if nothing is yet.
    fn try_read(&mut self, buf: &mut [u8]) -> WasiResult<Option<usize>>;
    /// Writes what fits of `bytes` (0 if nothing does yet).
    fn try_write(&mut self, bytes: &[u8]) -> WasiResult<usize>;
    /// Ends the write side: the peer reads the end.
    fn shutdown_write(&mut self);
    fn stream(&mut self) -> &mut H::Stream;
}

/// A bound UDP socket (PROTOCOL.md §12): one stream, one datagram per
/// frame. Bound movable (§12.5): it knows whether it follows its app, and
/// its stream may carry the monitor's `PAUSED` and `RESUMED`.
pub trait UdpSocket<H: Host> {
    /// The address it is bound to (the monitor's `BOUND`).
    fn local_addr(&self) -> SocketAddr;
    /// Whether it follows its app when it moves (`BOUND` said `FOLLOWS`:
    /// it is on a fabric address, held by the address's owner).
    fn follows(&self) -> bool;
    /// Whether the monitor holds its datagrams: it said `PAUSED` (the app
    /// is about to be captured) and not `RESUMED` since. No datagram comes
    /// meanwhile.
    fn paused(&self) -> bool;
    /// The next datagram (its sender and payload) if one is there,
    /// `Ok(None)` if none is yet. The monitor's `PAUSED` and `RESUMED`
    /// frames on the way are taken and noted ([`Self::paused`]), never
    /// returned, and never make the call wait for a datagram. An `ERROR`
    /// frame the monitor sent for an earlier send (§12.3) is `Err` with
    /// its errno, once, and the socket goes on; a stream the monitor ended
    /// is `Err` at every call.
    fn try_recv(&mut self) -> WasiResult<Option<(SocketAddr, Vec<u8>)>>;
    /// Sends `payload` (at most `MAX_DATAGRAM` bytes, checked by the
    /// runtime) to `to`. The monitor checks the destination after the send
    /// returns; a refusal comes by [`Self::try_recv`]. Waits only while
    /// the stream's ring is full.
    fn send_to(&mut self, payload: &[u8], to: SocketAddr) -> WasiResult<()>;
    fn stream(&mut self) -> &mut H::Stream;
}

/// The system the runtime runs on. The traits of its parts take the host
/// as a parameter so an implementation can be written for another crate's
/// types. Cloning is cheap and shares the system
/// (the guest's is a unit; a fake shares its state).
pub trait Host: Clone + 'static {
    type File: File<Self>;
    type Stream: Stream<Self>;
    type Listener: Listener<Self>;
    type Conn: Conn<Self>;
    type Udp: UdpSocket<Self>;
    type Watch: Watch<Self>;
    type IpcService: IpcService<Self>;
    type IpcSender: IpcSender<Self>;
    type Mover: Mover<Self>;

    /// Monotonic time, nanoseconds.
    fn monotonic_ns(&self) -> u64;
    /// Wall-clock time, nanoseconds since the Unix epoch.
    fn realtime_ns(&self) -> u64;
    /// The clocks' resolution, nanoseconds.
    fn resolution_ns(&self) -> u64;
    /// Fills `buf` with random bytes; `false` if there is no source.
    fn fill_random(&self, buf: &mut [u8]) -> bool;

    /// Reads standard input into `buf`; 0 at its end.
    fn read_stdin(&self, buf: &mut [u8]) -> WasiResult<usize>;
    /// Writes all of `bytes` to `to`.
    fn write(&self, to: Output, bytes: &[u8]) -> WasiResult<()>;
    /// Whether `to` reaches a terminal (it is then typed a character
    /// device, as wasmtime types a terminal). No by default.
    fn is_terminal(&self, _to: Output) -> bool {
        false
    }
    /// Touches the pages of the runtime's own program (its code and
    /// constants), so that the first event batch of an app restored here
    /// does not pay a page fault (an exit to the monitor) per page of
    /// interpreter code it runs first (PROTOCOL.md §19.3's `PREPARE`).
    /// Nothing by default.
    fn ready_code(&self) {}

    /// Reports a runtime message (a trap, a failed spawn) on standard
    /// error, followed by a newline.
    fn report(&self, message: fmt::Arguments<'_>) {
        let line = alloc::format!("{message}\n");
        // Nothing to do if standard error is gone.
        let _ = self.write(Output::Stderr, line.as_bytes());
    }

    /// Opens the file `at` names (beneath its directory, which is beneath
    /// the root, as every path here).
    fn open(&self, at: At<'_>, how: OpenOptions) -> WasiResult<Self::File>;
    /// What `at` names: with `follow`, what a symlink leads to.
    fn metadata(&self, at: At<'_>, follow: bool) -> WasiResult<Metadata>;
    /// The entries of directory `at` (without `.` and `..`).
    fn read_dir(&self, at: At<'_>) -> WasiResult<Vec<DirEntry>>;
    fn create_dir(&self, at: At<'_>) -> WasiResult<()>;
    fn remove_dir(&self, at: At<'_>) -> WasiResult<()>;
    fn remove_file(&self, at: At<'_>) -> WasiResult<()>;
    fn rename(&self, from: At<'_>, to: At<'_>) -> WasiResult<()>;
    /// The target of symlink `at`, as stored.
    fn read_link(&self, at: At<'_>) -> WasiResult<String>;
    /// Makes a symlink at `at` to `target`.
    fn symlink(&self, target: &str, at: At<'_>) -> WasiResult<()>;
    /// Makes `to` a new name of what `from` names (following a symlink
    /// `from` if `follow`).
    fn hard_link(&self, from: At<'_>, to: At<'_>, follow: bool) -> WasiResult<()>;
    /// Sets the times of `at` (of a symlink itself unless `follow`).
    fn set_times(&self, at: At<'_>, follow: bool, times: Times) -> WasiResult<()>;
    /// The whole file at absolute guest path `path` (a module to spawn).
    fn read_file(&self, path: &str) -> WasiResult<Vec<u8>>;

    /// Listens on `addr` (granted by `--listen`).
    fn bind(&self, addr: SocketAddr) -> WasiResult<Self::Listener>;
    /// Connects to `addr` (granted by `--connect`).
    fn connect(&self, addr: SocketAddr) -> WasiResult<Self::Conn>;
    /// Binds a UDP socket on `addr` (granted by `--listen`; under a
    /// daemon, possibly a fabric address another device serves, §12.4),
    /// movable (`UDP_BIND` with `MOVABLE`, §12.5): whether it follows the
    /// app is the socket's [`UdpSocket::follows`].
    fn udp_bind(&self, addr: SocketAddr) -> WasiResult<Self::Udp>;

    /// Makes one fabric call (PROTOCOL.md §17): sends `frames` (one call's
    /// request frames, already checked) and returns the whole reply frame,
    /// waiting for it. `ENOTCAPABLE` where the guest is no device of a
    /// fabric.
    fn fabric(&self, frames: &[u8]) -> WasiResult<Vec<u8>>;

    /// Starts a watch of the fabric (§17.4): a stream whose `WATCH` was
    /// answered `WATCHING`. `ENOTCAPABLE` where the guest is no device of
    /// a fabric.
    fn fabric_watch(&self) -> WasiResult<Self::Watch>;

    /// Provides service `guid`, shown as `name` (1 to `MAX_NAME` bytes,
    /// checked by the runtime), on an `IPC` stream of its own (§18).
    /// `ENOTCAPABLE` where the guest is no device of a fabric, `EACCES`
    /// if the service is not this program's to provide.
    fn ipc_serve(&self, guid: Guid, name: &str) -> WasiResult<Self::IpcService>;

    /// Opens an `IPC` stream for sending (§18). `ENOTCAPABLE` where the
    /// guest is no device of a fabric.
    fn ipc_open(&self) -> WasiResult<Self::IpcSender>;

    /// Opens the move stream (§19.3), before the first app is made:
    /// `None` where apps do not move (under `weft run` the monitor refuses
    /// it, `Unsupported`) or it cannot be opened.
    fn mover(&self) -> Option<Self::Mover>;

    /// Sleeps until one of `streams` is ready for its interest (or ended),
    /// or `timeout_ns` passed (`None`: no limit).
    fn wait(&self, streams: &mut [(&mut Self::Stream, Interest)], timeout_ns: Option<u64>);
}
