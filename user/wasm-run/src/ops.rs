//! The host calls that may wait: reads, writes and accepts on sockets,
//! `poll_oneoff`, and `ipc_receive`. Each is an [`Op`] that either finishes (an errno) or says
//! what it waits for ([`Wait`]); a waiting call is suspended and the same
//! `Op` is run again once that is ready, so a wait costs the other apps
//! nothing.

use crate::app::Ctx;
use crate::fds::{Fd, NONBLOCK};
use crate::host::{Host, Interest, Stream};
use crate::mem::Env;
use alloc::boxed::Box;
use alloc::vec::Vec;
use wasmi::{AsContextMut, Store};
use weft_control::app::{IpcRecord, errno};

/// The most one read moves; WASI allows short reads.
const MAX_READ: usize = 1 << 20;

/// What a waiting call waits for: any of the sockets, or the deadline
/// (monotonic nanoseconds).
#[derive(Clone, Debug, Default)]
pub struct Wait {
    pub fds: Vec<(i32, Interest)>,
    pub deadline: Option<u64>,
}

/// How an operation went.
pub enum Flow {
    /// Finished (or failed) with this errno.
    Done(i32),
    /// Must wait.
    Wait(Wait),
}

impl From<i32> for Flow {
    fn from(errno: i32) -> Self {
        Flow::Done(errno)
    }
}

/// A host call that may wait, with its arguments.
#[derive(Clone, Copy, Debug)]
pub enum Op {
    /// `fd_read` (`flags_at: None`) or `sock_recv` (its `ro_flags`).
    Read {
        fd: i32,
        iovs: i32,
        n: i32,
        out: i32,
        flags_at: Option<i32>,
    },
    /// `fd_write` or `sock_send`.
    Write {
        fd: i32,
        iovs: i32,
        n: i32,
        out: i32,
    },
    /// `sock_accept`.
    Accept { fd: i32, flags: u16, out: i32 },
    /// `ipc_receive` (PROTOCOL.md §13.7): waits only if `block`.
    Receive {
        fd: i32,
        buf: i32,
        cap: i32,
        record: i32,
        block: bool,
    },
    /// `poll_oneoff`, first called at `start` (monotonic ns).
    Poll {
        subs: i32,
        events: i32,
        n: i32,
        out: i32,
        start: u64,
    },
}

impl Op {
    /// A read into the iovecs at `iovs` (`fd_read`, `fd_pread`; `sock_recv`
    /// with `flags_at`).
    pub fn read(fd: i32, iovs: i32, n: i32, out: i32, flags_at: Option<i32>) -> Self {
        Op::Read {
            fd,
            iovs,
            n,
            out,
            flags_at,
        }
    }
}

/// Runs `op` again for a suspended call: `Some(errno)` once it finished.
pub fn retry<H: Host>(store: &mut Store<Ctx<H>>, op: &Op) -> Option<i32> {
    let Some(memory) = store.data().x.memory else {
        return Some(errno::FAULT);
    };
    let (mem, ctx) = memory.data_and_store_mut(store.as_context_mut());
    match op.run(&mut Env { mem, ctx }) {
        Flow::Done(errno) => Some(errno),
        Flow::Wait(_) => None,
    }
}

/// Runs `op` where waiting is impossible (a file): its errno, `EAGAIN` if
/// it would have waited.
pub fn run_in_place<H: Host, X>(e: &mut Env<'_, H, X>, op: Op) -> i32 {
    match op.run(e) {
        Flow::Done(errno) => errno,
        Flow::Wait(_) => errno::AGAIN,
    }
}

