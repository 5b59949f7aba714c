//! A device's Zenoh session: its presence, the fabric's view of which
//! devices are available, its fabric calls (served and made), the Wasm
//! modules it offers by content hash, process starts and exits, and removal
//! notices, the fabric addresses devices own and the puts of UDP sockets
//! on those addresses ([`crate::udp`]).
//!
//! The node maps the fabric onto Zenoh and nothing more: Zenoh finds the
//! other devices, routes between them, authenticates them (mutual TLS) and
//! drops a removed device's messages (access control). Calls it serves are
//! handed to the daemon as [`Incoming`] values on a channel; each is
//! answered within [`SERVE_LIMIT`] or gets an error reply, and at most
//! [`MAX_IN_FLIGHT`] are served at once, so no peer can make the node hold
//! unbounded work.

mod exits;
mod holds;
mod round;

use crate::adopt;
use crate::bounded::Bounded;
use crate::ipc::{self, Answer, Deliver, Ipc, Message};
use crate::keys;
use crate::wire::{self, Exit, Request, Response, Start};
use crate::zconfig::{self, Endpoints, TlsFiles};
pub use round::{OVERLAP, RESEND_AFTER, RESEND_LAST};
use round::{ROUND_REPLIES, Round, schedule};
use std::collections::BTreeSet;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use thiserror::Error;
use tokio::sync::{Semaphore, mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use weft_control::ipc_proto::{Guid, IpcError};
use weft_control::snapshot;
use zenoh::Session;
use zenoh::liveliness::LivelinessToken;
use zenoh::pubsub::Subscriber;
use zenoh::qos::CongestionControl;
use zenoh::sample::SampleKind;

/// How long a served call may take before the caller gets an error.
pub const SERVE_LIMIT: Duration = Duration::from_secs(30);
/// Calls served at once; more get a "busy" error at once.
pub const MAX_IN_FLIGHT: usize = 64;
/// How soon a call that reached no one is made again.
pub const RETRY: Duration = Duration::from_millis(50);
/// How long closing waits for the other devices to take the withdrawal.
pub const WITHDRAW_LIMIT: Duration = Duration::from_millis(500);
/// Bytes of Wasm modules a node keeps on offer (oldest dropped first).
pub const OFFER_BYTES: usize = 64 << 20;
/// Process starts and ends [`Node::lifecycle`] holds for its reader.
pub const LIFECYCLE_BACKLOG: usize = 256;

/// What a device's node is opened with.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    pub name: String,
    pub tls: TlsFiles,
    pub endpoints: Endpoints,
    /// Devices whose every message is dropped (removed devices).
    pub denied: Vec<String>,
    /// The fabric addresses this device owns (`--fabric-ip`), announced
    /// with a liveliness token each.
    pub fabric_ips: Vec<IpAddr>,
}

/// Where the puts on this device's UDP keys go: called with the socket id
/// of the key and the payload, on Zenoh's own threads, so it must not
/// block.
pub type UdpSink = Arc<dyn Fn(u64, &[u8]) + Send + Sync>;

/// A failure of the fabric.
#[derive(Debug, Error)]
pub enum FabricError {
    #[error(transparent)]
    Config(#[from] zconfig::ConfigError),
    #[error("zenoh: {0}")]
    Zenoh(String),
    #[error("device {0} did not answer (not available?)")]
    NoReply(String),
    #[error("device {device}: {message}")]
    Refused { device: String, message: String },
    #[error("the snapshot for device {0} was not written whole: nothing was adopted")]
    Unfinished(String),
    #[error("device {device} sent a bad reply: {error}")]
    BadReply {
        device: String,
        error: wire::WireError,
    },
}

fn zerr(e: impl std::fmt::Display) -> FabricError {
    FabricError::Zenoh(e.to_string())
}

/// A call another device made to this one, for the daemon to answer.
#[derive(Debug)]
pub struct Incoming {
    pub request: Request,
    pub reply: oneshot::Sender<Response>,
}

/// An app's snapshot on its way out while its runtime writes it, for
/// [`Node::adopt`]: its parts in order, each at most [`adopt::PART`]
/// bytes, the first holding at least its header; and, once it was written
/// whole and checked, a word on `checked` (dropped if it was not).
pub struct Outgoing {
    pub parts: mpsc::UnboundedReceiver<Vec<u8>>,
    pub checked: oneshot::Receiver<()>,
}

/// A process's start or end somewhere in the fabric.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lifecycle {
    /// Process `pid` (`NAME:N`) started.
    Started { pid: String },
    /// Process `pid` ended with `status`.
    Ended { pid: String, status: u32 },
}

/// A device's open Zenoh session and what it declared.
pub struct Node {
    name: String,
    session: Session,
    available: watch::Receiver<BTreeSet<String>>,
    /// Modules on offer by hex SHA-256, at most [`OFFER_BYTES`].
    offers: Arc<Mutex<Bounded<Arc<Vec<u8>>>>>,
    /// Every device's fabric addresses: (address, owner).
    fabric_ips: watch::Receiver<BTreeSet<(IpAddr, String)>>,
    /// Every moved process's holder: (pid, holder, its number there).
    holders: watch::Receiver<BTreeSet<(String, String, u32)>>,
    /// The holds tokens of the processes moved here, by pid.
    held: Mutex<HashMap<String, LivelinessToken>>,
    tasks: Vec<JoinHandle<()>>,
    ipc: Ipc,
    /// The stamps of IPC messages sent (§18.5).
    lanes: Mutex<Lanes>,
    /// The device's presence, until [`Node::close`] withdraws it.
    presence: Mutex<Option<LivelinessToken>>,
    _ip_tokens: Vec<LivelinessToken>,
    _udp: Subscriber<()>,
    /// The `spawn --wait`s in progress, fed by `_exits`.
    exit_waits: Arc<exits::ExitWaits>,
    _exits: Subscriber<()>,
}

