//! The client side of the FABRIC protocol (§17), shared by the native
//! library (`weft_user::fabric`, over a stream) and the Wasm SDK
//! (`weft_app::fabric`, through the runtime's `fabric_call` import): owned
//! values mirroring the fabric's devices and processes, and a [`Client`]
//! that turns each call into its request frames and its reply frame into
//! those values, over any [`Transport`].
//!
//! A watch ([`Client::watch`]) is a call too; the `EVENT` frames that
//! follow it are read by the transport's owner and turned into [`Event`]s
//! with [`Event::from_frame`].
//!
//! Invariants: a call is one request and exactly one reply, matched by id
//! (a reply to another id, or of a kind that does not answer the call, is
//! [`CallError::Unexpected`]); a client makes one call at a time.

use super::{
    DeviceHead, MAX_CHUNK, MAX_MODULE, MAX_NAME, NO_STATUS, ProcessHead, Reply, Request, SpawnHead,
    device_flags, source,
};
use crate::device_proto::ArgList;
use crate::frame::{self, HEADER, MAX_BODY, WireError};
use crate::process::tier;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

/// A device of the fabric.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Device {
    pub name: String,
    /// Hex of the first 8 bytes of SHA-256 of its public key.
    pub id: String,
    /// Whether it is online now.
    pub available: bool,
    /// Where its daemon listens (`ADDR:PORT`).
    pub addresses: Vec<String>,
    /// Its figures, when available.
    pub figures: Option<Figures>,
}

/// A device's figures.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Figures {
    /// Processes running in its guest.
    pub processes: u32,
    /// Bytes of memory its processes hold.
    pub memory: u64,
}

/// A process of the fabric.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Process {
    /// `DEVICE:N`.
    pub pid: String,
    pub device: String,
    pub name: String,
    /// `running`, `waiting` or `ended`.
    pub state: String,
    pub cpu_ns: u64,
    pub memory: u64,
    pub streams: u32,
    /// The exit status, once ended.
    pub status: Option<u32>,
}

/// What a spawn runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Image<'a> {
    /// One of the target device's own programs, by name.
    Name(&'a str),
    /// A Wasm module's bytes, run as the target device runs modules by
    /// default (`weft daemon --engine`).
    Module(&'a [u8]),
    /// A Wasm module's bytes, run by the given engine.
    ModuleWith(&'a [u8], Engine),
}

/// How a spawned Wasm module runs (PROTOCOL.md §13.8).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    /// Compiled ahead of time by the target's monitor; the app cannot
    /// move.
    Aot,
    /// Interpreted; an event app can move.
    Interp,
}

impl Engine {
    /// Its `SPAWN` head's `tier` (a [`tier`] value).
    fn tier(self) -> u32 {
        match self {
            Self::Aot => tier::COMPILED,
            Self::Interp => tier::INTERP,
        }
    }
}

/// Why a call failed (besides its transport).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallError {
    /// The fabric refused or could not carry out the call: why.
    Failed(String),
    /// An argument is out of its range (`what` names it).
    Argument(&'static str),
    /// The monitor's reply does not answer the call.
    Unexpected { call: &'static str, kind: u16 },
    /// The monitor's reply does not decode.
    Wire(WireError),
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Failed(message) => f.write_str(message),
            Self::Argument(what) => write!(f, "{what} is out of range"),
            Self::Unexpected { call, kind } => {
                write!(f, "the reply to a {call} call has kind {kind:#06x}")
            }
            Self::Wire(e) => write!(f, "the reply to a fabric call: {e}"),
        }
    }
}

impl core::error::Error for CallError {}

/// How a [`Client`] reaches the monitor.
pub trait Transport {
    /// The transport's error; a call's own failures convert into it.
    type Error: From<CallError>;

    /// Sends `frames` (one request's frames, one after another) and returns
    /// the whole reply frame (header and body) to request `id`.
    fn call(&mut self, frames: &[u8], id: u32) -> Result<Vec<u8>, Self::Error>;
}

/// Fabric calls over a [`Transport`], one at a time.
#[derive(Debug)]
pub struct Client<T> {
    transport: T,
    next_id: u32,
}

impl<T: Transport> Client<T> {
    /// A client over `transport`.
    pub fn new(transport: T) -> Self {
        Self {
            transport,
            next_id: 1,
        }
    }

    /// The transport, for a caller that relays frames it built itself.
    pub fn transport(&mut self) -> &mut T {
        &mut self.transport
    }

    /// The transport itself (a watching stream's reader takes it over).
    pub fn into_transport(self) -> T {
        self.transport
    }

