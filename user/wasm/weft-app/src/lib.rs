//! Event-driven Weft apps (PROTOCOL.md §13).
//!
//! An app is an ordinary `wasm32-wasip1` program: its `main` sets up (opens
//! listeners, registers interest, starts timers), hands its state to
//! [`run`] and returns. The runtime then calls the app with batches of
//! [`Event`]s; waiting costs no CPU. Sockets are `std::net` types, used
//! non-blocking: read and write until `WouldBlock`, then wait for the next
//! event.
//!
//! ```no_run
//! use weft_app::{App, Event, Interest};
//!
//! struct Ticker(u32);
//!
//! impl App for Ticker {
//!     fn event(&mut self, event: Event) {
//!         if let Event::Timer(_) = event {
//!             self.0 += 1;
//!             println!("tick {}", self.0);
//!             if self.0 == 3 {
//!                 weft_app::exit(0);
//!             }
//!             weft_app::timer(0, std::time::Duration::from_millis(100));
//!         }
//!     }
//! }
//!
//! fn main() {
//!     weft_app::timer(0, std::time::Duration::from_millis(100));
//!     weft_app::run(Ticker(0));
//! }
//! ```
//!
//! The app ends when it calls [`exit`] (or `std::process::exit`), or when
//! nothing can wake it any more: no interest, no timer, no child.
//!
//! In a device guest, [`fabric`] makes fabric calls: devices, processes,
//! spawn, kill, wait; and watches the fabric ([`fabric::watch`]): its
//! events come as [`Event::Readable`] of the watch's descriptor.
//!
//! [`ipc`] provides services by GUID and sends them messages and requests,
//! wherever in the fabric they run: a service's messages and a request's
//! answer come as [`Event::Readable`] of their descriptors, and commands
//! have blocking forms that suspend only the calling app.
//!
//! [`net::UdpSocket`] is a UDP socket, used like the TCP ones: its
//! datagrams come as [`Event::Readable`] of its descriptor; under a
//! daemon it may be bound on a fabric address another device serves.

pub mod fabric;
pub mod ipc;
pub mod net;

use std::cell::RefCell;
use std::io;
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::time::Duration;
use weft_control::app::{
    EventRecord, INTERFACE_BYTES, ProcessRecord, errno, interest as bits, kind, state,
};

/// The interface version this app is built for, in the custom section the
/// runtime checks before running an app that imports `weft` (PROTOCOL.md
/// §13.3). The section name must be a literal (`weft_control::app::
/// INTERFACE_SECTION`).
#[used]
#[unsafe(link_section = "weft_interface")]
static INTERFACE: [u8; 4] = INTERFACE_BYTES;

/// The runtime's functions (the `weft` import module,
/// `weft_control::app::MODULE`; the attribute needs the literal). Each
/// returns a WASI errno, 0 for success.
mod sys {
    #[link(wasm_import_module = "weft")]
    unsafe extern "C" {
        pub fn event_buffer(at: *mut u8, capacity: u32) -> i32;
        pub fn interest(fd: i32, bits: u32) -> i32;
        pub fn timer(token: u64, delay_ns: u64) -> i32;
        pub fn tcp_listen(addr: *const u8, len: usize, fd: *mut i32) -> i32;
        pub fn tcp_connect(addr: *const u8, len: usize, fd: *mut i32) -> i32;
        pub fn spawn(
            path: *const u8,
            path_len: usize,
            argv: *const u8,
            argv_len: usize,
            memory_limit: u64,
            pid: *mut u32,
        ) -> i32;
        pub fn kill(pid: u32) -> i32;
        pub fn processes(at: *mut u8, capacity: u32, count: *mut u32) -> i32;
        pub fn pid() -> u32;
        pub fn fabric_call(
            req: *const u8,
            req_len: usize,
            reply: *mut u8,
            cap: usize,
            len: *mut u32,
        ) -> i32;
        pub fn fabric_reply(reply: *mut u8, cap: usize, len: *mut u32) -> i32;
        pub fn fabric_watch(fd: *mut i32) -> i32;
        pub fn move_self(device: *const u8, len: usize) -> i32;
        pub fn fabric_event(fd: i32, buf: *mut u8, cap: usize, len: *mut u32) -> i32;
        pub fn ipc_serve(guid: *const u8, name: *const u8, name_len: usize, fd: *mut i32) -> i32;
        pub fn ipc_open(fd: *mut i32) -> i32;
        #[allow(clippy::too_many_arguments)]
        pub fn ipc_send(
            fd: i32,
            guid: *const u8,
            pid: *const u8,
            pid_len: usize,
            data: *const u8,
            data_len: usize,
            timeout_ms: i32,
            id: *mut u32,
        ) -> i32;
        pub fn ipc_receive(fd: i32, buf: *mut u8, cap: usize, record: *mut u8, wait: i32) -> i32;
        pub fn ipc_reply(fd: i32, id: u64, data: *const u8, len: usize) -> i32;
        pub fn ipc_refuse(fd: i32, id: u64, reason: *const u8, len: usize) -> i32;
        pub fn ipc_cancel(fd: i32, id: u32) -> i32;
        pub fn udp_bind(addr: *const u8, len: usize, fd: *mut i32) -> i32;
        pub fn udp_send_to(
            fd: i32,
            data: *const u8,
            data_len: usize,
            addr: *const u8,
            addr_len: usize,
        ) -> i32;
        pub fn udp_recv_from(
            fd: i32,
            buf: *mut u8,
            cap: usize,
            addr: *mut u8,
            addr_cap: usize,
            out: *mut u32,
        ) -> i32;
        pub fn udp_local_addr(fd: i32, addr: *mut u8, cap: usize, len: *mut u32) -> i32;
    }
}

