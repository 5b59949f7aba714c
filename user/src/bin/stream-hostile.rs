//! `stream-hostile`: a hostile program for the integration tests. On fresh
//! streams it writes a header with non-zero flags, a header announcing a
//! 4 GiB body, a frame of random bytes, a first frame cut short, and a
//! corrupt ring index; each must end only that stream, with status
//! `Protocol`. On file streams of PATH it then corrupts the header of the
//! ring the monitor writes (`to_guest`): an impossible `consumed` index
//! before a `READ`, a close flag of 2 before an `FSTAT`; each must end that
//! stream with `Protocol` too. It prints one line per attack, then proves
//! the control pipe, standard output and a file stream opened before the
//! attacks (PATH, under `--fs-root`) still work.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec;
use alloc::vec::Vec;
use embedded_io::Read;
use weft_control::fs_proto::{FileOpen, FileRequest, OpenFlags, kind};
use weft_control::streams::{USER_PIPES_ADDR, bell, rings};
use weft_data_pipe::{CONSUMED, CONSUMER_CLOSED, Notify};
use weft_user::fs::File;
use weft_user::stream::{Doorbell, Stream};
use weft_user::{Args, println};

weft_user::entry!(main);

/// Sends `bytes` on a fresh stream, closes its writing side, and reports how
/// the monitor answered.
fn attack(name: &str, bytes: &[u8]) {
    let Ok(mut s) = Stream::open() else {
        println!("{name}: cannot open a stream");
        return;
    };
    let sent = s.send(bytes);
    s.close_write();
    let mut reply = Vec::new();
    let answer = s.recv(&mut reply).err().map(|e| e.code());
    println!(
        "{name}: sent {:?}, answer {answer:?}, status {:?}",
        sent.is_ok(),
        s.status()
    );
}

/// Opens `path` as a raw file stream, lets `poke` scribble on the header of
/// its `to_guest` ring (given the header's address), sends `request` and
/// reports how the monitor answered.
fn corrupt_to_guest(name: &str, path: &str, poke: impl FnOnce(usize), request: FileRequest) {
    let mut first = [0u8; 256];
    let open = FileOpen {
        flags: OpenFlags::READ.bits(),
        at: path.into(),
    };
    let Some(n) = open.encode(&mut first) else {
        println!("{name}: path too long");
        return;
    };
    let mut reply = Vec::new();
    let mut s = match Stream::open() {
        Ok(s) => s,
        Err(e) => return println!("{name}: cannot open a stream: {e}"),
    };
    match s.call(&first[..n], &mut reply) {
        Ok(kind::FILE_OPENED) => {}
        other => return println!("{name}: cannot open {path}: {other:?}"),
    }
    if let Some(r) = rings(s.slot()) {
        poke((USER_PIPES_ADDR + r.to_guest) as usize);
    }
    let mut frame = [0u8; 32];
    let n = request.encode(&mut frame).unwrap_or(0);
    let answer = s.call(&frame[..n], &mut reply).err();
    println!(
        "{name}: answer {:?} ({}), status {:?}",
        answer.as_ref().map(|e| e.code()),
        answer.as_ref().map_or("", |e| e.message()),
        s.status()
    );
}

fn main(args: Args) -> i32 {
    let Some(path) = args.get(1) else {
        println!("usage: stream-hostile PATH");
        return 2;
    };
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) => {
            println!("cannot open {path}: {e}");
            return 1;
        }
    };
    attack("flags", &[4, 0, 0, 0, 0x00, 0x01, 0xAA, 0xBB, 1, 0, 0, 0]);
    attack("oversized", &[0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x01, 0, 0]);
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    let noise: Vec<u8> = (0..4096)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    attack("noise", &noise);
    attack("truncated", &[64, 0, 0, 0, 0x00, 0x01, 0, 0, 1, 0]);

    // A ring index no honest producer could write.
    match Stream::open() {
        Ok(s) => {
            if let Some(r) = rings(s.slot()) {
                let produced = (USER_PIPES_ADDR + r.to_monitor) as *mut u64;
                // SAFETY: the pipe region is mapped read/write for the
                // program (§8); corrupting its own ring is the point.
                unsafe { core::ptr::write_volatile(produced, u64::MAX - 3) };
                Doorbell::new(s.slot(), bell::DATA).notify();
            }
            let mut s = s;
            let mut reply = vec![];
            let answer = s.recv(&mut reply).err().map(|e| e.code());
            println!("corrupt index: answer {answer:?}, status {:?}", s.status());
        }
        Err(e) => println!("corrupt index: cannot open a stream: {e}"),
    }

    corrupt_to_guest(
        "to_guest index",
        path,
        |ring| {
            // SAFETY: the ring header lies in the pipe region, mapped
            // read/write for the program (§8); `consumed` is 8-aligned.
            unsafe { core::ptr::write_volatile((ring + CONSUMED) as *mut u64, u64::MAX - 3) }
        },
        FileRequest::Read { max: 4096 },
    );
    corrupt_to_guest(
        "to_guest close flag",
        path,
        |ring| {
            // SAFETY: as above; `consumer_closed` is 4-aligned.
            unsafe { core::ptr::write_volatile((ring + CONSUMER_CLOSED) as *mut u32, 2) }
        },
        FileRequest::Fstat,
    );

    let again: Vec<u64> = (0..3)
        .filter_map(|_| Stream::open().ok())
        .map(|s| s.slot())
        .collect();
    println!("control pipe still opens: {}", again.len());
    let mut buf = vec![0u8; 4096];
    let mut total = 0;
    loop {
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => total += n,
            Err(e) => {
                println!("file stream broke: {e}");
                return 1;
            }
        }
    }
    println!("file stream still reads: {total} bytes");
    0
}
