//! An `FS_SESSION` stream (PROTOCOL.md §10.3): path operations, each on a
//! path resolved beneath the root.

use super::beneath::{self, PathError, shown};
use super::{
    Fault, Root, broken, file_kind, freed_by_removing, lstat, metadata, send, serve_requests,
    time_spec,
};
use crate::host;
use crate::streams::framed::{Failure, StreamIo};
use std::ffi::CString;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirEntryExt, MetadataExt};
use weft_control::frame::{Code, HEADER, Header, MAX_BODY};
use weft_control::fs_proto::{
    At, DirEntry, FileKind, METADATA_LEN, Reply, SessionRequest, Times, encode_entries,
};

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

/// The failure of operation `op` on `at`.
fn failed(op: &'static str, at: At<'_>) -> impl FnOnce(PathError) -> Failure {
    move |e| e.failure(op, &shown(at))
}

/// A host error of operation `op` on `at`.
fn host_failed(op: &'static str, at: At<'_>) -> impl FnOnce(std::io::Error) -> Failure {
    move |e| PathError::Io(e).failure(op, &shown(at))
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
        SessionRequest::ReadDir(at) => return list(root, io, at).await,
        SessionRequest::ReadLink(at) => return read_link(root, io, at).await,
        SessionRequest::Stat { at, follow } => {
            let flags = libc::O_PATH | if follow { 0 } else { libc::O_NOFOLLOW };
            let file = beneath::open_at(root.dir, at, flags, 0).map_err(failed("stat", at))?;
            let m = file.metadata().map_err(host_failed("stat", at))?;
            Reply::Metadata(metadata(&m))
        }
        SessionRequest::CreateDir(at) => {
            let op = "create directory";
            root.check_writable(op, &shown(at))?;
            let (dir, name) = beneath::parent_at(root.dir, at).map_err(failed(op, at))?;
            beneath::mkdir_at(&dir, &name).map_err(host_failed(op, at))?;
            Reply::Done
        }
        SessionRequest::RemoveFile(at) | SessionRequest::RemoveDir(at) => {
            let is_dir = matches!(request, SessionRequest::RemoveDir(_));
            let op = if is_dir { "remove directory" } else { "remove" };
            root.check_writable(op, &shown(at))?;
            let (dir, name) = beneath::parent_at(root.dir, at).map_err(failed(op, at))?;
            let freed = freed_by_removing(root, at);
            beneath::unlink_at(&dir, &name, is_dir).map_err(host_failed(op, at))?;
            root.credit(freed);
            Reply::Done
        }
        SessionRequest::Rename { from, to } => {
            root.check_writable("rename", &shown(from))?;
            let (from_dir, from_name) =
                beneath::parent_at(root.dir, from).map_err(failed("rename", from))?;
            let (to_dir, to_name) =
                beneath::parent_at(root.dir, to).map_err(failed("rename to", to))?;
            let freed = freed_by_replacing(root, from, to);
            beneath::rename_at(&from_dir, &from_name, &to_dir, &to_name)
                .map_err(host_failed("rename", from))?;
            root.credit(freed);
            Reply::Done
        }
        SessionRequest::Symlink { target, at } => {
            let op = "make symlink";
            root.check_writable(op, &shown(at))?;
            symlink(root, target, at)?;
            Reply::Done
        }
        SessionRequest::HardLink { from, follow, to } => {
            root.check_writable("link", &shown(to))?;
            hard_link(root, from, follow, to)?;
            Reply::Done
        }
        SessionRequest::SetTimes { at, follow, times } => {
            root.check_writable("set times of", &shown(at))?;
            set_times(root, at, follow, times)?;
            Reply::Done
        }
    };
    let mut buf = [0u8; HEADER + METADATA_LEN];
    let n = reply.encode(&mut buf).unwrap_or(0);
    send(io, &buf[..n]).await
}

/// The bytes renaming `from` onto `to` frees (§10.4): what `to` names,
/// unless it is `from` itself (none without a quota).
fn freed_by_replacing(root: &Root<'_>, from: At<'_>, to: At<'_>) -> u64 {
    let id = |at| lstat(root, at).map(|m| (m.dev(), m.ino()));
    if root.quota.is_none() || id(from) == id(to) {
        return 0;
    }
    freed_by_removing(root, to)
}

