//! IPC by GUID for apps (PROTOCOL.md §13.7, §18): the `ipc_*` imports of
//! the `weft` module.
//!
//! A service an app provides and a stream it sends on are descriptors
//! ([`crate::ipc_end`]) in its event model: readable while a message (or
//! an answer) waits, so an event app registers interest in them like in a
//! socket and takes what is there with `ipc_receive` until `EAGAIN`. A
//! command waits with `ipc_receive`'s `BLOCK`, which suspends only that
//! app (as a blocking socket read does, [`crate::ops`]). Sending never
//! waits for the answer: `ipc_send` returns the message's id, and the
//! answer is delivered on the same descriptor.
//!
//! Everything the app passes is checked here before the [`Host`] sees it:
//! ranges (`EFAULT`), the GUID (not nil), texts (UTF-8, `EILSEQ`; their
//! lengths), data (at most `MAX_DATA` bytes, `EMSGSIZE`), timeouts and
//! flags (`EINVAL`).

use crate::fds::Fd;
use crate::host::{Host, WasiResult};
use crate::ipc_end::IpcEnd;
use crate::mem::Env;
use alloc::boxed::Box;
use weft_control::app::{IPC_ONE_WAY, errno};
use weft_control::ipc_proto::{Guid, MAX_DATA, MAX_NAME, MAX_TEXT, MAX_TIMEOUT_MS};

/// The GUID at `at`: 16 bytes, not nil.
pub(crate) fn guid<H: Host, X>(e: &Env<'_, H, X>, at: i32) -> WasiResult<Guid> {
    let raw: [u8; 16] = e.bytes(at, 16)?.try_into().map_err(|_| errno::FAULT)?;
    if raw == [0; 16] {
        return Err(errno::INVAL);
    }
    Ok(Guid(raw))
}

/// The `len` bytes of data at `at`: at most `MAX_DATA`.
pub(crate) fn data<'a, H: Host, X>(
    e: &'a Env<'_, H, X>,
    at: i32,
    len: i32,
) -> WasiResult<&'a [u8]> {
    if usize::try_from(len).map_err(|_| errno::INVAL)? > MAX_DATA {
        return Err(errno::MSGSIZE);
    }
    e.bytes(at, len)
}

/// The UTF-8 text of `len` bytes at `at`, at most `limit` bytes.
pub(crate) fn text<H: Host, X>(
    e: &Env<'_, H, X>,
    at: i32,
    len: i32,
    limit: usize,
) -> WasiResult<alloc::string::String> {
    if usize::try_from(len).map_err(|_| errno::INVAL)? > limit {
        return Err(errno::INVAL);
    }
    e.read_str(at, len)
}

/// `ipc_serve`: provides the service, its descriptor at `out`.
pub(crate) fn serve<H: Host, X>(
    e: &mut Env<'_, H, X>,
    at: i32,
    (name, len): (i32, i32),
    out: i32,
) -> WasiResult<()> {
    let guid = guid(e, at)?;
    let name = text(e, name, len, MAX_NAME)?;
    if name.is_empty() {
        return Err(errno::INVAL);
    }
    // The out pointer is checked before the stream is opened.
    e.write_u32(out, 0)?;
    let service = e.ctx.host.ipc_serve(guid, &name)?;
    let end = IpcEnd::service(service, guid, name);
    let fd = e.ctx.fds.insert(Fd::Ipc(Box::new(end)));
    e.write_u32(out, fd as u32)
}

/// `ipc_open`: a sending descriptor at `out`.
pub(crate) fn open<H: Host, X>(e: &mut Env<'_, H, X>, out: i32) -> WasiResult<()> {
    e.write_u32(out, 0)?;
    let sender = e.ctx.host.ipc_open()?;
    let fd = e.ctx.fds.insert(Fd::Ipc(Box::new(IpcEnd::sender(sender))));
    e.write_u32(out, fd as u32)
}

/// What `ipc_send` is given, pointers and lengths as the app passed them.
pub(crate) struct Send {
    pub(crate) fd: i32,
    pub(crate) guid: i32,
    pub(crate) pid: (i32, i32),
    pub(crate) data: (i32, i32),
    pub(crate) timeout_ms: i32,
    pub(crate) id_out: i32,
}

