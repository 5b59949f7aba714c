//! `fabric-hostile`: a hostile program for the integration tests of the
//! FABRIC stream (PROTOCOL.md §17). On fresh FABRIC streams it sends a
//! request of no known kind, an `IMAGE` with no `SPAWN`, and a `SPAWN`
//! whose image is interrupted by another request; each must end only that
//! stream, with status `Protocol`. It prints one line per attack, then
//! proves a fresh FABRIC stream still answers (`devices: N`).
#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec;
use alloc::vec::Vec;
use weft_control::device_proto::ArgList;
use weft_control::fabric_proto::{Request, SpawnHead, source};
use weft_control::frame::{self, HEADER, MAX_BODY};
use weft_user::fabric::Fabric;
use weft_user::stream::Stream;
use weft_user::{Args, println};

weft_user::entry!(main);

fn frame_of(r: &Request<'_>) -> Vec<u8> {
    let mut buf = vec![0u8; HEADER + MAX_BODY];
    let n = r.encode(&mut buf).unwrap_or(0);
    buf.truncate(n);
    buf
}

/// Sends `bytes` on a fresh FABRIC stream and reports how the monitor
/// answered.
fn attack(name: &str, bytes: &[u8]) {
    let mut ready = Vec::new();
    let Ok((mut s, _)) = Stream::connect(frame::kind::FABRIC, &[], &mut ready) else {
        println!("{name}: cannot open a FABRIC stream");
        return;
    };
    let sent = s.send(bytes);
    let mut reply = Vec::new();
    let answer = s.recv(&mut reply).err().map(|e| e.code());
    println!(
        "{name}: sent {:?}, answer {answer:?}",
        sent.map_err(|e| e.code())
    );
}

fn main(_: Args) -> i32 {
    let mut unknown = frame_of(&Request::Devices {
        request: 1,
        available: false,
    });
    unknown[4] = 0x77;
    attack("unknown kind", &unknown);
    attack(
        "image alone",
        &frame_of(&Request::Image {
            request: 1,
            chunk: b"x",
        }),
    );
    let mut raw = [0u8; 8];
    let Some(args) = ArgList::new(&["a"], &mut raw) else {
        return 1;
    };
    let head = SpawnHead {
        request: 2,
        source: source::NAME,
        image_len: 5,
        tier: 0,
    };
    let mut cut = frame_of(&Request::Spawn {
        head,
        device: None,
        args,
    });
    cut.extend(frame_of(&Request::Kill {
        request: 3,
        pid: "a:1",
    }));
    attack("spawn cut short", &cut);
    match Fabric::open().and_then(|mut f| f.devices(false)) {
        Ok(devices) => {
            println!("devices: {}", devices.len());
            0
        }
        Err(e) => {
            println!("afterwards: {e}");
            1
        }
    }
}