/// Makes a symlink at `at` to `target`, stored as given. An absolute
/// target is refused (`Escape`): it could only ever lead out of the root.
fn symlink(root: &Root<'_>, target: &str, at: At<'_>) -> Result<(), Failure> {
    let op = "make symlink";
    if target.starts_with('/') {
        return Err(PathError::Escape.failure(op, &format!("{} -> {target}", shown(at))));
    }
    let target = CString::new(target).map_err(|_| {
        PathError::Invalid("the target contains a NUL byte").failure(op, &shown(at))
    })?;
    let (dir, name) = beneath::parent_at(root.dir, at).map_err(failed(op, at))?;
    host::symlinkat(&target, &dir, &name).map_err(host_failed(op, at))
}

/// Makes `to` a new name of what `from` names. Following a symlink
/// `from` goes through a descriptor opened beneath the root, so a link
/// leading out of the root is refused like any other path.
fn hard_link(root: &Root<'_>, from: At<'_>, follow: bool, to: At<'_>) -> Result<(), Failure> {
    let (to_dir, to_name) = beneath::parent_at(root.dir, to).map_err(failed("link to", to))?;
    // A trailing `/` would make the host follow `from` past the root.
    if follow || !beneath::names_entry(from.path) {
        let file =
            beneath::open_at(root.dir, from, libc::O_PATH, 0).map_err(failed("link", from))?;
        return host::link_to(&file, &to_dir, &to_name).map_err(host_failed("link to", to));
    }
    let (from_dir, from_name) = beneath::parent_at(root.dir, from).map_err(failed("link", from))?;
    host::linkat(&from_dir, &from_name, &to_dir, &to_name).map_err(host_failed("link to", to))
}

/// Sets the times of `at`: of a symlink itself unless `follow`.
fn set_times(root: &Root<'_>, at: At<'_>, follow: bool, times: Times) -> Result<(), Failure> {
    let op = "set times of";
    let (accessed, modified) = (time_spec(times.accessed), time_spec(times.modified));
    if !follow && beneath::names_entry(at.path) {
        let (dir, name) = beneath::parent_at(root.dir, at).map_err(failed(op, at))?;
        return host::set_times_at(&dir, &name, accessed, modified).map_err(host_failed(op, at));
    }
    let file = beneath::open_at(root.dir, at, libc::O_PATH, 0).map_err(failed(op, at))?;
    host::set_times(&file, accessed, modified).map_err(host_failed(op, at))
}

/// Answers `READ_LINK`: the target of the symlink `at` names. A path
/// ending in `/` names what a symlink leads to, which is no link: a
/// directory is `Invalid`, anything else as the lookup fails (beneath the
/// root).
async fn read_link(root: &Root<'_>, io: &mut StreamIo, at: At<'_>) -> Result<(), Fault> {
    let op = "read link";
    if at.path.ends_with('/') {
        beneath::open_at(root.dir, at, libc::O_PATH | libc::O_DIRECTORY, 0)
            .map_err(failed(op, at))?;
        let why = PathError::Invalid("a directory is not a symlink");
        return Err(why.failure(op, &shown(at)).into());
    }
    let (dir, name) = beneath::parent_at(root.dir, at).map_err(failed(op, at))?;
    let target = host::readlinkat(&dir, &name).map_err(host_failed(op, at))?;
    let target = String::from_utf8(target).map_err(|_| {
        Failure::new(
            Code::Invalid,
            format!("{op} {}: the target is not UTF-8", shown(at)),
        )
    })?;
    let mut buf = vec![0u8; HEADER + target.len()];
    let n = Reply::LinkTarget(&target).encode(&mut buf).unwrap_or(0);
    send(io, &buf[..n]).await
}