/// What happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// The socket has data to read, a connection to accept, or its end.
    Readable(RawFd),
    /// The socket has room to write.
    Writable(RawFd),
    /// The monitor ended the socket with an error (a stream status code);
    /// its interest is dropped.
    Closed { fd: RawFd, code: u32 },
    /// The timer with this token is due.
    Timer(u64),
    /// A child process ended with this status.
    Exited { pid: u32, status: i32 },
    /// The app was moved to this device, and its descriptor `fd` could not
    /// follow it: `fd` is closed here (its interest dropped); `what` says
    /// what it was (`weft_control::app::moved`: 1 a file, 2 a directory,
    /// 3 a TCP listener, 4 a TCP connection, 5 a UDP socket, 6 a fabric
    /// watch). One per such descriptor, in the app's first batch there
    /// (PROTOCOL.md §13.4, §19.2).
    Moved { fd: RawFd, what: u16 },
}

/// What an app waits for on a socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Interest {
    Readable,
    Writable,
    Both,
    /// No longer interested.
    None,
}

/// An event-driven app.
pub trait App: 'static {
    /// Handles one event.
    fn event(&mut self, event: Event);
}

/// One process as [`processes`] lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Process {
    pub pid: u32,
    /// Its spawner; 0 for the first app.
    pub parent: u32,
    /// Whether it is running (or ready to) rather than waiting.
    pub running: bool,
    pub sockets: u32,
    /// Guest CPU time it used.
    pub cpu: Duration,
    /// Its linear memory in bytes.
    pub memory: u64,
    pub name: String,
}

/// Events per batch.
const BATCH: usize = 64;
const EVENT: usize = EventRecord::SIZE;

thread_local! {
    static APP: RefCell<Option<Box<dyn App>>> = const { RefCell::new(None) };
    static BUFFER: RefCell<Box<[u8; BATCH * EVENT]>> = RefCell::new(Box::new([0; BATCH * EVENT]));
}

/// The outcome of the `weft` import `call` that returned `errno`: an
/// error of std's kind for the errno (`WouldBlock` for `EAGAIN`,
/// `PermissionDenied` for `EACCES`, `AddrInUse`, ...) whose message names
/// the call (`Permission denied (os error 2), in tcp_listen`). A refusal for
/// want of a grant is also told by the runtime on standard error, naming
/// what was asked and the option that allows it.
pub(crate) fn check(call: &str, errno: i32) -> io::Result<()> {
    match errno {
        errno::SUCCESS => Ok(()),
        // Asked often by non-blocking sockets: no message to build.
        errno::AGAIN => Err(io::ErrorKind::WouldBlock.into()),
        e => {
            let os = io::Error::from_raw_os_error(e);
            Err(io::Error::new(os.kind(), format!("{os}, in {call}")))
        }
    }
}

/// Hands the app's state to the runtime; `main` should return after this.
/// Events go to `app` from then on.
pub fn run(app: impl App) {
    let at = BUFFER.with(|b| b.borrow_mut().as_mut_ptr());
    // SAFETY: the buffer is a live, never-moved heap allocation of
    // BATCH * EVENT bytes owned by this thread-local for the program's life.
    if let Err(e) = check("event_buffer", unsafe {
        sys::event_buffer(at, BATCH as u32)
    }) {
        eprintln!("weft-app: cannot register the event buffer: {e}");
        exit(1);
    }
    APP.with(|a| *a.borrow_mut() = Some(Box::new(app)));
}

/// Called by the runtime with `count` events in the buffer.
#[unsafe(no_mangle)]
pub extern "C" fn weft_on_events(count: u32) {
    let events: Vec<Event> = BUFFER.with(|b| {
        let b = b.borrow();
        b.chunks_exact(EVENT)
            .take(count as usize)
            .filter_map(|r| r.try_into().ok())
            .filter_map(|r| decode(EventRecord::decode(r)))
            .collect()
    });
    APP.with(|a| {
        if let Some(app) = a.borrow_mut().as_mut() {
            for e in events {
                app.event(e);
            }
        }
    });
}

