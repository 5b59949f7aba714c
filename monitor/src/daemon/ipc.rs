//! The daemon's IPC hub (PROTOCOL.md §18): this device's instances of
//! services, and the routing of every message its programs, its CLI and
//! other devices send.
//!
//! A message to a service goes, in this order of preference: to the
//! instance its pid names; to an instance on this device (the same-device
//! path: from one stream to another, never through Zenoh), the sender's
//! own if it provides one (two apps of one runtime then talk without a
//! process switch), else the oldest; to the first
//! device, in name order, that lists one (a Zenoh `get` on its
//! queryable, whose reply is the answer). A message is written into its
//! instance's stream by the thread that routes it when nothing of that
//! instance waits before it ([`Direct`]); else it waits in the instance's
//! bounded queue ([`INBOX`]); a full one answers `Busy`.
//! Messages are queued in the order the hub routes them, which is the
//! order each stream sent them.
//!
//! Only what this device's registry ([`super::services`]) allows happens:
//! a process provides a service only if the registry names what it runs
//! as the provider, and sends only to what its grants allow (`Denied`
//! otherwise). A message to a service with no instance anywhere starts
//! one ([`activation`]) on a device that declares it, and waits (with the
//! messages that follow it, in order) until it runs.
//!
//! Invariants: every [`Outgoing`] gets exactly one answer (the provider's,
//! or an error saying why there is none); an instance is listed (and its
//! token declared) exactly while its stream's [`Inbox`] lives, across
//! reopenings of the node; the hub never waits for a program.

mod activation;
mod follow;

use super::device::Whereabouts;
use super::fabric::Daemon;
use super::services::Services;
use crate::streams::{
    Answerer, Delivery, DeviceHandle, Direct, Hold, INBOX, Inbox, Outgoing, Route, WayBack,
};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::Duration;
use tokio::sync::{Notify, mpsc, watch};
use weft_control::ipc_proto::{Guid, IpcError};
use weft_fabric::ipc::{ANY, Deliver, Message};
use weft_fabric::wire::Pid;

/// How much longer a query to another device lasts than its sender waits.
const QUERY_GRACE: Duration = Duration::from_secs(1);
/// Holds queued for one instance's delivery at most.
const HOLDS: usize = 4;

/// One running instance of a service on this device.
struct Instance {
    /// Its registration, unique for the daemon's life.
    key: u64,
    pid: u32,
    name: String,
    inbox: mpsc::Sender<Delivery>,
    /// The way into its stream that skips the inbox.
    direct: Arc<Direct>,
    /// Its delivery's holds, while its app is moved.
    holds: mpsc::Sender<Hold>,
    /// The runtime its stream runs on, where its service's queryable is
    /// served.
    runtime: tokio::runtime::Handle,
}

/// A service instance as `weft ipc services` lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed {
    pub guid: Guid,
    pub name: String,
    pub pid: u32,
}

/// A message whose sender is known and allowed, being routed.
struct Routed {
    guid: Guid,
    target: Option<Pid>,
    request: bool,
    timeout: Duration,
    sender: String,
    /// The sending process on this device, whose own instance is
    /// preferred (none for the CLI and other devices).
    local: Option<u32>,
    data: Vec<u8>,
    answer: Answerer,
}

/// The outcome of an activation, shared by everyone who waits for it.
type Started = Option<Result<(), (IpcError, String)>>;

/// This device's services and the routing of messages.
pub struct Hub {
    device: String,
    handle: DeviceHandle,
    registry: Services,
    /// The daemon, once it exists.
    daemon: OnceLock<Weak<Daemon>>,
    instances: Mutex<BTreeMap<Guid, Vec<Instance>>>,
    /// Told whenever an instance is added.
    served: Notify,
    /// Messages waiting for a provider being started, by service, in the
    /// order they came.
    parked: Mutex<HashMap<Guid, VecDeque<Routed>>>,
    /// Activations of this device's services in progress.
    starting: Mutex<HashMap<Guid, watch::Receiver<Started>>>,
    /// Where the instances of apps moved away went, by service, for the
    /// messages that still come here ([`follow`]).
    forwards: Mutex<HashMap<Guid, follow::Forward>>,
    /// Message ids and registration keys.
    next: AtomicU64,
    /// The daemon's runtime, for withdrawals made where no runtime runs.
    runtime: tokio::runtime::Handle,
}

fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Each change is one insert or remove: never left half done.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Hub {
    /// A hub with no instances, for device `device`, whose programs are
    /// found through `handle` and whose registry is in `state`. Must be
    /// called inside the daemon's runtime.
    pub fn new(device: String, handle: DeviceHandle, state: &Path) -> Arc<Hub> {
        Arc::new(Hub {
            device,
            handle,
            registry: Services::new(state),
            daemon: OnceLock::new(),
            instances: Mutex::new(BTreeMap::new()),
            served: Notify::new(),
            parked: Mutex::new(HashMap::new()),
            starting: Mutex::new(HashMap::new()),
            forwards: Mutex::new(HashMap::new()),
            next: AtomicU64::new(1),
            runtime: tokio::runtime::Handle::current(),
        })
    }

    /// Tells the hub its daemon.
    pub fn attach(&self, daemon: &Arc<Daemon>) {
        let _ = self.daemon.set(Arc::downgrade(daemon));
    }

    fn daemon(&self) -> Option<Arc<Daemon>> {
        self.daemon.get()?.upgrade()
    }

    /// The registry's services this device starts on a first message.
    pub fn activatable(&self) -> std::collections::BTreeSet<Guid> {
        self.registry
            .current()
            .activatable()
            .into_iter()
            .map(|(g, _)| g)
            .collect()
    }

    /// The node's way of handing this device the messages other devices
    /// send it.
    pub fn deliverer(self: &Arc<Self>) -> Deliver {
        let hub = Arc::downgrade(self);
        Arc::new(
            move |guid, m: Message, answer: Answerer| match hub.upgrade() {
                Some(hub) => {
                    let target = (m.target != ANY).then_some(m.target);
                    let routed = Routed {
                        guid,
                        target: None,
                        request: m.request,
                        timeout: Duration::from_millis(m.timeout_ms.into()),
                        sender: m.sender,
                        local: None,
                        data: m.data,
                        answer,
                    };
                    hub.deliver(target, routed);
                }
                None => {
                    answer.answer(Err((
                        IpcError::Unreachable,
                        "the device is stopping".into(),
                    )));
                }
            },
        )
    }

    /// The instances on this device, by service.
    pub fn listed(&self) -> Vec<Listed> {
        locked(&self.instances)
            .iter()
            .flat_map(|(guid, list)| {
                list.iter().map(|i| Listed {
                    guid: *guid,
                    name: i.name.clone(),
                    pid: i.pid,
                })
            })
            .collect()
    }

    /// Every instance's (service, pid, stream's runtime), to declare again
    /// on a new node.
    pub fn declared(&self) -> Vec<(Guid, u32, tokio::runtime::Handle)> {
        locked(&self.instances)
            .iter()
            .flat_map(|(g, list)| list.iter().map(|i| (*g, i.pid, i.runtime.clone())))
            .collect()
    }

    /// Makes the process of pipe region `region` an instance of `guid`,
    /// shown as `name`, whose stream runs on `runtime` and is written
    /// through `direct`: listed here, declared on the fabric.
    pub async fn serve(
        self: &Arc<Self>,
        daemon: &Arc<Daemon>,
        region: u64,
        guid: Guid,
        name: String,
        runtime: tokio::runtime::Handle,
        direct: Arc<Direct>,
    ) -> Result<Inbox, (IpcError, String)> {
        let (pid, identity) = self.handle.process_of_region(region).ok_or((
            IpcError::Invalid,
            "the serving process is not running".to_string(),
        ))?;
        self.registry
            .current()
            .may_provide(&guid, &identity)
            .map_err(|why| (IpcError::Denied, why))?;
        let (inbox, messages) = mpsc::channel(INBOX);
        let (holds, held) = mpsc::channel(HOLDS);
        let key = self.next.fetch_add(1, Ordering::Relaxed);
        // A reopening of the node in between declares the instance on the
        // new node if it is listed by then; if not, declaring it on the
        // closed one fails and the registration below withdraws it.
        let node = daemon.node().await;
        {
            let mut instances = locked(&self.instances);
            let list = instances.entry(guid).or_default();
            if list.iter().any(|i| i.pid == pid) {
                let why = format!("process {pid} provides service {guid} already");
                return Err((IpcError::Invalid, why));
            }
            list.push(Instance {
                key,
                pid,
                name,
                inbox,
                direct,
                holds,
                runtime: runtime.clone(),
            });
        }
        self.served.notify_waiters();
        let registration = Registration {
            hub: Arc::downgrade(self),
            daemon: Arc::downgrade(daemon),
            guid,
            key,
            pid,
        };
        node.provide(guid, pid, &runtime).await.map_err(|e| {
            (
                IpcError::Unreachable,
                format!("cannot declare the service: {e}"),
            )
        })?;
        Ok(Inbox {
            messages,
            holds: held,
            registration: Box::new(registration),
        })
    }

    /// The hub as IPC streams reach it, to route from their own thread.
    pub fn router(self: &Arc<Self>) -> Arc<dyn Route> {
        Arc::new(self.clone())
    }

    /// Routes `out` (§18.4) if its sender may send it (§18.7).
    pub async fn send(self: &Arc<Self>, out: Outgoing) {
        let (sender, local) = match out.region {
            None => (self.device.clone(), None),
            Some(region) => match self.handle.process_of_region(region) {
                Some((pid, identity)) => {
                    if let Err(why) = self.registry.current().may_send(&out.guid, &identity) {
                        out.answer.answer(Err((IpcError::Denied, why)));
                        return;
                    }
                    // A process moved here sends under the pid it was born
                    // with.
                    let sender = match self.daemon() {
                        Some(daemon) => daemon.device.fabric_pid(pid).to_string(),
                        None => Pid::text(&self.device, pid),
                    };
                    (sender, Some(pid))
                }
                None => {
                    out.answer.answer(Err((
                        IpcError::Invalid,
                        "the sending process is not running".into(),
                    )));
                    return;
                }
            },
        };
        let target = match out.pid.as_deref().map(Pid::parse) {
            None => None,
            Some(Ok(p)) => Some(p),
            Some(Err(e)) => {
                out.answer.answer(Err((IpcError::Invalid, e)));
                return;
            }
        };
        let routed = Routed {
            guid: out.guid,
            target,
            request: out.request,
            timeout: out.timeout,
            sender,
            local,
            data: out.data,
            answer: out.answer,
        };
        self.route(routed, None).await;
    }

    /// Routes `m`: to its target, else an instance here, else one
    /// elsewhere (on `started`, the device a provider was just started on,
    /// if given), else it waits for one to be started.
    async fn route(self: &Arc<Self>, m: Routed, started: Option<&str>) {
        let Some(daemon) = self.daemon() else {
            m.answer.answer(Err((
                IpcError::Unreachable,
                "the device is stopping".into(),
            )));
            return;
        };
        let (device, number, expected) = match &m.target {
            Some(p) => {
                let (device, n) = locate(&daemon, p).await;
                if device == self.device {
                    return self.deliver(Some(n), m);
                }
                let node = daemon.node().await;
                if !node.providers(&m.guid).contains(&(device.clone(), n)) {
                    let why = format!("process {p} provides no service {}", m.guid);
                    m.answer.answer(Err((IpcError::NoProvider, why)));
                    return;
                }
                (device, n, false)
            }
            None if locked(&self.instances).contains_key(&m.guid)
                || started == Some(&self.device) =>
            {
                return self.deliver(None, m);
            }
            None => match started {
                Some(device) => (device.to_string(), ANY, true),
                None if self.forward_of(m.guid, None).is_some() => {
                    return self.deliver(None, m);
                }
                None => {
                    let node = daemon.node().await;
                    let elsewhere = node
                        .providers(&m.guid)
                        .into_iter()
                        .find(|(d, _)| *d != self.device);
                    match elsewhere {
                        Some((device, _)) => (device, ANY, false),
                        None => return self.park(m),
                    }
                }
            },
        };
        let message = Message {
            request: m.request,
            target: number,
            timeout_ms: u32::try_from(m.timeout.as_millis()).unwrap_or(u32::MAX),
            sender: m.sender,
            data: m.data,
        };
        let node = daemon.node().await;
        // The requester gives up at its timeout; the query lasts a little
        // longer, so that it is the requester's `Timeout` that answers.
        let limit = m.timeout + QUERY_GRACE;
        match node
            .send_message(&device, m.guid, message, limit, expected, &m.answer)
            .await
        {
            // The reply answers on the thread it arrives on (a Zenoh
            // thread writes it into the requester's ring); the round goes
            // on here, sent again after silence, until it has one.
            Ok(answer) => {
                let way = m.answer;
                tokio::spawn(async move {
                    way.answer(answer.await);
                });
            }
            Err(e) => {
                m.answer.answer(Err((IpcError::Unreachable, e.to_string())));
            }
        }
    }

    /// Queues message `m` for an instance of its service on this device
    /// (process `target` if given; else the sender's own, if it provides
    /// one; else the oldest), or forwards it to where that instance moved;
    /// a one-way message is answered once queued.
    fn deliver(self: &Arc<Self>, target: Option<u32>, m: Routed) {
        let guid = m.guid;
        let inbox = locked(&self.instances).get(&guid).and_then(|list| {
            let chosen = match target {
                Some(t) => list.iter().find(|i| i.pid == t),
                None => list
                    .iter()
                    .find(|i| Some(i.pid) == m.local)
                    .or_else(|| list.first()),
            };
            chosen.map(|i| (i.inbox.clone(), i.direct.clone()))
        });
        let Some((inbox, direct)) = inbox else {
            if let Some(forward) = self.forward_of(guid, target) {
                let delivery = self.delivery(m);
                let hub = self.clone();
                self.runtime
                    .spawn(async move { hub.forward_one(guid, &forward, delivery).await });
                return;
            }
            let why = match target {
                Some(n) => format!("process {}:{n} provides no service {guid}", self.device),
                None => format!("no instance of service {guid} runs on {}", self.device),
            };
            m.answer.answer(Err((IpcError::NoProvider, why)));
            return;
        };
        let request = m.request;
        let mut delivery = self.delivery(m);
        let ack = if request {
            None
        } else {
            delivery.answer.take()
        };
        let refused = match direct.post(delivery, &inbox) {
            Ok(()) => {
                if let Some(ack) = ack {
                    ack.answer(Ok(Vec::new()));
                }
                return;
            }
            Err(mpsc::error::TrySendError::Full(d)) => (
                d,
                IpcError::Busy,
                format!("the provider has {INBOX} messages queued"),
            ),
            Err(mpsc::error::TrySendError::Closed(d)) => {
                (d, IpcError::ProviderEnded, "the provider ended".to_string())
            }
        };
        let (d, error, why) = refused;
        if let Some(way) = d.answer.or(ack) {
            way.answer(Err((error, why)));
        }
    }

    /// `m` as an instance's queue holds it, with an id of this device.
    fn delivery(&self, m: Routed) -> Delivery {
        Delivery {
            id: self.next.fetch_add(1, Ordering::Relaxed),
            request: m.request,
            sender: m.sender,
            data: m.data,
            timeout: m.timeout,
            answer: Some(WayBack::new(m.answer)),
        }
    }

    /// Forgets instance `key` of `guid`.
    fn remove(&self, guid: Guid, key: u64) {
        let mut instances = locked(&self.instances);
        if let Some(list) = instances.get_mut(&guid) {
            list.retain(|i| i.key != key);
            if list.is_empty() {
                instances.remove(&guid);
            }
        }
    }
}

impl Route for Arc<Hub> {
    fn send(&self, out: Outgoing) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(Hub::send(self, out))
    }
}

/// The device process `p` runs on and its number there: where it was
/// moved, if it was (§19.4), else where it was born.
async fn locate(daemon: &Daemon, p: &Pid) -> (String, u32) {
    match daemon.whereabouts(p).await {
        Whereabouts::Here(local) => (daemon.identity.name.clone(), local),
        _ => daemon
            .node()
            .await
            .holder_of(p)
            .unwrap_or_else(|| (p.device.clone(), p.n)),
    }
}

/// Keeps an instance listed and declared; dropping it (the stream ended)
/// withdraws both.
struct Registration {
    hub: Weak<Hub>,
    daemon: Weak<Daemon>,
    guid: Guid,
    key: u64,
    pid: u32,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let Some(hub) = self.hub.upgrade() else {
            return;
        };
        hub.remove(self.guid, self.key);
        let (daemon, guid, pid) = (self.daemon.clone(), self.guid, self.pid);
        hub.runtime.spawn(async move {
            if let Some(daemon) = daemon.upgrade() {
                daemon.node().await.withdraw(guid, pid);
            }
        });
    }
}
