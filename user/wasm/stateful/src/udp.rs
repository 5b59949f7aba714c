//! `stateful --udp ADDR`: a UDP socket whose every datagram is sent back,
//! unchanged, to its sender, in the order they arrived. On a fabric
//! address it follows the app when it moves (PROTOCOL.md §12.5), so a
//! client sees its datagrams echoed wherever the app runs.

use std::io::{self, ErrorKind};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use weft_app::Interest;
use weft_app::net::{MAX_DATAGRAM, UdpSocket};

/// Errors in a row after which the socket is taken for broken: a refused
/// send's error is reported once and the socket goes on (the next call
/// does what was asked); an ended stream repeats its error at every call.
const MAX_ERRORS: u32 = 64;

/// The socket, and the buffer each datagram passes through.
pub struct Echo {
    socket: UdpSocket,
    buf: Vec<u8>,
    /// The datagram in `buf` not sent back yet: its length and sender. It
    /// is sent before another is taken.
    unsent: Option<(usize, SocketAddr)>,
    /// Whether the app waits for the socket to be writable (to send
    /// `unsent`), as well as readable.
    waits_writable: bool,
}

/// Prints `stateful: udp: WHY` and exits with status 6.
pub fn failed(why: std::fmt::Arguments<'_>) -> ! {
    crate::line(format_args!("stateful: udp: {why}"));
    std::process::exit(6)
}

impl Echo {
    /// Binds on `addr`, interested in its datagrams; prints `stateful udp
    /// BOUND_ADDR`.
    pub fn bind(addr: SocketAddr) -> Self {
        let socket =
            UdpSocket::bind(addr).unwrap_or_else(|e| failed(format_args!("bind {addr}: {e}")));
        let local = socket
            .local_addr()
            .unwrap_or_else(|e| failed(format_args!("its address: {e}")));
        if let Err(e) = weft_app::interest(&socket, Interest::Readable) {
            failed(format_args!("interest: {e}"));
        }
        crate::line(format_args!("stateful udp {local}"));
        Self {
            socket,
            buf: vec![0; MAX_DATAGRAM],
            unsent: None,
            waits_writable: false,
        }
    }

    pub fn fd(&self) -> RawFd {
        self.socket.as_raw_fd()
    }

    /// Echoes every datagram that waits, each sent before the next is
    /// taken; stops when none waits, or when a send would block (then the
    /// app waits for the socket to be writable too).
    pub fn echo(&mut self) {
        while self.send_unsent() {
            match self.retry(|e| e.socket.recv_from(&mut e.buf), "receive") {
                Some(taken) => self.unsent = Some(taken),
                None => return,
            }
        }
    }

    /// Sends back the datagram taken and not sent yet, if there is one;
    /// whether nothing is left unsent. While a send would block, the
    /// app's interest covers writability.
    fn send_unsent(&mut self) -> bool {
        let Some((n, from)) = self.unsent else {
            return true;
        };
        let sent = self
            .retry(|e| e.socket.send_to(&e.buf[..n], from), "send")
            .is_some();
        if sent {
            self.unsent = None;
        }
        if sent == self.waits_writable {
            let interest = if sent {
                Interest::Readable
            } else {
                Interest::Both
            };
            if let Err(e) = weft_app::interest(&self.socket, interest) {
                failed(format_args!("interest: {e}"));
            }
            self.waits_writable = !sent;
        }
        sent
    }

    /// `call` until it does what it was asked: `None` when it would block;
    /// a refused earlier send's error (returned instead, once) is reported
    /// on standard error and the call made again, and [`MAX_ERRORS`] in a
    /// row fail the app.
    fn retry<T>(
        &mut self,
        mut call: impl FnMut(&mut Self) -> io::Result<T>,
        what: &str,
    ) -> Option<T> {
        let mut errors = 0;
        loop {
            match call(self) {
                Ok(done) => return Some(done),
                Err(e) if e.kind() == ErrorKind::WouldBlock => return None,
                Err(e) => {
                    errors += 1;
                    if errors >= MAX_ERRORS {
                        failed(format_args!("{what}: {e}"));
                    }
                    eprintln!("stateful: udp: {what}: {e}");
                }
            }
        }
    }
}
