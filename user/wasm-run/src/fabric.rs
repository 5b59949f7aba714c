//! Fabric calls of the `weft` module (PROTOCOL.md §13.3, §17): an app in a
//! device guest lists the fabric's devices and processes, spawns, kills
//! and waits, through two imports.
//!
//! `fabric_call(req, req_len, reply, cap, len_out)` hands over one call's
//! request frames (§17.2, a `SPAWN` followed by its `IMAGE` frames), which
//! the runtime checks before the [`Host`] makes the call; the whole reply
//! frame is written at `reply` and its length at `len_out`. A reply longer
//! than `cap` is kept: `len_out` gets its length, the call returns
//! `ERANGE`, and `fabric_reply(reply, cap, len_out)` takes it into a larger
//! buffer. Only the latest call's reply is kept.
//!
//! The call waits in place for the answer (the runtime's other apps wait
//! with it): fabric calls are rare and answered by the device's daemon.
//!
//! `fabric_watch(fd_out)` starts a watch of the fabric (§17.4) on a stream
//! of its own, as a non-blocking descriptor: the app registers interest in
//! it (readable) like a socket's, and `fabric_event(fd, buf, cap, len_out)`
//! takes the next event's whole `EVENT` frame (`EAGAIN` if none is there),
//! so waiting for events suspends only that app.

use crate::bind::Procs;
use crate::fds::Fd;
use crate::host::{Host, WasiResult};
use crate::mem::Env;
use alloc::vec::Vec;
use weft_control::app::{FIRST_PID, errno};
use weft_control::fabric_proto::{Event, check_call};

/// `fabric_call`: checks and makes the call, then delivers its reply.
pub(crate) fn fabric_call<H: Host, X>(
    e: &mut Env<'_, H, X>,
    (req, req_len): (i32, i32),
    (reply, cap): (i32, i32),
    out: i32,
) -> WasiResult<()> {
    let frames = e.bytes(req, req_len)?;
    check_call(frames).map_err(|_| errno::INVAL)?;
    let answer = e.ctx.host.fabric(frames)?;
    deliver(e, answer, reply, cap, out)
}

/// Writes `answer`'s length at `out` and the reply at `at` if it fits
/// `cap` bytes; else keeps it for `fabric_reply` (`ERANGE`).
pub(crate) fn deliver<H: Host, X>(
    e: &mut Env<'_, H, X>,
    answer: Vec<u8>,
    at: i32,
    cap: i32,
    out: i32,
) -> WasiResult<()> {
    e.write_u32(out, answer.len() as u32)?;
    if answer.len() > cap.max(0) as usize {
        e.ctx.fabric_reply = Some(answer);
        return Err(errno::RANGE);
    }
    e.write(at, &answer)
}

/// `fabric_watch`: a watch's descriptor at `out`.
pub(crate) fn watch<H: Host, X>(e: &mut Env<'_, H, X>, out: i32) -> WasiResult<()> {
    // The out pointer is checked before the stream is opened.
    e.write_u32(out, 0)?;
    let watch = e.ctx.host.fabric_watch()?;
    let fd = e.ctx.fds.insert(Fd::Watch(alloc::boxed::Box::new(watch)));
    e.write_u32(out, fd as u32)
}

/// `fabric_event`: the next event of watch `fd` at `at` (its length at
/// `out`); `cap` must hold the longest event frame.
pub(crate) fn event<H: Host, X>(
    e: &mut Env<'_, H, X>,
    fd: i32,
    (at, cap): (i32, i32),
    out: i32,
) -> WasiResult<()> {
    if (cap.max(0) as usize) < Event::MAX_FRAME {
        return Err(errno::INVAL);
    }
    e.bytes(at, cap)?;
    e.write_u32(out, 0)?;
    let frame = e.ctx.fds.watch_event(fd)?.ok_or(errno::AGAIN)?;
    e.write_u32(out, frame.len() as u32)?;
    e.write(at, &frame)
}

/// `move_self`: the first app asks to be moved to the device named at
/// `device` (§19.4); the move happens after its batch.
pub(crate) fn move_self<H: Host, X: Procs<H>>(
    e: &mut Env<'_, H, X>,
    device: i32,
    len: i32,
) -> WasiResult<()> {
    let name = e.read_str(device, len)?;
    let valid = (1..=32).contains(&name.len())
        && !name.starts_with('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !valid {
        return Err(errno::INVAL);
    }
    if e.ctx.pid != FIRST_PID {
        return Err(errno::PERM);
    }
    X::move_self(e.ctx, name)
}

/// Defines this module's `weft` functions on linker `$l`, as
/// [`crate::events::define_events`] (which expands this) does.
macro_rules! define_fabric {
    ($l:ident, $C:ty, $T:ty) => {{
        #[allow(unused_imports)]
        use weft_control::app::{MODULE, errno, import};
        #[allow(unused_imports)]
        use $crate::bind::{Call as _, call};
        use $crate::fabric::*;
        $l.func_wrap(
            MODULE,
            import::MOVE_SELF,
            |mut c: $C, device: i32, len: i32| call(&mut c, |e| move_self(e, device, len)),
        )?;
        $l.func_wrap(
            MODULE,
            import::FABRIC_CALL,
            |mut c: $C, req: i32, req_len: i32, reply: i32, cap: i32, out: i32| {
                call(&mut c, |e| {
                    fabric_call(e, (req, req_len), (reply, cap), out)
                })
            },
        )?;
        $l.func_wrap(
            MODULE,
            import::FABRIC_REPLY,
            |mut c: $C, reply: i32, cap: i32, out: i32| {
                call(&mut c, |e| {
                    let kept = e.ctx.fabric_reply.take().ok_or(errno::NOENT)?;
                    deliver(e, kept, reply, cap, out)
                })
            },
        )?;
        $l.func_wrap(MODULE, import::FABRIC_WATCH, |mut c: $C, out: i32| {
            call(&mut c, |e| watch(e, out))
        })?;
        $l.func_wrap(
            MODULE,
            import::FABRIC_EVENT,
            |mut c: $C, fd: i32, at: i32, cap: i32, out: i32| {
                call(&mut c, |e| event(e, fd, (at, cap), out))
            },
        )?;
    }};
}
pub(crate) use define_fabric;
