//! The daemon's IPC hub (PROTOCOL.md §18): this device's instances of
//! services, and the routing of every message its programs, its CLI and
//! other devices send.
//!
//! A message to a service goes, in this order of preference: to the
//! instance its pid names; to an instance on this device (the same-device
//! path: from one stream's task to another's through a queue, never
//! through Zenoh); to the first device, in name order, that lists one
//! (a Zenoh `get` on its queryable, whose reply is the answer). Each
//! instance has a bounded queue ([`INBOX`]); a full one answers `Busy`.
//! Messages are queued in the order the hub routes them, which is the
//! order each stream sent them.
//!
//! Invariants: every [`Outgoing`] gets exactly one answer (the provider's,
//! or an error saying why there is none); an instance is listed (and its
//! token declared) exactly while its stream's [`Inbox`] lives, across
//! reopenings of the node; the hub never waits for a program.

use super::fabric::Daemon;
use crate::streams::{Answer, DeviceHandle, Delivery, INBOX, Inbox, Outgoing};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use tokio::sync::{mpsc, oneshot};
use weft_control::ipc_proto::{Guid, IpcError};
use weft_fabric::ipc::{ANY, Deliver, Message};
use weft_fabric::wire::Pid;

/// One running instance of a service on this device.
struct Instance {
    /// Its registration, unique for the daemon's life.
    key: u64,
    pid: u32,
    name: String,
    inbox: mpsc::Sender<Delivery>,
}

/// A service instance as `weft ipc services` lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed {
    pub guid: Guid,
    pub name: String,
    pub pid: u32,
}

/// This device's services and the routing of messages.
pub struct Hub {
    device: String,
    handle: DeviceHandle,
    instances: Mutex<BTreeMap<Guid, Vec<Instance>>>,
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
    /// found through `handle`. Must be called inside the daemon's runtime.
    pub fn new(device: String, handle: DeviceHandle) -> Arc<Hub> {
        Arc::new(Hub {
            device,
            handle,
            instances: Mutex::new(BTreeMap::new()),
            next: AtomicU64::new(1),
            runtime: tokio::runtime::Handle::current(),
        })
    }

