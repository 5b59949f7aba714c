//! The stream relay (PROTOCOL.md §8–§12): a thread running a tokio runtime
//! that serves every stream of the guest.
//!
//! Open from boot: the control pipe (slot 0, [`control`]), which opens and
//! closes the other slots, and the program's standard streams ([`stdio`]).
//! A slot the control pipe opens is served by one task: it reads the guest's
//! first frame and hands the stream to that protocol's module
//! ([`dispatch`]). Guest doorbells arrive as pending bits plus one doorbell
//! ([`bells`]); the relay raises the one stream interrupt only when the guest
//! sleeps on a ring.
//!
//! The doorbell starts as an MMIO exit the vCPU thread forwards
//! ([`Relay::ring`]); after [`UPGRADE_AFTER`] of them it becomes an
//! ioeventfd, so later doorbells complete in the host kernel. Measured here:
//! one registered ioeventfd adds ~13 ms to VM teardown (an SRCU grace
//! period), far more than the ~20 µs a forwarded doorbell costs a program
//! that prints a few lines.
//!
//! When the guest stops, its ends of every open stream are closed, as a host
//! process's descriptors are at its exit: what it wrote before is still
//! delivered (a file's last writes, a connection's last bytes), for up to
//! [`DRAIN_LIMIT`]; what a peer sends is dropped.
//!
//! Everything the guest writes is an allegation: a ring it corrupts or a
//! frame that breaks its protocol ends that stream with a status code; the
//! other streams and the VM go on.

mod bells;
mod control;
mod dispatch;
mod framed;
mod fs;
mod stdio;
mod tcp;
mod udp;
mod zero_copy;

use crate::guest_memory::{self, Ram};
use crate::vm::{self, VmError};
use bells::{BellPage, SlotWake};
use kvm_ioctls::VmFd;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;
use thiserror::Error;
use tokio::sync::watch;
use vmm_sys_util::eventfd::EventFd;
use weft_control::streams::{self, RING_CAPACITY, SLOTS, slot};
use weft_data_pipe::{Consumer, NoNotify, Notify, Producer, RawRegion};

