//! Guest paths resolved beneath the file-system root (PROTOCOL.md §10.1).
//!
//! The guest sees `--fs-root` as `/`. Every lookup starts at the root's open
//! directory and goes through `openat2(2)` with `RESOLVE_BENEATH |
//! RESOLVE_NO_MAGICLINKS`: the kernel refuses (`EXDEV`) any resolution that
//! leaves the root — `..` above it, an absolute path or symlink, a symlink
//! whose target lies outside — and `/proc`-style magic links, atomically,
//! with no window for a concurrent rename to exploit. Operations on a path's
//! last component (`mkdirat`, `unlinkat`, `renameat`) open its parent this
//! way and name the component relative to it, never following it.
//!
//! The raw calls are [`crate::host`]'s; this module holds what makes them
//! safe to hand a guest's path: the resolution flags and the checks.

use super::super::framed::{Failure, code_of};
use crate::host;
use std::ffi::CString;
use std::fs::File;
use std::io;
use std::ops::Deref;
use weft_control::frame::Code;
use weft_control::fs_proto::At;

/// Times `openat2` is retried when a concurrent rename made it give up
/// (`EAGAIN`).
const RETRIES: usize = 8;

/// Why a path could not be used.
#[derive(Debug)]
pub enum PathError {
    /// The resolution would leave the root.
    Escape,
    /// The path is malformed; says how.
    Invalid(&'static str),
    /// The host refused.
    Io(io::Error),
}

impl PathError {
    /// The error frame for operation `op` on guest path `path`: the message
    /// names both (and the host's words for an unclassified error).
    pub fn failure(self, op: &str, path: &str) -> Failure {
        match self {
            Self::Escape => Failure::new(Code::Escape, format!("{op} {path}")),
            Self::Invalid(why) => Failure::new(Code::Invalid, format!("{op} {path}: {why}")),
            Self::Io(e) => match code_of(&e) {
                Code::Io => Failure::new(Code::Io, format!("{op} {path}: {e}")),
                code => Failure::new(code, format!("{op} {path}")),
            },
        }
    }
}

/// How an [`At`] is named in messages: its directory and path joined.
pub fn shown(at: At<'_>) -> String {
    match (at.dir.trim_end_matches('/'), at.path) {
        ("", path) => path.to_string(),
        (dir, "") => dir.to_string(),
        (dir, path) => format!("{dir}/{path}"),
    }
}

/// The directory an [`At`] starts from: the root itself, or a directory
/// opened beneath it.
pub enum Base<'a> {
    Root(&'a File),
    Dir(File),
}

impl Deref for Base<'_> {
    type Target = File;

    fn deref(&self) -> &File {
        match self {
            Self::Root(f) => f,
            Self::Dir(f) => f,
        }
    }
}

/// The directory `dir` names beneath `root` (`root` itself if `dir` is
/// empty or `/`s only), opened `O_PATH`.
pub fn base<'a>(root: &'a File, dir: &str) -> Result<Base<'a>, PathError> {
    if dir.trim_start_matches('/').is_empty() {
        return Ok(Base::Root(root));
    }
    open(root, dir, libc::O_PATH | libc::O_DIRECTORY, 0).map(Base::Dir)
}

impl From<io::Error> for PathError {
    fn from(e: io::Error) -> Self {
        Self::Io(e)
    }
}

/// `path` relative to the root: leading `/`s dropped, the root itself is
/// `.`. A NUL byte is refused.
fn relative(path: &str) -> Result<CString, PathError> {
    let rel = path.trim_start_matches('/');
    CString::new(if rel.is_empty() { "." } else { rel })
        .map_err(|_| PathError::Invalid("the path contains a NUL byte"))
}

/// Opens `at` beneath `root` as [`open`] does.
pub fn open_at(root: &File, at: At<'_>, flags: i32, mode: u32) -> Result<File, PathError> {
    open(&*base(root, at.dir)?, at.path, flags, mode)
}

/// The parent directory of `at` and its last component, as [`parent`].
pub fn parent_at(root: &File, at: At<'_>) -> Result<(File, CString), PathError> {
    parent(&*base(root, at.dir)?, at.path)
}

