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
use crate::bind::{Call, Trap, invalid};
pub(crate) use crate::fds::ROOT_NAME;
pub(crate) use crate::host::SeekFrom;
use crate::host::{Host, WasiResult};
use crate::mem::Env;
use crate::ops::{self, Op};
use alloc::vec::Vec;
use wasmi::Linker;
use weft_control::app::errno;

pub const MODULE: &str = "wasi_snapshot_preview1";
pub(crate) const WASI: &str = MODULE;

/// `args_sizes_get` / `environ_sizes_get`: the count and the bytes of the
/// NUL-terminated strings.
pub(crate) fn sizes<H: Host, X>(
    e: &mut Env<'_, H, X>,
    strings: &[Vec<u8>],
    count_at: i32,
    size_at: i32,
) -> WasiResult<()> {
    let size: usize = strings.iter().map(|s| s.len() + 1).sum();
    e.write_u32(count_at, strings.len() as u32)?;
    e.write_u32(size_at, size as u32)
}

/// `args_get` / `environ_get`: the pointers, then the strings.
pub(crate) fn strings_get<H: Host, X>(
    e: &mut Env<'_, H, X>,
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

pub(crate) fn args<H: Host, X>(c: &mut Ctx<H, X>) -> &mut Vec<Vec<u8>> {
    &mut c.args
}

pub(crate) fn env<H: Host, X>(c: &mut Ctx<H, X>) -> &mut Vec<Vec<u8>> {
    &mut c.env
}

/// Runs `f` with the app's arguments or environment (the strings `list`
/// picks from its context) beside its memory and context.
pub(crate) fn with_strings<H: Host, X>(
    e: &mut Env<'_, H, X>,
    list: fn(&mut Ctx<H, X>) -> &mut Vec<Vec<u8>>,
    f: impl FnOnce(&mut Env<'_, H, X>, &[Vec<u8>]) -> WasiResult<()>,
) -> WasiResult<()> {
    let strings = core::mem::take(list(e.ctx));
    let r = f(e, &strings);
    *list(e.ctx) = strings;
    r
}

/// Checks that `fd` is a socket: `ENOTSOCK` if not, `EBADF` if not open.
pub(crate) fn socket<H: Host>(c: &mut impl Call<H>, fd: i32) -> WasiResult<()> {
    match c.ctx().fds.is_socket(fd)? {
        true => Ok(()),
        false => Err(errno::NOTSOCK),
    }
}

/// Defines the WASI functions on linker `$l`, whose closures take the
/// engine's caller `$C` and end the app with its error `$T`
/// ([`crate::bind`]): written once, expanded for each engine.
macro_rules! define_wasi {
    ($l:ident, $C:ty, $T:ty) => {{
        #[allow(unused_imports)]
        use $crate::bind::{Call as _, Trap, call, invalid};
        use $crate::wasi::{
            SeekFrom, WASI, args, clock_now, env, known_clock, positioned, sizes, socket,
            strings_get, with_strings, ROOT_NAME,
        };
        use $crate::mem::errno_of;
        use $crate::ops::Op;
        use weft_control::app::errno;
            $l.func_wrap(
                WASI,
                "args_sizes_get",
                |mut c: $C, n: i32, size: i32| {
                    call(&mut c, |e| {
                        with_strings(e, args, |e, args| sizes(e, args, n, size))
                    })
                },
            )?;
            $l.func_wrap(WASI, "args_get", |mut c: $C, ptrs: i32, buf: i32| {
                call(&mut c, |e| {
                    with_strings(e, args, |e, args| strings_get(e, args, ptrs, buf))
                })
            })?;
            $l.func_wrap(
                WASI,
                "environ_sizes_get",
                |mut c: $C, n: i32, size: i32| {
                    call(&mut c, |e| {
                        with_strings(e, env, |e, env| sizes(e, env, n, size))
                    })
                },
            )?;
            $l.func_wrap(
                WASI,
                "environ_get",
                |mut c: $C, ptrs: i32, buf: i32| {
                    call(&mut c, |e| {
                        with_strings(e, env, |e, env| strings_get(e, env, ptrs, buf))
                    })
                },
            )?;
            $l.func_wrap(
                WASI,
                "fd_write",
                |mut c: $C, fd: i32, iovs: i32, n: i32, out: i32| {
                    c.op(Op::Write { fd, iovs, n, out })
                },
            )?;
            $l.func_wrap(
                WASI,
                "fd_read",
                |mut c: $C, fd: i32, iovs: i32, n: i32, out: i32| {
                    c.op(Op::read(fd, iovs, n, out, None))
                },
            )?;
            $l.func_wrap(
                WASI,
                "fd_pread",
                |mut c: $C, fd: i32, iovs: i32, n: i32, at: i64, out: i32| {
                    call(&mut c, |e| {
                        positioned(e, Op::read(fd, iovs, n, out, None), fd, at)
                    })
                },
            )?;
            $l.func_wrap(
                WASI,
                "fd_pwrite",
                |mut c: $C, fd: i32, iovs: i32, n: i32, at: i64, out: i32| {
                    call(&mut c, |e| {
                        positioned(e, Op::Write { fd, iovs, n, out }, fd, at)
                    })
                },
            )?;
            $l.func_wrap(
                WASI,
                "sock_recv",
                |mut c: $C, fd: i32, iovs: i32, n: i32, _flags: i32, out: i32, flags_at: i32| {
                    if let Err(errno) = socket(&mut c, fd) {
                        return Ok(errno);
                    }
                    c.op(Op::read(fd, iovs, n, out, Some(flags_at)))
                },
            )?;
            $l.func_wrap(
                WASI,
                "sock_send",
                |mut c: $C, fd: i32, iovs: i32, n: i32, _flags: i32, out: i32| {
                    if let Err(errno) = socket(&mut c, fd) {
                        return Ok(errno);
                    }
                    c.op(Op::Write { fd, iovs, n, out })
                },
            )?;
            $l.func_wrap(
                WASI,
                "sock_accept",
                |mut c: $C, fd: i32, flags: i32, out: i32| {
                    c.op(Op::Accept {
                            fd,
                            flags: flags as u16,
                            out,
                        },
                    )
                },
            )?;
            $l.func_wrap(
                WASI,
                "sock_shutdown",
                |mut c: $C, fd: i32, how: i32| call(&mut c, |e| e.ctx.fds.shutdown(fd, how as u8)),
            )?;
            $l.func_wrap(
                WASI,
                "fd_seek",
                |mut c: $C, fd: i32, offset: i64, whence: i32, out: i32| {
                    let to = match whence {
                        0 if offset < 0 => return Ok(errno::INVAL),
                        0 => SeekFrom::Start(offset as u64),
                        1 => SeekFrom::Current(offset),
                        2 => SeekFrom::End(offset),
                        _ => return Err(invalid::<$T>("fd_seek", "whence", whence)),
                    };
                    Ok(call(&mut c, |e| {
                        let p = e.ctx.fds.seek(fd, to)?;
                        e.write_u64(out, p)
                    }))
                },
            )?;
            $l.func_wrap(WASI, "fd_tell", |mut c: $C, fd: i32, out: i32| {
                call(&mut c, |e| {
                    let p = e.ctx.fds.seek(fd, SeekFrom::Current(0))?;
                    e.write_u64(out, p)
                })
            })?;
            $l.func_wrap(WASI, "fd_close", |mut c: $C, fd: i32| {
                errno_of(c.ctx().fds.close(fd))
            })?;
            $l.func_wrap(WASI, "fd_sync", |mut c: $C, fd: i32| {
                errno_of(c.ctx().fds.sync(fd))
            })?;
            $l.func_wrap(WASI, "fd_datasync", |mut c: $C, fd: i32| {
                errno_of(c.ctx().fds.sync(fd))
            })?;
            $l.func_wrap(
                WASI,
                "fd_fdstat_get",
                |mut c: $C, fd: i32, out: i32| {
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
            $l.func_wrap(
                WASI,
                "fd_fdstat_set_rights",
                |mut c: $C, fd: i32, _base: i64, _inheriting: i64| {
                    errno_of(c.ctx().fds.get(fd).and(Err(errno::NOTSUP)))
                },
            )?;
            $l.func_wrap(
                WASI,
                "fd_renumber",
                |mut c: $C, from: i32, to: i32| errno_of(c.ctx().fds.renumber(from, to)),
            )?;
            $l.func_wrap(
                WASI,
                "fd_fdstat_set_flags",
                |mut c: $C, fd: i32, flags: i32| {
                    errno_of(c.ctx().fds.set_flags(fd, flags as u16))
                },
            )?;
            $l.func_wrap(
                WASI,
                "fd_prestat_get",
                |mut c: $C, fd: i32, out: i32| {
                    let mut b = [0u8; 8];
                    b[4..8].copy_from_slice(&(ROOT_NAME.len() as u32).to_le_bytes());
                    call(&mut c, |e| {
                        e.ctx.fds.preopened(fd, false)?;
                        e.write(out, &b)
                    })
                },
            )?;
            $l.func_wrap(
                WASI,
                "fd_prestat_dir_name",
                |mut c: $C, fd: i32, out: i32, len: i32| {
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
            $l.func_wrap(
                WASI,
                "clock_time_get",
                |mut c: $C, id: i32, _precision: i64, out: i32| {
                    known_clock::<$T>("clock_time_get", id)?;
                    Ok(call(&mut c, |e| {
                        e.write_u64(out, clock_now(&e.ctx.host, id)?)
                    }))
                },
            )?;
            $l.func_wrap(
                WASI,
                "clock_res_get",
                |mut c: $C, id: i32, out: i32| {
                    known_clock::<$T>("clock_res_get", id)?;
                    Ok(call(&mut c, |e| {
                        e.write_u64(out, e.ctx.host.resolution_ns())
                    }))
                },
            )?;
            $l.func_wrap(WASI, "random_get", |mut c: $C, buf: i32, len: i32| {
                call(&mut c, |e| {
                    let mut bytes = alloc::vec![0u8; len as u32 as usize];
                    if !e.ctx.host.fill_random(&mut bytes) {
                        return Err(errno::IO);
                    }
                    e.write(buf, &bytes)
                })
            })?;
            // Gives up the rest of the slice: the app's turn ends at the next
            // fuel check.
            $l.func_wrap(WASI, "sched_yield", |mut c: $C| {
                c.yield_now();
                errno::SUCCESS
            })?;
            $l.func_wrap(
                WASI,
                "poll_oneoff",
                |mut c: $C, subs: i32, events: i32, n: i32, out: i32| {
                    let start = c.ctx().host.monotonic_ns();
                    c.op(Op::Poll {
                            subs,
                            events,
                            n,
                            out,
                            start,
                        },
                    )
                },
            )?;
            $l.func_wrap(
                WASI,
                "proc_exit",
                |_: $C, status: i32| -> Result<(), $T> {
                    Err(<$T as Trap>::exit(status))
                },
            )?;
            // As wasmtime: signals are not supported.
            $l.func_wrap(WASI, "proc_raise", |_: $C, _signal: i32| {
                errno::NOTSUP
            })?;
        $crate::paths::define_paths!($l, $C, $T);
    }};
}
#[cfg_attr(not(feature = "aot"), allow(unused_imports))]
pub(crate) use define_wasi;

/// Defines the WASI functions for the interpreter.
pub fn define<H: Host>(l: &mut Linker<Ctx<H>>) -> Result<(), wasmi::Error> {
    define_wasi!(l, wasmi::Caller<'_, Ctx<H>>, wasmi::Error);
    Ok(())
}

/// Checks that `id`, given to `call`, names a WASI clock ([`invalid`] if
/// not).
pub(crate) fn known_clock<T: Trap>(call: &str, id: i32) -> Result<(), T> {
    match id {
        0..=3 => Ok(()),
        _ => Err(invalid(call, "clock id", id)),
    }
}

/// The time on WASI clock `id` (realtime, monotonic, process and thread
/// CPU time, the last two measured as monotonic time), in nanoseconds.
pub(crate) fn clock_now(host: &impl Host, id: i32) -> WasiResult<u64> {
    match id {
        0 => Ok(host.realtime_ns()),
        1..=3 => Ok(host.monotonic_ns()),
        _ => Err(errno::INVAL),
    }
}

/// Runs `op` with `fd` positioned at `offset`, then restores the position.
fn at_offset<H: Host, X>(
    e: &mut Env<'_, H, X>,
    fd: i32,
    offset: i64,
    op: impl FnOnce(&mut Env<'_, H, X>) -> WasiResult<()>,
) -> WasiResult<()> {
    let here = e.ctx.fds.seek(fd, SeekFrom::Current(0))?;
    e.ctx.fds.seek(fd, SeekFrom::Start(offset as u64))?;
    let r = op(e);
    e.ctx.fds.seek(fd, SeekFrom::Start(here))?;
    r
}

/// `fd_pread` / `fd_pwrite`: a file read or write in place at `offset`.
pub(crate) fn positioned<H: Host, X>(
    e: &mut Env<'_, H, X>,
    op: Op,
    fd: i32,
    offset: i64,
) -> WasiResult<()> {
    at_offset(e, fd, offset, |e| match ops::run_in_place(e, op) {
        0 => Ok(()),
        errno => Err(errno),
    })
}
