//! WASI preview 1 (`wasi_snapshot_preview1`) for the Wasm runtime: the
//! arguments, an empty environment, the standard streams, files and
//! directories under the root (`--fs-root`, preopened as `/`, descriptor 3)
//! and `proc_exit`. Every other import of that module returns `ENOSYS` (it
//! never traps the runtime); imports of other modules fail the load.

use crate::fds::{self, Fds, Open, ROOT_FD, ROOT_NAME, path};
use crate::mem::{self, WasiResult, errno_of};
use crate::{Ctx, errno};
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use embedded_io::SeekFrom;
use wasmi::{Caller, Engine, Linker, Module, Store, Val};
use weft_user::fs::Metadata;
use weft_user::{Args, time};

const WASI: &str = "wasi_snapshot_preview1";
/// Every right: descriptors here are not restricted beyond what the
/// monitor enforces.
const ALL_RIGHTS: u64 = (1 << 29) - 1;
/// `rights` bits that ask for reading and writing.
const RIGHT_FD_READ: u64 = 1 << 1;
const RIGHT_FD_WRITE: u64 = 1 << 6;

/// Why a module did not run to its end.
pub enum Failure {
    /// It could not be loaded: invalid, missing imports or `_start`.
    Load(String),
    /// It trapped.
    Trap(String),
}

/// Runs the module's `_start`; returns its exit status, or why it failed.
pub fn run(bytes: &[u8], args: &Args) -> Result<i32, Failure> {
    run_module(bytes, args).map_err(Failure::Load)?
}

/// Loads the module; the inner result is how running it went.
fn run_module(bytes: &[u8], args: &Args) -> Result<Result<i32, Failure>, String> {
    let engine = Engine::default();
    let module = Module::new(&engine, bytes).map_err(|e| e.to_string())?;
    let ctx = Ctx {
        args: args.iter().map(|a| a.as_bytes().to_vec()).collect(),
        fds: Fds::new(),
    };
    let mut store = Store::new(&engine, ctx);
    let mut linker = <Linker<Ctx>>::new(&engine);
    define(&mut linker).map_err(|e| e.to_string())?;
    for import in module.imports() {
        let Some(ty) = import.ty().func() else {
            continue;
        };
        if import.module() != WASI {
            return Err(alloc::format!(
                "imports {}::{}, which this runtime does not provide",
                import.module(),
                import.name()
            ));
        }
        let ty = ty.clone();
        let results = ty.results().len();
        // Fails only for a name `define` already provides: nothing to do.
        let _ = linker.func_new(WASI, import.name(), ty, move |_, _, out: &mut [Val]| {
            if results == 1 {
                out[0] = Val::I32(errno::NOSYS);
            }
            Ok(())
        });
    }
    let instance = linker
        .instantiate_and_start(&mut store, &module)
        .map_err(|e| e.to_string())?;
    let start = instance
        .get_typed_func::<(), ()>(&store, "_start")
        .map_err(|_| String::from("the module exports no `_start` function"))?;
    Ok(match start.call(&mut store, ()) {
        Ok(()) => Ok(0),
        Err(e) => match e.i32_exit_status() {
            Some(status) => Ok(status),
            None => Err(Failure::Trap(alloc::format!("trap: {e}"))),
        },
    })
}

type C<'a> = Caller<'a, Ctx>;

/// An operation on one absolute guest path.
type PathOp = fn(&str) -> WasiResult<()>;

/// `args_sizes_get` / `environ_sizes_get`: the count and the bytes of the
/// NUL-terminated strings.
fn sizes(c: &mut C<'_>, strings: &[Vec<u8>], count_at: i32, size_at: i32) -> WasiResult<()> {
    let size: usize = strings.iter().map(|s| s.len() + 1).sum();
    mem::write_u32(c, count_at, strings.len() as u32)?;
    mem::write_u32(c, size_at, size as u32)
}

/// `args_get` / `environ_get`: the pointers, then the strings.
fn strings_get(c: &mut C<'_>, strings: &[Vec<u8>], ptrs: i32, buf: i32) -> WasiResult<()> {
    let mut at = buf;
    for (i, s) in strings.iter().enumerate() {
        mem::write_u32(c, ptrs.wrapping_add(4 * i as i32), at as u32)?;
        mem::write(c, at, s)?;
        mem::write(c, at.wrapping_add(s.len() as i32), &[0])?;
        at = at.wrapping_add(s.len() as i32 + 1);
    }
    Ok(())
}

