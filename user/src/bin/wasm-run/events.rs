//! The event app ABI: the `weft` import module (PROTOCOL.md §13) and the
//! batching of events for `weft_on_events`.
//!
//! An event app registers interest in its sockets and timers; while it is
//! idle the runtime gathers what happened into its event buffer and calls
//! `weft_on_events(count)`. Interest is level-triggered: a socket stays
//! readable (and is reported in every batch) until the app has read what
//! is there.

use crate::app::{App, Ctx, Run};
use crate::errno;
use crate::fds::Fd;
use crate::mem::{Env, WasiResult, errno_of, with_env};
use crate::system::KillError;
use alloc::boxed::Box;
use alloc::vec::Vec;
use wasmi::{AsContextMut, Caller, Linker};
use weft_user::net::{TcpListener, TcpStream, parse_addr};
use weft_user::stream::Interest;
use weft_user::time;

pub const MODULE: &str = "weft";

/// Bytes of one event record.
pub const EVENT: usize = 16;
/// Bytes of one `processes` record.
pub const PROCESS: usize = 64;
/// Interest bits.
pub const READABLE: u32 = 1;
pub const WRITABLE: u32 = 2;

/// Event kinds.
pub mod kind {
    pub const READABLE: u32 = 1;
    pub const WRITABLE: u32 = 2;
    /// The monitor ended the stream with an error; `value` is its code.
    pub const CLOSED: u32 = 3;
    pub const TIMER: u32 = 4;
    /// A child ended; `id` is its process id, `value` its status.
    pub const EXITED: u32 = 5;
}

/// An event app's registrations and undelivered events.
#[derive(Default)]
pub struct EventState {
    /// Where events are written: address and capacity in records.
    buffer: Option<(u32, u32)>,
    /// Sockets and their interest bits.
    interests: Vec<(i32, u32)>,
    /// One-shot timers: monotonic deadline and token.
    timers: Vec<(u64, u64)>,
    /// Children that ended: id and status.
    pub exits: Vec<(u32, i32)>,
}

impl EventState {
    /// The sockets to wait on and the earliest timer, while idle.
    pub fn wait(&self) -> (Vec<(i32, Interest)>, Option<u64>) {
        let fds = self
            .interests
            .iter()
            .map(|&(fd, bits)| {
                let i = match bits & (READABLE | WRITABLE) {
                    READABLE => Interest::Read,
                    WRITABLE => Interest::Write,
                    _ => Interest::Both,
                };
                (fd, i)
            })
            .collect();
        (fds, self.timers.iter().map(|t| t.0).min())
    }

    /// Whether nothing can wake the app any more.
    fn exhausted(&self) -> bool {
        self.interests.is_empty() && self.timers.is_empty() && self.exits.is_empty()
    }
}

/// For an idle event app: gathers the events due into its buffer and
/// starts `weft_on_events`; `Some(true)` if it did, `Some(false)` if there
/// was nothing, `None` if nothing can ever wake it (the app is done).
pub fn deliver(app: &mut App) -> Option<bool> {
    if !matches!(app.run, Run::Idle) {
        return Some(false);
    }
    // No memory or no buffer: nothing can be delivered, ever.
    let memory = app.store.data().memory?;
    let (mem, ctx) = memory.data_and_store_mut(app.store.as_context_mut());
    let pid = ctx.pid;
    let (at, cap) = ctx.events.buffer?;
    let mut out: Vec<[u8; EVENT]> = Vec::new();
    let mut push = |kind: u32, id: u32, value: u64| {
        let mut r = [0u8; EVENT];
        r[0..4].copy_from_slice(&kind.to_le_bytes());
        r[4..8].copy_from_slice(&id.to_le_bytes());
        r[8..16].copy_from_slice(&value.to_le_bytes());
        out.push(r);
    };
    let cap = cap as usize;
    let state = &mut ctx.events;
    // Children's ends first, then timers, then sockets.
    let take = state.exits.len().min(cap);
    for (id, status) in state.exits.drain(..take) {
        push(kind::EXITED, id, status as i64 as u64);
    }
    let now = time::monotonic_ns();
    let mut left = cap.saturating_sub(take);
    state.timers.retain(|&(deadline, token)| {
        if deadline <= now && left > 0 {
            push(kind::TIMER, 0, token);
            left -= 1;
            false
        } else {
            true
        }
    });
    let fds = &mut ctx.fds;
    state.interests.retain(|&(fd, bits)| {
        if left == 0 {
            return true;
        }
        let Some(stream) = fds.stream(fd) else {
            // Closed by the app: the interest goes with it.
            return false;
        };
        if let Some(code) = stream.status() {
            push(kind::CLOSED, fd as u32, code as u64);
            left -= 1;
            return false;
        }
        for (bit, k, interest) in [
            (READABLE, kind::READABLE, Interest::Read),
            (WRITABLE, kind::WRITABLE, Interest::Write),
        ] {
            if bits & bit != 0 && left > 0 && stream.ready(interest) {
                push(k, fd as u32, 0);
                left -= 1;
            }
        }
        true
    });
    if out.is_empty() {
        let children = ctx.system.table.borrow().has_children(pid);
        return if state.exhausted() && !children {
            None
        } else {
            Some(false)
        };
    }
    let mut env = Env { mem, ctx };
    for (i, r) in out.iter().enumerate() {
        if env
            .write(at.wrapping_add((i * EVENT) as u32) as i32, r)
            .is_err()
        {
            // The buffer left memory (it cannot shrink; a bug in the app's
            // registration, checked when made): deliver nothing.
            return Some(false);
        }
    }
    app.deliver(out.len() as u32);
    Some(true)
}