    /// The known devices (only the available ones with `available`).
    pub fn devices(&mut self, available: bool) -> Result<Vec<Device>, T::Error> {
        self.call(
            "devices",
            |request| Request::Devices { request, available },
            |r| match r {
                Reply::Devices { devices, .. } => Some(devices.iter().map(device).collect()),
                _ => None,
            },
        )
    }

    /// The processes of `device`, or of every available device.
    pub fn processes(&mut self, device: Option<&str>) -> Result<Vec<Process>, T::Error> {
        let make = |request| Request::Processes { request, device };
        self.call("processes", make, |r| match r {
            Reply::Processes { processes, .. } => Some(processes.iter().map(process).collect()),
            _ => None,
        })
    }

    /// Process `pid`'s figures (`DEVICE:N`).
    pub fn stats(&mut self, pid: &str) -> Result<Process, T::Error> {
        self.call(
            "stats",
            |request| Request::Stats { request, pid },
            |r| match r {
                Reply::Process { process: p, .. } => Some(process(p)),
                _ => None,
            },
        )
    }

    /// Ends process `pid` (it exits with status 137).
    pub fn kill(&mut self, pid: &str) -> Result<(), T::Error> {
        self.call(
            "kill",
            |request| Request::Kill { request, pid },
            |r| match r {
                Reply::Done { .. } => Some(()),
                _ => None,
            },
        )
    }

    /// Moves process `pid` (a Wasm event app) to `device`, waiting at most
    /// `wait_ms` for its event batch to end (§19.4).
    pub fn move_to(&mut self, pid: &str, device: &str, wait_ms: u32) -> Result<(), T::Error> {
        self.call(
            "move",
            |request| Request::Move {
                request,
                wait_ms,
                pid,
                device,
            },
            |r| match r {
                Reply::Done { .. } => Some(()),
                _ => None,
            },
        )
    }

    /// Starts `image` on `device` (this one if `None`) with `args` (the
    /// program's name first); returns its pid.
    pub fn spawn(
        &mut self,
        device: Option<&str>,
        image: Image<'_>,
        args: &[&str],
    ) -> Result<String, T::Error> {
        let (source, bytes, limit, tier) = match image {
            Image::Name(name) => (source::NAME, name.as_bytes(), MAX_NAME, tier::DEFAULT),
            Image::Module(bytes) => (source::MODULE, bytes, MAX_MODULE, tier::DEFAULT),
            Image::ModuleWith(bytes, engine) => (source::MODULE, bytes, MAX_MODULE, engine.tier()),
        };
        if !(1..=limit).contains(&bytes.len()) {
            return Err(CallError::Argument("the spawn image's size").into());
        }
        let mut raw = vec![0u8; args.iter().map(|a| 2 + a.len()).sum()];
        let args =
            ArgList::new(args, &mut raw).ok_or(CallError::Argument("the spawn arguments"))?;
        let id = self.next();
        let head = SpawnHead {
            request: id,
            source,
            image_len: bytes.len() as u32,
            tier,
        };
        let mut frames = encode(&Request::Spawn { head, device, args })?;
        for chunk in bytes.chunks(MAX_CHUNK) {
            frames.extend(encode(&Request::Image { request: id, chunk })?);
        }
        self.answer("spawn", &frames, id, |r| match r {
            Reply::Spawned { pid, .. } => Some(pid.to_string()),
            _ => None,
        })
    }

    /// Asks for the stream's events from now on: once this returns, the
    /// monitor sends `EVENT` frames on the stream ([`Event::from_frame`]),
    /// first a `DeviceUp` for each device available now.
    pub fn watch(&mut self) -> Result<(), T::Error> {
        self.call(
            "watch",
            |request| Request::Watch { request },
            |r| matches!(r, Reply::Watching { .. }).then_some(()),
        )
    }

    /// Waits at most `limit_secs` for process `pid` to end: its status, or
    /// `None` if it still runs.
    pub fn wait(&mut self, pid: &str, limit_secs: u32) -> Result<Option<u32>, T::Error> {
        let make = |request| Request::Wait {
            request,
            limit_secs,
            pid,
        };
        self.call("wait", make, |r| match r {
            Reply::Exited { status, .. } => Some(Some(status)),
            Reply::Running { .. } => Some(None),
            _ => None,
        })
    }

    fn next(&mut self) -> u32 {
        let id = self.next_id;
        self.next_id = id.wrapping_add(1);
        id
    }

