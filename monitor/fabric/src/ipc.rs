//! IPC between devices on Zenoh (PROTOCOL.md §18.5): each running
//! instance of a service is a liveliness token, each device providing a
//! service answers it with one queryable, and a message is a `get` whose
//! one reply is its answer.
//!
//! | key | Zenoh entity | meaning |
//! |---|---|---|
//! | `weft/ipc/<guid>/<device>` | queryable | the device delivers messages to its instances of the service |
//! | `weft/ipc/<guid>/<device>/<n>` | liveliness token | process `<device>:<n>` provides the service |
//!
//! The node keeps the fabric's providers (every token it sees) so that a
//! sender picks a device without asking around, and declares this device's
//! own instances as the daemon adds and removes them. Messages that arrive
//! are handed to the daemon's [`Deliver`] function on the Zenoh thread
//! that took them, synchronously and in their lane's order, so the order
//! one sender's messages were sent in is the order they are queued in
//! (and written into the provider's ring from there, when nothing waits
//! before them). A reply that comes back to this device answers its
//! message on the thread it arrives on: no monitor thread is woken
//! between Zenoh and a program's ring either way.
//!
//! Invariants: a payload that does not decode is answered with an error
//! reply naming what was wrong, never delivered; at most
//! [`MAX_PENDING`] messages wait for their answers at once (more are
//! answered `Busy`); every delivered message gets one reply, within its
//! timeout (the requester stops waiting then anyway).

mod answerer;
mod order;
mod recent;

use crate::keys::valid_name;
pub use answerer::Answerer;
use order::Order;
pub use recent::Stamp;
use recent::{Recent, Seen};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use weft_control::ipc_proto::{Guid, IpcError, MAX_DATA, MAX_TEXT};
use zenoh::Session;
use zenoh::liveliness::LivelinessToken;

/// The payload version.
pub const VERSION: u8 = 1;
/// Messages a device holds for their answers at once.
pub const MAX_PENDING: usize = 4096;
/// A query's target when any instance will do.
pub const ANY: u32 = u32::MAX;
/// How long a one-way message waits for the provider's device to say it is
/// queued.
pub const DELIVERY_LIMIT: Duration = Duration::from_secs(10);
/// Every instance's token, on every device.
pub const PROVIDERS_ALL: &str = "weft/ipc/*/*/*";
/// Every device's activatable services.
pub const ACTIVATORS_ALL: &str = "weft/act/*/*";

/// `weft/act/<guid>/<device>`: the device starts a provider of the service
/// on a first message.
pub fn activator_key(guid: &Guid, device: &str) -> String {
    format!("weft/act/{guid}/{device}")
}

/// The service and device an activator token's key names.
pub fn activator_of(key: &str) -> Option<(Guid, String)> {
    let (guid, device) = key.strip_prefix("weft/act/")?.split_once('/')?;
    let parsed = Guid::parse(guid).filter(|g| g.to_string() == guid)?;
    valid_name(device).then(|| (parsed, device.to_string()))
}

/// `weft/ipc/<guid>/<device>`: the device's queryable for the service.
pub fn service_key(guid: &Guid, device: &str) -> String {
    format!("weft/ipc/{guid}/{device}")
}

/// `weft/ipc/<guid>/<device>/<n>`: process `<device>:<n>`'s token.
pub fn instance_key(guid: &Guid, device: &str, pid: u32) -> String {
    format!("weft/ipc/{guid}/{device}/{pid}")
}

/// The instance a token's key names: the service, device and process
/// number, if the key is one of a lower-case GUID, a valid device name and
/// a canonical decimal number.
pub fn instance_of(key: &str) -> Option<(Guid, String, u32)> {
    let mut chunks = key.strip_prefix("weft/ipc/")?.split('/');
    let (guid, device, n) = (chunks.next()?, chunks.next()?, chunks.next()?);
    let parsed = Guid::parse(guid).filter(|g| g.to_string() == guid)?;
    let pid: u32 = n.parse().ok()?;
    (chunks.next().is_none() && valid_name(device) && pid.to_string() == n)
        .then(|| (parsed, device.to_string(), pid))
}