impl Node {
    /// Opens the session, declares the device present, and starts serving
    /// its calls (to `calls`) and blobs, watching presence and removal
    /// notices (names to `removals`) and the fabric's addresses, following
    /// the fabric's IPC providers (messages to this device's go to
    /// `deliver`), and taking the puts on its UDP keys (to `udp`).
    pub async fn open(
        cfg: &NodeConfig,
        calls: mpsc::Sender<Incoming>,
        removals: mpsc::Sender<String>,
        deliver: Deliver,
        udp: UdpSink,
    ) -> Result<Node, FabricError> {
        // `RUST_LOG` (e.g. `zenoh_transport=debug`) turns on Zenoh's own
        // log, on standard error: links opened, leases run out, queues full.
        zenoh::try_init_log_from_env();
        let config = zconfig::config(&cfg.tls, &cfg.endpoints, &cfg.denied)?;
        let session = zenoh::open(config).await.map_err(zerr)?;
        let name = cfg.name.clone();
        let offers = Arc::new(Mutex::new(Bounded::new(OFFER_BYTES, |m: &Arc<Vec<u8>>| {
            m.len()
        })));
        let (available_tx, available) = watch::channel(BTreeSet::new());
        let (fabric_ips_tx, fabric_ips) = watch::channel(BTreeSet::new());
        let (holders_tx, holders) = watch::channel(BTreeSet::new());
        let udp_sub = {
            let name = name.clone();
            session
                .declare_subscriber(keys::udp_all(&name))
                .callback(move |sample| {
                    if let Some(id) = keys::udp_id(&name, sample.key_expr().as_str()) {
                        udp(id, &sample.payload().to_bytes());
                    }
                })
                .await
                .map_err(zerr)?
        };
        let tasks = vec![
            tokio::spawn(watch_presence(session.clone(), available_tx)),
            tokio::spawn(crate::tokens::follow(
                session.clone(),
                keys::FABRIC_IPS_ALL,
                |key| keys::of_fabric_ip(key).map(|(device, ip)| (ip, device.to_string())),
                fabric_ips_tx,
            )),
            tokio::spawn(crate::tokens::follow(
                session.clone(),
                keys::HOLDS_ALL,
                keys::of_holds,
                holders_tx,
            )),
            tokio::spawn(serve_adoptions(
                session.clone(),
                name.clone(),
                calls.clone(),
            )),
            tokio::spawn(serve_calls(session.clone(), name.clone(), calls)),
            tokio::spawn(serve_blobs(session.clone(), name.clone(), offers.clone())),
            tokio::spawn(watch_removals(session.clone(), removals)),
        ];
        let ipc = Ipc::start(&session, deliver);
        let exit_waits = Arc::new(exits::ExitWaits::default());
        let exits_sub = exits::follow(&session, exit_waits.clone()).await?;
        let token = session
            .liveliness()
            .declare_token(keys::presence(&name))
            .await
            .map_err(zerr)?;
        let mut ip_tokens = Vec::new();
        for ip in &cfg.fabric_ips {
            let token = session
                .liveliness()
                .declare_token(keys::fabric_ip(&name, *ip))
                .await
                .map_err(zerr)?;
            ip_tokens.push(token);
        }
        Ok(Node {
            name,
            session,
            available,
            offers,
            fabric_ips,
            holders,
            held: Mutex::default(),
            tasks,
            ipc,
            lanes: Mutex::new(Lanes::new()?),
            presence: Mutex::new(Some(token)),
            _ip_tokens: ip_tokens,
            _udp: udp_sub,
            exit_waits,
            _exits: exits_sub,
        })
    }

    /// This device's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The devices available now (this one included), updated as they come
    /// and go.
    pub fn available(&self) -> watch::Receiver<BTreeSet<String>> {
        self.available.clone()
    }

    /// The device that owns fabric address `ip`, if one does; this device
    /// if it is one of the owners.
    pub fn fabric_owner(&self, ip: IpAddr) -> Option<String> {
        let owners = self.fabric_ips.borrow();
        let mut found = owners.iter().filter(|(a, _)| *a == ip).map(|(_, d)| d);
        let first = found.next()?.clone();
        if first == self.name || found.any(|d| *d == self.name) {
            return Some(self.name.clone());
        }
        Some(first)
    }

    /// Puts `payload` (a [`crate::udp::UdpPut`]) on socket `id` of
    /// `device`. Dropped rather than waited for when the network is
    /// congested, as UDP may.
    pub async fn put_udp(
        &self,
        device: &str,
        id: u64,
        payload: Vec<u8>,
    ) -> Result<(), FabricError> {
        self.session
            .put(keys::udp(device, id), payload)
            .congestion_control(CongestionControl::Drop)
            .express(true)
            .await
            .map_err(zerr)
    }

