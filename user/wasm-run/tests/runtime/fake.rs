//! A fake [`Host`]: in-memory files, scripted sockets, a scripted move
//! stream, and a clock that moves only when the runtime sleeps (or, if a
//! test says so, by a tick at each reading), so every test is
//! deterministic.
//!
//! The runtime sleeping with nothing scripted and no deadline, or waiting
//! for an order that never comes, would be a hang in the guest; here it
//! fails the test.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use weft_control::app::errno;
use weft_control::frame::{self, MAX_BODY};
use weft_control::ipc_proto::Guid;
use weft_control::move_proto::{MAX_PART, Order, Report};
use weft_wasm_run::Host;
use weft_wasm_run::host::{
    self, At, Conn, DirEntry, FileKind, Interest, IpcItem, Listener, Metadata, OpenOptions,
    OrderFrame, Output, SeekFrom, Times, WasiResult,
};

/// One connection's two directions, shared by the app's socket and the
/// test.
#[derive(Default)]
pub struct Pipe {
    /// Bytes the peer sent, not yet read.
    pub incoming: VecDeque<u8>,
    /// The peer ended its side.
    pub ended: bool,
    /// What the app wrote.
    pub outgoing: Vec<u8>,
}

type Backlog = Rc<RefCell<VecDeque<Rc<RefCell<Pipe>>>>>;

/// Something done when the runtime sleeps (a connection arriving, data).
type Script = Box<dyn FnOnce(&mut State)>;

#[derive(Default)]
pub struct State {
    /// Monotonic nanoseconds.
    pub now: u64,
    /// How far the clock moves at each reading (0: only when the runtime
    /// sleeps).
    pub tick: u64,
    pub files: BTreeMap<String, Vec<u8>>,
    pub dirs: BTreeSet<String>,
    pub stdin: VecDeque<u8>,
    pub stdout: Vec<u8>,
    /// Each write to standard error, as written.
    pub stderr: Vec<Vec<u8>>,
    /// Each write to standard output or error, in order.
    pub writes: Vec<(Output, Vec<u8>)>,
    /// The runtime's own reports.
    pub reports: Vec<String>,
    /// Connections waiting on each bound address.
    pub backlogs: BTreeMap<SocketAddr, Backlog>,
    /// Run one per sleep, in order.
    pub scripts: VecDeque<Script>,
    /// The timeout of each sleep.
    pub sleeps: Vec<Option<u64>>,
    /// Each fabric call's request frames, as the runtime passed them.
    pub fabric_calls: Vec<Vec<u8>>,
    /// The reply frame of each fabric call, in order; none left: the
    /// guest is no device of a fabric (`ENOTCAPABLE`).
    pub fabric_replies: VecDeque<Vec<u8>>,
    /// Each fabric watch's stream: the test writes `EVENT` frames into it.
    pub watches: Vec<Rc<RefCell<Pipe>>>,
    /// Each service provided (`ipc_serve`), in order.
    pub services: Vec<Rc<RefCell<IpcPipe>>>,
    /// Each sending stream (`ipc_open`), in order.
    pub senders: Vec<Rc<RefCell<IpcPipe>>>,
    /// `ipc_serve` fails with this errno when set.
    pub serve_errno: Option<i32>,
    /// Addresses a connection may be made to (others are refused).
    pub reachable: BTreeSet<SocketAddr>,
    /// Each connection the runtime made (`tcp_connect`): the peer's end.
    pub connections: Vec<Rc<RefCell<Pipe>>>,
    /// The monitor's end of the move stream; `None`: it refuses the
    /// stream (as under `weft run`).
    pub mover: Option<MovePipe>,
    /// Each UDP socket bound (`udp_bind`), in order.
    pub udp: Vec<Rc<RefCell<UdpPipe>>>,
    /// The address of each UDP bind asked for, refused ones included. The
    /// runtime binds movable (`UDP_BIND` with `MOVABLE`, §12.5), as its
    /// [`Host`] promises: every one here was.
    pub udp_binds: Vec<SocketAddr>,
    /// Addresses a UDP bind is refused on, with the errno (others are
    /// granted; a bound address is in use).
    pub udp_refused: BTreeMap<SocketAddr, i32>,
    /// The fabric addresses (§12.4): a UDP socket bound on one follows its
    /// app (its `BOUND` says `FOLLOWS`), any other does not.
    pub fabric_ips: BTreeSet<IpAddr>,
}

impl State {
    /// The errno of every call on a UDP socket whose stream the monitor
    /// ended.
    pub const UDP_ENDED_ERRNO: i32 = errno::PIPE;
}

