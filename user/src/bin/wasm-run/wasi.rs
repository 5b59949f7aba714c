//! WASI preview 1 (`wasi_snapshot_preview1`) for the Wasm runtime: the
//! arguments, an empty environment, standard input, output and error, and
//! `proc_exit`. Every other import of that module returns `ENOSYS` (it never
//! traps the runtime); imports of other modules fail the load with a message.

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use wasmi::{Caller, Engine, Extern, Linker, Memory, Module, Store, Val};
use weft_user::{Args, Stream, read_stdin};

const WASI: &str = "wasi_snapshot_preview1";

/// WASI error numbers used here.
mod errno {
    pub const SUCCESS: i32 = 0;
    pub const BADF: i32 = 8;
    pub const FAULT: i32 = 21;
    pub const IO: i32 = 29;
    pub const NOSYS: i32 = 52;
}

/// What the host functions see.
struct Ctx {
    /// The module's arguments, its name first.
    args: Vec<Vec<u8>>,
}

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

/// The module's exported linear memory.
fn memory(caller: &Caller<'_, Ctx>) -> Option<Memory> {
    caller.get_export("memory").and_then(Extern::into_memory)
}

/// Reads a little-endian `u32` at `at` of the caller's memory.
fn read_u32(caller: &Caller<'_, Ctx>, mem: Memory, at: i32) -> Option<u32> {
    let mut b = [0u8; 4];
    mem.read(caller, at as u32 as usize, &mut b).ok()?;
    Some(u32::from_le_bytes(b))
}

/// Writes a little-endian `u32` at `at`; `false` if out of bounds.
fn write_u32(caller: &mut Caller<'_, Ctx>, mem: Memory, at: i32, v: u32) -> bool {
    mem.write(caller, at as u32 as usize, &v.to_le_bytes())
        .is_ok()
}

/// The `(ptr, len)` pairs of an iovec array.
fn iovecs(caller: &Caller<'_, Ctx>, mem: Memory, at: i32, n: i32) -> Option<Vec<(u32, u32)>> {
    (0..n.max(0) as u32)
        .map(|i| {
            let e = (at as u32).checked_add(i.checked_mul(8)?)? as i32;
            Some((
                read_u32(caller, mem, e)?,
                read_u32(caller, mem, e.wrapping_add(4))?,
            ))
        })
        .collect()
}

/// `args_sizes_get` / `environ_sizes_get`: the count and the bytes of the
/// NUL-terminated strings.
fn sizes(caller: &mut Caller<'_, Ctx>, strings: &[Vec<u8>], count_at: i32, size_at: i32) -> i32 {
    let Some(mem) = memory(caller) else {
        return errno::FAULT;
    };
    let size: usize = strings.iter().map(|s| s.len() + 1).sum();
    if write_u32(caller, mem, count_at, strings.len() as u32)
        && write_u32(caller, mem, size_at, size as u32)
    {
        errno::SUCCESS
    } else {
        errno::FAULT
    }
}

/// `args_get` / `environ_get`: the pointers, then the strings.
fn strings_get(caller: &mut Caller<'_, Ctx>, strings: &[Vec<u8>], ptrs: i32, buf: i32) -> i32 {
    let Some(mem) = memory(caller) else {
        return errno::FAULT;
    };
    let mut at = buf as u32;
    for (i, s) in strings.iter().enumerate() {
        let slot = (ptrs as u32).wrapping_add(4 * i as u32) as i32;
        if !write_u32(caller, mem, slot, at) {
            return errno::FAULT;
        }
        let mut z = s.clone();
        z.push(0);
        if mem.write(&mut *caller, at as usize, &z).is_err() {
            return errno::FAULT;
        }
        at = at.wrapping_add(z.len() as u32);
    }
    errno::SUCCESS
}

fn define(linker: &mut Linker<Ctx>) -> Result<(), wasmi::Error> {
    linker.func_wrap(
        WASI,
        "args_sizes_get",
        |mut c: Caller<'_, Ctx>, n: i32, size: i32| {
            let args = c.data().args.clone();
            sizes(&mut c, &args, n, size)
        },
    )?;
    linker.func_wrap(
        WASI,
        "args_get",
        |mut c: Caller<'_, Ctx>, ptrs: i32, buf: i32| {
            let args = c.data().args.clone();
            strings_get(&mut c, &args, ptrs, buf)
        },
    )?;
    linker.func_wrap(
        WASI,
        "environ_sizes_get",
        |mut c: Caller<'_, Ctx>, n: i32, size: i32| sizes(&mut c, &[], n, size),
    )?;
    linker.func_wrap(
        WASI,
        "environ_get",
        |mut c: Caller<'_, Ctx>, ptrs: i32, buf: i32| strings_get(&mut c, &[], ptrs, buf),
    )?;
    linker.func_wrap(
        WASI,
        "fd_write",
        |mut c: Caller<'_, Ctx>, fd: i32, iovs: i32, n: i32, written: i32| -> i32 {
            let stream = match fd {
                1 => Stream::Stdout,
                2 => Stream::Stderr,
                _ => return errno::BADF,
            };
            let Some(mem) = memory(&c) else {
                return errno::FAULT;
            };
            let Some(list) = iovecs(&c, mem, iovs, n) else {
                return errno::FAULT;
            };
            let mut total = 0u32;
            for (ptr, len) in list {
                let mut buf = alloc::vec![0u8; len as usize];
                if mem.read(&c, ptr as usize, &mut buf).is_err() {
                    return errno::FAULT;
                }
                if stream.write_all(&buf).is_err() {
                    return errno::IO;
                }
                total = total.wrapping_add(len);
            }
            if write_u32(&mut c, mem, written, total) {
                errno::SUCCESS
            } else {
                errno::FAULT
            }
        },
    )?;
    linker.func_wrap(
        WASI,
        "fd_read",
        |mut c: Caller<'_, Ctx>, fd: i32, iovs: i32, n: i32, read: i32| -> i32 {
            if fd != 0 {
                return errno::BADF;
            }
            let Some(mem) = memory(&c) else {
                return errno::FAULT;
            };
            let Some(list) = iovecs(&c, mem, iovs, n) else {
                return errno::FAULT;
            };
            // One read, into the first non-empty buffer (short reads are
            // allowed).
            let mut got = 0u32;
            if let Some((ptr, len)) = list.into_iter().find(|(_, l)| *l > 0) {
                let mut buf = alloc::vec![0u8; len as usize];
                match read_stdin(&mut buf) {
                    Ok(k) => {
                        if mem.write(&mut c, ptr as usize, &buf[..k]).is_err() {
                            return errno::FAULT;
                        }
                        got = k as u32;
                    }
                    Err(_) => return errno::IO,
                }
            }
            if write_u32(&mut c, mem, read, got) {
                errno::SUCCESS
            } else {
                errno::FAULT
            }
        },
    )?;
    linker.func_wrap(
        WASI,
        "fd_prestat_get",
        |_: Caller<'_, Ctx>, _fd: i32, _buf: i32| {
            // No directories are preopened in this version.
            errno::BADF
        },
    )?;
    linker.func_wrap(
        WASI,
        "proc_exit",
        |_: Caller<'_, Ctx>, status: i32| -> Result<(), wasmi::Error> {
            Err(wasmi::Error::i32_exit(status))
        },
    )?;
    Ok(())
}
