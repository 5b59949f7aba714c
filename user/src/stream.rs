//! The program's side of its streams (PROTOCOL.md §8–§9): rings mapped at
//! `USER_PIPES_ADDR`, the doorbell at `USER_DOORBELLS_ADDR`, the control pipe
//! that opens and closes stream pairs, and the `wait` syscall for sleeping.
//! Reads, writes and doorbells are plain memory operations at ring 3; the
//! kernel is entered only to sleep.
//!
//! A [`Stream`] is one open stream pair: whole frames with [`Stream::send`]
//! and [`Stream::recv`], raw bytes with the `embedded-io` traits, and
//! [`poll`] to wait for any of several streams.

use crate::cell::ExclusiveCell;
use crate::error::Error;
use crate::syscall;
use crate::time;
use alloc::vec::Vec;
use core::ptr::{addr_of, read_volatile};
use core::sync::atomic::{AtomicU64, Ordering};
use embedded_io::{ErrorType, Read, Write};
use weft_abi::nr;
use weft_control::control_pipe::{self, Reply, Request};
use weft_control::frame::{self, Code, ErrorBody, HEADER, Header, kind};
use weft_control::layout::USER_STATUS_ADDR;
use weft_control::process::{MAX_PROCESSES, StatusPage};
use weft_control::streams::{
    self, PIPE_REGION_SIZE, RING_CAPACITY, USER_DOORBELLS_ADDR, USER_PARK_ADDR, USER_PIPES_ADDR,
    bell, park, slot,
};
use weft_data_pipe::{
    Blocking, Consumer, Memory, Notify, Producer, RawRegion, Wait, WaitDecision, Waitable,
};

/// How long a ring end polls before sleeping in the kernel. A sleep and its
/// wake-up are emulated ring-0 work on nested KVM (~430 µs of latency per
/// IPC request served asleep), but a polling vCPU holds a host CPU the
/// monitor needs: on a 2-core host, polling 1-2 ms made cross-device IPC
/// round trips slower (2.3-4.0 ms) than not polling (1.3 ms). 100 µs covers
/// what the local monitor answers at once (file and control-pipe calls,
/// ~50 µs). A spin counted in polls instead, halving after each sleep,
/// decayed to nothing under requests ~1 ms apart.
const SPIN_NS: u64 = 100_000;
/// The most polls of one spin, whatever the clock says (it reads 0 when the
/// monitor could not tell the TSC's rate).
const MAX_POLLS: u32 = 1 << 16;
/// Polls between two looks at the clock and the status page.
const CHECK_EVERY: u32 = 32;

/// One spin of a ring end: polls until [`SPIN_NS`] pass, and not at all
/// while another process is runnable (it may be the peer, and the CPU is
/// better given away).
#[derive(Clone, Copy, Debug, Default)]
struct Spin {
    until_ns: u64,
}

impl Spin {
    fn start() -> Self {
        Self {
            until_ns: time::monotonic_ns().saturating_add(SPIN_NS),
        }
    }

    /// Whether to poll again, `polls` polls in.
    fn go_on(&self, polls: u32) -> bool {
        if polls >= MAX_POLLS {
            return false;
        }
        !polls.is_multiple_of(CHECK_EVERY)
            || (!others_runnable() && time::monotonic_ns() < self.until_ns)
    }
}

/// What the process status page (§14.6), which the kernel rewrites at
/// every scheduling decision, says of the caller's chances: a hint, as a
/// stale read costs one spin, one sleep or one exit, no more.
struct Outlook {
    /// Another process is runnable.
    others_runnable: bool,
    /// The monitor may hold the CPU for the caller's wait (§8.4): it runs
    /// alone, with no wake pending and no timer armed to fire soon.
    may_park: bool,
}