/// A frame on a UDP stream, as the monitor writes it (PROTOCOL.md §12).
#[derive(Clone, Debug, PartialEq)]
pub enum UdpFrame {
    /// `DATAGRAM`: its sender and payload.
    Datagram(SocketAddr, Vec<u8>),
    /// `ERROR` for a refused send, as its errno.
    Error(i32),
    /// `PAUSED`: the owner holds the socket's datagrams (§12.5).
    Paused,
    /// `RESUMED`: they come again.
    Resumed,
}

/// A UDP socket's stream as the monitor sees it (PROTOCOL.md §12),
/// shared by the app's socket and the test.
pub struct UdpPipe {
    /// The bound address (`BOUND`).
    pub local: SocketAddr,
    /// Whether `BOUND` said `FOLLOWS` (the address is a fabric address).
    pub follows: bool,
    /// What arrives, in order.
    pub incoming: VecDeque<UdpFrame>,
    /// Whether the runtime's end took a `PAUSED` not followed by a
    /// `RESUMED` (as `weft_user::net::UdpSocket` notes it).
    pub paused: bool,
    /// Each datagram the app sent: destination and payload.
    pub sent: Vec<(SocketAddr, Vec<u8>)>,
    /// The monitor ended the stream with this §9.4 code (every call fails
    /// with [`State::udp_ended_errno`] from then on).
    pub ended: Option<u32>,
}

impl UdpPipe {
    /// A datagram from `from` arrives.
    pub fn datagram(&mut self, from: SocketAddr, payload: &[u8]) -> &mut Self {
        let frame = UdpFrame::Datagram(from, payload.to_vec());
        self.incoming.push_back(frame);
        self
    }

    /// An `ERROR` frame with `errno` arrives (a refused send).
    pub fn error(&mut self, errno: i32) -> &mut Self {
        self.incoming.push_back(UdpFrame::Error(errno));
        self
    }

    /// The monitor's `PAUSED`.
    pub fn pause(&mut self) -> &mut Self {
        self.incoming.push_back(UdpFrame::Paused);
        self
    }

    /// The monitor's `RESUMED`.
    pub fn resume(&mut self) -> &mut Self {
        self.incoming.push_back(UdpFrame::Resumed);
        self
    }
}

/// The monitor's end of a move stream (PROTOCOL.md §19.3), scripted.
#[derive(Default)]
pub struct MovePipe {
    /// Whole order frames, each with the monotonic time it arrives at.
    pub orders: VecDeque<(u64, Vec<u8>)>,
    /// When the monitor ends the stream (after its last order).
    pub ends: Option<u64>,
    /// Each report frame the runtime sent, whole.
    pub sent: Vec<Vec<u8>>,
}

/// What the runtime said on the move stream, a capture's parts joined.
#[derive(Debug, PartialEq)]
pub enum Said {
    Restored,
    Ready,
    Captured(Vec<u8>),
    Failed(String),
}

impl MovePipe {
    /// The monitor sends `order` when the clock reaches `at`.
    pub fn order(&mut self, at: u64, order: Order<'_>) -> &mut Self {
        let mut frame = vec![0; frame::HEADER + MAX_BODY];
        let n = order.encode(&mut frame).expect("an order that encodes");
        frame.truncate(n);
        self.orders.push_back((at, frame));
        self
    }

    /// The monitor sends a frame of `kind` with `body` as it is, at `at`.
    pub fn raw(&mut self, at: u64, kind: u16, body: &[u8]) -> &mut Self {
        let mut frame = frame::Header::new(kind, body.len()).encode().to_vec();
        frame.extend_from_slice(body);
        self.orders.push_back((at, frame));
        self
    }

    /// The monitor sends `snapshot` in parts of at most `size` bytes, at
    /// `at`.
    pub fn parts(&mut self, at: u64, snapshot: &[u8], size: usize) -> &mut Self {
        for part in snapshot.chunks(size) {
            self.order(at, Order::Part(part));
        }
        self
    }

