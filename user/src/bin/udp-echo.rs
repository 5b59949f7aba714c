//! `udp-echo PORT [IP]`: binds UDP `IP:PORT` (without IP, `0.0.0.0:PORT`:
//! the `--listen` address with that port; under a daemon IP may be a
//! fabric address of another device) and sends each datagram back to its
//! sender. Runs until killed.
#![no_std]
#![no_main]

extern crate alloc;

use core::net::{IpAddr, Ipv4Addr, SocketAddr};
use weft_user::net::{MAX_DATAGRAM, UdpSocket};
use weft_user::{Args, Code, eprintln};

weft_user::entry!(main);

fn main(args: Args) -> i32 {
    let port = args.get(1).and_then(|p| p.parse::<u16>().ok());
    let ip = match args.get(2) {
        None => Some(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
        Some(ip) => ip.parse::<IpAddr>().ok(),
    };
    let (Some(port), Some(ip), None) = (port, ip, args.get(3)) else {
        eprintln!("usage: udp-echo PORT [IP]");
        return 2;
    };
    let addr = SocketAddr::new(ip, port);
    let mut socket = match UdpSocket::bind(addr) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("udp-echo: bind {addr}: {e}");
            return 1;
        }
    };
    eprintln!("udp-echo: bound to {}", socket.local_addr());
    let mut buf = alloc::vec![0u8; MAX_DATAGRAM];
    // Errors in a row: a refused or failed send is one, and the socket goes
    // on; an ended stream repeats its error forever.
    let mut errors = 0u32;
    loop {
        let (n, from) = match socket.recv_from(&mut buf) {
            Ok(r) => r,
            Err(e) if matches!(e.code(), Code::Closed | Code::Protocol) || errors == 64 => {
                eprintln!("udp-echo: {e}");
                return 1;
            }
            // A refused or failed earlier send: report it and go on.
            Err(e) => {
                eprintln!("udp-echo: {e}");
                errors += 1;
                continue;
            }
        };
        errors = 0;
        if let Err(e) = socket.send_to(&buf[..n], from) {
            eprintln!("udp-echo: send to {from}: {e}");
            return 1;
        }
    }
}
