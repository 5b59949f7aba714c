//! Tests of the relay's pipe regions over a fake VMM (plain host memory, no
//! VM): the test plays the guest, writing rings and bell bits as a program
//! would.

use super::*;
use crate::host;
use std::ptr::NonNull;
use std::sync::atomic::Ordering::SeqCst;
use std::time::Instant;
use vm_memory::{GuestAddress, GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion};
use weft_control::control_pipe::{MAX_FRAME, Reply, Request};
use weft_control::frame::{self, Code};
use weft_control::streams::region_gpa;
use weft_control::streams::{PIPE_REGION_SIZE, RING_CAPACITY, bell, rings, slot};
use weft_data_pipe::{Error, Memory, NoNotify};

const CAPACITY: usize = RING_CAPACITY as usize;

/// The longest a test waits for the relay: a guard against hanging, not a
/// measurement.
const PATIENCE: Duration = Duration::from_secs(2 * DRAIN_LIMIT.as_secs());

/// Calls `f` until it returns a value.
fn eventually<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < PATIENCE, "the relay never {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// A VMM with every pipe region in one host mapping and no guest: what the
/// relay asks of it is counted.
struct FakeVmm {
    memory: GuestMemoryMmap<()>,
    doorbells_registered: AtomicU64,
}

impl FakeVmm {
    fn new() -> Arc<Self> {
        let len = (REGIONS * PIPE_REGION_SIZE) as usize;
        Arc::new(Self {
            memory: GuestMemoryMmap::from_ranges(&[(GuestAddress(region_gpa(0)), len)]).unwrap(),
            doorbells_registered: AtomicU64::new(0),
        })
    }
}

// SAFETY: every region is part of `memory`, one page-aligned private
// anonymous mapping owned by the fake, read and written by the test only
// through `RawRegion`s.
unsafe impl Vmm for FakeVmm {
    fn pipe_region(&self, index: u64) -> Option<NonNull<u8>> {
        let region = self.memory.iter().next()?;
        let offset = region.to_region_addr(GuestAddress(region_gpa(index)))?;
        NonNull::new(region.get_host_address(offset).ok()?)
    }
    fn map_spawn_regions(&self) -> Result<(), VmmError> {
        Ok(())
    }
    fn zero_pipe_region(&self, index: u64) -> std::io::Result<()> {
        let base = self
            .pipe_region(index)
            .ok_or(std::io::ErrorKind::InvalidInput)?;
        // SAFETY: the region is a page-aligned range of the fake's own
        // private anonymous mapping, reached by no reference.
        unsafe { host::discard_pages(base, PIPE_REGION_SIZE as usize) }
    }
    fn stream_interrupt(&self) -> Result<EventFd, VmmError> {
        Ok(EventFd::new(libc::EFD_NONBLOCK)?)
    }
    fn register_doorbell(&self, _: &EventFd) -> Result<(), VmmError> {
        self.doorbells_registered.fetch_add(1, SeqCst);
        Ok(())
    }
    fn pin_relay_thread(&self) {}
}

/// The test's side of one process's region: its ends of the control pipe.
struct Process {
    region: RawRegion,
    control_tx: Producer<RawRegion>,
    control_rx: Consumer<RawRegion>,
}

impl Process {
    fn attach(relay: &Relay, index: u64) -> Self {
        let region = relay.region(index).unwrap();
        let r = rings(slot::CONTROL).unwrap();
        Self {
            region,
            control_tx: Producer::new(region, r.to_monitor as usize, CAPACITY, NoNotify).unwrap(),
            control_rx: Consumer::new(region, r.to_guest as usize, CAPACITY, NoNotify).unwrap(),
        }
    }

    /// Sets `slot`'s pending bit for `reason` and rings the doorbell (§8.2).
    /// Not an atomic OR: a bit the relay takes meanwhile is set again, which
    /// only costs a spurious wake-up.
    fn signal(&self, relay: &Relay, slot: u64, reason: u64) {
        let (offset, mask) = bell::bit(slot, reason);
        let word = self.region.load_u64(offset as usize, SeqCst);
        self.region.store_u64(offset as usize, word | mask, SeqCst);
        relay.ring();
    }

    /// Sends a control request and returns the reply.
    fn control(&mut self, relay: &Relay, request: Request) -> Reply {
        let mut buf = [0u8; MAX_FRAME];
        let n = request.encode(&mut buf);
        assert_eq!(self.control_tx.write(&buf[..n]), Ok(n));
        self.signal(relay, slot::CONTROL, bell::DATA);
        let mut got = Vec::new();
        eventually("replied", || {
            let mut chunk = [0u8; MAX_FRAME];
            match self.control_rx.read(&mut chunk) {
                Ok(n) => got.extend_from_slice(&chunk[..n]),
                Err(Error::WouldBlock) => {}
                Err(e) => panic!("control pipe: {e}"),
            }
            let (header, body) = frame::split(&got).ok()?;
            Some(Reply::decode(header, body).unwrap())
        })
    }

