//! `cp SRC DST`: copies file SRC to file DST (created, or cut to length 0).
#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec;
use embedded_io::{Read, Write};
use weft_user::fs::File;
use weft_user::{Args, Error, eprintln};

weft_user::entry!(main);

fn main(args: Args) -> i32 {
    let (Some(src), Some(dst), None) = (args.get(1), args.get(2), args.get(3)) else {
        eprintln!("usage: cp SRC DST");
        return 2;
    };
    match copy(src, dst) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("cp: {e}");
            1
        }
    }
}

fn copy(src: &str, dst: &str) -> Result<(), Error> {
    let mut from = File::open(src)?;
    let mut to = File::create(dst)?;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = from.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        to.write_all(&buf[..n])?;
    }
}
