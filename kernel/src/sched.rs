//! The scheduler (PROTOCOL.md §14.5): round-robin over runnable processes,
//! preemption by the APIC timer, and the idle halt.
//!
//! Ring 0 is emulated on the machines Weft targets (~0.6 µs per
//! instruction), so the scheduler is tickless and short: the timer is armed
//! only when another process could run (a [`SLICE_NS`] slice) or a blocked
//! one has a deadline, and a decision looks only at occupied slots. The
//! kernel runs on one CPU with interrupts masked, so nothing else touches
//! the table while a decision is made.
//!
//! A switch saves the callee-saved registers and the stack pointer of the
//! running process's kernel stack and resumes the next one's
//! ([`arch::switch`]); every process has its own kernel stack, so a process
//! blocks wherever it is in the kernel and resumes there.

use crate::apic;
use crate::arch::{self, FIRST_FRAME_WORDS, cpu};
use crate::process::{State, TABLE, Table, Wait};
use core::sync::atomic::{AtomicU64, Ordering};
use weft_control::process::MAX_PROCESSES;

/// How long a process runs before another runnable one gets the CPU.
pub const SLICE_NS: u64 = 10_000_000;

/// Each slot's kernel stack pointer while it is switched out.
static SAVED_RSP: [AtomicU64; MAX_PROCESSES] = [const { AtomicU64::new(0) }; MAX_PROCESSES];
/// TSC when the running process was switched in.
static SWITCHED_IN: AtomicU64 = AtomicU64::new(0);
static TSC_HZ: AtomicU64 = AtomicU64::new(0);
/// Kernel address of the TSS.
static TSS: AtomicU64 = AtomicU64::new(0);
/// The kernel's own PML4 (the kernel half only).
static KERNEL_ROOT: AtomicU64 = AtomicU64::new(0);

/// Records the TSC rate, where the TSS is and the kernel's PML4.
pub fn init(tsc_hz: u64, tss: u64, kernel_root: u64) {
    TSC_HZ.store(tsc_hz.max(1), Ordering::Relaxed);
    TSS.store(tss, Ordering::Relaxed);
    KERNEL_ROOT.store(kernel_root, Ordering::Relaxed);
}

/// Leaves the running process's address space for the kernel's, so the
/// monitor may take its page tables back.
pub fn leave_address_space() {
    // SAFETY: the kernel's PML4 maps the kernel half every process shares
    // (§1.2), which holds all kernel code, data and stacks.
    unsafe { cpu::write_cr3(KERNEL_ROOT.load(Ordering::Relaxed)) };
}

/// Starts the running process's CPU clock (at the first program's entry).
pub fn start_clock() {
    SWITCHED_IN.store(cpu::rdtsc(), Ordering::Relaxed);
}

/// TSC ticks the running process has run since it was switched in.
pub fn running_ticks() -> u64 {
    cpu::rdtsc().saturating_sub(SWITCHED_IN.load(Ordering::Relaxed))
}

/// Nanoseconds for `ticks` of the TSC.
pub fn ticks_to_ns(ticks: u64) -> u64 {
    (u128::from(ticks) * 1_000_000_000 / u128::from(TSC_HZ.load(Ordering::Relaxed))) as u64
}

fn ns_to_ticks(ns: u64) -> u64 {
    let t = u128::from(ns) * u128::from(TSC_HZ.load(Ordering::Relaxed)) / 1_000_000_000;
    u64::try_from(t).unwrap_or(u64::MAX)
}

/// Lays out slot `slot`'s kernel stack (top `top`) so the first switch to
/// it enters its program with `frame`.
pub fn prepare(slot: usize, top: u64, frame: [u64; FIRST_FRAME_WORDS]) {
    let rsp = top - 8 * FIRST_FRAME_WORDS as u64;
    // SAFETY: `top` is the top of the slot's own kernel stack (kernel
    // memory of at least a page, see `process::stack_top`), which no
    // context uses: the slot is free, and its last process, if any, was
    // switched out for good when it ended.
    unsafe { core::ptr::write(rsp as *mut [u64; FIRST_FRAME_WORDS], frame) };
    SAVED_RSP[slot].store(rsp, Ordering::Relaxed);
}