/// A message as it travels: the query's payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// Whether it is a request (it gets the provider's answer; a one-way
    /// message gets an empty answer once it is queued).
    pub request: bool,
    /// The instance wanted (its process number), or [`ANY`].
    pub target: u32,
    /// How long the sender waits for the answer, in milliseconds.
    pub timeout_ms: u32,
    /// Who sent it: a pid `DEVICE:N`, or a device's name.
    pub sender: String,
    pub data: Vec<u8>,
}

/// What a message gets back: the answer's bytes, or why there is none.
pub type Answer = Result<Vec<u8>, (IpcError, String)>;

/// Why a payload was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    #[error("IPC payload version {0}; this device speaks {VERSION}")]
    Version(u8),
    #[error("IPC payload cut short")]
    Truncated,
    #[error("IPC payload field {0} is invalid")]
    Field(&'static str),
}

/// Bytes before a payload's sender.
const HEAD: usize = 28;

impl Message {
    /// Encodes the payload (§18.5) with its `stamp`.
    pub fn encode(&self, stamp: Stamp) -> Vec<u8> {
        let sender = self.sender.as_bytes();
        let mut out = Vec::with_capacity(HEAD + sender.len() + self.data.len());
        out.push(VERSION);
        out.push(u8::from(self.request));
        out.extend_from_slice(&(sender.len() as u16).to_le_bytes());
        out.extend_from_slice(&self.target.to_le_bytes());
        out.extend_from_slice(&self.timeout_ms.to_le_bytes());
        out.extend_from_slice(&stamp.0.to_le_bytes());
        out.extend_from_slice(&stamp.1.to_le_bytes());
        out.extend_from_slice(sender);
        out.extend_from_slice(&self.data);
        out
    }

    /// Decodes a payload: its stamp and the message.
    pub fn decode(raw: &[u8]) -> Result<(Stamp, Message), PayloadError> {
        let head: &[u8; HEAD] = raw
            .get(..HEAD)
            .and_then(|h| h.try_into().ok())
            .ok_or(PayloadError::Truncated)?;
        if head[0] != VERSION {
            return Err(PayloadError::Version(head[0]));
        }
        let request = match head[1] {
            0 => false,
            1 => true,
            _ => return Err(PayloadError::Field("flags")),
        };
        let len = usize::from(u16::from_le_bytes([head[2], head[3]]));
        if !(1..=MAX_TEXT).contains(&len) {
            return Err(PayloadError::Field("sender length"));
        }
        let word =
            |at: usize| u32::from_le_bytes([head[at], head[at + 1], head[at + 2], head[at + 3]]);
        let long = |at: usize| u64::from(word(at)) | u64::from(word(at + 4)) << 32;
        let rest = &raw[HEAD..];
        let sender = rest.get(..len).ok_or(PayloadError::Truncated)?;
        let sender = std::str::from_utf8(sender).map_err(|_| PayloadError::Field("sender"))?;
        let data = &rest[len..];
        if data.len() > MAX_DATA {
            return Err(PayloadError::Field("data length"));
        }
        let message = Message {
            request,
            target: word(4),
            timeout_ms: word(8),
            sender: sender.to_string(),
            data: data.to_vec(),
        };
        Ok(((long(12), long(20)), message))
    }
}

/// Encodes an answer as the reply's payload (§18.5).
pub fn encode_answer(answer: &Answer) -> Vec<u8> {
    let (status, rest) = match answer {
        Ok(data) => (0, data.as_slice()),
        Err((error, message)) => (*error as u8, cut(message).as_bytes()),
    };
    let mut out = Vec::with_capacity(2 + rest.len());
    out.extend_from_slice(&[VERSION, status]);
    out.extend_from_slice(rest);
    out
}

/// Decodes a reply's payload.
pub fn decode_answer(raw: &[u8]) -> Result<Answer, PayloadError> {
    let [version, status, rest @ ..] = raw else {
        return Err(PayloadError::Truncated);
    };
    if *version != VERSION {
        return Err(PayloadError::Version(*version));
    }
    if *status == 0 {
        if rest.len() > MAX_DATA {
            return Err(PayloadError::Field("data length"));
        }
        return Ok(Ok(rest.to_vec()));
    }
    let error = IpcError::from_u32(u32::from(*status)).ok_or(PayloadError::Field("status"))?;
    if rest.len() > MAX_TEXT {
        return Err(PayloadError::Field("message length"));
    }
    let message = std::str::from_utf8(rest).map_err(|_| PayloadError::Field("message"))?;
    Ok(Err((error, message.to_string())))
}

