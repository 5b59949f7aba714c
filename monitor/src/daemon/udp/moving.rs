//! A moving app's fabric UDP sockets, on the app's device (PROTOCOL.md
//! §19.6): before the app is captured each socket's owner is asked to hold
//! what comes ([`FabricUdp::pause`]); if the move fails, to deliver again
//! ([`FabricUdp::resume`]); if it succeeds, the sockets are forgotten here
//! ([`FabricUdp::moved`]), so that the end of the app's streams here does
//! not close them: the destination took them over by binding the same
//! addresses.

use super::super::fabric::CALL_LIMIT;
use super::super::fabric::Daemon;
use super::super::say;
use super::{Bound, Endpoint, FabricUdp};
use crate::streams::Arrival;
use weft_fabric::wire::{Request, Response};

impl FabricUdp {
    /// Where the bound fabric sockets of local process `process` are
    /// held.
    fn sockets_of(&self, process: u32) -> Vec<Bound> {
        self.table()
            .values()
            .filter_map(|e| match e {
                Endpoint::Remote(r) if r.process == Some(process) => r.bound.clone(),
                _ => None,
            })
            .collect()
    }

    /// Asks the owner of each fabric socket of local process `process` to
    /// hold what comes for it, which then goes to device `to` once `to`
    /// takes the socket over. If one cannot be held, those held are
    /// released and the answer says why.
    pub async fn pause(daemon: &Daemon, process: u32, to: &str) -> Result<(), String> {
        let mut held = Vec::new();
        for bound in daemon.udp.sockets_of(process) {
            if let Err(e) = ask(daemon, &bound, Some(to)).await {
                for b in held {
                    release(daemon, &b).await;
                }
                return Err(format!(
                    "its UDP socket on {} was not held by device {}: {e}",
                    bound.local, bound.owner
                ));
            }
            held.push(bound);
        }
        Ok(())
    }

    /// Asks the owners of local process `process`'s fabric sockets to
    /// deliver again (its move failed). Each stream says `RESUMED` at once,
    /// before the runtime is released: a later capture must not take the
    /// owner's RESUMED, still on its way, for a pause that is over.
    pub async fn resume(daemon: &Daemon, process: u32) {
        daemon.udp.resumed(process);
        for bound in daemon.udp.sockets_of(process) {
            release(daemon, &bound).await;
        }
    }

    /// Tells each stream of local process `process`'s fabric sockets that
    /// it is resumed (the owner's RESUMED is then a second one, which
    /// changes nothing).
    fn resumed(&self, process: u32) {
        for e in self.table().values() {
            if let Endpoint::Remote(r) = e
                && r.process == Some(process)
            {
                let _ = r.arrivals.try_send(Arrival::Resumed);
            }
        }
    }

    /// Forgets local process `process`'s fabric sockets without closing
    /// them: the app moved away with them, or (on a destination whose
    /// restore failed) goes on where it came from, with them.
    pub fn left(&self, process: u32) {
        let mut table = self.table();
        table.retain(|_, e| !matches!(e, Endpoint::Remote(r) if r.process == Some(process)));
    }
}

/// Asks `bound`'s owner to hold it for device `to` (`udp_hold`), or with
/// `None` to deliver it again (`udp_release`). The owner may be this
/// device.
async fn ask(daemon: &Daemon, bound: &Bound, to: Option<&str>) -> Result<(), String> {
    let (udp, device, socket) = (&daemon.udp, daemon.udp.me.clone(), bound.theirs);
    let response = if bound.owner == udp.me {
        match to {
            Some(to) => udp.hold(&device, socket, to.to_string()).await,
            None => udp.release(&device, socket).await,
        }
    } else {
        let request = match to {
            Some(to) => Request::UdpHold {
                device,
                socket,
                to: to.to_string(),
            },
            None => Request::UdpRelease { device, socket },
        };
        let node = daemon.node().await;
        node.call(&bound.owner, &request, CALL_LIMIT)
            .await
            .map_err(|e| e.to_string())?
    };
    match response {
        Response::Done => Ok(()),
        Response::Error { message } => Err(message),
        other => Err(format!("unexpected answer {other:?}")),
    }
}

/// Asks `bound`'s owner to deliver it again.
async fn release(daemon: &Daemon, bound: &Bound) {
    if let Err(e) = ask(daemon, bound, None).await {
        say(&format!(
            "the UDP socket on {} held by device {} could not be released: {e}",
            bound.local, bound.owner
        ));
    }
}
