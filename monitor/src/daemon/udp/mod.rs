//! UDP on the fabric's addresses (PROTOCOL.md §16.7): a device owns the
//! addresses given with `--fabric-ip`; an app on any device (this one too)
//! binds a UDP socket on one, and the owner holds the real socket, which
//! follows the app when it moves (§19.6).
//!
//! Both roles meet in one table of this device's sockets, by id (random,
//! so not guessed by another device), fed by the puts on
//! `weft/dev/<this device>/udp/<id>` (and, when both roles are this
//! device's, handed over in the process):
//! - **owned**: a socket this device holds for an app of some device
//!   ([`FabricUdp::bind_owned`]); its task ([`owned`]) relays what the
//!   socket receives to the app's device and sends what that device puts,
//!   within this device's `--listen` and `--connect` grants and the
//!   socket's recent senders; it holds what comes while the app moves;
//! - **remote**: a socket some device holds for an app here
//!   ([`FabricUdp::route`]); its task ([`relay`]) puts the app's sends to
//!   the owner, and the table hands what the owner puts to the app's
//!   stream.
//!
//! Invariants: every queue is bounded and the puts' handler never waits (a
//! full queue drops the datagram, as UDP may, but keeps room for the
//! owner's HELD and RESUMED); a put that does not decode, or names a socket
//! of the other role, is ignored with a log line (a few, then one in
//! [`LOG_EVERY`]); an owned socket is closed when the app's device closes
//! it, becomes unavailable, or this daemon stops (it ends with the
//! process); a remote socket's stream ends when its owner becomes
//! unavailable. Only the device an owned socket is held for takes it over,
//! and only the device it was taken from takes it back.

mod moving;
mod owned;
mod relay;

use super::fabric::Daemon;
use super::say;
use crate::streams::{Arrival, Failure, MARKER_ROOM, Policy, RemoteSocket, UdpBindAsk, UdpRoute};
use owned::{Control, Holder};
use relay::Relay;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot, watch};
use weft_control::frame::Code;
use weft_fabric::node::UdpSink;
use weft_fabric::udp::UdpPut;
use weft_fabric::wire::{Request, Response};

/// Datagrams queued for one socket, each way (an app's arrivals: as many
/// as an owner may hold while the app moves, which come at once).
pub const QUEUE: usize = owned::HELD_MAX + MARKER_ROOM;
/// Bad puts logged before only one in [`LOG_EVERY`] is.
const LOG_FIRST: u64 = 8;
const LOG_EVERY: u64 = 4096;
/// How long a device may be missing from the available ones before its
/// sockets are closed: a presence token can be withdrawn and declared
/// again while Zenoh's routes change.
const GRACE: Duration = Duration::from_secs(5);
/// How long an owner may take to hold a socket.
const HOLD_LIMIT: Duration = Duration::from_secs(2);

/// A socket held here for an app of device `app`.
struct Owned {
    app: String,
    /// `app`'s id for it.
    app_socket: u64,
    /// The address it is bound to.
    local: SocketAddr,
    /// While its app moves: the device it moves to, which may take it.
    held_for: Option<String>,
    /// The device (and its id) that last gave it up to a move, which may
    /// take it back if that move fails, and when.
    previous: Option<(String, u64, Instant)>,
    /// Closed by the device that took it over while the device it came
    /// from may still take it back: held until that one does, or the hold
    /// runs out (then closed).
    orphaned: bool,
    sends: mpsc::Sender<(SocketAddr, Vec<u8>)>,
    control: mpsc::Sender<Control>,
}

/// A socket another device (or this one) holds for an app here.
struct Remote {
    /// What comes for it, to the app's stream.
    arrivals: mpsc::Sender<Arrival>,
    /// The local process whose stream it is.
    process: Option<u32>,
    /// Once bound: where it is held.
    bound: Option<Bound>,
}

/// Where a remote socket is held.
#[derive(Clone, Debug)]
struct Bound {
    owner: String,
    /// The owner's id for it.
    theirs: u64,
    local: SocketAddr,
}