    /// What the runtime said, in order. Every report must decode, a
    /// capture's parts carry at most [`MAX_PART`] bytes each and exactly
    /// what `CAPTURED` states, and a `FAILED` comes after no part.
    pub fn said(&self) -> Vec<Said> {
        let mut said = Vec::new();
        let mut parts: Vec<u8> = Vec::new();
        for sent in &self.sent {
            let (header, body) = frame::split(sent).expect("a whole frame");
            assert_eq!(header.len as usize + frame::HEADER, sent.len(), "one frame");
            match Report::decode(header.kind, body).expect("a report that decodes") {
                Report::Part(part) => {
                    assert!(part.len() <= MAX_PART);
                    parts.extend_from_slice(part);
                }
                Report::Captured { len } => {
                    assert_eq!(
                        len as usize,
                        parts.len(),
                        "CAPTURED states its parts' length"
                    );
                    said.push(Said::Captured(std::mem::take(&mut parts)));
                }
                Report::Restored => said.push(Said::Restored),
                Report::Ready => said.push(Said::Ready),
                Report::Failed(why) => {
                    assert!(parts.is_empty(), "FAILED after parts");
                    said.push(Said::Failed(why.into()));
                }
                other => panic!("the runtime sent {other:?}"),
            }
        }
        assert!(parts.is_empty(), "parts without CAPTURED");
        said
    }
}

/// A message sent: GUID, pid, data, timeout (`None`: one way).
pub type Sent = (Guid, Option<String>, Vec<u8>, Option<u32>);

/// A frame on an IPC stream, as the monitor writes it.
#[derive(Clone, Debug, PartialEq)]
pub enum IpcFrame {
    /// A message (to a service), or an answer (to a sender).
    Item(IpcItem),
    /// `PAUSED`: the monitor holds the service's messages.
    Paused,
    /// `RESUMED`: they come again.
    Resumed,
}

impl From<IpcItem> for IpcFrame {
    fn from(item: IpcItem) -> Self {
        Self::Item(item)
    }
}

/// One IPC stream, shared by the app's descriptor and the test.
#[derive(Default)]
pub struct IpcPipe {
    /// The service's GUID and name (a service's stream).
    pub serving: Option<(Guid, String)>,
    /// What the stream delivers next: messages, or answers, and the
    /// monitor's `PAUSED` and `RESUMED`.
    pub incoming: VecDeque<IpcFrame>,
    /// Whether the runtime's end took a `PAUSED` not followed by a
    /// `RESUMED` (as `weft_user::ipc::Service` notes it).
    pub paused: bool,
    /// Messages sent; their ids are 1, 2, 3, …
    pub sent: Vec<Sent>,
    /// Answers given by the service: id and `Ok(data)` or `Err(reason)`.
    pub answers: Vec<(u64, Result<Vec<u8>, String>)>,
    /// The ids of the requests cancelled.
    pub cancelled: Vec<u32>,
}

impl IpcPipe {
    /// A message to this service.
    pub fn deliver(&mut self, id: u64, request: bool, sender: &str, data: &[u8]) {
        self.incoming.push_back(IpcFrame::Item(IpcItem::Message {
            id,
            request,
            sender: sender.into(),
            data: data.to_vec(),
        }));
    }

    /// The monitor's `PAUSED` on this (service's) stream.
    pub fn pause(&mut self) {
        self.incoming.push_back(IpcFrame::Paused);
    }

    /// The monitor's `RESUMED` on this (service's) stream.
    pub fn resume(&mut self) {
        self.incoming.push_back(IpcFrame::Resumed);
    }

    /// The next message or answer, the control frames before it taken
    /// and noted, as `weft_user::ipc` does when it only looks.
    fn next_item(&mut self) -> Option<IpcItem> {
        loop {
            match self.incoming.pop_front()? {
                IpcFrame::Item(item) => return Some(item),
                IpcFrame::Paused => self.paused = true,
                IpcFrame::Resumed => self.paused = false,
            }
        }
    }
}

/// The fake host; clones share one state.
#[derive(Clone, Default)]
pub struct Fake(pub Rc<RefCell<State>>);

impl Fake {
    pub fn new() -> Self {
        let fake = Self::default();
        fake.0.borrow_mut().dirs.insert("/".into());
        fake
    }

    pub fn file(&self, path: &str, bytes: &[u8]) -> &Self {
        self.0
            .borrow_mut()
            .files
            .insert(path.into(), bytes.to_vec());
        self
    }

    /// Runs `f` when the runtime next sleeps (after earlier scripts).
    pub fn on_sleep(&self, f: impl FnOnce(&mut State) + 'static) -> &Self {
        self.0.borrow_mut().scripts.push_back(Box::new(f));
        self
    }

    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.0.borrow().stdout).into_owned()
    }

    /// Gives the runtime a move stream (if it has none yet) and scripts
    /// its monitor's end with `f`.
    pub fn moves(&self, f: impl FnOnce(&mut MovePipe)) -> &Self {
        f(self.0.borrow_mut().mover.get_or_insert_default());
        self
    }

    /// What the runtime said on its move stream.
    pub fn said(&self) -> Vec<Said> {
        self.0
            .borrow()
            .mover
            .as_ref()
            .expect("a move stream")
            .said()
    }
}