/// Reads into the iovecs at `iovs` until one comes back short; stores the
/// total at `out`.
fn read_iovecs(c: &mut C<'_>, fd: i32, iovs: i32, n: i32, out: i32) -> WasiResult<()> {
    let mut total = 0u32;
    for (ptr, len) in mem::iovecs(c, iovs, n)? {
        let mut buf = alloc::vec![0u8; len as u32 as usize];
        let k = c.data_mut().fds.read(fd, &mut buf)?;
        mem::write(c, ptr, &buf[..k])?;
        total = total.wrapping_add(k as u32);
        if k < buf.len() {
            break;
        }
    }
    mem::write_u32(c, out, total)
}

/// Writes the iovecs at `iovs`; stores the total at `out`.
fn write_iovecs(c: &mut C<'_>, fd: i32, iovs: i32, n: i32, out: i32) -> WasiResult<()> {
    let mut total = 0u32;
    for (ptr, len) in mem::iovecs(c, iovs, n)? {
        let bytes = mem::read(c, ptr, len)?;
        total = total.wrapping_add(c.data_mut().fds.write(fd, &bytes)? as u32);
    }
    mem::write_u32(c, out, total)
}

/// A 64-byte `filestat`.
fn write_filestat(c: &mut C<'_>, at: i32, ty: u8, m: Option<Metadata>) -> WasiResult<()> {
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
    mem::write(c, at, &b)
}

/// The absolute guest path of the string at `(p, len)` under `dir`.
fn path_at(c: &mut C<'_>, dir: i32, p: i32, len: i32) -> WasiResult<String> {
    let rel = mem::read_str(c, p, len)?;
    c.data_mut().fds.resolve(dir, &rel)
}

/// `fd_readdir`: entries from `cookie` on, as many as fit in `len` bytes.
fn readdir(c: &mut C<'_>, fd: i32, buf: i32, len: i32, cookie: i64, used: i32) -> WasiResult<()> {
    let entries = c.data_mut().fds.entries(fd)?;
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
    mem::write(c, buf, &out)?;
    mem::write_u32(c, used, out.len() as u32)
}