fn outlook() -> Outlook {
    let page = USER_STATUS_ADDR as *const StatusPage;
    // SAFETY: the monitor maps the status page read-only at
    // USER_STATUS_ADDR for every program's whole life (§1.3); the fields
    // read are aligned integers inside it (`StatusPage` is `repr(C)` with
    // its layout asserted). The kernel writes them meanwhile, hence
    // volatile. The caller runs, so `current` is its own slot.
    let (runnable, current, pending, armed) = unsafe {
        (
            read_volatile(addr_of!((*page).runnable)),
            read_volatile(addr_of!((*page).current)),
            read_volatile(addr_of!((*page).pending)),
            read_volatile(addr_of!((*page).armed)),
        )
    };
    let me = 1u32.checked_shl(current).unwrap_or(0);
    Outlook {
        others_runnable: runnable & !me != 0,
        may_park: runnable == me
            && pending & me == 0
            && (armed == 0 || time::ns_until_tsc(armed) > park::TIMER_CLEARANCE_NS),
    }
}

fn others_runnable() -> bool {
    outlook().others_runnable
}

/// The CPU time the other processes of the guest have been charged, in
/// TSC ticks (each process's counted up to its last switch out): it moves
/// when another process ran. A hint, read without the page's sequence lock.
fn others_ticks() -> u64 {
    let page = USER_STATUS_ADDR as *const StatusPage;
    // SAFETY: as in `outlook`: the status page is mapped read-only at
    // USER_STATUS_ADDR for the program's life; the fields read are aligned
    // integers inside it, written by the kernel meanwhile (volatile).
    unsafe {
        let occupied = read_volatile(addr_of!((*page).occupied));
        let me = 1u32
            .checked_shl(read_volatile(addr_of!((*page).current)))
            .unwrap_or(0);
        let mut sum = 0u64;
        for i in 0..MAX_PROCESSES {
            if (occupied & !me) >> i & 1 == 1 {
                sum = sum.wrapping_add(read_volatile(addr_of!((*page).slots[i].cpu_ticks)));
            }
        }
        sum
    }
}

/// The stream-interrupt count the last `wait` syscall returned. Read before
/// a ring end announces it will sleep, so an interrupt raised after that
/// announcement makes the next `wait` return at once (§8.4).
static SEEN: AtomicU64 = AtomicU64::new(0);

/// Sleeps until the stream-interrupt count moves past [`SEEN`] or
/// `timeout_ns` passes (`u64::MAX`: no limit), or, alone and with no
/// limit, until the monitor ends its hold of the CPU (§8.4). Returns
/// whether it was woken.
fn wait_interrupt(seen: u64, timeout_ns: u64) -> bool {
    if timeout_ns == u64::MAX && outlook().may_park {
        // SAFETY: the monitor maps the park page read-only at
        // USER_PARK_ADDR for every program's whole life (§1.3); reading it
        // exits to the monitor, which answers with a `park` code.
        let parked = unsafe { read_volatile(USER_PARK_ADDR as *const u32) };
        if parked == park::WOKEN {
            return true;
        }
    }
    // SAFETY: no pointer arguments.
    match unsafe { syscall::syscall(nr::WAIT, seen, timeout_ns, 0, 0) } {
        Ok(count) => {
            SEEN.store(count, Ordering::Relaxed);
            count != seen
        }
        Err(_) => true,
    }
}

/// Tells the monitor that a slot's end changed: sets the slot's pending bit
/// in the bell page and, if it was clear, writes the doorbell (§8.2).
pub struct Doorbell {
    word: u64,
    mask: u64,
}

impl Doorbell {
    /// The doorbell of `slot` for `reason` (`bell::DATA` or `bell::SPACE`).
    pub fn new(slot: u64, reason: u64) -> Self {
        let (word, mask) = bell::bit(slot, reason);
        Self { word, mask }
    }
}