    /// Calls `device` and waits for its answer, at most `limit`. A refusal
    /// (`Response::Error`) is returned as [`FabricError::Refused`].
    ///
    /// A device that is available but not yet reachable (its queryable's
    /// route still converging, Zenoh #2516) answers no one at once: the
    /// call is made again every [`RETRY`] while time is left. Such a call
    /// reached no one, so even a spawn is safe to repeat.
    pub async fn call(
        &self,
        device: &str,
        request: &Request,
        limit: Duration,
    ) -> Result<Response, FabricError> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.call_once(device, request, left).await {
                Err(FabricError::NoReply(_))
                    if self.available.borrow().contains(device) && left > RETRY * 2 =>
                {
                    tokio::time::sleep(RETRY).await;
                }
                result => return result,
            }
        }
    }

    async fn call_once(
        &self,
        device: &str,
        request: &Request,
        limit: Duration,
    ) -> Result<Response, FabricError> {
        let replies = self
            .session
            .get(keys::call(device))
            .payload(wire::encode(request))
            .timeout(limit)
            .consolidation(FIRST_REPLY)
            .await
            .map_err(zerr)?;
        response_of(device, replies.recv_async().await.ok())
    }

    /// Offers `module` by its hex SHA-256 `hash` until the offer store
    /// drops it for newer ones.
    pub fn offer(&self, hash: String, module: Arc<Vec<u8>>) {
        if let Ok(mut offers) = self.offers.lock() {
            offers.insert(hash, module);
        }
    }

    /// Fetches the module `hash` that `device` offers.
    pub async fn fetch(
        &self,
        device: &str,
        hash: &str,
        limit: Duration,
    ) -> Result<Vec<u8>, FabricError> {
        let replies = self
            .session
            .get(keys::blob(device, hash))
            .timeout(limit)
            .consolidation(FIRST_REPLY)
            .await
            .map_err(zerr)?;
        match replies.recv_async().await {
            Ok(reply) => match reply.into_result() {
                Ok(sample) => Ok(sample.payload().to_bytes().into_owned()),
                Err(_) => Err(FabricError::Refused {
                    device: device.to_string(),
                    message: format!("it does not offer module {hash}"),
                }),
            },
            Err(_) => Err(FabricError::NoReply(device.to_string())),
        }
    }

    /// Asks `device` to get ready for an app moving to it (§19.4): to start
    /// its runtime, which then waits for the snapshot (of about `total`
    /// bytes) that a later [`Node::adopt`] with the same `request` (a
    /// [`Request::Adopt`], its snapshot left out) hands it. Answered
    /// `done` once the runtime waits; waits at most `limit`. A failed
    /// prepare costs nothing but time: the adopt then starts the runtime
    /// itself.
    pub async fn prepare(
        &self,
        device: &str,
        request: &Request,
        total: u64,
        limit: Duration,
    ) -> Result<Response, FabricError> {
        let transfer = u64::from_le_bytes(crate::identity::random().map_err(zerr)?);
        let deadline = tokio::time::Instant::now() + limit;
        let attachment = prepare_attachment(transfer, total, request);
        adopt_query(&self.session, device, attachment, Vec::new(), deadline).await
    }

    /// Hands `device` an app moved to it (§19.4) while its snapshot is
    /// being written (after [`Node::prepare`], whose failure is not the
    /// move's: the adopt then starts the runtime): each part as it comes
    /// ([`adopt`], at most [`adopt::WINDOW`] in flight; the first gives
    /// the snapshot's length), then, once every part is sent and the
    /// snapshot was checked whole (`outgoing.checked`), `request` (a
    /// [`Request::Adopt`] naming the app, its snapshot left out), which
    /// takes the snapshot (the destination waits for the parts still on
    /// their way); waits at most `limit` in all for the answer. A snapshot
    /// left unfinished (its parts end short, or `checked` is dropped) sends
    /// no adopt.
    pub async fn adopt(
        &self,
        device: &str,
        request: &Request,
        outgoing: Outgoing,
        limit: Duration,
    ) -> Result<Response, FabricError> {
        let deadline = tokio::time::Instant::now() + limit;
        let transfer = u64::from_le_bytes(crate::identity::random().map_err(zerr)?);
        let Outgoing { mut parts, checked } = outgoing;
        let unfinished = || FabricError::Unfinished(device.to_string());
        let first = tokio::time::timeout_at(deadline, parts.recv())
            .await
            .ok()
            .flatten()
            .ok_or_else(unfinished)?;
        let total = first
            .get(..snapshot::HEADER)
            .and_then(|h| <&[u8; snapshot::HEADER]>::try_from(h).ok())
            .and_then(|h| snapshot::Header::decode(h).ok())
            .and_then(|h| h.total_len())
            .ok_or_else(unfinished)?;
        let mut sent = tokio::task::JoinSet::new();
        let (mut offset, mut next, mut ended) = (0u64, Some(first), false);
        while !ended {
            if let Some(mut part) = next.take() {
                // What came meanwhile goes along, up to a part's size: the
                // runtime writes small parts, and a full window lets them
                // gather.
                while part.len() < adopt::PART {
                    match parts.try_recv() {
                        Ok(more) if part.len() + more.len() <= adopt::PART => {
                            part.extend_from_slice(&more)
                        }
                        Ok(more) => {
                            next = Some(more);
                            break;
                        }
                        Err(mpsc::error::TryRecvError::Empty) => break,
                        Err(mpsc::error::TryRecvError::Disconnected) => {
                            ended = true;
                            break;
                        }
                    }
                }
                let len = part.len() as u64;
                if part.is_empty() || part.len() > adopt::PART || offset + len > total {
                    return Err(unfinished());
                }
                let head = adopt::Head {
                    kind: adopt::Kind::Part,
                    transfer,
                    offset,
                    total,
                };
                offset += len;
                let (session, device) = (self.session.clone(), device.to_string());
                sent.spawn(async move {
                    adopt_query(&session, &device, head.encode().to_vec(), part, deadline).await
                });
            }
            if next.is_some() && sent.len() < adopt::WINDOW {
                continue;
            }
            tokio::select! {
                part = parts.recv(), if !ended && next.is_none() && sent.len() < adopt::WINDOW => match part {
                    Some(part) => next = Some(part),
                    None => ended = true,
                },
                done = sent.join_next(), if !sent.is_empty() => part_stored(device, done)?,
                () = tokio::time::sleep_until(deadline) => return Err(FabricError::NoReply(device.to_string())),
            }
        }
        if offset != total || checked.await.is_err() {
            return Err(unfinished());
        }
        let head = adopt::Head {
            kind: adopt::Kind::Adopt,
            transfer,
            offset: 0,
            total,
        };
        let mut attachment = head.encode().to_vec();
        attachment.extend_from_slice(&wire::encode(request));
        // Right behind the last parts (the destination waits for those
        // still on their way), whose refusal fails the move meanwhile.
        let adopted = adopt_query(&self.session, device, attachment, Vec::new(), deadline);
        tokio::pin!(adopted);
        loop {
            tokio::select! {
                answer = &mut adopted => return answer,
                done = sent.join_next(), if !sent.is_empty() => part_stored(device, done)?,
            }
        }
    }

    /// Tells whoever waits that process `pid` ended here: a process born
    /// on this device, or one that moved here and keeps the pid it was born
    /// with (its exit goes under its first device's key, §19.4).
    pub async fn publish_exit(&self, pid: &wire::Pid, status: u32) -> Result<(), FabricError> {
        let exit = Exit {
            pid: pid.to_string(),
            status,
        };
        self.session
            .put(keys::exit(&pid.device, pid.n), wire::encode(&exit))
            .await
            .map_err(zerr)
    }

    /// Tells whoever watches that process `pid` of this device started.
    pub async fn publish_start(&self, pid: u32) -> Result<(), FabricError> {
        let start = Start {
            pid: wire::Pid::text(&self.name, pid),
        };
        self.session
            .put(keys::start(&self.name, pid), wire::encode(&start))
            .await
            .map_err(zerr)
    }

    /// Follows every device's process starts and exits, this one's
    /// included, from now until the session closes or the receiver is
    /// dropped. A put whose key is no process's, or whose payload does not
    /// decode or names another pid than its key, is ignored.
    pub async fn lifecycle(&self) -> Result<mpsc::Receiver<Lifecycle>, FabricError> {
        let starts = self
            .session
            .declare_subscriber(keys::START_ALL)
            .await
            .map_err(zerr)?;
        let exits = self
            .session
            .declare_subscriber(keys::EXIT_ALL)
            .await
            .map_err(zerr)?;
        let (tx, rx) = mpsc::channel(LIFECYCLE_BACKLOG);
        tokio::spawn(async move {
            loop {
                let (sample, ended) = tokio::select! {
                    s = starts.recv_async() => (s, false),
                    s = exits.recv_async() => (s, true),
                };
                let Ok(sample) = sample else { return };
                let Some(event) = lifecycle_of(&sample, ended) else {
                    continue;
                };
                if tx.send(event).await.is_err() {
                    return;
                }
            }
        });
        Ok(rx)
    }

    /// Tells every device that `name` is removed from the fabric.
    pub async fn announce_removal(&self, name: &str) -> Result<(), FabricError> {
        self.session
            .put(keys::removed(name), Vec::<u8>::new())
            .await
            .map_err(zerr)
    }

    /// Declares process `pid` of this device a provider of `guid`
    /// (§18.5). The service's messages are taken, and its answers sent, on
    /// `runtime`: the one its instances' streams run on, so that a message
    /// wakes one thread on its way in and none on its way out.
    pub async fn provide(
        &self,
        guid: Guid,
        pid: u32,
        runtime: &tokio::runtime::Handle,
    ) -> Result<(), FabricError> {
        self.ipc
            .add(&self.session, &self.name, guid, pid, runtime)
            .await
            .map_err(FabricError::Zenoh)
    }

    /// Withdraws what [`Node::provide`] declared.
    pub fn withdraw(&self, guid: Guid, pid: u32) {
        self.ipc.remove(guid, pid);
    }

    /// Keeps this device's queryable for `guid` when its last instance
    /// is withdrawn (`on`: the instance moved away and what still comes
    /// for it is sent on, PROTOCOL.md §19.5), or no longer.
    pub fn linger(&self, guid: Guid, on: bool) {
        self.ipc.linger(guid, on);
    }

    /// The instances of `guid` running in the fabric: (device, process
    /// number), in that order.
    pub fn providers(&self, guid: &Guid) -> Vec<(String, u32)> {
        self.ipc.providers(guid)
    }

    /// The devices that start a provider of `guid` on a first message
    /// (§18.7), in name order.
    pub fn activators(&self, guid: &Guid) -> Vec<String> {
        self.ipc.activators(guid)
    }

    /// Declares this device an activator of exactly `guids`.
    pub async fn set_activatable(
        &self,
        guids: &std::collections::BTreeSet<Guid>,
    ) -> Result<(), FabricError> {
        self.ipc
            .set_activatable(&self.session, &self.name, guids)
            .await
            .map_err(FabricError::Zenoh)
    }

    /// Sends `message` to `device`'s instances of `guid` and returns, once
    /// it is on its way, the future of its answer, which waits at most
    /// `limit`. A device whose queryable no route reaches yet (Zenoh
    /// #2516) is asked again every [`RETRY`] while it still lists a
    /// provider and time is left; such a message reached no one, so it is
    /// safe to send again (only a message sent again may arrive after a
    /// later one of the same sender; the device puts them back in order).
    /// A message with no reply after [`RESEND_AFTER`] (then twice that,
    /// up to [`RESEND_LAST`]) is sent again too: the device delivers a
    /// stamp once. Each get lasts only until the message is next sent
    /// again, and [`OVERLAP`] more ([`schedule`]): Zenoh keeps a task
    /// for every get until its time is up, answered or not, so a get as
    /// long as the message's limit (up to an hour) would keep a daemon's
    /// memory growing with its message rate times that limit.
    /// With `expected` (a provider was just started there) it is asked
    /// again while time is left, listed or not.
    ///
    /// The provider's answer goes to `answerer` on the thread its reply
    /// arrives on (one of Zenoh's), before the future has it: the
    /// requester's stream is written from there, with no thread woken in
    /// between. The future's answer is then a second, ignored one.
    pub async fn send_message(
        self: &Arc<Self>,
        device: &str,
        guid: Guid,
        message: Message,
        limit: Duration,
        expected: bool,
        answerer: &ipc::Answerer,
    ) -> Result<impl Future<Output = Answer> + Send + 'static, FabricError> {
        let key = ipc::service_key(&guid, device);
        // One stamp for every time it is sent: the device delivers it once,
        // and in its lane's order.
        let stamp = self
            .lanes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .stamp(device, guid)?;
        let payload = message.encode(stamp);
        let now = tokio::time::Instant::now();
        let deadline = now + limit;
        let mut quiet = RESEND_AFTER;
        // When the message is sent again if no reply comes by then.
        let (mut resend_at, life) = schedule(now, limit, quiet);
        let mut round = self.ask(&key, payload.clone(), life, answerer).await?;
        let (node, device, answerer) = (self.clone(), device.to_string(), answerer.clone());
        Ok(async move {
            loop {
                // Silence is not an answer: on a link that broke, the query
                // or its reply may be gone without a trace. Asked again
                // with the same stamp, the device answers with the first
                // one's answer, which is never delivered twice; the gets
                // asked before go on until their time is up, and whichever
                // reply comes first is the answer.
                let heard = match resend_at {
                    Some(at) => tokio::time::timeout_at(at, round.replies.recv()).await,
                    None => Ok(round.replies.recv().await),
                };
                let now = tokio::time::Instant::now();
                let left = deadline.saturating_duration_since(now);
                let Ok(heard) = heard else {
                    quiet *= 2;
                    let life;
                    (resend_at, life) = schedule(now, left, quiet);
                    if let Err(e) = node
                        .ask_again(&mut round, &key, payload.clone(), life)
                        .await
                    {
                        return Err((IpcError::Unreachable, e.to_string()));
                    }
                    continue;
                };
                match heard.map(zenoh::query::Reply::into_result) {
                    Some(Ok(sample)) => {
                        return ipc::decode_answer(&sample.payload().to_bytes()).unwrap_or_else(
                            |e| Err((IpcError::Unreachable, format!("{device}: {e}"))),
                        );
                    }
                    // Zenoh's own error: a get of the round whose time was
                    // up. The others go on; with none left, the channel
                    // ends.
                    Some(Err(_)) => continue,
                    // Every get ended without a reply.
                    None => {}
                }
                // A provider just started there (`expected`) may not be
                // listed yet.
                let listed = expected || node.providers(&guid).iter().any(|(d, _)| *d == device);
                if !listed || left <= RETRY * 2 {
                    let why = if left <= RETRY * 2 {
                        (
                            IpcError::Timeout,
                            format!("device {device} did not answer in time"),
                        )
                    } else {
                        (
                            IpcError::Unreachable,
                            format!("device {device} could not be reached"),
                        )
                    };
                    return Err(why);
                }
                tokio::time::sleep(RETRY).await;
                let life;
                (resend_at, life) = schedule(tokio::time::Instant::now(), left - RETRY, quiet);
                match node.ask(&key, payload.clone(), life, &answerer).await {
                    Ok(r) => round = r,
                    Err(e) => return Err((IpcError::Unreachable, e.to_string())),
                }
            }
        })
    }

    /// Sends a get on `key` lasting at most `limit`: a new round.
    async fn ask(
        &self,
        key: &str,
        payload: Vec<u8>,
        limit: Duration,
        answerer: &ipc::Answerer,
    ) -> Result<Round, FabricError> {
        let (to, replies) = mpsc::channel(ROUND_REPLIES);
        let again = to.downgrade();
        self.get_into(key, payload, limit, to, answerer.clone())
            .await?;
        Ok(Round {
            replies,
            again,
            answerer: answerer.clone(),
        })
    }

    /// Sends one more get of `round`, unless every get of it ended (its
    /// channel then ends at once).
    async fn ask_again(
        &self,
        round: &mut Round,
        key: &str,
        payload: Vec<u8>,
        limit: Duration,
    ) -> Result<(), FabricError> {
        match round.again.upgrade() {
            Some(to) => {
                self.get_into(key, payload, limit, to, round.answerer.clone())
                    .await
            }
            None => Ok(()),
        }
    }

    /// Sends a get whose replies go to `to`, which it holds until it ends;
    /// a reply that carries an answer goes to `answerer` first, on the
    /// thread it arrives on.
    async fn get_into(
        &self,
        key: &str,
        payload: Vec<u8>,
        limit: Duration,
        to: mpsc::Sender<zenoh::query::Reply>,
        answerer: ipc::Answerer,
    ) -> Result<(), FabricError> {
        self.session
            .get(key)
            .payload(payload)
            .timeout(limit)
            // Only another device serves these keys.
            .consolidation(FIRST_REPLY)
            .allowed_destination(zenoh::sample::Locality::Remote)
            .callback(move |reply| {
                // One reply is the answer: more are dropped. One that does
                // not decode is left to the round, which says why.
                if let Ok(sample) = reply.result()
                    && let Ok(answer) = ipc::decode_answer(&sample.payload().to_bytes())
                {
                    answerer.answer(answer);
                }
                let _ = to.try_send(reply);
            })
            .await
            .map_err(zerr)
    }

    /// Withdraws the device's presence and closes the session. The
    /// withdrawal is sent first, then a call to every device, whose
    /// answers (or [`WITHDRAW_LIMIT`]) say it was taken (a link delivers
    /// in order): the others see the device go at once, even when the
    /// session's own close does not reach them (a QUIC connection closed
    /// by a process on its way out).
    pub async fn close(&self) {
        for t in &self.tasks {
            t.abort();
        }
        self.ipc.stop();
        let presence = self
            .presence
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(token) = presence {
            let _ = token.undeclare().await;
            let asked = self
                .session
                .get(keys::call("*"))
                .target(zenoh::query::QueryTarget::All)
                .timeout(WITHDRAW_LIMIT)
                .await;
            if let Ok(answers) = asked {
                while answers.recv_async().await.is_ok() {}
            }
        }
        let _ = self.session.close().await;
    }
}