/// `message` cut to at most [`MAX_TEXT`] bytes on a character boundary.
fn cut(message: &str) -> &str {
    let mut end = message.len().min(MAX_TEXT);
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    &message[..end]
}

/// What the daemon does with a message that arrived for `guid`: queue it
/// (synchronously, so that order is kept), to be answered through the
/// [`Answerer`] given; its answer becomes the query's reply.
pub type Deliver = Arc<dyn Fn(Guid, Message, Answerer) + Send + Sync>;

/// The services a node declares and the providers it sees.
pub(crate) struct Ipc {
    deliver: Deliver,
    pending: Arc<Semaphore>,
    /// This device's services: the queryable's task and each instance's
    /// token.
    declared: Mutex<BTreeMap<Guid, Declared>>,
    /// Every instance the node has seen a token of.
    providers: Arc<Mutex<BTreeSet<(Guid, String, u32)>>>,
    /// Every (service, device) that starts a provider on a first message.
    activators: Arc<Mutex<BTreeSet<(Guid, String)>>>,
    /// This device's activator tokens.
    activatable: Mutex<BTreeMap<Guid, LivelinessToken>>,
    watchers: [JoinHandle<()>; 2],
}

struct Declared {
    serving: JoinHandle<()>,
    tokens: BTreeMap<u32, LivelinessToken>,
    /// Whether the queryable stays with no instance left (messages for
    /// an instance that moved away are still taken, to be sent on).
    lingers: bool,
}

fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Each change is one insert or remove: a panic cannot leave it half
    // done, so a poisoned lock is still consistent.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Ipc {
    /// Starts following every provider's token.
    pub(crate) fn start(session: &Session, deliver: Deliver) -> Ipc {
        let providers = Arc::new(Mutex::new(BTreeSet::new()));
        let activators = Arc::new(Mutex::new(BTreeSet::new()));
        let watchers = [
            tokio::spawn(crate::tokens::follow(
                session.clone(),
                PROVIDERS_ALL,
                instance_of,
                providers.clone(),
            )),
            tokio::spawn(crate::tokens::follow(
                session.clone(),
                ACTIVATORS_ALL,
                activator_of,
                activators.clone(),
            )),
        ];
        Ipc {
            deliver,
            pending: Arc::new(Semaphore::new(MAX_PENDING)),
            declared: Mutex::new(BTreeMap::new()),
            providers,
            activators,
            activatable: Mutex::new(BTreeMap::new()),
            watchers,
        }
    }

    /// Declares process `device:pid` a provider of `guid`, and the
    /// device's queryable for it if it is the first, served on `runtime`.
    pub(crate) async fn add(
        &self,
        session: &Session,
        device: &str,
        guid: Guid,
        pid: u32,
        runtime: &tokio::runtime::Handle,
    ) -> Result<(), String> {
        let token = session
            .liveliness()
            .declare_token(instance_key(&guid, device, pid))
            .await
            .map_err(|e| e.to_string())?;
        let mut declared = locked(&self.declared);
        let entry = declared.entry(guid).or_insert_with(|| Declared {
            serving: runtime.spawn(serve(
                session.clone(),
                service_key(&guid, device),
                guid,
                self.deliver.clone(),
                self.pending.clone(),
            )),
            tokens: BTreeMap::new(),
            lingers: false,
        });
        entry.tokens.insert(pid, token);
        Ok(())
    }

    /// Withdraws process `pid`'s token for `guid`, and the queryable with
    /// the last one unless it lingers.
    pub(crate) fn remove(&self, guid: Guid, pid: u32) {
        let mut declared = locked(&self.declared);
        if let Some(d) = declared.get_mut(&guid) {
            d.tokens.remove(&pid);
            if d.tokens.is_empty() && !d.lingers {
                d.serving.abort();
                declared.remove(&guid);
            }
        }
    }

    /// Keeps the queryable of `guid`, if declared, when its last instance
    /// goes (`on`), or no longer (then it goes if no instance is left).
    pub(crate) fn linger(&self, guid: Guid, on: bool) {
        let mut declared = locked(&self.declared);
        if let Some(d) = declared.get_mut(&guid) {
            d.lingers = on;
            if d.tokens.is_empty() && !on {
                d.serving.abort();
                declared.remove(&guid);
            }
        }
    }

    /// The devices with a running instance of `guid` (and those
    /// instances' process numbers), in name order.
    pub(crate) fn providers(&self, guid: &Guid) -> Vec<(String, u32)> {
        locked(&self.providers)
            .range((*guid, String::new(), 0)..)
            .take_while(|(g, ..)| g == guid)
            .map(|(_, d, n)| (d.clone(), *n))
            .collect()
    }

    /// The devices that start a provider of `guid` on a first message, in
    /// name order.
    pub(crate) fn activators(&self, guid: &Guid) -> Vec<String> {
        locked(&self.activators)
            .range((*guid, String::new())..)
            .take_while(|(g, _)| g == guid)
            .map(|(_, d)| d.clone())
            .collect()
    }

    /// Declares this device an activator of exactly `guids`.
    pub(crate) async fn set_activatable(
        &self,
        session: &Session,
        device: &str,
        guids: &BTreeSet<Guid>,
    ) -> Result<(), String> {
        locked(&self.activatable).retain(|g, _| guids.contains(g));
        for guid in guids {
            if locked(&self.activatable).contains_key(guid) {
                continue;
            }
            let token = session
                .liveliness()
                .declare_token(activator_key(guid, device))
                .await
                .map_err(|e| e.to_string())?;
            locked(&self.activatable).insert(*guid, token);
        }
        Ok(())
    }

    /// Stops every task (the session is closing).
    pub(crate) fn stop(&self) {
        for w in &self.watchers {
            w.abort();
        }
        for (_, d) in std::mem::take(&mut *locked(&self.declared)) {
            d.serving.abort();
        }
    }
}

