//! `echo-server ADDR`: echoes every connection's bytes back, many
//! connections at once, as an event app: `main` opens the listener and
//! returns; each event moves what it can without waiting.

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use weft_app::{App, Event, Interest};

/// A connection and the bytes it sent that are not echoed yet.
struct Conn {
    stream: TcpStream,
    pending: Vec<u8>,
    /// The peer finished sending: close once `pending` is out.
    done: bool,
}

struct Echo {
    listener: TcpListener,
    conns: HashMap<RawFd, Conn>,
}

impl Echo {
    fn accept(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    if stream.set_nonblocking(true).is_err()
                        || weft_app::interest(&stream, Interest::Readable).is_err()
                    {
                        continue;
                    }
                    let conn = Conn {
                        stream,
                        pending: Vec::new(),
                        done: false,
                    };
                    self.conns.insert(conn.stream.as_raw_fd(), conn);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) => {
                    eprintln!("echo-server: accept: {e}");
                    return;
                }
            }
        }
    }

    /// Echoes what waits, reads what is there, and so on until one of the
    /// two would block; then waits for that one.
    fn serve(&mut self, fd: RawFd) {
        let Some(c) = self.conns.get_mut(&fd) else {
            return;
        };
        let mut buf = [0u8; 64 * 1024];
        let wait = loop {
            match flush(c) {
                Ok(true) => {}
                Ok(false) => break Interest::Writable,
                Err(()) => break Interest::None,
            }
            if c.done {
                break Interest::None;
            }
            match c.stream.read(&mut buf) {
                Ok(0) => c.done = true,
                Ok(n) => c.pending.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break Interest::Readable,
                Err(_) => break Interest::None,
            }
        };
        if wait == Interest::None {
            // Finished or broken. Dropping the stream closes it; the peer
            // reads end-of-file.
            self.conns.remove(&fd);
        } else {
            let _ = weft_app::interest(&c.stream, wait);
        }
    }
}

/// Writes what is pending: `Ok(true)` when all is out, `Ok(false)` when the
/// socket is full.
fn flush(c: &mut Conn) -> Result<bool, ()> {
    while !c.pending.is_empty() {
        match c.stream.write(&c.pending) {
            Ok(n) => {
                c.pending.drain(..n);
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(false),
            Err(_) => return Err(()),
        }
    }
    Ok(true)
}

impl App for Echo {
    fn event(&mut self, event: Event) {
        match event {
            Event::Readable(fd) if fd == self.listener.as_raw_fd() => self.accept(),
            Event::Readable(fd) | Event::Writable(fd) => self.serve(fd),
            // Ended, or left behind when the app moved (§19.2): gone.
            Event::Closed { fd, .. } | Event::Moved { fd, .. } => {
                self.conns.remove(&fd);
            }
            Event::Timer(_) | Event::Exited { .. } => {}
        }
    }
}

fn main() {
    let Some(addr) = std::env::args().nth(1) else {
        eprintln!("usage: echo-server ADDR:PORT");
        std::process::exit(2);
    };
    let listener = match weft_app::listen(&addr) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("echo-server: listen on {addr}: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = weft_app::interest(&listener, Interest::Readable) {
        eprintln!("echo-server: {e}");
        std::process::exit(1);
    }
    println!("echo-server: listening on {addr}");
    weft_app::run(Echo {
        listener,
        conns: HashMap::new(),
    });
}
