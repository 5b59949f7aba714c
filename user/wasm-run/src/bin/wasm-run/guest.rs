//! The runtime's [`Host`] in the guest: `weft-user`'s standard streams,
//! file, TCP and UDP streams (PROTOCOL.md §8–§12), fabric calls (§17), IPC
//! streams (§18), the move stream (§19.3), clocks and random bytes. The
//! monitor's refusals (stream error codes, §6) become the WASI errnos of
//! §13.3 here, and nowhere else.

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::net::SocketAddr;
use embedded_io::{Read, Seek, Write};
use weft_control::app::errno;
use weft_control::frame;
use weft_user::fabric::{Fabric, FabricError, Watch};
use weft_user::fs::{self, OpenOptions as FsOpen};
use weft_user::ipc::{Guid, Ipc, IpcError, IpcFailure, Service, To};
use weft_user::net::{TcpListener, TcpStream, UdpSocket};
use weft_user::stream::{self, Stream};
use weft_user::{Code, Error, time};
use weft_wasm_run::Host;
use weft_wasm_run::host::{
    self, At, Conn, DirEntry, Interest, IpcItem, Listener, Metadata, OpenOptions, OrderFrame,
    Output, SeekFrom, Times, WasiResult,
};

/// The guest's system: every call goes to `weft-user`.
#[derive(Clone, Copy, Debug)]
pub struct Guest;

/// The WASI errno for a stream error; a refusal for want of a grant is
/// told on standard error first ([`crate::refusal`]).
fn errno_for(e: &Error) -> i32 {
    crate::refusal::note(e);
    match e.code() {
        Code::NotFound => errno::NOENT,
        Code::Exists => errno::EXIST,
        Code::NotDirectory => errno::NOTDIR,
        Code::IsDirectory => errno::ISDIR,
        Code::NotEmpty => errno::NOTEMPTY,
        Code::PermissionDenied => errno::ACCES,
        // As wasmtime, whose read-only directories refuse with EPERM.
        Code::ReadOnly => errno::PERM,
        Code::NotPermitted => errno::PERM,
        Code::Escape => errno::PERM,
        Code::Loop => errno::LOOP,
        Code::NameTooLong => errno::NAMETOOLONG,
        Code::Invalid => errno::INVAL,
        Code::Unsupported => errno::NOTCAPABLE,
        Code::TooLarge => errno::FBIG,
        Code::QuotaExceeded => errno::DQUOT,
        Code::NotAllowed => errno::ACCES,
        Code::AddressInUse => errno::ADDRINUSE,
        Code::ConnectionRefused => errno::CONNREFUSED,
        Code::ConnectionReset => errno::CONNRESET,
        Code::Unreachable => errno::HOSTUNREACH,
        Code::TimedOut => errno::TIMEDOUT,
        Code::Closed => errno::PIPE,
        Code::NoSlots => errno::MFILE,
        Code::OverBudget => errno::NFILE,
        _ => errno::IO,
    }
}

fn wasi<T>(r: Result<T, Error>) -> WasiResult<T> {
    r.map_err(|e| errno_for(&e))
}

fn interest_of(i: Interest) -> stream::Interest {
    match i {
        Interest::Read => stream::Interest::Read,
        Interest::Write => stream::Interest::Write,
        Interest::Both => stream::Interest::Both,
    }
}

impl host::File<Guest> for fs::File {
    fn read(&mut self, buf: &mut [u8]) -> WasiResult<usize> {
        wasi(Read::read(self, buf))
    }

    fn write_all(&mut self, bytes: &[u8]) -> WasiResult<()> {
        wasi(Write::write_all(self, bytes))
    }

    fn seek(&mut self, to: SeekFrom) -> WasiResult<u64> {
        let to = match to {
            SeekFrom::Start(n) => embedded_io::SeekFrom::Start(n),
            SeekFrom::Current(n) => embedded_io::SeekFrom::Current(n),
            SeekFrom::End(n) => embedded_io::SeekFrom::End(n),
        };
        wasi(Seek::seek(self, to))
    }

