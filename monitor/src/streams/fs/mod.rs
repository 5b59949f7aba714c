//! The file-system protocols (PROTOCOL.md §10): a `FILE_OPEN` stream serves
//! one open file ([`file`]), an `FS_SESSION` stream path operations
//! ([`session`]). Paths resolve beneath `--fs-root` ([`beneath`]).
//!
//! File I/O runs synchronously on the relay thread: the files are the host's
//! own, reads mostly hit the page cache and take microseconds, and a
//! blocking-pool round trip per request would cost more than the call. A slow
//! disk stalls the other streams for as long as one call takes.
//!
//! Requests are answered in order. A request that fails gets an `ERROR`
//! frame and the stream goes on; a frame that does not decode ends it with
//! `Protocol`. Without `--fs-root` both first frames get `ERROR Unsupported`
//! and the stream ends.

mod beneath;
mod file;
mod quota;
mod session;

pub use quota::{Quota, QuotaFigures};

use super::framed::{Failure, StreamIo};
use super::policy::Policy;
use crate::host;
use std::fs::File;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use weft_control::frame::{Code, kind};
use weft_control::fs_proto::{FileKind, Metadata, SetTime};

/// Serves a stream whose first frame was `kind` with `params`.
pub async fn serve(io: StreamIo, kind: u16, params: &[u8], policy: &Policy) {
    let root = match policy.fs_root() {
        Ok(dir) => Root {
            dir,
            read_only: policy.read_only,
            quota: policy.fs_quota.as_ref(),
        },
        Err(f) => return io.fail(f).await,
    };
    match kind {
        kind::FILE_OPEN => file::serve(io, params, root).await,
        _ => session::serve(io, params, root).await,
    }
}

/// The root directory, whether it may be changed, and the guest's quota.
#[derive(Clone, Copy)]
struct Root<'a> {
    dir: &'a File,
    read_only: bool,
    quota: Option<&'a Quota>,
}

impl Root<'_> {
    /// Gives `bytes` back to the quota, if there is one.
    fn credit(&self, bytes: u64) {
        if let Some(q) = self.quota {
            q.credit(bytes);
        }
    }

    /// Refuses operation `op` on `path` under `--read-only`.
    fn check_writable(&self, op: &str, path: &str) -> Result<(), Failure> {
        if self.read_only {
            Err(Failure::new(Code::ReadOnly, format!("{op} {path}")))
        } else {
            Ok(())
        }
    }
}

/// What `at` names itself (a symlink is not followed), if it exists.
fn lstat(root: &Root<'_>, at: weft_control::fs_proto::At<'_>) -> Option<std::fs::Metadata> {
    beneath::open_at(root.dir, at, libc::O_PATH | libc::O_NOFOLLOW, 0)
        .and_then(|f| f.metadata().map_err(beneath::PathError::Io))
        .ok()
}

/// The bytes removing what `at` names would free: its size if it is a
/// regular file with no other name (none without a quota).
fn freed_by_removing(root: &Root<'_>, at: weft_control::fs_proto::At<'_>) -> u64 {
    if root.quota.is_none() {
        return 0;
    }
    lstat(root, at)
        .filter(|m| m.is_file() && m.nlink() == 1)
        .map_or(0, |m| m.len())
}

/// What `t` is, in the protocol's terms.
fn file_kind(t: std::fs::FileType) -> FileKind {
    if t.is_file() {
        FileKind::File
    } else if t.is_dir() {
        FileKind::Dir
    } else if t.is_symlink() {
        FileKind::Symlink
    } else {
        FileKind::Other
    }
}

/// Nanoseconds since the Unix epoch of a host time.
fn ns(secs: i64, nanos: i64) -> i64 {
    secs.saturating_mul(1_000_000_000).saturating_add(nanos)
}

/// Host metadata in the protocol's terms.
fn metadata(m: &std::fs::Metadata) -> Metadata {
    Metadata {
        kind: file_kind(m.file_type()),
        mode: m.permissions().mode() & 0o7777,
        size: m.len(),
        modified_ns: ns(m.mtime(), m.mtime_nsec()),
        accessed_ns: ns(m.atime(), m.atime_nsec()),
        changed_ns: ns(m.ctime(), m.ctime_nsec()),
        device: m.dev(),
        inode: m.ino(),
        links: m.nlink(),
    }
}

/// A time to set, as the host takes it.
fn time_spec(t: SetTime) -> host::TimeSpec {
    match t {
        SetTime::Keep => None,
        SetTime::Now => Some(None),
        SetTime::To(ns) => Some(Some((
            ns.div_euclid(1_000_000_000),
            ns.rem_euclid(1_000_000_000),
        ))),
    }
}

/// How a request went wrong.
enum Fault {
    /// The request failed: an `ERROR` frame answers it and the stream goes
    /// on.
    Request(Failure),
    /// The stream cannot go on (a frame that does not decode, a guest that
    /// stopped reading).
    Stream(Failure),
}

impl From<Failure> for Fault {
    fn from(f: Failure) -> Self {
        Self::Request(f)
    }
}

/// A frame that broke the protocol: ends the stream.
fn broken(e: weft_control::frame::WireError) -> Fault {
    Fault::Stream(Failure::protocol(e))
}

/// Writes a whole frame; a guest that stopped reading ends the stream.
async fn send(io: &mut StreamIo, frame: &[u8]) -> Result<(), Fault> {
    io.write_frame(frame).await.map_err(Fault::Stream)
}

/// Serves requests until the guest closes the stream: `answer` replies to
/// each (header kind and body).
async fn serve_requests<S>(
    mut io: StreamIo,
    state: &mut S,
    mut answer: impl AsyncFnMut(&mut S, &mut StreamIo, u16, &[u8]) -> Result<(), Fault>,
) {
    let mut body = Vec::new();
    loop {
        let header = match io.read_frame(&mut body).await {
            Ok(Some(h)) => h,
            Ok(None) => return,
            Err(f) => return io.fail(f).await,
        };
        let failure = match answer(state, &mut io, header.kind, &body).await {
            Ok(()) => continue,
            Err(Fault::Request(f)) => match io.write_error(f.code, &f.message).await {
                Ok(()) => continue,
                Err(f) => f,
            },
            Err(Fault::Stream(f)) => f,
        };
        return io.fail(failure).await;
    }
}
