//! The stream relay (PROTOCOL.md §8–§12): a thread running a tokio runtime
//! that serves every stream of the guest, in every pipe region.
//!
//! Each process slot has its own pipe region ([`region`]): region 0, the
//! first program's, is served from boot; the others are opened for spawned
//! processes ([`Relay::open_region`]) and closed when they end
//! ([`Relay::close_region`]). In each region: the control pipe (slot 0,
//! [`control`]), which opens and closes the other slots, and the process's
//! standard streams ([`stdio`]). A slot the control pipe opens is served by
//! one task: it reads the guest's first frame and hands the stream to that
//! protocol's module ([`dispatch`]). Guest doorbells arrive as pending bits
//! in each region's bell page plus one doorbell for all ([`bells`]); the
//! relay raises the one stream interrupt only when the guest sleeps on a
//! ring. What a stream may reach is the [`Policy`]'s to say ([`policy`]).
//!
//! The doorbell starts as an MMIO exit the vCPU thread forwards
//! ([`Relay::ring`]); after [`UPGRADE_AFTER`] of them it becomes an
//! ioeventfd, so later doorbells complete in the host kernel. Measured here:
//! one registered ioeventfd adds ~13 ms to VM teardown (an SRCU grace
//! period), far more than the ~20 µs a forwarded doorbell costs a program
//! that prints a few lines.
//!
//! When a process ends (or the guest stops: every process), its ends of
//! every open stream are closed, as a host process's descriptors are at its
//! exit: what it wrote before is still delivered (a file's last writes, a
//! connection's last bytes), for up to [`DRAIN_LIMIT`]; what a peer sends is
//! dropped.
//!
//! A device guest's first program, its agent, may open one `DEVICE` stream
//! through which the host drives it ([`device_link`]; PROTOCOL.md §15).
//! Under a daemon, any process may open `FABRIC` streams: its fabric calls
//! and watches go to the daemon over the run's [`FabricLink`] (PROTOCOL.md
//! §17).
//!
//! Everything the guest writes is an allegation: a ring it corrupts or a
//! frame that breaks its protocol ends that stream with a status code; the
//! other streams and the VM go on.
//!
//! The relay reaches the VMM only through the [`Vmm`] trait (memory of the
//! pipe regions, the interrupt and doorbell eventfds, thread placement), so
//! it serves a guest under any VMM that implements it. Its methods take
//! `&self`: the run loop (which forwards doorbells) and the process host
//! (which opens and closes regions) share one relay.
//!
//! The guest's standard output and error reach `weft`'s own through a
//! writer thread per descriptor ([`host_output`]), never written by the
//! relay's thread: a reader of `weft`'s output that stalls stalls only those
//! streams, and never the relay, the vCPU or the stop.
//!
//! Module dependencies point one way: the relay (this module) and its
//! thread ([`serve`]) → the protocols (`control`, `dispatch`, `stdio`,
//! `fs`, `tcp`, `udp`, `device`, `fabric`, with `policy`) → one stream's framing (`framed`,
//! `zero_copy`) → the region (`region`) → its bells (`bells`); `stdio`,
//! `region` and the monitor's end of the run → `host_output`.

mod bells;
pub mod budget;
mod control;
mod device;
mod dispatch;
mod fabric;
mod framed;
mod fs;
pub(crate) mod host_output;
mod interrupt;
mod ipc;
mod mover;
mod outbox;
mod policy;
pub mod prebound;
mod region;
mod serve;
mod stdio;
mod tcp;
mod udp;
mod vmm;
mod zero_copy;

pub use device::{DeviceError, DeviceHandle, DeviceLink, Exit, SpawnImage, device_link};
pub use fabric::{
    FabricAsk, FabricCall, FabricEvent, FabricLink, FabricWatch, MAX_IN_FLIGHT, MAX_QUEUED,
};
pub use framed::Failure;
pub use fs::{Quota, QuotaFigures};
pub use interrupt::PARK_LIMIT;
pub use ipc::{
    Answer, Answerer, Delivery, Direct, Hold, INBOX, Inbox, IpcAsk, Outgoing, Route, WayBack,
};
pub use mover::{Begin, MoveAsk, MoveOrder, Uncaptured};
pub use policy::{Policy, PolicyError};
pub use udp::{Arrival, MARKER_ROOM, Peers, RemoteSocket, UdpBindAsk, UdpRoute, send as udp_send};
pub use vmm::{Vmm, VmmError};

use budget::Budgets;
use device::DeviceSlot;
use dispatch::Services;
use interrupt::{Interrupt, RegionIrq};
use region::{Regions, Shared};
use serve::Startup;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;
use thiserror::Error;
use tokio::sync::mpsc;
use vmm_sys_util::eventfd::EventFd;
use weft_control::process::StatusPage;
use weft_control::streams::{self, PIPE_REGION_SIZE, REGIONS};
use weft_data_pipe::{Consumer, Notify, Producer, RawRegion};

