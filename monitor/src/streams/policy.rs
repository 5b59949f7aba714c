//! What the guest may reach (PROTOCOL.md §10, §11, §12): the grants given
//! on the command line (`--fs-root`, `--read-only`, `--listen`,
//! `--connect`) and every check made against them. Default deny: a stream
//! reaches a file, an address to listen on or a peer only if a grant names
//! it, and the check is made before any host object (file, socket) is made
//! or reaches the guest. The one host object made up front is each
//! `--listen` grant's listening socket ([`super::prebound`]), which reaches
//! the guest only through a listen the grant allows. It also carries the
//! limits of the guest's budgets ([`super::budget`]).

use super::budget::Limits;
use super::framed::Failure;
use super::prebound::{BindError, Prebound};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use thiserror::Error;
use weft_control::frame::Code;

/// A grant that cannot be honoured.
#[derive(Debug, Error)]
pub enum PolicyError {
    /// `--fs-root` does not name a usable directory.
    #[error("--fs-root {}: {source}", path.display())]
    FsRoot {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A `--listen` address cannot be bound (§11.4).
    #[error(transparent)]
    Listen(#[from] BindError),
}

/// What the guest may reach (`--fs-root`, `--read-only`, `--listen`,
/// `--connect`): everything else is refused.
#[derive(Debug, Default)]
pub struct Policy {
    /// The directory the guest sees as `/`, opened once at start.
    pub fs_root: Option<std::fs::File>,
    /// File streams cannot modify `fs_root`.
    pub read_only: bool,
    /// Addresses the guest may listen on.
    pub listen: Vec<SocketAddr>,
    /// Their TCP sockets, bound by [`Policy::new`] before the guest starts.
    pub listeners: Prebound,
    /// Addresses the guest may connect to.
    pub connect: Vec<SocketAddr>,
    /// The guest's budgets of host resources (§20.1).
    pub limits: Limits,
    /// `--fs-quota`: how much the guest may add under `fs_root` (§10.4).
    pub fs_quota: Option<super::fs::Quota>,
}

impl Policy {
    /// Opens `fs_root` (which must be a directory), binds a listening TCP
    /// socket on each `listen` address (§11.4) and records the grants.
    pub fn new(
        fs_root: Option<&Path>,
        read_only: bool,
        listen: Vec<SocketAddr>,
        connect: Vec<SocketAddr>,
    ) -> Result<Self, PolicyError> {
        let fs_root = fs_root
            .map(|path| {
                let fail = |source| PolicyError::FsRoot {
                    path: path.to_path_buf(),
                    source,
                };
                let dir = std::fs::File::open(path).map_err(fail)?;
                if !dir.metadata().map_err(fail)?.is_dir() {
                    return Err(fail(std::io::Error::from(
                        std::io::ErrorKind::NotADirectory,
                    )));
                }
                Ok(dir)
            })
            .transpose()?;
        Ok(Self {
            fs_root,
            read_only,
            listeners: Prebound::bind(&listen)?,
            listen,
            connect,
            limits: Limits::default(),
            fs_quota: None,
        })
    }

    /// The root directory file streams resolve beneath, or `Unsupported`
    /// without `--fs-root`.
    pub fn fs_root(&self) -> Result<&std::fs::File, Failure> {
        self.fs_root
            .as_ref()
            .ok_or_else(|| Failure::new(Code::Unsupported, "no --fs-root given"))
    }

    /// The address to bind for a guest's request to listen (or bind UDP) on
    /// `asked`: an exact `--listen` address, or — for an unspecified IP
    /// (`0.0.0.0`, `[::]`) — the first `--listen` address with the asked port
    /// (any port if it is 0). Anything else is refused with `NotAllowed`.
    /// `what` names the request in the refusal ("listening on").
    pub fn grant_listen(&self, asked: SocketAddr, what: &str) -> Result<SocketAddr, Failure> {
        let granted = &self.listen;
        let found = if asked.ip().is_unspecified() {
            granted
                .iter()
                .find(|g| asked.port() == 0 || g.port() == asked.port())
        } else {
            granted.iter().find(|g| **g == asked)
        };
        found.copied().ok_or_else(|| {
            Failure::new(
                Code::NotAllowed,
                format!("{what} {asked} is not allowed: not granted by --listen"),
            )
        })
    }

    /// Whether `--connect` names `addr` exactly.
    fn may_connect(&self, addr: SocketAddr) -> bool {
        self.connect.contains(&addr)
    }

    /// Refuses a connection (or datagram) to an address `--connect` does not name.
    pub fn grant_connect(&self, addr: SocketAddr) -> Result<(), Failure> {
        if self.may_connect(addr) {
            Ok(())
        } else {
            Err(Failure::new(
                Code::NotAllowed,
                format!("connecting to {addr} is not allowed: not granted by --connect"),
            ))
        }
    }

    /// Refuses a datagram to `addr` unless `--connect` names it or it is a
    /// `peer` (an address that sent to the socket: a UDP server answers its
    /// clients).
    pub fn grant_send(&self, addr: SocketAddr, peer: bool) -> Result<(), Failure> {
        if peer || self.may_connect(addr) {
            return Ok(());
        }
        Err(Failure::new(
            Code::NotAllowed,
            format!(
                "sending to {addr} is not allowed: not granted by --connect, and it sent nothing to this socket"
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(listen: &[&str], connect: &[&str]) -> Policy {
        let parse = |v: &[&str]| v.iter().map(|a| a.parse().unwrap()).collect();
        Policy {
            listen: parse(listen),
            connect: parse(connect),
            ..Policy::default()
        }
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn listening_is_granted_exactly_or_by_port_for_an_unspecified_ip() {
        let p = policy(&["127.0.0.1:8080", "[::1]:9090"], &[]);
        let grant = |a| p.grant_listen(addr(a), "listening on").map_err(|f| f.code);
        assert_eq!(grant("127.0.0.1:8080"), Ok(addr("127.0.0.1:8080")));
        assert_eq!(grant("0.0.0.0:8080"), Ok(addr("127.0.0.1:8080")));
        assert_eq!(grant("0.0.0.0:9090"), Ok(addr("[::1]:9090")));
        assert_eq!(grant("[::]:0"), Ok(addr("127.0.0.1:8080")));
        assert_eq!(grant("127.0.0.2:8080"), Err(Code::NotAllowed));
        assert_eq!(grant("0.0.0.0:1"), Err(Code::NotAllowed));
        let f = policy(&[], &[])
            .grant_listen(addr("0.0.0.0:80"), "listening on")
            .unwrap_err();
        assert_eq!(
            f.message,
            "listening on 0.0.0.0:80 is not allowed: not granted by --listen"
        );
    }

    #[test]
    fn connecting_is_granted_only_exactly() {
        let p = policy(&[], &["10.0.0.1:443"]);
        assert!(p.grant_connect(addr("10.0.0.1:443")).is_ok());
        for a in ["10.0.0.1:80", "10.0.0.2:443", "0.0.0.0:443"] {
            let f = p.grant_connect(addr(a)).unwrap_err();
            assert_eq!(f.code, Code::NotAllowed);
            assert!(f.message.contains(a) && f.message.contains("--connect"));
        }
    }

    #[test]
    fn datagrams_go_to_granted_addresses_and_to_peers_that_sent() {
        let p = policy(&[], &["10.0.0.1:53"]);
        let peer = addr("10.0.0.9:4000");
        assert!(p.grant_send(addr("10.0.0.1:53"), false).is_ok());
        assert!(p.grant_send(peer, true).is_ok());
        let f = p.grant_send(peer, false).unwrap_err();
        assert_eq!(f.code, Code::NotAllowed);
    }

    #[test]
    fn the_fs_root_must_be_a_directory() {
        let dir = std::env::temp_dir();
        assert!(Policy::new(Some(&dir), true, vec![], vec![]).is_ok());
        let missing = dir.join("weft-policy-no-such-dir");
        let e = Policy::new(Some(&missing), false, vec![], vec![]).unwrap_err();
        assert!(e.to_string().starts_with("--fs-root "), "{e}");
        let f = Policy::default().fs_root().unwrap_err();
        assert_eq!(f.code, Code::Unsupported);
    }
}