/// How the gets that take their first reply as the answer consolidate
/// replies: not at all, so that the reply is handed over as it arrives
/// (Zenoh's default holds it until the query's end has arrived too).
const FIRST_REPLY: zenoh::query::ConsolidationMode = zenoh::query::ConsolidationMode::None;

/// The lanes of the IPC messages a session sends: one per (device,
/// service), numbered from 0 under the session's random origin. At most
/// [`MAX_LANES`] are kept; past that, a new origin starts them all again.
struct Lanes {
    origin: u64,
    next: HashMap<(String, Guid), u64>,
}

/// Lanes a session numbers at once.
const MAX_LANES: usize = 4096;

impl Lanes {
    fn new() -> Result<Lanes, FabricError> {
        Ok(Lanes {
            origin: random_origin()?,
            next: HashMap::new(),
        })
    }

    /// The stamp of the next message to `guid` on `device`.
    fn stamp(&mut self, device: &str, guid: Guid) -> Result<ipc::Stamp, FabricError> {
        let lane = (device.to_string(), guid);
        if self.next.len() >= MAX_LANES && !self.next.contains_key(&lane) {
            *self = Lanes::new()?;
        }
        let n = self.next.entry(lane).or_insert(0);
        let stamp = (self.origin, *n);
        *n += 1;
        Ok(stamp)
    }
}