/// Lists directory `at`: every entry (names that are not UTF-8 are left
/// out), as `ENTRIES` frames and then `END`. The whole listing is read
/// before the first frame, so a host error is the only reply.
async fn list(root: &Root<'_>, io: &mut StreamIo, at: At<'_>) -> Result<(), Fault> {
    let dir = beneath::open_at(root.dir, at, libc::O_RDONLY | libc::O_DIRECTORY, 0)
        .map_err(failed("list", at))?;
    // The descriptor's own /proc link reopens that very directory: no path
    // is resolved again.
    let entries = std::fs::read_dir(format!("/proc/self/fd/{}", dir.as_raw_fd()))
        .and_then(|it| {
            it.map(|e| {
                let e = e?;
                let kind = e.file_type().map(file_kind)?;
                let inode = e.ino();
                Ok(e.file_name()
                    .into_string()
                    .ok()
                    .map(|name| (kind, inode, name)))
            })
            .collect::<std::io::Result<Vec<Option<(FileKind, u64, String)>>>>()
        })
        .map_err(host_failed("list", at))?;
    let entries: Vec<DirEntry<'_>> = entries
        .iter()
        .flatten()
        .map(|(kind, inode, name)| DirEntry {
            kind: *kind,
            inode: *inode,
            name,
        })
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;
    use std::os::unix::fs::MetadataExt;
    use weft_control::fs_proto::SetTime;

    /// A scratch root holding `f` (a file), `sub/` and `out` (a symlink
    /// to a file outside the root), removed when dropped.
    struct Scratch(std::path::PathBuf);

    impl Scratch {
        fn new(name: &str) -> (Self, File) {
            let dir =
                std::env::temp_dir().join(format!("weft-session-{name}-{}", std::process::id()));
            std::fs::create_dir_all(dir.join("sub")).unwrap();
            std::fs::write(dir.join("f"), b"inside").unwrap();
            std::fs::write(dir.with_extension("secret"), b"outside").unwrap();
            let outside = dir.with_extension("secret");
            std::os::unix::fs::symlink(&outside, dir.join("out")).unwrap();
            let root = File::open(&dir).unwrap();
            (Self(dir), root)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
            let _ = std::fs::remove_file(self.0.with_extension("secret"));
        }
    }

    fn code(r: Result<(), Failure>) -> Option<Code> {
        r.err().map(|f| f.code)
    }

    #[test]
    fn links_never_reach_outside_the_root() {
        let (dir, file) = Scratch::new("links");
        let root = Root {
            dir: &file,
            read_only: false,
            quota: None,
        };
        assert_eq!(
            code(symlink(&root, "/etc/passwd", At::root("abs"))),
            Some(Code::Escape)
        );
        assert_eq!(
            code(symlink(
                &root,
                "../f",
                At {
                    dir: "sub",
                    path: "up"
                }
            )),
            None
        );
        let followed = hard_link(&root, At::root("out"), true, At::root("copy"));
        assert_eq!(code(followed), Some(Code::Escape));
        assert!(!dir.0.join("copy").exists());
        let from_sub = At {
            dir: "sub",
            path: "../f",
        };
        assert_eq!(
            code(hard_link(&root, from_sub, true, At::root("h"))),
            Some(Code::Escape)
        );
        assert_eq!(
            code(hard_link(&root, At::root("f"), true, At::root("h"))),
            None
        );
        let meta = std::fs::metadata(dir.0.join("h")).unwrap();
        assert_eq!(meta.nlink(), 2);
        // Without following, the symlink itself gets the new name.
        assert_eq!(
            code(hard_link(&root, At::root("out"), false, At::root("l"))),
            None
        );
        assert!(
            std::fs::symlink_metadata(dir.0.join("l"))
                .unwrap()
                .is_symlink()
        );
    }

    #[test]
    fn times_are_set_on_the_file_or_the_link_and_never_outside() {
        let (dir, file) = Scratch::new("times");
        let root = Root {
            dir: &file,
            read_only: false,
            quota: None,
        };
        let times = Times {
            accessed: SetTime::Keep,
            modified: SetTime::To(1_000_000_000_500),
        };
        assert_eq!(code(set_times(&root, At::root("f"), true, times)), None);
        let m = std::fs::metadata(dir.0.join("f")).unwrap();
        assert_eq!((m.mtime(), m.mtime_nsec()), (1000, 500));
        let secret = std::fs::metadata(dir.0.with_extension("secret")).unwrap();
        assert_eq!(
            code(set_times(&root, At::root("out"), true, times)),
            Some(Code::Escape)
        );
        assert_eq!(code(set_times(&root, At::root("out"), false, times)), None);
        let after = std::fs::metadata(dir.0.with_extension("secret")).unwrap();
        assert_eq!(after.mtime(), secret.mtime());
        let link = std::fs::symlink_metadata(dir.0.join("out")).unwrap();
        assert_eq!(link.mtime(), 1000);
        let dir_itself = At {
            dir: "sub",
            path: "",
        };
        assert_eq!(code(set_times(&root, dir_itself, false, times)), None);
        assert_eq!(std::fs::metadata(dir.0.join("sub")).unwrap().mtime(), 1000);
    }
}