/// Opens `path` beneath `root` with `open(2)` `flags` (`O_CLOEXEC` is
/// added) and `mode` for a created file (ignored without `O_CREAT`, as
/// `openat2` refuses a mode then).
pub fn open(root: &File, path: &str, flags: i32, mode: u32) -> Result<File, PathError> {
    let rel = relative(path)?;
    let mode = if flags & libc::O_CREAT != 0 { mode } else { 0 };
    let resolve = libc::RESOLVE_BENEATH | libc::RESOLVE_NO_MAGICLINKS;
    let mut tries = 0;
    loop {
        match host::openat2(root, &rel, flags | libc::O_CLOEXEC, mode, resolve) {
            Ok(file) => return Ok(file),
            Err(e) if e.raw_os_error() == Some(libc::EXDEV) => return Err(PathError::Escape),
            Err(e) if e.raw_os_error() == Some(libc::EAGAIN) && tries < RETRIES => tries += 1,
            Err(e) => return Err(e.into()),
        }
    }
}

/// A path's parent directory (opened beneath the root, `O_PATH`) and its
/// last component, which is not empty, `.` or `..`. Trailing `/`s stay on
/// the component, so the host requires it to be a directory (`ENOTDIR`
/// otherwise) as `unlink("file/")` does; the callers that would then follow a
/// symlink go another way ([`names_entry`]).
pub fn parent(root: &File, path: &str) -> Result<(File, CString), PathError> {
    let trimmed = path.trim_end_matches('/');
    let start = trimmed.rfind('/').map_or(0, |i| i + 1);
    let dir = &trimmed[..start.saturating_sub(1)];
    if matches!(&trimmed[start..], "" | "." | "..") {
        return Err(PathError::Invalid("the path names no entry"));
    }
    // The component with its trailing `/`s.
    let name = &path[start..];
    let name =
        CString::new(name).map_err(|_| PathError::Invalid("the path contains a NUL byte"))?;
    let dir = open(root, dir, libc::O_PATH | libc::O_DIRECTORY, 0)?;
    Ok((dir, name))
}

/// Creates directory `name` in `dir` (mode 0777 less the umask).
pub fn mkdir_at(dir: &File, name: &CString) -> io::Result<()> {
    host::mkdirat(dir, name, 0o777)
}

/// Removes `name` from `dir`: a directory if `is_dir`, else a file or
/// symlink (never followed).
pub fn unlink_at(dir: &File, name: &CString, is_dir: bool) -> io::Result<()> {
    host::unlinkat(dir, name, if is_dir { libc::AT_REMOVEDIR } else { 0 })
}

/// Whether `path`'s last component is a name (not empty, `.` or `..`)
/// with no `/` after it: only then can an operation act on a symlink
/// itself (a trailing `/` makes the host follow it).
pub fn names_entry(path: &str) -> bool {
    let last = path.rsplit('/').next().unwrap_or("");
    !matches!(last, "" | "." | "..")
}

/// Renames `from_dir/from` to `to_dir/to` (replacing `to`, as `rename(2)`
/// does; neither is followed if it is a symlink).
pub fn rename_at(from_dir: &File, from: &CString, to_dir: &File, to: &CString) -> io::Result<()> {
    host::renameat(from_dir, from, to_dir, to)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_start_at_the_root() {
        assert_eq!(relative("/").unwrap().as_bytes(), b".");
        assert_eq!(relative("").unwrap().as_bytes(), b".");
        assert_eq!(relative("//a/b").unwrap().as_bytes(), b"a/b");
        assert!(matches!(relative("a\0b"), Err(PathError::Invalid(_))));
    }

    #[test]
    fn escapes_and_bad_names_are_refused() {
        let dir = std::env::temp_dir().join(format!("weft-beneath-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::os::unix::fs::symlink("/etc", dir.join("etc")).unwrap();
        std::os::unix::fs::symlink("../..", dir.join("sub/up")).unwrap();
        let root = File::open(&dir).unwrap();
        let rd = libc::O_RDONLY;
        for escape in ["..", "/../x", "sub/../../x", "etc/passwd", "sub/up/x"] {
            assert!(
                matches!(open(&root, escape, rd, 0), Err(PathError::Escape)),
                "{escape}"
            );
        }
        assert!(open(&root, "/sub/..", rd, 0).is_ok());
        for bad in ["/", "a/..", "a/.", ""] {
            assert!(
                matches!(parent(&root, bad), Err(PathError::Invalid(_))),
                "{bad}"
            );
        }
        let (d, name) = parent(&root, "/sub/new/").unwrap();
        assert_eq!(name.as_bytes(), b"new/");
        mkdir_at(&d, &name).unwrap();
        assert!(dir.join("sub/new").is_dir());
        unlink_at(&d, &name, true).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
