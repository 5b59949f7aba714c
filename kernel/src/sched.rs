//! The scheduler's hardware half (PROTOCOL.md §14.5): the process table's
//! home, the switch between processes, the timer and the idle halt.
//!
//! The decisions (who wakes, who runs next, when the timer must fire) are
//! `weft_kernel_core::pick`'s; this module feeds them the TSC and the
//! stream-interrupt count and carries them out. Ring 0 is emulated on the
//! machines Weft targets (~0.6 µs per instruction), so the scheduler is
//! tickless and short: one table lock per decision, the timer written only
//! when its deadline changes, no work for free slots.
//!
//! A process alone that waits for streams sleeps and wakes without a
//! decision ([`block_on_streams`]): the common case of a device guest
//! running one program, and most of its sleep's cost otherwise.
//!
//! Each decision, each lone sleep and wake-up, and each change of the
//! slots is published on the process status page (§14.6), from
//! which the monitor answers for the processes without entering the guest:
//! the occupied slots' entries only, under a sequence word.
//!
//! Invariants: the kernel runs on one CPU with interrupts masked, so
//! nothing else touches the table while a decision is made, and the table's
//! lock is never held across a switch or a halt. A switch saves the
//! callee-saved registers and the stack pointer of the running process's
//! kernel stack and resumes the next one's ([`arch::switch`]); every
//! process has its own kernel stack, so a process blocks wherever it is in
//! the kernel and resumes there.

use crate::apic;
use crate::arch::{self, FIRST_FRAME_WORDS, cpu};
use core::ptr::{addr_of_mut, read_volatile, write_volatile};
use core::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, Ordering};
use cpu::FxArea;
use spin::Mutex;
use weft_control::boot::PerCpu;
use weft_control::process::{MAX_PROCESSES, StatusPage};
use weft_kernel_core::clock::{self, SLICE_NS};
use weft_kernel_core::pick::{Next, Wait};
use weft_kernel_core::table::{Switch, Table};

/// The one process table.
pub static TABLE: Mutex<Table> = Mutex::new(Table::new());

/// Each slot's kernel stack pointer while it is switched out.
static SAVED_RSP: [AtomicU64; MAX_PROCESSES] = [const { AtomicU64::new(0) }; MAX_PROCESSES];
/// Each slot's x87/SSE registers while it is switched out (ring-3 code may
/// use them, compiled Wasm does; the kernel does not).
static mut FX: [FxArea; MAX_PROCESSES] = [const { FxArea::CLEAN }; MAX_PROCESSES];
static TSC_HZ: AtomicU64 = AtomicU64::new(1);
/// [`SLICE_NS`] in TSC ticks.
static SLICE_TICKS: AtomicU64 = AtomicU64::new(0);
/// Where no stream interrupt comes (QEMU, §8.3): the longest an idle halt
/// lasts before the wake word is looked at again; 0 elsewhere.
static IDLE_POLL_TICKS: AtomicU64 = AtomicU64::new(0);
/// Kernel address of the TSS.
static TSS: AtomicU64 = AtomicU64::new(0);
/// The kernel's own PML4 (the kernel half only).
static KERNEL_ROOT: AtomicU64 = AtomicU64::new(0);
/// The process status page (§14.6).
static STATUS: AtomicPtr<StatusPage> = AtomicPtr::new(core::ptr::null_mut());

/// Records the TSC rate, where the TSS and the status page are (from the
/// per-CPU block) and the kernel's PML4.
pub fn init(tsc_hz: u64, percpu: &PerCpu, kernel_root: u64, idle_poll_ns: u64) {
    let hz = tsc_hz.max(1);
    TSC_HZ.store(hz, Ordering::Relaxed);
    SLICE_TICKS.store(clock::ns_to_ticks(SLICE_NS, hz), Ordering::Relaxed);
    IDLE_POLL_TICKS.store(clock::ns_to_ticks(idle_poll_ns, hz), Ordering::Relaxed);
    TSS.store(percpu.tss, Ordering::Relaxed);
    STATUS.store(percpu.status as *mut StatusPage, Ordering::Relaxed);
    KERNEL_ROOT.store(kernel_root, Ordering::Relaxed);
}

