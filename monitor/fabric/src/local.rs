//! The daemon's local socket: how `weft fabric devices|invite|remove`,
//! `weft ps|spawn|kill|stats` reach the daemon of their state directory.
//!
//! The socket is `DIR/daemon.sock`, owner-only (mode 0600, in the 0700
//! state directory). A client connects, writes one request as one line of
//! JSON, and reads one response line (a `watch`: one line per change); the
//! daemon closes the connection after answering. Requests over
//! [`MAX_LINE`] bytes are refused. A `spawn` of a module file
//! ([`Program::File`]) carries the file's open descriptor with the
//! request's first bytes (`SCM_RIGHTS`): the daemon reads the module from
//! it, so it opens no path of the CLI's (its sandbox lets it open files
//! only beneath its state directory and `--fs-root`).

use crate::wire::{Device, Engine, Process};
use serde::{Deserialize, Serialize};
use std::io::{BufRead, BufReader, IoSlice, IoSliceMut, Read, Write};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;
use thiserror::Error;

/// The socket's file name in the state directory.
pub const SOCKET: &str = "daemon.sock";
/// The longest request or response line.
pub const MAX_LINE: usize = 1 << 20;

/// The socket of the daemon of state directory `dir`.
pub fn socket_path(dir: &Path) -> PathBuf {
    dir.join(SOCKET)
}

/// A command for the local daemon.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum LocalRequest {
    /// Known devices (only the available ones with `available`).
    Devices { available: bool },
    /// A one-time invitation valid for `expires_secs`.
    Invite { expires_secs: u64 },
    /// Removes a device from the fabric.
    Remove { name: String },
    /// Processes of every available device, or of one.
    Ps { device: Option<String> },
    /// One process, `DEVICE:N`.
    Stats { pid: String },
    /// Ends a process, `DEVICE:N`.
    Kill { pid: String },
    /// Starts `program` on `device` (default: this one); a Wasm module in
    /// `engine`'s tier (default: as that device runs modules).
    Spawn {
        device: Option<String>,
        program: Program,
        args: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        engine: Option<Engine>,
    },
    /// Waits for process `pid` to end, at most `limit_secs`.
    Wait { pid: String, limit_secs: u64 },
    /// Moves process `pid` (a Wasm event app) to device `to`, waiting at
    /// most `wait_ms` for its event batch to end (§19.4).
    Move {
        pid: String,
        to: String,
        wait_ms: u32,
    },
    /// Answers `available` now and again whenever the set of available
    /// devices changes, until the client goes.
    Watch,
    /// The services running in the fabric (`weft ipc services`).
    IpcServices,
    /// A message to service `guid` (instance `pid` if given), as the
    /// device's own (`weft ipc call|send`): a request waits at most
    /// `timeout_ms` for its answer; a one-way message is answered `done`
    /// once queued.
    IpcSend {
        guid: String,
        pid: Option<String>,
        request: bool,
        timeout_ms: u32,
        data: Vec<u8>,
    },
}

/// What a spawn runs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Program {
    /// One of the target device's own programs.
    Name { name: String },
    /// A Wasm module file on this machine, named `name`, whose open
    /// descriptor comes with the request.
    File { name: String },
    /// A Wasm module's bytes (what an app in the device guest sends).
    Module { bytes: Vec<u8> },
}

/// The daemon's answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub enum LocalResponse {
    Devices {
        devices: Vec<Device>,
    },
    Processes {
        processes: Vec<Process>,
    },
    Process {
        process: Process,
    },
    Invitation {
        token: String,
    },
    Spawned {
        pid: String,
    },
    Exited {
        pid: String,
        status: u32,
    },
    /// `Wait` ran out of time with the process still running.
    Running {
        pid: String,
    },
    /// The devices available now (`Watch`).
    Available {
        names: Vec<String>,
    },
    Services {
        services: Vec<crate::wire::Service>,
    },
    /// A request's answer.
    Answer {
        data: Vec<u8>,
    },
    Done,
    Error {
        message: String,
    },
}

/// Why a command could not reach the daemon or read its answer.
#[derive(Debug, Error)]
pub enum LocalError {
    #[error("no daemon is running for {0} (start one with `weft daemon --state {0}`)")]
    NoDaemon(String),
    #[error("the daemon's socket {path}: {error}")]
    Io { path: String, error: std::io::Error },
    #[error("the daemon's answer: {0}")]
    Answer(String),
}

/// Sends `request` to the daemon of `dir` and returns its answer, waiting
/// at most `limit` for it.
pub fn request(
    dir: &Path,
    request: &LocalRequest,
    limit: Duration,
) -> Result<LocalResponse, LocalError> {
    request_with(dir, request, None, limit)
}

