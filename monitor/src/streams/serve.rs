//! The relay thread: one tokio runtime on one thread, serving the doorbell
//! and every region handed to it, each from its start ([`Startup`]) until
//! it is gone, and ending once the relay is finished and every region gone.
//!
//! A region's start opens the slots every region serves from the start
//! (control pipe, standard output and error) synchronously, on the caller's
//! thread, so that bells rung before its tasks run are kept; its tasks then
//! start on the relay thread ([`Startup::serve`]).

use super::bells::SlotWake;
use super::control::ControlPipe;
use super::dispatch::Services;
use super::region::{Regions, Shared};
use super::stdio::Output;
use super::{RelayError, RelayStats};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::sync::mpsc;
use vmm_sys_util::eventfd::EventFd;
use weft_control::streams::slot;

/// A region about to be served: the wake-up objects of its control pipe and
/// standard output and error exist already (bells rung from now on are
/// kept), their tasks start on the relay thread ([`Startup::serve`]).
pub struct Startup {
    shared: Arc<Shared>,
    control: ControlPipe,
    outputs: Vec<Output>,
}

impl Startup {
    /// Opens the slots every region serves from its start: the control pipe,
    /// standard output and error. (Standard input is the caller's: region
    /// 0's is copied from `weft`'s, a spawned process's is at end-of-file.)
    pub fn new(shared: Arc<Shared>, services: Arc<Services>) -> Result<Self, RelayError> {
        let wake = |slot| -> Result<Arc<SlotWake>, RelayError> {
            Ok(shared.open_wakes(slot, libc::EFD_NONBLOCK)?)
        };
        let control = wake(slot::CONTROL)?;
        let outputs = [slot::STDOUT, slot::STDERR]
            .into_iter()
            .map(|s| Output::new(&shared, s, wake(s)?, services.stats.clone()))
            .collect::<Result<Vec<_>, RelayError>>()?;
        let control = ControlPipe::new(control, services);
        Ok(Self {
            shared,
            control,
            outputs,
        })
    }

    /// Serves the region until its process ends, lets its tasks deliver
    /// what is left (see [`Shared::drained`]), and once every task is gone
    /// takes the region out of `regions`.
    pub async fn serve(self, regions: Arc<Regions>) {
        let Self {
            shared,
            control,
            outputs,
        } = self;
        shared.spawn(control.serve(shared.clone()));
        for o in outputs {
            shared.spawn(o.copy());
        }
        shared.drained().await;
        regions.remove(&shared);
    }
}

/// The relay thread: serves the doorbell and every region handed to it
/// until `startups` is closed and every region is gone; with `bell_poll`,
/// also looks at every bell page that often (`Vmm::bell_poll`).
pub fn run(
    doorbell: EventFd,
    bell_poll: Option<Duration>,
    regions: Arc<Regions>,
    stats: Arc<RelayStats>,
    mut startups: mpsc::UnboundedReceiver<Startup>,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("weft: cannot start the stream relay runtime: {e}");
            return;
        }
    };
    runtime.block_on(async {
        tokio::spawn(ring_bells(doorbell, regions.clone(), stats));
        if let Some(period) = bell_poll {
            tokio::spawn(poll_bells(period, regions.clone()));
        }
        let mut served = tokio::task::JoinSet::new();
        while let Some(startup) = startups.recv().await {
            while served.try_join_next().is_some() {}
            served.spawn(startup.serve(regions.clone()));
        }
        while served.join_next().await.is_some() {}
    });
}

/// Answers every bell page every `period`, as if the doorbell had rung,
/// until the runtime stops.
async fn poll_bells(period: Duration, regions: Arc<Regions>) {
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        regions.for_each(Shared::answer_bells);
    }
}

/// Serves the doorbell until the runtime stops: every pending bit of every
/// region in `regions` wakes its slot's end.
async fn ring_bells(doorbell: EventFd, regions: Arc<Regions>, stats: Arc<RelayStats>) {
    // SAFETY: `EventFd` owns its descriptor (it closes it on drop) and
    // `as_raw_fd` always returns that same descriptor, which therefore stays
    // open and unchanged for as long as the `AsyncFd` owns the `EventFd`.
    let fd = match unsafe { AsyncFd::register_with_interest(doorbell, Interest::READABLE) } {
        Ok(fd) => fd,
        Err(e) => {
            super::host_output::stderr()
                .notice(&format!("weft: cannot serve the stream doorbell: {e}\n"));
            return;
        }
    };
    loop {
        let Ok(mut guard) = fd.readable().await else {
            return;
        };
        // Drain the counter (the number of doorbells since the last drain);
        // an empty counter clears the readiness.
        if let Ok(Ok(rung)) = guard.try_io(|f| f.get_ref().read()) {
            stats.doorbells.fetch_add(rung, Ordering::Relaxed);
        }
        regions.for_each(Shared::answer_bells);
    }
}