    fn metadata(&mut self) -> WasiResult<Metadata> {
        wasi(fs::File::metadata(self))
    }

    fn sync(&mut self) -> WasiResult<()> {
        wasi(self.sync_all())
    }

    fn set_len(&mut self, size: u64) -> WasiResult<()> {
        wasi(fs::File::set_len(self, size))
    }

    fn set_times(&mut self, times: Times) -> WasiResult<()> {
        wasi(fs::File::set_times(self, times))
    }
}

impl host::Stream<Guest> for Stream {
    fn ready(&mut self, interest: Interest) -> bool {
        Stream::ready(self, interest_of(interest))
    }

    fn status(&self) -> Option<u32> {
        Stream::status(self).map(|code| code as u32)
    }
}

impl Listener<Guest> for TcpListener {
    fn try_accept(&mut self) -> WasiResult<Option<TcpStream>> {
        Ok(wasi(TcpListener::try_accept(self))?.map(|(conn, _)| conn))
    }

    fn stream(&mut self) -> &mut Stream {
        self.as_stream_mut()
    }
}

impl Conn<Guest> for TcpStream {
    fn try_read(&mut self, buf: &mut [u8]) -> WasiResult<Option<usize>> {
        wasi(TcpStream::try_read(self, buf))
    }

    fn try_write(&mut self, bytes: &[u8]) -> WasiResult<usize> {
        wasi(TcpStream::try_write(self, bytes))
    }

    fn shutdown_write(&mut self) {
        TcpStream::shutdown_write(self);
    }

    fn stream(&mut self) -> &mut Stream {
        self.as_stream_mut()
    }
}

/// Bound movable (§12.5): `weft-user` takes the monitor's `PAUSED` and
/// `RESUMED` on the way to a datagram.
impl host::UdpSocket<Guest> for UdpSocket {
    fn local_addr(&self) -> SocketAddr {
        UdpSocket::local_addr(self)
    }

    fn follows(&self) -> bool {
        UdpSocket::follows(self)
    }

    fn paused(&self) -> bool {
        UdpSocket::paused(self)
    }

    fn try_recv(&mut self) -> WasiResult<Option<(SocketAddr, Vec<u8>)>> {
        // An `ERROR` frame (a refused send) is `Err` with its code.
        let d = wasi(self.try_datagram())?;
        Ok(d.map(|d| (d.addr, d.payload.to_vec())))
    }

    fn send_to(&mut self, payload: &[u8], to: SocketAddr) -> WasiResult<()> {
        wasi(UdpSocket::send_to(self, payload, to)).map(drop)
    }

    fn stream(&mut self) -> &mut Stream {
        self.as_stream_mut()
    }
}

/// The WASI errno for a failed fabric call or watch.
fn fabric_errno(e: FabricError) -> i32 {
    match e {
        FabricError::Stream(e) => errno_for(&e),
        FabricError::Call(_) => errno::IO,
    }
}

impl host::Watch<Guest> for Watch {
    fn try_event(&mut self) -> WasiResult<Option<Vec<u8>>> {
        self.try_frame().map_err(fabric_errno)
    }

    fn stream(&mut self) -> &mut Stream {
        Watch::stream(self)
    }
}

/// The WASI errno for an IPC call that failed on the stream or was
/// refused outright (a failed message is an [`IpcItem::Failed`] instead).
fn ipc_errno(e: IpcFailure) -> i32 {
    match e {
        IpcFailure::Stream(e) => errno_for(&e),
        IpcFailure::Failed {
            error: IpcError::Denied,
            ..
        } => errno::ACCES,
        IpcFailure::Failed {
            error: IpcError::Invalid,
            ..
        } => errno::INVAL,
        IpcFailure::Failed { .. } | IpcFailure::Invalid(_) => errno::IO,
    }
}

