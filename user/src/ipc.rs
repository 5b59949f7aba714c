//! Services by GUID (PROTOCOL.md §18), for a program in a device guest:
//! provide a service, send it one-way messages, make requests that get
//! exactly one answer, wherever in the fabric its provider runs.
//!
//! An [`Ipc`] is one `IPC` stream for sending: [`Ipc::send`] (one way,
//! returns once the message is queued at a provider) and [`Ipc::request`]
//! (waits for the answer), or, for many at once, [`Ipc::submit`] and
//! [`Ipc::next_answer`] with [`Ipc::cancel`]. A [`Service`] is a stream
//! that provides one service: [`Service::next_message`] waits for a
//! message (only this program waits), [`Service::reply`] and
//! [`Service::refuse`] answer a request. Under `weft run` (no daemon)
//! opening either fails with `Code::Unsupported`.
//!
//! ```ignore
//! use weft_user::ipc::{Guid, Ipc, Service};
//! let kv = Guid::parse("6f1c2a4e-8b3d-4f0a-9c11-223344556677").unwrap();
//! // The provider:
//! let mut service = Service::create(kv, "kv")?;
//! while let Some(m) = service.next_message(None)? {
//!     if m.request {
//!         service.reply(m.id, b"pong")?;
//!     }
//! }
//! // A client, on any device:
//! let answer = Ipc::open()?.request(kv, None, b"ping", None)?;
//! ```

use crate::error::Error;
use crate::stream::{Interest, Polling, Stream, poll};
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;
use core::time::Duration;
use weft_control::frame::{self, HEADER};
use weft_control::ipc_proto::{MAX_DATA, MAX_TEXT, Request, Response, kind, send_flags};

pub use weft_control::ipc_proto::{Guid, IpcError};

/// Why an IPC call failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IpcFailure {
    /// The stream could not be opened, or failed.
    Stream(Error),
    /// The message got no answer, or the service could not be provided:
    /// why, and the fabric's message.
    Failed { error: IpcError, message: String },
    /// An argument out of range, or a frame the monitor should not send.
    Invalid(String),
}

impl From<Error> for IpcFailure {
    fn from(e: Error) -> Self {
        Self::Stream(e)
    }
}

impl fmt::Display for IpcFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Stream(e) => write!(f, "IPC stream: {e}"),
            Self::Failed { error, message } => write!(f, "{error}: {message}"),
            Self::Invalid(m) => f.write_str(m),
        }
    }
}

impl core::error::Error for IpcFailure {}

/// Opens an `IPC` stream. Its answers and messages come from other
/// programs: it polls before sleeping only while they run on this device
/// ([`Polling::WhenShared`]).
fn open_stream() -> Result<(Stream, Vec<u8>), IpcFailure> {
    let mut body = Vec::new();
    let (mut stream, k) = Stream::connect(frame::kind::IPC, &[], &mut body)?;
    stream.set_polling(Polling::WhenShared);
    if k != kind::READY || !body.is_empty() {
        return Err(IpcFailure::Invalid(alloc::format!(
            "IPC answered with kind {k:#06x} and {} bytes",
            body.len()
        )));
    }
    Ok((stream, body))
}

/// Encodes `r` and sends it.
fn send_request(stream: &mut Stream, r: &Request<'_>, extra: usize) -> Result<(), IpcFailure> {
    let mut buf = vec![0u8; HEADER + 64 + extra];
    let n = r
        .encode(&mut buf)
        .ok_or_else(|| IpcFailure::Invalid("a field is out of range".into()))?;
    stream.send(&buf[..n])?;
    Ok(())
}

/// Whether the stream has something to read within `timeout` (`None`:
/// waits as long as it takes).
fn wait_readable(stream: &mut Stream, timeout: Option<Duration>) -> bool {
    let ns = timeout.map(|t| u64::try_from(t.as_nanos()).unwrap_or(u64::MAX));
    poll(&mut [(stream, Interest::Read)], ns) != 0
}