/// One socket of the table.
enum Endpoint {
    Owned(Owned),
    Remote(Remote),
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
        // Every change is one insert, remove or field update: a poisoned
        // table is whole.
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
        let arrival = match (endpoint, put) {
            (Endpoint::Owned(owned), UdpPut::Send { to, payload }) => {
                let _ = owned.sends.try_send((to, payload.to_vec()));
                return;
            }
            (Endpoint::Remote(_), UdpPut::Datagram { from, payload }) => Arrival::Datagram {
                from,
                payload: payload.to_vec(),
            },
            (Endpoint::Remote(_), UdpPut::Error { code, message }) => Arrival::Error {
                code: Code::from_u32(code).unwrap_or(Code::Io),
                message: message.to_string(),
            },
            (Endpoint::Remote(_), UdpPut::Held) => Arrival::Paused,
            (Endpoint::Remote(_), UdpPut::Resumed) => Arrival::Resumed,
            (_, put) => {
                drop(table);
                return self.bad_put(id, &format!("{put:?} is not for a socket of this role"));
            }
        };
        if let Endpoint::Remote(remote) = endpoint {
            let marker = matches!(arrival, Arrival::Paused | Arrival::Resumed);
            if marker || remote.arrivals.capacity() > MARKER_ROOM {
                let _ = remote.arrivals.try_send(arrival);
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

    /// Forgets socket `id`; whether it was there.
    fn forget(&self, id: u64) -> bool {
        self.table().remove(&id).is_some()
    }

    /// The owned socket `id`, if `device` uses it (or, with `previous`,
    /// gave it up to a move), under the table's lock.
    fn owned_by<'t>(
        table: &'t mut HashMap<u64, Endpoint>,
        id: u64,
        device: &str,
        previous: bool,
    ) -> Option<&'t mut Owned> {
        match table.get_mut(&id) {
            Some(Endpoint::Owned(o))
                if o.app == device
                    || (previous && o.previous.as_ref().is_some_and(|(d, ..)| d == device)) =>
            {
                Some(o)
            }
            _ => None,
        }
    }

    fn no_socket(id: u64, device: &str) -> Response {
        Response::Error {
            message: format!("no UDP socket {id} of device {device} here"),
        }
    }

    /// Closes the socket `id` this device holds for `app` (the `udp_close`
    /// call); but one `app` took over from another device lately is only
    /// held, as that device may take it back (its app's move failed at
    /// `app`, whose runtime ended).
    pub fn close(&self, app: &str, id: u64) -> Response {
        let mut table = self.table();
        let Some(owned) = Self::owned_by(&mut table, id, app, false) else {
            return Self::no_socket(id, app);
        };
        if owned
            .previous
            .as_ref()
            .is_some_and(|(.., at)| at.elapsed() < owned::HOLD_KEEP)
        {
            owned.orphaned = true;
            owned.held_for = None;
            let (done, _) = oneshot::channel();
            let _ = owned.control.try_send(Control::Hold(done));
            return Response::Done;
        }
        // Its task sees its queues closed and closes the socket.
        table.remove(&id);
        Response::Done
    }

    /// Holds what socket `id`, which `app` uses, receives: its app moves
    /// to `to` (the `udp_hold` call); answers once HELD is put.
    pub async fn hold(&self, app: &str, id: u64, to: String) -> Response {
        let control = {
            let mut table = self.table();
            let Some(owned) = Self::owned_by(&mut table, id, app, false) else {
                return Self::no_socket(id, app);
            };
            if let Some(other) = &owned.held_for {
                return Response::Error {
                    message: format!("UDP socket {id} is held for device {other} already"),
                };
            }
            owned.held_for = Some(to);
            owned.previous = None;
            owned.control.clone()
        };
        let (done, held) = oneshot::channel();
        if control.send(Control::Hold(done)).await.is_err()
            || tokio::time::timeout(HOLD_LIMIT, held).await.is_err()
        {
            return Response::Error {
                message: format!("UDP socket {id} is closing"),
            };
        }
        Response::Done
    }

    /// Delivers again to `app` what socket `id` receives and held: its
    /// app's move failed (the `udp_release` call). `app` may also be the
    /// device that gave the socket up to the move, which takes it back.
    pub async fn release(&self, app: &str, id: u64) -> Response {
        let (control, app_socket) = {
            let mut table = self.table();
            let Some(owned) = Self::owned_by(&mut table, id, app, true) else {
                return Self::no_socket(id, app);
            };
            if owned.app != app
                && let Some((device, socket, _)) = owned.previous.take()
            {
                (owned.app, owned.app_socket) = (device, socket);
            }
            owned.held_for = None;
            owned.orphaned = false;
            (owned.control.clone(), owned.app_socket)
        };
        let deliver = Control::Deliver {
            app: app.to_string(),
            app_socket,
            resumed: true,
        };
        match control.send(deliver).await {
            Ok(()) => Response::Done,
            Err(_) => Response::Error {
                message: format!("UDP socket {id} is closing"),
            },
        }
    }

    /// Ends the hold of socket `id`, whose task's hold ran out: where it
    /// is (`true`), or, for an orphaned one, by closing it (`false`).
    fn unhold(&self, id: u64) -> bool {
        let mut table = self.table();
        match table.get_mut(&id) {
            Some(Endpoint::Owned(o)) if !o.orphaned => {
                o.held_for = None;
                true
            }
            _ => {
                table.remove(&id);
                false
            }
        }
    }

