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
//! ring.
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
//! Everything the guest writes is an allegation: a ring it corrupts or a
//! frame that breaks its protocol ends that stream with a status code; the
//! other streams and the VM go on.

mod bells;
mod control;
mod dispatch;
mod framed;
mod fs;
mod region;
mod stdio;
mod tcp;
mod udp;
mod zero_copy;

use crate::guest_memory::{self, MemoryError, Ram};
use crate::vm::{self, VmError};
use kvm_ioctls::VmFd;
use region::{Regions, Shared, Startup};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;
use thiserror::Error;
use tokio::sync::mpsc;
use vm_memory::GuestMemoryBackend;
use vmm_sys_util::eventfd::EventFd;
use weft_control::streams::{self, REGIONS};
use weft_data_pipe::{Consumer, Notify, Producer, RawRegion};

/// Failures starting the relay or opening a pipe region.
#[derive(Debug, Error)]
pub enum RelayError {
    /// A KVM doorbell, interrupt or memory slot could not be set up.
    #[error(transparent)]
    Vm(#[from] VmError),
    /// The memory of the spawned processes' pipe regions could not be mapped.
    #[error(transparent)]
    Memory(#[from] MemoryError),
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
    /// `--fs-root` does not name a usable directory.
    #[error("--fs-root {}: {source}", path.display())]
    FsRoot {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl RelayError {
    /// Whether the user's configuration, not the host, is at fault.
    pub fn is_usage_error(&self) -> bool {
        matches!(self, Self::FsRoot { .. })
    }
}

/// How long the relay goes on delivering what the guest's streams hold
/// after the guest stopped (a peer that does not read holds `weft` no
/// longer than this).
pub const DRAIN_LIMIT: Duration = Duration::from_secs(10);

/// Forwarded doorbells after which the doorbell becomes an ioeventfd.
pub const UPGRADE_AFTER: u64 = 16;

/// What the guest may reach (`--fs-root`, `--read-only`, `--listen`,
/// `--connect`): everything else is refused.
#[derive(Debug, Default)]
pub struct Policy {
    /// The directory the guest sees as `/`, opened once at start.
    pub fs_root: Option<std::fs::File>,
    /// File streams cannot modify `fs_root`.
    pub read_only: bool,
    /// Addresses the guest may listen on.
    pub listen: Vec<SocketAddr>,
    /// Addresses the guest may connect to.
    pub connect: Vec<SocketAddr>,
}

impl Policy {
    /// Opens `fs_root` (which must be a directory) and records the grants.
    pub fn new(
        fs_root: Option<&Path>,
        read_only: bool,
        listen: Vec<SocketAddr>,
        connect: Vec<SocketAddr>,
    ) -> Result<Self, RelayError> {
        let fs_root = fs_root
            .map(|path| {
                let fail = |source| RelayError::FsRoot {
                    path: path.to_path_buf(),
                    source,
                };
                let dir = std::fs::File::open(path).map_err(fail)?;
                if !dir.metadata().map_err(fail)?.is_dir() {
                    return Err(fail(std::io::Error::from(
                        std::io::ErrorKind::NotADirectory,
                    )));
                }
                Ok(dir)
            })
            .transpose()?;
        Ok(Self {
            fs_root,
            read_only,
            listen,
            connect,
        })
    }
}

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

/// The stream interrupt, counted.
pub struct Interrupt {
    fd: EventFd,
    stats: Arc<RelayStats>,
}

impl Notify for Interrupt {
    fn notify(&self) {
        self.stats.interrupts.fetch_add(1, Ordering::Relaxed);
        self.fd.notify();
    }
}

/// The monitor's end of a ring the guest reads.
pub type Tx = Producer<RawRegion, Arc<Interrupt>>;
/// The monitor's end of a ring the guest writes.
pub type Rx = Consumer<RawRegion, Arc<Interrupt>>;

/// What the pipe regions of one VM share.
#[derive(Clone)]
struct VmWide {
    /// The one stream interrupt.
    irq: Arc<Interrupt>,
    /// What the guest may reach.
    policy: Arc<Policy>,
    stats: Arc<RelayStats>,
}

/// A running relay.
pub struct Relay {
    thread: JoinHandle<()>,
    /// The regions served, shared with the relay thread.
    regions: Arc<Regions>,
    vm: VmWide,
    /// Hands each region opened to the relay thread. Dropping it (`finish`)
    /// tells the thread to end once every region is gone.
    startups: mpsc::UnboundedSender<Startup>,
    /// The memory of regions 1.., made by the first `open_region` (so that
    /// a `weft run` that spawns nothing does not pay for its memory slot,
    /// measured at ~0.5 ms). The relay thread holds this cell too and drops
    /// it only after its runtime, with every task, is gone; so it stays
    /// mapped for as long as the relay, or the guest (which runs only while
    /// the `Relay` lives), may use it.
    spawn_memory: Arc<OnceLock<Ram>>,
    /// The KVM memory slot of `spawn_memory`: the first after guest RAM's.
    spawn_slot: u32,
    /// The doorbell's eventfd, signalled by forwarded exits until upgraded.
    doorbell: EventFd,
    /// Doorbells forwarded by the vCPU thread so far.
    forwarded: u64,
}

fn rings(slot: u64) -> Result<streams::SlotRings, RelayError> {
    streams::rings(slot).ok_or(RelayError::Region)
}

impl Relay {
    /// Sets up the interrupt and region 0 (the first program's: its slots
    /// open from boot, stdin included) and starts the relay thread.
    pub fn start(ram: &Ram, vm_fd: &VmFd, policy: Policy) -> Result<Self, RelayError> {
        let stats = Arc::new(RelayStats::default());
        let vm = VmWide {
            irq: Arc::new(Interrupt {
                fd: vm::stream_interrupt(vm_fd)?,
                stats: stats.clone(),
            }),
            policy: Arc::new(policy),
            stats,
        };
        let host = guest_memory::pipe_region(ram, 0).ok_or(RelayError::Region)?;
        // SAFETY: region 0 is part of `ram`, which the relay thread holds
        // (below) until its runtime, with every task, is gone, and which
        // outlives the `Relay` (`run` keeps it to the end).
        let first = unsafe { Shared::new(0, host, &vm) }?;
        let startup = Startup::new(first.clone())?;
        stdio::copy_input(ram, &first)?;
        let regions = Arc::new(Regions::default());
        regions.insert(first);
        let (startups, queue) = mpsc::unbounded_channel();
        startups.send(startup).map_err(|_| RelayError::Stopped)?;
        let doorbell = vm::eventfd()?;
        let bell = doorbell.try_clone().map_err(RelayError::Thread)?;
        let spawn_memory = Arc::new(OnceLock::new());
        let keep_mapped = (ram.clone(), spawn_memory.clone());
        let (thread_regions, stats) = (regions.clone(), vm.stats.clone());
        let thread = std::thread::Builder::new()
            .name("weft-relay".into())
            .spawn(move || {
                let _keep_mapped = keep_mapped;
                crate::affinity::pin(crate::affinity::Role::Relay);
                serve(bell, thread_regions, stats, queue);
            })
            .map_err(RelayError::Thread)?;
        Ok(Self {
            thread,
            regions,
            vm,
            startups,
            spawn_memory,
            spawn_slot: ram.num_regions() as u32,
            doorbell,
            forwarded: 0,
        })
    }

    /// Forwards a doorbell the guest rang (an MMIO exit), and upgrades the
    /// doorbell to an ioeventfd once it is busy.
    pub fn ring(&mut self, vm_fd: &VmFd) {
        self.doorbell.notify();
        self.forwarded += 1;
        if self.forwarded == UPGRADE_AFTER
            && let Err(e) = vm::register_doorbell(vm_fd, &self.doorbell)
        {
            eprintln!("weft: {e}; stream doorbells keep exiting to the monitor");
        }
    }

    /// Doorbells forwarded by the vCPU thread.
    pub fn forwarded(&self) -> u64 {
        self.forwarded
    }

    /// Opens pipe region `index` (1..REGIONS) for a new process. On first
    /// use this creates the memory of regions 1..REGIONS (one anonymous
    /// `MAP_NORESERVE` mapping of (REGIONS-1)*PIPE_REGION_SIZE bytes at
    /// guest-physical `region_gpa(1)`) and registers it as one more KVM
    /// memory slot (measured: registering it at boot would add ~0.5 ms to
    /// every `weft run`, so it is created lazily). Then: region `index` is
    /// zeroed (`madvise` `MADV_DONTNEED` on its range, which also returns
    /// host memory), its control pipe, stdout and stderr are served
    /// (stdout/stderr copied to weft's own stdout/stderr exactly as region
    /// 0's are), and its stdin reads end-of-file at once (the monitor's
    /// producer end of the stdin slot's `to_guest` ring is closed; no copier
    /// thread). Errors if `index` is 0, out of range, or still open or
    /// draining.
    ///
    /// The region's wake-up objects exist when this returns, so the process
    /// may ring at once: its tasks find what it wrote when they start.
    pub fn open_region(&mut self, vm_fd: &VmFd, index: u64) -> Result<(), RelayError> {
        if !(1..REGIONS).contains(&index) {
            return Err(RelayError::NoSuchRegion(index));
        }
        if self.regions.get(index).is_some() {
            return Err(RelayError::RegionBusy(index));
        }
        let memory = self.spawn_memory(vm_fd)?;
        guest_memory::zero_pipe_region(memory, index)
            .map_err(|source| RelayError::Zero { index, source })?;
        let host = guest_memory::pipe_region(memory, index).ok_or(RelayError::Region)?;
        // SAFETY: region `index` lies in `spawn_memory`, which stays mapped
        // for as long as the relay may use it (see the field).
        let region = unsafe { Shared::new(index, host, &self.vm) }?;
        let startup = Startup::new(region.clone())?;
        stdio::no_input(&region)?;
        // Sent before the region is in the table: its tasks end (and take
        // it out) only after `close_region` found it there.
        self.startups
            .send(startup)
            .map_err(|_| RelayError::Stopped)?;
        self.regions.insert(region);
        Ok(())
    }

    /// The memory of regions 1.., made and registered as guest memory on
    /// first use.
    fn spawn_memory(&self, vm_fd: &VmFd) -> Result<&Ram, RelayError> {
        if let Some(memory) = self.spawn_memory.get() {
            return Ok(memory);
        }
        let memory = guest_memory::create_spawn_regions()?;
        // SAFETY: `memory` goes into `self.spawn_memory` below, which stays
        // mapped while the guest may run (see the field); if registering
        // fails, KVM holds no slot over it.
        unsafe { vm::map_memory(vm_fd, &memory, self.spawn_slot) }?;
        Ok(self.spawn_memory.get_or_init(|| memory))
    }

    /// The process of region `index` ended: close the guest's ends of its
    /// open streams (as `finish` does for every region), let the relay
    /// deliver what they still hold for at most [`DRAIN_LIMIT`] in the
    /// background (never blocking the caller), then mark the region free.
    /// A no-op for a region that is not open. (Region 0 may be closed too,
    /// when the first program ends before the others; it is never reopened.)
    pub fn close_region(&mut self, index: u64) {
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
        self.regions.get(index).map_or(0, |r| r.open_streams())
    }

    /// After the guest stopped: closes the guest's ends of every open
    /// region's streams (it can no longer use them), lets the relay deliver
    /// what is left (at most [`DRAIN_LIMIT`] in total: regions closed
    /// earlier drain until their own, earlier, limit), waits for it and
    /// returns its figures.
    pub fn finish(self) -> Arc<RelayStats> {
        self.regions.for_each(Shared::stop);
        let Self {
            thread,
            startups,
            vm,
            ..
        } = self;
        drop(startups);
        let _ = thread.join();
        vm.stats
    }

    /// A copy of region `index`'s memory handle, to play the guest in tests
    /// (it must not be used after the relay is finished).
    #[cfg(test)]
    fn region(&self, index: u64) -> Option<RawRegion> {
        self.regions.get(index).map(|r| r.region)
    }
}

/// The relay thread: serves the doorbell and every region handed to it
/// until `startups` is closed and every region is gone.
fn serve(
    doorbell: EventFd,
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
        tokio::spawn(bells::ring_bells(doorbell, regions.clone(), stats));
        let mut served = tokio::task::JoinSet::new();
        while let Some(startup) = startups.recv().await {
            while served.try_join_next().is_some() {}
            served.spawn(startup.serve(regions.clone()));
        }
        while served.join_next().await.is_some() {}
    });
}

#[cfg(test)]
mod tests;
