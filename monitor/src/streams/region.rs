//! One pipe region (PROTOCOL.md §8.1) as the relay serves it: what its
//! tasks share ([`Shared`]: its memory, its wake-up objects and its tasks),
//! and the table of the regions served ([`Regions`]). The protocols serve
//! streams in a region; this module knows none of them (its life from
//! opening to gone is driven by `serve`).
//!
//! Region 0 is the first program's, served from boot; region `i` ≥ 1 is
//! opened for the process spawned into process slot `i`. A region goes
//! through three stages:
//!
//! 1. **open**: its control pipe and standard streams are served, and the
//!    control pipe opens and closes more streams;
//! 2. **stopping**, once its process ended ([`Shared::stop`]): the guest's
//!    ends of its streams are closed and its tasks deliver what the rings
//!    still hold, for at most [`DRAIN_LIMIT`]; what is left then is aborted;
//! 3. **gone**: every task of the region has ended and dropped what it held,
//!    and the region leaves the table. Only then may its memory be zeroed
//!    and handed to a new process: no monitor code touches it any more.
//!
//! No bell is lost: a region's wake-up objects are made before its process
//! can ring (synchronously, when it opens), and its tasks check their rings
//! before they sleep.

use super::bells::{BellPage, SlotWake};
use super::{DRAIN_LIMIT, RegionIrq, RelayError};
use std::future::Future;
use std::pin::Pin;
use std::ptr::NonNull;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Instant;
use thiserror::Error;
use tokio::sync::watch;
use tokio::task::{AbortHandle, JoinHandle};
use weft_control::streams::{REGIONS, RING_CAPACITY, SLOTS, bell, rings, slot};
use weft_data_pipe::{Consumer, NoNotify, Notify, Producer, RawRegion};

/// Locks `m`, ignoring poisoning: what these locks guard (tables of handles
/// and wake-up objects) stays valid whatever a panicking holder did.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Why a stream slot could not be opened.
#[derive(Debug, Error)]
pub enum OpenError {
    /// The region's process has ended: a slot opened now would not be among
    /// those [`Shared::stop`] closed, and would wait for its process forever.
    #[error("its process has ended")]
    Stopping,
    /// Its wake-up eventfds could not be created.
    #[error("cannot create its wake-up eventfds: {0}")]
    Wake(#[from] std::io::Error),
}

/// Starts region 0's standard-input copier (see [`Shared::on_stdin_demand`]).
type StdinStart = Box<dyn FnOnce() + Send>;

/// What every task serving one region shares.
pub struct Shared {
    /// The region's index (its process slot).
    index: u64,
    /// The pipe region.
    pub region: RawRegion,
    /// Its bell page (the region's first bytes).
    bells: BellPage,
    /// The stream interrupt (one for the VM).
    pub irq: RegionIrq,
    /// The wake-up objects of each open slot, by slot.
    wakes: Mutex<Vec<Option<Arc<SlotWake>>>>,
    /// Starts region 0's stdin copier, until the program first asks for
    /// input.
    stdin: Mutex<Option<StdinStart>>,
    /// When the region's process ended; `None` while it runs.
    stopped: watch::Sender<Option<Instant>>,
    /// Every task serving the region.
    tasks: Tasks,
}

impl Shared {
    /// The region's index (its process slot).
    pub fn index(&self) -> u64 {
        self.index
    }

    /// Pipe region `index`, `len` bytes at `base`, with no slot open yet.
    ///
    /// # Safety
    ///
    /// `base` must be the page-aligned start of the region's `len` bytes,
    /// which must stay mapped for as long as the relay (the `Relay` and its
    /// thread, which copy the region freely) may use them, and the monitor
    /// must reach them only through the values made here: the rings through
    /// `RawRegion`s, the bell page through its `BellPage`.
    pub unsafe fn new(
        index: u64,
        (base, len): (NonNull<u8>, usize),
        irq: RegionIrq,
    ) -> Result<Arc<Self>, RelayError> {
        // SAFETY: the bytes are mapped for as long as any copy of the region
        // may be used and reached only through `RawRegion`s and the bell
        // page (this function's contract). The guest may write anything
        // there at any time: every value read is treated as untrusted.
        let region = unsafe { RawRegion::new(base, len) }.map_err(|_| RelayError::Region)?;
        // SAFETY: as above; the bell page is the region's first
        // `bell::WORDS * 8` bytes, 8-aligned (the region is page-aligned),
        // which no ring overlaps (`SLOTS_BASE`).
        let bells = unsafe { BellPage::new(base) };
        Ok(Arc::new(Self {
            index,
            region,
            bells,
            irq,
            wakes: Mutex::new(vec![None; SLOTS as usize]),
            stdin: Mutex::new(None),
            stopped: watch::Sender::new(None),
            tasks: Tasks::default(),
        }))
    }