impl Notify for Doorbell {
    fn notify(&self) {
        // SAFETY: the monitor maps the pipe region read/write at
        // USER_PIPES_ADDR for the program's lifetime (§8), `word` is an
        // 8-aligned offset inside its bell page, which the runtime accesses
        // only atomically; the monitor swaps it concurrently.
        let pending = unsafe { AtomicU64::from_ptr((USER_PIPES_ADDR + self.word) as *mut u64) };
        if pending.fetch_or(self.mask, Ordering::SeqCst) & self.mask == 0 {
            // SAFETY: the doorbell page is mapped read/write at
            // USER_DOORBELLS_ADDR (§8); a write there has no effect on memory.
            unsafe { core::ptr::write_volatile(USER_DOORBELLS_ADDR as *mut u32, 1) };
        }
    }
}

/// When a ring end polls before it sleeps.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Polling {
    /// At every wait: the monitor answers (files, the control pipe,
    /// sockets), usually within a spin.
    #[default]
    Always,
    /// Only while its waits end through other processes of the guest
    /// (another process ran during the last one): for a stream whose
    /// answers come from other programs, on this device or another (IPC).
    /// A program waiting for another device polls in vain for hundreds of
    /// µs, and a polling vCPU holds a host CPU the monitor needs to carry
    /// the answer (on a 2-core host, a 100 µs spin on each side made
    /// cross-device IPC round trips ~25% slower); parked instead, it
    /// leaves the CPU to the monitor. A local peer's wake-up, though,
    /// reaches a polling program as an interrupt, while a parked one pays
    /// a VM exit for it.
    WhenShared,
}

/// A ring end's [`Polling`], and, for [`Polling::WhenShared`], what its
/// last wait saw (the other ends look at nothing).
#[derive(Clone, Copy, Debug, Default)]
struct Pace {
    polling: Polling,
    /// Another process ran during the last wait.
    shared: bool,
    /// [`others_ticks`] when the current wait began.
    others_then: u64,
}

impl Pace {
    /// Whether a wait of this end should poll first.
    fn polls(&self) -> bool {
        self.polling == Polling::Always || self.shared
    }

    /// A wait begins.
    fn begin(&mut self) {
        if self.polling == Polling::WhenShared {
            self.others_then = others_ticks();
        }
    }

    /// The wait that began ended.
    fn end(&mut self) {
        if self.polling == Polling::WhenShared {
            self.shared = others_ticks() != self.others_then;
        }
    }
}

/// Polls for a while ([`Spin`]) if the end's [`Polling`] says so, then
/// sleeps in the kernel until the next stream interrupt.
#[derive(Default)]
pub struct StreamWait {
    spin: Spin,
    pace: Pace,
}

impl Wait for StreamWait {
    fn wait(&mut self) {
        wait_interrupt(SEEN.load(Ordering::Relaxed), u64::MAX);
    }

    fn poll_again(&mut self, polls: u32) -> bool {
        if polls == 0 {
            if !self.pace.polls() {
                return false;
            }
            self.spin = Spin::start();
        }
        self.spin.go_on(polls)
    }

    fn blocked(&mut self) {
        self.pace.begin();
    }

    fn unblocked(&mut self) {
        self.pace.end();
    }
}

/// The pipe region as this program sees it.
fn region() -> Option<RawRegion> {
    let ptr = core::ptr::NonNull::new(USER_PIPES_ADDR as *mut u8)?;
    // SAFETY: the monitor maps the whole pipe region read/write at
    // USER_PIPES_ADDR for the program's lifetime (§8), and the runtime reaches
    // its rings only through ring ends.
    unsafe { RawRegion::new(ptr, PIPE_REGION_SIZE as usize) }.ok()
}

/// A blocking writer into a slot's `to_monitor` ring.
pub type Writer = Blocking<Producer<RawRegion, Doorbell>, StreamWait>;
/// A blocking reader of a slot's `to_guest` ring.
pub type Reader = Blocking<Consumer<RawRegion, Doorbell>, StreamWait>;

