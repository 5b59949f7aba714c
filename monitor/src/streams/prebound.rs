//! The `--listen` grants' TCP sockets, bound and listening before the guest
//! starts (PROTOCOL.md §11.4): a port another process holds is a usage
//! error at start, naming the port, rather than a failure deep inside the
//! program; and peers that connect before the program listens wait in the
//! host's backlog instead of being refused (a program that listens on its
//! second grant only after serving its first still gets its peers).
//!
//! A guest's first listen on a grant takes that grant's socket; once that
//! listener ends the socket is closed, and a later listen on the grant
//! binds afresh ([`Prebound::listener`]). Binding here happens before the
//! sandbox (PROTOCOL.md §20.2) is entered; binding afresh later is within
//! it (Landlock allows binding the granted ports).

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::Mutex;
use thiserror::Error;

/// The host's queue of connections not yet accepted, per listener: as long
/// as the kernel allows (`somaxconn` caps it), so that a burst of clients
/// waiting for the guest is queued rather than refused or reset (tokio's
/// own `bind` asks for 128).
const LISTEN_QUEUE: i32 = 4096;

/// A grant whose socket could not be bound.
#[derive(Debug, Error)]
pub enum BindError {
    #[error("--listen {addr}: port {} is in use", addr.port())]
    InUse { addr: SocketAddr },
    #[error("--listen {addr}: cannot listen there: {source}")]
    Other { addr: SocketAddr, source: io::Error },
}

/// The grants' sockets not taken yet, by grant (as given on the command
/// line). Invariant: each grant has at most one entry.
#[derive(Debug, Default)]
pub struct Prebound {
    sockets: Mutex<Vec<(SocketAddr, TcpListener)>>,
}

impl Prebound {
    /// Binds a listening socket for each of `grants` (once per distinct
    /// address; port 0 takes a port the host chooses).
    pub fn bind(grants: &[SocketAddr]) -> Result<Self, BindError> {
        let mut sockets: Vec<(SocketAddr, TcpListener)> = Vec::new();
        for &addr in grants {
            if sockets.iter().any(|(g, _)| *g == addr) {
                continue;
            }
            let socket = bind(addr).map_err(|source| match source.kind() {
                io::ErrorKind::AddrInUse => BindError::InUse { addr },
                _ => BindError::Other { addr, source },
            })?;
            sockets.push((addr, socket));
        }
        Ok(Self {
            sockets: Mutex::new(sockets),
        })
    }

    /// A listening socket for `grant`: the one bound at start if no
    /// listener has taken it yet, else a new one.
    pub fn listener(&self, grant: SocketAddr) -> io::Result<TcpListener> {
        let taken = {
            let mut sockets = self.sockets.lock().unwrap_or_else(|e| e.into_inner());
            let at = sockets.iter().position(|(g, _)| *g == grant);
            at.map(|i| sockets.swap_remove(i).1)
        };
        taken.map_or_else(|| bind(grant), Ok)
    }
}

/// A non-blocking TCP socket listening on `addr` (`SO_REUSEADDR`, so a
/// port left in `TIME_WAIT` can be bound again).
pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_QUEUE)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    /// The address bound for `grant` and not taken yet, if any.
    fn bound(p: &Prebound, grant: SocketAddr) -> Option<SocketAddr> {
        let sockets = p.sockets.lock().unwrap();
        assert!(sockets.iter().filter(|(g, _)| *g == grant).count() <= 1);
        let (_, s) = sockets.iter().find(|(g, _)| *g == grant)?;
        s.local_addr().ok()
    }

    #[test]
    fn each_grant_is_bound_once_and_taken_once() {
        let any = addr("127.0.0.1:0");
        let p = Prebound::bind(&[any, any]).unwrap();
        let port = bound(&p, any).unwrap().port();
        assert_ne!(port, 0);
        // A peer may connect before the guest listens: it waits.
        let early = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let first = p.listener(any).unwrap();
        assert_eq!(first.local_addr().unwrap().port(), port);
        first.set_nonblocking(false).unwrap();
        let (_, peer) = first.accept().unwrap();
        assert_eq!(peer, early.local_addr().unwrap());
        assert_eq!(bound(&p, any), None);
        // Taken: the next listener binds afresh.
        let again = p.listener(any).unwrap();
        assert_ne!(again.local_addr().unwrap().port(), port);
    }

    #[test]
    fn a_port_in_use_is_named() {
        let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let busy = held.local_addr().unwrap();
        let e = Prebound::bind(&[addr("127.0.0.1:0"), busy]).unwrap_err();
        assert!(matches!(e, BindError::InUse { .. }), "{e}");
        assert_eq!(
            e.to_string(),
            format!("--listen {busy}: port {} is in use", busy.port())
        );
    }
}
