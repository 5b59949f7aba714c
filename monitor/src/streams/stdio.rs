//! The programs' standard streams (PROTOCOL.md §8.1): output and error,
//! copied from their slots' `to_monitor` rings to `weft`'s own, in every
//! region; and input. The first program's (region 0's) is copied from
//! `weft`'s own into the stdin slot's `to_guest` ring by a thread of its own
//! (reading a terminal blocks), started only when the program first rings
//! the stdin slot, so a program that never reads leaves `weft`'s input
//! alone. A spawned process's input is at end-of-file from the start.

use super::bells::SlotWake;
use super::framed::RELAY_SPIN;
use super::region::Shared;
use super::vmm::Vmm;
use super::zero_copy;
use super::{RelayError, RelayStats, Rx, Tx, rings};
use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use vmm_sys_util::eventfd::EventFd;
use weft_control::streams::{RING_CAPACITY, slot};
use weft_data_pipe::{AsyncReader, Blocking, Consumer, NoNotify, Producer};

/// An output stream of the program (standard output or error).
pub struct Output {
    slot: u64,
    rx: Rx,
    wake: EventFd,
    stats: Arc<RelayStats>,
}

impl Output {
    pub fn new(
        shared: &Shared,
        slot: u64,
        wake: Arc<SlotWake>,
        stats: Arc<RelayStats>,
    ) -> Result<Self, RelayError> {
        let rx = Consumer::new(
            shared.region,
            rings(slot)?.to_monitor as usize,
            RING_CAPACITY as usize,
            shared.irq.clone(),
        )
        .map_err(|_| RelayError::Region)?;
        Ok(Self {
            slot,
            rx,
            wake: wake.data.try_clone().map_err(RelayError::Thread)?,
            stats,
        })
    }

    /// Copies the ring to `weft`'s standard output or error until the guest
    /// closes it. The host write is synchronous on the relay thread (tokio's
    /// stdout defers it to a blocking pool, which delayed output until
    /// shutdown): a slow terminal back-pressures the guest through the full
    /// ring. The bytes go from the ring to the descriptor (`writev`), not
    /// through `std`'s line-buffered stdout or a buffer of the relay.
    pub async fn copy(self, shared: Arc<Shared>) {
        let name = if self.slot == slot::STDOUT {
            "standard output"
        } else {
            "standard error"
        };
        let mut reader = match AsyncReader::new(self.rx, self.wake) {
            Ok(r) => r.spin_for(RELAY_SPIN),
            Err(e) => {
                eprintln!("weft: cannot serve the guest's {name}: {e}");
                return;
            }
        };
        let fd = if self.slot == slot::STDOUT { 1 } else { 2 };
        loop {
            let n = match zero_copy::ring_to_fd(fd, &mut reader, &shared.region).await {
                Ok(0) => return,
                Ok(n) => n,
                Err(e) if e.raw_os_error().is_some() => {
                    // A closed or failing host stream drops the output, as
                    // a closed pipe would; the guest is not held up.
                    let c = reader.consumer();
                    let n = c.peek().map(|c| c.len()).unwrap_or(0);
                    let _ = c.consume(n);
                    n
                }
                Err(e) => {
                    eprintln!("weft: the guest's {name} stream was closed: {e}");
                    return;
                }
            };
            self.stats.bytes_out.fetch_add(n as u64, Ordering::Relaxed);
        }
    }
}

/// Serves region 0's standard input from `weft`'s own: a [`StdinCopier`]
/// that the program's first space signal on the stdin slot starts. The
/// copier keeps `vmm`, and so the region's memory, for as long as it runs.
pub fn copy_input(vmm: &Arc<dyn Vmm>, shared: &Shared) -> Result<(), RelayError> {
    // The copier is a thread that sleeps in `read`: a blocking eventfd.
    let wake = shared.open_wakes(slot::STDIN, 0)?;
    let copier = StdinCopier::new(vmm, shared, &wake)?;
    shared.on_stdin_demand(move || {
        if let Err(e) = copier.start() {
            eprintln!("weft: {e}");
        }
    });
    Ok(())
}

/// A spawned process's standard input: at end-of-file at once (the
/// monitor's end of the stdin slot's `to_guest` ring is closed; no slot
/// task, no copier).
pub fn no_input(shared: &Shared) -> Result<(), RelayError> {
    let to_guest = rings(slot::STDIN)?.to_guest as usize;
    Producer::new(shared.region, to_guest, RING_CAPACITY as usize, NoNotify)
        .map_err(|_| RelayError::Region)?
        .close();
    Ok(())
}

/// Copies `weft`'s standard input into the stdin slot's `to_guest` ring,
/// closing it at end-of-file, on a thread started on demand. The thread is
/// never joined: when the guest stops it may be blocked reading a terminal,
/// and it ends with the process.
pub struct StdinCopier {
    /// Keeps region 0 mapped while the thread may write it.
    vmm: Arc<dyn Vmm>,
    tx: Tx,
    /// Blocking: the copier sleeps in `read` on it while the ring is full.
    wait: EventFd,
}

impl StdinCopier {
    fn new(vmm: &Arc<dyn Vmm>, shared: &Shared, wake: &SlotWake) -> Result<Self, RelayError> {
        let tx = Producer::new(
            shared.region,
            rings(slot::STDIN)?.to_guest as usize,
            RING_CAPACITY as usize,
            shared.irq.clone(),
        )
        .map_err(|_| RelayError::Region)?;
        Ok(Self {
            vmm: vmm.clone(),
            tx,
            wait: wake.space.try_clone().map_err(RelayError::Thread)?,
        })
    }

    fn start(self) -> Result<(), RelayError> {
        let Self { vmm, tx, wait } = self;
        std::thread::Builder::new()
            .name("weft-stdin".into())
            .spawn(move || {
                let _keep_mapped = vmm;
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