impl State {
    /// A connection arriving at `addr` (which must be bound); the test's
    /// end of it.
    pub fn connect_to(&mut self, addr: SocketAddr) -> Rc<RefCell<Pipe>> {
        let pipe = Rc::new(RefCell::new(Pipe::default()));
        self.backlogs[&addr].borrow_mut().push_back(pipe.clone());
        pipe
    }
}

pub struct FakeFile {
    host: Fake,
    path: String,
    pos: u64,
    append: bool,
}

impl host::File<Fake> for FakeFile {
    fn read(&mut self, buf: &mut [u8]) -> WasiResult<usize> {
        let s = self.host.0.borrow();
        let data = s.files.get(&self.path).ok_or(errno::NOENT)?;
        let from = (self.pos as usize).min(data.len());
        let n = buf.len().min(data.len() - from);
        buf[..n].copy_from_slice(&data[from..from + n]);
        self.pos += n as u64;
        Ok(n)
    }

    fn write_all(&mut self, bytes: &[u8]) -> WasiResult<()> {
        let mut s = self.host.0.borrow_mut();
        let data = s.files.get_mut(&self.path).ok_or(errno::NOENT)?;
        if self.append {
            self.pos = data.len() as u64;
        }
        let at = self.pos as usize;
        if data.len() < at + bytes.len() {
            data.resize(at + bytes.len(), 0);
        }
        data[at..at + bytes.len()].copy_from_slice(bytes);
        self.pos += bytes.len() as u64;
        Ok(())
    }

    fn seek(&mut self, to: SeekFrom) -> WasiResult<u64> {
        let len = self.host.0.borrow().files[&self.path].len() as i64;
        let pos = match to {
            SeekFrom::Start(n) => n as i64,
            SeekFrom::Current(d) => self.pos as i64 + d,
            SeekFrom::End(d) => len + d,
        };
        self.pos = u64::try_from(pos).map_err(|_| errno::INVAL)?;
        Ok(self.pos)
    }

    fn metadata(&mut self) -> WasiResult<Metadata> {
        self.host.metadata(At::root(&self.path), true)
    }

    fn sync(&mut self) -> WasiResult<()> {
        Ok(())
    }

    fn set_len(&mut self, size: u64) -> WasiResult<()> {
        let mut s = self.host.0.borrow_mut();
        let data = s.files.get_mut(&self.path).ok_or(errno::NOENT)?;
        data.resize(size as usize, 0);
        Ok(())
    }

    fn set_times(&mut self, _: Times) -> WasiResult<()> {
        Ok(())
    }
}

/// A socket's stream: a listener's backlog or a connection's pipe.
pub enum FakeStream {
    Backlog(Backlog),
    Pipe(Rc<RefCell<Pipe>>),
    Ipc(Rc<RefCell<IpcPipe>>),
    Udp(Rc<RefCell<UdpPipe>>),
    /// The move stream, in the host's state.
    Move(Fake),
}

impl host::Stream<Fake> for FakeStream {
    fn ready(&mut self, interest: Interest) -> bool {
        match (self, interest) {
            (_, Interest::Write) => true,
            (FakeStream::Backlog(b), _) => !b.borrow().is_empty(),
            (FakeStream::Ipc(p), _) => !p.borrow().incoming.is_empty(),
            (FakeStream::Udp(p), _) => {
                let p = p.borrow();
                !p.incoming.is_empty() || p.ended.is_some()
            }
            (FakeStream::Move(host), _) => {
                let s = host.0.borrow();
                let pipe = s.mover.as_ref().expect("a move stream");
                let due = |at: u64| at <= s.now;
                pipe.orders.front().is_some_and(|o| due(o.0)) || pipe.ends.is_some_and(due)
            }
            (FakeStream::Pipe(p), _) => {
                let p = p.borrow();
                interest == Interest::Both || !p.incoming.is_empty() || p.ended
            }
        }
    }

    fn status(&self) -> Option<u32> {
        match self {
            FakeStream::Udp(p) => p.borrow().ended,
            _ => None,
        }
    }
}

pub struct FakeListener {
    backlog: Backlog,
    /// The same backlog, as the scheduler waits on it.
    stream: FakeStream,
}
pub struct FakeConn {
    pipe: Rc<RefCell<Pipe>>,
    /// The same pipe, as the scheduler waits on it.
    stream: FakeStream,
}

