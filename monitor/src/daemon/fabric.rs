//! The daemon's fabric side: its Zenoh node (reopened when the deny list
//! changes), the registry of known devices (kept in the state directory and
//! merged with what other devices know), the calls other devices make to
//! this one, and the commands of the local CLI.
//!
//! Invariants: a removed device is refused by this daemon from the moment
//! it learns of the removal (its node is reopened with the device on the
//! access-control deny list, and the registry, where removal is for good,
//! is saved first); calls to this device itself never leave the daemon.

use super::device::Whereabouts;
use super::device::{LocalDevice, check_image, check_module, sha256_hex};
use super::identity::Identity;
use super::ipc::Hub;
use super::moves::{MAX_REDIRECTS, Moves};
use super::say;
use super::udp::FabricUdp;
use crate::catalog::Tier;
use crate::streams::SpawnImage;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{RwLock, mpsc};
use weft_control::ipc_proto::{Guid, IpcError, MAX_DATA, MAX_TIMEOUT_MS};
use weft_fabric::local::{LocalRequest, LocalResponse, Program};
use weft_fabric::node::{FabricError, Incoming, Node, NodeConfig};
use weft_fabric::registry::Registry;
use weft_fabric::wire::{Device, Engine, Image, Pid, Process, Request, Response, Service};

/// How long a call to another device may take.
pub const CALL_LIMIT: Duration = Duration::from_secs(10);
/// How often a registry that could not be read is asked for again.
const RESYNC: Duration = Duration::from_secs(1);
/// How often every available device's registry is merged again.
const REFRESH: Duration = Duration::from_secs(5);
/// How often the registry's activatable services are declared again if
/// they changed.
const ACTIVATABLE_EVERY: Duration = Duration::from_secs(1);
/// How long a device's figures may take when listing devices.
const FIGURES_LIMIT: Duration = Duration::from_secs(2);
/// How long a reopened session may wait for the closed one's port.
const PORT_RELEASE: Duration = Duration::from_secs(10);

/// One running daemon.
pub struct Daemon {
    pub identity: Identity,
    pub device: LocalDevice,
    /// This device's IPC services and the routing of messages (§18).
    pub ipc: Arc<Hub>,
    node_cfg: NodeConfig,
    node: RwLock<Arc<Node>>,
    registry: Mutex<Registry>,
    calls: mpsc::Sender<Incoming>,
    removals: mpsc::Sender<String>,
    /// Set once this device learns it was removed: it serves nothing more.
    removed: std::sync::atomic::AtomicBool,
    /// UDP sockets on the fabric's addresses, held here or for apps here.
    pub(super) udp: Arc<FabricUdp>,
    /// The moves of this device's apps (§19.4).
    pub(super) moves: Moves,
}

impl Daemon {
    /// Opens the node and starts every task of the daemon's fabric side.
    pub async fn start(
        identity: Identity,
        device: LocalDevice,
        mut node_cfg: NodeConfig,
        registry: Registry,
        udp: Arc<FabricUdp>,
    ) -> Result<Arc<Daemon>, FabricError> {
        let (calls, calls_rx) = mpsc::channel(64);
        let (removals, removals_rx) = mpsc::channel(16);
        node_cfg.denied = registry.removed();
        let ipc = Hub::new(
            identity.name.clone(),
            device.handle.clone(),
            identity.state().path(),
        );
        let node = Node::open(
            &node_cfg,
            calls.clone(),
            removals.clone(),
            ipc.deliverer(),
            udp.sink(),
        )
        .await?;
        let daemon = Arc::new(Daemon {
            identity,
            device,
            ipc,
            node_cfg,
            node: RwLock::new(Arc::new(node)),
            registry: Mutex::new(registry),
            calls,
            removals,
            removed: Default::default(),
            udp,
            moves: Moves::default(),
        });
        daemon.ipc.attach(&daemon);
        tokio::spawn(daemon.clone().keep_activatable());
        tokio::spawn(daemon.clone().serve_calls(calls_rx));
        tokio::spawn(daemon.clone().follow_removals(removals_rx));
        tokio::spawn(daemon.clone().publish_exits());
        tokio::spawn(daemon.clone().sync_registries());
        Ok(daemon)
    }

