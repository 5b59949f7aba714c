//! `echo-server`: placeholder until its protocol library exists.
#![no_std]
#![no_main]

use weft_user::{Args, eprintln};

weft_user::entry!(main);

fn main(_args: Args) -> i32 {
    eprintln!("echo-server: not built yet");
    1
}
