//! `file-io.wasm`: writes [`SIZE`] bytes to `/file-io.bin` in [`CHUNK`]-byte
//! writes, then reads the file back into memory (a buffer allocated for it)
//! in `CHUNK`-byte reads, and prints the time that took (from the monotonic
//! clock, around that alone: the bytes are checked after) as
//! `file_io_us=N`. Exits 1 if a byte differs or a call fails.
//!
//! `file-io [MIB [CHUNK]]` moves MIB mebibytes instead of 5, CHUNK bytes
//! per call.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::time::Instant;

const PATH: &str = "/file-io.bin";
const MIB: usize = 1 << 20;
/// Bytes moved by default.
const SIZE: usize = 5 * MIB;
/// Bytes per call by default.
const CHUNK: usize = 64 * 1024;

fn main() {
    let arg = |i: usize| {
        std::env::args()
            .nth(i)
            .and_then(|a| a.parse::<usize>().ok())
    };
    let size = arg(1).map_or(SIZE, |m| m * MIB);
    let chunk = arg(2).unwrap_or(CHUNK).max(1);
    let block: Vec<u8> = (0..chunk).map(|i| (i * 7 + i / 251) as u8).collect();
    let started = Instant::now();
    let mut back = vec![0u8; size + 1];
    let read = write(size, &block).and_then(|()| read_back(&mut back, chunk));
    let us = started.elapsed().as_micros();
    let _ = fs::remove_file(PATH);
    let fail = |what: String| -> ! {
        eprintln!("file-io: {what}");
        std::process::exit(1);
    };
    match read {
        Err(e) => fail(e.to_string()),
        Ok(n) if n != size => fail(format!("read {n} of {size} bytes")),
        Ok(_) => {}
    }
    if back[..size].chunks(chunk).any(|c| *c != block[..c.len()]) {
        fail("the bytes read differ from those written".into());
    }
    println!("file_io_us={us}");
}

/// Writes `size` bytes of `block` repeated.
fn write(size: usize, block: &[u8]) -> std::io::Result<()> {
    let mut file = File::create(PATH)?;
    let mut left = size;
    while left > 0 {
        let n = left.min(block.len());
        file.write_all(&block[..n])?;
        left -= n;
    }
    Ok(())
}

/// Reads the file into `out` (one byte longer than the file should be, so
/// a longer file shows) to its end or `out`'s: how many bytes came.
fn read_back(out: &mut [u8], chunk: usize) -> std::io::Result<usize> {
    let mut file = File::open(PATH)?;
    let mut at = 0;
    while at < out.len() {
        let end = out.len().min(at + chunk);
        match file.read(&mut out[at..end])? {
            0 => break,
            n => at += n,
        }
    }
    Ok(at)
}
