//! `udp-echo-app PORT [IP]`: binds UDP `IP:PORT` (without IP,
//! `0.0.0.0:PORT`: the `--listen` address with that port; under a daemon
//! IP may be a fabric address of another device), says
//! `udp-echo-app: bound to IP:PORT` on standard error, and sends each
//! datagram back to its sender, as the native `udp-echo` does. An event
//! app: each `READABLE` of the socket echoes what waits until it would
//! block. Runs until killed, or until the socket fails (status 1).

use std::io::ErrorKind;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use weft_app::net::{MAX_DATAGRAM, UdpSocket};
use weft_app::{App, Event, Interest};

/// Errors in a row after which the socket is taken for broken: a refused
/// or failed send is one error and the socket goes on; an ended stream
/// repeats its error forever.
const MAX_ERRORS: u32 = 64;

struct Echo {
    socket: UdpSocket,
    buf: Vec<u8>,
    errors: u32,
}

impl Echo {
    /// Counts an error in a row; ends the app after [`MAX_ERRORS`].
    fn error(&mut self, what: std::fmt::Arguments<'_>) {
        eprintln!("udp-echo-app: {what}");
        self.errors += 1;
        if self.errors >= MAX_ERRORS {
            weft_app::exit(1);
        }
    }

    /// Echoes every datagram that waits.
    fn echo(&mut self) {
        loop {
            let (n, from) = match self.socket.recv_from(&mut self.buf) {
                Ok(r) => r,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                // A refused or failed earlier send: report it and go on.
                Err(e) => {
                    self.error(format_args!("{e}"));
                    continue;
                }
            };
            match self.socket.send_to(&self.buf[..n], from) {
                Ok(_) => self.errors = 0,
                Err(e) => self.error(format_args!("send to {from}: {e}")),
            }
        }
    }
}

impl App for Echo {
    fn event(&mut self, event: Event) {
        match event {
            Event::Readable(_) => self.echo(),
            Event::Closed { code, .. } => {
                eprintln!("udp-echo-app: the socket was ended (code {code})");
                weft_app::exit(1);
            }
            _ => {}
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let port = args.get(1).and_then(|p| p.parse::<u16>().ok());
    let ip = match args.get(2) {
        None => Some(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
        Some(ip) => ip.parse::<IpAddr>().ok(),
    };
    let (Some(port), Some(ip), None) = (port, ip, args.get(3)) else {
        eprintln!("usage: udp-echo-app PORT [IP]");
        weft_app::exit(2);
    };
    let addr = SocketAddr::new(ip, port);
    let socket = match UdpSocket::bind(addr) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("udp-echo-app: bind {addr}: {e}");
            weft_app::exit(1);
        }
    };
    match socket.local_addr() {
        Ok(local) => eprintln!("udp-echo-app: bound to {local}"),
        Err(e) => {
            eprintln!("udp-echo-app: bound, but its address: {e}");
            weft_app::exit(1);
        }
    }
    if let Err(e) = weft_app::interest(&socket, Interest::Readable) {
        eprintln!("udp-echo-app: interest: {e}");
        weft_app::exit(1);
    }
    weft_app::run(Echo {
        socket,
        buf: vec![0; MAX_DATAGRAM],
        errors: 0,
    });
}