    /// Takes over the socket bound on `addr` held for `device` (its app
    /// moved there), for `device`'s socket `app_socket`: its id here.
    async fn take(&self, addr: SocketAddr, device: &str, app_socket: u64) -> Option<u64> {
        let (id, control) = {
            let mut table = self.table();
            let (&id, owned) = table.iter_mut().find_map(|(id, e)| match e {
                Endpoint::Owned(o) if o.local == addr && o.held_for.as_deref() == Some(device) => {
                    Some((id, o))
                }
                _ => None,
            })?;
            let was = std::mem::replace(&mut owned.app, device.to_string());
            owned.previous = Some((was, owned.app_socket, Instant::now()));
            owned.app_socket = app_socket;
            owned.held_for = None;
            (id, owned.control.clone())
        };
        let deliver = Control::Deliver {
            app: device.to_string(),
            app_socket,
            resumed: false,
        };
        control.send(deliver).await.ok().map(|()| id)
    }

    /// Answers a device's `udp_bind` (this device's too): binds `addr`,
    /// one of this device's fabric addresses, within its `--listen`
    /// grants, for an app of `app` whose socket id is `app_socket`; or
    /// hands `app` the socket on `addr` held for it (§19.6).
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
        if let Some(socket) = udp.take(addr, &app, app_socket).await {
            return Response::UdpBound { addr, socket };
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
        let (control, orders) = mpsc::channel(4);
        let id = udp.enter(Endpoint::Owned(Owned {
            app: app.clone(),
            app_socket,
            local,
            held_for: None,
            previous: None,
            orphaned: false,
            sends,
            control,
        }));
        let holder = Holder {
            daemon,
            socket,
            id,
            app,
            app_socket,
            held: None,
        };
        tokio::spawn(holder.hold(queue, orders));
        Response::UdpBound {
            addr: local,
            socket: id,
        }
    }