/// A random 64-bit number for a session's message stamps.
fn random_origin() -> Result<u64, FabricError> {
    use ring::rand::{SecureRandom, SystemRandom};
    let mut raw = [0u8; 8];
    SystemRandom::new()
        .fill(&mut raw)
        .map_err(|_| FabricError::Zenoh("no random numbers for message stamps".into()))?;
    Ok(u64::from_le_bytes(raw))
}

/// The start (or, if `ended`, the exit) a put on a process key announces.
fn lifecycle_of(sample: &zenoh::sample::Sample, ended: bool) -> Option<Lifecycle> {
    let pid = keys::pid_of_process_key(sample.key_expr().as_str())?;
    let payload = sample.payload().to_bytes();
    if ended {
        let exit = wire::decode::<Exit>(&payload).ok()?;
        (exit.pid == pid).then_some(Lifecycle::Ended {
            pid,
            status: exit.status,
        })
    } else {
        let start = wire::decode::<Start>(&payload).ok()?;
        (start.pid == pid).then_some(Lifecycle::Started { pid })
    }
}

async fn watch_presence(session: Session, available: watch::Sender<BTreeSet<String>>) {
    let Ok(sub) = session
        .liveliness()
        .declare_subscriber(keys::PRESENCE_ALL)
        .history(true)
        .await
    else {
        return;
    };
    while let Ok(sample) = sub.recv_async().await {
        let Some(device) = keys::device_of_presence(sample.key_expr().as_str()) else {
            continue;
        };
        let device = device.to_string();
        available.send_modify(|set| {
            if sample.kind() == SampleKind::Put {
                set.insert(device);
            } else {
                set.remove(&device);
            }
        });
    }
}