fn define(l: &mut Linker<Ctx>) -> Result<(), wasmi::Error> {
    l.func_wrap(WASI, "args_sizes_get", |mut c: C<'_>, n: i32, size: i32| {
        let args = c.data().args.clone();
        errno_of(sizes(&mut c, &args, n, size))
    })?;
    l.func_wrap(WASI, "args_get", |mut c: C<'_>, ptrs: i32, buf: i32| {
        let args = c.data().args.clone();
        errno_of(strings_get(&mut c, &args, ptrs, buf))
    })?;
    l.func_wrap(
        WASI,
        "environ_sizes_get",
        |mut c: C<'_>, n: i32, size: i32| errno_of(sizes(&mut c, &[], n, size)),
    )?;
    l.func_wrap(WASI, "environ_get", |mut c: C<'_>, ptrs: i32, buf: i32| {
        errno_of(strings_get(&mut c, &[], ptrs, buf))
    })?;
    l.func_wrap(
        WASI,
        "fd_write",
        |mut c: C<'_>, fd: i32, iovs: i32, n: i32, out: i32| {
            errno_of(write_iovecs(&mut c, fd, iovs, n, out))
        },
    )?;
    l.func_wrap(
        WASI,
        "fd_read",
        |mut c: C<'_>, fd: i32, iovs: i32, n: i32, out: i32| {
            errno_of(read_iovecs(&mut c, fd, iovs, n, out))
        },
    )?;
    l.func_wrap(
        WASI,
        "fd_pread",
        |mut c: C<'_>, fd: i32, iovs: i32, n: i32, at: i64, out: i32| {
            errno_of(at_offset(&mut c, fd, at, |c| {
                read_iovecs(c, fd, iovs, n, out)
            }))
        },
    )?;
    l.func_wrap(
        WASI,
        "fd_pwrite",
        |mut c: C<'_>, fd: i32, iovs: i32, n: i32, at: i64, out: i32| {
            errno_of(at_offset(&mut c, fd, at, |c| {
                write_iovecs(c, fd, iovs, n, out)
            }))
        },
    )?;
    l.func_wrap(
        WASI,
        "fd_seek",
        |mut c: C<'_>, fd: i32, offset: i64, whence: i32, out: i32| {
            let to = match whence {
                0 => SeekFrom::Start(offset as u64),
                1 => SeekFrom::Current(offset),
                2 => SeekFrom::End(offset),
                _ => return errno::INVAL,
            };
            errno_of(
                c.data_mut()
                    .fds
                    .seek(fd, to)
                    .and_then(|p| mem::write_u64(&mut c, out, p)),
            )
        },
    )?;
    l.func_wrap(WASI, "fd_tell", |mut c: C<'_>, fd: i32, out: i32| {
        errno_of(
            c.data_mut()
                .fds
                .seek(fd, SeekFrom::Current(0))
                .and_then(|p| mem::write_u64(&mut c, out, p)),
        )
    })?;
    l.func_wrap(WASI, "fd_close", |mut c: C<'_>, fd: i32| {
        errno_of(c.data_mut().fds.close(fd))
    })?;
    l.func_wrap(WASI, "fd_sync", |mut c: C<'_>, fd: i32| {
        errno_of(c.data_mut().fds.sync(fd))
    })?;
    l.func_wrap(WASI, "fd_datasync", |mut c: C<'_>, fd: i32| {
        errno_of(c.data_mut().fds.sync(fd))
    })?;
    l.func_wrap(WASI, "fd_fdstat_get", |mut c: C<'_>, fd: i32, out: i32| {
        let r = c.data_mut().fds.stat(fd).and_then(|(ty, _)| {
            let mut b = [0u8; 24];
            b[0] = ty;
            b[8..16].copy_from_slice(&ALL_RIGHTS.to_le_bytes());
            b[16..24].copy_from_slice(&ALL_RIGHTS.to_le_bytes());
            mem::write(&mut c, out, &b)
        });
        errno_of(r)
    })?;
    l.func_wrap(
        WASI,
        "fd_filestat_get",
        |mut c: C<'_>, fd: i32, out: i32| {
            let r = c
                .data_mut()
                .fds
                .stat(fd)
                .and_then(|(ty, m)| write_filestat(&mut c, out, ty, m));
            errno_of(r)
        },
    )?;
    l.func_wrap(
        WASI,
        "path_filestat_get",
        |mut c: C<'_>, dir: i32, _flags: i32, p: i32, len: i32, out: i32| {
            let r = path_at(&mut c, dir, p, len)
                .and_then(|p| path::metadata(&p))
                .and_then(|m| write_filestat(&mut c, out, fds::filetype_of(m.kind), Some(m)));
            errno_of(r)
        },
    )?;
    l.func_wrap(WASI, "fd_prestat_get", |mut c: C<'_>, fd: i32, out: i32| {
        if fd != ROOT_FD {
            return errno::BADF;
        }
        let mut b = [0u8; 8];
        b[4..8].copy_from_slice(&(ROOT_NAME.len() as u32).to_le_bytes());
        errno_of(mem::write(&mut c, out, &b))
    })?;
    l.func_wrap(
        WASI,
        "fd_prestat_dir_name",
        |mut c: C<'_>, fd: i32, out: i32, len: i32| {
            if fd != ROOT_FD {
                return errno::BADF;
            }
            let name = ROOT_NAME.as_bytes();
            errno_of(mem::write(
                &mut c,
                out,
                &name[..name.len().min(len as u32 as usize)],
            ))
        },
    )?;
    l.func_wrap(
        WASI,
        "path_open",
        |mut c: C<'_>,
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
            let r = path_at(&mut c, dir, p, len)
                .and_then(|p| c.data_mut().fds.open(&p, want))
                .and_then(|fd| mem::write_u32(&mut c, out, fd as u32));
            errno_of(r)
        },
    )?;
    let one_path: [(&str, PathOp); 3] = [
        ("path_create_directory", path::create_dir),
        ("path_remove_directory", path::remove_dir),
        ("path_unlink_file", path::remove_file),
    ];
    for (name, op) in one_path {
        l.func_wrap(
            WASI,
            name,
            move |mut c: C<'_>, dir: i32, p: i32, len: i32| {
                errno_of(path_at(&mut c, dir, p, len).and_then(|p| op(&p)))
            },
        )?;
    }
    l.func_wrap(
        WASI,
        "path_rename",
        |mut c: C<'_>, dir: i32, p: i32, len: i32, to_dir: i32, q: i32, qlen: i32| {
            let r = path_at(&mut c, dir, p, len).and_then(|from| {
                let to = path_at(&mut c, to_dir, q, qlen)?;
                path::rename(&from, &to)
            });
            errno_of(r)
        },
    )?;
    l.func_wrap(
        WASI,
        "fd_readdir",
        |mut c: C<'_>, fd: i32, buf: i32, len: i32, cookie: i64, used: i32| {
            errno_of(readdir(&mut c, fd, buf, len, cookie, used))
        },
    )?;
    l.func_wrap(
        WASI,
        "clock_time_get",
        |mut c: C<'_>, id: i32, _precision: i64, out: i32| {
            errno_of(clock_now(id).and_then(|t| mem::write_u64(&mut c, out, t)))
        },
    )?;
    l.func_wrap(WASI, "clock_res_get", |mut c: C<'_>, id: i32, out: i32| {
        let r = clock_now(id).and_then(|_| mem::write_u64(&mut c, out, time::resolution_ns()));
        errno_of(r)
    })?;
    l.func_wrap(WASI, "random_get", |mut c: C<'_>, buf: i32, len: i32| {
        let mut bytes = alloc::vec![0u8; len as u32 as usize];
        if !time::fill_random(&mut bytes) {
            return errno::IO;
        }
        errno_of(mem::write(&mut c, buf, &bytes))
    })?;
    l.func_wrap(WASI, "sched_yield", |_: C<'_>| errno::SUCCESS)?;
    l.func_wrap(
        WASI,
        "poll_oneoff",
        |mut c: C<'_>, subs: i32, events: i32, n: i32, out: i32| {
            errno_of(poll_clocks(&mut c, subs, events, n, out))
        },
    )?;
    l.func_wrap(
        WASI,
        "proc_exit",
        |_: C<'_>, status: i32| -> Result<(), wasmi::Error> { Err(wasmi::Error::i32_exit(status)) },
    )?;
    Ok(())
}

