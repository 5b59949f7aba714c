//! An `FS_SESSION` stream (PROTOCOL.md §10.3): path operations, each on a
//! path resolved beneath the root.

use super::beneath::{self, PathError};
use super::{Fault, Root, broken, file_kind, metadata, send, serve_requests};
use crate::streams::framed::{Failure, StreamIo};
use std::os::fd::AsRawFd;
use weft_control::frame::{HEADER, Header, MAX_BODY};
use weft_control::fs_proto::{DirEntry, FileKind, Reply, SessionRequest, encode_entries};

/// Answers `SESSION_OPENED` and serves path operations.
pub async fn serve(mut io: StreamIo, params: &[u8], root: Root<'_>) {
    if !params.is_empty() {
        let e = weft_control::frame::WireError::Trailing;
        return io.fail(Failure::protocol(e)).await;
    }
    let mut buf = [0u8; HEADER];
    let n = Reply::SessionOpened.encode(&mut buf).unwrap_or(0);
    if let Err(f) = io.write_frame(&buf[..n]).await {
        return io.fail(f).await;
    }
    let mut state = root;
    serve_requests(io, &mut state, answer).await
}

/// Answers one request.
async fn answer(
    root: &mut Root<'_>,
    io: &mut StreamIo,
    kind: u16,
    body: &[u8],
) -> Result<(), Fault> {
    let header = Header::new(kind, body.len());
    let request = SessionRequest::decode(header, body).map_err(broken)?;
    let reply = match request {
        SessionRequest::Stat(path) => {
            let file = beneath::open(root.dir, path, libc::O_PATH, 0)
                .map_err(|e| e.failure("stat", path))?;
            let m = file
                .metadata()
                .map_err(|e| PathError::Io(e).failure("stat", path))?;
            Reply::Metadata(metadata(&m))
        }
        SessionRequest::ReadDir(path) => return list(root, io, path).await,
        SessionRequest::CreateDir(path) => {
            root.check_writable("create directory", path)?;
            let (dir, name) =
                beneath::parent(root.dir, path).map_err(|e| e.failure("create directory", path))?;
            beneath::mkdir_at(&dir, &name)
                .map_err(|e| PathError::Io(e).failure("create directory", path))?;
            Reply::Done
        }
        SessionRequest::RemoveFile(path) | SessionRequest::RemoveDir(path) => {
            let is_dir = matches!(request, SessionRequest::RemoveDir(_));
            let op = if is_dir { "remove directory" } else { "remove" };
            root.check_writable(op, path)?;
            let (dir, name) = beneath::parent(root.dir, path).map_err(|e| e.failure(op, path))?;
            beneath::unlink_at(&dir, &name, is_dir)
                .map_err(|e| PathError::Io(e).failure(op, path))?;
            Reply::Done
        }
        SessionRequest::Rename { from, to } => {
            root.check_writable("rename", from)?;
            let (from_dir, from_name) =
                beneath::parent(root.dir, from).map_err(|e| e.failure("rename", from))?;
            let (to_dir, to_name) =
                beneath::parent(root.dir, to).map_err(|e| e.failure("rename to", to))?;
            beneath::rename_at(&from_dir, &from_name, &to_dir, &to_name)
                .map_err(|e| PathError::Io(e).failure("rename", from))?;
            Reply::Done
        }
    };
    let mut buf = [0u8; HEADER + weft_control::fs_proto::METADATA_LEN];
    let n = reply.encode(&mut buf).unwrap_or(0);
    send(io, &buf[..n]).await
}

/// Lists directory `path`: every entry (names that are not UTF-8 are
/// left out), as `ENTRIES` frames and then `END`. The whole listing is read
/// before the first frame, so a host error is the only reply.
async fn list(root: &Root<'_>, io: &mut StreamIo, path: &str) -> Result<(), Fault> {
    let fail = |e: PathError| e.failure("list", path);
    let dir = beneath::open(root.dir, path, libc::O_RDONLY | libc::O_DIRECTORY, 0).map_err(fail)?;
    // The descriptor's own /proc link reopens that very directory: no path
    // is resolved again.
    let entries = std::fs::read_dir(format!("/proc/self/fd/{}", dir.as_raw_fd()))
        .and_then(|it| {
            it.map(|e| {
                let e = e?;
                let kind = e.file_type().map(file_kind)?;
                Ok(e.file_name().into_string().ok().map(|name| (kind, name)))
            })
            .collect::<std::io::Result<Vec<Option<(FileKind, String)>>>>()
        })
        .map_err(|e| fail(PathError::Io(e)))?;
    let entries: Vec<DirEntry<'_>> = entries
        .iter()
        .flatten()
        .map(|(kind, name)| DirEntry { kind: *kind, name })
        .collect();
    let mut buf = vec![0u8; HEADER + MAX_BODY];
    let mut rest = &entries[..];
    while !rest.is_empty() {
        let (n, taken) = encode_entries(rest, &mut buf);
        send(io, &buf[..n]).await?;
        // A name always fits a frame (host names are at most 255 bytes).
        rest = &rest[taken.max(1)..];
    }
    let n = Reply::End.encode(&mut buf).unwrap_or(0);
    send(io, &buf[..n]).await
}
