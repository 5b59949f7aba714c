//! WASI preview 1 (`wasi_snapshot_preview1`) for the Wasm runtime: the
//! arguments, the environment, the standard streams, files and
//! directories under the root (`--fs-root`, preopened as `/`, descriptor 3),
//! sockets on granted listeners (`sock_accept`, `sock_recv`, `sock_send`,
//! `sock_shutdown`), clocks, randomness, `poll_oneoff` and `proc_exit`.
//! Every other import of that module returns `ENOSYS` (it never traps the
//! runtime); imports of modules other than this and the event ABI's fail
//! the load.
//!
//! Calls that may wait (socket reads, writes and accepts, `poll_oneoff`)
//! go through [`ops`]: the app's call is suspended, not the runtime.

use crate::app::Ctx;
use crate::fds::{self, Open, ROOT_FD, ROOT_NAME};
use crate::host::{Host, Metadata, SeekFrom, WasiResult};
use crate::mem::{Env, errno_of, with_env};
use crate::ops::{self, Op};
use alloc::string::String;
use alloc::vec::Vec;
use wasmi::{Caller, Linker};
use weft_control::app::errno;

pub const MODULE: &str = "wasi_snapshot_preview1";
const WASI: &str = MODULE;
/// Every right: descriptors here are not restricted beyond what the
/// monitor enforces.
const ALL_RIGHTS: u64 = (1 << 29) - 1;
/// `rights` bits that ask for reading and writing.
const RIGHT_FD_READ: u64 = 1 << 1;
const RIGHT_FD_WRITE: u64 = 1 << 6;

/// An operation of the host on one absolute guest path.
type PathOp<H> = fn(&H, &str) -> WasiResult<()>;

/// `args_sizes_get` / `environ_sizes_get`: the count and the bytes of the
/// NUL-terminated strings.
fn sizes<H: Host>(
    e: &mut Env<'_, H>,
    strings: &[Vec<u8>],
    count_at: i32,
    size_at: i32,
) -> WasiResult<()> {
    let size: usize = strings.iter().map(|s| s.len() + 1).sum();
    e.write_u32(count_at, strings.len() as u32)?;
    e.write_u32(size_at, size as u32)
}

/// `args_get` / `environ_get`: the pointers, then the strings.
fn strings_get<H: Host>(
    e: &mut Env<'_, H>,
    strings: &[Vec<u8>],
    ptrs: i32,
    buf: i32,
) -> WasiResult<()> {
    let mut at = buf;
    for (i, s) in strings.iter().enumerate() {
        e.write_u32(ptrs.wrapping_add(4 * i as i32), at as u32)?;
        e.write(at, s)?;
        e.write(at.wrapping_add(s.len() as i32), &[0])?;
        at = at.wrapping_add(s.len() as i32 + 1);
    }
    Ok(())
}

/// A 64-byte `filestat`.
fn write_filestat<H: Host>(
    e: &mut Env<'_, H>,
    at: i32,
    ty: u8,
    m: Option<Metadata>,
) -> WasiResult<()> {
    let mut b = [0u8; 64];
    b[16] = ty;
    b[24..32].copy_from_slice(&1u64.to_le_bytes());
    if let Some(m) = m {
        let t = m.modified_ns.max(0) as u64;
        b[32..40].copy_from_slice(&m.size.to_le_bytes());
        for off in [40, 48, 56] {
            b[off..off + 8].copy_from_slice(&t.to_le_bytes());
        }
    }
    e.write(at, &b)
}

/// The absolute guest path of the string at `(p, len)` under `dir`.
fn path_at<H: Host>(e: &mut Env<'_, H>, dir: i32, p: i32, len: i32) -> WasiResult<String> {
    let rel = e.read_str(p, len)?;
    e.ctx.fds.resolve(dir, &rel)
}

/// `fd_readdir`: entries from `cookie` on, as many as fit in `len` bytes.
fn readdir<H: Host>(
    e: &mut Env<'_, H>,
    fd: i32,
    buf: i32,
    len: i32,
    cookie: i64,
    used: i32,
) -> WasiResult<()> {
    let entries = e.ctx.fds.entries(fd)?;
    let mut out = Vec::new();
    for (i, (name, ty)) in entries.iter().enumerate().skip(cookie.max(0) as usize) {
        let mut d = [0u8; 24];
        d[0..8].copy_from_slice(&(i as u64 + 1).to_le_bytes());
        d[16..20].copy_from_slice(&(name.len() as u32).to_le_bytes());
        d[20] = *ty;
        out.extend_from_slice(&d);
        out.extend_from_slice(name.as_bytes());
        if out.len() >= len as u32 as usize {
            break;
        }
    }
    out.truncate(len as u32 as usize);
    e.write(buf, &out)?;
    e.write_u32(used, out.len() as u32)
}