impl Op {
    /// Runs the call once: done, or what it waits for.
    pub fn run<H: Host, X>(&self, e: &mut Env<'_, H, X>) -> Flow {
        let r = match *self {
            Op::Read {
                fd,
                iovs,
                n,
                out,
                flags_at,
            } => read(e, fd, iovs, n, out, flags_at),
            Op::Write { fd, iovs, n, out } => write(e, fd, iovs, n, out),
            Op::Accept { fd, flags, out } => accept(e, fd, flags, out),
            Op::Receive {
                fd,
                buf,
                cap,
                record,
                block,
            } => receive(e, fd, (buf, cap), record, block),
            Op::Poll {
                subs,
                events,
                n,
                out,
                start,
            } => poll(e, subs, events, n, out, start),
        };
        match r {
            Ok(()) => Flow::Done(errno::SUCCESS),
            Err(flow) => flow,
        }
    }
}

/// `EAGAIN` for a non-blocking descriptor, else a wait for `interest`.
fn would_wait<H: Host, X>(e: &mut Env<'_, H, X>, fd: i32, interest: Interest) -> Result<(), Flow> {
    if e.ctx.fds.nonblocking(fd)? {
        return Err(Flow::Done(errno::AGAIN));
    }
    Err(Flow::Wait(Wait {
        fds: alloc::vec![(fd, interest)],
        deadline: None,
    }))
}

fn read<H: Host, X>(
    e: &mut Env<'_, H, X>,
    fd: i32,
    iovs: i32,
    n: i32,
    out: i32,
    flags_at: Option<i32>,
) -> Result<(), Flow> {
    let cap = e.capacity(iovs, n)?.min(MAX_READ);
    let mut buf = alloc::vec![0u8; cap];
    let got = if cap == 0 {
        Some(0)
    } else {
        e.ctx.fds.read(fd, &mut buf)?
    };
    let Some(k) = got else {
        return would_wait(e, fd, Interest::Read);
    };
    e.scatter(iovs, n, &buf[..k])?;
    if let Some(at) = flags_at {
        e.write(at, &[0, 0])?;
    }
    Ok(e.write_u32(out, k as u32)?)
}

fn write<H: Host, X>(
    e: &mut Env<'_, H, X>,
    fd: i32,
    iovs: i32,
    n: i32,
    out: i32,
) -> Result<(), Flow> {
    let data = e.gather(iovs, n)?;
    match e.ctx.fds.write(fd, &data)? {
        Some(k) => Ok(e.write_u32(out, k as u32)?),
        None => would_wait(e, fd, Interest::Write),
    }
}

fn accept<H: Host, X>(e: &mut Env<'_, H, X>, fd: i32, flags: u16, out: i32) -> Result<(), Flow> {
    match e.ctx.fds.accept(fd)? {
        Some(conn) => {
            let new = e.ctx.fds.insert(Fd::Conn {
                conn: Box::new(conn),
                nonblock: flags & NONBLOCK != 0,
            });
            Ok(e.write_u32(out, new as u32)?)
        }
        None => would_wait(e, fd, Interest::Read),
    }
}

/// `ipc_receive`: the next thing IPC descriptor `fd` delivers, its record
/// at `record` and its bytes at `buf`; one that does not fit `cap` bytes
/// is kept (`ERANGE`, the record written so the app sees the size).
/// Nothing there: `EAGAIN`, or a wait for the stream if `block`.
fn receive<H: Host, X>(
    e: &mut Env<'_, H, X>,
    fd: i32,
    (buf, cap): (i32, i32),
    record: i32,
    block: bool,
) -> Result<(), Flow> {
    let cap = usize::try_from(cap).map_err(|_| errno::INVAL)?;
    e.bytes(buf, cap as i32)?;
    e.bytes(record, IpcRecord::SIZE as i32)?;
    let Some(taken) = e.ctx.fds.ipc(fd)?.take()? else {
        if !block {
            return Err(errno::AGAIN.into());
        }
        return Err(Flow::Wait(Wait {
            fds: alloc::vec![(fd, Interest::Read)],
            deadline: None,
        }));
    };
    e.write(record, &taken.record.encode())?;
    if taken.bytes.len() > cap {
        e.ctx.fds.ipc(fd)?.keep(taken);
        return Err(errno::RANGE.into());
    }
    Ok(e.write(buf, &taken.bytes)?)
}