/// Failures starting the relay or opening a pipe region.
#[derive(Debug, Error)]
pub enum RelayError {
    /// The VMM could not set up the stream interrupt or the pipe regions'
    /// memory.
    #[error(transparent)]
    Vmm(VmmError),
    /// A pipe region is missing or misplaced (a bug).
    #[error("the pipe region is not mapped as the stream layout requires")]
    Region,
    /// `open_region` named region 0 or one past the last.
    #[error("pipe region {0} cannot be opened for a process (regions 1..{REGIONS} can)")]
    NoSuchRegion(u64),
    /// `open_region` named a region still open or still draining.
    #[error("pipe region {0} is still in use")]
    RegionBusy(u64),
    /// A pipe region could not be zeroed before reuse.
    #[error("cannot zero pipe region {index}: {source}")]
    Zero { index: u64, source: std::io::Error },
    /// A slot open from a region's start could not be opened.
    #[error("cannot open a standard stream slot: {0}")]
    Slot(#[from] region::OpenError),
    /// The relay thread has ended (it could not start its runtime).
    #[error("the stream relay has stopped")]
    Stopped,
    /// The relay thread or its eventfds could not be created.
    #[error("cannot start the stream relay: {0}")]
    Thread(std::io::Error),
}

/// How long the relay goes on delivering what the guest's streams hold
/// after the guest stopped (a peer that does not read holds `weft` no
/// longer than this).
pub const DRAIN_LIMIT: Duration = Duration::from_secs(10);

/// Forwarded doorbells after which the doorbell becomes an ioeventfd.
pub const UPGRADE_AFTER: u64 = 16;

/// Figures for `--stats`.
#[derive(Debug, Default)]
pub struct RelayStats {
    /// Bytes the guest wrote to its standard output and error.
    pub bytes_out: AtomicU64,
    /// Stream interrupts raised.
    pub interrupts: AtomicU64,
    /// Stream pairs the control pipe opened.
    pub opened: AtomicU64,
    /// Doorbells the guest rang (forwarded or through the ioeventfd).
    pub doorbells: AtomicU64,
}

/// The monitor's end of a ring the guest reads.
pub type Tx = Producer<RawRegion, RegionIrq>;
/// The monitor's end of a ring the guest writes.
pub type Rx = Consumer<RawRegion, RegionIrq>;

/// Streams open in region `index` of `regions`.
fn open_in(regions: &Regions, index: u64) -> u32 {
    regions.get(index).map_or(0, |r| r.open_streams())
}

/// The streams open in each region, readable from any thread while the
/// relay runs (all zero once it stopped; the default has no regions).
#[derive(Clone, Default)]
pub struct StreamCounts(Arc<Regions>);

impl StreamCounts {
    /// Streams open in region `index` now.
    pub fn open(&self, index: u64) -> u32 {
        open_in(&self.0, index)
    }
}

impl std::fmt::Debug for StreamCounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StreamCounts")
    }
}

/// A running relay.
pub struct Relay {
    thread: JoinHandle<()>,
    /// The regions served, shared with the relay thread.
    regions: Arc<Regions>,
    /// The VMM. The relay thread holds it too and drops it only after its
    /// runtime, with every task, is gone; so the pipe regions stay mapped
    /// for as long as the relay, or the guest (which runs only while the
    /// `Relay` lives), may use them.
    vmm: Arc<dyn Vmm>,
    /// The one stream interrupt.
    irq: Arc<Interrupt>,
    /// What the guest may reach.
    policy: Arc<Policy>,
    stats: Arc<RelayStats>,
    /// The guest's budgets, from the policy's limits.
    budgets: Arc<Budgets>,
    /// The daemon's end of the guest's fabric calls, for every region.
    fabric: Option<FabricLink>,
    /// Hands each region opened to the relay thread. Dropping it (`finish`)
    /// tells the thread to end once every region is gone.
    startups: mpsc::UnboundedSender<Startup>,
    /// Held while a region opens: two opens of one index cannot interleave.
    opening: Mutex<()>,
    /// The doorbell's eventfd, signalled by forwarded exits until upgraded.
    doorbell: EventFd,
    /// Doorbells forwarded by the vCPU thread so far.
    forwarded: AtomicU64,
}

fn rings(slot: u64) -> Result<streams::SlotRings, RelayError> {
    streams::rings(slot).ok_or(RelayError::Region)
}