impl Listener<Fake> for FakeListener {
    fn try_accept(&mut self) -> WasiResult<Option<FakeConn>> {
        Ok(self.backlog.borrow_mut().pop_front().map(|pipe| FakeConn {
            stream: FakeStream::Pipe(pipe.clone()),
            pipe,
        }))
    }

    fn stream(&mut self) -> &mut FakeStream {
        &mut self.stream
    }
}

impl Conn<Fake> for FakeConn {
    fn try_read(&mut self, buf: &mut [u8]) -> WasiResult<Option<usize>> {
        let mut p = self.pipe.borrow_mut();
        if p.incoming.is_empty() {
            return Ok(p.ended.then_some(0));
        }
        let n = buf.len().min(p.incoming.len());
        for (b, v) in buf.iter_mut().zip(p.incoming.drain(..n)) {
            *b = v;
        }
        Ok(Some(n))
    }

    fn try_write(&mut self, bytes: &[u8]) -> WasiResult<usize> {
        self.pipe.borrow_mut().outgoing.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn shutdown_write(&mut self) {}

    fn stream(&mut self) -> &mut FakeStream {
        &mut self.stream
    }
}

/// A UDP socket: datagrams from its pipe.
pub struct FakeUdp {
    pipe: Rc<RefCell<UdpPipe>>,
    stream: FakeStream,
}

impl host::UdpSocket<Fake> for FakeUdp {
    fn local_addr(&self) -> SocketAddr {
        self.pipe.borrow().local
    }

    fn follows(&self) -> bool {
        self.pipe.borrow().follows
    }

    fn paused(&self) -> bool {
        self.pipe.borrow().paused
    }

    /// As `weft_user::net::UdpSocket` does: `PAUSED` and `RESUMED` on the
    /// way are taken and noted.
    fn try_recv(&mut self) -> WasiResult<Option<(SocketAddr, Vec<u8>)>> {
        let mut p = self.pipe.borrow_mut();
        loop {
            match p.incoming.pop_front() {
                Some(UdpFrame::Datagram(from, payload)) => return Ok(Some((from, payload))),
                Some(UdpFrame::Error(e)) => return Err(e),
                Some(UdpFrame::Paused) => p.paused = true,
                Some(UdpFrame::Resumed) => p.paused = false,
                None if p.ended.is_some() => return Err(State::UDP_ENDED_ERRNO),
                None => return Ok(None),
            }
        }
    }

    fn send_to(&mut self, payload: &[u8], to: SocketAddr) -> WasiResult<()> {
        let mut p = self.pipe.borrow_mut();
        if p.ended.is_some() {
            return Err(State::UDP_ENDED_ERRNO);
        }
        assert!(
            payload.len() <= weft_control::app::MAX_DATAGRAM,
            "checked by the runtime"
        );
        p.sent.push((to, payload.to_vec()));
        Ok(())
    }

    fn stream(&mut self) -> &mut FakeStream {
        &mut self.stream
    }
}

/// A fabric watch: whole frames from its pipe.
pub struct FakeWatch {
    pipe: Rc<RefCell<Pipe>>,
    stream: FakeStream,
}

impl host::Watch<Fake> for FakeWatch {
    fn try_event(&mut self) -> WasiResult<Option<Vec<u8>>> {
        let mut p = self.pipe.borrow_mut();
        let header: Vec<u8> = p.incoming.iter().take(4).copied().collect();
        let Ok(len) = <[u8; 4]>::try_from(header) else {
            return if p.ended { Err(errno::PIPE) } else { Ok(None) };
        };
        let whole = 8 + u32::from_le_bytes(len) as usize;
        if p.incoming.len() < whole {
            return Ok(None);
        }
        Ok(Some(p.incoming.drain(..whole).collect()))
    }

    fn stream(&mut self) -> &mut FakeStream {
        &mut self.stream
    }
}

/// An app's IPC stream (a service's or a sender's): what its pipe holds.
pub struct FakeIpc {
    pipe: Rc<RefCell<IpcPipe>>,
    stream: FakeStream,
}

impl FakeIpc {
    fn new(pipe: IpcPipe) -> (Self, Rc<RefCell<IpcPipe>>) {
        let pipe = Rc::new(RefCell::new(pipe));
        let ipc = FakeIpc {
            stream: FakeStream::Ipc(pipe.clone()),
            pipe: pipe.clone(),
        };
        (ipc, pipe)
    }
}

impl host::IpcService<Fake> for FakeIpc {
    fn try_message(&mut self) -> WasiResult<Option<IpcItem>> {
        Ok(self.pipe.borrow_mut().next_item())
    }

    fn paused(&self) -> bool {
        self.pipe.borrow().paused
    }