/// The writer of slot `slot`'s `to_monitor` ring.
pub fn writer(slot: u64) -> Option<Writer> {
    let rings = streams::rings(slot)?;
    let tx = Producer::new(
        region()?,
        rings.to_monitor as usize,
        RING_CAPACITY as usize,
        Doorbell::new(slot, bell::DATA),
    )
    .ok()?;
    Some(Blocking::new(tx, StreamWait::default(), MAX_POLLS))
}

/// The reader of slot `slot`'s `to_guest` ring.
pub fn reader(slot: u64) -> Option<Reader> {
    let rings = streams::rings(slot)?;
    let rx = Consumer::new(
        region()?,
        rings.to_guest as usize,
        RING_CAPACITY as usize,
        Doorbell::new(slot, bell::SPACE),
    )
    .ok()?;
    Some(Blocking::new(rx, StreamWait::default(), MAX_POLLS))
}

/// The reader of standard input: rings the slot once, which asks the
/// monitor to start supplying input (§8.1).
pub fn stdin_reader() -> Option<Reader> {
    Doorbell::new(slot::STDIN, bell::SPACE).notify();
    reader(slot::STDIN)
}

/// The control pipe's client: one request at a time (programs are
/// single-threaded), matched to its reply by id.
struct Control {
    tx: Writer,
    rx: Reader,
    next_request: u32,
}

static CONTROL: ExclusiveCell<Option<Control>> = ExclusiveCell::new(None);

fn control<R>(f: impl FnOnce(&mut Control) -> Result<R, Error>) -> Result<R, Error> {
    CONTROL
        .with(|c| {
            if c.is_none() {
                *c = Some(Control {
                    tx: writer(slot::CONTROL).ok_or(Error::from_code(Code::Closed))?,
                    rx: reader(slot::CONTROL).ok_or(Error::from_code(Code::Closed))?,
                    next_request: 1,
                });
            }
            match c.as_mut() {
                Some(c) => f(c),
                None => Err(Error::from_code(Code::Closed)),
            }
        })
        .unwrap_or(Err(Error::new(Code::Invalid, "control pipe re-entered")))
}

impl Control {
    fn call(&mut self, make: impl FnOnce(u32) -> Request) -> Result<Reply, Error> {
        let id = self.next_request;
        self.next_request = id.wrapping_add(1);
        let mut buf = [0u8; control_pipe::MAX_FRAME];
        let n = make(id).encode(&mut buf);
        self.tx.write_all(&buf[..n]).map_err(Error::ring)?;
        let mut body = [0u8; control_pipe::MAX_FRAME];
        let header = read_header(&mut self.rx)?;
        if header.len as usize > body.len() {
            return Err(Error::new(Code::Protocol, "control reply too long"));
        }
        let body = &mut body[..header.len as usize];
        self.rx.read_exact(body).map_err(Error::read_exact)?;
        let reply = Reply::decode(header, body).map_err(Error::wire)?;
        if reply.request() != id {
            return Err(Error::new(
                Code::Protocol,
                "control reply for another request",
            ));
        }
        Ok(reply)
    }
}

fn read_header(rx: &mut Reader) -> Result<Header, Error> {
    let mut raw = [0u8; HEADER];
    rx.read_exact(&mut raw).map_err(Error::read_exact)?;
    Header::decode(&raw).map_err(Error::wire)
}

/// What a stream waits for in [`poll`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Interest {
    /// Data (or end of stream) to read.
    Read,
    /// Space to write.
    Write,
    /// Either.
    Both,
}

/// One open stream pair (PROTOCOL.md §9). Dropping it closes the pair
/// through the control pipe.
pub struct Stream {
    slot: u64,
    rx: Reader,
    tx: Writer,
    status: usize,
}

impl Stream {
    /// Opens a stream pair through the control pipe.
    pub fn open() -> Result<Self, Error> {
        let reply = control(|c| c.call(|request| Request::Open { request }))?;
        match reply {
            Reply::Opened { slot, rings, .. } => {
                let slot = u64::from(slot);
                let closed = || Error::from_code(Code::Closed);
                Ok(Self {
                    slot,
                    rx: reader(slot).ok_or_else(closed)?,
                    tx: writer(slot).ok_or_else(closed)?,
                    status: rings.status as usize,
                })
            }
            Reply::Refused { code, .. } => Err(Error::new(
                code,
                "the control pipe refused to open a stream",
            )),
            Reply::Closed { .. } => Err(Error::new(
                Code::Protocol,
                "control pipe answered open with closed",
            )),
        }
    }

