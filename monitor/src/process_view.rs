//! The guest's processes as the monitor sees them without entering the
//! guest (PROTOCOL.md §14.6): the kernel's table from the process status
//! page, and the monitor's own figures (names, memory, streams).
//!
//! Entering the guest to ask costs milliseconds here (an interrupt, then
//! emulated ring 0 on both ends), and every fabric `ps` and `stats` would
//! pay it; reading the page costs a copy of 416 bytes. So a device's
//! processes are listed by reading, and the guest is entered only to act
//! (spawn, kill, collect).
//!
//! Invariants: the page is read under its sequence word and a copy is used
//! only if the word was even and unchanged around it, so a record is the
//! table at one instant of the kernel's; only the slots the page marks
//! occupied are read; figures are a slot's only while the book holds the
//! same pid there, so a record never shows another process's; an ended
//! process keeps its name and shows no memory and no streams.

use crate::catalog::Tier;
use crate::guest_memory::Ram;
use crate::streams::StreamCounts;
use std::sync::atomic::{Ordering, fence};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use vm_memory::{Bytes, GuestAddress};
use weft_control::process::{
    MAX_PROCESSES, NAME_LEN, ProcessRecord, SlotStatus, StatusPage, state,
};
use weft_control::system::SystemInfo;

/// How long a reader waits for the kernel to finish writing the page
/// before it says the table is busy.
const READ_LIMIT: Duration = Duration::from_millis(200);
/// Between two attempts at a whole copy.
const RETRY_EVERY: Duration = Duration::from_micros(50);

/// What the monitor itself holds for a slot's process.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Entry {
    /// 0: the slot holds nothing of the monitor's.
    pid: u32,
    memory: u64,
    name: [u8; NAME_LEN],
}

/// What a process runs: its identity (`catalog::identity_of_bytes`), and
/// for a Wasm module, its tier.
type Runs = (Arc<str>, Option<Tier>);

/// The monitor's figures of each slot, kept by the vCPU thread as it
/// builds, grows and ends processes, and read by whoever lists them; and a
/// signal for each end.
#[derive(Debug, Default)]
pub struct ProcessBook {
    slots: Mutex<[Entry; MAX_PROCESSES]>,
    /// What each slot's process runs.
    identities: Mutex<[Option<Runs>; MAX_PROCESSES]>,
    ended: Notify,
}

impl ProcessBook {
    /// Slot `slot` holds process `pid`, named `name`, with `memory` bytes.
    pub fn set(&self, slot: usize, pid: u32, memory: u64, name: [u8; NAME_LEN]) {
        if let Some(e) = self.lock().get_mut(slot) {
            *e = Entry { pid, memory, name };
        }
    }

    /// Slot `slot`'s process runs `identity`, a Wasm module in `tier`
    /// ([`Tier::Interp`] or [`Tier::Compiled`], PROTOCOL.md §13.8) or a
    /// native program (`None`).
    pub fn identify(&self, slot: usize, identity: Arc<str>, tier: Option<Tier>) {
        let mut ids = self.identities.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = ids.get_mut(slot) {
            *i = Some((identity, tier));
        }
    }

    /// The pid and identity of the process in slot `slot`, if one is there
    /// and has not ended.
    pub fn process(&self, slot: usize) -> Option<(u32, Arc<str>)> {
        let pid = self.pid(slot)?;
        let ids = self.identities.lock().unwrap_or_else(|e| e.into_inner());
        Some((pid, ids.get(slot)?.as_ref()?.0.clone()))
    }

    /// The tier of the Wasm module running process `pid` runs (`None`
    /// for a native program).
    pub fn tier_of(&self, pid: u32) -> Option<Tier> {
        let slot = (0..MAX_PROCESSES).find(|&slot| self.pid(slot) == Some(pid))?;
        let ids = self.identities.lock().unwrap_or_else(|e| e.into_inner());
        ids.get(slot)?.as_ref()?.1
    }

    /// The identity of running process `pid`.
    pub fn identity_of(&self, pid: u32) -> Option<Arc<str>> {
        (0..MAX_PROCESSES)
            .find(|&slot| self.pid(slot) == Some(pid))
            .and_then(|slot| self.process(slot))
            .map(|(_, identity)| identity)
    }

    /// The pid of the process in slot `slot`, if one is there and has not
    /// ended.
    pub fn pid(&self, slot: usize) -> Option<u32> {
        self.lock()
            .get(slot)
            .filter(|e| e.pid != 0 && e.memory != 0)
            .map(|e| e.pid)
    }

