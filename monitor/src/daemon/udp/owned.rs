//! The owner's side of a fabric UDP socket (PROTOCOL.md §16.7, §19.6): the
//! task that holds the real socket for an app of some device (perhaps this
//! one), relays what it receives to that device and sends what that device
//! puts.
//!
//! While the app moves, the task *holds*: it puts HELD after the last
//! datagram it delivered, and keeps what comes (datagrams, and errors of
//! sends) in order, at most [`HELD_MAX`]; then it delivers to where the
//! app went (the device that took the socket over) or, if the move failed,
//! back to where it was, after a RESUMED. A hold that nobody ends within
//! [`HOLD_KEEP`] ends by itself, as a failed move.
//!
//! Invariants: the task is the only one that puts to the app's device, so
//! its puts (each awaited before the next) arrive in the order it made
//! them; what it holds is bounded; it closes the socket when the table's
//! entry goes (its queues close), when the app's device is unavailable
//! (not while held: the app is then between devices), or when this daemon
//! stops.

use super::super::fabric::Daemon;
use super::super::say;
use super::unavailable;
use crate::streams::{Peers, udp_send};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use weft_control::net_proto::MAX_DATAGRAM;
use weft_fabric::udp::UdpPut;

/// Datagrams (and errors) an owner holds at most while its app moves.
pub const HELD_MAX: usize = 4096;
/// How long a hold may last before it ends by itself.
pub const HOLD_KEEP: Duration = Duration::from_secs(60);
/// Receive buffer: larger than any datagram.
const RECV_BUF: usize = 64 * 1024;

/// What the table tells an owned socket's task.
#[derive(Debug)]
pub enum Control {
    /// Hold from now on; answered once HELD is put.
    Hold(oneshot::Sender<()>),
    /// Deliver to socket `app_socket` of device `app`: what was held
    /// first, after a RESUMED if `resumed` (the same app goes on).
    Deliver {
        app: String,
        app_socket: u64,
        resumed: bool,
    },
}

/// An owned socket's task.
pub struct Holder {
    pub daemon: Arc<Daemon>,
    pub socket: UdpSocket,
    /// This device's id for the socket.
    pub id: u64,
    /// The device whose app uses it, and that device's id for it.
    pub app: String,
    pub app_socket: u64,
    /// While held: what came, in order, and when the hold ends by itself.
    pub held: Option<(VecDeque<Vec<u8>>, Instant)>,
}

/// Why a task's inner loop stopped.
enum Step {
    /// The socket is closed.
    Closed,
    /// Another device took it: follow that device's availability.
    Moved,
}

impl Holder {
    /// Relays until the socket is closed.
    pub async fn hold(
        mut self,
        mut queue: mpsc::Receiver<(SocketAddr, Vec<u8>)>,
        mut control: mpsc::Receiver<Control>,
    ) {
        let mut peers = Peers::default();
        let mut buf = vec![0u8; RECV_BUF];
        loop {
            let step = self
                .serve(&mut queue, &mut control, &mut peers, &mut buf)
                .await;
            if let Step::Closed = step {
                break;
            }
        }
        self.daemon.udp.forget(self.id);
    }

    /// Relays for the device the socket is for now, until it is closed or
    /// taken by another.
    async fn serve(
        &mut self,
        queue: &mut mpsc::Receiver<(SocketAddr, Vec<u8>)>,
        control: &mut mpsc::Receiver<Control>,
        peers: &mut Peers,
        buf: &mut [u8],
    ) -> Step {
        let daemon = self.daemon.clone();
        let app = self.app.clone();
        let gone = unavailable(&daemon, &app);
        tokio::pin!(gone);
        loop {
            let held = self.held.as_ref().map(|(_, until)| *until);
            tokio::select! {
                r = self.socket.recv_from(buf) => match r {
                    Ok((n, from)) if n <= MAX_DATAGRAM => {
                        peers.saw(from);
                        let put = UdpPut::Datagram { from, payload: &buf[..n] };
                        self.relay(put.encode()).await;
                    }
                    // An error the host reports for an earlier send.
                    _ => {}
                },
                s = queue.recv() => {
                    let Some((to, payload)) = s else { return Step::Closed };
                    let policy = &self.daemon.udp.policy;
                    if let Err(f) = udp_send(&self.socket, to, &payload, peers, policy).await {
                        let put = UdpPut::Error { code: f.code as u32, message: &f.message };
                        self.relay(put.encode()).await;
                    }
                }
                c = control.recv() => match c {
                    None => return Step::Closed,
                    Some(Control::Hold(done)) => {
                        self.put(UdpPut::Held.encode()).await;
                        if self.held.is_none() {
                            self.held = Some((VecDeque::new(), Instant::now() + HOLD_KEEP));
                        }
                        let _ = done.send(());
                    }
                    Some(Control::Deliver { app, app_socket, resumed }) => {
                        let moved = app != self.app;
                        (self.app, self.app_socket) = (app, app_socket);
                        self.deliver(resumed).await;
                        if moved {
                            return Step::Moved;
                        }
                    }
                },
                () = tokio::time::sleep_until(held.unwrap_or_else(Instant::now)), if held.is_some() => {
                    if !self.daemon.udp.unhold(self.id) {
                        say(&format!(
                            "UDP socket {} was closed by the device its app moved to, and not taken back within {HOLD_KEEP:?}: it is closed",
                            self.name()
                        ));
                        return Step::Closed;
                    }
                    say(&format!(
                        "UDP socket {} was held for {HOLD_KEEP:?} while its app moved: device {} gets it again",
                        self.name(), self.app
                    ));
                    self.deliver(true).await;
                }
                () = &mut gone, if held.is_none() => {
                    say(&format!(
                        "device {} is unavailable: its UDP socket on {} is closed",
                        self.app,
                        self.name()
                    ));
                    return Step::Closed;
                }
            }
        }
    }

    fn name(&self) -> String {
        self.socket
            .local_addr()
            .map_or_else(|e| e.to_string(), |a| a.to_string())
    }

    /// Puts `bytes` to the app's device, or keeps them while held (what
    /// overflows the hold is dropped, as UDP may).
    async fn relay(&mut self, bytes: Vec<u8>) {
        match &mut self.held {
            Some((kept, _)) => {
                if kept.len() < HELD_MAX {
                    kept.push_back(bytes);
                }
            }
            None => self.put(bytes).await,
        }
    }

    /// Ends a hold: RESUMED first if `resumed`, then what was held.
    async fn deliver(&mut self, resumed: bool) {
        if resumed {
            self.put(UdpPut::Resumed.encode()).await;
        }
        for bytes in self.held.take().map(|(kept, _)| kept).unwrap_or_default() {
            self.put(bytes).await;
        }
    }

    async fn put(&self, bytes: Vec<u8>) {
        let udp = &self.daemon.udp;
        if self.app == udp.me {
            return udp.deliver(self.app_socket, &bytes);
        }
        let node = self.daemon.node().await;
        let _ = node.put_udp(&self.app, self.app_socket, bytes).await;
    }
}