    /// Opens a stream pair and sends the first frame of protocol `kind`
    /// (the version, then `params`); returns the stream and the monitor's
    /// reply to it, or the error it sent.
    pub fn connect(kind: u16, params: &[u8], reply: &mut Vec<u8>) -> Result<(Self, u16), Error> {
        let mut s = Self::open()?;
        let mut first = alloc::vec![0u8; HEADER + 4 + params.len()];
        let mut e = frame::Encoder::new(&mut first, kind);
        e.u32(frame::VERSION).bytes(params);
        let n = e
            .finish()
            .ok_or(Error::new(Code::TooLarge, "first frame too long"))?;
        s.send(&first[..n])?;
        let k = s.recv(reply)?;
        Ok((s, k))
    }

    /// The stream's slot (its id).
    pub fn slot(&self) -> u64 {
        self.slot
    }

    /// Writes one whole frame (blocking while the ring is full).
    pub fn send(&mut self, frame: &[u8]) -> Result<(), Error> {
        self.tx.write_all(frame).map_err(|e| self.ended(e))
    }

    /// Reads one whole frame's body into `body` and returns its kind. An
    /// error frame becomes `Err` with its code and message; the end of the
    /// stream becomes `Err` with the stream's status code (or
    /// [`Code::Closed`]).
    pub fn recv(&mut self, body: &mut Vec<u8>) -> Result<u16, Error> {
        let header = self.recv_header()?;
        body.clear();
        body.resize(header.len as usize, 0);
        self.recv_body(body)?;
        Ok(header.kind)
    }

    /// Reads the next frame's header, leaving its body in the ring for
    /// [`Stream::recv_body`] (which lets a caller read a body straight into
    /// its own buffer). An error frame is read whole and becomes `Err`.
    pub fn recv_header(&mut self) -> Result<Header, Error> {
        let header = read_header(&mut self.rx).map_err(|e| self.status_or(e))?;
        if header.kind == kind::ERROR {
            let mut body = [0u8; 4 + frame::MAX_MESSAGE];
            let body = body
                .get_mut(..header.len as usize)
                .ok_or(Error::new(Code::Protocol, "error frame too long"))?;
            self.recv_body(body)?;
            let e = ErrorBody::decode(body).map_err(Error::wire)?;
            return Err(Error::new(e.code, e.message));
        }
        Ok(header)
    }

    /// Reads exactly `body.len()` bytes of the current frame's body.
    pub fn recv_body(&mut self, body: &mut [u8]) -> Result<(), Error> {
        self.rx
            .read_exact(body)
            .map_err(|e| self.status_or(Error::read_exact(e)))
    }

    /// Writes zeros over the free room of the outgoing ring without sending
    /// them (they stay the writer's, §7): under shadow paging the first
    /// write a process makes to each page costs ~30 µs while the host
    /// builds its entry, so a caller about to send much at once (a moving
    /// app's snapshot, §19.3) pays that ahead. The room of a ring that
    /// holds unread bytes is only part of it.
    pub fn touch_room(&mut self) {
        const ZEROS: [u8; 4096] = [0; 4096];
        let tx = self.tx.get_mut();
        let Ok(room) = tx.reserve(tx.capacity()) else {
            return;
        };
        for chunk in [room.first, room.second] {
            let mut at = 0;
            while at < chunk.len() {
                at += chunk.write(at, &ZEROS);
            }
        }
    }

    /// Sends a frame and reads the reply's body into `body`.
    pub fn call(&mut self, frame: &[u8], body: &mut Vec<u8>) -> Result<u16, Error> {
        self.send(frame)?;
        self.recv(body)
    }