/// The event of a record; `None` for a kind this SDK does not know.
fn decode(r: EventRecord) -> Option<Event> {
    let EventRecord { kind, id, value } = r;
    Some(match kind {
        kind::READABLE => Event::Readable(id as RawFd),
        kind::WRITABLE => Event::Writable(id as RawFd),
        kind::CLOSED => Event::Closed {
            fd: id as RawFd,
            code: value as u32,
        },
        kind::TIMER => Event::Timer(value),
        kind::EXITED => Event::Exited {
            pid: id,
            status: value as i32,
        },
        kind::MOVED => Event::Moved {
            fd: id as RawFd,
            what: u16::try_from(value).ok()?,
        },
        _ => return None,
    })
}

/// Sets what the app waits for on socket `fd` (replacing what it was).
pub fn interest(fd: &impl AsRawFd, interest: Interest) -> io::Result<()> {
    let bits = match interest {
        Interest::Readable => bits::READABLE,
        Interest::Writable => bits::WRITABLE,
        Interest::Both => bits::ALL,
        Interest::None => 0,
    };
    // SAFETY: plain values.
    check("interest", unsafe { sys::interest(fd.as_raw_fd(), bits) })
}

/// Delivers [`Event::Timer`]`(token)` once, after `delay`.
pub fn timer(token: u64, delay: Duration) {
    // SAFETY: plain values; the call cannot fail.
    unsafe { sys::timer(token, delay.as_nanos().min(u64::MAX as u128) as u64) };
}

/// Listens on `addr` (`IP:PORT`, granted by `weft run --listen`), non-blocking.
pub fn listen(addr: &str) -> io::Result<TcpListener> {
    let mut fd = -1;
    // SAFETY: `addr` is valid for its length; `fd` is a valid out pointer.
    check("tcp_listen", unsafe {
        sys::tcp_listen(addr.as_ptr(), addr.len(), &mut fd)
    })?;
    // SAFETY: the runtime just opened `fd` for this app, and nothing else
    // owns it.
    Ok(unsafe { TcpListener::from_raw_fd(fd) })
}

/// Connects to `addr` (granted by `weft run --connect`), non-blocking.
pub fn connect(addr: &str) -> io::Result<TcpStream> {
    let mut fd = -1;
    // SAFETY: as for `listen`.
    check("tcp_connect", unsafe {
        sys::tcp_connect(addr.as_ptr(), addr.len(), &mut fd)
    })?;
    // SAFETY: as for `listen`.
    Ok(unsafe { TcpStream::from_raw_fd(fd) })
}

/// Starts the Wasm module at `path` (under `--fs-root`) with `args` as a new
/// process; its end arrives as [`Event::Exited`]. Returns its id.
pub fn spawn(path: &str, args: &[&str]) -> io::Result<u32> {
    spawn_with_memory(path, args, 0)
}

/// As [`spawn`], with the app's linear memory capped at `limit` bytes (0:
/// the runtime's default); growing past it fails as out of memory.
pub fn spawn_with_memory(path: &str, args: &[&str], limit: u64) -> io::Result<u32> {
    let mut argv = Vec::new();
    for a in args {
        argv.extend_from_slice(a.as_bytes());
        argv.push(0);
    }
    let mut pid = 0;
    // SAFETY: the slices are valid for their lengths; `pid` is a valid out
    // pointer.
    check("spawn", unsafe {
        sys::spawn(
            path.as_ptr(),
            path.len(),
            argv.as_ptr(),
            argv.len(),
            limit,
            &mut pid,
        )
    })?;
    Ok(pid)
}

/// Ends process `pid` (not the first app); its parent sees status 137.
pub fn kill(pid: u32) -> io::Result<()> {
    // SAFETY: a plain value.
    check("kill", unsafe { sys::kill(pid) })
}

/// This process's id.
pub fn pid() -> u32 {
    // SAFETY: no arguments.
    unsafe { sys::pid() }
}

/// Every process of the runtime, by id.
pub fn processes() -> io::Result<Vec<Process>> {
    const MAX: usize = 256;
    let mut buf = vec![0u8; MAX * ProcessRecord::SIZE];
    let mut count = 0u32;
    // SAFETY: `buf` holds MAX records; `count` is a valid out pointer.
    check("processes", unsafe {
        sys::processes(buf.as_mut_ptr(), MAX as u32, &mut count)
    })?;
    Ok(buf
        .chunks_exact(ProcessRecord::SIZE)
        .take(count as usize)
        .filter_map(|r| r.try_into().ok())
        .map(|r| {
            let r = ProcessRecord::decode(r);
            Process {
                pid: r.pid,
                parent: r.parent,
                running: r.state == state::RUNNING,
                sockets: r.sockets,
                cpu: Duration::from_nanos(r.cpu_ns),
                memory: r.memory,
                name: String::from_utf8_lossy(r.name()).into_owned(),
            }
        })
        .collect())
}

/// Ends the app with `status`.
pub fn exit(status: i32) -> ! {
    std::process::exit(status)
}
