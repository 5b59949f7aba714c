//! UDP on the fabric's addresses (PROTOCOL.md §16.7): a device owns the
//! addresses given with `--fabric-ip`; an app on any device binds a UDP
//! socket on one, and the owner holds the real socket.
//!
//! Both roles meet in one table of this device's sockets, by id (random,
//! so not guessed by another device), fed by the puts on
//! `weft/dev/<this device>/udp/<id>`:
//! - **owned**: a socket this device holds for an app of another device
//!   ([`FabricUdp::bind_owned`]); its task relays what the socket receives
//!   to the app's device and sends what the app's device puts, within this
//!   device's `--listen` and `--connect` grants and the socket's recent
//!   senders;
//! - **remote**: a socket another device holds for an app of this one
//!   ([`FabricUdp::route`]); its task puts the app's sends to the owner,
//!   and the table hands what the owner puts to the app's stream.
//!
//! Invariants: every queue is bounded and the puts' handler never waits (a
//! full queue drops the datagram, as UDP may), so no app and no peer can
//! hold this daemon; a put that does not decode, or names a socket of the
//! other role, is ignored with a log line (a few, then one in
//! [`LOG_EVERY`]); an owned socket is closed when the app's device closes
//! it, becomes unavailable, or this daemon stops (it ends with the
//! process); a remote socket's stream ends when its owner becomes
//! unavailable.

use super::fabric::Daemon;
use super::say;
use crate::streams::{
    Arrival, Failure, Peers, Policy, RemoteSocket, UdpBindAsk, UdpRoute, udp_send,
};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot, watch};
use weft_control::frame::Code;
use weft_control::net_proto::MAX_DATAGRAM;
use weft_fabric::node::UdpSink;
use weft_fabric::udp::UdpPut;
use weft_fabric::wire::{Request, Response};

/// Datagrams queued for one socket, each way.
pub const QUEUE: usize = 512;
/// Bad puts logged before only one in [`LOG_EVERY`] is.
const LOG_FIRST: u64 = 8;
const LOG_EVERY: u64 = 4096;
/// Receive buffer: larger than any datagram.
const RECV_BUF: usize = 64 * 1024;
/// How long a device may be missing from the available ones before its
/// sockets are closed: a presence token can be withdrawn and declared
/// again while Zenoh's routes change.
const GRACE: Duration = Duration::from_secs(5);
/// How long closing a socket on its owner may take.
const CLOSE_LIMIT: Duration = Duration::from_secs(2);

/// One socket of the table.
enum Endpoint {
    /// Held here for an app of `app`: its sends go to `sends`.
    Owned {
        app: String,
        sends: mpsc::Sender<(SocketAddr, Vec<u8>)>,
    },
    /// Held by another device for an app here: what it puts goes to the
    /// app's stream.
    Remote(mpsc::Sender<Arrival>),
}

/// This device's fabric UDP sockets, both roles.
pub struct FabricUdp {
    /// This device's name.
    me: String,
    /// The fabric addresses this device owns.
    owned_ips: Vec<IpAddr>,
    /// The grants its owned sockets are held within (`--listen`,
    /// `--connect`).
    policy: Policy,
    table: Mutex<HashMap<u64, Endpoint>>,
    bad_puts: AtomicU64,
}

impl FabricUdp {
    pub fn new(me: String, owned_ips: Vec<IpAddr>, policy: Policy) -> Arc<FabricUdp> {
        Arc::new(FabricUdp {
            me,
            owned_ips,
            policy,
            table: Mutex::default(),
            bad_puts: AtomicU64::new(0),
        })
    }

    fn table(&self) -> MutexGuard<'_, HashMap<u64, Endpoint>> {
        // Every change is one insert or remove: a poisoned table is whole.
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The handler of the puts on this device's UDP keys.
    pub fn sink(self: &Arc<Self>) -> UdpSink {
        let weak = Arc::downgrade(self);
        Arc::new(move |id, bytes| {
            if let Some(udp) = weak.upgrade() {
                udp.deliver(id, bytes);
            }
        })
    }

