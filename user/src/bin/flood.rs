//! `flood BYTES`: writes BYTES bytes of the repeating pattern "0123456789abcdef"
//! plus a newline every 64 bytes to standard output, then "done" to standard
//! error. Used by the integration tests: far more than a ring holds, so the
//! program must sleep until the monitor drains it.
#![no_std]
#![no_main]

use weft_user::{Args, Stream, eprintln};

weft_user::entry!(main);

fn main(args: Args) -> i32 {
    let Some(Ok(total)) = args.get(1).map(str::parse::<usize>) else {
        eprintln!("usage: flood BYTES");
        return 2;
    };
    let mut chunk = [0u8; 4096];
    for (i, b) in chunk.iter_mut().enumerate() {
        *b = if i % 64 == 63 {
            b'\n'
        } else {
            b"0123456789abcdef"[i % 16]
        };
    }
    let mut left = total;
    while left > 0 {
        let n = left.min(chunk.len());
        if Stream::Stdout.write_all(&chunk[..n]).is_err() {
            eprintln!("flood: standard output closed");
            return 1;
        }
        left -= n;
    }
    eprintln!("done");
    0
}
