//! The stream relay (PROTOCOL.md §8): a thread running a tokio runtime that
//! serves the guest's streams. Open from boot: the program's standard output
//! and error, each copied from its slot's `to_monitor` ring to `weft`'s own,
//! and its standard input, copied from `weft`'s own into the stdin slot's
//! `to_guest` ring by a thread of its own (reading a terminal blocks), started
//! only when the program first rings the stdin doorbell (§8.1), so a program
//! that never reads leaves `weft`'s input alone.
//!
//! The guest rings a slot's doorbell only when the relay sleeps on that ring;
//! the relay raises the stream interrupt (an irqfd) only when the guest sleeps
//! waiting for space.
//!
//! Doorbells start as MMIO exits that the vCPU thread forwards ([`Relay::ring`]);
//! a slot whose doorbell rings [`UPGRADE_AFTER`] times gets an ioeventfd, so
//! later rings complete in the host kernel. Measured here: one registered
//! ioeventfd adds ~13 ms to VM teardown (an SRCU grace period), far more than
//! the ~20 µs a forwarded doorbell costs a program that prints a few lines.
//! A ring the guest corrupts ends that stream with a message; the others and
//! the VM go on.

use crate::guest_memory::{self, Ram};
use crate::vm::{self, VmError};
use kvm_ioctls::VmFd;
use std::io::{Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use thiserror::Error;
use tokio::io::AsyncReadExt;
use vmm_sys_util::eventfd::EventFd;
use weft_control::streams::{self, RING_CAPACITY, slot};
use weft_data_pipe::{AsyncReader, Blocking, Consumer, Notify, Producer, RawRegion};

/// Failures starting the relay.
#[derive(Debug, Error)]
pub enum RelayError {
    /// A KVM doorbell or interrupt could not be set up.
    #[error(transparent)]
    Vm(#[from] VmError),
    /// The pipe region is missing or misplaced (a bug).
    #[error("the pipe region is not mapped as the stream layout requires")]
    Region,
    /// The relay thread could not be started.
    #[error("cannot start the stream relay: {0}")]
    Thread(std::io::Error),
}

/// Forwarded doorbells after which a slot's doorbell becomes an ioeventfd.
pub const UPGRADE_AFTER: u64 = 16;

/// Figures for `--stats`.
#[derive(Debug, Default)]
pub struct RelayStats {
    /// Bytes the guest wrote to its output streams.
    pub bytes_out: AtomicU64,
    /// Stream interrupts raised.
    pub interrupts: AtomicU64,
}

/// The stream interrupt, counted.
struct Interrupt {
    fd: EventFd,
    stats: Arc<RelayStats>,
}

impl Notify for Interrupt {
    fn notify(&self) {
        self.stats.interrupts.fetch_add(1, Ordering::Relaxed);
        self.fd.notify();
    }
}

/// A running relay.
pub struct Relay {
    thread: JoinHandle<()>,
    region: RawRegion,
    bells: Vec<SlotBell>,
    stats: Arc<RelayStats>,
    /// The stdin copier, until the program first asks for input.
    stdin: Option<StdinCopier>,
}

/// One open slot's doorbell as the vCPU thread sees it.
struct SlotBell {
    slot: u64,
    /// A duplicate of the eventfd the slot's task sleeps on.
    bell: EventFd,
    /// Doorbells forwarded by the vCPU thread so far.
    forwarded: u64,
}

/// The standard streams the guest writes.
const OUTPUTS: [u64; 2] = [slot::STDOUT, slot::STDERR];

fn ring_offset(slot: u64) -> Result<usize, RelayError> {
    rings(slot).map(|r| r.to_monitor as usize)
}

fn rings(slot: u64) -> Result<streams::SlotRings, RelayError> {
    streams::rings(slot).ok_or(RelayError::Region)
}

impl Relay {
    /// Registers the doorbells and the interrupt and starts the relay thread.
    pub fn start(ram: &Ram, vm_fd: &VmFd) -> Result<Self, RelayError> {
        let (ptr, len) = guest_memory::pipe_region(ram).ok_or(RelayError::Region)?;
        // SAFETY: the pipe region is a live mapping owned by `ram`'s regions,
        // which the relay thread keeps alive (it holds a clone of `ram`) for as
        // long as it uses the region; the monitor touches it only through
        // `RawRegion`s. The guest may write anything there at any time: the
        // ring code treats every value it reads as untrusted.
        let region = unsafe { RawRegion::new(ptr, len) }.map_err(|_| RelayError::Region)?;
        let stats = Arc::new(RelayStats::default());
        let irq = Arc::new(Interrupt {
            fd: vm::stream_interrupt(vm_fd)?,
            stats: stats.clone(),
        });
        let mut readers = Vec::new();
        let mut bells = Vec::new();
        for slot in OUTPUTS {
            let bell = vm::eventfd()?;
            bells.push(SlotBell {
                slot,
                bell: bell.try_clone().map_err(RelayError::Thread)?,
                forwarded: 0,
            });
            let rx = Consumer::new(
                region,
                ring_offset(slot)?,
                RING_CAPACITY as usize,
                irq.clone(),
            )
            .map_err(|_| RelayError::Region)?;
            readers.push((slot, rx, bell));
        }
        let (stdin, bell) = StdinCopier::new(ram, region, irq)?;
        bells.push(bell);
        let ram = ram.clone();
        let thread_stats = stats.clone();
        let thread = std::thread::Builder::new()
            .name("weft-relay".into())
            .spawn(move || {
                let _keep_mapped = ram;
                relay_outputs(readers, thread_stats);
            })
            .map_err(RelayError::Thread)?;
        Ok(Self {
            thread,
            region,
            bells,
            stats,
            stdin: Some(stdin),
        })
    }

    /// Forwards a doorbell the guest rang on `slot` (an MMIO exit), and
    /// upgrades the slot to an ioeventfd once it is busy. Returns whether the
    /// slot is an output stream.
    pub fn ring(&mut self, slot: u64, vm_fd: &VmFd) -> bool {
        let Some(out) = self.bells.iter_mut().find(|o| o.slot == slot) else {
            return false;
        };
        out.bell.notify();
        out.forwarded += 1;
        if slot == slot::STDIN
            && let Some(copier) = self.stdin.take()
            && let Err(e) = copier.start()
        {
            eprintln!("weft: {e}");
        }
        if out.forwarded == UPGRADE_AFTER
            && let Err(e) = vm::register_doorbell(vm_fd, slot, &out.bell)
        {
            eprintln!("weft: {e}; doorbells of stream slot {slot} keep exiting to the monitor");
        }
        true
    }

    /// Doorbells forwarded by the vCPU thread, all slots.
    pub fn forwarded(&self) -> u64 {
        self.bells.iter().map(|o| o.forwarded).sum()
    }

    /// After the guest stopped: closes the guest's ends of its output rings
    /// (it can no longer write them), lets the relay copy what is left, waits
    /// for it and returns its figures.
    pub fn finish(self) -> (u64, u64) {
        for out in self.bells.iter().filter(|b| OUTPUTS.contains(&b.slot)) {
            let tx = ring_offset(out.slot).ok().and_then(|offset| {
                Producer::new(self.region, offset, RING_CAPACITY as usize, &out.bell).ok()
            });
            if let Some(mut tx) = tx {
                tx.close();
            }
        }
        let _ = self.thread.join();
        (
            self.stats.bytes_out.load(Ordering::Relaxed),
            self.stats.interrupts.load(Ordering::Relaxed),
        )
    }
}

/// Copies `weft`'s standard input into the stdin slot's `to_guest` ring,
/// closing it at end-of-file, on a thread started on demand. The thread is
/// never joined: when the guest stops it may be blocked reading a terminal,
/// and it ends with the process.
struct StdinCopier {
    ram: Ram,
    tx: Producer<RawRegion, Arc<Interrupt>>,
    /// Blocking: the copier sleeps in `read` on it while the ring is full.
    wait: EventFd,
}

impl StdinCopier {
    fn new(
        ram: &Ram,
        region: RawRegion,
        irq: Arc<Interrupt>,
    ) -> Result<(Self, SlotBell), RelayError> {
        let slot = slot::STDIN;
        let bell = EventFd::new(0).map_err(RelayError::Thread)?;
        let wait = bell.try_clone().map_err(RelayError::Thread)?;
        let tx = Producer::new(
            region,
            rings(slot)?.to_guest as usize,
            RING_CAPACITY as usize,
            irq,
        )
        .map_err(|_| RelayError::Region)?;
        Ok((
            Self {
                ram: ram.clone(),
                tx,
                wait,
            },
            SlotBell {
                slot,
                bell,
                forwarded: 0,
            },
        ))
    }

    fn start(self) -> Result<(), RelayError> {
        let Self { ram, tx, wait } = self;
        std::thread::Builder::new()
            .name("weft-stdin".into())
            .spawn(move || {
                let _keep_mapped = ram;
                let mut tx = Blocking::new(tx, wait, 64);
                let mut buf = vec![0u8; RING_CAPACITY as usize];
                loop {
                    match std::io::stdin().lock().read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if embedded_io::Write::write_all(&mut tx, &buf[..n]).is_err() {
                                break;
                            }
                        }
                    }
                }
                tx.get_mut().close();
            })
            .map(drop)
            .map_err(RelayError::Thread)
    }
}