/// The time on WASI clock `id` (realtime, monotonic, process and thread
/// CPU time, the last two measured as monotonic time), in nanoseconds.
fn clock_now(id: i32) -> WasiResult<u64> {
    match id {
        0 => Ok(time::realtime_ns()),
        1..=3 => Ok(time::monotonic_ns()),
        _ => Err(errno::INVAL),
    }
}

/// `poll_oneoff` for clock subscriptions (what `sleep` uses): sleeps until
/// the earliest deadline and reports every subscription due by then. A
/// subscription on a descriptor is not supported in this version
/// (`ENOTSUP`).
fn poll_clocks(c: &mut C<'_>, subs: i32, events: i32, n: i32, out: i32) -> WasiResult<()> {
    const SUB: i32 = 48;
    const EVENT: usize = 32;
    if n <= 0 {
        return Err(errno::INVAL);
    }
    let mut due = Vec::new();
    for i in 0..n {
        let s = mem::read(c, subs.wrapping_add(i.wrapping_mul(SUB)), SUB)?;
        let word = |o: usize| u64::from_le_bytes(s[o..o + 8].try_into().unwrap_or([0; 8]));
        if s[8] != 0 {
            return Err(errno::NOTSUP);
        }
        let id = u32::from_le_bytes(s[16..20].try_into().unwrap_or([0; 4])) as i32;
        let now = clock_now(id)?;
        let absolute = u16::from_le_bytes([s[40], s[41]]) & 1 != 0;
        let deadline = if absolute {
            word(24)
        } else {
            now.saturating_add(word(24))
        };
        due.push((word(0), deadline.saturating_sub(now)));
    }
    let wait = due.iter().map(|&(_, w)| w).min().unwrap_or(0);
    weft_user::sleep(core::time::Duration::from_nanos(wait));
    let mut written = 0u32;
    for userdata in due.into_iter().filter(|&(_, w)| w <= wait).map(|(u, _)| u) {
        let mut e = [0u8; EVENT];
        e[0..8].copy_from_slice(&userdata.to_le_bytes());
        // error 0, type 0 (clock).
        mem::write(c, events.wrapping_add(written as i32 * EVENT as i32), &e)?;
        written += 1;
    }
    mem::write_u32(c, out, written)
}

/// Runs `op` with `fd` positioned at `offset`, then restores the position.
fn at_offset(
    c: &mut C<'_>,
    fd: i32,
    offset: i64,
    op: impl FnOnce(&mut C<'_>) -> WasiResult<()>,
) -> WasiResult<()> {
    let fds = &mut c.data_mut().fds;
    let here = fds.seek(fd, SeekFrom::Current(0))?;
    fds.seek(fd, SeekFrom::Start(offset as u64))?;
    let r = op(c);
    c.data_mut().fds.seek(fd, SeekFrom::Start(here))?;
    r
}