/// A message that arrived, with what its answer needs.
struct Arrival {
    stamp: Stamp,
    message: Message,
    query: zenoh::query::Query,
    first: tokio::sync::watch::Sender<Option<Answer>>,
    permit: tokio::sync::OwnedSemaphorePermit,
    /// How long its answer may take.
    limit: Duration,
}

/// Serves `key`: each query is decoded and, unless its stamp was seen
/// lately, delivered in its lane's order; its answer (the first one's,
/// for a message seen again) is the one reply. Queries are taken on the
/// Zenoh thread they arrive on, which hands each message to `deliver`
/// there (an instance's stream is written from that thread, with none
/// woken in between); their answers are awaited, and replied, on the
/// runtime this runs on, which also lets go of the messages held behind a
/// gap too long. The queryable lives as long as this task.
async fn serve(
    session: Session,
    key: String,
    guid: Guid,
    deliver: Deliver,
    pending: Arc<Semaphore>,
) {
    let lanes = Arc::new(Lanes {
        key: key.clone(),
        guid,
        deliver,
        pending,
        recent: Arc::new(Recent::default()),
        order: Mutex::new(Order::default()),
        runtime: tokio::runtime::Handle::current(),
        held: tokio::sync::Notify::new(),
    });
    let taker = lanes.clone();
    let Ok(_queryable) = session
        .declare_queryable(&key)
        .complete(true)
        .callback(move |query| taker.arrive(query))
        .await
    else {
        return;
    };
    loop {
        let deadline = locked(&lanes.order).deadline();
        tokio::select! {
            () = lanes.held.notified() => {}
            () = sleep_until(deadline), if deadline.is_some() => {
                let mut order = locked(&lanes.order);
                let late = order.expire(std::time::Instant::now());
                late.into_iter().for_each(|a| lanes.start(a));
            }
        }
    }
}