/// Blocks the running process until `wait` is over or `timeout_ns` passes
/// (`None`: no limit), running the others meanwhile. The caller re-checks
/// what it waited for.
pub fn block(wait: Wait, timeout_ns: Option<u64>) {
    let deadline = timeout_ns.map(|ns| cpu::rdtsc().saturating_add(ns_to_ticks(ns)));
    if let Some(p) = TABLE.lock().running() {
        p.state = State::Blocked { wait, deadline };
    }
    schedule();
}

/// Called by the timer and stream interrupt stubs when they interrupted
/// ring 3: lets another process run if one can.
pub extern "C" fn weft_preempt() {
    schedule();
}

/// What to do next.
enum Next {
    /// Go on running the current process.
    Stay,
    /// Switch to this slot.
    Run(usize),
    /// Nothing can run: halt until an interrupt, or the TSC deadline.
    Idle(Option<u64>),
}

impl Table {
    /// Wakes blocked processes whose wait is over and picks the next to
    /// run: round-robin from the slot after the current one, the current
    /// one last. Arms the timer for the chosen process's slice.
    fn pick(&mut self, now: u64) -> Next {
        let mut earliest: Option<u64> = None;
        for slot in self.occupied() {
            let Some(State::Blocked { wait, deadline }) =
                self.slots[slot].as_ref().map(|p| p.state)
            else {
                continue;
            };
            if deadline.is_some_and(|d| d <= now) || self.wait_over(wait) {
                if let Some(p) = self.slots[slot].as_mut() {
                    p.state = State::Runnable;
                }
            } else if let Some(d) = deadline {
                earliest = Some(earliest.map_or(d, |e: u64| e.min(d)));
            }
        }
        let runnable = |t: &Self, s: usize| {
            t.slots[s]
                .as_ref()
                .is_some_and(|p| p.state == State::Runnable)
        };
        // Round-robin: the first runnable slot after the current one,
        // wrapping around, the current one last.
        let occupied = self.occupied();
        let after = occupied.clone().filter(|&s| s > self.current);
        let Some(next) = after
            .chain(occupied.clone().filter(|&s| s <= self.current))
            .find(|&s| runnable(self, s))
        else {
            return Next::Idle(earliest);
        };
        let others = occupied.filter(|&s| s != next && runnable(self, s)).count();
        let slice = (others > 0).then(|| now.saturating_add(ns_to_ticks(SLICE_NS)));
        arm_until(now, [slice, earliest].into_iter().flatten().min());
        if next == self.current {
            Next::Stay
        } else {
            Next::Run(next)
        }
    }
}

/// Arms the timer to fire at TSC `deadline` (or stops it).
fn arm_until(now: u64, deadline: Option<u64>) {
    apic::arm_ns(deadline.map(|d| ticks_to_ns(d.saturating_sub(now)).max(1)));
}

/// Runs whichever process should run next, halting while none can; returns
/// when the calling process is picked again (never, if it has ended).
pub fn schedule() {
    loop {
        let now = cpu::rdtsc();
        let next = TABLE.lock().pick(now);
        match next {
            Next::Stay => return,
            Next::Run(slot) => {
                switch_to(slot, now);
                return;
            }
            Next::Idle(deadline) => {
                arm_until(now, deadline);
                cpu::wait_for_interrupt();
            }
        }
    }
}

/// Switches from the running process to the one in `slot`.
fn switch_to(slot: usize, now: u64) {
    // A stack exists for every slot that ever held a process.
    let Ok(top) = crate::process::stack_top(slot) else {
        return;
    };
    let (from, root) = {
        let mut t = TABLE.lock();
        let Some(root) = t.slots[slot].as_ref().map(|p| p.root) else {
            return;
        };
        let ran = now.saturating_sub(SWITCHED_IN.load(Ordering::Relaxed));
        if let Some(p) = t.running() {
            p.cpu_ticks += ran;
        }
        let from = t.current;
        t.current = slot;
        (from, root)
    };
    SWITCHED_IN.store(now, Ordering::Relaxed);
    // SAFETY: `root` was built by the monitor with the kernel half shared
    // (§14.4); `top` is the slot's own kernel stack; interrupts are masked;
    // the next RSP was stored by that slot's last switch or by `prepare`,
    // and `SAVED_RSP[from]` is a static word.
    unsafe {
        cpu::write_cr3(root);
        cpu::set_rsp0(TSS.load(Ordering::Relaxed), top);
        arch::switch(
            SAVED_RSP[from].as_ptr(),
            SAVED_RSP[slot].load(Ordering::Relaxed),
        );
    }
}