/// Failures starting the relay.
#[derive(Debug, Error)]
pub enum RelayError {
    /// A KVM doorbell or interrupt could not be set up.
    #[error(transparent)]
    Vm(#[from] VmError),
    /// The pipe region is missing or misplaced (a bug).
    #[error("the pipe region is not mapped as the stream layout requires")]
    Region,
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

/// State every relay task shares.
pub struct Shared {
    /// The pipe region.
    pub region: RawRegion,
    /// The stream interrupt.
    pub irq: Arc<Interrupt>,
    /// The wake-up objects of each open slot, by slot.
    wakes: Mutex<Vec<Option<Arc<SlotWake>>>>,
    /// The stdin copier, until the program first asks for input.
    stdin: Mutex<Option<stdio::StdinCopier>>,
    /// What the guest may reach.
    pub policy: Policy,
    pub stats: Arc<RelayStats>,
    /// TCP connections accepted and announced, not yet taken (§11).
    pub pending: tcp::Pending,
    /// Becomes `true` once the guest has stopped.
    stopped: watch::Sender<bool>,
}

impl Shared {
    /// Gives `slot` fresh wake-up objects (eventfds with `flags`) and
    /// returns them.
    fn open_wakes(&self, slot: u64, flags: i32) -> std::io::Result<Arc<SlotWake>> {
        let w = Arc::new(SlotWake::new(flags)?);
        let mut wakes = self.wakes.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(entry) = wakes.get_mut(slot as usize) {
            *entry = Some(w.clone());
        }
        Ok(w)
    }

    /// Forgets `slot`'s wake-up objects.
    fn close_wakes(&self, slot: u64) {
        let mut wakes = self.wakes.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(entry) = wakes.get_mut(slot as usize) {
            *entry = None;
        }
    }

    /// Returns once the guest has stopped: nothing sent to it from then on
    /// can be read.
    pub async fn stopped(&self) {
        let mut stopped = self.stopped.subscribe();
        let _ = stopped.wait_for(|s| *s).await;
    }

    /// Slots open now (the control pipe's, the standard streams and those
    /// the control pipe opened).
    fn open_slots(&self) -> Vec<u64> {
        let wakes = self.wakes.lock().unwrap_or_else(|e| e.into_inner());
        (0..SLOTS)
            .filter(|&s| wakes[s as usize].is_some())
            .collect()
    }

    fn start_stdin(&self) {
        let copier = self.stdin.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(c) = copier
            && let Err(e) = c.start()
        {
            eprintln!("weft: {e}");
        }
    }
}

/// A running relay.
pub struct Relay {
    thread: JoinHandle<()>,
    shared: Arc<Shared>,
    /// The doorbell's eventfd, signalled by forwarded exits until upgraded.
    doorbell: EventFd,
    /// Doorbells forwarded by the vCPU thread so far.
    forwarded: u64,
}

fn rings(slot: u64) -> Result<streams::SlotRings, RelayError> {
    streams::rings(slot).ok_or(RelayError::Region)
}

impl Relay {
    /// Sets up the interrupt and the slots open from boot and starts the
    /// relay thread.
    pub fn start(ram: &Ram, vm_fd: &VmFd, policy: Policy) -> Result<Self, RelayError> {
        let (ptr, len) = guest_memory::pipe_region(ram).ok_or(RelayError::Region)?;
        // SAFETY: the pipe region is a live mapping owned by `ram`'s regions,
        // which the relay thread keeps alive (it holds a clone of `ram`) for as
        // long as it uses the region; the monitor touches its rings only
        // through `RawRegion`s and its bell page only through `BellPage`.
        // The guest may write anything there at any time: every value read
        // is treated as untrusted.
        let region = unsafe { RawRegion::new(ptr, len) }.map_err(|_| RelayError::Region)?;
        // SAFETY: as above; the bell page is the region's first
        // `bell::WORDS * 8` bytes, which no ring overlaps (`SLOTS_BASE`).
        let page = unsafe { BellPage::new(ptr) };
        let stats = Arc::new(RelayStats::default());
        let irq = Arc::new(Interrupt {
            fd: vm::stream_interrupt(vm_fd)?,
            stats: stats.clone(),
        });
        let shared = Arc::new(Shared {
            region,
            irq,
            wakes: Mutex::new(vec![None; SLOTS as usize]),
            stdin: Mutex::new(None),
            policy,
            stats,
            pending: tcp::Pending::default(),
            stopped: watch::Sender::new(false),
        });
        let wake = |slot| {
            shared
                .open_wakes(slot, libc::EFD_NONBLOCK)
                .map_err(RelayError::Thread)
        };
        let control = control::ControlPipe::new(wake(slot::CONTROL)?);
        let outputs = [slot::STDOUT, slot::STDERR]
            .into_iter()
            .map(|s| stdio::Output::new(&shared, s, wake(s)?))
            .collect::<Result<Vec<_>, _>>()?;
        // The stdin copier is a thread that sleeps in `read`.
        let stdin_wake = shared
            .open_wakes(slot::STDIN, 0)
            .map_err(RelayError::Thread)?;
        let copier = stdio::StdinCopier::new(ram, &shared, &stdin_wake)?;
        *shared.stdin.lock().unwrap_or_else(|e| e.into_inner()) = Some(copier);
        let doorbell = vm::eventfd()?;
        let bell = doorbell.try_clone().map_err(RelayError::Thread)?;
        let ram = ram.clone();
        let thread_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name("weft-relay".into())
            .spawn(move || {
                let _keep_mapped = ram;
                crate::affinity::pin(crate::affinity::Role::Relay);
                serve(bell, page, thread_shared, control, outputs);
            })
            .map_err(RelayError::Thread)?;
        Ok(Self {
            thread,
            shared,
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

    /// After the guest stopped: closes the guest's ends of every open stream
    /// (it can no longer use them), lets the relay deliver what is left (for
    /// at most [`DRAIN_LIMIT`]), waits for it and returns its figures.
    pub fn finish(self) -> Arc<RelayStats> {
        let region = self.shared.region;
        let capacity = RING_CAPACITY as usize;
        // Stdin stays as it is: waking its copier would read `weft`'s input.
        let open: Vec<u64> = self
            .shared
            .open_slots()
            .into_iter()
            .filter(|&s| s != slot::STDIN)
            .collect();
        for &s in &open {
            let Ok(r) = rings(s) else { continue };
            if let Ok(mut tx) = Producer::new(region, r.to_monitor as usize, capacity, NoNotify) {
                tx.close();
            }
            if let Ok(mut rx) = Consumer::new(region, r.to_guest as usize, capacity, NoNotify) {
                rx.close();
            }
        }
        self.shared.stopped.send_replace(true);
        for &s in &open {
            self.shared.wake(s, weft_control::streams::bell::DATA);
            self.shared.wake(s, weft_control::streams::bell::SPACE);
        }
        let _ = self.thread.join();
        self.shared.stats.clone()
    }
}

/// The relay thread: serves the doorbell, the control pipe and every stream
/// until the guest has stopped and its streams are delivered (or
/// [`DRAIN_LIMIT`] passed).
fn serve(
    doorbell: EventFd,
    page: BellPage,
    shared: Arc<Shared>,
    control: control::ControlPipe,
    outputs: Vec<stdio::Output>,
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
        tokio::spawn(bells::ring_bells(doorbell, page, shared.clone()));
        let control = tokio::spawn(control.serve(shared.clone()));
        let outputs: Vec<_> = outputs
            .into_iter()
            .map(|o| tokio::spawn(o.copy(shared.clone())))
            .collect();
        shared.stopped().await;
        let drain = async {
            for t in outputs {
                let _ = t.await;
            }
            // The control pipe ends once its ring is closed, handing back
            // the tasks of the streams still open.
            if let Ok(streams) = control.await {
                for t in streams {
                    let _ = t.await;
                }
            }
        };
        if tokio::time::timeout(DRAIN_LIMIT, drain).await.is_err() {
            eprintln!(
                "weft: streams still undelivered {}s after the guest stopped were dropped",
                DRAIN_LIMIT.as_secs()
            );
        }
    });
}
