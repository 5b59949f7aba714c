//! WASI preview 1 (`wasi_snapshot_preview1`) for the Wasm runtime: the
//! arguments, the environment, the standard streams, files and
//! directories under the root (`--fs-root`, preopened as `/`, descriptor 3;
//! the calls on paths and metadata are [`paths`]'s),
//! sockets on granted listeners (`sock_accept`, `sock_recv`, `sock_send`,
//! `sock_shutdown`), clocks, randomness, `poll_oneoff` and `proc_exit`.
//! Every other import of that module returns `ENOSYS` (it never traps the
//! runtime); imports of modules other than this and the event ABI's fail
//! the load.
//!
//! Calls that may wait (socket reads, writes and accepts, `poll_oneoff`)
//! go through [`ops`]: the app's call is suspended, not the runtime.

use crate::app::Ctx;
use crate::fds::ROOT_NAME;
use crate::host::{Host, SeekFrom, WasiResult};
use crate::mem::{Env, errno_of, with_env};
use crate::ops::{self, Op};
use crate::paths;
use alloc::vec::Vec;
use wasmi::{Caller, Linker};
use weft_control::app::errno;

pub const MODULE: &str = "wasi_snapshot_preview1";
const WASI: &str = MODULE;

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

/// Checks that `fd` is a socket: `ENOTSOCK` if not, `EBADF` if not open.
fn socket<H: Host>(c: &mut C<'_, H>, fd: i32) -> WasiResult<()> {
    match c.data_mut().fds.is_socket(fd)? {
        true => Ok(()),
        false => Err(errno::NOTSOCK),
    }
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
            if let Err(errno) = socket(&mut c, fd) {
                return Ok(errno);
            }
            ops::call(&mut c, Op::read(fd, iovs, n, out, Some(flags_at)))
        },
    )?;
    l.func_wrap(
        WASI,
        "sock_send",
        |mut c: C<'_, H>, fd: i32, iovs: i32, n: i32, _flags: i32, out: i32| {
            if let Err(errno) = socket(&mut c, fd) {
                return Ok(errno);
            }
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
                0 if offset < 0 => return Ok(errno::INVAL),
                0 => SeekFrom::Start(offset as u64),
                1 => SeekFrom::Current(offset),
                2 => SeekFrom::End(offset),
                _ => return Err(invalid("fd_seek", "whence", whence)),
            };
            Ok(call(&mut c, |e| {
                let p = e.ctx.fds.seek(fd, to)?;
                e.write_u64(out, p)
            }))
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
                let flags = e.ctx.fds.fd_flags(fd)?;
                let (base, inheriting) = e.ctx.fds.rights(fd)?;
                let mut b = [0u8; 24];
                b[0] = ty;
                b[2..4].copy_from_slice(&flags.to_le_bytes());
                b[8..16].copy_from_slice(&base.to_le_bytes());
                b[16..24].copy_from_slice(&inheriting.to_le_bytes());
                e.write(out, &b)
            })
        },
    )?;
    // As wasmtime: rights cannot be changed.
    l.func_wrap(
        WASI,
        "fd_fdstat_set_rights",
        |mut c: C<'_, H>, fd: i32, _base: i64, _inheriting: i64| {
            errno_of(c.data_mut().fds.get(fd).and(Err(errno::NOTSUP)))
        },
    )?;
    l.func_wrap(
        WASI,
        "fd_renumber",
        |mut c: C<'_, H>, from: i32, to: i32| errno_of(c.data_mut().fds.renumber(from, to)),
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
        "fd_prestat_get",
        |mut c: C<'_, H>, fd: i32, out: i32| {
            let mut b = [0u8; 8];
            b[4..8].copy_from_slice(&(ROOT_NAME.len() as u32).to_le_bytes());
            call(&mut c, |e| {
                e.ctx.fds.preopened(fd, false)?;
                e.write(out, &b)
            })
        },
    )?;
    l.func_wrap(
        WASI,
        "fd_prestat_dir_name",
        |mut c: C<'_, H>, fd: i32, out: i32, len: i32| {
            let name = ROOT_NAME.as_bytes();
            call(&mut c, |e| {
                e.ctx.fds.preopened(fd, true)?;
                if (len as u32 as usize) < name.len() {
                    return Err(errno::NAMETOOLONG);
                }
                e.write(out, name)
            })
        },
    )?;
    l.func_wrap(
        WASI,
        "clock_time_get",
        |mut c: C<'_, H>, id: i32, _precision: i64, out: i32| {
            known_clock("clock_time_get", id)?;
            Ok(call(&mut c, |e| {
                e.write_u64(out, clock_now(e.ctx.system.host(), id)?)
            }))
        },
    )?;
    l.func_wrap(
        WASI,
        "clock_res_get",
        |mut c: C<'_, H>, id: i32, out: i32| {
            known_clock("clock_res_get", id)?;
            Ok(call(&mut c, |e| {
                e.write_u64(out, e.ctx.system.host().resolution_ns())
            }))
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
    // As wasmtime: signals are not supported.
    l.func_wrap(WASI, "proc_raise", |_: C<'_, H>, _signal: i32| {
        errno::NOTSUP
    })?;
    paths::define(l)
}

/// The trap for a call given `value` where only an enumerated `what` may
/// be: as wasmtime, the app ends (status 125) with a report naming the
/// call.
pub fn invalid(call: &str, what: &str, value: i32) -> wasmi::Error {
    wasmi::Error::new(alloc::format!("{call}: {value} is no {what}"))
}

/// Checks that `id`, given to `call`, names a WASI clock ([`invalid`] if
/// not).
fn known_clock(call: &str, id: i32) -> Result<(), wasmi::Error> {
    match id {
        0..=3 => Ok(()),
        _ => Err(invalid(call, "clock id", id)),
    }
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
