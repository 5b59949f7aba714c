//! The minimal WASI preview 1 host the bench runs CoreMark (`coremark.wasm`,
//! a WASI command) with on the host, written once for both of its host
//! engines: wasmi ([`crate::host_engine`]) and wasmtime
//! ([`crate::aot::HostWasmtime`]).
//!
//! It serves the calls CoreMark imports (`Module::imports` of
//! coremark.wasm: `args_sizes_get`, `args_get`, `environ_sizes_get`,
//! `environ_get`, `clock_time_get`, `fd_write`, `proc_exit`): arguments, an
//! empty environment, standard output and error (kept in memory), the
//! clocks and `proc_exit`. Any other import of `wasi_snapshot_preview1`
//! returns `ENOSYS`.
//!
//! Each call's behaviour is a function of the module's memory (`&mut [u8]`)
//! and the program's [`Ctx`], so it knows no engine. [`link_wasi!`] defines
//! them in either engine's linker (the two engines' `Caller`, `Extern`,
//! `Memory` and `Linker` are alike in name and shape, so the binding is
//! written once too); an engine adds only its `proc_exit`, which ends the
//! run with that engine's own trap.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use weft_control::app::errno::{BADF, FAULT, INVAL};

/// The program's side of the host.
pub struct Ctx {
    args: Vec<Vec<u8>>,
    started: Instant,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

impl Ctx {
    /// A program given `args` (its name first), started now.
    pub fn new(args: &[&str]) -> Self {
        Self {
            args: args.iter().map(|a| a.as_bytes().to_vec()).collect(),
            started: Instant::now(),
            stdout: Vec::new(),
            stderr: Vec::new(),
        }
    }