    /// Gives `slot` fresh wake-up objects (eventfds with `flags`) and
    /// returns them; refused once the region is stopping.
    pub(super) fn open_wakes(&self, slot: u64, flags: i32) -> Result<Arc<SlotWake>, OpenError> {
        let w = Arc::new(SlotWake::new(flags)?);
        // Checked under the lock `stop` holds while it picks the slots to
        // close: a slot is either closed by `stop` or never opened.
        let mut wakes = lock(&self.wakes);
        if self.stopped.borrow().is_some() {
            return Err(OpenError::Stopping);
        }
        if let Some(entry) = wakes.get_mut(slot as usize) {
            *entry = Some(w.clone());
        }
        Ok(w)
    }

    /// Forgets `slot`'s wake-up objects.
    pub(super) fn close_wakes(&self, slot: u64) {
        if let Some(entry) = lock(&self.wakes).get_mut(slot as usize) {
            *entry = None;
        }
    }

    /// Wakes the task sleeping on `slot`'s end named by `reason`, if open.
    /// The first space signal on region 0's stdin slot starts its copier
    /// (§8.1).
    pub(super) fn wake(&self, slot: u64, reason: u64) {
        if slot == slot::STDIN && reason == bell::SPACE {
            self.start_stdin();
        }
        if let Some(Some(w)) = lock(&self.wakes).get(slot as usize) {
            if reason == bell::DATA {
                w.data.notify();
            } else {
                w.space.notify();
            }
        }
    }

    /// Takes the pending bits of the region's bell page (§8.2) and wakes
    /// each slot end they name.
    pub(super) fn answer_bells(&self) {
        self.bells
            .take_pending(|slot, reason| self.wake(slot, reason));
    }

    /// Calls `start` (once) when the program first signals the stdin slot
    /// with reason `space`: region 0's stdin copier starts on demand (§8.1).
    pub(super) fn on_stdin_demand(&self, start: impl FnOnce() + Send + 'static) {
        *lock(&self.stdin) = Some(Box::new(start));
    }

    fn start_stdin(&self) {
        let start = lock(&self.stdin).take();
        if let Some(start) = start {
            start();
        }
    }

    /// Returns once the region's process has ended (nothing sent to it from
    /// then on can be read), with when it ended.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only waits.
    pub async fn stopped(&self) -> Instant {
        let mut stopped = self.stopped.subscribe();
        let at = stopped
            .wait_for(Option::is_some)
            .await
            .ok()
            .and_then(|at| *at);
        // The sender lives in `self`, so `wait_for` only returns the value.
        at.unwrap_or_else(Instant::now)
    }

    /// The region's process has ended (§8.5): closes the guest's ends of
    /// every open slot (except stdin's: waking region 0's copier would read
    /// `weft`'s input), as a host process's descriptors are closed at its
    /// exit — its producer end (the monitor reads what is left, then
    /// end-of-stream) and its consumer end (what is sent from then on is
    /// dropped) — marks the region stopping and wakes those slots' tasks.
    /// Does nothing the second time.
    pub fn stop(&self) {
        let open: Vec<u64> = {
            let wakes = lock(&self.wakes);
            if self.stopped.borrow().is_some() {
                return;
            }
            let open: Vec<u64> = (0..SLOTS)
                .filter(|&s| s != slot::STDIN && wakes[s as usize].is_some())
                .collect();
            for &s in &open {
                close_guest_ends(self.region, s);
            }
            self.stopped.send_replace(Some(Instant::now()));
            open
        };
        for s in open {
            self.wake(s, bell::DATA);
            self.wake(s, bell::SPACE);
        }
    }

    /// Streams open now: the slots the region serves (its control pipe, its
    /// standard streams, the slots the control pipe opened), or 0 once its
    /// process ended. A spawned process's stdin is at end-of-file from the
    /// start, so it is not counted.
    pub fn open_streams(&self) -> u32 {
        let wakes = lock(&self.wakes);
        if self.stopped.borrow().is_some() {
            return 0;
        }
        wakes.iter().filter(|w| w.is_some()).count() as u32
    }

