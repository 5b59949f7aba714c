//! `sleep MS`: sleeps MS milliseconds on the kernel's timer, then exits 0.
#![no_std]
#![no_main]

use core::time::Duration;
use weft_user::{Args, eprintln, println};

weft_user::entry!(main);

fn main(args: Args) -> i32 {
    let Some(Ok(ms)) = args.get(1).map(str::parse::<u64>) else {
        eprintln!("usage: sleep MS");
        return 2;
    };
    weft_user::sleep(Duration::from_millis(ms));
    println!("slept {ms} ms");
    0
}
