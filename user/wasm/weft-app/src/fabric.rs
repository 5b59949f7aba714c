//! Fabric calls from an app in a device guest (PROTOCOL.md §13.3, §17):
//! the devices and processes of the fabric, one process's figures, kill,
//! spawn (a device's own program, or a Wasm module's bytes) and waiting for
//! a process's end, answered by the device's `weft daemon`.
//!
//! Each call waits for its answer. Where the app does not run in a device
//! guest (under `weft run`) every call fails with [`Error::Unavailable`].
//!
//! ```no_run
//! for d in weft_app::fabric::devices(false).unwrap() {
//!     println!("{} {}", d.name, d.available);
//! }
//! ```
//!
//! A [`Watch`] delivers the fabric's events (devices that come and go,
//! processes that start and end anywhere) through the app's event model:
//! register interest in it as in a socket, and on each
//! [`crate::Event::Readable`] of its descriptor take what
//! [`Watch::next_event`] has until it says `None`. Waiting costs the app
//! nothing and holds up no other app.
//!
//! ```no_run
//! use weft_app::{App, Event, Interest};
//! use weft_app::fabric::Watch;
//!
//! struct Watcher(Watch);
//!
//! impl App for Watcher {
//!     fn event(&mut self, _: Event) {
//!         while let Ok(Some(e)) = self.0.next_event() {
//!             println!("{e}");
//!         }
//!     }
//! }
//!
//! let watch = weft_app::fabric::watch().unwrap();
//! weft_app::interest(&watch, Interest::Readable).unwrap();
//! weft_app::run(Watcher(watch));
//! ```

use crate::sys;
use std::fmt;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use weft_control::app::errno;
use weft_control::fabric_proto::client::{Client, Transport};

pub use weft_control::fabric_proto::client::{
    CallError, Device, Engine, Event, Figures, Image, Process,
};

/// Why a fabric call failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// The runtime could not make the call: this WASI errno (76,
    /// `ENOTCAPABLE`: the app is not in a device guest).
    Unavailable(i32),
    /// The call itself failed (the fabric's message, or a bad argument).
    Call(CallError),
}

impl From<CallError> for Error {
    fn from(e: CallError) -> Self {
        Self::Call(e)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unavailable(errno::NOTCAPABLE) => f.write_str(
                "fabric calls are not available: the app does not run in a device guest (`weft daemon`)",
            ),
            Self::Unavailable(e) => {
                write!(f, "the fabric call failed: {}", std::io::Error::from_raw_os_error(*e))
            }
            Self::Call(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for Error {}

/// The first reply buffer's size; a longer reply is taken with
/// `fabric_reply` into a buffer of its size.
const FIRST_BUFFER: usize = 16 << 10;

/// The runtime's `fabric_call` import as the client's transport.
struct Import;

impl Transport for Import {
    type Error = Error;

    fn call(&mut self, frames: &[u8], _id: u32) -> Result<Vec<u8>, Error> {
        let mut reply = vec![0u8; FIRST_BUFFER];
        let mut len = 0u32;
        // SAFETY: `frames` and `reply` are valid for their lengths; `len` is
        // a valid out pointer.
        let mut e = unsafe {
            sys::fabric_call(
                frames.as_ptr(),
                frames.len(),
                reply.as_mut_ptr(),
                reply.len(),
                &mut len,
            )
        };
        if e == errno::RANGE {
            reply.resize(len as usize, 0);
            // SAFETY: as above; `reply` now holds `len` bytes.
            e = unsafe { sys::fabric_reply(reply.as_mut_ptr(), reply.len(), &mut len) };
        }
        if e != errno::SUCCESS {
            return Err(Error::Unavailable(e));
        }
        reply.truncate(len as usize);
        Ok(reply)
    }
}

fn client() -> Client<Import> {
    Client::new(Import)
}

/// The known devices (only the available ones with `available`).
pub fn devices(available: bool) -> Result<Vec<Device>, Error> {
    client().devices(available)
}

/// The processes of `device`, or of every available device.
pub fn processes(device: Option<&str>) -> Result<Vec<Process>, Error> {
    client().processes(device)
}

/// Process `pid`'s figures (`DEVICE:N`).
pub fn stats(pid: &str) -> Result<Process, Error> {
    client().stats(pid)
}

/// Ends process `pid` (it exits with status 137).
pub fn kill(pid: &str) -> Result<(), Error> {
    client().kill(pid)
}

/// Moves process `pid`, another Wasm event app, to `device` with its state,
/// waiting at most `wait_ms` for its event batch to end (PROTOCOL.md
/// §19.4). The call waits for the move, and the runtime's other apps with
/// it; an app moves itself with [`move_self`].
pub fn move_to(pid: &str, device: &str, wait_ms: u32) -> Result<(), Error> {
    client().move_to(pid, device, wait_ms)
}

/// Asks to move this app to `device` once its current event batch ends: it
/// goes on there from its next batch, with its state. Returns at once; a
/// move that fails (the device is unavailable, the app holds something
/// that cannot move) leaves the app where it is, and the daemon's log
/// says why. Only the runtime's first app can move.
pub fn move_self(device: &str) -> Result<(), Error> {
    // SAFETY: `device` is valid for its length.
    match unsafe { sys::move_self(device.as_ptr(), device.len()) } {
        errno::SUCCESS => Ok(()),
        e => Err(Error::Unavailable(e)),
    }
}

/// Starts `image` on `device` (this one if `None`) with `args` (the
/// program's name first); returns the new process's pid.
pub fn spawn(device: Option<&str>, image: Image<'_>, args: &[&str]) -> Result<String, Error> {
    client().spawn(device, image, args)
}

/// Waits at most `limit_secs` for process `pid` to end: its exit status, or
/// `None` if it still runs.
pub fn wait(pid: &str, limit_secs: u32) -> Result<Option<u32>, Error> {
    client().wait(pid, limit_secs)
}

/// A watch of the fabric (PROTOCOL.md §17.4): first an
/// [`Event::DeviceUp`] for each device available when it began, then every
/// change. Events not taken in time are dropped beyond a fixed number and
/// counted in one [`Event::Lost`]: list devices and processes again.
/// Dropping it ends the watch.
#[derive(Debug)]
pub struct Watch {
    fd: OwnedFd,
}

/// Starts watching the fabric.
pub fn watch() -> Result<Watch, Error> {
    let mut fd = -1;
    // SAFETY: `fd` is a valid out pointer.
    match unsafe { sys::fabric_watch(&mut fd) } {
        errno::SUCCESS => Ok(Watch {
            // SAFETY: the runtime just opened `fd` for this app, and
            // nothing else owns it.
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        }),
        e => Err(Error::Unavailable(e)),
    }
}

impl Watch {
    /// The next event if one is there now; `None` until the watch is
    /// readable again.
    pub fn next_event(&mut self) -> Result<Option<Event>, Error> {
        let mut frame = vec![0u8; weft_control::fabric_proto::Event::MAX_FRAME];
        let mut len = 0u32;
        // SAFETY: `frame` is valid for its length; `len` is a valid out
        // pointer.
        let e = unsafe {
            sys::fabric_event(
                self.fd.as_raw_fd(),
                frame.as_mut_ptr(),
                frame.len(),
                &mut len,
            )
        };
        match e {
            errno::SUCCESS => {
                frame.truncate(len as usize);
                Ok(Some(Event::from_frame(&frame)?))
            }
            errno::AGAIN => Ok(None),
            e => Err(Error::Unavailable(e)),
        }
    }
}

impl AsRawFd for Watch {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}