type C<'a> = Caller<'a, Ctx>;

/// A socket's descriptor for `interest`: it must be one.
fn socket(e: &mut Env<'_>, fd: i32) -> WasiResult<()> {
    match e.ctx.fds.get(fd)? {
        Fd::Grant(_) | Fd::Listener { .. } | Fd::Conn { .. } => Ok(()),
        _ => Err(errno::NOTSOCK),
    }
}

fn interest(e: &mut Env<'_>, fd: i32, bits: i32) -> WasiResult<()> {
    let bits = bits as u32;
    if bits & !(READABLE | WRITABLE) != 0 {
        return Err(errno::INVAL);
    }
    socket(e, fd)?;
    // Binds a granted listener now, so its first connection is seen.
    e.ctx.fds.stream(fd).ok_or(errno::IO)?;
    let list = &mut e.ctx.events.interests;
    list.retain(|&(f, _)| f != fd);
    if bits != 0 {
        list.push((fd, bits));
    }
    Ok(())
}

fn listen_or_connect(
    e: &mut Env<'_>,
    addr: i32,
    len: i32,
    out: i32,
    listen: bool,
) -> WasiResult<()> {
    let text = e.read_str(addr, len)?;
    let addr = parse_addr(&text).map_err(|_| errno::INVAL)?;
    let fd = if listen {
        let listener = TcpListener::bind(addr).map_err(|e| crate::fds::errno_for(&e))?;
        Fd::Listener {
            listener: Box::new(listener),
            nonblock: true,
        }
    } else {
        let conn = TcpStream::connect(addr).map_err(|e| crate::fds::errno_for(&e))?;
        Fd::Conn {
            conn: Box::new(conn),
            nonblock: true,
        }
    };
    let fd = e.ctx.fds.insert(fd);
    e.write_u32(out, fd as u32)
}

/// `spawn`: the module at the guest path, its arguments NUL-separated, its
/// linear memory capped at `limit` bytes (0: the default).
fn spawn(
    e: &mut Env<'_>,
    (path, path_len): (i32, i32),
    (argv, argv_len): (i32, i32),
    limit: i64,
    out: i32,
) -> WasiResult<()> {
    if limit < 0 {
        return Err(errno::INVAL);
    }
    let path = e.read_str(path, path_len)?;
    let mut args: Vec<Vec<u8>> = alloc::vec![path.as_bytes().to_vec()];
    if argv_len > 0 {
        let raw = e.bytes(argv, argv_len)?;
        let raw = raw.strip_suffix(&[0]).unwrap_or(raw);
        args.extend(raw.split(|b| *b == 0).map(<[u8]>::to_vec));
    }
    let bytes = weft_user::fs::read(&path).map_err(|e| crate::fds::errno_for(&e))?;
    let system = e.ctx.system.clone();
    let limit = (limit > 0).then_some(usize::try_from(limit).unwrap_or(usize::MAX));
    match system.spawn(e.ctx.pid, &bytes, args, limit) {
        Ok(pid) => e.write_u32(out, pid),
        Err(why) => {
            weft_user::eprintln!("weft: cannot spawn {path}: {why}");
            Err(errno::NOEXEC)
        }
    }
}

