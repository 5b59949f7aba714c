//! `spin`: loops forever (for `weft run --timeout`).
#![no_std]
#![no_main]

use weft_user::{Args, println};

weft_user::entry!(main);

fn main(_args: Args) -> i32 {
    println!("spinning");
    loop {
        core::hint::spin_loop();
    }
}
