//! WASI preview 1's calls on paths and on files' metadata: `path_*`, and
//! `fd_filestat_*`, `fd_readdir`, `fd_advise`, `fd_allocate`. A path is
//! resolved beneath its directory descriptor ([`crate::fds::Path`]), which
//! the monitor enforces (PROTOCOL.md §10.1); errnos follow wasmtime's
//! (PROTOCOL.md §13.1).

use crate::fds::Path;
use crate::host::{Host, Metadata, SetTime, Times, WasiResult};
use crate::mem::Env;
use alloc::vec::Vec;
use weft_control::app::errno;

pub(crate) const WASI: &str = crate::wasi::MODULE;

/// `lookupflags`: follow a symlink as the last component.
pub(crate) const SYMLINK_FOLLOW: i32 = 1;
/// `oflags`.
pub(crate) const O_CREAT: i32 = 1;
pub(crate) const O_DIRECTORY: i32 = 2;
pub(crate) const O_EXCL: i32 = 4;
pub(crate) const O_TRUNC: i32 = 8;
/// `fdflags`: append, non-blocking, and the synchronous writes (not
/// offered, as under wasmtime).
pub(crate) const APPEND: i32 = 1;
pub(crate) const NONBLOCK: i32 = 4;
pub(crate) const SYNCS: i32 = 2 | 8 | 16;
/// `fstflags`.
pub(crate) const ATIM: i32 = 1;
pub(crate) const ATIM_NOW: i32 = 2;
pub(crate) const MTIM: i32 = 4;
pub(crate) const MTIM_NOW: i32 = 8;
/// `rights` bits that ask for reading and writing.
pub(crate) const RIGHT_FD_READ: u64 = 1 << 1;
pub(crate) const RIGHT_FD_WRITE: u64 = 1 << 6;
/// The largest `advice` (`noreuse`).
pub(crate) const MAX_ADVICE: i32 = 5;

/// A 64-byte `filestat`: `dev, ino, filetype, nlink, size, atim, mtim,
/// ctim` (zeros past the type where there is no metadata).
pub fn write_filestat<H: Host, X>(
    e: &mut Env<'_, H, X>,
    at: i32,
    ty: u8,
    m: Option<Metadata>,
) -> WasiResult<()> {
    let mut b = [0u8; 64];
    b[16] = ty;
    if let Some(m) = m {
        let ns = |t: i64| t.max(0) as u64;
        for (off, v) in [
            (0, m.device),
            (8, m.inode),
            (24, m.links),
            (32, m.size),
            (40, ns(m.accessed_ns)),
            (48, ns(m.modified_ns)),
            (56, ns(m.changed_ns)),
        ] {
            b[off..off + 8].copy_from_slice(&v.to_le_bytes());
        }
    }
    e.write(at, &b)
}

/// The string at `(p, len)` beneath directory descriptor `dir`.
pub(crate) fn path_at<H: Host, X>(
    e: &mut Env<'_, H, X>,
    dir: i32,
    p: i32,
    len: i32,
) -> WasiResult<Path> {
    let rel = e.read_str(p, len)?;
    e.ctx.fds.resolve(dir, &rel)
}

/// The times `fstflags` asks for: `EINVAL` if a time is both given and
/// now.
pub(crate) fn times(atim: i64, mtim: i64, flags: i32) -> WasiResult<Times> {
    let one = |ns: i64, set: i32, now: i32| match (flags & set != 0, flags & now != 0) {
        (true, true) => Err(errno::INVAL),
        (true, false) => Ok(SetTime::To(ns)),
        (false, true) => Ok(SetTime::Now),
        (false, false) => Ok(SetTime::Keep),
    };
    if flags & !(ATIM | ATIM_NOW | MTIM | MTIM_NOW) != 0 {
        return Err(errno::INVAL);
    }
    Ok(Times {
        accessed: one(atim, ATIM, ATIM_NOW)?,
        modified: one(mtim, MTIM, MTIM_NOW)?,
    })
}

/// `fd_readdir`: entries from `cookie` on, as many as fit in `len` bytes
/// (the last one cut short if it does not fit, as the specification
/// says, so the caller sees the buffer is full).
pub(crate) fn readdir<H: Host, X>(
    e: &mut Env<'_, H, X>,
    fd: i32,
    buf: i32,
    len: i32,
    cookie: i64,
    used: i32,
) -> WasiResult<()> {
    let entries = e.ctx.fds.entries(fd)?;
    let room = len as u32 as usize;
    let mut out = Vec::new();
    let skip = usize::try_from(cookie as u64).unwrap_or(usize::MAX);
    for (i, (name, ty, inode)) in entries.iter().enumerate().skip(skip) {
        let mut d = [0u8; 24];
        d[0..8].copy_from_slice(&(i as u64 + 1).to_le_bytes());
        d[8..16].copy_from_slice(&inode.to_le_bytes());
        d[16..20].copy_from_slice(&(name.len() as u32).to_le_bytes());
        d[20] = *ty;
        out.extend_from_slice(&d);
        out.extend_from_slice(name.as_bytes());
        if out.len() >= room {
            break;
        }
    }
    out.truncate(room);
    e.write(buf, &out)?;
    e.write_u32(used, out.len() as u32)
}