/// `processes`: up to `cap` records; the count at `out`.
fn processes(e: &mut Env<'_>, buf: i32, cap: i32, out: i32) -> WasiResult<()> {
    let records: Vec<[u8; PROCESS]> = {
        let t = e.ctx.system.table.borrow();
        t.procs
            .iter()
            .take(cap.max(0) as usize)
            .map(|(pid, p)| {
                let mut r = [0u8; PROCESS];
                r[0..4].copy_from_slice(&pid.to_le_bytes());
                r[4..8].copy_from_slice(&p.parent.to_le_bytes());
                r[8..12].copy_from_slice(&(p.state as u32).to_le_bytes());
                r[12..16].copy_from_slice(&p.sockets.to_le_bytes());
                r[16..24].copy_from_slice(&p.cpu_ns.to_le_bytes());
                r[24..32].copy_from_slice(&p.memory.to_le_bytes());
                let name = p.name.rsplit('/').next().unwrap_or("").as_bytes();
                let n = name.len().min(32);
                r[32..32 + n].copy_from_slice(&name[..n]);
                r
            })
            .collect()
    };
    for (i, r) in records.iter().enumerate() {
        e.write(buf.wrapping_add((i * PROCESS) as i32), r)?;
    }
    e.write_u32(out, records.len() as u32)
}

pub fn define(l: &mut Linker<Ctx>) -> Result<(), wasmi::Error> {
    l.func_wrap(MODULE, "event_buffer", |mut c: C<'_>, at: i32, cap: i32| {
        errno_of(with_env(&mut c, |e| {
            if cap <= 0 {
                return Err(errno::INVAL);
            }
            e.bytes(at, cap.saturating_mul(EVENT as i32))?;
            e.ctx.events.buffer = Some((at as u32, cap as u32));
            Ok(())
        }))
    })?;
    l.func_wrap(MODULE, "interest", |mut c: C<'_>, fd: i32, bits: i32| {
        errno_of(with_env(&mut c, |e| interest(e, fd, bits)))
    })?;
    l.func_wrap(
        MODULE,
        "timer",
        |mut c: C<'_>, token: i64, delay_ns: i64| {
            let deadline = time::monotonic_ns().saturating_add(delay_ns.max(0) as u64);
            c.data_mut().events.timers.push((deadline, token as u64));
            errno::SUCCESS
        },
    )?;
    l.func_wrap(
        MODULE,
        "tcp_listen",
        |mut c: C<'_>, addr: i32, len: i32, out: i32| {
            errno_of(with_env(&mut c, |e| {
                listen_or_connect(e, addr, len, out, true)
            }))
        },
    )?;
    l.func_wrap(
        MODULE,
        "tcp_connect",
        |mut c: C<'_>, addr: i32, len: i32, out: i32| {
            errno_of(with_env(&mut c, |e| {
                listen_or_connect(e, addr, len, out, false)
            }))
        },
    )?;
    l.func_wrap(
        MODULE,
        "spawn",
        |mut c: C<'_>, path: i32, path_len: i32, argv: i32, argv_len: i32, limit: i64, out: i32| {
            errno_of(with_env(&mut c, |e| {
                spawn(e, (path, path_len), (argv, argv_len), limit, out)
            }))
        },
    )?;
    l.func_wrap(MODULE, "kill", |c: C<'_>, pid: i32| {
        match c.data().system.kill(pid as u32) {
            Ok(()) => errno::SUCCESS,
            Err(KillError::NoSuchProcess) => errno::SRCH,
            Err(KillError::First) => errno::PERM,
        }
    })?;
    l.func_wrap(
        MODULE,
        "processes",
        |mut c: C<'_>, buf: i32, cap: i32, out: i32| {
            errno_of(with_env(&mut c, |e| processes(e, buf, cap, out)))
        },
    )?;
    l.func_wrap(MODULE, "pid", |c: C<'_>| c.data().pid as i32)?;
    Ok(())
}