/// How a message is addressed.
#[derive(Clone, Copy, Debug)]
pub struct To<'a> {
    pub guid: Guid,
    /// One instance (`DEVICE:N`), or any.
    pub pid: Option<&'a str>,
}

/// An `IPC` stream for sending messages and requests.
pub struct Ipc {
    stream: Stream,
    body: Vec<u8>,
    next: u32,
}

impl Ipc {
    /// Opens an `IPC` stream.
    pub fn open() -> Result<Self, IpcFailure> {
        let (stream, body) = open_stream()?;
        Ok(Self {
            stream,
            body,
            next: 1,
        })
    }

    /// Sends `data` to `to` without waiting for anything: a request (if
    /// `timeout` is given: it waits at most that long, 1 ms to 1 hour) or a
    /// one-way message. Returns its id; [`Ipc::next_answer`] returns its
    /// answer. At most 64 may be outstanding; more wait in the stream.
    pub fn submit(
        &mut self,
        to: To<'_>,
        data: &[u8],
        timeout: Option<Duration>,
    ) -> Result<u32, IpcFailure> {
        let request = self.next;
        self.next = self.next.wrapping_add(1).max(1);
        let (flags, timeout_ms) = match timeout {
            Some(t) => (
                send_flags::REQUEST,
                u32::try_from(t.as_millis()).unwrap_or(u32::MAX).max(1),
            ),
            None => (0, 0),
        };
        let frame = Request::Send {
            request,
            flags,
            timeout_ms,
            guid: to.guid,
            pid: to.pid,
            data,
        };
        send_request(&mut self.stream, &frame, MAX_TEXT + data.len())?;
        Ok(request)
    }

    /// The next answer to a submitted message: its id, and the answer's
    /// bytes (empty for a one-way message, once queued) or why there is
    /// none.
    pub fn next_answer(&mut self) -> Result<(u32, Result<Vec<u8>, IpcFailure>), IpcFailure> {
        let k = self.stream.recv(&mut self.body)?;
        let answer = Response::decode(k, &self.body)
            .map_err(|e| IpcFailure::Invalid(alloc::format!("IPC frame {k:#06x}: {e:?}")))?;
        Ok(match answer {
            Response::Sent { request } => (request, Ok(Vec::new())),
            Response::Answer { request, data } => (request, Ok(data.to_vec())),
            Response::Failed {
                request,
                error,
                message,
            } => (
                request,
                Err(IpcFailure::Failed {
                    error,
                    message: message.to_string(),
                }),
            ),
            other => {
                return Err(IpcFailure::Invalid(alloc::format!(
                    "a sending stream got {:#06x}",
                    other.kind()
                )));
            }
        })
    }

    /// Stops waiting for request `id`: it is answered `Cancelled` (unless
    /// its answer came first).
    pub fn cancel(&mut self, id: u32) -> Result<(), IpcFailure> {
        send_request(&mut self.stream, &Request::Cancel { request: id }, 0)
    }

    /// Sends `data` one way to `to`; returns once a provider has it queued.
    pub fn send(&mut self, to: To<'_>, data: &[u8]) -> Result<(), IpcFailure> {
        let id = self.submit(to, data, None)?;
        self.wait_for(id).map(drop)
    }

    /// Sends request `data` to `to` and waits for its answer, at most
    /// `timeout` (default 30 s).
    pub fn request(
        &mut self,
        to: To<'_>,
        data: &[u8],
        timeout: Option<Duration>,
    ) -> Result<Vec<u8>, IpcFailure> {
        let timeout = timeout.unwrap_or(Duration::from_secs(30));
        let id = self.submit(to, data, Some(timeout))?;
        self.wait_for(id)
    }

    fn wait_for(&mut self, id: u32) -> Result<Vec<u8>, IpcFailure> {
        loop {
            let (got, answer) = self.next_answer()?;
            if got == id {
                return answer;
            }
        }
    }

    /// The stream, to wait on it together with others.
    pub fn stream(&mut self) -> &mut Stream {
        &mut self.stream
    }
}