    pub(super) async fn node(&self) -> Arc<Node> {
        self.node.read().await.clone()
    }

    /// Withdraws presence and closes the session.
    pub async fn stop(&self) {
        self.node().await.close().await;
    }

    pub(super) fn is_removed(&self) -> bool {
        self.removed.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Reopens the node with the registry's current deny list.
    pub(super) async fn reopen(&self) -> Result<(), FabricError> {
        let mut cfg = self.node_cfg.clone();
        cfg.denied = self.registry().removed();
        let mut node = self.node.write().await;
        node.close().await;
        // The closed session's QUIC endpoint lets its UDP port go only once
        // its connections have drained: until then the new one cannot
        // listen there, and is tried again.
        let since = tokio::time::Instant::now();
        let opened = loop {
            let (calls, removals) = (self.calls.clone(), self.removals.clone());
            let (deliver, udp) = (self.ipc.deliverer(), self.udp.sink());
            match Node::open(&cfg, calls, removals, deliver, udp).await {
                Err(FabricError::Zenoh(e))
                    if e.contains("Address already in use") && since.elapsed() < PORT_RELEASE =>
                {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                other => break other?,
            }
        };
        *node = Arc::new(opened);
        // The new session declares this device's services and the
        // processes moved here again.
        for (guid, pid, runtime) in self.ipc.declared() {
            node.provide(guid, pid, &runtime).await?;
        }
        for (local, pid) in self.device.moved_here() {
            node.hold(&pid, local).await?;
        }
        Ok(())
    }

    fn registry(&self) -> MutexGuard<'_, Registry> {
        // The registry is never left half-changed: a panic while it is held
        // cannot break its invariants, so a poisoned lock is still usable.
        self.registry.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn save_registry(&self, registry: &Registry) {
        if let Err(e) = self.identity.save_registry(registry) {
            say(&format!("cannot save the registry: {e}"));
        }
    }

    async fn serve_calls(self: Arc<Self>, mut calls: mpsc::Receiver<Incoming>) {
        while let Some(Incoming { request, reply }) = calls.recv().await {
            let daemon = self.clone();
            tokio::spawn(async move {
                let response = match request {
                    // The socket's task holds the daemon.
                    Request::UdpBind {
                        addr,
                        device,
                        socket,
                    } => FabricUdp::bind_owned(daemon, addr, device, socket).await,
                    request => daemon.answer(request).await,
                };
                let _ = reply.send(response);
            });
        }
    }

    async fn follow_removals(self: Arc<Self>, mut removals: mpsc::Receiver<String>) {
        while let Some(name) = removals.recv().await {
            self.removal(&name).await;
        }
    }

    /// Acts on the news that `name` was removed.
    async fn removal(&self, name: &str) {
        {
            let mut registry = self.registry();
            if !registry.remove(name) && name != self.identity.name {
                return;
            }
            self.save_registry(&registry);
        }
        if name == self.identity.name {
            say("this device was removed from the fabric; it reaches nothing more");
            self.removed
                .store(true, std::sync::atomic::Ordering::SeqCst);
            self.stop().await;
            return;
        }
        say(&format!("device {name} was removed from the fabric"));
        if let Err(e) = self.reopen().await {
            say(&format!("cannot reopen the fabric session: {e}"));
        }
    }

    /// Publishes every exit of the guest's processes.
    async fn publish_exits(self: Arc<Self>) {
        let mut exits = self.device.handle.exits();
        loop {
            match exits.recv().await {
                Ok(exit) => {
                    self.moves.ended(exit.pid);
                    // A runtime whose app moved on has no exit of its own.
                    if let Some(pid) = self.device.ended(exit.pid, exit.status) {
                        let node = self.node().await;
                        node.release(&pid);
                        let _ = node.publish_exit(&pid, exit.status).await;
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
    }

    /// Learns the devices other devices know: whenever a device becomes
    /// available, its registry is merged into this one; a device whose
    /// registry could not be read yet (routes still converging) is asked
    /// again every [`RESYNC`], and every available device every
    /// [`REFRESH`] (devices paired elsewhere, removals missed).
    async fn sync_registries(self: Arc<Self>) {
        let mut seen: BTreeSet<String> = BTreeSet::new();
        let mut due: BTreeSet<String> = BTreeSet::new();
        loop {
            let node = self.node().await;
            let mut available = node.available();
            let now = available.borrow_and_update().clone();
            due.extend(now.difference(&seen).cloned());
            due.retain(|d| now.contains(d) && *d != self.identity.name);
            seen = now;
            for device in std::mem::take(&mut due) {
                match node.call(&device, &Request::Registry, CALL_LIMIT).await {
                    Ok(Response::Registry { devices }) => {
                        if self.merge(devices).await {
                            return;
                        }
                    }
                    _ => {
                        due.insert(device);
                    }
                }
            }
            tokio::select! {
                () = tokio::time::sleep(REFRESH) => seen.clear(),
                changed = available.changed() => {
                    // A reopened node has a new presence watch: the old one
                    // closes, and every device is asked again.
                    if changed.is_err() {
                        if self.is_removed() {
                            return;
                        }
                        seen.clear();
                    }
                }
                () = tokio::time::sleep(RESYNC), if !due.is_empty() => {}
            }
        }
    }

    /// Merges entries another device knows; true if they say this device
    /// was removed (it then stops).
    async fn merge(&self, devices: Vec<weft_fabric::wire::Known>) -> bool {
        let changes = {
            let mut registry = self.registry();
            let changes = registry.merge(devices);
            if !changes.is_empty() {
                self.save_registry(&registry);
            }
            changes
        };
        if changes.removed.contains(&self.identity.name) {
            self.removal(&self.identity.name.clone()).await;
            return true;
        }
        if changes.removed.iter().any(|n| *n != self.identity.name)
            && let Err(e) = self.reopen().await
        {
            say(&format!("cannot reopen the fabric session: {e}"));
        }
        false
    }

    /// The answer of this device to a call (another device's, or this
    /// daemon's own CLI's).
    pub async fn answer(&self, request: Request) -> Response {
        if self.is_removed() {
            return Response::Error {
                message: "this device was removed from the fabric".into(),
            };
        }
        let err = |message: String| Response::Error { message };
        match request {
            Request::Info => Response::Info {
                device: self.this_device().await,
            },
            Request::Registry => Response::Registry {
                devices: self.registry().list(),
            },
            Request::Ps => match self.device.processes().await {
                Ok(processes) => Response::Processes { processes },
                Err(e) => err(e),
            },
            Request::Stats { pid, of } => {
                let pid = self.named(pid, of);
                match self.whereabouts(&pid).await {
                    Whereabouts::Went(device) => Response::Elsewhere { device },
                    Whereabouts::Here(local) => match self.device.stats(&pid, Some(local)).await {
                        Ok(process) => Response::Process { process },
                        Err(e) => err(e),
                    },
                    Whereabouts::Unknown => match self.device.stats(&pid, None).await {
                        Ok(process) => Response::Process { process },
                        Err(e) => err(e),
                    },
                }
            }
            Request::Kill { pid, of } => {
                let pid = self.named(pid, of);
                // Killed mid-move, it would end here and run on there: the
                // kill waits for the move's outcome.
                if !self.moves.settled(&pid).await {
                    return err(format!("busy: {pid} is still moving"));
                }
                match self.whereabouts(&pid).await {
                    Whereabouts::Went(device) => Response::Elsewhere { device },
                    Whereabouts::Here(local) => match self.device.kill(local).await {
                        Ok(()) => Response::Done,
                        Err(e) => err(e),
                    },
                    Whereabouts::Unknown => {
                        err(format!("no process {pid} on {}", self.identity.name))
                    }
                }
            }
            Request::Move { pid, to, wait_ms } => match Pid::parse(&pid) {
                Err(e) => err(e),
                Ok(pid) => match self.whereabouts(&pid).await {
                    Whereabouts::Went(device) => Response::Elsewhere { device },
                    Whereabouts::Here(local) => {
                        match self.move_from_here(&pid, local, &to, wait_ms).await {
                            Ok(()) => Response::Done,
                            Err(e) => err(e),
                        }
                    }
                    Whereabouts::Unknown => {
                        err(format!("no process {pid} on {}", self.identity.name))
                    }
                },
            },
            Request::Adopt {
                pid,
                name,
                module,
                snapshot,
            } => match self.adopt(&pid, name, module, snapshot).await {
                Ok(local) => Response::Spawned {
                    pid: Pid::text(&self.identity.name, local),
                },
                Err(e) => err(e),
            },
            Request::Prepare {
                pid,
                name,
                module,
                total,
            } => match self.prepare(&pid, name, module, total).await {
                Ok(()) => Response::Done,
                Err(e) => err(e),
            },
            Request::Located { pid, at } => match Pid::parse(&pid) {
                Ok(pid) => {
                    self.device.located(&pid, &at);
                    Response::Done
                }
                Err(e) => err(e),
            },
            Request::Spawn {
                image,
                args,
                engine,
            } => match self.spawn_here(image, args, engine).await {
                Ok(pid) => Response::Spawned {
                    pid: Pid::text(&self.identity.name, pid),
                },
                Err(e) => err(e),
            },
            Request::Renew { csr } => self.renew_for(&csr),
            Request::Services => Response::Services {
                services: self.services_here(),
            },
            Request::Activate { guid } => match Guid::parse(&guid) {
                None => err(format!("{guid:?} is not a GUID")),
                Some(guid) => match self.ipc.activate(guid).await {
                    Ok(()) => Response::Done,
                    Err((_, why)) => err(why),
                },
            },
            Request::UdpBind { .. } => err("udp_bind is a call of other devices".into()),
            Request::UdpClose { device, socket } => self.udp.close(&device, socket),
            Request::UdpHold { device, socket, to } => self.udp.hold(&device, socket, to).await,
            Request::UdpRelease { device, socket } => self.udp.release(&device, socket).await,
        }
    }

    /// Keeps this device declared as the starter of the services its
    /// registry activates (§18.7), on whichever node is open: checked
    /// every [`ACTIVATABLE_EVERY`].
    async fn keep_activatable(self: Arc<Self>) {
        let mut declared: Option<(Arc<Node>, std::collections::BTreeSet<Guid>)> = None;
        loop {
            let node = self.node().await;
            let wanted = self.ipc.activatable();
            let same = declared
                .as_ref()
                .is_some_and(|(n, g)| Arc::ptr_eq(n, &node) && *g == wanted);
            if !same {
                match node.set_activatable(&wanted).await {
                    Ok(()) => declared = Some((node, wanted)),
                    Err(e) => say(&format!("cannot declare the activatable services: {e}")),
                }
            }
            tokio::time::sleep(ACTIVATABLE_EVERY).await;
        }
    }

    /// This device's service instances.
    fn services_here(&self) -> Vec<Service> {
        let device = &self.identity.name;
        self.ipc
            .listed()
            .into_iter()
            .map(|l| Service {
                guid: l.guid.to_string(),
                name: l.name,
                pid: self.device.fabric_pid(l.pid).to_string(),
                device: device.clone(),
            })
            .collect()
    }

    /// The service instances of every available device (those that
    /// answer).
    async fn services(&self) -> Vec<Service> {
        let mut services = self.services_here();
        for r in self.ask_the_others(Request::Services, "ipc services").await {
            if let Response::Services { services: s } = r {
                services.extend(s);
            }
        }
        services.sort_by(|a, b| (&a.guid, &a.pid).cmp(&(&b.guid, &b.pid)));
        services
    }

    /// Sends a message as this device's own (its CLI), and waits for its
    /// answer.
    async fn ipc_send(
        &self,
        guid: &str,
        pid: Option<String>,
        request: bool,
        timeout_ms: u32,
        data: Vec<u8>,
    ) -> Result<LocalResponse, String> {
        let guid = Guid::parse(guid)
            .ok_or_else(|| format!("{guid:?} is not a GUID (8-4-4-4-12 hex digits)"))?;
        if data.len() > MAX_DATA {
            return Err(format!("a message carries at most {MAX_DATA} bytes"));
        }
        if !(1..=MAX_TIMEOUT_MS).contains(&timeout_ms) {
            return Err(format!("the timeout is 1 to {MAX_TIMEOUT_MS} ms"));
        }
        let timeout = Duration::from_millis(timeout_ms.into());
        let (answer, answered) = crate::streams::Answerer::channel();
        let out = crate::streams::Outgoing {
            region: None,
            guid,
            pid,
            request,
            timeout,
            data,
            answer,
        };
        self.ipc.send(out).await;
        let result = match tokio::time::timeout(timeout, answered).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err((IpcError::Unreachable, "the message was dropped".into())),
            Err(_) => Err((
                IpcError::Timeout,
                format!("no answer within {timeout_ms} ms"),
            )),
        };
        match result {
            Ok(_) if !request => Ok(LocalResponse::Done),
            Ok(data) => Ok(LocalResponse::Answer { data }),
            Err((error, message)) => Err(format!("{error}: {message}")),
        }
    }

    /// Answers a renewal of another device's (or this one's) certificate.
    fn renew_for(&self, csr: &str) -> Response {
        let signed = self.identity.sign_renewal(&self.registry(), csr);
        match signed {
            Ok(certificate) => Response::Renewed { certificate },
            Err(message) => Response::Error { message },
        }
    }

    async fn spawn_here(
        &self,
        image: Image,
        args: Vec<String>,
        engine: Option<Engine>,
    ) -> Result<u32, String> {
        check_image(&image)?;
        let image = match (image, engine) {
            (Image::Program { name }, None) => SpawnImage::Bundled(name),
            (Image::Program { name }, Some(_)) => {
                return Err(format!(
                    "{name}: an engine applies only to a Wasm module, not a native program"
                ));
            }
            (wasm, engine) => {
                let bytes = self.module_bytes(wasm).await?.as_ref().clone();
                SpawnImage::Wasm(bytes, Tier::of_engine(engine))
            }
        };
        let pid = self.device.spawn(image, args).await?;
        // For the fabric's watchers (§17.4); an exit is published anyway.
        let _ = self.node().await.publish_start(pid).await;
        Ok(pid)
    }

    /// The bytes of Wasm module `image`: cached here, or fetched from the
    /// device that offers it (and cached).
    pub(super) async fn module_bytes(&self, image: Image) -> Result<Arc<Vec<u8>>, String> {
        check_image(&image)?;
        let Image::Wasm { sha256, size, from } = image else {
            return Err("a program's name is no module".into());
        };
        if let Some(m) = self.device.module(&sha256) {
            return Ok(m);
        }
        let bytes = self
            .node()
            .await
            .fetch(&from, &sha256, CALL_LIMIT)
            .await
            .map_err(|e| e.to_string())?;
        if bytes.len() as u64 != size || sha256_hex(&bytes) != sha256 {
            return Err(format!(
                "module {sha256} from {from} does not match its hash and size"
            ));
        }
        let m = Arc::new(bytes);
        self.device.cache(sha256, m.clone());
        Ok(m)
    }

    async fn this_device(&self) -> Device {
        Device {
            name: self.identity.name.clone(),
            id: self.identity.id.clone(),
            available: true,
            addresses: self.identity.addresses.clone(),
            figures: Some(self.device.figures().await),
        }
    }

    /// Calls `device`, this one included (answered here, without Zenoh).
    pub(super) async fn call(&self, device: &str, request: Request) -> Result<Response, String> {
        let response = if device == self.identity.name {
            self.answer(request).await
        } else {
            if !self.registry().is_member(device) {
                return Err(format!("no device {device} in this fabric"));
            }
            return self
                .node()
                .await
                .call(device, &request, CALL_LIMIT)
                .await
                .map_err(|e| e.to_string());
        };
        match response {
            Response::Error { message } => Err(message),
            r => Ok(r),
        }
    }

    /// The fabric pid `n` of `of`, or of this device.
    fn named(&self, n: u32, of: Option<String>) -> Pid {
        Pid {
            device: of.unwrap_or_else(|| self.identity.name.clone()),
            n,
        }
    }

    /// Where process `pid` is: as this device knows, else the device whose
    /// holds token names it (§19.4), which finds a moved process when the
    /// devices that moved it are away.
    pub(super) async fn whereabouts(&self, pid: &Pid) -> Whereabouts {
        match self.device.whereabouts(pid) {
            Whereabouts::Unknown => match self.node().await.holder_of(pid) {
                Some((holder, _)) if holder != self.identity.name => Whereabouts::Went(holder),
                _ => Whereabouts::Unknown,
            },
            known => known,
        }
    }

    /// Calls the device that runs `pid` with the request `make` builds
    /// from its number and its first device (`None` when that is the
    /// called one): first where this device last knew it, else its first
    /// device; a device it moved from sends the call on (`Elsewhere`), at
    /// most [`MAX_REDIRECTS`] times.
    async fn call_holder(
        &self,
        pid: &Pid,
        make: impl Fn(u32, Option<String>) -> Request,
    ) -> Result<Response, String> {
        let mut device = match self.whereabouts(pid).await {
            Whereabouts::Here(_) => self.identity.name.clone(),
            Whereabouts::Went(to) => to,
            Whereabouts::Unknown => pid.device.clone(),
        };
        for _ in 0..=MAX_REDIRECTS {
            let of = (device != pid.device).then(|| pid.device.clone());
            match self.call(&device, make(pid.n, of)).await? {
                Response::Elsewhere { device: next } => device = next,
                answer => return Ok(answer),
            }
        }
        Err(format!(
            "{pid} moved on more than {MAX_REDIRECTS} times while it was looked for"
        ))
    }

    /// Writes the available devices to `client` now and at every change,
    /// until the client goes or this device is removed.
    pub async fn watch<W>(&self, client: &mut W)
    where
        W: tokio::io::AsyncWrite + Unpin,
    {
        let mut last = None;
        while !self.is_removed() {
            let mut available = self.node().await.available();
            loop {
                available.borrow_and_update();
                let names = self.available_members().await;
                if last.as_ref() != Some(&names) {
                    let response = LocalResponse::Available {
                        names: names.clone(),
                    };
                    if weft_fabric::local::write_response(client, &response)
                        .await
                        .is_err()
                    {
                        return;
                    }
                    last = Some(names);
                }
                // A reopened node has a new presence watch.
                if available.changed().await.is_err() {
                    break;
                }
            }
        }
    }

    /// The devices available now that this device knows.
    pub(super) async fn available_members(&self) -> Vec<String> {
        let available = self.node().await.available().borrow().clone();
        let registry = self.registry();
        available
            .into_iter()
            .filter(|d| registry.is_member(d))
            .collect()
    }

    /// Answers a command of the local CLI.
    pub async fn command(&self, request: LocalRequest) -> LocalResponse {
        if self.is_removed() {
            return LocalResponse::Error {
                message: "this device was removed from the fabric".into(),
            };
        }
        match self.run_command(request).await {
            Ok(r) => r,
            Err(message) => LocalResponse::Error { message },
        }
    }

    async fn run_command(&self, request: LocalRequest) -> Result<LocalResponse, String> {
        Ok(match request {
            LocalRequest::Devices { available } => LocalResponse::Devices {
                devices: self.devices(available).await,
            },
            LocalRequest::Ps { device } => LocalResponse::Processes {
                processes: self.ps(device).await?,
            },
            LocalRequest::Stats { pid } => {
                let pid = Pid::parse(&pid)?;
                match self
                    .call_holder(&pid, |pid, of| Request::Stats { pid, of })
                    .await?
                {
                    Response::Process { process } => LocalResponse::Process { process },
                    other => return Err(unexpected(&other)),
                }
            }
            LocalRequest::Kill { pid } => {
                let pid = Pid::parse(&pid)?;
                self.call_holder(&pid, |pid, of| Request::Kill { pid, of })
                    .await?;
                LocalResponse::Done
            }
            LocalRequest::Move { pid, to, wait_ms } => {
                let pid = Pid::parse(&pid)?;
                let text = pid.to_string();
                let request = |_, _| Request::Move {
                    pid: text.clone(),
                    to: to.clone(),
                    wait_ms,
                };
                match self.call_holder(&pid, request).await? {
                    Response::Done => LocalResponse::Done,
                    other => return Err(unexpected(&other)),
                }
            }
            LocalRequest::Spawn {
                device,
                program,
                args,
                engine,
            } => {
                let device = device.unwrap_or_else(|| self.identity.name.clone());
                let image = self.image_of(program).await?;
                let spawn = Request::Spawn {
                    image,
                    args,
                    engine,
                };
                match self.call(&device, spawn).await? {
                    Response::Spawned { pid } => LocalResponse::Spawned { pid },
                    other => return Err(unexpected(&other)),
                }
            }
            LocalRequest::Wait { pid, limit_secs } => self.wait(&pid, limit_secs).await?,
            LocalRequest::Remove { name } => {
                self.remove(&name).await?;
                LocalResponse::Done
            }
            LocalRequest::Invite { expires_secs } => LocalResponse::Invitation {
                token: self.identity.invite(expires_secs)?,
            },
            LocalRequest::Watch => return Err("watch is answered on its own connection".into()),
            LocalRequest::IpcServices => LocalResponse::Services {
                services: self.services().await,
            },
            LocalRequest::IpcSend {
                guid,
                pid,
                request,
                timeout_ms,
                data,
            } => self.ipc_send(&guid, pid, request, timeout_ms, data).await?,
        })
    }

    async fn devices(&self, only_available: bool) -> Vec<Device> {
        let available = self.node().await.available().borrow().clone();
        let known = self.registry().list();
        let mut devices = Vec::new();
        for k in known.into_iter().filter(|k| !k.removed) {
            let is_available = available.contains(&k.name);
            if only_available && !is_available {
                continue;
            }
            let figures = if k.name == self.identity.name {
                Some(self.device.figures().await)
            } else if is_available {
                match self
                    .node()
                    .await
                    .call(&k.name, &Request::Info, FIGURES_LIMIT)
                    .await
                {
                    Ok(Response::Info { device }) => device.figures,
                    _ => None,
                }
            } else {
                None
            };
            devices.push(Device {
                name: k.name,
                id: k.id,
                available: is_available,
                addresses: k.addresses,
                figures,
            });
        }
        devices
    }

    async fn ps(&self, device: Option<String>) -> Result<Vec<Process>, String> {
        if let Some(device) = device {
            return match self.call(&device, Request::Ps).await? {
                Response::Processes { processes } => Ok(processes),
                other => Err(unexpected(&other)),
            };
        }
        // Every available device at once; those that answer are listed.
        let mut processes = self.device.processes().await?;
        for r in self.ask_the_others(Request::Ps, "ps").await {
            if let Response::Processes { processes: p } = r {
                processes.extend(p);
            }
        }
        Ok(processes)
    }

    /// Calls every other available device at once with `request`; the
    /// answers of those that answer (a failure is logged, under `what`).
    async fn ask_the_others(&self, request: Request, what: &str) -> Vec<Response> {
        let node = self.node().await;
        let mut calls = tokio::task::JoinSet::new();
        for d in self.available_members().await {
            if d != self.identity.name {
                let (node, request) = (node.clone(), request.clone());
                calls.spawn(async move { node.call(&d, &request, CALL_LIMIT).await });
            }
        }
        let mut answers = Vec::new();
        while let Some(r) = calls.join_next().await {
            match r {
                Ok(Ok(answer)) => answers.push(answer),
                Ok(Err(e)) => say(&format!("{what}: {e}")),
                Err(_) => {}
            }
        }
        answers
    }

    async fn image_of(&self, program: Program) -> Result<Image, String> {
        Ok(match program {
            Program::Name { name } => Image::Program { name },
            // Read by the local socket's server; never here.
            Program::File { name } => return Err(super::local::no_descriptor(&name)),
            Program::Module { bytes } => self.offer_module("the module", bytes).await?,
        })
    }

    /// Checks a Wasm module, caches it here and offers it to the fabric.
    async fn offer_module(&self, what: &str, bytes: Vec<u8>) -> Result<Image, String> {
        check_module(what, &bytes)?;
        let sha256 = sha256_hex(&bytes);
        let size = bytes.len() as u64;
        let module = Arc::new(bytes);
        self.device.cache(sha256.clone(), module.clone());
        self.node().await.offer(sha256.clone(), module);
        Ok(Image::Wasm {
            sha256,
            size,
            from: self.identity.name.clone(),
        })
    }

    async fn wait(&self, pid: &str, limit_secs: u64) -> Result<LocalResponse, String> {
        let parsed = Pid::parse(pid)?;
        let check = async {
            match self
                .call_holder(&parsed, |pid, of| Request::Stats { pid, of })
                .await
            {
                Ok(Response::Process { process }) => process.status,
                _ => None,
            }
        };
        let node = self.node().await;
        let limit = Duration::from_secs(limit_secs);
        match node.wait_exit(&parsed.device, parsed.n, limit, check).await {
            Ok(Some(status)) => Ok(LocalResponse::Exited {
                pid: pid.to_string(),
                status,
            }),
            Ok(None) => Ok(LocalResponse::Running {
                pid: pid.to_string(),
            }),
            Err(e) => Err(e.to_string()),
        }
    }

    async fn remove(&self, name: &str) -> Result<(), String> {
        if name == self.identity.name {
            return Err(format!(
                "a device cannot remove itself: remove {name} from another device"
            ));
        }
        {
            let mut registry = self.registry();
            if !registry.remove(name) {
                return Err(format!("no device {name} in this fabric"));
            }
            self.save_registry(&registry);
        }
        // Tell the others first, while the removed device still hears too.
        let _ = self.node().await.announce_removal(name).await;
        self.reopen().await.map_err(|e| e.to_string())
    }

    /// Records a device admitted by pairing.
    pub fn admit(&self, entry: weft_fabric::wire::Known) -> Result<(), String> {
        let mut registry = self.registry();
        if registry.is_taken(&entry.name) {
            return Err(format!("the name {} is taken", entry.name));
        }
        registry.merge(vec![entry]);
        self.save_registry(&registry);
        Ok(())
    }

    /// Whether a name is taken in this fabric (as far as this device knows).
    pub fn name_taken(&self, name: &str) -> bool {
        self.registry().is_taken(name)
    }

    /// The registry's entries.
    pub fn known(&self) -> Vec<weft_fabric::wire::Known> {
        self.registry().list()
    }
}

fn unexpected(r: &Response) -> String {
    format!("unexpected answer {r:?}")
}
