//! The event app ABI: the `weft` import module (PROTOCOL.md §13) and the
//! batching of events for `weft_on_events`.
//!
//! An event app registers interest in its sockets and timers; while it is
//! idle the runtime gathers what happened into its event buffer and calls
//! `weft_on_events(count)`. Interest is level-triggered: a socket stays
//! readable (and is reported in every batch) until the app has read what
//! is there.

use crate::app::{App, Ctx, Run};
use crate::bind::Procs;
use crate::fds::Fd;
use crate::host::{Host, Interest, Stream, WasiResult};
use crate::mem::Env;
use crate::udp::addr_at;
use alloc::boxed::Box;
use alloc::vec::Vec;
use wasmi::{AsContextMut, Linker};
use weft_control::app::interest::{READABLE, WRITABLE};
use weft_control::app::{EventRecord, ProcessRecord, errno, interest as bits_of, kind};
use weft_control::snapshot::HostRecord;

/// An event app's registrations and undelivered events.
#[derive(Default)]
pub struct EventState {
    /// Where events are written: address and capacity in records.
    pub(crate) buffer: Option<(u32, u32)>,
    /// Sockets and their interest bits.
    interests: Vec<(i32, u32)>,
    /// One-shot timers: monotonic deadline and token.
    pub(crate) timers: Vec<(u64, u64)>,
    /// Children that ended: id and status.
    pub exits: Vec<(u32, i32)>,
    /// Descriptors that did not follow the app when it was moved here, not
    /// told yet (`MOVED`, §13.4): number and what it was.
    pub moved: Vec<(u32, u16)>,
}

impl EventState {
    /// The sockets to wait on and the earliest timer, while idle.
    pub fn wait(&self) -> (Vec<(i32, Interest)>, Option<u64>) {
        let fds = self
            .interests
            .iter()
            .map(|&(fd, bits)| {
                let i = match bits & bits_of::ALL {
                    READABLE => Interest::Read,
                    WRITABLE => Interest::Write,
                    _ => Interest::Both,
                };
                (fd, i)
            })
            .collect();
        (fds, self.timers.iter().map(|t| t.0).min())
    }

    /// The registrations as snapshot host records (PROTOCOL.md §19.1):
    /// the event buffer, interests, timers by the time left at `now`, and
    /// the children's ends not delivered yet.
    pub fn records(&self, now: u64) -> Vec<HostRecord<'static>> {
        let buffer = self
            .buffer
            .map(|(at, capacity)| HostRecord::EventBuffer { at, capacity });
        let interests = self
            .interests
            .iter()
            .map(|&(fd, bits)| HostRecord::Interest {
                fd: fd as u32,
                bits,
            });
        let timers = self
            .timers
            .iter()
            .map(|&(deadline, token)| HostRecord::Timer {
                remaining_ns: deadline.saturating_sub(now),
                token,
            });
        let exits = self
            .exits
            .iter()
            .map(|&(pid, status)| HostRecord::Exit { pid, status });
        buffer
            .into_iter()
            .chain(interests)
            .chain(timers)
            .chain(exits)
            .collect()
    }

    /// Takes `record` back from a snapshot restored at `now` (timers are
    /// due their time left from then); `false` if it is not one of
    /// [`EventState::records`]'s.
    pub fn restore(&mut self, record: &HostRecord<'_>, now: u64) -> bool {
        match *record {
            HostRecord::EventBuffer { at, capacity } => self.buffer = Some((at, capacity)),
            HostRecord::Interest { fd, bits } => self.interests.push((fd as i32, bits)),
            HostRecord::Timer {
                remaining_ns,
                token,
            } => self.timers.push((now.saturating_add(remaining_ns), token)),
            HostRecord::Exit { pid, status } => self.exits.push((pid, status)),
            _ => return false,
        }
        true
    }

    /// Whether nothing can wake the app any more.
    fn exhausted(&self) -> bool {
        self.interests.is_empty()
            && self.timers.is_empty()
            && self.exits.is_empty()
            && self.moved.is_empty()
    }
}

