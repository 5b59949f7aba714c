//! The stream interrupt (PROTOCOL.md §8.3) and the park (§8.4): the two
//! ways the relay wakes a program that waits for its streams.
//!
//! A program alone in its guest that waits reads the park page instead of
//! sleeping in the kernel; the read exits to the vCPU thread, which holds
//! the vCPU ([`Interrupt::park`]) until the relay would raise the stream
//! interrupt. A raise for the parked program's slot ends the hold instead
//! (the read returns `WOKEN`), so neither the kernel nor the interrupt
//! runs: ring 0 is emulated on the machines Weft targets, and a sleep in
//! the kernel and its wake-up cost ~230 emulated instructions. A raise for
//! another slot is raised as usual and ends the hold too (`NOT_PARKED`):
//! the program resumes and takes the interrupt.
//!
//! Invariant (no lost wake-up): the vCPU is held only while the status
//! page (read under the hold's lock, with the vCPU stopped, so the kernel
//! cannot be writing it) says the program is the only runnable process,
//! with no wake bit set, no wake pending for its slot and no timer armed
//! to fire within [`park::TIMER_CLEARANCE_NS`]; and every raise takes that
//! lock before it names a slot in the wake word or signals the interrupt.
//! A hold also ends after [`PARK_LIMIT`], so the run loop sees a stop
//! request and a long wait sleeps in the kernel, and half the clearance
//! before an armed timer is due, so the kernel takes its interrupt in time
//! (a sleeping process's timer would otherwise keep every other process of
//! the guest from parking).
//!
//! A hold first polls for [`PARK_SPIN`], giving the host CPU away at every
//! poll (`sched_yield`) to whichever thread wants it, then sleeps: a wake-up
//! within the poll costs no thread wake-up (measured: 7 µs from the raise
//! to the vCPU running again, against 27-43 µs through the sleep). On a
//! 2-CPU host this took the cross-device IPC round trip from ~870 µs to
//! ~630-700 µs; the price is host CPU time nobody else wanted. A poll
//! that gets the CPU back late ([`CONTENDED`]: another thread ran in its
//! yield) ends the polling at once: the host is busy, and the threads that
//! carry the wake-up (the relay's, the fabric's) need the CPU more than the
//! poll does (measured on a 2-CPU AMD host, two daemons: the cross-device
//! IPC round trip went from 485-502 µs polling the whole 1.5 ms to 434-448
//! µs).