    /// Hands a put on socket `id` to its queue, without waiting.
    fn deliver(&self, id: u64, bytes: &[u8]) {
        let put = match UdpPut::decode(bytes) {
            Ok(p) => p,
            Err(e) => return self.bad_put(id, &e.to_string()),
        };
        let table = self.table();
        // A socket closed a moment ago: its late datagrams are dropped.
        let Some(endpoint) = table.get(&id) else {
            return;
        };
        match (endpoint, put) {
            (Endpoint::Owned { sends, .. }, UdpPut::Send { to, payload }) => {
                let _ = sends.try_send((to, payload.to_vec()));
            }
            (Endpoint::Remote(arrivals), UdpPut::Datagram { from, payload }) => {
                let _ = arrivals.try_send(Arrival::Datagram {
                    from,
                    payload: payload.to_vec(),
                });
            }
            (Endpoint::Remote(arrivals), UdpPut::Error { code, message }) => {
                let _ = arrivals.try_send(Arrival::Error {
                    code: Code::from_u32(code).unwrap_or(Code::Io),
                    message: message.to_string(),
                });
            }
            (_, put) => {
                drop(table);
                self.bad_put(id, &format!("{put:?} is not for a socket of this role"));
            }
        }
    }

    fn bad_put(&self, id: u64, why: &str) {
        let n = self.bad_puts.fetch_add(1, Ordering::Relaxed);
        if n < LOG_FIRST || n.is_multiple_of(LOG_EVERY) {
            say(&format!(
                "ignored a put on UDP socket {id}: {why} ({} such so far)",
                n + 1
            ));
        }
    }

    /// A fresh socket id, entered with `endpoint`.
    fn enter(&self, endpoint: Endpoint) -> u64 {
        let mut table = self.table();
        loop {
            let mut raw = [0u8; 8];
            // SystemRandom fails only without an entropy source; a clock
            // reading then keeps ids distinct, if guessable.
            let id =
                match ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut raw) {
                    Ok(()) => u64::from_le_bytes(raw),
                    Err(_) => std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(1, |d| d.as_nanos() as u64),
                };
            if let std::collections::hash_map::Entry::Vacant(v) = table.entry(id) {
                v.insert(endpoint);
                return id;
            }
        }
    }

    fn forget(&self, id: u64) {
        self.table().remove(&id);
    }

    /// Closes the socket `id` this device holds for `app` (the `udp_close`
    /// call).
    pub fn close(&self, app: &str, id: u64) -> Response {
        let mut table = self.table();
        match table.get(&id) {
            Some(Endpoint::Owned { app: holder, .. }) if holder == app => {
                // Its task sees the sends queue closed and closes the socket.
                table.remove(&id);
                Response::Done
            }
            _ => Response::Error {
                message: format!("no UDP socket {id} of device {app} here"),
            },
        }
    }

    /// Answers another device's `udp_bind`: binds `addr`, one of this
    /// device's fabric addresses, within its `--listen` grants, for an app
    /// of `app` whose socket id is `app_socket`.
    pub async fn bind_owned(
        daemon: Arc<Daemon>,
        addr: SocketAddr,
        app: String,
        app_socket: u64,
    ) -> Response {
        let udp = daemon.udp.clone();
        let refused = |f: Failure| Response::UdpRefused {
            code: f.code as u32,
            message: f.message,
        };
        if !weft_fabric::keys::valid_name(&app) {
            return refused(Failure::new(
                Code::Invalid,
                format!("{app:?} is not a device name"),
            ));
        }
        if !udp.owned_ips.contains(&addr.ip()) {
            return refused(Failure::new(
                Code::NotAllowed,
                format!("{} is not a fabric address of device {}", addr.ip(), udp.me),
            ));
        }
        let what = format!("device {}: binding UDP to fabric address", udp.me);
        let granted = match udp.policy.grant_listen(addr, &what) {
            Ok(a) => a,
            Err(f) => return refused(f),
        };
        let socket = match UdpSocket::bind(granted).await {
            Ok(s) => s,
            Err(e) => return refused(Failure::io(&format!("bind UDP to {granted}"), &e)),
        };
        let local = match socket.local_addr() {
            Ok(a) => a,
            Err(e) => return refused(Failure::io("socket address", &e)),
        };
        let (sends, queue) = mpsc::channel(QUEUE);
        let id = udp.enter(Endpoint::Owned {
            app: app.clone(),
            sends,
        });
        let holder = Holder {
            daemon,
            socket,
            id,
            app,
            app_socket,
        };
        tokio::spawn(holder.hold(queue));
        Response::UdpBound {
            addr: local,
            socket: id,
        }
    }

    /// Answers a UDP stream's bind on `ask.addr`: local unless another
    /// device owns the address, in which case that device is asked to bind
    /// it.
    pub async fn route(daemon: Arc<Daemon>, ask: UdpBindAsk) {
        let UdpBindAsk { addr, reply } = ask;
        let udp = daemon.udp.clone();
        let owner = daemon.node().await.fabric_owner(addr.ip());
        let owner = match owner {
            Some(o) if o != udp.me => o,
            _ => {
                let _ = reply.send(UdpRoute::Local);
                return;
            }
        };
        let (arrivals, arrived) = mpsc::channel(QUEUE);
        let id = udp.enter(Endpoint::Remote(arrivals));
        let request = Request::UdpBind {
            addr,
            device: udp.me.clone(),
            socket: id,
        };
        let refusal = match daemon.call(&owner, request).await {
            Ok(Response::UdpBound {
                addr: local,
                socket: theirs,
            }) => {
                let (sends, queue) = mpsc::channel(QUEUE);
                let (gone, why) = oneshot::channel();
                let socket = RemoteSocket {
                    local,
                    arrivals: arrived,
                    sends,
                    gone: why,
                };
                let relay = Relay {
                    daemon,
                    id,
                    owner,
                    theirs,
                    local,
                };
                if reply.send(UdpRoute::Remote(socket)).is_ok() {
                    relay.run(queue, gone).await;
                } else {
                    relay.close().await;
                }
                return;
            }
            Ok(Response::UdpRefused { code, message }) => UdpRoute::Refused {
                code: Code::from_u32(code).unwrap_or(Code::Io),
                message,
            },
            Ok(other) => UdpRoute::Refused {
                code: Code::Io,
                message: format!("device {owner} answered udp_bind with {other:?}"),
            },
            Err(e) => UdpRoute::Refused {
                code: Code::Unreachable,
                message: format!("binding UDP to {addr} on device {owner}: {e}"),
            },
        };
        udp.forget(id);
        let _ = reply.send(refusal);
    }
}

