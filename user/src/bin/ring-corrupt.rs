//! `ring-corrupt`: a hostile program for the integration tests. It writes a
//! line to standard output, then overwrites that ring's `produced` index with
//! an impossible value and rings the doorbell. The monitor must close that
//! stream with a message and keep serving standard error and the exit status.
#![no_std]
#![no_main]

use weft_control::streams::{USER_PIPES_ADDR, bell, rings, slot};
use weft_data_pipe::Notify;
use weft_user::stream::Doorbell;
use weft_user::{Args, eprintln, println};

weft_user::entry!(main);

fn main(_args: Args) -> i32 {
    println!("before the corruption");
    let Some(r) = rings(slot::STDOUT) else {
        return 1;
    };
    let produced = (USER_PIPES_ADDR + r.to_monitor) as *mut u64;
    // SAFETY: the pipe region is mapped read/write for the program (§8);
    // writing garbage into its own ring header is the point of this test.
    unsafe { core::ptr::write_volatile(produced, u64::MAX - 7) };
    Doorbell::new(slot::STDOUT, bell::DATA).notify();
    eprintln!("standard error still works");
    7
}