async fn serve_calls(session: Session, name: String, calls: mpsc::Sender<Incoming>) {
    let Ok(queryable) = session.declare_queryable(keys::call(&name)).await else {
        return;
    };
    let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    while let Ok(query) = queryable.recv_async().await {
        let key = keys::call(&name);
        let Ok(permit) = in_flight.clone().try_acquire_owned() else {
            let busy = Response::Error {
                message: format!("busy: {MAX_IN_FLIGHT} calls in flight"),
            };
            let _ = query.reply(key, wire::encode(&busy)).await;
            continue;
        };
        let calls = calls.clone();
        tokio::spawn(async move {
            let payload = query.payload().map(|p| p.to_bytes().into_owned());
            let response = match wire::decode::<Request>(payload.as_deref().unwrap_or(b"")) {
                Err(e) => Response::Error {
                    message: e.to_string(),
                },
                Ok(request) => answer(&calls, request).await,
            };
            let _ = query.reply(key, wire::encode(&response)).await;
            drop(permit);
        });
    }
}

async fn answer(calls: &mpsc::Sender<Incoming>, request: Request) -> Response {
    let (reply, answer) = oneshot::channel();
    if calls.send(Incoming { request, reply }).await.is_err() {
        return Response::Error {
            message: "the device is shutting down".into(),
        };
    }
    match tokio::time::timeout(SERVE_LIMIT, answer).await {
        Ok(Ok(r)) => r,
        Ok(Err(_)) => Response::Error {
            message: "the device dropped the call".into(),
        },
        Err(_) => Response::Error {
            message: format!("no answer within {SERVE_LIMIT:?}"),
        },
    }
}