    /// The run's end: its exit `status` and what it printed.
    pub fn outcome(self, status: i32) -> Outcome {
        Outcome {
            status,
            stdout: self.stdout,
            stderr: self.stderr,
        }
    }
}

/// How a run ended and what it printed.
pub struct Outcome {
    pub status: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// A WASI call's result: `Err` holds its errno.
pub type Errno = Result<(), i32>;

/// The errno a call returns to the module (0: success).
pub fn errno(r: Errno) -> i32 {
    r.err().unwrap_or(0)
}

/// A Wasm address (an `i32` argument) as an offset in memory.
fn addr(a: i32) -> usize {
    a as u32 as usize
}

/// `len` bytes at offset `at` of the module's memory, bounds-checked.
fn span(mem: &mut [u8], at: usize, len: usize) -> Result<&mut [u8], i32> {
    mem.get_mut(at..at.checked_add(len).ok_or(FAULT)?)
        .ok_or(FAULT)
}

fn read_u32(mem: &mut [u8], at: usize) -> Result<u32, i32> {
    let b = span(mem, at, 4)?;
    Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

fn write(mem: &mut [u8], at: usize, bytes: &[u8]) -> Errno {
    span(mem, at, bytes.len())?.copy_from_slice(bytes);
    Ok(())
}

pub fn args_sizes_get(mem: &mut [u8], ctx: &mut Ctx, count: i32, size: i32) -> Errno {
    let bytes: usize = ctx.args.iter().map(|a| a.len() + 1).sum();
    write(mem, addr(count), &(ctx.args.len() as u32).to_le_bytes())?;
    write(mem, addr(size), &(bytes as u32).to_le_bytes())
}

pub fn args_get(mem: &mut [u8], ctx: &mut Ctx, ptrs: i32, buf: i32) -> Errno {
    let (ptrs, mut at) = (addr(ptrs), addr(buf));
    for (i, arg) in ctx.args.iter().enumerate() {
        write(mem, ptrs + 4 * i, &(at as u32).to_le_bytes())?;
        write(mem, at, arg)?;
        write(mem, at + arg.len(), &[0])?;
        at += arg.len() + 1;
    }
    Ok(())
}

/// The environment is empty.
pub fn environ_sizes_get(mem: &mut [u8], _: &mut Ctx, count: i32, size: i32) -> Errno {
    write(mem, addr(count), &0u32.to_le_bytes())?;
    write(mem, addr(size), &0u32.to_le_bytes())
}

/// Standard output (1) and error (2), appended to the context's.
pub fn fd_write(mem: &mut [u8], ctx: &mut Ctx, fd: i32, iovs: i32, n: i32, written: i32) -> Errno {
    let out = match fd {
        1 => &mut ctx.stdout,
        2 => &mut ctx.stderr,
        _ => return Err(BADF),
    };
    let iovs = addr(iovs);
    let mut total = 0u32;
    for i in 0..addr(n) {
        let ptr = read_u32(mem, iovs + 8 * i)?;
        let len = read_u32(mem, iovs + 8 * i + 4)?;
        out.extend_from_slice(span(mem, ptr as usize, len as usize)?);
        total = total.wrapping_add(len);
    }
    write(mem, addr(written), &total.to_le_bytes())
}

/// The first half of `clock_time_get`: clock `id`'s reading in
/// nanoseconds, realtime (0) from the system clock, monotonic (1) and the
/// CPU-time clocks (2, 3) as time since the program started. It is read
/// before the memory is looked up, so a bad `id` is `EINVAL` whatever the
/// module exports.
pub fn clock(ctx: &Ctx, id: i32) -> Result<u64, i32> {
    Ok(match id {
        0 => SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_err(|_| INVAL)?
            .as_nanos() as u64,
        1..=3 => ctx.started.elapsed().as_nanos() as u64,
        _ => return Err(INVAL),
    })
}

/// The second half of `clock_time_get`: stores [`clock`]'s reading `ns` at
/// `out`.
pub fn clock_time_get(mem: &mut [u8], ns: u64, out: i32) -> Errno {
    write(mem, addr(out), &ns.to_le_bytes())
}

/// Defines the calls above in `$linker`, a `Linker<Ctx>` of the engine at
/// path `$rt` (`wasmtime` or `weft_wasm_run::wasmi`), and `ENOSYS` for every
/// other WASI import of `$module` (that engine's `Module`) but those the
/// linker already has: the engine defines `proc_exit` first. A definition
/// that fails returns its error from the enclosing function (`?`).
///
/// A call that reaches memory gets the module's exported `memory` (`EFAULT`
/// if it exports none) and the store's [`Ctx`] from its `Caller`.
macro_rules! link_wasi {
    ($($rt:ident)::+, $linker:ident, $module:expr) => {{
        use $crate::shim::{self, Ctx, Errno, errno};
        use weft_control::app::errno::{FAULT, NOSYS};
        use weft_wasm_run::wasi::MODULE as WASI;
        use $($rt)::+::{Caller, Extern, Val};

        type C<'a> = Caller<'a, Ctx>;

        /// `call` on the module's memory and the context.
        fn with(c: &mut C<'_>, call: impl FnOnce(&mut [u8], &mut Ctx) -> Errno) -> Errno {
            let memory = c
                .get_export("memory")
                .and_then(Extern::into_memory)
                .ok_or(FAULT)?;
            let (mem, ctx) = memory.data_and_store_mut(c);
            call(mem, ctx)
        }

        $linker.func_wrap(WASI, "args_sizes_get", |mut c: C<'_>, n: i32, size: i32| {
            errno(with(&mut c, |mem, ctx| shim::args_sizes_get(mem, ctx, n, size)))
        })?;
        $linker.func_wrap(WASI, "args_get", |mut c: C<'_>, ptrs: i32, buf: i32| {
            errno(with(&mut c, |mem, ctx| shim::args_get(mem, ctx, ptrs, buf)))
        })?;
        $linker.func_wrap(WASI, "environ_sizes_get", |mut c: C<'_>, n: i32, size: i32| {
            errno(with(&mut c, |mem, ctx| {
                shim::environ_sizes_get(mem, ctx, n, size)
            }))
        })?;
        $linker.func_wrap(WASI, "environ_get", |_: C<'_>, _: i32, _: i32| 0)?;
        $linker.func_wrap(
            WASI,
            "fd_write",
            |mut c: C<'_>, fd: i32, iovs: i32, n: i32, written: i32| {
                errno(with(&mut c, |mem, ctx| {
                    shim::fd_write(mem, ctx, fd, iovs, n, written)
                }))
            },
        )?;
        $linker.func_wrap(
            WASI,
            "clock_time_get",
            |mut c: C<'_>, id: i32, _precision: i64, out: i32| {
                errno(shim::clock(c.data(), id).and_then(|ns| {
                    with(&mut c, |mem, _| shim::clock_time_get(mem, ns, out))
                }))
            },
        )?;
        for import in $module.imports() {
            let Some(ty) = import.ty().func().cloned() else {
                continue;
            };
            if import.module() != WASI {
                continue;
            }
            let returns_errno = ty.results().len() == 1;
            // Fails only for a name defined already: nothing to do.
            let _ = $linker.func_new(WASI, import.name(), ty, move |_, _, out: &mut [Val]| {
                if returns_errno {
                    out[0] = Val::I32(NOSYS);
                }
                Ok(())
            });
        }
    }};
}
pub(crate) use link_wasi;