    /// Makes the one-frame call `make(id)` and reads its reply with `take`.
    fn call<'r, R>(
        &mut self,
        call: &'static str,
        make: impl FnOnce(u32) -> Request<'r>,
        take: impl for<'b> FnOnce(Reply<'b>) -> Option<R>,
    ) -> Result<R, T::Error> {
        let id = self.next();
        let frames = encode(&make(id))?;
        self.answer(call, &frames, id, take)
    }

    /// Sends `frames` and reads the reply to `id` with `take`: `FAILED` is
    /// [`CallError::Failed`]; a reply `take` makes nothing of is
    /// [`CallError::Unexpected`].
    fn answer<R>(
        &mut self,
        call: &'static str,
        frames: &[u8],
        id: u32,
        take: impl for<'b> FnOnce(Reply<'b>) -> Option<R>,
    ) -> Result<R, T::Error> {
        let reply = self.transport.call(frames, id)?;
        let (header, body) = frame::split(&reply).map_err(CallError::Wire)?;
        let kind = header.kind;
        let reply = Reply::decode(kind, body).map_err(CallError::Wire)?;
        if reply.id() != id {
            return Err(CallError::Unexpected { call, kind }.into());
        }
        if let Reply::Failed { message, .. } = reply {
            return Err(CallError::Failed(message.to_string()).into());
        }
        Ok(take(reply).ok_or(CallError::Unexpected { call, kind })?)
    }
}

/// One request's frame.
fn encode(request: &Request<'_>) -> Result<Vec<u8>, CallError> {
    let mut buf = vec![0u8; HEADER + MAX_BODY];
    let n = request
        .encode(&mut buf)
        .ok_or(CallError::Argument("the request's size"))?;
    buf.truncate(n);
    Ok(buf)
}

/// An event of a watched stream (§17.4), owned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// The device of this name became available.
    DeviceUp(String),
    /// The device of this name became unavailable.
    DeviceDown(String),
    /// The process of this pid (`NAME:N`) started.
    Started(String),
    /// Process `pid` ended with `status`.
    Ended { pid: String, status: u32 },
    /// This many events were dropped because they were not read in time:
    /// list the devices and processes again.
    Lost(u32),
}

impl Event {
    /// The event an `EVENT` frame (header and body) carries.
    pub fn from_frame(frame: &[u8]) -> Result<Event, CallError> {
        let (header, body) = frame::split(frame).map_err(CallError::Wire)?;
        Self::decode(header.kind, body)
    }

    /// The event a frame of `kind` with `body` carries (`kind` must be
    /// `EVENT`).
    pub fn decode(kind: u16, body: &[u8]) -> Result<Event, CallError> {
        if kind != super::kind::EVENT {
            return Err(CallError::Unexpected {
                call: "watch",
                kind,
            });
        }
        Ok(match super::Event::decode(body).map_err(CallError::Wire)? {
            super::Event::DeviceUp(name) => Event::DeviceUp(name.to_string()),
            super::Event::DeviceDown(name) => Event::DeviceDown(name.to_string()),
            super::Event::Started(pid) => Event::Started(pid.to_string()),
            super::Event::Ended { pid, status } => Event::Ended {
                pid: pid.to_string(),
                status,
            },
            super::Event::Lost(count) => Event::Lost(count),
        })
    }
}

/// One line of text per event: `up NAME`, `down NAME`, `started PID`,
/// `ended PID STATUS`, `lost COUNT`.
impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::DeviceUp(name) => write!(f, "up {name}"),
            Self::DeviceDown(name) => write!(f, "down {name}"),
            Self::Started(pid) => write!(f, "started {pid}"),
            Self::Ended { pid, status } => write!(f, "ended {pid} {status}"),
            Self::Lost(count) => write!(f, "lost {count}"),
        }
    }
}

fn device(d: super::Device<'_>) -> Device {
    let DeviceHead {
        flags,
        processes,
        memory,
    } = d.head;
    Device {
        name: d.name.to_string(),
        id: d.id.to_string(),
        available: flags & device_flags::AVAILABLE != 0,
        addresses: d.addresses.iter().map(str::to_string).collect(),
        figures: (flags & device_flags::FIGURES != 0).then_some(Figures { processes, memory }),
    }
}

fn process(p: super::Process<'_>) -> Process {
    let ProcessHead {
        cpu_ns,
        memory,
        streams,
        status,
    } = p.head;
    Process {
        pid: p.pid.to_string(),
        device: p.device.to_string(),
        name: p.name.to_string(),
        state: p.state.to_string(),
        cpu_ns,
        memory,
        streams,
        status: (status != NO_STATUS).then_some(status),
    }
}