    /// Opens a stream: its slot.
    fn open(&mut self, relay: &Relay, request: u32) -> u32 {
        match self.control(relay, Request::Open { request }) {
            Reply::Opened {
                request: r, slot, ..
            } if r == request => slot,
            other => panic!("OPEN answered with {other:?}"),
        }
    }
}

#[test]
fn regions_open_only_when_free_and_in_range() {
    let relay = Relay::start(FakeVmm::new(), Policy::default(), None).unwrap();
    assert!(!relay.region_free(0) && !relay.region_free(REGIONS));
    assert!((1..REGIONS).all(|i| relay.region_free(i)));
    assert_eq!(relay.open_streams(0), 4);
    assert_eq!(relay.open_streams(1), 0);
    for index in [0, REGIONS] {
        let e = relay.open_region(index).unwrap_err();
        assert!(
            matches!(e, RelayError::NoSuchRegion(i) if i == index),
            "{e}"
        );
    }
    relay.open_region(REGIONS - 1).unwrap();
    assert!(!relay.region_free(REGIONS - 1));
    let e = relay.open_region(REGIONS - 1).unwrap_err();
    assert!(matches!(e, RelayError::RegionBusy(_)), "{e}");
    // Closing a region that is not open does nothing.
    relay.close_region(2);
    relay.close_region(REGIONS);
    assert!(relay.region_free(2));
    // `finish` ends the spawned region too, and returns.
    relay.finish();
}

#[test]
fn a_spawned_region_serves_its_streams_and_is_zeroed_for_reuse() {
    let relay = Relay::start(FakeVmm::new(), Policy::default(), None).unwrap();
    relay.open_region(1).unwrap();
    // Control pipe, stdout and stderr; stdin is closed from the start.
    assert_eq!(relay.open_streams(1), 3);
    let mut p = Process::attach(&relay, 1);

    let to_guest = rings(slot::STDIN).unwrap().to_guest as usize;
    let mut stdin = Consumer::new(p.region, to_guest, CAPACITY, NoNotify).unwrap();
    assert_eq!(stdin.read(&mut [0u8; 8]), Ok(0), "stdin is at end-of-file");

    assert_eq!(p.open(&relay, 7), slot::FIRST_DYNAMIC as u32);
    assert_eq!(relay.open_streams(1), 4);
    let refused = p.control(
        &relay,
        Request::Close {
            request: 8,
            slot: 1,
        },
    );
    assert_eq!(
        refused,
        Reply::Refused {
            request: 8,
            code: Code::BadSlot
        }
    );

    // Standard output reaches `weft`'s (the test's) own.
    let line = b"relay test: a spawned process's standard output\n";
    let to_monitor = rings(slot::STDOUT).unwrap().to_monitor as usize;
    let mut stdout = Producer::new(p.region, to_monitor, CAPACITY, NoNotify).unwrap();
    assert_eq!(stdout.write(line), Ok(line.len()));
    p.signal(&relay, slot::STDOUT, bell::DATA);
    eventually("copied standard output", || {
        (stdout.writable_len() == Ok(CAPACITY)).then_some(())
    });

    // What the process leaves behind is gone when the region is reused.
    let tail = PIPE_REGION_SIZE as usize - 8;
    p.region.store_u64(tail, u64::MAX, SeqCst);
    // Ring ends close (write their headers) when dropped: before the region
    // is zeroed, and before the relay unmaps it at `finish`.
    drop((stdin, stdout, p));
    relay.close_region(1);
    assert_eq!(relay.open_streams(1), 0);
    eventually("freed the region", || relay.region_free(1).then_some(()));
    relay.open_region(1).unwrap();
    let mut p = Process::attach(&relay, 1);
    assert_eq!(p.region.load_u64(tail, SeqCst), 0);
    assert_eq!(p.open(&relay, 9), slot::FIRST_DYNAMIC as u32);
    drop(p);

    let stats = relay.finish();
    assert_eq!(stats.bytes_out.load(SeqCst), line.len() as u64);
    assert_eq!(stats.opened.load(SeqCst), 2);
}

#[test]
fn the_doorbell_becomes_an_ioeventfd_once_busy() {
    let vmm = FakeVmm::new();
    let relay = Relay::start(vmm.clone(), Policy::default(), None).unwrap();
    for _ in 1..UPGRADE_AFTER {
        relay.ring();
    }
    assert_eq!(vmm.doorbells_registered.load(SeqCst), 0);
    relay.ring();
    relay.ring();
    assert_eq!(vmm.doorbells_registered.load(SeqCst), 1);
    assert_eq!(relay.forwarded(), UPGRADE_AFTER + 1);
    relay.finish();
}