/// What one service's queryable keeps: the messages seen lately and the
/// lanes' order.
struct Lanes {
    key: String,
    guid: Guid,
    deliver: Deliver,
    pending: Arc<Semaphore>,
    recent: Arc<Recent>,
    order: Mutex<Order<Arrival>>,
    /// Where answers are awaited and replied.
    runtime: tokio::runtime::Handle,
    /// Told when a message is held behind a gap (a new deadline).
    held: tokio::sync::Notify,
}

impl Lanes {
    /// Takes one query, on the thread it arrived on.
    fn arrive(&self, query: zenoh::query::Query) {
        let payload = query.payload().map(|p| p.to_bytes().into_owned());
        let (stamp, message) = match Message::decode(payload.as_deref().unwrap_or(b"")) {
            Ok(m) => m,
            Err(e) => {
                self.reply_now(query, Err((IpcError::Invalid, e.to_string())));
                return;
            }
        };
        let Ok(permit) = self.pending.clone().try_acquire_owned() else {
            let busy = Err((
                IpcError::Busy,
                format!("{MAX_PENDING} messages wait for answers on this device"),
            ));
            self.reply_now(query, busy);
            return;
        };
        let limit = Duration::from_millis(u64::from(message.timeout_ms)).max(DELIVERY_LIMIT);
        match self.recent.check(stamp) {
            Seen::New(first) => {
                let arrival = Arrival {
                    stamp,
                    message,
                    query,
                    first,
                    permit,
                    limit,
                };
                let now = std::time::Instant::now();
                // Delivered under the lock: one lane's messages reach the
                // daemon in their order whichever thread took them.
                let mut order = locked(&self.order);
                let ready = order.arrive(stamp.0, stamp.1, arrival, now);
                let waits = order.deadline().is_some();
                ready.into_iter().for_each(|a| self.start(a));
                drop(order);
                if waits {
                    self.held.notify_one();
                }
            }
            Seen::Again(mut rx) => {
                let key = self.key.clone();
                self.runtime.spawn(async move {
                    let first = tokio::time::timeout(limit, rx.wait_for(Option::is_some))
                        .await
                        .ok()
                        .and_then(|r| r.ok().and_then(|a| a.clone()));
                    let answer = first.unwrap_or_else(|| Err(forgotten()));
                    let _ = query.reply(&key, encode_answer(&answer)).await;
                    drop(permit);
                });
            }
        }
    }

    /// Hands `a` to the daemon; its answer is the query's reply, sent from
    /// the runtime (a one-way message is answered as it is queued, on this
    /// thread: replying here would hold Zenoh's receiving thread for every
    /// message).
    fn start(&self, a: Arrival) {
        let (answerer, answer) = Answerer::channel();
        (self.deliver)(self.guid, a.message, answerer);
        let (key, recent) = (self.key.clone(), self.recent.clone());
        self.runtime.spawn(async move {
            let answer = match tokio::time::timeout(a.limit, answer).await {
                Ok(Ok(answer)) => answer,
                Ok(Err(_)) => Err((
                    IpcError::ProviderEnded,
                    "the provider ended before it answered".to_string(),
                )),
                Err(_) => Err((IpcError::Timeout, "no answer in time".to_string())),
            };
            recent.answered(a.stamp, &a.first, &answer);
            let _ = a.query.reply(&key, encode_answer(&answer)).await;
            drop(a.permit);
        });
    }

    /// Replies to `query` with `answer` (a refusal), on the runtime: a
    /// reply may wait for room in its link's queue, and Zenoh's thread
    /// must not.
    fn reply_now(&self, query: zenoh::query::Query, answer: Answer) {
        let key = self.key.clone();
        self.runtime.spawn(async move {
            let _ = query.reply(&key, encode_answer(&answer)).await;
        });
    }
}

/// Sleeps until `deadline` (never returns without one).
async fn sleep_until(deadline: Option<std::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => std::future::pending().await,
    }
}

/// The answer to a message seen again whose first answer is gone.
fn forgotten() -> (IpcError, String) {
    (
        IpcError::Unreachable,
        "the message came again and its first answer is no longer known".to_string(),
    )
}

/// Keeps `set` equal to what the live tokens matching `keys` name (as
/// `parse` reads their keys; a key it refuses is ignored).
#[cfg(test)]
mod tests;