    /// Slot `slot`'s process ended: its memory went back (its name stays
    /// until another process takes the slot), and whoever waits in
    /// [`ProcessBook::ended`] wakes.
    pub fn end(&self, slot: usize) {
        if let Some(e) = self.lock().get_mut(slot) {
            e.memory = 0;
        }
        self.ended.notify_one();
    }

    /// Returns once a process has ended since the last return (at once if
    /// one did meanwhile).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: an end not taken stays for the next call.
    pub async fn ended(&self) {
        self.ended.notified().await;
    }

    fn lock(&self) -> MutexGuard<'_, [Entry; MAX_PROCESSES]> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The guest's TSC against the host's monotonic clock: where it stood at
/// one instant, and its rate.
#[derive(Clone, Copy, Debug)]
pub struct GuestClock {
    at: Instant,
    /// The guest TSC at `at`, in ns.
    guest_ns: u64,
    system: SystemInfo,
}

impl GuestClock {
    /// The guest TSC read `guest_tsc` at `at`; `system` has its rate.
    pub fn new(at: Instant, guest_tsc: u64, system: SystemInfo) -> Self {
        Self {
            at,
            guest_ns: system.ticks_to_ns(guest_tsc),
            system,
        }
    }

    /// The guest TSC now, in ns.
    fn now_ns(&self) -> u64 {
        let since = u64::try_from(self.at.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.guest_ns.saturating_add(since)
    }

    fn ns(&self, ticks: u64) -> u64 {
        self.system.ticks_to_ns(ticks)
    }
}

/// Why the processes could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ViewError {
    #[error("the process status page at {0:#x} cannot be read")]
    Unreadable(u64),
    #[error("the guest kernel kept its process status page busy for {0:?}")]
    Busy(Duration),
}

/// A running guest's processes, read from the host. Clones share it.
#[derive(Clone, Debug)]
pub struct ProcessView {
    ram: Ram,
    /// Guest-physical address of the status page.
    page: u64,
    clock: GuestClock,
    book: Arc<ProcessBook>,
    streams: StreamCounts,
}

impl ProcessView {
    pub fn new(
        ram: Ram,
        page: u64,
        clock: GuestClock,
        book: Arc<ProcessBook>,
        streams: StreamCounts,
    ) -> Self {
        Self {
            ram,
            page,
            clock,
            book,
            streams,
        }
    }

    /// The book the vCPU thread keeps.
    pub fn book(&self) -> &ProcessBook {
        &self.book
    }

    /// Every process's record, in slot order (the first program's first),
    /// as `process::list` gives them inside the guest.
    pub async fn records(&self) -> Result<Vec<ProcessRecord>, ViewError> {
        let page = self.read_page().await?;
        let now = self.clock.now_ns();
        let book = *self.book.lock();
        let occupied = (0..MAX_PROCESSES).filter(|s| page.occupied & (1 << s) != 0);
        Ok(occupied
            .map(|slot| {
                let s = &page.slots[slot];
                let running =
                    slot as u32 == page.current && page.idle == 0 && s.state == state::RUNNABLE;
                let since = if running {
                    now.saturating_sub(self.clock.ns(page.switched_in))
                } else {
                    0
                };
                self.record(slot, s, &book[slot], since)
            })
            .collect())
    }

    fn record(&self, slot: usize, s: &SlotStatus, e: &Entry, since_ns: u64) -> ProcessRecord {
        let mine = e.pid == s.pid && s.pid != 0;
        let live = mine && s.state != state::ENDED;
        ProcessRecord {
            pid: s.pid,
            parent: s.parent,
            state: s.state,
            status: s.status,
            cpu_ns: self.clock.ns(s.cpu_ticks).saturating_add(since_ns),
            memory: if mine { e.memory } else { 0 },
            streams: if live {
                self.streams.open(slot as u64)
            } else {
                0
            },
            name: if mine { e.name } else { [0; NAME_LEN] },
        }
    }