/// An operation of the host on one path.
pub(crate) type PathOp<H> = fn(&H, crate::host::At<'_>) -> WasiResult<()>;

/// A check of a path's last component before an operation on it.
pub(crate) type Special = fn(&str) -> WasiResult<()>;

/// The errnos wasmtime gives for paths whose last component names no entry
/// (empty, `.`, `..`), which the monitor refuses as invalid.
pub(crate) mod special {
    use crate::host::WasiResult;
    use weft_control::app::errno;

    /// The last component, trailing `/`s ignored (`""` for none).
    fn last(path: &str) -> &str {
        path.trim_end_matches('/').rsplit('/').next().unwrap_or("")
    }

    pub fn none(_: &str) -> WasiResult<()> {
        Ok(())
    }

    /// Making a directory that is there already, or `..`.
    pub fn create_dir(path: &str) -> WasiResult<()> {
        match last(path) {
            "" | "." => Err(errno::EXIST),
            ".." => Err(errno::PERM),
            _ => Ok(()),
        }
    }

    /// Unlinking the directory itself.
    pub fn unlink(path: &str) -> WasiResult<()> {
        match last(path) {
            "" | "." => Err(errno::ISDIR),
            _ => Ok(()),
        }
    }

    /// Renaming the directory itself, or onto `..`.
    pub fn rename(from: &str, to: &str) -> WasiResult<()> {
        if last(from) == "." {
            return Err(errno::BUSY);
        }
        if last(to) == ".." {
            return Err(errno::PERM);
        }
        Ok(())
    }
}

/// Defines the calls on paths and metadata on linker `$l`, as
/// [`crate::wasi::define_wasi`] does the others (which expands this).
macro_rules! define_paths {
    ($l:ident, $C:ty, $T:ty) => {{
        use weft_control::app::errno;
        #[allow(unused_imports)]
        use $crate::bind::{Call as _, call, invalid};
        use $crate::fds::{self, Open};
        use $crate::host::File as _;
        use $crate::mem::errno_of;
        use $crate::paths::*;
        $l.func_wrap(WASI, "fd_filestat_get", |mut c: $C, fd: i32, out: i32| {
            call(&mut c, |e| {
                let (ty, m) = e.ctx.fds.stat(fd)?;
                write_filestat(e, out, ty, m)
            })
        })?;
        $l.func_wrap(
            WASI,
            "fd_filestat_set_size",
            |mut c: $C, fd: i32, size: i64| {
                call(&mut c, |e| {
                    let (file, access) = e.ctx.fds.file(fd)?;
                    if !access.write {
                        return Err(errno::INVAL);
                    }
                    file.set_len(size as u64)
                })
            },
        )?;
        $l.func_wrap(
            WASI,
            "fd_filestat_set_times",
            |mut c: $C, fd: i32, atim: i64, mtim: i64, flags: i32| {
                call(&mut c, |e| {
                    let t = times(atim, mtim, flags)?;
                    if let Ok(dir) = e.ctx.fds.dir_itself(fd) {
                        return e.ctx.host.set_times(dir.at(), true, t);
                    }
                    e.ctx.fds.file(fd)?.0.set_times(t)
                })
            },
        )?;
        $l.func_wrap(
            WASI,
            "fd_advise",
            |mut c: $C, fd: i32, _offset: i64, _len: i64, advice: i32| {
                if !(0..=MAX_ADVICE).contains(&advice) {
                    return Err(invalid::<$T>("fd_advise", "advice", advice));
                }
                Ok(errno_of(c.ctx().fds.file(fd).map(drop)))
            },
        )?;
        // As wasmtime: allocating is not supported, on any file.
        $l.func_wrap(
            WASI,
            "fd_allocate",
            |mut c: $C, fd: i32, _offset: i64, _len: i64| {
                errno_of(c.ctx().fds.file(fd).and(Err(errno::NOTSUP)))
            },
        )?;
        $l.func_wrap(
            WASI,
            "fd_readdir",
            |mut c: $C, fd: i32, buf: i32, len: i32, cookie: i64, used: i32| {
                call(&mut c, |e| readdir(e, fd, buf, len, cookie, used))
            },
        )?;
        $l.func_wrap(
            WASI,
            "path_filestat_get",
            |mut c: $C, dir: i32, flags: i32, p: i32, len: i32, out: i32| {
                call(&mut c, |e| {
                    let path = path_at(e, dir, p, len)?;
                    let follow = flags & SYMLINK_FOLLOW != 0;
                    let m = e.ctx.host.metadata(path.at(), follow)?;
                    write_filestat(e, out, fds::filetype_of(m.kind), Some(m))
                })
            },
        )?;
        $l.func_wrap(
            WASI,
            "path_filestat_set_times",
            |mut c: $C, dir: i32, flags: i32, p: i32, len: i32, atim: i64, mtim: i64, fst: i32| {
                call(&mut c, |e| {
                    let path = path_at(e, dir, p, len)?;
                    let t = times(atim, mtim, fst)?;
                    let follow = flags & SYMLINK_FOLLOW != 0;
                    e.ctx.host.set_times(path.at(), follow, t)
                })
            },
        )?;
        $l.func_wrap(
            WASI,
            "path_open",
            |mut c: $C,
             dir: i32,
             dirflags: i32,
             p: i32,
             len: i32,
             oflags: i32,
             rights: i64,
             _inheriting: i64,
             fdflags: i32,
             out: i32| {
                let want = Open {
                    read: rights as u64 & RIGHT_FD_READ != 0,
                    write: rights as u64 & RIGHT_FD_WRITE != 0,
                    create: oflags & O_CREAT != 0,
                    directory: oflags & O_DIRECTORY != 0,
                    exclusive: oflags & O_EXCL != 0,
                    truncate: oflags & O_TRUNC != 0,
                    append: fdflags & APPEND != 0,
                    follow: dirflags & SYMLINK_FOLLOW != 0,
                    nonblock: fdflags & NONBLOCK != 0,
                };
                call(&mut c, |e| {
                    // As wasmtime: a path opened from a file is `ENOTDIR`.
                    if e.ctx.fds.file(dir).is_ok() {
                        return Err(errno::NOTDIR);
                    }
                    let path = path_at(e, dir, p, len)?;
                    if fdflags & SYNCS != 0 {
                        return Err(errno::NOTSUP);
                    }
                    let fd = e.ctx.fds.open(&path, want)?;
                    e.write_u32(out, fd as u32)
                })
            },
        )?;
        let one_path: [(&str, PathOp<_>, Special); 3] = [
            ("path_create_directory", H::create_dir, special::create_dir),
            ("path_remove_directory", H::remove_dir, special::none),
            ("path_unlink_file", H::remove_file, special::unlink),
        ];
        for (name, op, special) in one_path {
            $l.func_wrap(WASI, name, move |mut c: $C, dir: i32, p: i32, len: i32| {
                call(&mut c, |e| {
                    let path = path_at(e, dir, p, len)?;
                    special(&path.path)?;
                    op(&e.ctx.host, path.at())
                })
            })?;
        }
        $l.func_wrap(
            WASI,
            "path_rename",
            |mut c: $C, dir: i32, p: i32, len: i32, to_dir: i32, q: i32, qlen: i32| {
                call(&mut c, |e| {
                    let from = path_at(e, dir, p, len)?;
                    let to = path_at(e, to_dir, q, qlen)?;
                    special::rename(&from.path, &to.path)?;
                    e.ctx.host.rename(from.at(), to.at())
                })
            },
        )?;
        $l.func_wrap(
            WASI,
            "path_link",
            |mut c: $C, dir: i32, flags: i32, p: i32, len: i32, to_dir: i32, q: i32, qlen: i32| {
                call(&mut c, |e| {
                    let from = path_at(e, dir, p, len)?;
                    let to = path_at(e, to_dir, q, qlen)?;
                    // As wasmtime: a link is never made to what a symlink names.
                    if flags & SYMLINK_FOLLOW != 0 {
                        return Err(errno::INVAL);
                    }
                    e.ctx.host.hard_link(from.at(), to.at(), false)
                })
            },
        )?;
        $l.func_wrap(
            WASI,
            "path_symlink",
            |mut c: $C, t: i32, tlen: i32, dir: i32, p: i32, len: i32| {
                call(&mut c, |e| {
                    let target = e.read_str(t, tlen)?;
                    let path = path_at(e, dir, p, len)?;
                    e.ctx.host.symlink(&target, path.at())
                })
            },
        )?;
        $l.func_wrap(
            WASI,
            "path_readlink",
            |mut c: $C, dir: i32, p: i32, len: i32, buf: i32, cap: i32, used: i32| {
                call(&mut c, |e| {
                    let path = path_at(e, dir, p, len)?;
                    let target = e.ctx.host.read_link(path.at())?;
                    // As wasmtime: an absolute target could only lead out.
                    if target.starts_with('/') {
                        return Err(errno::PERM);
                    }
                    let n = target.len().min(cap as u32 as usize);
                    e.write(buf, &target.as_bytes()[..n])?;
                    e.write_u32(used, n as u32)
                })
            },
        )?;
    }};
}
pub(crate) use define_paths;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_follow_fstflags() {
        let t = times(5, 7, ATIM | MTIM_NOW).unwrap();
        assert_eq!(t.accessed, SetTime::To(5));
        assert_eq!(t.modified, SetTime::Now);
        assert_eq!(times(0, 0, 0).unwrap().accessed, SetTime::Keep);
        assert_eq!(times(0, 0, ATIM | ATIM_NOW), Err(errno::INVAL));
        assert_eq!(times(0, 0, MTIM | MTIM_NOW), Err(errno::INVAL));
        assert_eq!(times(0, 0, 16), Err(errno::INVAL));
    }
}