use super::RelayStats;
use std::ptr::{addr_of, addr_of_mut, read_volatile};
use std::sync::atomic::{AtomicPtr, AtomicU32, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use vmm_sys_util::eventfd::EventFd;
use weft_control::process::StatusPage;
use weft_control::streams::park;
use weft_data_pipe::Notify;

/// How long a hold polls (giving the CPU to any other thread that wants
/// it) before it sleeps.
const PARK_SPIN: Duration = Duration::from_micros(1500);
/// A yield that takes longer than this gave the CPU to another thread.
const CONTENDED: Duration = Duration::from_micros(30);
/// The longest one hold of the vCPU lasts.
pub const PARK_LIMIT: Duration = Duration::from_millis(20);
/// [`park::TIMER_CLEARANCE_NS`].
const TIMER_CLEARANCE: Duration = Duration::from_nanos(park::TIMER_CLEARANCE_NS);

/// The stream interrupt, counted, the guest's status page and the park.
pub struct Interrupt {
    fd: EventFd,
    stats: Arc<RelayStats>,
    /// The status page in host memory; null until the boot placed it
    /// ([`Interrupt::set_status_page`]).
    page: AtomicPtr<StatusPage>,
    /// The slot whose program holds the vCPU, if one does.
    held: Mutex<Hold>,
    released: Condvar,
}

/// A hold of the vCPU.
#[derive(Default)]
struct Hold {
    /// The slot of the program held, while it is.
    slot: Option<u32>,
    /// A raise for that slot ended the hold.
    woken: bool,
    /// The holder sleeps on the condition variable (it no longer polls):
    /// only then does a raise signal it.
    sleeping: bool,
}

impl Interrupt {
    pub fn new(fd: EventFd, stats: Arc<RelayStats>) -> Self {
        Self {
            fd,
            stats,
            page: AtomicPtr::new(std::ptr::null_mut()),
            held: Mutex::default(),
            released: Condvar::new(),
        }
    }

    /// Where the guest kernel's status page is (§14.6).
    ///
    /// # Safety
    ///
    /// `page` must be guest memory mapped for as long as `self` lives; the
    /// monitor writes only its `wake` word, atomically, and only here.
    pub unsafe fn set_status_page(&self, page: *mut StatusPage) {
        self.page.store(page, Ordering::Release);
    }

    fn hold(&self) -> MutexGuard<'_, Hold> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Wakes the programs of the slots of `bits`: ends the hold if it is
    /// that slot's alone; otherwise names them in the wake word, raises the
    /// interrupt (the kernel wakes those slots only), and ends any hold.
    fn raise(&self, bits: u32) {
        let mut hold = self.hold();
        if let Some(slot) = hold.slot
            && 1u32.checked_shl(slot) == Some(bits)
        {
            hold.slot = None;
            hold.woken = true;
            self.release(hold);
            return;
        }
        let page = self.page.load(Ordering::Acquire);
        if !page.is_null() {
            // SAFETY: `set_status_page`'s contract; `wake` is a 4-aligned
            // word (`StatusPage` is `repr(C)`) that the monitor and the
            // guest reach only atomically.
            unsafe { AtomicU32::from_ptr(addr_of_mut!((*page).wake)) }
                .fetch_or(bits, Ordering::SeqCst);
        }
        self.stats.interrupts.fetch_add(1, Ordering::Relaxed);
        self.fd.notify();
        if hold.slot.take().is_some() {
            self.release(hold);
        }
    }

    /// Lets the holder go, its hold just ended: a polling holder sees it
    /// at its next poll; one asleep is signalled, after the lock is let go
    /// (it takes the lock first thing). A signal is a system call, and a
    /// poller waiting for the lock would wait for it too.
    fn release(&self, hold: MutexGuard<'_, Hold>) {
        let sleeping = hold.sleeping;
        drop(hold);
        if sleeping {
            self.released.notify_one();
        }
    }

    /// Holds the calling thread (the vCPU's, stopped in a program's read
    /// of the park page) until a raise or [`PARK_LIMIT`], if the status
    /// page allows it; returns what the read returns (`park::WOKEN` or
    /// `park::NOT_PARKED`). `due_in` tells how long until the guest TSC
    /// reads a given value (`None`: unknown), for an armed timer.
    pub fn park(&self, due_in: impl FnOnce(u64) -> Option<Duration>) -> u32 {
        let page = self.page.load(Ordering::Acquire);
        if page.is_null() {
            return park::NOT_PARKED;
        }
        // SAFETY: `set_status_page`'s contract; the vCPU is stopped, so
        // the kernel (the only writer of `armed`) is not writing it.
        let armed = unsafe { read_volatile(addr_of!((*page).armed)) };
        let limit = match armed {
            0 => PARK_LIMIT,
            due => match due_in(due) {
                Some(left) if left > TIMER_CLEARANCE => {
                    (left - TIMER_CLEARANCE / 2).min(PARK_LIMIT)
                }
                _ => return park::NOT_PARKED,
            },
        };
        let mut hold = self.hold();
        // SAFETY: `set_status_page`'s contract. The vCPU is stopped in an
        // exit from ring 3, so the kernel is not writing the page: the
        // fields read agree with each other. `wake` is written by raises,
        // which hold the lock held here.
        let (current, runnable, pending, wake) = unsafe {
            (
                read_volatile(addr_of!((*page).current)),
                read_volatile(addr_of!((*page).runnable)),
                read_volatile(addr_of!((*page).pending)),
                AtomicU32::from_ptr(addr_of_mut!((*page).wake)).load(Ordering::SeqCst),
            )
        };
        let Some(me) = 1u32.checked_shl(current) else {
            return park::NOT_PARKED;
        };
        if runnable != me || pending & me != 0 || wake != 0 {
            return park::NOT_PARKED;
        }
        hold.slot = Some(current);
        hold.woken = false;
        let start = Instant::now();
        let until = start + limit;
        while hold.slot.is_some() && start.elapsed() < PARK_SPIN.min(limit) {
            drop(hold);
            let yielded = Instant::now();
            std::thread::yield_now();
            let contended = yielded.elapsed() > CONTENDED;
            hold = self.hold();
            if contended {
                break;
            }
        }
        while hold.slot.is_some() {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            hold.sleeping = true;
            hold = self
                .released
                .wait_timeout(hold, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
            hold.sleeping = false;
        }
        hold.slot = None;
        if std::mem::take(&mut hold.woken) {
            park::WOKEN
        } else {
            park::NOT_PARKED
        }
    }
}

/// The stream interrupt as the rings of one pipe region raise it: naming
/// the region's process slot (region `i` is slot `i`'s).
#[derive(Clone)]
pub struct RegionIrq {
    irq: Arc<Interrupt>,
    bit: u32,
}

impl RegionIrq {
    pub fn new(irq: &Arc<Interrupt>, region: u64) -> Self {
        Self {
            irq: irq.clone(),
            bit: u32::try_from(region)
                .ok()
                .and_then(|r| 1u32.checked_shl(r))
                .unwrap_or(0),
        }
    }
}

impl Notify for RegionIrq {
    fn notify(&self) {
        self.irq.raise(self.bit);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering::SeqCst;

    /// An interrupt over a status page where slot `current` runs alone;
    /// the page is leaked (a test's few hundred bytes).
    fn alone(current: u32) -> (Arc<Interrupt>, &'static mut StatusPage) {
        let stats = Arc::new(RelayStats::default());
        let irq = Arc::new(Interrupt::new(EventFd::new(0).unwrap(), stats));
        let page = Box::leak(Box::new(StatusPage::decode(&[0; StatusPage::SIZE])));
        page.current = current;
        page.runnable = 1 << current;
        // SAFETY: leaked, so it lives as long as `irq`; the test writes
        // its fields only while no park or raise runs.
        unsafe { irq.set_status_page(page) };
        (irq, page)
    }

    /// A thread that parks on `irq`, once it holds; its join is what the
    /// read returned.
    fn parked(irq: &Arc<Interrupt>) -> std::thread::JoinHandle<u32> {
        let held = std::thread::spawn({
            let irq = irq.clone();
            move || irq.park(|_| None)
        });
        while irq.hold().slot.is_none() {
            std::thread::yield_now();
        }
        held
    }

    fn interrupts(irq: &Interrupt) -> u64 {
        irq.stats.interrupts.load(SeqCst)
    }

    #[test]
    fn a_raise_for_the_parked_slot_ends_the_hold_without_an_interrupt() {
        let (irq, page) = alone(2);
        let parked = parked(&irq);
        irq.raise(1 << 2);
        assert_eq!(parked.join().unwrap(), park::WOKEN);
        assert_eq!((page.wake, interrupts(&irq)), (0, 0));
        // Not parked: the same raise is an interrupt naming the slot.
        irq.raise(1 << 2);
        assert_eq!((page.wake, interrupts(&irq)), (1 << 2, 1));
    }

    #[test]
    fn a_holder_asleep_past_its_polls_is_woken_by_a_raise() {
        let (irq, _page) = alone(3);
        let parked = parked(&irq);
        while !irq.hold().sleeping {
            std::thread::sleep(Duration::from_millis(1));
        }
        let raised = Instant::now();
        irq.raise(1 << 3);
        assert_eq!(parked.join().unwrap(), park::WOKEN);
        // Woken by the signal, not by the end of the hold (which would
        // come at least PARK_LIMIT - PARK_SPIN after the raise).
        assert!(raised.elapsed() < PARK_LIMIT / 2, "{:?}", raised.elapsed());
    }

    #[test]
    fn a_raise_for_another_slot_is_raised_and_ends_the_hold() {
        let (irq, page) = alone(0);
        let parked = parked(&irq);
        irq.raise(1 << 5);
        assert_eq!(parked.join().unwrap(), park::NOT_PARKED);
        assert_eq!((page.wake, interrupts(&irq)), (1 << 5, 1));
    }

    #[test]
    fn no_hold_unless_the_page_says_the_program_waits_alone() {
        let (irq, page) = alone(1);
        for change in [
            |p: &mut StatusPage| p.runnable |= 1 << 3,
            |p: &mut StatusPage| p.pending = 1 << 1,
            |p: &mut StatusPage| p.wake = 1 << 4,
        ] {
            let saved = *page;
            change(page);
            let asked = Instant::now();
            assert_eq!(irq.park(|_| None), park::NOT_PARKED);
            assert!(asked.elapsed() < PARK_LIMIT, "it held the vCPU");
            *page = saved;
        }
        // A timer armed, due soon or when no one can tell: no hold.
        page.armed = 12345;
        for due in [None, Some(TIMER_CLEARANCE / 2)] {
            let asked = Instant::now();
            assert_eq!(
                irq.park(|tsc| due.filter(|_| tsc == 12345)),
                park::NOT_PARKED
            );
            assert!(asked.elapsed() < PARK_LIMIT, "it held the vCPU");
        }
        page.armed = 0;
        // Allowed, with nothing raised: held until the limit.
        let asked = Instant::now();
        assert_eq!(irq.park(|_| None), park::NOT_PARKED);
        assert!(asked.elapsed() >= PARK_LIMIT);
    }

    #[test]
    fn a_hold_ends_before_an_armed_timer_is_due() {
        let (irq, page) = alone(1);
        page.armed = 777;
        let due = TIMER_CLEARANCE + Duration::from_millis(5);
        let asked = Instant::now();
        assert_eq!(
            irq.park(|tsc| (tsc == 777).then_some(due)),
            park::NOT_PARKED
        );
        let held = asked.elapsed();
        assert!(
            held >= due - TIMER_CLEARANCE / 2,
            "released early: {held:?}"
        );
        assert!(held < PARK_LIMIT, "held past the timer: {held:?}");
        // Due after the limit: held until the limit, and a raise for the
        // slot still ends it as usual.
        let parked = std::thread::spawn({
            let irq = irq.clone();
            move || irq.park(|_| Some(Duration::from_secs(600)))
        });
        while irq.hold().slot.is_none() {
            std::thread::yield_now();
        }
        irq.raise(1 << 1);
        assert_eq!(parked.join().unwrap(), park::WOKEN);
    }
}