    /// The node's way of handing this device the messages other devices
    /// send it.
    pub fn deliverer(self: &Arc<Self>) -> Deliver {
        let hub = Arc::downgrade(self);
        Arc::new(move |guid, m: Message| {
            let (answer, answered) = oneshot::channel();
            match hub.upgrade() {
                Some(hub) => {
                    let target = (m.target != ANY).then_some(m.target);
                    hub.deliver(guid, target, m.request, m.sender, m.data, answer);
                }
                None => {
                    let _ = answer.send(Err((IpcError::Unreachable, "the device is stopping".into())));
                }
            }
            answered
        })
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

    /// Every instance's (service, pid), to declare again on a new node.
    pub fn declared(&self) -> Vec<(Guid, u32)> {
        locked(&self.instances)
            .iter()
            .flat_map(|(g, list)| list.iter().map(|i| (*g, i.pid)))
            .collect()
    }

    /// Makes the process of pipe region `region` an instance of `guid`,
    /// shown as `name`: listed here, declared on the fabric.
    pub async fn serve(
        self: &Arc<Self>,
        daemon: &Arc<Daemon>,
        region: u64,
        guid: Guid,
        name: String,
    ) -> Result<Inbox, (IpcError, String)> {
        let pid = self.handle.pid_of_region(region).ok_or((
            IpcError::Invalid,
            "the serving process is not running".to_string(),
        ))?;
        let (inbox, messages) = mpsc::channel(INBOX);
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
            });
        }
        let registration = Registration {
            hub: Arc::downgrade(self),
            daemon: Arc::downgrade(daemon),
            guid,
            key,
            pid,
        };
        node.provide(guid, pid)
            .await
            .map_err(|e| (IpcError::Unreachable, format!("cannot declare the service: {e}")))?;
        Ok(Inbox {
            messages,
            registration: Box::new(registration),
        })
    }

    /// Routes `out` (§18.4): to the instance its pid names, else one on
    /// this device, else a device that lists one.
    pub async fn send(&self, daemon: &Daemon, out: Outgoing) {
        let sender = match out.region {
            None => self.device.clone(),
            Some(region) => match self.handle.pid_of_region(region) {
                Some(pid) => Pid::text(&self.device, pid),
                None => {
                    let _ = out.answer.send(Err((
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
                let _ = out.answer.send(Err((IpcError::Invalid, e)));
                return;
            }
        };
        let (device, number) = match target {
            Some(p) if p.device == self.device => {
                let data = out.data;
                self.deliver(out.guid, Some(p.n), out.request, sender, data, out.answer);
                return;
            }
            Some(p) => {
                let node = daemon.node().await;
                if !node.providers(&out.guid).contains(&(p.device.clone(), p.n)) {
                    let why = format!("process {} provides no service {}", Pid::text(&p.device, p.n), out.guid);
                    let _ = out.answer.send(Err((IpcError::NoProvider, why)));
                    return;
                }
                (p.device, p.n)
            }
            None if locked(&self.instances).contains_key(&out.guid) => {
                let data = out.data;
                self.deliver(out.guid, None, out.request, sender, data, out.answer);
                return;
            }
            None => {
                let node = daemon.node().await;
                let elsewhere = node
                    .providers(&out.guid)
                    .into_iter()
                    .find(|(d, _)| *d != self.device);
                match elsewhere {
                    Some((device, _)) => (device, ANY),
                    None => {
                        let why = format!("no instance of service {} runs in the fabric", out.guid);
                        let _ = out.answer.send(Err((IpcError::NoProvider, why)));
                        return;
                    }
                }
            }
        };
        let message = Message {
            request: out.request,
            target: number,
            timeout_ms: u32::try_from(out.timeout.as_millis()).unwrap_or(u32::MAX),
            sender,
            data: out.data,
        };
        let node = daemon.node().await;
        match node.send_message(&device, out.guid, message, out.timeout).await {
            Ok(answer) => {
                let way = out.answer;
                tokio::spawn(async move {
                    let _ = way.send(answer.await);
                });
            }
            Err(e) => {
                let _ = out.answer.send(Err((IpcError::Unreachable, e.to_string())));
            }
        }
    }

    /// Queues a message for an instance of `guid` on this device (process
    /// `target` if given); a one-way message is answered once queued.
    fn deliver(
        &self,
        guid: Guid,
        target: Option<u32>,
        request: bool,
        sender: String,
        data: Vec<u8>,
        answer: oneshot::Sender<Answer>,
    ) {
        let inbox = locked(&self.instances).get(&guid).and_then(|list| {
            list.iter()
                .find(|i| target.is_none_or(|t| t == i.pid))
                .map(|i| i.inbox.clone())
        });
        let Some(inbox) = inbox else {
            let why = match target {
                Some(n) => format!("process {}:{n} provides no service {guid}", self.device),
                None => format!("no instance of service {guid} runs on {}", self.device),
            };
            let _ = answer.send(Err((IpcError::NoProvider, why)));
            return;
        };
        let (way_back, ack) = if request {
            (Some(answer), None)
        } else {
            (None, Some(answer))
        };
        let delivery = Delivery {
            id: self.next.fetch_add(1, Ordering::Relaxed),
            request,
            sender,
            data,
            answer: way_back,
        };
        let refused = match inbox.try_send(delivery) {
            Ok(()) => {
                if let Some(ack) = ack {
                    let _ = ack.send(Ok(Vec::new()));
                }
                return;
            }
            Err(mpsc::error::TrySendError::Full(d)) => (
                d,
                IpcError::Busy,
                format!("the provider has {INBOX} messages queued"),
            ),
            Err(mpsc::error::TrySendError::Closed(d)) => (
                d,
                IpcError::ProviderEnded,
                "the provider ended".to_string(),
            ),
        };
        let (d, error, why) = refused;
        if let Some(way) = d.answer.or(ack) {
            let _ = way.send(Err((error, why)));
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
