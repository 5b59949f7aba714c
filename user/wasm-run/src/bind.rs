//! What a host function needs of the engine that runs its app, so that
//! the WASI functions ([`crate::wasi`], [`crate::paths`]) are written once
//! and bound to each engine: the interpreter's here, the ahead-of-time
//! tier's in [`crate::aot`].
//!
//! A WASI function is a closure over the engine's caller ([`Call`]): it
//! reaches the app's memory and context through it, and the one thing the
//! engines do differently, a call that must wait ([`Call::op`]), is the
//! caller's: the interpreter suspends the app's call and runs the others,
//! the ahead-of-time tier (one app per process) waits in place.

use crate::app::{Ctx, Interp, MustWait};
use crate::host::{Host, WasiResult};
use crate::mem::{Env, errno_of, with_env};
use crate::ops::{Flow, Op};
use crate::system::KillError;
use alloc::string::String;
use alloc::vec::Vec;
use wasmi::Caller;
use weft_control::app::{ProcessRecord, errno, name_of};

/// The engine's side of a host call.
pub trait Call<H: Host> {
    /// What the engine keeps beside the app's state.
    type X;
    /// The engine's error: a trap or an exit, which ends the app.
    type Trap: Trap;
    /// The app's context.
    fn ctx(&mut self) -> &mut Ctx<H, Self::X>;
    /// Runs `f` on the app's memory and context; `EFAULT` if the app
    /// exports no memory.
    fn with_env<R>(
        &mut self,
        f: impl FnOnce(&mut Env<'_, H, Self::X>) -> WasiResult<R>,
    ) -> WasiResult<R>;
    /// Runs `op`, a call that may wait: its errno once it is done.
    fn op(&mut self, op: Op) -> Result<i32, Self::Trap>;
    /// Gives up the rest of the app's turn (`sched_yield`).
    fn yield_now(&mut self);
}

/// An engine's error that ends the app.
pub trait Trap {
    /// The app exits with `status` (`proc_exit`).
    fn exit(status: i32) -> Self;
    /// The app ends with a trap described by `message`.
    fn trap(message: String) -> Self;
}

/// Runs `f` on the calling app's memory and context; its errno.
pub fn call<H: Host, C: Call<H>>(
    c: &mut C,
    f: impl FnOnce(&mut Env<'_, H, C::X>) -> WasiResult<()>,
) -> i32 {
    errno_of(c.with_env(f))
}

/// The trap for a call given `value` where only an enumerated `what` may
/// be: as wasmtime, the app ends (status 125) with a report naming the
/// call.
pub fn invalid<T: Trap>(call: &str, what: &str, value: i32) -> T {
    T::trap(alloc::format!("{call}: {value} is no {what}"))
}

impl Trap for wasmi::Error {
    fn exit(status: i32) -> Self {
        wasmi::Error::i32_exit(status)
    }

    fn trap(message: String) -> Self {
        wasmi::Error::new(message)
    }
}

impl<H: Host> Call<H> for Caller<'_, Ctx<H>> {
    type X = Interp<H>;
    type Trap = wasmi::Error;

    fn ctx(&mut self) -> &mut Ctx<H> {
        self.data_mut()
    }

    fn with_env<R>(&mut self, f: impl FnOnce(&mut Env<'_, H>) -> WasiResult<R>) -> WasiResult<R> {
        with_env(self, f)
    }

    /// A call that must wait is suspended: the runtime runs the other apps
    /// and resumes it with the errno once [`crate::ops::retry`] finishes.
    fn op(&mut self, op: Op) -> Result<i32, wasmi::Error> {
        match with_env(self, |e| Ok(op.run(e))) {
            Err(errno) | Ok(Flow::Done(errno)) => Ok(errno),
            Ok(Flow::Wait(wait)) => {
                self.data_mut().x.blocked = Some((op, wait));
                Err(wasmi::Error::host(MustWait))
            }
        }
    }

    /// The app's turn ends at the next fuel check.
    fn yield_now(&mut self) {
        let _ = self.set_fuel(0);
    }
}

/// What an engine's apps may do with processes: the event ABI's `spawn`,
/// `kill`, `processes` and `move_self` (PROTOCOL.md §13.3, §19.4).
pub trait Procs<H: Host>: Sized {
    /// Starts the module at guest path `path` as a child of the calling
    /// app, its linear memory capped at `limit` bytes (`None`: the
    /// default); its process id.
    fn spawn(
        ctx: &mut Ctx<H, Self>,
        path: &str,
        args: Vec<Vec<u8>>,
        limit: Option<usize>,
    ) -> WasiResult<u32>;
    /// Ends process `pid`: its errno.
    fn kill(ctx: &mut Ctx<H, Self>, pid: u32) -> i32;
    /// The processes, as `processes` lists them, in id order.
    fn processes(ctx: &Ctx<H, Self>) -> Vec<ProcessRecord>;
    /// Asks for the app to be moved to `device` after its batch.
    fn move_self(ctx: &mut Ctx<H, Self>, device: String) -> WasiResult<()>;
    /// Whether the app has children still alive.
    fn has_children(ctx: &Ctx<H, Self>) -> bool;
}

impl<H: Host> Procs<H> for Interp<H> {
    fn spawn(
        ctx: &mut Ctx<H>,
        path: &str,
        args: Vec<Vec<u8>>,
        limit: Option<usize>,
    ) -> WasiResult<u32> {
        let system = ctx.x.system.clone();
        let bytes = ctx.host.read_file(path)?;
        system.spawn(ctx.pid, &bytes, args, limit).map_err(|why| {
            ctx.host
                .report(format_args!("weft: cannot spawn {path}: {why}"));
            errno::NOEXEC
        })
    }

    fn kill(ctx: &mut Ctx<H>, pid: u32) -> i32 {
        match ctx.x.system.kill(pid) {
            Ok(()) => errno::SUCCESS,
            Err(KillError::NoSuchProcess) => errno::SRCH,
            Err(KillError::First) => errno::PERM,
        }
    }

    fn processes(ctx: &Ctx<H>) -> Vec<ProcessRecord> {
        let t = ctx.x.system.table.borrow();
        t.procs
            .iter()
            .map(|(&pid, p)| ProcessRecord {
                pid,
                parent: p.parent,
                state: p.state as u32,
                sockets: p.sockets,
                cpu_ns: p.cpu_ns,
                memory: p.memory,
                name: name_of(p.name.as_bytes()),
            })
            .collect()
    }

    fn move_self(ctx: &mut Ctx<H>, device: String) -> WasiResult<()> {
        let mut table = ctx.x.system.table.borrow_mut();
        if !table.movable {
            return Err(errno::NOTCAPABLE);
        }
        table.go = Some(device);
        Ok(())
    }

    fn has_children(ctx: &Ctx<H>) -> bool {
        ctx.x.system.table.borrow().has_children(ctx.pid)
    }
}