    /// The stream's status word (§8.3): why the monitor ended it, if it did.
    pub fn status(&self) -> Option<Code> {
        let r = region()?;
        Code::from_u32(r.load_u32(self.status, Ordering::Acquire))
    }

    /// Closes the writing direction: the monitor reads end of stream after
    /// the bytes already written.
    pub fn close_write(&mut self) {
        self.tx.get_mut().close();
    }

    /// Reads what is there without blocking: `Ok(None)` if nothing yet,
    /// `Ok(Some(0))` at the end of the stream.
    pub fn try_read(&mut self, buf: &mut [u8]) -> Result<Option<usize>, Error> {
        match self.rx.get_mut().read(buf) {
            Ok(n) => Ok(Some(n)),
            Err(weft_data_pipe::Error::WouldBlock) => Ok(None),
            Err(e) => Err(self.ended(e)),
        }
    }

    /// Writes what fits without blocking (`Ok(0)` if the ring is full).
    pub fn try_write(&mut self, buf: &[u8]) -> Result<usize, Error> {
        match self.tx.get_mut().write(buf) {
            Ok(n) => Ok(n),
            Err(weft_data_pipe::Error::WouldBlock) => Ok(0),
            Err(e) => Err(self.ended(e)),
        }
    }

    /// The error for a ring operation that failed: the status word's code
    /// if the monitor ended the stream, else what the ring said.
    fn ended(&self, e: weft_data_pipe::Error) -> Error {
        self.status_or(Error::ring(e))
    }

    fn status_or(&self, e: Error) -> Error {
        match self.status() {
            Some(code) => Error::new(code, "the monitor ended the stream"),
            None => e,
        }
    }

    /// Whether the stream is ready for `interest` now (or ended), without
    /// waiting.
    pub fn ready(&mut self, interest: Interest) -> bool {
        match interest {
            Interest::Read => self.rx.get_mut().ready().unwrap_or(true),
            Interest::Write => self.tx.get_mut().ready().unwrap_or(true),
            Interest::Both => {
                self.rx.get_mut().ready().unwrap_or(true)
                    || self.tx.get_mut().ready().unwrap_or(true)
            }
        }
    }

    fn prepare_wait(&mut self, interest: Interest) -> bool {
        let awake = |d| d != Ok(WaitDecision::Sleep);
        match interest {
            Interest::Read => awake(self.rx.get_mut().prepare_wait()),
            Interest::Write => awake(self.tx.get_mut().prepare_wait()),
            // Both ends are armed (no short circuit): either may wake.
            Interest::Both => {
                let r = awake(self.rx.get_mut().prepare_wait());
                awake(self.tx.get_mut().prepare_wait()) | r
            }
        }
    }

    fn end_wait(&mut self) {
        self.rx.get_mut().end_wait();
        self.tx.get_mut().end_wait();
    }

    /// Makes both ends poll before they sleep only as `polling` says.
    pub fn set_polling(&mut self, polling: Polling) {
        self.rx.wait_mut().pace.polling = polling;
        self.tx.wait_mut().pace.polling = polling;
    }

    /// The paces of the ends `interest` waits on.
    fn paces(&mut self, interest: Interest) -> impl Iterator<Item = &mut Pace> {
        let rx = interest != Interest::Write;
        let tx = interest != Interest::Read;
        let (r, t) = (&mut self.rx.wait_mut().pace, &mut self.tx.wait_mut().pace);
        [rx.then_some(r), tx.then_some(t)].into_iter().flatten()
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        self.tx.get_mut().close();
        let slot = self.slot as u32;
        let _ = control(|c| c.call(|request| Request::Close { request, slot }));
    }
}

impl ErrorType for Stream {
    type Error = Error;
}