/// Bytes of a subscription and of an event.
const SUB: i32 = 48;
const EVENT: i32 = 32;
/// Subscription and event types.
const CLOCK: u8 = 0;
const FD_READ: u8 = 1;
const FD_WRITE: u8 = 2;

/// `poll_oneoff`: reports every subscription ready now; waits if none is.
/// Clock timeouts count from the call's first run (`start`); sockets are
/// ready when their stream is; files and the standard streams always are.
fn poll<H: Host, X>(
    e: &mut Env<'_, H, X>,
    subs: i32,
    events: i32,
    n: i32,
    out: i32,
    start: u64,
) -> Result<(), Flow> {
    if n <= 0 {
        return Err(errno::INVAL.into());
    }
    let host = e.ctx.host.clone();
    let now = host.monotonic_ns();
    let mut ready: Vec<[u8; EVENT as usize]> = Vec::new();
    let mut wait = Wait::default();
    for i in 0..n {
        let mut s = [0u8; SUB as usize];
        s.copy_from_slice(e.bytes(subs.wrapping_add(i.wrapping_mul(SUB)), SUB)?);
        let word = |o: usize| u64::from_le_bytes(s[o..o + 8].try_into().unwrap_or([0; 8]));
        let userdata = word(0);
        let tag = s[8];
        let mut event = [0u8; EVENT as usize];
        event[0..8].copy_from_slice(&userdata.to_le_bytes());
        event[10] = tag;
        match tag {
            CLOCK => {
                let id = u32::from_le_bytes([s[16], s[17], s[18], s[19]]);
                let absolute = u16::from_le_bytes([s[40], s[41]]) & 1 != 0;
                let deadline = clock_deadline(&host, id, word(24), absolute, start)?;
                if deadline <= now {
                    ready.push(event);
                } else {
                    wait.deadline = Some(wait.deadline.map_or(deadline, |d| d.min(deadline)));
                }
            }
            FD_READ | FD_WRITE => {
                let fd = u32::from_le_bytes([s[16], s[17], s[18], s[19]]) as i32;
                let interest = if tag == FD_READ {
                    Interest::Read
                } else {
                    Interest::Write
                };
                let held = interest == Interest::Read && e.ctx.fds.pending(fd);
                match e.ctx.fds.stream(fd).map(|s| held || s.ready(interest)) {
                    Some(false) => wait.fds.push((fd, interest)),
                    Some(true) => {
                        event[16..24].copy_from_slice(&1u64.to_le_bytes());
                        ready.push(event);
                    }
                    None => {
                        let nbytes = e.ctx.fds.always_ready(fd, interest)?;
                        event[16..24].copy_from_slice(&nbytes.to_le_bytes());
                        ready.push(event);
                    }
                }
            }
            _ => return Err(errno::INVAL.into()),
        }
    }
    if ready.is_empty() {
        return Err(Flow::Wait(wait));
    }
    for (i, event) in ready.iter().enumerate() {
        e.write(events.wrapping_add(i as i32 * EVENT), event)?;
    }
    Ok(e.write_u32(out, ready.len() as u32)?)
}

/// The monotonic deadline of a clock subscription on clock `id`.
fn clock_deadline(
    host: &impl Host,
    id: u32,
    timeout: u64,
    absolute: bool,
    start: u64,
) -> Result<u64, Flow> {
    Ok(match (id, absolute) {
        (0, true) => {
            // Realtime: as far from now as the wall clock is from it.
            let left = timeout.saturating_sub(host.realtime_ns());
            host.monotonic_ns().saturating_add(left)
        }
        (0..=3, true) => timeout,
        (0..=3, false) => start.saturating_add(timeout),
        _ => return Err(errno::INVAL.into()),
    })
}