/// A message delivered to a [`Service`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// Its id, for [`Service::reply`].
    pub id: u64,
    /// Whether it is a request (it must be answered, exactly once).
    pub request: bool,
    /// Who sent it: a pid `DEVICE:N`, or a device's name for its CLI.
    pub sender: String,
    pub data: Vec<u8>,
}

/// An `IPC` stream providing one service.
pub struct Service {
    stream: Stream,
    body: Vec<u8>,
    /// Whether the monitor said it holds the messages (`PAUSED`, not
    /// followed by `RESUMED` yet).
    paused: bool,
}

impl Service {
    /// Provides service `guid`, shown as `name` (1 to 64 bytes), from this
    /// process; it ends with the stream (or the process).
    pub fn create(guid: Guid, name: &str) -> Result<Self, IpcFailure> {
        let (mut stream, mut body) = open_stream()?;
        let serve = Request::Serve {
            request: 0,
            guid,
            name,
        };
        send_request(&mut stream, &serve, name.len())?;
        let k = stream.recv(&mut body)?;
        match Response::decode(k, &body) {
            Ok(Response::Serving { .. }) => Ok(Self {
                stream,
                body,
                paused: false,
            }),
            Ok(Response::Failed { error, message, .. }) => Err(IpcFailure::Failed {
                error,
                message: message.to_string(),
            }),
            _ => Err(IpcFailure::Invalid(alloc::format!(
                "SERVE answered with kind {k:#06x}"
            ))),
        }
    }

    /// The next message; `None` if none came within `timeout` (`None`:
    /// wait as long as it takes; zero: only look). A `PAUSED` or `RESUMED`
    /// frame on the way is taken and noted ([`Service::paused`]).
    pub fn next_message(
        &mut self,
        timeout: Option<Duration>,
    ) -> Result<Option<Message>, IpcFailure> {
        let deadline = timeout.map(|t| {
            let ns = u64::try_from(t.as_nanos()).unwrap_or(u64::MAX);
            crate::time::monotonic_ns().saturating_add(ns)
        });
        loop {
            let left = deadline
                .map(|d| Duration::from_nanos(d.saturating_sub(crate::time::monotonic_ns())));
            if left.is_some() && !wait_readable(&mut self.stream, left) {
                return Ok(None);
            }
            let k = self.stream.recv(&mut self.body)?;
            match Response::decode(k, &self.body) {
                Ok(Response::Message {
                    message,
                    flags,
                    sender,
                    data,
                }) => {
                    return Ok(Some(Message {
                        id: message,
                        request: flags & send_flags::REQUEST != 0,
                        sender: sender.to_string(),
                        data: data.to_vec(),
                    }));
                }
                Ok(Response::Paused) => self.paused = true,
                Ok(Response::Resumed) => self.paused = false,
                _ => {
                    return Err(IpcFailure::Invalid(alloc::format!(
                        "a serving stream got kind {k:#06x}"
                    )));
                }
            }
        }
    }

    /// Whether the monitor holds this service's messages (it said
    /// `PAUSED` and not `RESUMED` since, PROTOCOL.md §19.5): the app is
    /// being moved, and nothing more comes on this stream until then.
    pub fn paused(&self) -> bool {
        self.paused
    }

    /// Answers request `id` with `data` (at most 64 KiB).
    pub fn reply(&mut self, id: u64, data: &[u8]) -> Result<(), IpcFailure> {
        if data.len() > MAX_DATA {
            return Err(IpcFailure::Invalid(alloc::format!(
                "an answer carries at most {MAX_DATA} bytes"
            )));
        }
        let r = Request::Reply { message: id, data };
        send_request(&mut self.stream, &r, data.len())
    }

    /// Refuses request `id`: its sender gets `Refused` with `reason`.
    pub fn refuse(&mut self, id: u64, reason: &str) -> Result<(), IpcFailure> {
        let r = Request::Refuse {
            message: id,
            reason,
        };
        send_request(&mut self.stream, &r, reason.len())
    }

    /// The stream, to wait on it together with others.
    pub fn stream(&mut self) -> &mut Stream {
        &mut self.stream
    }
}
