//! The scheduler: runs every app in turn, one slice of fuel at a time, and
//! sleeps ([`Host::wait`]; in the guest the `wait` syscall) when every app
//! waits.
//!
//! Each round, in process-id order: an app with a call that can go on runs
//! one slice; an app suspended in a host call retries it; an idle event app
//! gets its due events. When a round moved nothing, the runtime waits for
//! any stream an app waits on, or the earliest deadline.
//!
//! The first app is the runtime's life: when it ends, the runtime exits
//! with its status and the others end with it.
//!
//! With a move stream ([`Moves`]), each round begins with the monitor's
//! orders, between two batches of every app: a capture is answered there
//! once the first app is idle, before it is given new events; a captured
//! app holds the runtime until it is released (the round goes on) or has
//! moved (the runtime exits with status 0). The runtime's sleep also wakes
//! for the next order, and when a capture's wait runs out.

use crate::app::{App, End, Run};
use crate::events;
use crate::host::{Host, Interest};
use crate::mover::{Moves, Next};
use crate::system::{State, System};
use alloc::rc::Rc;
use alloc::vec::Vec;
use weft_control::app::{FIRST_PID, KILLED_STATUS};

/// Runs `first` and what it spawns, following the orders of `moves` if
/// there is a move stream; returns the first app's status, or 0 when it
/// moved.
pub fn run<H: Host>(system: &Rc<System<H>>, first: App<H>, mut moves: Option<Moves<H>>) -> i32 {
    let mut apps = alloc::vec![first];
    system.table.borrow_mut().movable = moves.is_some();
    loop {
        if let Some(m) = moves.as_mut() {
            let go = system.table.borrow_mut().go.take();
            match m.between(&mut apps, go.as_deref()) {
                Next::Run => {}
                Next::WithoutMoves => {
                    moves = None;
                    system.table.borrow_mut().movable = false;
                }
                Next::Moved => return 0,
            }
        }
        let mut moved = false;
        let mut i = 0;
        while i < apps.len() {
            let app = &mut apps[i];
            let end = if app.runnable() {
                moved = true;
                app.step()
            } else if app.retry() {
                moved = true;
                None
            } else {
                match events::deliver(app) {
                    Some(delivered) => {
                        moved |= delivered;
                        None
                    }
                    None => Some(End::Exit(0)),
                }
            };
            note(system, app);
            if let Some(end) = end {
                // Its parent has an event now.
                moved = true;
                let app = apps.remove(i);
                if let Some(status) = ended(system, &mut apps, app, end) {
                    return status;
                }
                continue;
            }
            i += 1;
            let (spawned, killed) = {
                let mut t = system.table.borrow_mut();
                (
                    core::mem::take(&mut t.spawned),
                    core::mem::take(&mut t.killed),
                )
            };
            moved |= !spawned.is_empty() || !killed.is_empty();
            apps.extend(spawned);
            for pid in killed {
                if let Some(at) = apps.iter().position(|a| a.pid() == pid) {
                    let app = apps.remove(at);
                    if at < i {
                        i -= 1;
                    }
                    // The first app cannot be killed: `ended` returns `None`.
                    let _ = ended(system, &mut apps, app, End::Exit(KILLED_STATUS));
                }
            }
        }
        if !moved {
            sleep(system.host(), &mut apps, moves.as_mut());
        }
    }
}

/// Records what `app` is doing in the process table.
fn note<H: Host>(system: &System<H>, app: &App<H>) {
    let mut t = system.table.borrow_mut();
    if let Some(p) = t.procs.get_mut(&app.pid()) {
        p.state = if app.runnable() {
            State::Running
        } else {
            State::Waiting
        };
        p.cpu_ns = app.cpu_ns;
        p.memory = app.memory_bytes();
        p.sockets = app.store.data().fds.sockets() as u32;
    }
}

/// Ends `app`: reports a trap, tells its parent, closes its streams (by
/// dropping it). `Some(status)` if it was the first app.
fn ended<H: Host>(system: &System<H>, apps: &mut [App<H>], app: App<H>, end: End) -> Option<i32> {
    if let End::Trap(why) = &end {
        system.host().report(format_args!(
            "weft: {} (process {}): {why}",
            app.name,
            app.pid()
        ));
    }
    let status = end.status();
    let parent = system
        .table
        .borrow_mut()
        .procs
        .remove(&app.pid())
        .map_or(0, |p| p.parent);
    if let Some(p) = apps.iter_mut().find(|a| a.pid() == parent) {
        p.store.data_mut().events.exits.push((app.pid(), status));
    }
    let first = app.pid() == FIRST_PID;
    drop(app);
    first.then_some(status)
}

/// Waits until a stream some app waits on is ready, or the move stream has
/// an order, or the earliest deadline (a capture's included); while a
/// capture waits, also until a service or following UDP socket of the
/// first app not paused yet has something on its stream (the monitor's
/// `PAUSED`).
fn sleep<H: Host>(host: &H, apps: &mut [App<H>], moves: Option<&mut Moves<H>>) {
    let mut list: Vec<(&mut H::Stream, Interest)> = Vec::new();
    let mut deadline: Option<u64> = None;
    let mut earliest = |d: Option<u64>| {
        if let Some(d) = d {
            deadline = Some(deadline.map_or(d, |e| e.min(d)));
        }
    };
    let mut capturing = false;
    if let Some(m) = moves {
        capturing = m.capturing();
        let (stream, capture) = m.waits();
        earliest(capture);
        list.push((stream, Interest::Read));
    }
    for app in apps.iter_mut() {
        // A capture waits for the first app's services and following UDP
        // sockets to be paused. Only when it is idle: the round's start
        // just took what their streams held (kept for it), so they are
        // quiet until something comes.
        let pauses = capturing && app.pid() == FIRST_PID;
        let App { run, store, .. } = app;
        let ctx = store.data_mut();
        match run {
            Run::Blocked(_, _, wait) => {
                earliest(wait.deadline);
                ctx.fds.streams_for(&wait.fds, false, &mut list);
            }
            Run::Idle => {
                let (fds, timer) = ctx.events.wait();
                earliest(timer);
                ctx.fds.streams_for(&fds, pauses, &mut list);
            }
            _ => {}
        }
    }
    let timeout = deadline.map(|d| d.saturating_sub(host.monotonic_ns()));
    if timeout == Some(0) {
        return;
    }
    host.wait(&mut list, timeout);
}