async fn serve_blobs(session: Session, name: String, offers: Arc<Mutex<Bounded<Arc<Vec<u8>>>>>) {
    let Ok(queryable) = session.declare_queryable(keys::blobs(&name)).await else {
        return;
    };
    while let Ok(query) = queryable.recv_async().await {
        let key = query.key_expr().clone();
        let hash = key.as_str().rsplit('/').next().unwrap_or("").to_string();
        let module = offers.lock().ok().and_then(|o| o.get(&hash));
        let _ = match module {
            Some(m) => query.reply(key, m.as_slice().to_vec()).await,
            None => query.reply_err(format!("no module {hash}")).await,
        };
    }
}

/// One adopt query to `device`, answered by the time `deadline`.
async fn adopt_query(
    session: &Session,
    device: &str,
    attachment: Vec<u8>,
    payload: Vec<u8>,
    deadline: tokio::time::Instant,
) -> Result<Response, FabricError> {
    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
    let replies = session
        .get(keys::adopt(device))
        .attachment(attachment)
        .payload(payload)
        .timeout(left)
        .consolidation(FIRST_REPLY)
        .await
        .map_err(zerr)?;
    response_of(device, replies.recv_async().await.ok())
}

/// What a part query's answer (`done`, from its task) says: `Ok` if the
/// part was stored.
fn part_stored(
    device: &str,
    done: Option<Result<Result<Response, FabricError>, tokio::task::JoinError>>,
) -> Result<(), FabricError> {
    match done {
        Some(Ok(Ok(Response::Done))) | None => Ok(()),
        Some(Ok(Ok(other))) => Err(unexpected_reply(device, &other)),
        Some(Ok(Err(e))) => Err(e),
        Some(Err(e)) => Err(FabricError::Zenoh(e.to_string())),
    }
}

/// A prepare query's attachment: its head, then `request`.
fn prepare_attachment(transfer: u64, total: u64, request: &Request) -> Vec<u8> {
    let head = adopt::Head {
        kind: adopt::Kind::Prepare,
        transfer,
        offset: 0,
        total,
    };
    let mut attachment = head.encode().to_vec();
    attachment.extend_from_slice(&wire::encode(request));
    attachment
}

/// The answer `device` gave to a call or an adopt query (its first reply):
/// a refusal as [`FabricError::Refused`], none as [`FabricError::NoReply`].
fn response_of(device: &str, reply: Option<zenoh::query::Reply>) -> Result<Response, FabricError> {
    let reply = reply.ok_or_else(|| FabricError::NoReply(device.to_string()))?;
    let sample = reply.into_result().map_err(|e| FabricError::Refused {
        device: device.to_string(),
        message: e.payload().try_to_string().map_or_else(
            |_| "an error reply that is not text".to_string(),
            |s| s.into_owned(),
        ),
    })?;
    match wire::decode(&sample.payload().to_bytes()) {
        Ok(Response::Error { message }) => Err(FabricError::Refused {
            device: device.to_string(),
            message,
        }),
        Ok(r) => Ok(r),
        Err(error) => Err(FabricError::BadReply {
            device: device.to_string(),
            error,
        }),
    }
}

fn unexpected_reply(device: &str, r: &Response) -> FabricError {
    FabricError::Refused {
        device: device.to_string(),
        message: format!("unexpected answer {r:?} to a part of a move"),
    }
}

