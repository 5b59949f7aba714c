//! `cat [PATH]...`: copies each file to standard output (standard input if
//! no path is given). A file that cannot be read is reported on standard
//! error and skipped; the exit status is then 1.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec;
use embedded_io::Read;
use weft_user::fs::File;
use weft_user::{Args, Error, Stream, eprintln, read_stdin};

weft_user::entry!(main);

/// Bytes moved per write: large writes keep the output ring busy.
const CHUNK: usize = 64 * 1024;

fn main(args: Args) -> i32 {
    let mut buf = vec![0u8; CHUNK];
    if args.len() < 2 {
        return copy_stdin(&mut buf);
    }
    let mut status = 0;
    for path in args.iter().skip(1) {
        if let Err(e) = copy_file(path, &mut buf) {
            eprintln!("cat: {e}");
            status = 1;
        }
    }
    status
}

fn copy_file(path: &str, buf: &mut [u8]) -> Result<(), Error> {
    let mut file = File::open(path)?;
    loop {
        let n = file.read(buf)?;
        if n == 0 {
            return Ok(());
        }
        write_out(&buf[..n])?;
    }
}

fn copy_stdin(buf: &mut [u8]) -> i32 {
    loop {
        match read_stdin(buf) {
            Ok(0) => return 0,
            Ok(n) => {
                if write_out(&buf[..n]).is_err() {
                    return 1;
                }
            }
            Err(e) => {
                eprintln!("cat: standard input: {e:?}");
                return 1;
            }
        }
    }
}

fn write_out(bytes: &[u8]) -> Result<(), Error> {
    Stream::Stdout
        .write_all(bytes)
        .map_err(|_| Error::from_code(weft_user::Code::Closed))
}
