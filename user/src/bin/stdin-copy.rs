//! `stdin-copy`: copies standard input to standard output until end-of-file,
//! then reports the byte count on standard error. Used by the tests.
#![no_std]
#![no_main]

use weft_user::{Args, Stream, eprintln, read_stdin};

weft_user::entry!(main);

fn main(_args: Args) -> i32 {
    let mut buf = [0u8; 8192];
    let mut total = 0usize;
    loop {
        match read_stdin(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if Stream::Stdout.write_all(&buf[..n]).is_err() {
                    return 1;
                }
                total += n;
            }
            Err(e) => {
                eprintln!("stdin-copy: {e:?}");
                return 1;
            }
        }
    }
    eprintln!("copied {total} bytes");
    0
}
