//! The program's side of its streams (PROTOCOL.md §8): rings mapped at
//! `USER_PIPES_ADDR`, doorbells at `USER_DOORBELLS_ADDR`, and the `wait`
//! syscall for sleeping. Reads and writes are plain memory operations at
//! ring 3; the kernel is entered only to sleep.

use crate::syscall;
use weft_abi::nr;
use weft_control::layout::PAGE_SIZE;
use weft_control::streams::{
    self, PIPE_REGION_SIZE, RING_CAPACITY, USER_DOORBELLS_ADDR, USER_PIPES_ADDR,
};
use weft_data_pipe::{Blocking, Consumer, Notify, Producer, RawRegion, Wait};

/// Spins this many times before sleeping in the kernel.
const MAX_SPIN: u32 = 64;

/// Rings a slot's doorbell: one write to its page, which the host kernel
/// turns into a wake-up of the monitor's task (no exit to the monitor).
pub struct Doorbell(u64);

impl Notify for Doorbell {
    fn notify(&self) {
        // SAFETY: the monitor maps every slot's doorbell page read/write at
        // USER_DOORBELLS_ADDR (§8); a write there has no effect on memory.
        unsafe { core::ptr::write_volatile(self.0 as *mut u32, 1) };
    }
}

/// Sleeps in the kernel until the next stream interrupt.
#[derive(Default)]
pub struct StreamWait {
    seen: u64,
}

impl Wait for StreamWait {
    fn wait(&mut self) {
        // SAFETY: no pointer arguments.
        if let Ok(count) = unsafe { syscall::syscall(nr::WAIT, self.seen, u64::MAX, 0, 0) } {
            self.seen = count;
        }
    }
}

/// The pipe region as this program sees it.
fn region() -> Option<RawRegion> {
    let ptr = core::ptr::NonNull::new(USER_PIPES_ADDR as *mut u8)?;
    // SAFETY: the monitor maps the whole pipe region read/write at
    // USER_PIPES_ADDR for the program's lifetime (§8), and the runtime reaches
    // it only through ring ends.
    unsafe { RawRegion::new(ptr, PIPE_REGION_SIZE as usize) }.ok()
}

/// A blocking writer into slot `slot`'s `to_monitor` ring.
pub type Writer = Blocking<Producer<RawRegion, Doorbell>, StreamWait>;

/// The writer of a stream open from boot (standard output or error).
pub fn writer(slot: u64) -> Option<Writer> {
    let rings = streams::rings(slot)?;
    let bell = Doorbell(USER_DOORBELLS_ADDR + slot * PAGE_SIZE);
    let tx = Producer::new(
        region()?,
        rings.to_monitor as usize,
        RING_CAPACITY as usize,
        bell,
    )
    .ok()?;
    Some(Blocking::new(tx, StreamWait::default(), MAX_SPIN))
}

/// A blocking reader of slot `slot`'s `to_guest` ring.
pub type Reader = Blocking<Consumer<RawRegion, Doorbell>, StreamWait>;

/// The reader of a stream open from boot (standard input). Rings the slot's
/// doorbell once: the monitor starts supplying input on that first ring
/// (§8.1).
pub fn reader(slot: u64) -> Option<Reader> {
    let rings = streams::rings(slot)?;
    let bell = Doorbell(USER_DOORBELLS_ADDR + slot * PAGE_SIZE);
    bell.notify();
    let rx = Consumer::new(
        region()?,
        rings.to_guest as usize,
        RING_CAPACITY as usize,
        bell,
    )
    .ok()?;
    Some(Blocking::new(rx, StreamWait::default(), MAX_SPIN))
}
