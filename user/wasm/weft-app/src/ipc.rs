//! Services by GUID (PROTOCOL.md §13.7, §18), for an app in a device
//! guest: provide a service, send it one-way messages, make requests that
//! get exactly one answer, wherever in the fabric its provider runs.
//!
//! A [`Service`] and an [`Ipc`] (a stream for sending) are descriptors in
//! the app's event model: register interest in them (readable) like in a
//! socket, and on each [`crate::Event::Readable`] of the descriptor take
//! what is there ([`Service::next_message`], [`Ipc::next_answer`]) until
//! it says `None`. Waiting costs nothing and holds up no other app.
//!
//! ```no_run
//! use weft_app::{App, Event, Interest};
//! use weft_app::ipc::{Guid, Service};
//!
//! struct Echo(Service);
//!
//! impl App for Echo {
//!     fn event(&mut self, _: Event) {
//!         while let Ok(Some(m)) = self.0.next_message() {
//!             if m.request {
//!                 let _ = self.0.reply(m.id, &m.data);
//!             }
//!         }
//!     }
//! }
//!
//! let guid = Guid::parse("6f1c2a4e-8b3d-4f0a-9c11-223344556677").unwrap();
//! let service = Service::create(guid, "echo").unwrap();
//! weft_app::interest(&service, Interest::Readable).unwrap();
//! weft_app::run(Echo(service));
//! ```
//!
//! A command (no event loop) uses the blocking forms instead:
//! [`Service::wait_message`], [`Ipc::send`] and [`Ipc::request`] suspend
//! only the calling app until the message (or the answer) is there.
//! Where the app does not run in a device guest (under `weft run`) opening
//! either fails with [`Error::Unavailable`]`(76)`.

use crate::sys;
use std::fmt;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;
use weft_control::app::{IPC_ONE_WAY, IpcRecord, errno, ipc_flags, ipc_kind, ipc_wait};

pub use weft_control::ipc_proto::{Guid, IpcError};

/// Why an IPC call failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// The runtime refused the call or its stream failed: this WASI errno
    /// (76, `ENOTCAPABLE`: the app is not in a device guest; 2, `EACCES`:
    /// the service is not this app's to provide).
    Unavailable(i32),
    /// The message got no answer: why, and the fabric's message (for
    /// [`IpcError::Refused`], the provider's reason).
    Failed { error: IpcError, message: String },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unavailable(errno::NOTCAPABLE) => f.write_str(
                "IPC is not available: the app does not run in a device guest (`weft daemon`)",
            ),
            Self::Unavailable(e) => {
                write!(
                    f,
                    "the IPC call failed: {}",
                    std::io::Error::from_raw_os_error(*e)
                )
            }
            Self::Failed { error, message } => write!(f, "{error}: {message}"),
        }
    }
}

impl std::error::Error for Error {}

fn check(e: i32) -> Result<(), Error> {
    match e {
        errno::SUCCESS => Ok(()),
        e => Err(Error::Unavailable(e)),
    }
}

/// A message delivered to a [`Service`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// Its id, for [`Service::reply`] and [`Service::refuse`].
    pub id: u64,
    /// Whether it is a request: answer it exactly once.
    pub request: bool,
    /// Who sent it: a pid `DEVICE:N`, or a device's name for its CLI.
    pub sender: String,
    pub data: Vec<u8>,
}

/// The first buffer for what `ipc_receive` delivers; a larger one is made
/// when something does not fit.
const FIRST_BUFFER: usize = 4096;

/// An IPC descriptor and the buffer `ipc_receive` fills.
#[derive(Debug)]
struct End {
    fd: OwnedFd,
    buf: Vec<u8>,
}

impl End {
    /// The descriptor the runtime wrote at `fd` when `e` is success.
    fn opened(e: i32, fd: i32) -> Result<End, Error> {
        check(e)?;
        Ok(End {
            // SAFETY: the runtime just opened `fd` for this app, and
            // nothing else owns it.
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
            buf: vec![0; FIRST_BUFFER],
        })
    }

