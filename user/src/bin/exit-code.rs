//! `exit-code N`: exits with status N (0..=125).
#![no_std]
#![no_main]

use weft_user::{Args, eprintln};

weft_user::entry!(main);

fn main(args: Args) -> i32 {
    match args.get(1).map(str::parse::<i32>) {
        Some(Ok(n)) if (0..=125).contains(&n) => n,
        _ => {
            eprintln!("usage: exit-code N   (N in 0..=125)");
            2
        }
    }
}