/// The TSC's rate.
pub fn tsc_hz() -> u64 {
    TSC_HZ.load(Ordering::Relaxed)
}

/// Leaves the running process's address space for the kernel's, so the
/// monitor may take its page tables back.
pub fn leave_address_space() {
    // SAFETY: the kernel's PML4 maps the kernel half every process shares
    // (§1.2), which holds all kernel code, data and stacks.
    unsafe { cpu::write_cr3(KERNEL_ROOT.load(Ordering::Relaxed)) };
}

/// Lays out slot `slot`'s kernel stack (top `top`) so the first switch to
/// it enters its program with `frame`.
pub fn prepare(slot: usize, top: u64, frame: [u64; FIRST_FRAME_WORDS]) {
    let rsp = top - 8 * FIRST_FRAME_WORDS as u64;
    // SAFETY: `top` is the top of the slot's own kernel stack (kernel
    // memory of at least a page, see `memory::kernel_stack`), which no
    // context uses: the slot is free, and its last process, if any, was
    // switched out for good when it ended.
    unsafe { core::ptr::write(rsp as *mut [u64; FIRST_FRAME_WORDS], frame) };
    SAVED_RSP[slot].store(rsp, Ordering::Relaxed);
    // SAFETY: the slot is free (as above): no switch reads its area now,
    // and interrupts are masked.
    unsafe { (&raw mut FX[slot]).write(FxArea::CLEAN) };
}

/// Blocks the running process until `wait` is over or `timeout_ns` passes
/// (`None`: no limit), running the others meanwhile. The caller re-checks
/// what it waited for.
pub fn block(wait: Wait, timeout_ns: Option<u64>) {
    let deadline = timeout_ns.map(|ns| clock::deadline(cpu::rdtsc(), ns, tsc_hz()));
    TABLE.lock().block(wait, deadline);
    schedule();
}

/// Blocks the running process until the monitor names its slot in a
/// stream interrupt (§8.3), with no timeout. With no wake to take, a
/// process that leaves one other runnable switches to it
/// ([`Table::pass`]), and a process alone ([`Table::alone`]) halts the
/// CPU at once, and if the first interrupt is a stream interrupt naming
/// its slot alone it runs again: no decision on either side, which is most
/// of the emulated ring-0 work of a sleep and its wake-up. Anything else
/// (the timer fired, another slot was named) leaves the rest to
/// [`schedule`].
pub fn block_on_streams() {
    let mut t = TABLE.lock();
    if wake_word().is_none_or(|w| w.load(Ordering::Relaxed) != 0) {
        t.block(Wait::Streams, None);
        drop(t);
        return schedule();
    }
    if let Some(to) = t.pass(cpu::rdtsc()) {
        publish_switch(&mut t, to.from);
        drop(t);
        return switch(to);
    }
    if !t.alone() {
        t.block(Wait::Streams, None);
        drop(t);
        return schedule();
    }
    let me = 1u32 << t.current();
    t.sleep_alone(cpu::rdtsc());
    publish_current(&mut t);
    drop(t);
    idle_poll(cpu::rdtsc());
    let armed = ARMED_AT.load(Ordering::Relaxed);
    let wake = wake_word();
    loop {
        cpu::wait_for_interrupt();
        if ARMED_AT.load(Ordering::Relaxed) != armed {
            break;
        }
        match wake.map(|w| w.compare_exchange(me, 0, Ordering::AcqRel, Ordering::Relaxed)) {
            Some(Ok(_)) => {
                let mut t = TABLE.lock();
                t.resume(cpu::rdtsc());
                publish_current(&mut t);
                return;
            }
            // An interrupt that named no one: the monitor's wake bits
            // always come before their interrupt, so it is spurious.
            Some(Err(0)) => {}
            _ => break,
        }
    }
    schedule();
}

/// The status page's `wake` word (§8.3), once the page is known.
fn wake_word() -> Option<&'static AtomicU32> {
    let page = STATUS.load(Ordering::Relaxed);
    if page.is_null() {
        return None;
    }
    // SAFETY: `page` is the status page (see `publish`), which stays
    // mapped for the guest's life; its `wake` word is 4-aligned
    // (`StatusPage` is `repr(C)`), and the kernel and the monitor reach it
    // only atomically.
    Some(unsafe { AtomicU32::from_ptr(addr_of_mut!((*page).wake)) })
}