impl host::IpcService<Guest> for Service {
    fn try_message(&mut self) -> WasiResult<Option<IpcItem>> {
        if !self.stream().ready(stream::Interest::Read) {
            return Ok(None);
        }
        // A whole frame is there or on its way: the wait is short. Only
        // looking after it: a `PAUSED` or `RESUMED` (taken and noted) may
        // be all there was, and no message follows a `PAUSED`.
        let m = self
            .next_message(Some(core::time::Duration::ZERO))
            .map_err(ipc_errno)?;
        Ok(m.map(|m| IpcItem::Message {
            id: m.id,
            request: m.request,
            sender: m.sender,
            data: m.data,
        }))
    }

    fn paused(&self) -> bool {
        Service::paused(self)
    }

    fn reply(&mut self, id: u64, data: &[u8]) -> WasiResult<()> {
        Service::reply(self, id, data).map_err(ipc_errno)
    }

    fn refuse(&mut self, id: u64, reason: &str) -> WasiResult<()> {
        Service::refuse(self, id, reason).map_err(ipc_errno)
    }

    fn stream(&mut self) -> &mut Stream {
        Service::stream(self)
    }
}

impl host::IpcSender<Guest> for Ipc {
    fn submit(
        &mut self,
        guid: Guid,
        pid: Option<&str>,
        data: &[u8],
        timeout_ms: Option<u32>,
    ) -> WasiResult<u32> {
        // 0: the protocol's default timeout.
        let timeout = timeout_ms.map(|ms| {
            let ms = if ms == 0 {
                weft_control::ipc_proto::DEFAULT_TIMEOUT_MS
            } else {
                ms
            };
            core::time::Duration::from_millis(u64::from(ms))
        });
        Ipc::submit(self, To { guid, pid }, data, timeout).map_err(ipc_errno)
    }

    fn try_answer(&mut self) -> WasiResult<Option<IpcItem>> {
        if !self.stream().ready(stream::Interest::Read) {
            return Ok(None);
        }
        let (request, answer) = self.next_answer().map_err(ipc_errno)?;
        Ok(Some(match answer {
            Ok(data) => IpcItem::Answer { request, data },
            Err(IpcFailure::Failed { error, message }) => IpcItem::Failed {
                request,
                error: error as u32,
                message,
            },
            Err(e) => return Err(ipc_errno(e)),
        }))
    }

    fn cancel(&mut self, id: u32) -> WasiResult<()> {
        Ipc::cancel(self, id).map_err(ipc_errno)
    }

    fn stream(&mut self) -> &mut Stream {
        Ipc::stream(self)
    }
}

/// The `MOVE` stream (§19.3). The monitor answers its first frame with
/// the first order, which `first` keeps for the runtime's first read.
pub struct MoveStream {
    stream: Stream,
    first: Option<OrderFrame>,
}

impl host::Mover<Guest> for MoveStream {
    fn try_order(&mut self) -> Result<Option<OrderFrame>, String> {
        if self.first.is_none() && !self.stream.ready(stream::Interest::Read) {
            return Ok(None);
        }
        // A whole frame is there or on its way: the wait is short.
        self.order().map(Some)
    }

    fn order(&mut self) -> Result<OrderFrame, String> {
        if let Some(first) = self.first.take() {
            return Ok(first);
        }
        let mut body = Vec::new();
        let kind = self.stream.recv(&mut body).map_err(|e| e.to_string())?;
        Ok(OrderFrame { kind, body })
    }

    fn send(&mut self, frame: &[u8]) -> Result<(), String> {
        self.stream.send(frame).map_err(|e| e.to_string())
    }

    fn ready_send(&mut self) {
        self.stream.touch_room();
    }

    fn stream(&mut self) -> &mut Stream {
        &mut self.stream
    }
}

impl Host for Guest {
    type File = fs::File;
    type Stream = Stream;
    type Listener = TcpListener;
    type Conn = TcpStream;
    type Udp = UdpSocket;
    type Watch = Watch;
    type IpcService = Service;
    type IpcSender = Ipc;
    type Mover = MoveStream;

    fn monotonic_ns(&self) -> u64 {
        time::monotonic_ns()
    }