/// For an idle event app: gathers the events due into its buffer and
/// starts `weft_on_events`; `Some(true)` if it did, `Some(false)` if there
/// was nothing, `None` if nothing can ever wake it (the app is done).
pub fn deliver<H: Host>(app: &mut App<H>) -> Option<bool> {
    if !matches!(app.run, Run::Idle) {
        return Some(false);
    }
    // No memory: nothing can be delivered, ever.
    let memory = app.store.data().x.memory?;
    let (mem, ctx) = memory.data_and_store_mut(app.store.as_context_mut());
    match gather(&mut Env { mem, ctx })? {
        0 => Some(false),
        count => {
            app.deliver(count);
            Some(true)
        }
    }
}

/// Writes the events due to an idle event app into its buffer: how many
/// (0: none now), or `None` if nothing can ever wake it (no buffer, or no
/// registration, pending event or child left).
pub fn gather<H: Host, X: Procs<H>>(e: &mut Env<'_, H, X>) -> Option<u32> {
    let ctx = &mut *e.ctx;
    let (at, cap) = ctx.events.buffer?;
    let now = ctx.host.monotonic_ns();
    let mut out: Vec<EventRecord> = Vec::new();
    let mut push = |kind: u32, id: u32, value: u64| out.push(EventRecord { kind, id, value });
    let cap = cap as usize;
    let state = &mut ctx.events;
    // What did not follow a move first, then children's ends, then timers,
    // then sockets.
    let moved = state.moved.len().min(cap);
    for (fd, what) in state.moved.drain(..moved) {
        let r = EventRecord::moved(fd, what);
        push(r.kind, r.id, r.value);
    }
    let take = state.exits.len().min(cap - moved);
    for (id, status) in state.exits.drain(..take) {
        let r = EventRecord::exited(id, status);
        push(r.kind, r.id, r.value);
    }
    let mut left = cap.saturating_sub(moved + take);
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
        let kept = fds.pending(fd);
        let Some(stream) = fds.stream(fd) else {
            // Closed by the app: the interest goes with it.
            return false;
        };
        if let Some(code) = stream.status() {
            push(kind::CLOSED, fd as u32, u64::from(code));
            left -= 1;
            return false;
        }
        for (bit, k, interest) in [
            (READABLE, kind::READABLE, Interest::Read),
            (WRITABLE, kind::WRITABLE, Interest::Write),
        ] {
            let ready = (kept && bit == READABLE) || stream.ready(interest);
            if bits & bit != 0 && left > 0 && ready {
                push(k, fd as u32, 0);
                left -= 1;
            }
        }
        true
    });
    if out.is_empty() {
        let children = X::has_children(ctx);
        return if ctx.events.exhausted() && !children {
            None
        } else {
            Some(0)
        };
    }
    for (i, r) in out.iter().enumerate() {
        let at = at.wrapping_add((i * EventRecord::SIZE) as u32) as i32;
        if e.write(at, &r.encode()).is_err() {
            // The buffer left memory (it cannot shrink; a bug in the app's
            // registration, checked when made): deliver nothing.
            return Some(0);
        }
    }
    Some(out.len() as u32)
}

/// A socket's (TCP or UDP; or a fabric watch's, or an IPC) descriptor for
/// `interest`:
/// it must be one.
pub(crate) fn socket<H: Host, X>(e: &mut Env<'_, H, X>, fd: i32) -> WasiResult<()> {
    match e.ctx.fds.get(fd)? {
        Fd::Grant(_)
        | Fd::Listener { .. }
        | Fd::Conn { .. }
        | Fd::Watch(_)
        | Fd::Ipc(_)
        | Fd::Udp(_) => Ok(()),
        _ => Err(errno::NOTSOCK),
    }
}