impl Read for Stream {
    /// Raw bytes (TCP connections): blocks until at least one byte, `Ok(0)`
    /// at a clean end of stream.
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Error> {
        match self.rx.read(buf) {
            Ok(0) => match self.status() {
                Some(code) => Err(Error::new(code, "the monitor ended the stream")),
                None => Ok(0),
            },
            Ok(n) => Ok(n),
            Err(e) => Err(self.ended(e)),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Error> {
        self.tx.write(buf).map_err(|e| self.ended(e))
    }

    fn flush(&mut self) -> Result<(), Error> {
        Ok(())
    }
}

/// How near a deadline a wait spins up to it rather than sleeping: a
/// sleep's wake-up by the timer is emulated ring-0 work on nested KVM,
/// which woke a 1 ms timer of a Wasm app ~0.3 ms late.
const DEADLINE_SPIN_NS: u64 = 400_000;

/// The most streams [`poll`] looks at: one bit each in its result.
pub const POLL_MAX: usize = 128;

/// Blocks until at least one of `streams` is ready for its interest (or
/// ended), or `timeout_ns` passes (`None`: no limit). Returns the indices
/// ready, as a bit per entry in the result's order (at most [`POLL_MAX`]
/// entries are considered: more than a process has slots). A deadline within [`DEADLINE_SPIN_NS`] is waited for by
/// polling, while no other process is runnable.
pub fn poll(streams: &mut [(&mut Stream, Interest)], timeout_ns: Option<u64>) -> u128 {
    let len = streams.len().min(POLL_MAX);
    let streams = &mut streams[..len];
    let ready = |streams: &mut [(&mut Stream, Interest)]| {
        let mut bits = 0u128;
        for (n, (s, i)) in streams.iter_mut().enumerate() {
            if s.ready(*i) {
                bits |= 1 << n;
            }
        }
        bits
    };
    let first = ready(streams);
    if first != 0 {
        return first;
    }
    let deadline = timeout_ns.map(|ns| time::monotonic_ns().saturating_add(ns));
    for (s, i) in streams.iter_mut() {
        s.paces(*i).for_each(Pace::begin);
    }
    let r = wait_ready(streams, deadline, ready);
    for (s, i) in streams.iter_mut() {
        s.paces(*i).for_each(Pace::end);
    }
    r
}

/// [`poll`]'s wait, once no stream was ready: spins if a stream's
/// [`Polling`] says so (or up to a near `deadline`), then sleeps, until
/// `ready` finds one or the deadline passes.
fn wait_ready(
    streams: &mut [(&mut Stream, Interest)],
    deadline: Option<u64>,
    ready: impl Fn(&mut [(&mut Stream, Interest)]) -> u128,
) -> u128 {
    let spins = streams
        .iter_mut()
        .any(|(s, i)| s.paces(*i).any(|p| p.polls()));
    loop {
        // Each round looks at the streams at least once: a stream found
        // ready only by `prepare_wait` below must be seen here next.
        let mut spin = Spin::start();
        if !spins {
            spin.until_ns = 0;
        }
        if let Some(d) = deadline {
            let near = d.saturating_sub(DEADLINE_SPIN_NS) <= time::monotonic_ns();
            spin.until_ns = if near { d } else { spin.until_ns.min(d) };
        }
        let mut polls = 0;
        loop {
            let r = ready(streams);
            if r != 0 {
                return r;
            }
            if !spin.go_on(polls) {
                break;
            }
            core::hint::spin_loop();
            polls += 1;
        }
        let left = match deadline {
            Some(d) => match d.checked_sub(time::monotonic_ns()) {
                Some(left) if left > 0 => left,
                _ => return ready(streams),
            },
            None => u64::MAX,
        };
        let seen = SEEN.load(Ordering::Relaxed);
        let mut woke = false;
        for (s, i) in streams.iter_mut() {
            woke |= s.prepare_wait(*i);
        }
        let moved = woke || wait_interrupt(seen, left);
        for (s, _) in streams.iter_mut() {
            s.end_wait();
        }
        if !moved {
            return ready(streams);
        }
    }
}