impl Relay {
    /// Sets up the interrupt and region 0 (the first program's: its slots
    /// open from boot, stdin included) and starts the relay thread. The
    /// first program may take `device` with a `DEVICE` stream (§15); every
    /// process's `FABRIC` streams call the daemon over `fabric` (§17).
    pub fn start(
        vmm: Arc<dyn Vmm>,
        policy: Policy,
        device: Option<DeviceLink>,
        fabric: Option<FabricLink>,
    ) -> Result<Self, RelayError> {
        let stats = Arc::new(RelayStats::default());
        let irq = Arc::new(Interrupt::new(
            vmm.stream_interrupt().map_err(RelayError::Vmm)?,
            stats.clone(),
        ));
        let budgets = Arc::new(Budgets::new(policy.limits));
        let policy = Arc::new(policy);
        let base = vmm.pipe_region(0).ok_or(RelayError::Region)?;
        // SAFETY: region 0 is mapped for as long as `vmm` lives (`Vmm`'s
        // contract), which the relay thread holds (below) until its runtime,
        // with every task, is gone, and which outlives the `Relay`.
        let first = unsafe {
            Shared::new(
                0,
                (base, PIPE_REGION_SIZE as usize),
                RegionIrq::new(&irq, 0),
            )
        }?;
        let device = Arc::new(DeviceSlot::new(device));
        let startup = Startup::new(
            first.clone(),
            services(&policy, &stats, &budgets, &fabric, Some(device)),
        )?;
        stdio::copy_input(&vmm, &first)?;
        let regions = Arc::new(Regions::default());
        regions.insert(first);
        let (startups, queue) = mpsc::unbounded_channel();
        startups.send(startup).map_err(|_| RelayError::Stopped)?;
        let doorbell = EventFd::new(libc::EFD_NONBLOCK).map_err(RelayError::Thread)?;
        let bell = doorbell.try_clone().map_err(RelayError::Thread)?;
        let keep_mapped = vmm.clone();
        let (thread_regions, thread_stats) = (regions.clone(), stats.clone());
        let bell_poll = vmm.bell_poll();
        let thread = std::thread::Builder::new()
            .name("weft-relay".into())
            .spawn(move || {
                keep_mapped.pin_relay_thread();
                serve::run(bell, bell_poll, thread_regions, thread_stats, queue);
                drop(keep_mapped);
            })
            .map_err(RelayError::Thread)?;
        Ok(Self {
            thread,
            regions,
            vmm,
            irq,
            policy,
            stats,
            budgets,
            fabric,
            startups,
            opening: Mutex::new(()),
            doorbell,
            forwarded: AtomicU64::new(0),
        })
    }

    /// Tells the relay where the guest kernel's status page is (§14.6):
    /// from then on each stream interrupt names the slots it is for in its
    /// `wake` word (§8.3), and a program may park (§8.4). Until then
    /// (before boot placed the page, when the guest cannot run yet)
    /// interrupts name none.
    ///
    /// # Safety
    ///
    /// `page` must be guest memory, mapped for as long as the relay lives,
    /// whose `wake` word the monitor reaches only through the relay
    /// (atomically) from now on.
    pub unsafe fn set_status_page(&self, page: NonNull<StatusPage>) {
        // SAFETY: forwarded to the caller.
        unsafe { self.irq.set_status_page(page.as_ptr()) };
    }

    /// Holds the vCPU for the program that read the park page, while the
    /// status page allows it and until its streams would wake it (§8.4);
    /// what the read returns.
    pub fn park(&self, due_in: impl FnOnce(u64) -> Option<Duration>) -> u32 {
        self.irq.park(due_in)
    }

    /// Forwards a doorbell the guest rang (an exit the VMM saw), and
    /// upgrades the doorbell to an ioeventfd once it is busy.
    pub fn ring(&self) {
        self.doorbell.notify();
        let forwarded = self.forwarded.fetch_add(1, Ordering::Relaxed) + 1;
        if forwarded == UPGRADE_AFTER
            && let Err(e) = self.vmm.register_doorbell(&self.doorbell)
        {
            host_output::stderr().notice(&format!(
                "weft: {e}; stream doorbells keep exiting to the monitor\n"
            ));
        }
    }

    /// Doorbells forwarded by the vCPU thread.
    pub fn forwarded(&self) -> u64 {
        self.forwarded.load(Ordering::Relaxed)
    }