    fn reply(&mut self, id: u64, data: &[u8]) -> WasiResult<()> {
        self.pipe.borrow_mut().answers.push((id, Ok(data.to_vec())));
        Ok(())
    }

    fn refuse(&mut self, id: u64, reason: &str) -> WasiResult<()> {
        self.pipe
            .borrow_mut()
            .answers
            .push((id, Err(reason.into())));
        Ok(())
    }

    fn stream(&mut self) -> &mut FakeStream {
        &mut self.stream
    }
}

impl host::IpcSender<Fake> for FakeIpc {
    fn submit(
        &mut self,
        guid: Guid,
        pid: Option<&str>,
        data: &[u8],
        timeout_ms: Option<u32>,
    ) -> WasiResult<u32> {
        let mut p = self.pipe.borrow_mut();
        p.sent
            .push((guid, pid.map(String::from), data.to_vec(), timeout_ms));
        Ok(p.sent.len() as u32)
    }

    fn try_answer(&mut self) -> WasiResult<Option<IpcItem>> {
        Ok(self.pipe.borrow_mut().next_item())
    }

    fn cancel(&mut self, id: u32) -> WasiResult<()> {
        self.pipe.borrow_mut().cancelled.push(id);
        Ok(())
    }

    fn stream(&mut self) -> &mut FakeStream {
        &mut self.stream
    }
}

/// The runtime's end of the move stream.
pub struct FakeMover {
    host: Fake,
    stream: FakeStream,
}

/// The order frame `whole` is.
fn order_frame(whole: Vec<u8>) -> OrderFrame {
    let (header, body) = frame::split(&whole).expect("a whole frame");
    OrderFrame {
        kind: header.kind,
        body: body.to_vec(),
    }
}

/// Why a read of an ended move stream fails.
const ENDED: &str = "the monitor ended the stream";

impl host::Mover<Fake> for FakeMover {
    fn try_order(&mut self) -> Result<Option<OrderFrame>, String> {
        let mut s = self.host.0.borrow_mut();
        let now = s.now;
        let pipe = s.mover.as_mut().expect("a move stream");
        match pipe.orders.front() {
            Some(&(at, _)) if at <= now => Ok(pipe.orders.pop_front().map(|o| order_frame(o.1))),
            None if pipe.ends.is_some_and(|end| end <= now) => Err(ENDED.into()),
            _ => Ok(None),
        }
    }

    /// Waits for the next order: the clock moves on to when it comes (or
    /// the stream ends).
    fn order(&mut self) -> Result<OrderFrame, String> {
        let mut s = self.host.0.borrow_mut();
        let pipe = s.mover.as_mut().expect("a move stream");
        let (at, order) = match pipe.orders.pop_front() {
            Some((at, whole)) => (at, Ok(order_frame(whole))),
            None => {
                let end = pipe
                    .ends
                    .expect("the runtime waits for an order that never comes");
                (end, Err(ENDED.into()))
            }
        };
        s.now = s.now.max(at);
        order
    }

    fn send(&mut self, frame: &[u8]) -> Result<(), String> {
        let mut s = self.host.0.borrow_mut();
        s.mover
            .as_mut()
            .expect("a move stream")
            .sent
            .push(frame.to_vec());
        Ok(())
    }

    /// Nothing costs here.
    fn ready_send(&mut self) {}

    fn stream(&mut self) -> &mut FakeStream {
        &mut self.stream
    }
}

/// The parent directory of absolute `path`.
/// The absolute path `at` names: its directory and path joined, `.` and
/// `..` applied; `EPERM` if `..` would leave the directory.
fn abs(at: At<'_>) -> WasiResult<String> {
    let mut parts: Vec<&str> = at.dir.split('/').filter(|p| !p.is_empty()).collect();
    let floor = parts.len();
    for part in at.path.split('/') {
        match part {
            "" | "." => {}
            ".." if parts.len() == floor => return Err(errno::PERM),
            ".." => {
                parts.pop();
            }
            name => parts.push(name),
        }
    }
    Ok(format!("/{}", parts.join("/")))
}

/// A stable inode number for `path`.
fn inode(path: &str) -> u64 {
    path.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

fn parent(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &path[..i],
    }
}

impl Host for Fake {
    type File = FakeFile;
    type Stream = FakeStream;
    type Listener = FakeListener;
    type Conn = FakeConn;
    type Udp = FakeUdp;
    type Watch = FakeWatch;
    type IpcService = FakeIpc;
    type IpcSender = FakeIpc;
    type Mover = FakeMover;