/// The relay thread: copies every output ring to its host stream, all
/// concurrently, until the guest's ends are closed.
fn relay_outputs(
    readers: Vec<(u64, Consumer<RawRegion, Arc<Interrupt>>, EventFd)>,
    stats: Arc<RelayStats>,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("weft: cannot start the stream relay runtime: {e}");
            return;
        }
    };
    runtime.block_on(async {
        let tasks: Vec<_> = readers
            .into_iter()
            .map(|(slot, rx, bell)| tokio::spawn(copy_output(slot, rx, bell, stats.clone())))
            .collect();
        for t in tasks {
            let _ = t.await;
        }
    });
}

/// Copies one output ring to `weft`'s standard output or error. The host
/// write is synchronous on the relay thread (tokio's stdout defers it to a
/// blocking pool, which delayed output until shutdown): a slow terminal
/// back-pressures the guest through the full ring.
async fn copy_output(
    slot: u64,
    rx: Consumer<RawRegion, Arc<Interrupt>>,
    bell: EventFd,
    stats: Arc<RelayStats>,
) {
    let name = if slot == slot::STDOUT {
        "standard output"
    } else {
        "standard error"
    };
    let mut reader = match AsyncReader::new(rx, bell) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("weft: cannot serve the guest's {name}: {e}");
            return;
        }
    };
    let mut buf = vec![0u8; RING_CAPACITY as usize];
    loop {
        let n = match reader.read(&mut buf).await {
            Ok(0) => return,
            Ok(n) => n,
            Err(e) => {
                eprintln!("weft: the guest's {name} stream was closed: {e}");
                return;
            }
        };
        stats.bytes_out.fetch_add(n as u64, Ordering::Relaxed);
        let written = if slot == slot::STDOUT {
            let mut out = std::io::stdout().lock();
            out.write_all(&buf[..n]).and_then(|()| out.flush())
        } else {
            std::io::stderr().lock().write_all(&buf[..n])
        };
        // A closed host stream drops the output, as a closed pipe would.
        let _ = written;
    }
}