type C<'a, H> = Caller<'a, Ctx<H>>;

fn args<H: Host>(c: &mut Ctx<H>) -> &mut Vec<Vec<u8>> {
    &mut c.args
}

fn env<H: Host>(c: &mut Ctx<H>) -> &mut Vec<Vec<u8>> {
    &mut c.env
}

/// Runs `f` with the app's arguments or environment (the strings `list`
/// picks from its context) beside its memory and context.
fn with_strings<H: Host>(
    e: &mut Env<'_, H>,
    list: fn(&mut Ctx<H>) -> &mut Vec<Vec<u8>>,
    f: impl FnOnce(&mut Env<'_, H>, &[Vec<u8>]) -> WasiResult<()>,
) -> WasiResult<()> {
    let strings = core::mem::take(list(e.ctx));
    let r = f(e, &strings);
    *list(e.ctx) = strings;
    r
}

/// Runs `f` on the calling app's memory and context; its errno.
fn call<H: Host>(c: &mut C<'_, H>, f: impl FnOnce(&mut Env<'_, H>) -> WasiResult<()>) -> i32 {
    errno_of(with_env(c, f))
}

pub fn define<H: Host>(l: &mut Linker<Ctx<H>>) -> Result<(), wasmi::Error> {
    l.func_wrap(
        WASI,
        "args_sizes_get",
        |mut c: C<'_, H>, n: i32, size: i32| {
            call(&mut c, |e| {
                with_strings(e, args, |e, args| sizes(e, args, n, size))
            })
        },
    )?;
    l.func_wrap(WASI, "args_get", |mut c: C<'_, H>, ptrs: i32, buf: i32| {
        call(&mut c, |e| {
            with_strings(e, args, |e, args| strings_get(e, args, ptrs, buf))
        })
    })?;
    l.func_wrap(
        WASI,
        "environ_sizes_get",
        |mut c: C<'_, H>, n: i32, size: i32| {
            call(&mut c, |e| {
                with_strings(e, env, |e, env| sizes(e, env, n, size))
            })
        },
    )?;
    l.func_wrap(
        WASI,
        "environ_get",
        |mut c: C<'_, H>, ptrs: i32, buf: i32| {
            call(&mut c, |e| {
                with_strings(e, env, |e, env| strings_get(e, env, ptrs, buf))
            })
        },
    )?;
    l.func_wrap(
        WASI,
        "fd_write",
        |mut c: C<'_, H>, fd: i32, iovs: i32, n: i32, out: i32| {
            ops::call(&mut c, Op::Write { fd, iovs, n, out })
        },
    )?;
    l.func_wrap(
        WASI,
        "fd_read",
        |mut c: C<'_, H>, fd: i32, iovs: i32, n: i32, out: i32| {
            ops::call(&mut c, Op::read(fd, iovs, n, out, None))
        },
    )?;
    l.func_wrap(
        WASI,
        "fd_pread",
        |mut c: C<'_, H>, fd: i32, iovs: i32, n: i32, at: i64, out: i32| {
            call(&mut c, |e| {
                positioned(e, Op::read(fd, iovs, n, out, None), fd, at)
            })
        },
    )?;
    l.func_wrap(
        WASI,
        "fd_pwrite",
        |mut c: C<'_, H>, fd: i32, iovs: i32, n: i32, at: i64, out: i32| {
            call(&mut c, |e| {
                positioned(e, Op::Write { fd, iovs, n, out }, fd, at)
            })
        },
    )?;
    l.func_wrap(
        WASI,
        "sock_recv",
        |mut c: C<'_, H>, fd: i32, iovs: i32, n: i32, _flags: i32, out: i32, flags_at: i32| {
            ops::call(&mut c, Op::read(fd, iovs, n, out, Some(flags_at)))
        },
    )?;
    l.func_wrap(
        WASI,
        "sock_send",
        |mut c: C<'_, H>, fd: i32, iovs: i32, n: i32, _flags: i32, out: i32| {
            ops::call(&mut c, Op::Write { fd, iovs, n, out })
        },
    )?;
    l.func_wrap(
        WASI,
        "sock_accept",
        |mut c: C<'_, H>, fd: i32, flags: i32, out: i32| {
            ops::call(
                &mut c,
                Op::Accept {
                    fd,
                    flags: flags as u16,
                    out,
                },
            )
        },
    )?;
    l.func_wrap(
        WASI,
        "sock_shutdown",
        |mut c: C<'_, H>, fd: i32, how: i32| call(&mut c, |e| e.ctx.fds.shutdown(fd, how as u8)),
    )?;
    l.func_wrap(
        WASI,
        "fd_seek",
        |mut c: C<'_, H>, fd: i32, offset: i64, whence: i32, out: i32| {
            let to = match whence {
                0 => SeekFrom::Start(offset as u64),
                1 => SeekFrom::Current(offset),
                2 => SeekFrom::End(offset),
                _ => return errno::INVAL,
            };
            call(&mut c, |e| {
                let p = e.ctx.fds.seek(fd, to)?;
                e.write_u64(out, p)
            })
        },
    )?;
    l.func_wrap(WASI, "fd_tell", |mut c: C<'_, H>, fd: i32, out: i32| {
        call(&mut c, |e| {
            let p = e.ctx.fds.seek(fd, SeekFrom::Current(0))?;
            e.write_u64(out, p)
        })
    })?;
    l.func_wrap(WASI, "fd_close", |mut c: C<'_, H>, fd: i32| {
        errno_of(c.data_mut().fds.close(fd))
    })?;
    l.func_wrap(WASI, "fd_sync", |mut c: C<'_, H>, fd: i32| {
        errno_of(c.data_mut().fds.sync(fd))
    })?;
    l.func_wrap(WASI, "fd_datasync", |mut c: C<'_, H>, fd: i32| {
        errno_of(c.data_mut().fds.sync(fd))
    })?;
    l.func_wrap(
        WASI,
        "fd_fdstat_get",
        |mut c: C<'_, H>, fd: i32, out: i32| {
            call(&mut c, |e| {
                let (ty, _) = e.ctx.fds.stat(fd)?;
                let flags = if e.ctx.fds.nonblocking(fd)? {
                    fds::NONBLOCK
                } else {
                    0
                };
                let mut b = [0u8; 24];
                b[0] = ty;
                b[2..4].copy_from_slice(&flags.to_le_bytes());
                b[8..16].copy_from_slice(&ALL_RIGHTS.to_le_bytes());
                b[16..24].copy_from_slice(&ALL_RIGHTS.to_le_bytes());
                e.write(out, &b)
            })
        },
    )?;
    l.func_wrap(
        WASI,
        "fd_fdstat_set_flags",
        |mut c: C<'_, H>, fd: i32, flags: i32| {
            errno_of(c.data_mut().fds.set_flags(fd, flags as u16))
        },
    )?;
    l.func_wrap(
        WASI,
        "fd_filestat_get",
        |mut c: C<'_, H>, fd: i32, out: i32| {
            call(&mut c, |e| {
                let (ty, m) = e.ctx.fds.stat(fd)?;
                write_filestat(e, out, ty, m)
            })
        },
    )?;
    l.func_wrap(
        WASI,
        "path_filestat_get",
        |mut c: C<'_, H>, dir: i32, _flags: i32, p: i32, len: i32, out: i32| {
            call(&mut c, |e| {
                let path = path_at(e, dir, p, len)?;
                let m = e.ctx.system.host().metadata(&path)?;
                write_filestat(e, out, fds::filetype_of(m.kind), Some(m))
            })
        },
    )?;
    l.func_wrap(
        WASI,
        "fd_prestat_get",
        |mut c: C<'_, H>, fd: i32, out: i32| {
            if fd != ROOT_FD {
                return errno::BADF;
            }
            let mut b = [0u8; 8];
            b[4..8].copy_from_slice(&(ROOT_NAME.len() as u32).to_le_bytes());
            call(&mut c, |e| e.write(out, &b))
        },
    )?;
    l.func_wrap(
        WASI,
        "fd_prestat_dir_name",
        |mut c: C<'_, H>, fd: i32, out: i32, len: i32| {
            if fd != ROOT_FD {
                return errno::BADF;
            }
            let name = ROOT_NAME.as_bytes();
            call(&mut c, |e| {
                e.write(out, &name[..name.len().min(len as u32 as usize)])
            })
        },
    )?;
    l.func_wrap(
        WASI,
        "path_open",
        |mut c: C<'_, H>,
         dir: i32,
         _dirflags: i32,
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
                create: oflags & 1 != 0,
                directory: oflags & 2 != 0,
                exclusive: oflags & 4 != 0,
                truncate: oflags & 8 != 0,
                append: fdflags & 1 != 0,
            };
            call(&mut c, |e| {
                let path = path_at(e, dir, p, len)?;
                let fd = e.ctx.fds.open(&path, want)?;
                e.write_u32(out, fd as u32)
            })
        },
    )?;
    let one_path: [(&str, PathOp<H>); 3] = [
        ("path_create_directory", H::create_dir),
        ("path_remove_directory", H::remove_dir),
        ("path_unlink_file", H::remove_file),
    ];
    for (name, op) in one_path {
        l.func_wrap(
            WASI,
            name,
            move |mut c: C<'_, H>, dir: i32, p: i32, len: i32| {
                call(&mut c, |e| {
                    let path = path_at(e, dir, p, len)?;
                    op(e.ctx.system.host(), &path)
                })
            },
        )?;
    }
    l.func_wrap(
        WASI,
        "path_rename",
        |mut c: C<'_, H>, dir: i32, p: i32, len: i32, to_dir: i32, q: i32, qlen: i32| {
            call(&mut c, |e| {
                let from = path_at(e, dir, p, len)?;
                let to = path_at(e, to_dir, q, qlen)?;
                e.ctx.system.host().rename(&from, &to)
            })
        },
    )?;
    l.func_wrap(
        WASI,
        "fd_readdir",
        |mut c: C<'_, H>, fd: i32, buf: i32, len: i32, cookie: i64, used: i32| {
            call(&mut c, |e| readdir(e, fd, buf, len, cookie, used))
        },
    )?;
    l.func_wrap(
        WASI,
        "clock_time_get",
        |mut c: C<'_, H>, id: i32, _precision: i64, out: i32| {
            call(&mut c, |e| {
                e.write_u64(out, clock_now(e.ctx.system.host(), id)?)
            })
        },
    )?;
    l.func_wrap(
        WASI,
        "clock_res_get",
        |mut c: C<'_, H>, id: i32, out: i32| {
            call(&mut c, |e| {
                let host = e.ctx.system.host();
                clock_now(host, id)?;
                e.write_u64(out, host.resolution_ns())
            })
        },
    )?;
    l.func_wrap(WASI, "random_get", |mut c: C<'_, H>, buf: i32, len: i32| {
        call(&mut c, |e| {
            let mut bytes = alloc::vec![0u8; len as u32 as usize];
            if !e.ctx.system.host().fill_random(&mut bytes) {
                return Err(errno::IO);
            }
            e.write(buf, &bytes)
        })
    })?;
    // Gives up the rest of the slice: the app's turn ends at the next
    // fuel check.
    l.func_wrap(WASI, "sched_yield", |mut c: C<'_, H>| {
        let _ = c.set_fuel(0);
        errno::SUCCESS
    })?;
    l.func_wrap(
        WASI,
        "poll_oneoff",
        |mut c: C<'_, H>, subs: i32, events: i32, n: i32, out: i32| {
            let start = c.data().system.host().monotonic_ns();
            ops::call(
                &mut c,
                Op::Poll {
                    subs,
                    events,
                    n,
                    out,
                    start,
                },
            )
        },
    )?;
    l.func_wrap(
        WASI,
        "proc_exit",
        |_: C<'_, H>, status: i32| -> Result<(), wasmi::Error> {
            Err(wasmi::Error::i32_exit(status))
        },
    )?;
    Ok(())
}