    fn monotonic_ns(&self) -> u64 {
        let mut s = self.0.borrow_mut();
        let now = s.now;
        s.now += s.tick;
        now
    }

    fn realtime_ns(&self) -> u64 {
        1_700_000_000_000_000_000 + self.0.borrow().now
    }

    fn resolution_ns(&self) -> u64 {
        1
    }

    fn fill_random(&self, buf: &mut [u8]) -> bool {
        buf.iter_mut().enumerate().for_each(|(i, b)| *b = i as u8);
        true
    }

    fn read_stdin(&self, buf: &mut [u8]) -> WasiResult<usize> {
        let mut s = self.0.borrow_mut();
        let n = buf.len().min(s.stdin.len());
        for (b, v) in buf.iter_mut().zip(s.stdin.drain(..n)) {
            *b = v;
        }
        Ok(n)
    }

    fn write(&self, to: Output, bytes: &[u8]) -> WasiResult<()> {
        let mut s = self.0.borrow_mut();
        s.writes.push((to, bytes.to_vec()));
        match to {
            Output::Stdout => s.stdout.extend_from_slice(bytes),
            Output::Stderr => s.stderr.push(bytes.to_vec()),
        }
        Ok(())
    }

    fn report(&self, message: fmt::Arguments<'_>) {
        self.0.borrow_mut().reports.push(message.to_string());
    }

    fn open(&self, at: At<'_>, how: OpenOptions) -> WasiResult<FakeFile> {
        let path = &abs(at)?;
        let mut s = self.0.borrow_mut();
        if !s.dirs.contains(parent(path)) {
            return Err(errno::NOENT);
        }
        let exists = s.files.contains_key(path);
        match (exists, how.create, how.create_new) {
            (true, _, true) => return Err(errno::EXIST),
            (false, false, _) => return Err(errno::NOENT),
            (false, true, _) => {
                s.files.insert(path.clone(), Vec::new());
            }
            (true, _, false) => {}
        }
        if how.truncate {
            s.files.insert(path.clone(), Vec::new());
        }
        Ok(FakeFile {
            host: self.clone(),
            path: path.clone(),
            pos: 0,
            append: how.append,
        })
    }

    fn metadata(&self, at: At<'_>, _follow: bool) -> WasiResult<Metadata> {
        let path = &abs(at)?;
        let s = self.0.borrow();
        let (kind, size) = if s.dirs.contains(path) {
            (FileKind::Dir, 0)
        } else {
            (FileKind::File, s.files.get(path).ok_or(errno::NOENT)?.len())
        };
        Ok(Metadata {
            kind,
            mode: 0o644,
            size: size as u64,
            modified_ns: 0,
            accessed_ns: 0,
            changed_ns: 0,
            device: 1,
            inode: inode(path),
            links: 1,
        })
    }

    fn read_dir(&self, at: At<'_>) -> WasiResult<Vec<DirEntry>> {
        let path = &abs(at)?;
        let s = self.0.borrow();
        if !s.dirs.contains(path) {
            return Err(errno::NOTDIR);
        }
        let under = |p: &&String| parent(p) == path && p.as_str() != "/";
        let entry = |p: &String, kind| DirEntry {
            name: p.rsplit('/').next().unwrap_or("").to_string(),
            kind,
            inode: inode(p),
        };
        let dirs = s.dirs.iter().filter(under).map(|p| entry(p, FileKind::Dir));
        let files = s
            .files
            .keys()
            .filter(under)
            .map(|p| entry(p, FileKind::File));
        Ok(dirs.chain(files).collect())
    }

    fn create_dir(&self, at: At<'_>) -> WasiResult<()> {
        if !self.0.borrow_mut().dirs.insert(abs(at)?) {
            return Err(errno::EXIST);
        }
        Ok(())
    }

    fn remove_dir(&self, at: At<'_>) -> WasiResult<()> {
        if !self.0.borrow_mut().dirs.remove(&abs(at)?) {
            return Err(errno::NOENT);
        }
        Ok(())
    }

    fn remove_file(&self, at: At<'_>) -> WasiResult<()> {
        self.0
            .borrow_mut()
            .files
            .remove(&abs(at)?)
            .ok_or(errno::NOENT)?;
        Ok(())
    }

    fn rename(&self, from: At<'_>, to: At<'_>) -> WasiResult<()> {
        let (from, to) = (abs(from)?, abs(to)?);
        let mut s = self.0.borrow_mut();
        let data = s.files.remove(&from).ok_or(errno::NOENT)?;
        s.files.insert(to, data);
        Ok(())
    }

    /// The fake has no links.
    fn read_link(&self, _: At<'_>) -> WasiResult<String> {
        Err(errno::INVAL)
    }