    /// Opens pipe region `index` (1..REGIONS) for a new process. On first
    /// use the VMM makes the memory of regions 1..REGIONS guest memory
    /// ([`Vmm::map_spawn_regions`]). Then: region `index` is zeroed, its
    /// control pipe, stdout and stderr are served (stdout/stderr copied to
    /// weft's own stdout/stderr exactly as region 0's are), and its stdin
    /// reads end-of-file at once (the monitor's producer end of the stdin
    /// slot's `to_guest` ring is closed; no copier thread). Errors if
    /// `index` is 0, out of range, or still open or draining.
    ///
    /// The region's wake-up objects exist when this returns, so the process
    /// may ring at once: its tasks find what it wrote when they start.
    pub fn open_region(&self, index: u64) -> Result<(), RelayError> {
        if !(1..REGIONS).contains(&index) {
            return Err(RelayError::NoSuchRegion(index));
        }
        let _opening = self.opening.lock().unwrap_or_else(|e| e.into_inner());
        if self.regions.get(index).is_some() {
            return Err(RelayError::RegionBusy(index));
        }
        self.vmm.map_spawn_regions().map_err(RelayError::Vmm)?;
        self.vmm
            .zero_pipe_region(index)
            .map_err(|source| RelayError::Zero { index, source })?;
        let base = self.vmm.pipe_region(index).ok_or(RelayError::Region)?;
        // SAFETY: region `index` is mapped for as long as `self.vmm` lives
        // (`Vmm`'s contract; see the field).
        let region = unsafe {
            Shared::new(
                index,
                (base, PIPE_REGION_SIZE as usize),
                RegionIrq::new(&self.irq, index),
            )
        }?;
        let startup = Startup::new(
            region.clone(),
            services(&self.policy, &self.stats, &self.budgets, &self.fabric, None),
        )?;
        stdio::no_input(&region)?;
        // Sent before the region is in the table: its tasks end (and take
        // it out) only after `close_region` found it there.
        self.startups
            .send(startup)
            .map_err(|_| RelayError::Stopped)?;
        self.regions.insert(region);
        Ok(())
    }

    /// The process of region `index` ended: close the guest's ends of its
    /// open streams (as `finish` does for every region), let the relay
    /// deliver what they still hold for at most [`DRAIN_LIMIT`] in the
    /// background (never blocking the caller), then mark the region free.
    /// A no-op for a region that is not open. (Region 0 may be closed too,
    /// when the first program ends before the others; it is never reopened.)
    pub fn close_region(&self, index: u64) {
        if let Some(region) = self.regions.get(index) {
            region.stop();
        }
    }

    /// Whether `open_region(index)` would succeed now (not open, not
    /// draining).
    pub fn region_free(&self, index: u64) -> bool {
        (1..REGIONS).contains(&index) && self.regions.get(index).is_none()
    }

    /// Streams open in region `index` now (control pipe and standard
    /// streams included; 0 for a region that is not open, or whose process
    /// ended).
    pub fn open_streams(&self, index: u64) -> u32 {
        open_in(&self.regions, index)
    }

    /// The counts [`Relay::open_streams`] gives, for other threads.
    pub fn stream_counts(&self) -> StreamCounts {
        StreamCounts(self.regions.clone())
    }

    /// After the guest stopped: closes the guest's ends of every open
    /// region's streams (it can no longer use them), lets the relay deliver
    /// what is left (at most [`DRAIN_LIMIT`] in total: regions closed
    /// earlier drain until their own, earlier, limit), waits for it and
    /// returns its figures.
    /// The guest's budgets (their figures stay readable after `finish`).
    pub fn budgets(&self) -> Arc<Budgets> {
        self.budgets.clone()
    }

    /// The file-system quota's figures, if the guest has one (§10.4).
    pub fn fs_quota(&self) -> Option<QuotaFigures> {
        self.policy.fs_quota.as_ref().map(Quota::figures)
    }

    pub fn finish(self) -> Arc<RelayStats> {
        self.regions.for_each(Shared::stop);
        let Self {
            thread,
            startups,
            stats,
            ..
        } = self;
        drop(startups);
        let _ = thread.join();
        stats
    }

    /// A copy of region `index`'s memory handle, to play the guest in tests
    /// (it must not be used after the relay is finished).
    #[cfg(test)]
    fn region(&self, index: u64) -> Option<RawRegion> {
        self.regions.get(index).map(|r| r.region)
    }
}

/// The services of a region's streams: the VM's policy and figures, a new
/// TCP backlog, the fabric link, and for the first program's region the
/// device link.
fn services(
    policy: &Arc<Policy>,
    stats: &Arc<RelayStats>,
    budgets: &Arc<Budgets>,
    fabric: &Option<FabricLink>,
    device: Option<Arc<DeviceSlot>>,
) -> Arc<Services> {
    Arc::new(Services {
        policy: policy.clone(),
        stats: stats.clone(),
        budgets: budgets.clone(),
        pending: tcp::Pending::default(),
        device,
        fabric: fabric.clone(),
    })
}

#[cfg(test)]
mod tests;