/// [`request`], with `file`'s descriptor attached to the request (a
/// [`Program::File`]).
pub fn request_with(
    dir: &Path,
    request: &LocalRequest,
    file: Option<BorrowedFd<'_>>,
    limit: Duration,
) -> Result<LocalResponse, LocalError> {
    let mut answer = None;
    exchange(dir, request, file, Some(limit), |r| {
        answer = Some(r);
        false
    })?;
    answer.ok_or_else(|| LocalError::Answer("the daemon closed the connection".into()))
}

/// Sends `request` (with `file`'s descriptor, if any) and hands each
/// answer line to `each` until it returns false or the daemon closes the
/// connection (a `watch`), waiting at most `limit` for each line (`None`:
/// for ever).
pub fn exchange(
    dir: &Path,
    request: &LocalRequest,
    file: Option<BorrowedFd<'_>>,
    limit: Option<Duration>,
    mut each: impl FnMut(LocalResponse) -> bool,
) -> Result<(), LocalError> {
    let path = socket_path(dir);
    let io = |error| LocalError::Io {
        path: path.display().to_string(),
        error,
    };
    let mut stream = UnixStream::connect(&path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused => {
            LocalError::NoDaemon(dir.display().to_string())
        }
        _ => io(e),
    })?;
    stream.set_read_timeout(limit).map_err(io)?;
    let mut line = serde_json::to_vec(request).map_err(|e| LocalError::Answer(e.to_string()))?;
    line.push(b'\n');
    let mut sent = 0;
    if let Some(fd) = file {
        let fds = [fd];
        let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
        let mut control = rustix::net::SendAncillaryBuffer::new(&mut space);
        control.push(rustix::net::SendAncillaryMessage::ScmRights(&fds));
        sent = rustix::net::sendmsg(
            &stream,
            &[IoSlice::new(&line)],
            &mut control,
            rustix::net::SendFlags::empty(),
        )
        .map_err(|e| io(e.into()))?;
    }
    stream.write_all(&line[sent..]).map_err(io)?;
    let mut reader = BufReader::new(stream);
    loop {
        let mut answer = String::new();
        let n = (&mut reader)
            .take(MAX_LINE as u64)
            .read_line(&mut answer)
            .map_err(io)?;
        if n == 0 {
            return Ok(());
        }
        let response =
            serde_json::from_str(&answer).map_err(|e| LocalError::Answer(e.to_string()))?;
        if !each(response) {
            return Ok(());
        }
    }
}

/// Reads one request line from a client (at most [`MAX_LINE`] bytes), and
/// the descriptor that came with its first bytes, if any.
pub async fn read_request(
    stream: &mut tokio::net::UnixStream,
) -> Result<(LocalRequest, Option<OwnedFd>), String> {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt};
    let failed = |e: std::io::Error| format!("reading the request: {e}");
    let mut first = vec![0u8; 4096];
    let (n, fd) = loop {
        stream.readable().await.map_err(failed)?;
        match stream.try_io(tokio::io::Interest::READABLE, || {
            receive(stream.as_fd(), &mut first)
        }) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            r => break r.map_err(failed)?,
        }
    };
    first.truncate(n);
    let mut line = Vec::new();
    let rest = AsyncReadExt::chain(first.as_slice(), stream);
    tokio::io::BufReader::new(AsyncReadExt::take(rest, MAX_LINE as u64))
        .read_until(b'\n', &mut line)
        .await
        .map_err(failed)?;
    let request = serde_json::from_slice(&line).map_err(|e| format!("bad request: {e}"))?;
    Ok((request, fd))
}

/// One `recvmsg` of `stream` into `buf`: the bytes read, and the first
/// descriptor that came with them (any others are closed).
fn receive(stream: BorrowedFd<'_>, buf: &mut [u8]) -> std::io::Result<(usize, Option<OwnedFd>)> {
    use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, recvmsg};
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let got = recvmsg(
        stream,
        &mut [IoSliceMut::new(buf)],
        &mut control,
        RecvFlags::CMSG_CLOEXEC,
    )?;
    let fd = control.drain().find_map(|m| match m {
        RecvAncillaryMessage::ScmRights(mut fds) => fds.next(),
        _ => None,
    });
    Ok((got.bytes, fd))
}

/// Writes one response line to a client.
pub async fn write_response<W>(writer: &mut W, response: &LocalResponse) -> std::io::Result<()>
where
    W: tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::AsyncWriteExt;
    let mut line = serde_json::to_vec(response).map_err(std::io::Error::other)?;
    line.push(b'\n');
    writer.write_all(&line).await
}