    /// The next record and its bytes; `None` if nothing is there (and
    /// `block` is false).
    fn receive(&mut self, block: bool) -> Result<Option<(IpcRecord, &[u8])>, Error> {
        let wait = if block {
            ipc_wait::BLOCK
        } else {
            ipc_wait::NOW
        };
        let mut record = [0u8; IpcRecord::SIZE];
        loop {
            // SAFETY: `buf` and `record` are valid for their lengths.
            let e = unsafe {
                sys::ipc_receive(
                    self.fd.as_raw_fd(),
                    self.buf.as_mut_ptr(),
                    self.buf.len(),
                    record.as_mut_ptr(),
                    wait,
                )
            };
            let r = IpcRecord::decode(&record);
            match e {
                errno::SUCCESS => return Ok(Some((r, &self.buf[..r.bytes()]))),
                errno::AGAIN => return Ok(None),
                // Kept by the runtime: take it into a buffer of its size.
                errno::RANGE => self.buf.resize(r.bytes(), 0),
                e => return Err(Error::Unavailable(e)),
            }
        }
    }
}

/// A service this app provides; dropping it ends the service.
#[derive(Debug)]
pub struct Service(End);

impl Service {
    /// Provides service `guid`, shown as `name` (1 to 64 bytes).
    pub fn create(guid: Guid, name: &str) -> Result<Service, Error> {
        let mut fd = -1;
        // SAFETY: the GUID's 16 bytes and `name` are valid for their
        // lengths; `fd` is a valid out pointer.
        let e = unsafe { sys::ipc_serve(guid.0.as_ptr(), name.as_ptr(), name.len(), &mut fd) };
        End::opened(e, fd).map(Service)
    }

    /// The next message if one is there now; `None` until the service is
    /// readable again.
    pub fn next_message(&mut self) -> Result<Option<Message>, Error> {
        self.take(false)
    }

    /// Waits for the next message: only this app waits.
    pub fn wait_message(&mut self) -> Result<Message, Error> {
        self.take(true)?.ok_or(Error::Unavailable(errno::IO))
    }

    fn take(&mut self, block: bool) -> Result<Option<Message>, Error> {
        let Some((r, bytes)) = self.0.receive(block)? else {
            return Ok(None);
        };
        let (sender, data) = bytes.split_at((r.sender_len as usize).min(bytes.len()));
        Ok(Some(Message {
            id: r.id,
            request: r.flags & ipc_flags::REQUEST != 0,
            sender: String::from_utf8_lossy(sender).into_owned(),
            data: data.to_vec(),
        }))
    }

    /// Answers request `id` with `data` (at most 64 KiB).
    pub fn reply(&mut self, id: u64, data: &[u8]) -> Result<(), Error> {
        // SAFETY: `data` is valid for its length.
        check(unsafe { sys::ipc_reply(self.0.fd.as_raw_fd(), id, data.as_ptr(), data.len()) })
    }

    /// Refuses request `id`: its sender gets [`IpcError::Refused`] with
    /// `reason` (at most 1024 bytes).
    pub fn refuse(&mut self, id: u64, reason: &str) -> Result<(), Error> {
        let fd = self.0.fd.as_raw_fd();
        // SAFETY: `reason` is valid for its length.
        check(unsafe { sys::ipc_refuse(fd, id, reason.as_ptr(), reason.len()) })
    }
}

impl AsRawFd for Service {
    fn as_raw_fd(&self) -> RawFd {
        self.0.fd.as_raw_fd()
    }
}

/// What became of a message sent with [`Ipc::submit`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A one-way message is in a provider's queue.
    Sent,
    /// A request's answer.
    Answer(Vec<u8>),
    /// No answer, and why.
    Failed(Error),
}

/// A stream for sending messages and requests.
#[derive(Debug)]
pub struct Ipc(End);

impl Ipc {
    /// Opens a stream for sending.
    pub fn open() -> Result<Ipc, Error> {
        let mut fd = -1;
        // SAFETY: `fd` is a valid out pointer.
        let e = unsafe { sys::ipc_open(&mut fd) };
        End::opened(e, fd).map(Ipc)
    }