    /// Answers a UDP stream's bind on `ask.addr`: local unless the address
    /// is a fabric address, in which case its owner (perhaps this device)
    /// binds it.
    pub async fn route(daemon: Arc<Daemon>, ask: UdpBindAsk) {
        let UdpBindAsk {
            addr,
            region,
            reply,
        } = ask;
        let udp = daemon.udp.clone();
        let owner = if udp.owned_ips.contains(&addr.ip()) {
            Some(udp.me.clone())
        } else {
            daemon.node().await.fabric_owner(addr.ip())
        };
        let Some(owner) = owner else {
            let _ = reply.send(UdpRoute::Local);
            return;
        };
        let process = daemon
            .device
            .handle
            .process_of_region(region)
            .map(|(p, _)| p);
        let (arrivals, arrived) = mpsc::channel(QUEUE);
        let id = udp.enter(Endpoint::Remote(Remote {
            arrivals,
            process,
            bound: None,
        }));
        let answer = if owner == udp.me {
            Ok(Self::bind_owned(daemon.clone(), addr, owner.clone(), id).await)
        } else {
            let request = Request::UdpBind {
                addr,
                device: udp.me.clone(),
                socket: id,
            };
            daemon.call(&owner, request).await
        };
        let refusal = match answer {
            Ok(Response::UdpBound {
                addr: local,
                socket: theirs,
            }) => {
                let bound = Bound {
                    owner: owner.clone(),
                    theirs,
                    local,
                };
                if let Some(Endpoint::Remote(r)) = udp.table().get_mut(&id) {
                    r.bound = Some(bound);
                }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn udp() -> Arc<FabricUdp> {
        FabricUdp::new("a".into(), vec![], Policy::default())
    }

    fn remote(udp: &FabricUdp, capacity: usize) -> (u64, mpsc::Receiver<Arrival>) {
        let (arrivals, rx) = mpsc::channel(capacity);
        let remote = Remote {
            arrivals,
            process: Some(7),
            bound: None,
        };
        (udp.enter(Endpoint::Remote(remote)), rx)
    }

    type Queues = (
        mpsc::Receiver<(SocketAddr, Vec<u8>)>,
        mpsc::Receiver<Control>,
    );

    fn owned(udp: &FabricUdp, app: &str, local: &str) -> (u64, Queues) {
        let (sends, srx) = mpsc::channel(2);
        let (control, crx) = mpsc::channel(4);
        let owned = Owned {
            app: app.into(),
            app_socket: 11,
            local: local.parse().unwrap(),
            held_for: None,
            previous: None,
            orphaned: false,
            sends,
            control,
        };
        (udp.enter(Endpoint::Owned(owned)), (srx, crx))
    }

    #[test]
    fn puts_reach_only_a_socket_of_their_role() {
        let udp = udp();
        let (remote, mut rx) = remote(&udp, 2 + MARKER_ROOM);
        let (owned, (mut srx, _control)) = owned(&udp, "b", "10.0.0.9:1");
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
        sink(owned, &UdpPut::Held.encode());
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
        assert_eq!(udp.bad_puts.load(Ordering::Relaxed), 4);
        // A full queue drops datagrams, never waits, and keeps room for the
        // owner's markers.
        for _ in 0..5 {
            sink(remote, &datagram);
        }
        assert_eq!(rx.len(), 2);
        sink(remote, &UdpPut::Held.encode());
        sink(remote, &UdpPut::Resumed.encode());
        assert_eq!(rx.len(), 4);
        let arrivals: Vec<_> = std::iter::from_fn(|| rx.try_recv().ok()).collect();
        assert_eq!(arrivals[2..], [Arrival::Paused, Arrival::Resumed]);
    }

    #[test]
    fn only_the_app_device_closes_its_socket() {
        let udp = udp();
        let (id, _queues) = owned(&udp, "b", "10.0.0.9:1");
        assert!(matches!(udp.close("c", id), Response::Error { .. }));
        assert_eq!(udp.close("b", id), Response::Done);
        assert!(matches!(udp.close("b", id), Response::Error { .. }));
    }

    /// Holds `id` for `app`, answering the task's part: HELD is put.
    async fn hold(
        udp: &FabricUdp,
        control: &mut mpsc::Receiver<Control>,
        app: &str,
        id: u64,
        to: &str,
    ) -> Response {
        let task = async {
            if let Some(Control::Hold(done)) = control.recv().await {
                let _ = done.send(());
            }
        };
        tokio::join!(udp.hold(app, id, to.into()), task).0
    }

    fn app_of(udp: &FabricUdp, id: u64) -> (String, u64, Option<String>) {
        match udp.table().get(&id) {
            Some(Endpoint::Owned(o)) => (o.app.clone(), o.app_socket, o.held_for.clone()),
            _ => panic!("socket {id} is not owned here"),
        }
    }

    #[tokio::test]
    async fn only_the_device_a_socket_is_held_for_takes_it_and_only_its_giver_takes_it_back() {
        let udp = udp();
        let local: SocketAddr = "10.0.0.9:1".parse().unwrap();
        let (id, (_sends, mut control)) = owned(&udp, "b", "10.0.0.9:1");
        // Only its app's device holds it, and once.
        assert!(matches!(
            udp.hold("c", id, "d".into()).await,
            Response::Error { .. }
        ));
        assert_eq!(hold(&udp, &mut control, "b", id, "c").await, Response::Done);
        assert!(matches!(
            udp.hold("b", id, "d".into()).await,
            Response::Error { .. }
        ));
        // Neither another device nor another address takes it.
        assert_eq!(udp.take(local, "d", 5).await, None);
        let other = "10.0.0.9:2".parse().unwrap();
        assert_eq!(udp.take(other, "c", 5).await, None);
        assert_eq!(udp.take(local, "c", 5).await, Some(id));
        assert_eq!(app_of(&udp, id), ("c".into(), 5, None));
        assert!(matches!(
            control.recv().await,
            Some(Control::Deliver {
                resumed: false,
                app_socket: 5,
                ..
            })
        ));
        // The move failed after all, and the runtime that took it over
        // ended first: its close only holds the socket, and the device it
        // came from takes it back, once; the device it went to no longer
        // closes it.
        assert_eq!(udp.close("c", id), Response::Done);
        assert!(matches!(control.recv().await, Some(Control::Hold(_))));
        assert!(matches!(udp.release("d", id).await, Response::Error { .. }));
        assert_eq!(udp.release("b", id).await, Response::Done);
        assert_eq!(app_of(&udp, id), ("b".into(), 11, None));
        assert!(matches!(
            control.recv().await,
            Some(Control::Deliver {
                resumed: true,
                app_socket: 11,
                ..
            })
        ));
        assert!(matches!(udp.close("c", id), Response::Error { .. }));
        assert_eq!(udp.close("b", id), Response::Done);
    }

    #[test]
    fn a_moved_process_forgets_its_sockets_only() {
        let udp = udp();
        let (mine, _rx) = remote(&udp, 1);
        let (other, _orx) = remote(&udp, 1);
        if let Some(Endpoint::Remote(r)) = udp.table().get_mut(&other) {
            r.process = Some(8);
        }
        udp.left(7);
        assert!(!udp.forget(mine));
        assert!(udp.forget(other));
    }
}
