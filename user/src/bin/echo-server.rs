//! `echo-server PORT`: a TCP echo server on `0.0.0.0:PORT` (the `--listen`
//! address with that port) serving many connections at once from one event
//! loop: it waits on every stream with `poll`, then moves what it can
//! without blocking. Runs until killed.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec;
use alloc::vec::Vec;
use core::net::{IpAddr, Ipv4Addr, SocketAddr};
use weft_user::net::{TcpListener, TcpStream};
use weft_user::stream::{Interest, Stream, poll};
use weft_user::{Args, Code, Error, eprintln};

weft_user::entry!(main);

/// Connections served at once (`poll` watches at most 64 streams, one of
/// them the listener); further peers wait in the listener's backlog.
const MAX_CONNECTIONS: usize = 63;
/// Bytes read from a connection before they are echoed.
const BUF: usize = 16 * 1024;

fn main(args: Args) -> i32 {
    let Some(port) = args.get(1).and_then(|p| p.parse::<u16>().ok()) else {
        eprintln!("usage: echo-server PORT");
        return 2;
    };
    let addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port);
    let mut listener = match TcpListener::bind(addr) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("echo-server: listen on {addr}: {e}");
            return 1;
        }
    };
    eprintln!("echo-server: listening on {}", listener.local_addr());
    let mut conns: Vec<Echo> = Vec::new();
    loop {
        wait(&mut listener, &mut conns);
        while conns.len() < MAX_CONNECTIONS {
            match listener.try_accept() {
                Ok(Some((stream, _))) => conns.push(Echo::new(stream)),
                Ok(None) => break,
                // The listener itself ended.
                Err(e) if matches!(e.code(), Code::Closed | Code::Protocol) => {
                    eprintln!("echo-server: accept: {e}");
                    return 1;
                }
                // One connection could not be taken: serve the others.
                Err(e) => eprintln!("echo-server: accept: {e}"),
            }
        }
        conns.retain_mut(|c| match c.progress() {
            Ok(open) => open,
            Err(e) => {
                eprintln!("echo-server: connection from {}: {e}", c.stream.peer_addr());
                false
            }
        });
    }
}

/// Sleeps until the listener or a connection can move.
fn wait(listener: &mut TcpListener, conns: &mut [Echo]) {
    let mut watch: Vec<(&mut Stream, Interest)> = Vec::with_capacity(conns.len() + 1);
    if conns.len() < MAX_CONNECTIONS {
        watch.push((listener.as_stream_mut(), Interest::Read));
    }
    for c in conns.iter_mut() {
        let interest = c.interest();
        watch.push((c.stream.as_stream_mut(), interest));
    }
    poll(&mut watch, None);
}

/// One connection: bytes read and not yet echoed are `buf[start..end]`.
struct Echo {
    stream: TcpStream,
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl Echo {
    fn new(stream: TcpStream) -> Self {
        Self {
            stream,
            buf: vec![0; BUF],
            start: 0,
            end: 0,
        }
    }

    /// What the connection waits for: room to echo, else input.
    fn interest(&self) -> Interest {
        if self.start < self.end {
            Interest::Write
        } else {
            Interest::Read
        }
    }

    /// Echoes what it can without blocking; `Ok(false)` once the peer ended
    /// and everything was echoed (dropping the stream closes it).
    fn progress(&mut self) -> Result<bool, Error> {
        loop {
            if self.start < self.end {
                match self.stream.try_write(&self.buf[self.start..self.end])? {
                    0 => return Ok(true),
                    n => self.start += n,
                }
                continue;
            }
            match self.stream.try_read(&mut self.buf)? {
                None => return Ok(true),
                Some(0) => return Ok(false),
                Some(n) => (self.start, self.end) = (0, n),
            }
        }
    }
}
