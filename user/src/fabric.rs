//! Fabric calls from a program in a device guest (PROTOCOL.md §17): the
//! devices and processes of the fabric, one process's figures, kill, spawn
//! (a device's own program by name, or a Wasm module's bytes) and waiting
//! for a process's end, answered by the device's `weft daemon`.
//!
//! A [`Fabric`] is one `FABRIC` stream; it makes one call at a time (a call
//! blocks until its reply). [`Fabric::watch`] turns the stream into a
//! [`Watch`]: the fabric's events (devices that come and go, processes
//! that start and end anywhere), read one at a time with
//! [`Watch::next_event`]. Under `weft run` (no daemon) [`Fabric::open`]
//! fails with [`Code::Unsupported`] and the monitor's message.
//!
//! ```ignore
//! let mut fabric = weft_user::fabric::Fabric::open()?;
//! for d in fabric.devices(false)? {
//!     weft_user::println!("{} {}", d.name, d.available);
//! }
//! let mut watch = fabric.watch()?;
//! while let Some(event) = watch.next_event(Some(Duration::from_secs(5)))? {
//!     weft_user::println!("{event}");
//! }
//! ```

use crate::error::Error;
use crate::stream::{Interest, Stream, poll};
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::time::Duration;
use weft_control::fabric_proto::client::{Client, Transport};
use weft_control::fabric_proto::kind;
use weft_control::frame::{self, Code, Header};

pub use weft_control::fabric_proto::client::{
    CallError, Device, Engine, Event, Figures, Image, Process,
};

/// Why a fabric call failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FabricError {
    /// The stream could not be opened, or failed.
    Stream(Error),
    /// The call itself failed (the fabric's message, or a bad argument).
    Call(CallError),
}

impl From<Error> for FabricError {
    fn from(e: Error) -> Self {
        Self::Stream(e)
    }
}

impl From<CallError> for FabricError {
    fn from(e: CallError) -> Self {
        Self::Call(e)
    }
}

impl fmt::Display for FabricError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Stream(e) => write!(f, "fabric stream: {e}"),
            Self::Call(e) => e.fmt(f),
        }
    }
}

impl core::error::Error for FabricError {}

/// The stream as the client's transport: frames out, the reply frame back.
struct Link {
    stream: Stream,
    body: Vec<u8>,
}

impl Transport for Link {
    type Error = FabricError;

    fn call(&mut self, frames: &[u8], _id: u32) -> Result<Vec<u8>, FabricError> {
        self.stream.send(frames)?;
        let k = self.stream.recv(&mut self.body)?;
        let mut reply = Vec::with_capacity(frame::HEADER + self.body.len());
        reply.extend_from_slice(&Header::new(k, self.body.len()).encode());
        reply.extend_from_slice(&self.body);
        Ok(reply)
    }
}

/// A `FABRIC` stream: fabric calls, one at a time.
pub struct Fabric {
    client: Client<Link>,
}

impl Fabric {
    /// Opens a `FABRIC` stream.
    pub fn open() -> Result<Self, FabricError> {
        let mut body = Vec::new();
        let (stream, k) = Stream::connect(frame::kind::FABRIC, &[], &mut body)?;
        if k != kind::READY || !body.is_empty() {
            return Err(Error::new(
                Code::Protocol,
                alloc::format!(
                    "FABRIC answered with kind {k:#06x} and {} bytes",
                    body.len()
                ),
            )
            .into());
        }
        Ok(Self {
            client: Client::new(Link { stream, body }),
        })
    }

    /// The known devices (only the available ones with `available`).
    pub fn devices(&mut self, available: bool) -> Result<Vec<Device>, FabricError> {
        self.client.devices(available)
    }

    /// The processes of `device`, or of every available device.
    pub fn processes(&mut self, device: Option<&str>) -> Result<Vec<Process>, FabricError> {
        self.client.processes(device)
    }

    /// Process `pid`'s figures (`DEVICE:N`).
    pub fn stats(&mut self, pid: &str) -> Result<Process, FabricError> {
        self.client.stats(pid)
    }