/// Serves `weft/dev/<name>/adopt` (§19.4): stores the parts of the
/// snapshot under way ([`adopt::Assemblies`]: one transfer at a time), hands
/// a prepare's request to the daemon (as a [`Request::Prepare`]; the daemon
/// keeps at most one runtime prepared), and an adopt query's request, with
/// its assembled snapshot; one prepare and one adoption are answered at a
/// time, others are answered busy. Prepares and adopts are answered by tasks of their own,
/// so parts are stored meanwhile.
async fn serve_adoptions(session: Session, name: String, calls: mpsc::Sender<Incoming>) {
    let Ok(queryable) = session.declare_queryable(keys::adopt(&name)).await else {
        return;
    };
    let mut assemblies = adopt::Assemblies::default();
    let one = Arc::new(Semaphore::new(1));
    let preparing = Arc::new(Semaphore::new(1));
    let mut sweep = tokio::time::interval(adopt::STALE);
    // An adopt that came before the last parts of its snapshot (its
    // source sends it right after them), until they come.
    let mut parked: Option<Parked> = None;
    loop {
        let query = tokio::select! {
            q = queryable.recv_async() => match q {
                Ok(q) => q,
                Err(_) => return,
            },
            _ = sweep.tick() => {
                assemblies.expire();
                if let Some(p) = parked.take_if(|p| p.since.elapsed() >= adopt::STALE) {
                    let why = "its snapshot's last parts never came".to_string();
                    let _ = p.query.reply(keys::adopt(&name), error(why)).await;
                }
                continue;
            }
        };
        let key = keys::adopt(&name);
        let attachment = query.attachment().map(|a| a.to_bytes().into_owned());
        let attachment = attachment.unwrap_or_default();
        let (head, rest) = match adopt::Head::decode(&attachment) {
            Ok(h) => h,
            Err(e) => {
                let _ = query.reply(key, error(e)).await;
                continue;
            }
        };
        if head.kind == adopt::Kind::Part {
            let stored = {
                let bytes = query.payload().map(|p| p.to_bytes());
                assemblies.part(&head, bytes.as_deref().unwrap_or_default())
            };
            let reply = match stored {
                Ok(()) => wire::encode(&Response::Done),
                Err(e) => error(e),
            };
            // Answered aside: the next part is taken meanwhile.
            let answer = key.clone();
            tokio::spawn(async move { query.reply(answer, reply).await });
            if let Some(p) = parked.take_if(|p| !assemblies.waits_for(&p.head)) {
                adopt_now(p, &mut assemblies, &one, &calls, key).await;
            }
            continue;
        }
        let (pid, app, module) = match wire::decode::<Request>(rest) {
            Ok(Request::Adopt {
                pid, name, module, ..
            }) => (pid, name, module),
            Ok(_) => {
                let why = "only an adopt request comes on this key".to_string();
                let _ = query.reply(key, error(why)).await;
                continue;
            }
            Err(e) => {
                let _ = query.reply(key, error(e.to_string())).await;
                continue;
            }
        };
        if head.kind == adopt::Kind::Prepare {
            let Ok(permit) = preparing.clone().try_acquire_owned() else {
                let busy = "busy: the device is preparing for another app".to_string();
                let _ = query.reply(key, error(busy)).await;
                continue;
            };
            let request = Request::Prepare {
                pid,
                name: app,
                module,
                total: head.total,
            };
            let calls = calls.clone();
            tokio::spawn(async move {
                let response = answer(&calls, request).await;
                let _ = query.reply(key, wire::encode(&response)).await;
                drop(permit);
            });
            continue;
        }
        let adopting = Parked {
            query,
            head,
            request: (pid, app, module),
            since: std::time::Instant::now(),
        };
        if assemblies.waits_for(&head) {
            if let Some(old) = parked.replace(adopting) {
                let why = "another adopt of that snapshot came".to_string();
                let _ = old.query.reply(key, error(why)).await;
            }
            continue;
        }
        adopt_now(adopting, &mut assemblies, &one, &calls, key).await;
    }
}

/// An adopt query, its head and what its request names (pid, name,
/// module), and when it came.
struct Parked {
    query: zenoh::query::Query,
    head: adopt::Head,
    request: (String, String, wire::Image),
    since: std::time::Instant,
}

/// An error answer's payload.
fn error(message: String) -> Vec<u8> {
    wire::encode(&Response::Error { message })
}

/// Answers adopt `p` (on `key`): takes its snapshot and hands the daemon
/// the adoption, one at a time (`one`); refuses it if its snapshot is not
/// whole or the device is taking another app.
async fn adopt_now(
    p: Parked,
    assemblies: &mut adopt::Assemblies,
    one: &Arc<Semaphore>,
    calls: &mpsc::Sender<Incoming>,
    key: String,
) {
    let Parked {
        query,
        head,
        request: (pid, app, module),
        ..
    } = p;
    let request = match assemblies.take(&head) {
        Ok(snapshot) => Request::Adopt {
            pid,
            name: app,
            module,
            snapshot,
        },
        Err(e) => {
            let _ = query.reply(key, error(e)).await;
            return;
        }
    };
    let Ok(permit) = one.clone().try_acquire_owned() else {
        let busy = "busy: the device is taking another app".to_string();
        let _ = query.reply(key, error(busy)).await;
        return;
    };
    let calls = calls.clone();
    tokio::spawn(async move {
        let response = answer(&calls, request).await;
        let _ = query.reply(key, wire::encode(&response)).await;
        drop(permit);
    });
}

async fn watch_removals(session: Session, removals: mpsc::Sender<String>) {
    let Ok(sub) = session.declare_subscriber(keys::REMOVED_ALL).await else {
        return;
    };
    while let Ok(sample) = sub.recv_async().await {
        if let Some(name) = keys::device_of_removal(sample.key_expr().as_str())
            && removals.send(name.to_string()).await.is_err()
        {
            return;
        }
    }
}