    /// Sends `data` (at most 64 KiB) to service `guid` (to instance `pid`,
    /// `DEVICE:N`, if given) without waiting: a request waiting at most
    /// `timeout` for its answer (1 ms to 1 hour), or one way (`None`).
    /// Returns its id; its [`Outcome`] comes by [`Ipc::next_answer`].
    pub fn submit(
        &mut self,
        guid: Guid,
        pid: Option<&str>,
        data: &[u8],
        timeout: Option<Duration>,
    ) -> Result<u32, Error> {
        let timeout_ms = match timeout {
            Some(t) => i32::try_from(t.as_millis()).unwrap_or(i32::MAX).max(1),
            None => IPC_ONE_WAY,
        };
        let pid = pid.unwrap_or_default();
        let mut id = 0u32;
        // SAFETY: the GUID, `pid` and `data` are valid for their lengths;
        // `id` is a valid out pointer.
        check(unsafe {
            sys::ipc_send(
                self.0.fd.as_raw_fd(),
                guid.0.as_ptr(),
                pid.as_ptr(),
                pid.len(),
                data.as_ptr(),
                data.len(),
                timeout_ms,
                &mut id,
            )
        })?;
        Ok(id)
    }

    /// The next outcome if one is there now (its message's id with it);
    /// `None` until the stream is readable again.
    pub fn next_answer(&mut self) -> Result<Option<(u32, Outcome)>, Error> {
        self.take(false)
    }

    fn take(&mut self, block: bool) -> Result<Option<(u32, Outcome)>, Error> {
        let Some((r, bytes)) = self.0.receive(block)? else {
            return Ok(None);
        };
        let outcome = match r.kind {
            ipc_kind::SENT => Outcome::Sent,
            ipc_kind::ANSWER => Outcome::Answer(bytes.to_vec()),
            ipc_kind::FAILED => Outcome::Failed(match IpcError::from_u32(r.error) {
                Some(error) => Error::Failed {
                    error,
                    message: String::from_utf8_lossy(bytes).into_owned(),
                },
                None => Error::Unavailable(errno::IO),
            }),
            _ => return Err(Error::Unavailable(errno::IO)),
        };
        Ok(Some((r.id as u32, outcome)))
    }

    /// Gives up waiting for request `id`'s answer: its outcome is
    /// [`Outcome::Failed`] with [`IpcError::Cancelled`], unless the answer
    /// came first. An id with nothing in flight is ignored.
    pub fn cancel(&mut self, id: u32) -> Result<(), Error> {
        // SAFETY: no pointer arguments.
        check(unsafe { sys::ipc_cancel(self.0.fd.as_raw_fd(), id) })
    }

    /// Waits for message `id`'s outcome (only this app waits); outcomes
    /// of other messages that come first are dropped.
    pub fn wait_for(&mut self, id: u32) -> Result<Outcome, Error> {
        loop {
            if let Some((got, outcome)) = self.take(true)?
                && got == id
            {
                return Ok(outcome);
            }
        }
    }

    /// Sends `data` one way; returns once a provider has it queued.
    pub fn send(&mut self, guid: Guid, pid: Option<&str>, data: &[u8]) -> Result<(), Error> {
        let id = self.submit(guid, pid, data, None)?;
        match self.wait_for(id)? {
            Outcome::Failed(e) => Err(e),
            Outcome::Sent | Outcome::Answer(_) => Ok(()),
        }
    }

    /// Sends request `data` and waits for its answer, at most `timeout`
    /// (default 30 s); only this app waits.
    pub fn request(
        &mut self,
        guid: Guid,
        pid: Option<&str>,
        data: &[u8],
        timeout: Option<Duration>,
    ) -> Result<Vec<u8>, Error> {
        let timeout = timeout.unwrap_or(Duration::from_secs(30));
        let id = self.submit(guid, pid, data, Some(timeout))?;
        match self.wait_for(id)? {
            Outcome::Answer(data) => Ok(data),
            Outcome::Sent => Ok(Vec::new()),
            Outcome::Failed(e) => Err(e),
        }
    }
}

impl AsRawFd for Ipc {
    fn as_raw_fd(&self) -> RawFd {
        self.0.fd.as_raw_fd()
    }
}