/// Waits until `device` is no longer available, having been seen, and has
/// not come back within [`GRACE`] (a node reopened meanwhile is followed).
async fn unavailable(daemon: &Daemon, device: &str) {
    let mut seen = false;
    loop {
        let mut available: watch::Receiver<_> = daemon.node().await.available();
        loop {
            let here = available.borrow_and_update().contains(device);
            if seen && !here {
                let missing = std::time::Instant::now();
                let back = available.wait_for(|set| set.contains(device));
                match tokio::time::timeout(GRACE, back).await {
                    Ok(Ok(_)) => {
                        say(&format!(
                            "device {device} was unavailable for {:?}",
                            missing.elapsed()
                        ));
                        continue;
                    }
                    _ => return,
                }
            }
            seen |= here;
            if available.changed().await.is_err() {
                break;
            }
        }
        // The node closed: a new one comes unless the daemon stops.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// An owned socket's task.
struct Holder {
    daemon: Arc<Daemon>,
    socket: UdpSocket,
    id: u64,
    app: String,
    app_socket: u64,
}

impl Holder {
    /// Relays until the app's device closes the socket or is unavailable.
    async fn hold(self, mut queue: mpsc::Receiver<(SocketAddr, Vec<u8>)>) {
        let mut peers = Peers::default();
        let mut buf = vec![0u8; RECV_BUF];
        let gone = unavailable(&self.daemon, &self.app);
        tokio::pin!(gone);
        loop {
            tokio::select! {
                r = self.socket.recv_from(&mut buf) => match r {
                    Ok((n, from)) if n <= MAX_DATAGRAM => {
                        peers.saw(from);
                        let put = UdpPut::Datagram { from, payload: &buf[..n] };
                        self.put(put).await;
                    }
                    // An error the host reports for an earlier send.
                    _ => {}
                },
                s = queue.recv() => {
                    let Some((to, payload)) = s else { break };
                    let policy = &self.daemon.udp.policy;
                    if let Err(f) = udp_send(&self.socket, to, &payload, &peers, policy).await {
                        let put = UdpPut::Error { code: f.code as u32, message: &f.message };
                        self.put(put).await;
                    }
                }
                () = &mut gone => {
                    say(&format!(
                        "device {} is unavailable: its UDP socket on {} is closed",
                        self.app,
                        self.socket.local_addr().map_or_else(|e| e.to_string(), |a| a.to_string())
                    ));
                    break;
                }
            }
        }
        self.daemon.udp.forget(self.id);
    }

    async fn put(&self, put: UdpPut<'_>) {
        let node = self.daemon.node().await;
        let _ = node.put_udp(&self.app, self.app_socket, put.encode()).await;
    }
}

/// A remote socket's task on the app's device.
struct Relay {
    daemon: Arc<Daemon>,
    /// This device's id for the socket.
    id: u64,
    owner: String,
    /// The owner's id for it.
    theirs: u64,
    local: SocketAddr,
}

impl Relay {
    /// Puts the app's sends to the owner until the stream ends (then the
    /// owner is told to close the socket) or the owner is unavailable
    /// (then the stream is told why on `gone`).
    async fn run(
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

    /// Forgets the socket here and asks the owner to close it.
    async fn close(self) {
        self.daemon.udp.forget(self.id);
        let request = Request::UdpClose {
            device: self.daemon.udp.me.clone(),
            socket: self.theirs,
        };
        let node = self.daemon.node().await;
        if let Err(e) = node.call(&self.owner, &request, CLOSE_LIMIT).await {
            say(&format!(
                "closing UDP socket {} on device {}: {e}",
                self.local, self.owner
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn udp() -> Arc<FabricUdp> {
        FabricUdp::new("a".into(), vec![], Policy::default())
    }

    #[test]
    fn puts_reach_only_a_socket_of_their_role() {
        let udp = udp();
        let (tx, mut rx) = mpsc::channel(2);
        let remote = udp.enter(Endpoint::Remote(tx));
        let (stx, mut srx) = mpsc::channel(2);
        let owned = udp.enter(Endpoint::Owned {
            app: "b".into(),
            sends: stx,
        });
        let from: SocketAddr = "10.0.0.1:5".parse().unwrap();
        let datagram = UdpPut::Datagram {
            from,
            payload: b"x",
        }
        .encode();
        let send = UdpPut::Send {
            to: from,
            payload: b"y",
        }
        .encode();
        let sink = udp.sink();
        // Each to its role; crossed, to the wrong role, malformed or to no
        // socket: ignored.
        sink(remote, &datagram);
        sink(owned, &send);
        sink(remote, &send);
        sink(owned, &datagram);
        sink(remote, &[0xff, 1, 2]);
        sink(12345, &datagram);
        assert_eq!(
            rx.try_recv().unwrap(),
            Arrival::Datagram {
                from,
                payload: b"x".to_vec()
            }
        );
        assert!(rx.try_recv().is_err());
        assert_eq!(srx.try_recv().unwrap(), (from, b"y".to_vec()));
        assert!(srx.try_recv().is_err());
        // A full queue drops, never waits.
        for _ in 0..5 {
            sink(remote, &datagram);
        }
        assert_eq!(rx.len(), 2);
        assert_eq!(udp.bad_puts.load(Ordering::Relaxed), 3);
    }

    #[test]
    fn only_the_app_device_closes_its_socket() {
        let udp = udp();
        let (stx, _srx) = mpsc::channel(1);
        let id = udp.enter(Endpoint::Owned {
            app: "b".into(),
            sends: stx,
        });
        assert!(matches!(udp.close("c", id), Response::Error { .. }));
        assert_eq!(udp.close("b", id), Response::Done);
        assert!(matches!(udp.close("b", id), Response::Error { .. }));
    }
}