    fn ready_code(&self) {
        unsafe extern "C" {
            /// The program's ELF header: its image's first byte (linker).
            static __ehdr_start: u8;
        }
        let ehdr = &raw const __ehdr_start;
        for (start, end) in read_only_segments(ehdr) {
            let mut at = start & !(PAGE - 1);
            while at < end {
                // SAFETY: `at` lies in a page of a loadable segment of the
                // program's image (its program headers say so), which the
                // monitor maps for the program's whole life (§5.1); a
                // volatile read of one byte changes nothing.
                unsafe { core::ptr::read_volatile(at as *const u8) };
                at += PAGE;
            }
        }
    }

    fn realtime_ns(&self) -> u64 {
        time::realtime_ns()
    }

    fn resolution_ns(&self) -> u64 {
        time::resolution_ns()
    }

    fn fill_random(&self, buf: &mut [u8]) -> bool {
        time::fill_random(buf)
    }

    fn read_stdin(&self, buf: &mut [u8]) -> WasiResult<usize> {
        weft_user::read_stdin(buf).map_err(|_| errno::IO)
    }

    fn write(&self, to: Output, bytes: &[u8]) -> WasiResult<()> {
        let stream = match to {
            Output::Stdout => weft_user::Stream::Stdout,
            Output::Stderr => weft_user::Stream::Stderr,
        };
        stream.write_all(bytes).map_err(|_| errno::IO)
    }

    fn is_terminal(&self, to: Output) -> bool {
        match to {
            Output::Stdout => weft_user::Stream::Stdout.is_terminal(),
            Output::Stderr => weft_user::Stream::Stderr.is_terminal(),
        }
    }

    fn open(&self, at: At<'_>, how: OpenOptions) -> WasiResult<fs::File> {
        wasi(
            FsOpen::new()
                .read(how.read)
                .write(how.write)
                .create(how.create)
                .create_new(how.create_new)
                .truncate(how.truncate)
                .append(how.append)
                .no_follow(how.no_follow)
                .open(at),
        )
    }

    fn metadata(&self, at: At<'_>, follow: bool) -> WasiResult<Metadata> {
        wasi(if follow {
            fs::metadata(at)
        } else {
            fs::symlink_metadata(at)
        })
    }

    fn read_dir(&self, at: At<'_>) -> WasiResult<Vec<DirEntry>> {
        Ok(wasi(fs::read_dir(at))?
            .into_iter()
            .map(|e| DirEntry {
                name: String::from(e.name()),
                kind: e.file_type(),
                inode: e.inode(),
            })
            .collect())
    }

    fn create_dir(&self, at: At<'_>) -> WasiResult<()> {
        wasi(fs::create_dir(at))
    }

    fn remove_dir(&self, at: At<'_>) -> WasiResult<()> {
        wasi(fs::remove_dir(at))
    }

    fn remove_file(&self, at: At<'_>) -> WasiResult<()> {
        wasi(fs::remove_file(at))
    }

    fn rename(&self, from: At<'_>, to: At<'_>) -> WasiResult<()> {
        wasi(fs::rename(from, to))
    }

    fn read_link(&self, at: At<'_>) -> WasiResult<String> {
        wasi(fs::read_link(at))
    }

    fn symlink(&self, target: &str, at: At<'_>) -> WasiResult<()> {
        wasi(fs::symlink(target, at))
    }

    fn hard_link(&self, from: At<'_>, to: At<'_>, follow: bool) -> WasiResult<()> {
        wasi(fs::hard_link(from, to, follow))
    }

    fn set_times(&self, at: At<'_>, follow: bool, times: Times) -> WasiResult<()> {
        wasi(fs::set_times(at, follow, times))
    }

    fn read_file(&self, path: &str) -> WasiResult<Vec<u8>> {
        wasi(fs::read(path))
    }

    fn bind(&self, addr: SocketAddr) -> WasiResult<TcpListener> {
        wasi(TcpListener::bind(addr))
    }

    fn connect(&self, addr: SocketAddr) -> WasiResult<TcpStream> {
        wasi(TcpStream::connect(addr))
    }