/// Takes the slots the monitor woke since the last call (§8.3).
fn take_wakes() -> u32 {
    wake_word().map_or(0, |w| w.swap(0, Ordering::AcqRel))
}

/// The timer's deadline as last written (TSC), 0 before the first and
/// once it fired (the timer stub zeroes it: a clamped count fires early).
pub static ARMED_AT: AtomicU64 = AtomicU64::new(0);

/// Makes the timer fire by TSC `deadline` if it would not (§14.5: a timer
/// armed for later than needed, or when nothing is needed, is left to fire
/// early rather than written again).
fn arm(now: u64, deadline: Option<u64>) {
    if let Some(at) = clock::rearm(ARMED_AT.load(Ordering::Relaxed), deadline) {
        ARMED_AT.store(at, Ordering::Relaxed);
        apic::arm_ns(clock::until(now, at, tsc_hz()));
    }
}

/// Where no stream interrupt comes, makes the timer end the coming idle
/// halt within the poll period, so the wake word is seen (§8.3).
fn idle_poll(now: u64) {
    let poll = IDLE_POLL_TICKS.load(Ordering::Relaxed);
    if poll != 0 {
        arm(now, Some(now.saturating_add(poll)));
    }
}

/// Called by the timer and stream interrupt stubs when they interrupted
/// ring 3: lets another process run if one can. A stream interrupt that
/// wakes one process while the interrupted one ran alone hands it the CPU
/// with no decision ([`Table::hand_over`]): the other half of a round
/// trip between two processes.
pub extern "C" fn weft_preempt() {
    let wakes = take_wakes();
    let now = cpu::rdtsc();
    let mut t = TABLE.lock();
    let Some(to) = t.hand_over(wakes, now) else {
        drop(t);
        return decide(wakes);
    };
    arm(
        now,
        Some(now.saturating_add(SLICE_TICKS.load(Ordering::Relaxed))),
    );
    publish_switch(&mut t, to.from);
    drop(t);
    switch(to);
}

/// Runs whichever process should run next, halting while none can; returns
/// when the calling process is picked again (never, if it has ended).
pub fn schedule() {
    decide(take_wakes());
}

/// [`schedule`], with `wakes` taken from the wake word already.
fn decide(mut wakes: u32) {
    loop {
        let now = cpu::rdtsc();
        let mut t = TABLE.lock();
        let decision = t.pick(now, wakes, SLICE_TICKS.load(Ordering::Relaxed));
        arm(now, decision.arm);
        match decision.next {
            Next::Stay => {
                t.stay(now);
                publish(&mut t);
                return;
            }
            Next::Run(slot) => {
                let to = t.switch_to(slot, now);
                publish(&mut t);
                drop(t);
                if let Some(to) = to {
                    switch(to);
                }
                return;
            }
            Next::Idle => {
                t.halt(now);
                publish(&mut t);
                drop(t);
                idle_poll(now);
                cpu::wait_for_interrupt();
                wakes = take_wakes();
            }
        }
    }
}

/// Writes the table's state on the status page (§14.6): `seq` odd, the
/// header with the runnable slots, the entry of each slot
/// that changed since the last call, `seq` even again. Called at each
/// scheduling decision and after each change of the table's slots (a
/// spawn, an end, a collection).
pub fn publish(t: &mut Table) {
    let page = STATUS.load(Ordering::Relaxed);
    if page.is_null() {
        return;
    }
    // SAFETY: `page` is the kernel address of the status page the monitor
    // set aside for this (a BOOT page of the direct map, §2.2, §14.6),
    // which only this function writes; volatile accesses keep their order,
    // and the CPU's stores are seen in program order (x86), so a reader
    // that finds `seq` even and unchanged around its copy has a whole one.
    unsafe {
        let seq = addr_of_mut!((*page).seq);
        let before = read_volatile(seq);
        write_volatile(seq, before | 1);
        write_volatile(addr_of_mut!((*page).occupied), t.occupied_bits());
        write_volatile(addr_of_mut!((*page).current), t.current() as u32);
        write_volatile(addr_of_mut!((*page).switched_in), t.switched_in());
        write_volatile(addr_of_mut!((*page).idle), u32::from(t.idle()));
        write_volatile(addr_of_mut!((*page).runnable), t.runnable_bits());
        write_volatile(addr_of_mut!((*page).pending), t.pending_bits());
        write_volatile(
            addr_of_mut!((*page).armed),
            ARMED_AT.load(Ordering::Relaxed),
        );
        for slot in t.take_dirty() {
            write_volatile(addr_of_mut!((*page).slots[slot]), t.slot_status(slot));
        }
        write_volatile(seq, (before | 1).wrapping_add(1));
    }
}