pub(crate) fn interest<H: Host, X>(e: &mut Env<'_, H, X>, fd: i32, bits: i32) -> WasiResult<()> {
    let bits = bits as u32;
    if bits & !bits_of::ALL != 0 {
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

pub(crate) fn listen_or_connect<H: Host, X>(
    e: &mut Env<'_, H, X>,
    addr: i32,
    len: i32,
    out: i32,
    listen: bool,
) -> WasiResult<()> {
    let addr = addr_at(e, addr, len)?;
    let host = &e.ctx.host;
    let fd = if listen {
        Fd::Listener {
            listener: Box::new(host.bind(addr)?),
            nonblock: true,
        }
    } else {
        let conn = host.connect(addr)?;
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
pub(crate) fn spawn<H: Host, X: Procs<H>>(
    e: &mut Env<'_, H, X>,
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
    let limit = (limit > 0).then_some(usize::try_from(limit).unwrap_or(usize::MAX));
    let pid = X::spawn(e.ctx, &path, args, limit)?;
    e.write_u32(out, pid)
}

/// `processes`: up to `cap` records; the count at `out`.
pub(crate) fn processes<H: Host, X: Procs<H>>(
    e: &mut Env<'_, H, X>,
    buf: i32,
    cap: i32,
    out: i32,
) -> WasiResult<()> {
    let mut records = X::processes(e.ctx);
    records.truncate(cap.max(0) as usize);
    for (i, r) in records.iter().enumerate() {
        e.write(
            buf.wrapping_add((i * ProcessRecord::SIZE) as i32),
            &r.encode(),
        )?;
    }
    e.write_u32(out, records.len() as u32)
}

/// Defines the event ABI's functions on linker `$l` (closures over the
/// engine's caller `$C`, [`crate::bind`]), with the fabric's, IPC's and
/// UDP's: the whole `weft` module, written once for both engines.
macro_rules! define_events {
    ($l:ident, $C:ty, $T:ty) => {{
        use weft_control::app::{EventRecord, MODULE, errno, import};
        #[allow(unused_imports)]
        use $crate::bind::{Call as _, Procs, call};
        use $crate::events::*;
        $l.func_wrap(
            MODULE,
            import::EVENT_BUFFER,
            |mut c: $C, at: i32, cap: i32| {
                call(&mut c, |e| {
                    if cap <= 0 {
                        return Err(errno::INVAL);
                    }
                    e.bytes(at, cap.saturating_mul(EventRecord::SIZE as i32))?;
                    e.ctx.events.buffer = Some((at as u32, cap as u32));
                    Ok(())
                })
            },
        )?;
        $l.func_wrap(MODULE, import::INTEREST, |mut c: $C, fd: i32, bits: i32| {
            call(&mut c, |e| interest(e, fd, bits))
        })?;
        $l.func_wrap(
            MODULE,
            import::TIMER,
            |mut c: $C, token: i64, delay_ns: i64| {
                let ctx = c.ctx();
                let deadline = ctx
                    .host
                    .monotonic_ns()
                    .saturating_add(delay_ns.max(0) as u64);
                ctx.events.timers.push((deadline, token as u64));
                errno::SUCCESS
            },
        )?;
        $l.func_wrap(
            MODULE,
            import::TCP_LISTEN,
            |mut c: $C, addr: i32, len: i32, out: i32| {
                call(&mut c, |e| listen_or_connect(e, addr, len, out, true))
            },
        )?;
        $l.func_wrap(
            MODULE,
            import::TCP_CONNECT,
            |mut c: $C, addr: i32, len: i32, out: i32| {
                call(&mut c, |e| listen_or_connect(e, addr, len, out, false))
            },
        )?;
        $l.func_wrap(
            MODULE,
            import::SPAWN,
            |mut c: $C,
             path: i32,
             path_len: i32,
             argv: i32,
             argv_len: i32,
             limit: i64,
             out: i32| {
                call(&mut c, |e| {
                    spawn(e, (path, path_len), (argv, argv_len), limit, out)
                })
            },
        )?;
        $l.func_wrap(MODULE, import::KILL, |mut c: $C, pid: i32| {
            Procs::kill(c.ctx(), pid as u32)
        })?;
        $l.func_wrap(
            MODULE,
            import::PROCESSES,
            |mut c: $C, buf: i32, cap: i32, out: i32| call(&mut c, |e| processes(e, buf, cap, out)),
        )?;
        $l.func_wrap(MODULE, import::PID, |mut c: $C| c.ctx().pid as i32)?;
        $crate::fabric::define_fabric!($l, $C, $T);
        $crate::ipc::define_ipc!($l, $C, $T);
        $crate::udp::define_udp!($l, $C, $T);
    }};
}
#[cfg_attr(not(feature = "aot"), allow(unused_imports))]
pub(crate) use define_events;

/// Defines the `weft` module for the interpreter.
pub fn define<H: Host>(l: &mut Linker<Ctx<H>>) -> Result<(), wasmi::Error> {
    define_events!(l, wasmi::Caller<'_, Ctx<H>>, wasmi::Error);
    Ok(())
}
