//! `udp-echo PORT`: binds UDP `0.0.0.0:PORT` (the `--listen` address with
//! that port) and sends each datagram back to its sender. Runs until killed.
#![no_std]
#![no_main]

extern crate alloc;

use core::net::{IpAddr, Ipv4Addr, SocketAddr};
use weft_user::net::{MAX_DATAGRAM, UdpSocket};
use weft_user::{Args, Code, eprintln};

weft_user::entry!(main);

fn main(args: Args) -> i32 {
    let Some(port) = args.get(1).and_then(|p| p.parse::<u16>().ok()) else {
        eprintln!("usage: udp-echo PORT");
        return 2;
    };
    let addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port);
    let mut socket = match UdpSocket::bind(addr) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("udp-echo: bind {addr}: {e}");
            return 1;
        }
    };
    eprintln!("udp-echo: bound to {}", socket.local_addr());
    let mut buf = alloc::vec![0u8; MAX_DATAGRAM];
    loop {
        let (n, from) = match socket.recv_from(&mut buf) {
            Ok(r) => r,
            Err(e) if matches!(e.code(), Code::Closed | Code::Protocol) => {
                eprintln!("udp-echo: {e}");
                return 1;
            }
            // A refused or failed earlier send: report it and go on.
            Err(e) => {
                eprintln!("udp-echo: {e}");
                continue;
            }
        };
        if let Err(e) = socket.send_to(&buf[..n], from) {
            eprintln!("udp-echo: send to {from}: {e}");
            return 1;
        }
    }
}
