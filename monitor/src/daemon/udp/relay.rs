//! The app's side of a fabric UDP socket (PROTOCOL.md §16.7): the task
//! that puts the app's sends to the socket's owner (perhaps this device)
//! until the app's stream ends, and then asks the owner to close the
//! socket, unless the app moved away with it (§19.6).

use super::super::fabric::Daemon;
use super::super::say;
use super::unavailable;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use weft_fabric::udp::UdpPut;
use weft_fabric::wire::Request;

/// How long closing a socket on its owner may take.
const CLOSE_LIMIT: Duration = Duration::from_secs(2);

/// A remote socket's task on the app's device.
pub struct Relay {
    pub daemon: Arc<Daemon>,
    /// This device's id for the socket.
    pub id: u64,
    pub owner: String,
    /// The owner's id for it.
    pub theirs: u64,
    pub local: SocketAddr,
}

impl Relay {
    /// Puts the app's sends to the owner until the stream ends (then the
    /// owner is told to close the socket) or the owner is unavailable
    /// (then the stream is told why on `gone`).
    pub async fn run(
        self,
        mut queue: mpsc::Receiver<(SocketAddr, Vec<u8>)>,
        gone: oneshot::Sender<String>,
    ) {
        let ended = {
            let lost = unavailable(&self.daemon, &self.owner);
            tokio::pin!(lost);
            self.relay(&mut queue, lost, gone).await
        };
        if ended {
            self.close().await;
        }
    }

    /// Relays until the stream ends (`true`) or the owner is lost.
    async fn relay(
        &self,
        queue: &mut mpsc::Receiver<(SocketAddr, Vec<u8>)>,
        mut lost: std::pin::Pin<&mut impl Future<Output = ()>>,
        gone: oneshot::Sender<String>,
    ) -> bool {
        loop {
            tokio::select! {
                s = queue.recv() => {
                    let Some((to, payload)) = s else { return true };
                    let put = UdpPut::Send { to, payload: &payload }.encode();
                    let udp = &self.daemon.udp;
                    if self.owner == udp.me {
                        udp.deliver(self.theirs, &put);
                        continue;
                    }
                    let node = self.daemon.node().await;
                    let _ = node.put_udp(&self.owner, self.theirs, put).await;
                }
                () = &mut lost => {
                    self.daemon.udp.forget(self.id);
                    let _ = gone.send(format!(
                        "device {}, which holds this UDP socket on {}, is unavailable",
                        self.owner, self.local
                    ));
                    return false;
                }
            }
        }
    }

    /// Forgets the socket here and asks the owner to close it, unless the
    /// app moved away with it (it was forgotten then).
    pub async fn close(self) {
        if !self.daemon.udp.forget(self.id) {
            return;
        }
        let request = Request::UdpClose {
            device: self.daemon.udp.me.clone(),
            socket: self.theirs,
        };
        let closed = tokio::time::timeout(CLOSE_LIMIT, self.daemon.call(&self.owner, request));
        match closed.await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => say(&format!(
                "closing UDP socket {} on device {}: {e}",
                self.local, self.owner
            )),
            Err(_) => say(&format!(
                "closing UDP socket {} on device {}: no answer within {CLOSE_LIMIT:?}",
                self.local, self.owner
            )),
        }
    }
}