/// [`publish`] for a sleep alone or its wake-up, which change only the
/// header's `switched_in`, `idle` and `runnable`, and the current slot's
/// `state` and `cpu_ticks`. Anything more changed: the whole of
/// [`publish`].
fn publish_current(t: &mut Table) {
    publish_switch(t, t.current());
}

/// [`publish`] for a switch without a decision from slot `from` to the
/// current one ([`Table::hand_over`], [`Table::pass`]) or a sleep alone
/// (`from` the current slot), which change only the header's `current`,
/// `switched_in`, `idle`, `runnable` and `armed`, and the two slots'
/// `state` and `cpu_ticks`. Anything more changed: the whole of
/// [`publish`].
fn publish_switch(t: &mut Table, from: usize) {
    let page = STATUS.load(Ordering::Relaxed);
    let slot = t.current();
    let (Some(running), Some(before)) = (t.running(), t.process(from)) else {
        return publish(t);
    };
    let (state, cpu_ticks) = (running.state().code().0, running.cpu_ticks());
    let (from_state, from_ticks) = (before.state().code().0, before.cpu_ticks());
    if page.is_null() || !t.take_dirty_within(1 << slot | 1 << from) {
        return publish(t);
    }
    // SAFETY: as in `publish`, whose sequence protocol this follows;
    // `slot` and `from` index `slots`: both hold a process, so both are
    // table slots, below MAX_PROCESSES.
    unsafe {
        let seq = addr_of_mut!((*page).seq);
        let before = read_volatile(seq);
        write_volatile(seq, before | 1);
        write_volatile(addr_of_mut!((*page).current), slot as u32);
        write_volatile(addr_of_mut!((*page).switched_in), t.switched_in());
        write_volatile(addr_of_mut!((*page).idle), u32::from(t.idle()));
        write_volatile(addr_of_mut!((*page).runnable), t.runnable_bits());
        write_volatile(
            addr_of_mut!((*page).armed),
            ARMED_AT.load(Ordering::Relaxed),
        );
        if from != slot {
            write_volatile(addr_of_mut!((*page).slots[from].state), from_state);
            write_volatile(addr_of_mut!((*page).slots[from].cpu_ticks), from_ticks);
        }
        write_volatile(addr_of_mut!((*page).slots[slot].state), state);
        write_volatile(addr_of_mut!((*page).slots[slot].cpu_ticks), cpu_ticks);
        write_volatile(seq, (before | 1).wrapping_add(1));
    }
}

/// Carries out `to`: from the running process to the next one.
fn switch(to: Switch) {
    // SAFETY: `to.root` was built by the monitor with the kernel half
    // shared (§14.4); `to.kernel_stack` is the slot's own kernel stack;
    // interrupts are masked; the next RSP was stored by that slot's last
    // switch or by `prepare`, and `SAVED_RSP[to.from]` is a static word
    // (both indices are table slots, below MAX_PROCESSES). The x87/SSE
    // registers are the running process's (the kernel never uses them):
    // they are saved to its area and the next one's loaded before the
    // stacks change, which a new process's clean area (`prepare`) covers
    // too; only this function, with interrupts masked, touches the areas.
    unsafe {
        cpu::fxsave(&raw mut FX[to.from]);
        cpu::fxrstor(&raw const FX[to.to]);
        cpu::write_cr3(to.root);
        cpu::set_rsp0(TSS.load(Ordering::Relaxed), to.kernel_stack);
        arch::switch(
            SAVED_RSP[to.from].as_ptr(),
            SAVED_RSP[to.to].load(Ordering::Relaxed),
        );
    }
}