/// The time on WASI clock `id` (realtime, monotonic, process and thread
/// CPU time, the last two measured as monotonic time), in nanoseconds.
fn clock_now(host: &impl Host, id: i32) -> WasiResult<u64> {
    match id {
        0 => Ok(host.realtime_ns()),
        1..=3 => Ok(host.monotonic_ns()),
        _ => Err(errno::INVAL),
    }
}

/// Runs `op` with `fd` positioned at `offset`, then restores the position.
fn at_offset<H: Host>(
    e: &mut Env<'_, H>,
    fd: i32,
    offset: i64,
    op: impl FnOnce(&mut Env<'_, H>) -> WasiResult<()>,
) -> WasiResult<()> {
    let here = e.ctx.fds.seek(fd, SeekFrom::Current(0))?;
    e.ctx.fds.seek(fd, SeekFrom::Start(offset as u64))?;
    let r = op(e);
    e.ctx.fds.seek(fd, SeekFrom::Start(here))?;
    r
}

/// `fd_pread` / `fd_pwrite`: a file read or write in place at `offset`.
fn positioned<H: Host>(e: &mut Env<'_, H>, op: Op, fd: i32, offset: i64) -> WasiResult<()> {
    at_offset(e, fd, offset, |e| match ops::run_in_place(e, op) {
        0 => Ok(()),
        errno => Err(errno),
    })
}