    /// Ends process `pid` (it exits with status 137).
    pub fn kill(&mut self, pid: &str) -> Result<(), FabricError> {
        self.client.kill(pid)
    }

    /// Moves process `pid`, a Wasm event app, to `device` with its state,
    /// waiting at most `wait_ms` for its event batch to end (PROTOCOL.md
    /// §19.4). A native program cannot move: the call fails saying so.
    pub fn move_to(&mut self, pid: &str, device: &str, wait_ms: u32) -> Result<(), FabricError> {
        self.client.move_to(pid, device, wait_ms)
    }

    /// Starts `image` on `device` (this one if `None`) with `args` (the
    /// program's name first); returns the new process's pid.
    pub fn spawn(
        &mut self,
        device: Option<&str>,
        image: Image<'_>,
        args: &[&str],
    ) -> Result<String, FabricError> {
        self.client.spawn(device, image, args)
    }

    /// Waits at most `limit_secs` for process `pid` to end: its exit
    /// status, or `None` if it still runs.
    pub fn wait(&mut self, pid: &str, limit_secs: u32) -> Result<Option<u32>, FabricError> {
        self.client.wait(pid, limit_secs)
    }

    /// Sends one request's frames as they are (a Wasm app's, already
    /// validated) and returns the whole reply frame.
    pub fn relay(&mut self, frames: &[u8]) -> Result<Vec<u8>, FabricError> {
        self.client.transport().call(frames, 0)
    }

    /// Watches the fabric on this stream from now on: the [`Watch`] yields
    /// first a [`Event::DeviceUp`] for each device available now, then
    /// every change. Calls are made on another [`Fabric`].
    pub fn watch(mut self) -> Result<Watch, FabricError> {
        self.client.watch()?;
        let Link { stream, body } = self.client.into_transport();
        Ok(Watch { stream, body })
    }
}

/// A watching `FABRIC` stream (PROTOCOL.md §17.4): the fabric's events in
/// the order they happened. Events the program does not read in time are
/// dropped by the monitor beyond a fixed number, and counted in one
/// [`Event::Lost`]: the program then lists devices and processes again.
pub struct Watch {
    stream: Stream,
    body: Vec<u8>,
}

impl Watch {
    /// The next event; `None` if none came within `timeout` (`None`: wait
    /// as long as it takes). Only this program waits.
    pub fn next_event(&mut self, timeout: Option<Duration>) -> Result<Option<Event>, FabricError> {
        let timeout_ns = timeout.map(|t| u64::try_from(t.as_nanos()).unwrap_or(u64::MAX));
        if poll(&mut [(&mut self.stream, Interest::Read)], timeout_ns) == 0 {
            return Ok(None);
        }
        let k = self.stream.recv(&mut self.body)?;
        Ok(Some(Event::decode(k, &self.body)?))
    }

    /// The next event if one is there now.
    pub fn try_event(&mut self) -> Result<Option<Event>, FabricError> {
        self.next_event(Some(Duration::ZERO))
    }

    /// The next event's whole `EVENT` frame if one is there now (for a
    /// runtime that hands it on to an app, which decodes it).
    pub fn try_frame(&mut self) -> Result<Option<Vec<u8>>, FabricError> {
        if !self.stream.ready(Interest::Read) {
            return Ok(None);
        }
        let k = self.stream.recv(&mut self.body)?;
        if k != kind::EVENT {
            return Err(CallError::Unexpected {
                call: "watch",
                kind: k,
            }
            .into());
        }
        let mut frame = Vec::with_capacity(frame::HEADER + self.body.len());
        frame.extend_from_slice(&Header::new(k, self.body.len()).encode());
        frame.extend_from_slice(&self.body);
        Ok(Some(frame))
    }

    /// The watch's stream, to wait on it together with others
    /// ([`crate::stream::poll`]).
    pub fn stream(&mut self) -> &mut Stream {
        &mut self.stream
    }
}