    /// Always movable: whether the socket follows the app is `BOUND`'s.
    fn udp_bind(&self, addr: SocketAddr) -> WasiResult<UdpSocket> {
        wasi(UdpSocket::bind_movable(addr))
    }

    /// One `FABRIC` stream per call: calls are rare, and a stream per
    /// call needs no state shared between the runtime's apps.
    fn fabric(&self, frames: &[u8]) -> WasiResult<Vec<u8>> {
        let relayed = Fabric::open().and_then(|mut f| f.relay(frames));
        relayed.map_err(fabric_errno)
    }

    /// A `FABRIC` stream of the watch's own.
    fn fabric_watch(&self) -> WasiResult<Watch> {
        Fabric::open().and_then(Fabric::watch).map_err(fabric_errno)
    }

    fn ipc_serve(&self, guid: Guid, name: &str) -> WasiResult<Service> {
        Service::create(guid, name).map_err(ipc_errno)
    }

    fn ipc_open(&self) -> WasiResult<Ipc> {
        Ipc::open().map_err(ipc_errno)
    }

    /// `Unsupported` (under `weft run`, or a process that cannot move) is
    /// the ordinary refusal; another failure is reported too.
    fn mover(&self) -> Option<MoveStream> {
        let mut body = Vec::new();
        match Stream::connect(frame::kind::MOVE, &[], &mut body) {
            Ok((stream, kind)) => Some(MoveStream {
                stream,
                first: Some(OrderFrame { kind, body }),
            }),
            Err(e) if e.code() == Code::Unsupported => None,
            Err(e) => {
                self.report(format_args!("weft: no move stream: {e}"));
                None
            }
        }
    }

    fn wait(&self, streams: &mut [(&mut Stream, Interest)], timeout_ns: Option<u64>) {
        let mut list: Vec<(&mut Stream, stream::Interest)> = streams
            .iter_mut()
            .map(|(s, i)| (&mut **s, interest_of(*i)))
            .collect();
        stream::poll(&mut list, timeout_ns);
    }
}

const PAGE: usize = 4096;

/// The address ranges of the loadable segments of the program's image
/// that are not writable (its code and constants), from the program
/// headers of the ELF header at `ehdr`. Only those are touched: the
/// segments lie apart (aligned to 2 MiB), and the gaps between them are
/// not mapped.
fn read_only_segments(ehdr: *const u8) -> impl Iterator<Item = (usize, usize)> {
    const PT_LOAD: u32 = 1;
    const PF_W: u32 = 2;
    // SAFETY: `ehdr` is the program's ELF header, in its first loadable
    // segment (the linker defines `__ehdr_start` only then), mapped for
    // the program's life; the fields read are within its 64 bytes.
    let (phoff, phentsize, phnum) = unsafe {
        (
            core::ptr::read_unaligned(ehdr.add(32).cast::<u64>()),
            core::ptr::read_unaligned(ehdr.add(54).cast::<u16>()),
            core::ptr::read_unaligned(ehdr.add(56).cast::<u16>()),
        )
    };
    (0..usize::from(phnum)).filter_map(move |i| {
        let at = usize::try_from(phoff).ok()? + i * usize::from(phentsize);
        // SAFETY: the program headers lie in the first loadable segment
        // too (the `PHDR` entry says so for every bundled program), at
        // `e_phoff` from the header; each field read is inside entry `i`.
        let (kind, flags, vaddr, memsz) = unsafe {
            let ph = ehdr.add(at);
            (
                core::ptr::read_unaligned(ph.cast::<u32>()),
                core::ptr::read_unaligned(ph.add(4).cast::<u32>()),
                core::ptr::read_unaligned(ph.add(16).cast::<u64>()),
                core::ptr::read_unaligned(ph.add(40).cast::<u64>()),
            )
        };
        // Program addresses are absolute: programs are linked at fixed
        // addresses (`ET_EXEC`).
        let start = usize::try_from(vaddr).ok()?;
        let end = start.saturating_add(usize::try_from(memsz).ok()?);
        (kind == PT_LOAD && flags & PF_W == 0 && memsz > 0).then_some((start, end))
    })
}