    /// Spawns `task` on the relay's runtime as one of the region's tasks:
    /// the region is gone only once it has ended (or was aborted).
    pub(super) fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) -> JoinHandle<()> {
        self.tasks.spawn(task)
    }

    /// Returns once the region's process has ended and every task of the
    /// region is gone: the tasks deliver what is left until [`DRAIN_LIMIT`]
    /// after the end, and the rest are aborted then.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only waits (an abort already made stays made).
    pub async fn drained(&self) {
        let ended = self.stopped().await;
        let deadline = tokio::time::Instant::from_std(ended + DRAIN_LIMIT);
        if tokio::time::timeout_at(deadline, self.tasks.gone())
            .await
            .is_err()
        {
            super::host_output::stderr().notice(&format!(
                "weft: streams of process slot {} still undelivered {}s after it ended were dropped\n",
                self.index,
                DRAIN_LIMIT.as_secs()
            ));
            self.tasks.abort();
            self.tasks.gone().await;
        }
    }
}

/// Closes the guest's ends of `slot`'s two rings.
fn close_guest_ends(region: RawRegion, slot: u64) {
    let Some(r) = rings(slot) else { return };
    let capacity = RING_CAPACITY as usize;
    if let Ok(mut tx) = Producer::new(region, r.to_monitor as usize, capacity, NoNotify) {
        tx.close();
    }
    if let Ok(mut rx) = Consumer::new(region, r.to_guest as usize, capacity, NoNotify) {
        rx.close();
    }
}

/// The tasks serving one region, to be waited for and aborted together.
struct Tasks {
    /// Every live task holds a receiver of this channel, dropped after the
    /// task's future (when it ends or is aborted): once none is left, no
    /// task of the region exists.
    live: watch::Sender<()>,
    /// To abort the tasks that outstay [`DRAIN_LIMIT`] (ended ones are
    /// pruned as tasks are added).
    aborts: Mutex<Vec<AbortHandle>>,
}

impl Default for Tasks {
    fn default() -> Self {
        Self {
            live: watch::Sender::new(()),
            aborts: Mutex::new(Vec::new()),
        }
    }
}

impl Tasks {
    fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) -> JoinHandle<()> {
        let handle = tokio::spawn(Tracked {
            task: Box::pin(task),
            _live: self.live.subscribe(),
        });
        let mut aborts = lock(&self.aborts);
        aborts.retain(|a| !a.is_finished());
        aborts.push(handle.abort_handle());
        handle
    }

    fn abort(&self) {
        for a in lock(&self.aborts).drain(..) {
            a.abort();
        }
    }

    /// Returns once every task has ended and dropped its future.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only waits.
    async fn gone(&self) {
        self.live.closed().await;
    }
}

/// A region task's future with its receiver of [`Tasks::live`]. Fields drop
/// in declaration order: the future, with everything it holds (a copy of the
/// region, a ring end whose `Drop` reads the ring), goes before the receiver
/// says the task is gone.
struct Tracked<F> {
    task: Pin<Box<F>>,
    _live: watch::Receiver<()>,
}

impl<F: Future<Output = ()>> Future for Tracked<F> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.task.as_mut().poll(cx)
    }
}

/// The regions the relay serves, by index. A region is in the table from
/// the moment it opens until every task of it is gone, so a region that is
/// not is touched by no monitor code.
pub struct Regions(Mutex<Vec<Option<Arc<Shared>>>>);

impl Default for Regions {
    fn default() -> Self {
        Self(Mutex::new(vec![None; REGIONS as usize]))
    }
}

impl Regions {
    /// Region `index`, if it is open or stopping.
    pub fn get(&self, index: u64) -> Option<Arc<Shared>> {
        lock(&self.0).get(index as usize)?.clone()
    }

    /// Adds `region` at its index, which must not be taken.
    pub fn insert(&self, region: Arc<Shared>) {
        if let Some(entry) = lock(&self.0).get_mut(region.index as usize) {
            *entry = Some(region);
        }
    }

    /// Takes `region` out of the table.
    pub fn remove(&self, region: &Arc<Shared>) {
        if let Some(entry) = lock(&self.0).get_mut(region.index as usize)
            && entry.as_ref().is_some_and(|r| Arc::ptr_eq(r, region))
        {
            *entry = None;
        }
    }

    /// Calls `f` on every region in the table, holding the table meanwhile.
    pub fn for_each(&self, mut f: impl FnMut(&Shared)) {
        for region in lock(&self.0).iter().flatten() {
            f(region);
        }
    }
}