/// `ipc_send`: the message's id at `id_out`.
pub(crate) fn send<H: Host, X>(e: &mut Env<'_, H, X>, s: Send) -> WasiResult<()> {
    let timeout = match s.timeout_ms {
        IPC_ONE_WAY => None,
        t if (0..=MAX_TIMEOUT_MS as i32).contains(&t) => Some(t as u32),
        _ => return Err(errno::INVAL),
    };
    let guid = guid(e, s.guid)?;
    let pid = text(e, s.pid.0, s.pid.1, MAX_TEXT)?;
    let pid = (!pid.is_empty()).then_some(pid);
    e.write_u32(s.id_out, 0)?;
    let bytes = data(e, s.data.0, s.data.1)?.to_vec();
    let id = e
        .ctx
        .fds
        .ipc(s.fd)?
        .submit(guid, pid.as_deref(), &bytes, timeout)?;
    e.write_u32(s.id_out, id)
}

/// `ipc_reply`, or `ipc_refuse` if `refuse`: answers message `id` of
/// service descriptor `fd`.
pub(crate) fn answer<H: Host, X>(
    e: &mut Env<'_, H, X>,
    fd: i32,
    id: i64,
    (at, len): (i32, i32),
    refuse: bool,
) -> WasiResult<()> {
    if refuse {
        let reason = text(e, at, len, MAX_TEXT)?;
        return e.ctx.fds.ipc(fd)?.refuse(id as u64, &reason);
    }
    let bytes = data(e, at, len)?.to_vec();
    e.ctx.fds.ipc(fd)?.reply(id as u64, &bytes)
}

/// Defines this module's `weft` functions on linker `$l`, as
/// [`crate::events::define_events`] (which expands this) does.
macro_rules! define_ipc {
    ($l:ident, $C:ty, $T:ty) => {{
        use weft_control::app::ipc_wait;
        #[allow(unused_imports)]
        use weft_control::app::{MODULE, errno, import};
        #[allow(unused_imports)]
        use $crate::bind::{Call as _, call};
        use $crate::ipc::*;
        use $crate::ops::Op;
        $l.func_wrap(
            MODULE,
            import::IPC_SERVE,
            |mut c: $C, guid: i32, name: i32, len: i32, out: i32| {
                call(&mut c, |e| serve(e, guid, (name, len), out))
            },
        )?;
        $l.func_wrap(MODULE, import::IPC_OPEN, |mut c: $C, out: i32| {
            call(&mut c, |e| open(e, out))
        })?;
        $l.func_wrap(
            MODULE,
            import::IPC_SEND,
            |mut c: $C,
             fd: i32,
             guid: i32,
             pid: i32,
             pid_len: i32,
             data: i32,
             data_len: i32,
             timeout_ms: i32,
             id_out: i32| {
                let s = Send {
                    fd,
                    guid,
                    pid: (pid, pid_len),
                    data: (data, data_len),
                    timeout_ms,
                    id_out,
                };
                call(&mut c, |e| send(e, s))
            },
        )?;
        $l.func_wrap(
            MODULE,
            import::IPC_RECEIVE,
            |mut c: $C, fd: i32, buf: i32, cap: i32, record: i32, wait: i32| {
                let block = match wait {
                    ipc_wait::NOW => false,
                    ipc_wait::BLOCK => true,
                    _ => return Ok(errno::INVAL),
                };
                let op = Op::Receive {
                    fd,
                    buf,
                    cap,
                    record,
                    block,
                };
                c.op(op)
            },
        )?;
        $l.func_wrap(
            MODULE,
            import::IPC_REPLY,
            |mut c: $C, fd: i32, id: i64, at: i32, len: i32| {
                call(&mut c, |e| answer(e, fd, id, (at, len), false))
            },
        )?;
        $l.func_wrap(
            MODULE,
            import::IPC_REFUSE,
            |mut c: $C, fd: i32, id: i64, at: i32, len: i32| {
                call(&mut c, |e| answer(e, fd, id, (at, len), true))
            },
        )?;
        $l.func_wrap(MODULE, import::IPC_CANCEL, |mut c: $C, fd: i32, id: i32| {
            call(&mut c, |e| e.ctx.fds.ipc(fd)?.cancel(id as u32))
        })?;
    }};
}
pub(crate) use define_ipc;
