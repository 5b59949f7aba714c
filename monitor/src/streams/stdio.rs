//! The programs' standard streams (PROTOCOL.md §8.1): output and error,
//! copied from their slots' `to_monitor` rings to `weft`'s own (through the
//! queues of their writer threads, [`host_output`]), in every region; and
//! input. The first program's (region 0's) is copied from
//! `weft`'s own into the stdin slot's `to_guest` ring by a thread of its own
//! (reading a terminal blocks), started only when the program first rings
//! the stdin slot, so a program that never reads leaves `weft`'s input
//! alone. A spawned process's input is at end-of-file from the start.

use super::bells::SlotWake;
use super::framed::RELAY_SPIN;
use super::host_output;
use super::region::Shared;
use super::vmm::Vmm;
use super::{RelayError, RelayStats, Rx, Tx, rings};
use std::io::{self, Read};
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

    /// Copies the ring into the queue of `weft`'s standard output or error
    /// ([`host_output`]) until the guest closes it, then waits until the
    /// queue has written it all. The relay never writes the descriptor
    /// itself: it waits for room in the queue, leaving the guest's bytes in
    /// the ring meanwhile, so a slow reader back-pressures the guest
    /// through the full ring (this stream only), and one that does not read
    /// at all holds this task until the drain limit aborts it (§8.5).
    pub async fn copy(self) {
        let out = if self.slot == slot::STDOUT {
            host_output::stdout()
        } else {
            host_output::stderr()
        };
        let name = out.name();
        let mut reader = match AsyncReader::new(self.rx, self.wake) {
            Ok(r) => r.spin_for(RELAY_SPIN),
            Err(e) => {
                let text = format!("weft: cannot serve the guest's {name}: {e}\n");
                return host_output::stderr().notice(&text);
            }
        };
        loop {
            let moved = match reader.readable().await {
                Ok(0) => break,
                Ok(n) => match out.room(n).await {
                    Some(room) => {
                        let mut chunk = out.chunk();
                        let read = reader.consumer().read(&mut chunk[..room.bytes()]);
                        if let Ok(n) = read {
                            out.send_chunk(room, chunk, n);
                        }
                        read
                    }
                    // The writer never started: the output is dropped, as
                    // a closed descriptor's would be; the guest goes on.
                    None => reader.consumer().consume(n).map(|()| n),
                }
                .map_err(io::Error::from),
                Err(e) => Err(e),
            };
            match moved {
                Ok(n) => self.stats.bytes_out.fetch_add(n as u64, Ordering::Relaxed),
                Err(e) => {
                    let text = format!("weft: the guest's {name} stream was closed: {e}\n");
                    return host_output::stderr().notice(&text);
                }
            };
        }
        out.flushed().await;
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
            host_output::stderr().notice(&format!("weft: {e}\n"));
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
                            if let Err(e) = embedded_io::Write::write_all(&mut tx, &buf[..n]) {
                                // The guest corrupted the ring it reads
                                // (§7.7): say so; a close of its end is not.
                                if matches!(e, weft_data_pipe::Error::Corrupt) {
                                    host_output::stderr().notice(&format!(
                                        "weft: stream {} closed: protocol violation: to_guest ring: {}\n",
                                        slot::STDIN,
                                        e
                                    ));
                                }
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