    fn symlink(&self, _: &str, _: At<'_>) -> WasiResult<()> {
        Err(errno::NOTSUP)
    }

    fn hard_link(&self, _: At<'_>, _: At<'_>, _: bool) -> WasiResult<()> {
        Err(errno::NOTSUP)
    }

    fn set_times(&self, at: At<'_>, follow: bool, _: Times) -> WasiResult<()> {
        self.metadata(at, follow).map(drop)
    }

    fn read_file(&self, path: &str) -> WasiResult<Vec<u8>> {
        self.0.borrow().files.get(path).cloned().ok_or(errno::NOENT)
    }

    fn bind(&self, addr: SocketAddr) -> WasiResult<FakeListener> {
        let mut s = self.0.borrow_mut();
        if s.backlogs.contains_key(&addr) {
            return Err(errno::ADDRINUSE);
        }
        let backlog = Backlog::default();
        s.backlogs.insert(addr, backlog.clone());
        Ok(FakeListener {
            stream: FakeStream::Backlog(backlog.clone()),
            backlog,
        })
    }

    fn connect(&self, addr: SocketAddr) -> WasiResult<FakeConn> {
        let mut s = self.0.borrow_mut();
        if !s.reachable.contains(&addr) {
            return Err(errno::CONNREFUSED);
        }
        let pipe = Rc::new(RefCell::new(Pipe::default()));
        s.connections.push(pipe.clone());
        Ok(FakeConn {
            stream: FakeStream::Pipe(pipe.clone()),
            pipe,
        })
    }

    /// Port 0 is given 40000 and up, in the order of the binds.
    fn udp_bind(&self, addr: SocketAddr) -> WasiResult<FakeUdp> {
        let mut s = self.0.borrow_mut();
        s.udp_binds.push(addr);
        if let Some(&e) = s.udp_refused.get(&addr) {
            return Err(e);
        }
        let mut local = addr;
        if local.port() == 0 {
            local.set_port(40000 + s.udp.len() as u16);
        }
        if s.udp.iter().any(|p| p.borrow().local == local) {
            return Err(errno::ADDRINUSE);
        }
        let pipe = Rc::new(RefCell::new(UdpPipe {
            local,
            follows: s.fabric_ips.contains(&local.ip()),
            incoming: VecDeque::new(),
            paused: false,
            sent: Vec::new(),
            ended: None,
        }));
        s.udp.push(pipe.clone());
        Ok(FakeUdp {
            stream: FakeStream::Udp(pipe.clone()),
            pipe,
        })
    }

    fn fabric(&self, frames: &[u8]) -> WasiResult<Vec<u8>> {
        let mut s = self.0.borrow_mut();
        s.fabric_calls.push(frames.to_vec());
        s.fabric_replies.pop_front().ok_or(errno::NOTCAPABLE)
    }

    fn fabric_watch(&self) -> WasiResult<FakeWatch> {
        let pipe = Rc::new(RefCell::new(Pipe::default()));
        self.0.borrow_mut().watches.push(pipe.clone());
        Ok(FakeWatch {
            stream: FakeStream::Pipe(pipe.clone()),
            pipe,
        })
    }

    fn ipc_serve(&self, guid: Guid, name: &str) -> WasiResult<FakeIpc> {
        let mut s = self.0.borrow_mut();
        if let Some(e) = s.serve_errno {
            return Err(e);
        }
        let (ipc, pipe) = FakeIpc::new(IpcPipe {
            serving: Some((guid, name.into())),
            ..IpcPipe::default()
        });
        s.services.push(pipe);
        Ok(ipc)
    }

    fn ipc_open(&self) -> WasiResult<FakeIpc> {
        let (ipc, pipe) = FakeIpc::new(IpcPipe::default());
        self.0.borrow_mut().senders.push(pipe);
        Ok(ipc)
    }

    fn mover(&self) -> Option<FakeMover> {
        self.0.borrow().mover.as_ref()?;
        Some(FakeMover {
            host: self.clone(),
            stream: FakeStream::Move(self.clone()),
        })
    }

    fn wait(&self, streams: &mut [(&mut FakeStream, Interest)], timeout_ns: Option<u64>) {
        let mut s = self.0.borrow_mut();
        s.sleeps.push(timeout_ns);
        if let Some(script) = s.scripts.pop_front() {
            script(&mut s);
            return;
        }
        let waiting = streams.len();
        match timeout_ns {
            Some(t) => s.now += t,
            None => panic!("the runtime sleeps forever (on {waiting} streams)"),
        }
    }
}
