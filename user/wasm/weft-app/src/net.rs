//! UDP sockets (PROTOCOL.md §12, §13.3), shaped like `std::net::UdpSocket`
//! (WASI preview 1 has no UDP): bound where `weft run --listen` grants
//! (an unspecified IP, `0.0.0.0:PORT`, asks for the granted address with
//! that port), and under `weft daemon` possibly on a fabric address that
//! another device owns and serves (§12.4).
//!
//! A socket is always non-blocking: [`UdpSocket::recv_from`] returns
//! [`io::ErrorKind::WouldBlock`] when no datagram waits, and an event app
//! registers interest ([`crate::interest`]) to get [`crate::Event::Readable`]
//! when one does. A send returns at once; the system checks its
//! destination afterwards (`--connect`, or one of the socket's last 1024
//! senders), and a refused send is reported once, as the error of the next
//! `recv_from` or `send_to` (`PermissionDenied` for a destination not
//! allowed): the socket goes on. Dropping the socket closes it.
//!
//! ```no_run
//! use std::io::ErrorKind;
//! use weft_app::net::UdpSocket;
//! use weft_app::{App, Event, Interest};
//!
//! struct Echo(UdpSocket);
//!
//! impl App for Echo {
//!     fn event(&mut self, _: Event) {
//!         let mut buf = [0u8; 2048];
//!         loop {
//!             match self.0.recv_from(&mut buf) {
//!                 Ok((n, from)) => {
//!                     let _ = self.0.send_to(&buf[..n], from);
//!                 }
//!                 Err(e) if e.kind() == ErrorKind::WouldBlock => return,
//!                 Err(e) => eprintln!("echo: {e}"),
//!             }
//!         }
//!     }
//! }
//!
//! let socket = UdpSocket::bind("0.0.0.0:7000".parse().unwrap()).unwrap();
//! weft_app::interest(&socket, Interest::Readable).unwrap();
//! weft_app::run(Echo(socket));
//! ```

use crate::check;
use crate::sys;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use weft_control::app::ADDR_TEXT_MAX;
pub use weft_control::app::MAX_DATAGRAM;

/// An address text the runtime wrote.
fn parse(text: &[u8]) -> io::Result<SocketAddr> {
    std::str::from_utf8(text)
        .ok()
        .and_then(|t| t.parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "a bad address from the runtime"))
}

/// A bound UDP socket; closed on drop.
#[derive(Debug)]
pub struct UdpSocket {
    fd: OwnedFd,
}

impl UdpSocket {
    /// Binds a socket on `addr` (port 0: one the system picks; see
    /// [`Self::local_addr`]). A bind `--listen` does not grant fails with
    /// `PermissionDenied`, an address in use with `AddrInUse`.
    pub fn bind(addr: SocketAddr) -> io::Result<Self> {
        let text = addr.to_string();
        let mut fd = -1;
        // SAFETY: `text` is valid for its length; `fd` is a valid out pointer.
        check("udp_bind", unsafe {
            sys::udp_bind(text.as_ptr(), text.len(), &mut fd)
        })?;
        // SAFETY: the runtime just opened `fd` for this app, and nothing
        // else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Self { fd })
    }

    /// The address the socket is bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        let mut text = [0u8; ADDR_TEXT_MAX];
        let mut len = 0u32;
        // SAFETY: `text` is valid for its length; `len` is a valid out
        // pointer.
        check("udp_local_addr", unsafe {
            sys::udp_local_addr(self.as_raw_fd(), text.as_mut_ptr(), text.len(), &mut len)
        })?;
        parse(text.get(..len as usize).unwrap_or_default())
    }

    /// Sends `buf` as one datagram to `to` (at most [`MAX_DATAGRAM`]
    /// bytes, else an `EMSGSIZE` error); its length. An error a
    /// refused earlier send left is returned instead, and nothing is sent.
    pub fn send_to(&self, buf: &[u8], to: SocketAddr) -> io::Result<usize> {
        let text = to.to_string();
        // SAFETY: both slices are valid for their lengths.
        check("udp_send_to", unsafe {
            sys::udp_send_to(
                self.as_raw_fd(),
                buf.as_ptr(),
                buf.len(),
                text.as_ptr(),
                text.len(),
            )
        })?;
        Ok(buf.len())
    }

    /// Takes the next datagram: what fits of it in `buf` (the rest of a
    /// longer one is dropped, as `recvfrom` does) and its sender.
    /// `WouldBlock` when none waits; the error of a refused earlier send
    /// when that is next.
    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        let mut addr = [0u8; ADDR_TEXT_MAX];
        let mut out = [0u32; 2];
        // SAFETY: `buf` and `addr` are valid for their lengths; `out` is
        // two u32s, as the runtime writes.
        check("udp_recv_from", unsafe {
            sys::udp_recv_from(
                self.as_raw_fd(),
                buf.as_mut_ptr(),
                buf.len(),
                addr.as_mut_ptr(),
                addr.len(),
                out.as_mut_ptr(),
            )
        })?;
        let [len, addr_len] = out;
        let from = parse(addr.get(..addr_len as usize).unwrap_or_default())?;
        Ok((buf.len().min(len as usize), from))
    }
}

impl AsRawFd for UdpSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}
