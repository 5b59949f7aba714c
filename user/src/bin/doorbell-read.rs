//! `doorbell-read`: reads the doorbell page (PROTOCOL.md §8.2), which a
//! program may only write. Test-only: the read must end this program with
//! status 125 and a report, and nothing else.
#![no_std]
#![no_main]

use weft_control::streams::USER_DOORBELLS_ADDR;
use weft_user::{Args, println};

weft_user::entry!(main);

fn main(_args: Args) -> i32 {
    println!("reading the doorbell page at {USER_DOORBELLS_ADDR:#x}");
    // SAFETY: none needed for memory safety: the page is mapped, and the
    // read is refused on purpose (it ends this program).
    let v = unsafe { core::ptr::read_volatile(USER_DOORBELLS_ADDR as *const u32) };
    println!("read {v:#x}: the doorbell read was not refused");
    1
}