    /// A whole copy of the page (§14.6's sequence lock).
    async fn read_page(&self) -> Result<StatusPage, ViewError> {
        let start = Instant::now();
        let seq_at = GuestAddress(self.page);
        let unreadable = || ViewError::Unreadable(self.page);
        loop {
            let before: u64 = self
                .ram
                .load(seq_at, Ordering::Acquire)
                .map_err(|_| unreadable())?;
            if before & 1 == 0 {
                let mut raw = [0u8; StatusPage::SIZE];
                self.ram
                    .read_slice(&mut raw, seq_at)
                    .map_err(|_| unreadable())?;
                fence(Ordering::Acquire);
                let after: u64 = self
                    .ram
                    .load(seq_at, Ordering::Acquire)
                    .map_err(|_| unreadable())?;
                if after == before {
                    return Ok(StatusPage::decode(&raw));
                }
            }
            if start.elapsed() > READ_LIMIT {
                return Err(ViewError::Busy(READ_LIMIT));
            }
            tokio::time::sleep(RETRY_EVERY).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guest_memory;
    use weft_control::process::name_of;

    const PAGE: u64 = 0x3000;
    /// 1 GHz: a tick is a nanosecond.
    const HZ: u64 = 1_000_000_000;

    fn view(ram: &Ram, guest_tsc: u64) -> ProcessView {
        let system = SystemInfo {
            tsc_hz: HZ,
            ..SystemInfo::default()
        };
        ProcessView::new(
            ram.clone(),
            PAGE,
            GuestClock::new(Instant::now(), guest_tsc, system),
            Arc::new(ProcessBook::default()),
            StreamCounts::default(),
        )
    }

    fn slot(pid: u32, state: u32, cpu_ticks: u64) -> SlotStatus {
        SlotStatus {
            pid,
            parent: u32::from(pid > 1),
            state,
            status: if state == state::ENDED { 137 } else { 0 },
            cpu_ticks,
        }
    }

    fn page(seq: u64, current: u32, idle: bool) -> StatusPage {
        let mut slots = [SlotStatus::default(); MAX_PROCESSES];
        slots[0] = slot(1, state::BLOCKED, 500);
        slots[2] = slot(7, state::RUNNABLE, 1_000);
        slots[3] = slot(8, state::ENDED, 40);
        // Stale: slot 5 is not occupied.
        slots[5] = slot(99, state::RUNNABLE, 1);
        StatusPage {
            seq,
            occupied: 0b1101,
            current,
            switched_in: 10_000,
            idle: u32::from(idle),
            runnable: 1,
            slots,
            wake: 0,
            pending: 0,
            armed: 0,
        }
    }

    /// Guest RAM holding `page` at [`PAGE`], and a view of it whose guest
    /// TSC read `guest_tsc` just now.
    fn with_page(page: StatusPage, guest_tsc: u64) -> (Ram, ProcessView) {
        let ram = guest_memory::create(1 << 20).unwrap();
        ram.write_slice(&page.encode(), GuestAddress(PAGE)).unwrap();
        let v = view(&ram, guest_tsc);
        (ram, v)
    }

    fn records(v: &ProcessView) -> Result<Vec<ProcessRecord>, ViewError> {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
            .block_on(v.records())
    }

    #[test]
    fn occupied_slots_are_read_with_the_books_figures_for_the_same_pid_only() {
        let (_ram, v) = with_page(page(4, 0, true), 10_000);
        v.book().set(0, 1, 4096, name_of(b"device"));
        v.book().set(2, 6, 8192, name_of(b"gone-before"));
        v.book().set(3, 8, 12288, name_of(b"sleep"));
        v.book().end(3);
        let r = records(&v).unwrap();
        assert_eq!(r.iter().map(|r| r.pid).collect::<Vec<_>>(), [1, 7, 8]);
        assert_eq!(
            (r[0].name(), r[0].memory, r[0].cpu_ns),
            (&b"device"[..], 4096, 500)
        );
        // The book holds another pid in slot 2: no figures, never pid 6's.
        assert_eq!((r[1].name(), r[1].memory), (&b""[..], 0));
        // Ended: its name stays, no memory, its status.
        assert_eq!(
            (r[2].name(), r[2].memory, r[2].status),
            (&b"sleep"[..], 0, 137)
        );
        // Halted: no one's time runs on.
        assert_eq!(r[1].cpu_ns, 1_000);
    }

    #[test]
    fn the_running_process_has_run_since_its_switch_in() {
        // The guest TSC read 10_000 a moment ago; slot 2 was switched in
        // then.
        let (_ram, v) = with_page(page(2, 2, false), 10_000);
        std::thread::sleep(Duration::from_millis(2));
        let r = records(&v).unwrap();
        assert!(r[1].cpu_ns >= 1_000 + 2_000_000, "{:?}", r[1]);
        assert!(r[1].cpu_ns < 1_000 + 2_000_000_000, "{:?}", r[1]);
        // Not the current one: its ticks only.
        assert_eq!(r[0].cpu_ns, 500);
    }

    #[test]
    fn a_page_being_written_is_not_read() {
        let (ram, v) = with_page(page(3, 0, true), 0);
        let start = Instant::now();
        assert!(matches!(records(&v), Err(ViewError::Busy(_))));
        assert!(start.elapsed() >= READ_LIMIT);
        // Outside RAM: said so.
        let far = ProcessView {
            page: 1 << 40,
            ..view(&ram, 0)
        };
        assert!(matches!(records(&far), Err(ViewError::Unreadable(_))));
    }
}
