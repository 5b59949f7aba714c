//! Moving apps between devices (PROTOCOL.md §19.4): the source captures
//! the app through its runtime's MOVE stream (§19.3), hands the snapshot to
//! the destination in one Zenoh query on `weft/dev/<to>/adopt`, and ends
//! its copy only once the destination answers that the app runs there;
//! on any failure the held app is released and goes on at the source.
//!
//! Invariants:
//! - an app is never lost: the source's copy stays (held) until the
//!   destination has restored it, and is released on every failure;
//! - an app runs in one place at a time: the source's copy is held from
//!   its capture and ended once the destination runs it; a destination
//!   whose restore fails ends its runtime without an exit;
//! - one move of a process at a time, and one adoption at a time per
//!   device (the node answers others busy): a snapshot is held whole in
//!   memory only while it travels.
//! - a runtime prepared for an adoption (§19.4's prepare) runs no app
//!   until the adopt hands it its snapshot, and is ended without an exit
//!   when none comes within [`PREPARED_LIMIT`]; at most one is prepared at
//!   a time, never for a pid that runs here.

use super::device::Whereabouts;
use super::fabric::{CALL_LIMIT, Daemon};
use super::say;
use super::udp::FabricUdp;
use crate::catalog::Tier;
use crate::streams::{Begin, MoveAsk, MoveOrder, SpawnImage, Uncaptured};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot, watch};
use weft_control::snapshot;
use weft_fabric::node::Outgoing;
use weft_fabric::wire::{Image, Pid, Request, Response};

/// How long a runtime may take to write its snapshot once its batch ended.
const CAPTURE_LIMIT: Duration = Duration::from_secs(30);
/// How long the destination may take to fetch the module, start the
/// runtime and restore the app (its node gives up answering after 30 s).
const ADOPT_LIMIT: Duration = Duration::from_secs(40);
/// How long a restoring runtime may take to take its snapshot: with the
/// module's fetch (at most `CALL_LIMIT`, 10 s) well within the 30 s the
/// node gives an answer, so that no source gives up on a move its
/// destination then completes.
const RESTORE_LIMIT: Duration = Duration::from_secs(12);
/// How long a runtime that opens its MOVE stream waits for a restore's
/// spawn in flight to say whether the runtime is its; and how long a
/// prepared runtime may take to open it.
const SPAWN_LIMIT: Duration = Duration::from_secs(10);
/// How long a runtime prepared for an adoption waits for its snapshot:
/// the source gives up on the move within [`ADOPT_LIMIT`] of its prepare.
const PREPARED_LIMIT: Duration = ADOPT_LIMIT;
/// Bytes of a Wasm page.
const WASM_PAGE: u64 = 64 << 10;
/// How long a move the app asked for itself waits for its batch to end
/// (it asks from inside one).
const SELF_WAIT_MS: u32 = 10_000;
/// How long a move waits for a Wasm runtime that just started to open its
/// MOVE stream, and how often it looks.
const MOVER_LIMIT: Duration = Duration::from_secs(5);
const MOVER_POLL: Duration = Duration::from_millis(20);
/// How long a kill waits for a move of its process to end (within the
/// 10 s a caller gives a call).
const SETTLE_LIMIT: Duration = Duration::from_secs(8);
/// How many times a call naming a moved process is sent on.
pub const MAX_REDIRECTS: usize = 4;

/// The moves of this device's apps.
#[derive(Default)]
pub struct Moves {
    /// The MOVE streams of the guest's runtimes, by local pid.
    movers: Mutex<HashMap<u32, mpsc::Sender<MoveOrder>>>,
    /// Snapshots waiting for the runtime started to restore them, by local
    /// pid.
    restores: Mutex<HashMap<u32, Restore>>,
    /// Spawns of restoring runtimes in flight.
    spawning: watch::Sender<usize>,
    /// The runtime started ahead of an adoption (§19.4's prepare), until
    /// the adopt takes it or it is ended: at most one.
    prepared: Mutex<Option<Prepared>>,
    /// Prepared runtimes that have not opened their MOVE stream yet, by
    /// local pid.
    waiting: Mutex<HashMap<u32, Waiting>>,
    /// One prepare at a time.
    preparing: tokio::sync::Mutex<()>,
    /// Processes (fabric pids) being moved from here now.
    moving: Mutex<HashSet<String>>,
    /// What the restore of each app moved here needed (its snapshot and
    /// its linear memory, bytes), by local pid: the estimate its next
    /// move's prepare states. An app that never moved states what its
    /// runtime was given, which the memory a prepare readies would swell.
    needs: Mutex<HashMap<u32, u64>>,
}

/// What a move hands to its destination: the adopt request (its snapshot
/// left out), the module's hex SHA-256, and about how long the snapshot
/// will be (the app's memory), for the prepare.
struct Handover {
    request: Request,
    sha: String,
    estimate: u64,
}

/// A snapshot for a runtime to restore.
struct Restore {
    module: [u8; 32],
    snapshot: Arc<Vec<u8>>,
    restored: oneshot::Sender<Result<(), String>>,
}

/// A runtime started for app `pid` (module `sha256`) ahead of its
/// snapshot; the adopt sends the snapshot down `snapshot`.
struct Prepared {
    pid: Pid,
    sha256: String,
    local: u32,
    snapshot: oneshot::Sender<Restore>,
}

/// What a prepared runtime's MOVE stream waits on: its snapshot, until
/// `until`; `opened` tells the prepare that the runtime is ready.
struct Waiting {
    /// About how long the snapshot is, for the runtime to ready its memory.
    len: u64,
    snapshot: oneshot::Receiver<Restore>,
    /// Told once the runtime's memory is ready (`READY`).
    ready: oneshot::Sender<()>,
    until: tokio::time::Instant,
}

/// How a runtime that opened its MOVE stream begins, as far as moves go.
enum Ahead {
    /// It restores this snapshot.
    Restore(Restore),
    /// It starts its app afresh (no adoption is its).
    Start,
    /// It was prepared for an adoption that never came, and is ended.
    Abandoned,
}

/// What a runtime that opened its MOVE stream finds.
enum Found {
    /// How it begins, known now.
    Now(Ahead),
    /// It was prepared for an adoption: it waits for the snapshot.
    Prepared(Waiting),
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Each update is one insert or remove: never left half done.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Counts a restoring spawn in flight while it lives.
struct Spawning<'a>(&'a watch::Sender<usize>);

impl<'a> Spawning<'a> {
    fn new(count: &'a watch::Sender<usize>) -> Self {
        count.send_modify(|n| *n += 1);
        Spawning(count)
    }
}

impl Drop for Spawning<'_> {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n -= 1);
    }
}

/// Marks a process as moving while it lives.
struct Moving<'a>(&'a Mutex<HashSet<String>>, String);

impl Drop for Moving<'_> {
    fn drop(&mut self) {
        lock(self.0).remove(&self.1);
    }
}

/// The module a process's identity (`sha256:HEX`) names, as bytes.
fn module_of(identity: &str) -> Option<[u8; 32]> {
    let hex = identity.strip_prefix("sha256:")?;
    if hex.len() != 64 {
        return None;
    }
    let mut sha = [0u8; 32];
    for (i, b) in sha.iter_mut().enumerate() {
        *b = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(sha)
}

impl Moves {
    /// Waits until `pid` is not being moved from here (at most a move's
    /// longest, [`SETTLE_LIMIT`]); whether it is not.
    pub async fn settled(&self, pid: &Pid) -> bool {
        let key = pid.to_string();
        let deadline = tokio::time::Instant::now() + SETTLE_LIMIT;
        while lock(&self.moving).contains(&key) {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(MOVER_POLL).await;
        }
        true
    }

    /// Forgets what was kept for local process `local`, which ended.
    pub fn ended(&self, local: u32) {
        lock(&self.movers).remove(&local);
        lock(&self.needs).remove(&local);
    }
}

impl Daemon {
    /// Serves what a runtime's MOVE stream asks.
    pub async fn mover_asks(&self, ask: MoveAsk) {
        match ask {
            MoveAsk::Open { region, granted } => self.open_mover(region, granted).await,
            MoveAsk::Go { region, to } => {
                let Some((local, _)) = self.device.handle.process_of_region(region) else {
                    return;
                };
                let pid = self.device.fabric_pid(local);
                if let Err(why) = self.move_from_here(&pid, local, &to, SELF_WAIT_MS).await {
                    say(&why);
                }
            }
        }
    }

    /// Answers a runtime's MOVE stream: restore the snapshot waiting for
    /// it, or start afresh; from then on its app can be moved.
    async fn open_mover(&self, region: u64, granted: oneshot::Sender<Begin>) {
        let Some((local, identity)) = self.device.handle.process_of_region(region) else {
            let _ = granted.send(Begin::Refused("no process runs in that region".into()));
            return;
        };
        let Some(module) = module_of(&identity) else {
            let why = format!(
                "process {} runs {identity}: only an app given as a Wasm module's bytes can move",
                self.device.fabric_pid(local)
            );
            let _ = granted.send(Begin::Refused(why));
            return;
        };
        let mut granted = granted;
        let ahead = match self.restore_for(local).await {
            Found::Now(ahead) => ahead,
            Found::Prepared(mut w) => {
                // Told at once, so that it readies its memory before the
                // app is captured (the prepare is answered once it has);
                // how it begins follows.
                let (then, begin) = oneshot::channel();
                let (ready, _) = oneshot::channel();
                let _ = granted.send(Begin::Prepare {
                    len: w.len,
                    ready: std::mem::replace(&mut w.ready, ready),
                    then: begin,
                });
                granted = then;
                self.snapshot_for(local, w).await
            }
        };
        let (orders, orders_rx) = mpsc::channel(1);
        let begin = match ahead {
            Ahead::Restore(r) => Begin::Restore {
                module: r.module,
                snapshot: r.snapshot,
                restored: r.restored,
                orders: orders_rx,
            },
            Ahead::Start => Begin::Start {
                module,
                orders: orders_rx,
            },
            Ahead::Abandoned => {
                // Ended already; should it still read its stream, a
                // snapshot it must refuse makes it exit (status 2) rather
                // than start its app afresh.
                let (restored, _) = oneshot::channel();
                let _ = granted.send(Begin::Restore {
                    module,
                    snapshot: Arc::new(vec![0]),
                    restored,
                    orders: orders_rx,
                });
                return;
            }
        };
        lock(&self.moves.movers).insert(local, orders);
        let _ = granted.send(begin);
    }

    /// How the runtime of `local` begins: with the snapshot waiting for it,
    /// once the restoring spawns in flight have said whose it is; or, if it
    /// was prepared for an adoption, with the snapshot the adopt hands it.
    async fn restore_for(&self, local: u32) -> Found {
        let mut spawning = self.moves.spawning.subscribe();
        let deadline = tokio::time::Instant::now() + SPAWN_LIMIT;
        loop {
            if let Some(r) = lock(&self.moves.restores).remove(&local) {
                return Found::Now(Ahead::Restore(r));
            }
            let waiting = lock(&self.moves.waiting).remove(&local);
            if let Some(w) = waiting {
                return Found::Prepared(w);
            }
            if *spawning.borrow_and_update() == 0 {
                return Found::Now(Ahead::Start);
            }
            if tokio::time::timeout_at(deadline, spawning.changed())
                .await
                .is_err()
            {
                return Found::Now(Ahead::Start);
            }
        }
    }

    /// Waits for the snapshot runtime `local`'s adopt hands it; ends the
    /// runtime (no exit is published for it) if none comes in time.
    async fn snapshot_for(&self, local: u32, w: Waiting) -> Ahead {
        let mut snapshot = w.snapshot;
        match tokio::time::timeout_at(w.until, &mut snapshot).await {
            Ok(Ok(r)) => return Ahead::Restore(r),
            Ok(Err(_)) => {}
            Err(_) => {
                // Out of time, unless an adopt took it just now: it then
                // sends the snapshot at once.
                let ours = lock(&self.moves.prepared)
                    .take_if(|p| p.local == local)
                    .is_some();
                if !ours && let Ok(r) = snapshot.await {
                    return Ahead::Restore(r);
                }
            }
        }
        say(&format!(
            "process {local} of this guest, prepared for an app, got no snapshot: ended"
        ));
        self.abandon(local).await;
        Ahead::Abandoned
    }

    /// Ends runtime `local`, prepared for an adoption that it will not get,
    /// without an exit.
    async fn abandon(&self, local: u32) {
        lock(&self.moves.prepared).take_if(|p| p.local == local);
        self.device.silence(local);
        let _ = self.device.kill(local).await;
    }

    /// Gets ready to take app `pid` (§19.4's prepare): starts a runtime of
    /// `module` (fetched if need be), which compiles it, opens its MOVE
    /// stream and waits there for the snapshot of the adopt that follows
    /// (at most [`PREPARED_LIMIT`]); answers once it has readied its memory (`READY`). At most one
    /// runtime is prepared at a time; a prepare of the app already
    /// prepared is answered at once.
    pub(super) async fn prepare(
        &self,
        pid: &str,
        name: String,
        module: Image,
        len: u64,
    ) -> Result<(), String> {
        let pid = Pid::parse(pid)?;
        if let Whereabouts::Here(_) = self.device.whereabouts(&pid) {
            return Err(format!("{pid} runs here already"));
        }
        let Image::Wasm { ref sha256, .. } = module else {
            return Err("only a Wasm app moves".into());
        };
        let sha256 = sha256.clone();
        let _one = self.moves.preparing.lock().await;
        let stale = {
            let mut prepared = lock(&self.moves.prepared);
            match prepared.as_ref() {
                Some(p) if p.pid == pid && p.sha256 == sha256 => return Ok(()),
                Some(_) => prepared.take(),
                None => None,
            }
        };
        if let Some(p) = stale {
            // Left by a move whose capture failed: dropped, its snapshot's
            // sender ends its wait, and it is ended.
            say(&format!(
                "the runtime prepared for {} makes way for {pid}",
                p.pid
            ));
        }
        let bytes = self.module_bytes(module).await?;
        let (snapshot, waits) = oneshot::channel();
        let (ready_tx, ready) = oneshot::channel();
        let local = {
            let _spawning = Spawning::new(&self.moves.spawning);
            let local = self
                .device
                .spawn(
                    // Only the interpreter restores an app.
                    SpawnImage::Wasm(bytes.as_ref().clone(), Tier::Interp),
                    vec![app_name(name, &pid)],
                )
                .await?;
            let waiting = Waiting {
                len,
                snapshot: waits,
                ready: ready_tx,
                until: tokio::time::Instant::now() + PREPARED_LIMIT,
            };
            lock(&self.moves.waiting).insert(local, waiting);
            *lock(&self.moves.prepared) = Some(Prepared {
                pid: pid.clone(),
                sha256,
                local,
                snapshot,
            });
            local
        };
        match tokio::time::timeout(SPAWN_LIMIT, ready).await {
            Ok(Ok(())) => Ok(()),
            _ => {
                lock(&self.moves.waiting).remove(&local);
                self.abandon(local).await;
                Err(format!(
                    "the runtime prepared for {pid} did not ready itself in its MOVE stream"
                ))
            }
        }
    }

    /// Moves `pid`, which runs here as local process `local`, to `to`.
    pub(super) async fn move_from_here(
        &self,
        pid: &Pid,
        local: u32,
        to: &str,
        wait_ms: u32,
    ) -> Result<(), String> {
        let me = self.identity.name.clone();
        if to == me {
            return Err(format!("{pid} runs on {me} already"));
        }
        if !self.available_members().await.iter().any(|d| d == to) {
            return Err(format!(
                "device {to} is not an available device of this fabric"
            ));
        }
        let (mover, sha) = self.mover_of(pid, local).await?;
        if !lock(&self.moves.moving).insert(pid.to_string()) {
            return Err(format!("{pid} is moving already"));
        }
        let _moving = Moving(&self.moves.moving, pid.to_string());
        let handover = self.handover(pid, local, sha).await?;
        // The destination starts the app's runtime, which readies itself
        // for the snapshot, while the app still runs here; a failure only
        // leaves that to the adopt.
        let node = self.node().await;
        let request = &handover.request;
        let _ = node
            .prepare(to, request, handover.estimate, SPAWN_LIMIT)
            .await;
        let asked = Instant::now();
        // Its services hold their messages from now on, and the owners of
        // its fabric UDP sockets their datagrams: the runtime captures it
        // once it has taken (and answered) those before (§19.5, §19.6).
        self.ipc.pause(local).await;
        if let Err(why) = FabricUdp::pause(self, local, to).await {
            self.ipc.resume(local).await;
            return Err(format!("{pid} cannot move: {why}"));
        }
        // The snapshot goes to the destination part by part as the runtime
        // writes it; the adopt itself only once it was checked whole.
        let (parts, outgoing) = mpsc::unbounded_channel();
        let (checked, checked_rx) = oneshot::channel();
        let adopting = {
            let (node, to, request) = (node.clone(), to.to_string(), request.clone());
            let outgoing = Outgoing {
                parts: outgoing,
                checked: checked_rx,
            };
            tokio::spawn(async move { node.adopt(&to, &request, outgoing, ADOPT_LIMIT).await })
        };
        let header = match capture(&mover, wait_ms, parts).await {
            Ok(header) => header,
            Err(Uncaptured::Refused(why)) => {
                adopting.abort();
                self.resume(local).await;
                return Err(format!("{pid} cannot move: {why}"));
            }
            Err(Uncaptured::Broken(why)) => {
                adopting.abort();
                self.give_back(&mover, local).await;
                return Err(format!("{pid} cannot move: {why}"));
            }
        };
        let captured = Instant::now();
        let adopted = if handover.sha != sha256_hex_of(&header.module) {
            adopting.abort();
            Err("its snapshot is of another module than it runs".to_string())
        } else {
            let _ = checked.send(());
            match adopting.await {
                Ok(Ok(Response::Spawned { pid: there })) => Pid::parse(&there)
                    .ok()
                    .filter(|p| p.device == to)
                    .map(|p| p.n)
                    .ok_or_else(|| format!("it answered process {there:?}")),
                Ok(Ok(other)) => Err(format!("unexpected answer {other:?}")),
                Ok(Err(e)) => Err(e.to_string()),
                Err(e) => Err(e.to_string()),
            }
        };
        let there = match adopted {
            Ok(there) => there,
            Err(why) => {
                self.give_back(&mover, local).await;
                return Err(format!(
                    "moving {pid} to {to} failed ({why}); it goes on on {me}"
                ));
            }
        };
        self.device.moved_away(local, to);
        self.udp.left(local);
        self.node().await.release(pid);
        // Before the runtime ends, which would end its services' queues.
        self.ipc.moved(local, to, there).await;
        lock(&self.moves.movers).remove(&local);
        let _ = mover.send(MoveOrder::End).await;
        say(&format!(
            "{pid} moved to {to}: {} bytes, captured in {:.1} ms, handed over in {:.1} ms",
            header.body_len + 52,
            (captured - asked).as_secs_f64() * 1e3,
            captured.elapsed().as_secs_f64() * 1e3
        ));
        if pid.device != me && pid.device != to {
            // Calls naming it go to its first device first: tell it,
            // without holding up the answer (it may be away).
            let located = Request::Located {
                pid: pid.to_string(),
                at: to.to_string(),
            };
            let (node, first) = (self.node().await, pid.device.clone());
            tokio::spawn(async move { node.call(&first, &located, CALL_LIMIT).await });
        }
        Ok(())
    }

    /// What hands `pid`, local process `local` running the module whose hex
    /// SHA-256 is `sha`, to another device (§19.4), with its module on
    /// offer here.
    async fn handover(&self, pid: &Pid, local: u32, sha: String) -> Result<Handover, String> {
        let size = self.offer_module_of(&sha).await?;
        let (name, memory) = self
            .device
            .stats(pid, Some(local))
            .await
            .map(|p| (p.name, p.memory))
            .unwrap_or_default();
        let request = Request::Adopt {
            pid: pid.to_string(),
            name,
            module: Image::Wasm {
                sha256: sha.clone(),
                size,
                from: self.identity.name.clone(),
            },
            snapshot: Vec::new(),
        };
        let estimate = lock(&self.moves.needs).get(&local).copied();
        Ok(Handover {
            request,
            sha,
            estimate: estimate.unwrap_or(memory).max(1),
        })
    }

    /// Gives a held app back to its runtime (its move failed): its services
    /// deliver again and it goes on.
    async fn give_back(&self, mover: &mpsc::Sender<MoveOrder>, local: u32) {
        self.resume(local).await;
        let _ = mover.send(MoveOrder::Release).await;
    }

    /// Delivers again to local process `local`'s services and fabric UDP
    /// sockets: its move failed.
    async fn resume(&self, local: u32) {
        self.ipc.resume(local).await;
        FabricUdp::resume(self, local).await;
    }

    /// The MOVE stream of `pid`'s runtime (local process `local`): a Wasm
    /// runtime that just started may not have opened it yet.
    /// With it, the hex SHA-256 of the module it runs.
    async fn mover_of(
        &self,
        pid: &Pid,
        local: u32,
    ) -> Result<(mpsc::Sender<MoveOrder>, String), String> {
        let native =
            || format!("{pid} cannot move: it is a native program; only a Wasm event app can");
        let identity = self
            .device
            .handle
            .identity_of(local)
            .ok_or_else(|| format!("{pid} has ended"))?;
        let sha = identity.strip_prefix("sha256:").ok_or_else(native)?;
        let module = self
            .device
            .module(sha)
            .ok_or_else(|| format!("{pid} cannot move: its module is no longer at hand here"))?;
        if !module.starts_with(b"\0asm") {
            return Err(native());
        }
        if self.device.handle.tier_of(local) == Some(Tier::Compiled) {
            return Err(match crate::aot::is_event_app(&module) {
                true => format!(
                    "{pid} cannot move: it runs compiled (engine aot), and only interpreted apps move (spawn it with --engine interp to move it)"
                ),
                false => format!("{pid} cannot move: a command cannot move, only an event app"),
            });
        }
        let deadline = tokio::time::Instant::now() + MOVER_LIMIT;
        loop {
            if let Some(mover) = lock(&self.moves.movers).get(&local) {
                return Ok((mover.clone(), sha.to_string()));
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(format!("{pid} cannot move: its runtime takes no moves"));
            }
            tokio::time::sleep(MOVER_POLL).await;
        }
    }

    /// Offers the module whose hex SHA-256 is `sha` to the fabric (for a
    /// destination that lacks it); its size.
    async fn offer_module_of(&self, sha: &str) -> Result<u64, String> {
        let module = self
            .device
            .module(sha)
            .ok_or_else(|| format!("its module {sha} is no longer at hand here"))?;
        let size = module.len() as u64;
        self.node().await.offer(sha.to_string(), module);
        Ok(size)
    }

    /// Takes app `pid` moved here: hands `snapshot` to the runtime prepared
    /// for it, or else starts a runtime of `module` that restores it, and
    /// answers once it runs: with the local process it runs as.
    pub(super) async fn adopt(
        &self,
        pid: &str,
        name: String,
        module: Image,
        snapshot: Vec<u8>,
    ) -> Result<u32, String> {
        let pid = Pid::parse(pid)?;
        if snapshot.is_empty() {
            return Err("an adopt comes with a snapshot, on the adopt key only (§19.4)".into());
        }
        if let Whereabouts::Here(_) = self.device.whereabouts(&pid) {
            return Err(format!("{pid} runs here already"));
        }
        let header =
            snapshot::check(&snapshot).map_err(|e| format!("the snapshot of {pid}: {e}"))?;
        let Image::Wasm { ref sha256, .. } = module else {
            return Err("only a Wasm app moves".into());
        };
        if sha256_hex_of(&header.module) != *sha256 {
            return Err(format!(
                "the snapshot of {pid} is of another module than {sha256}"
            ));
        }
        let arrived = Instant::now();
        // Its checksum was checked just now.
        let pages = snapshot::read_summed(&snapshot)
            .ok()
            .and_then(|c| c.memory.map(|m| u64::from(m.pages())));
        let need = snapshot.len() as u64 + pages.unwrap_or(0) * WASM_PAGE;
        let (restored, done) = oneshot::channel();
        let restore = Restore {
            module: header.module,
            snapshot: Arc::new(snapshot),
            restored,
        };
        let prepared = lock(&self.moves.prepared).take_if(|p| p.pid == pid && p.sha256 == *sha256);
        // A prepared runtime that is gone (it ended) leaves the snapshot
        // to a runtime started now.
        let sent = match prepared {
            Some(p) => p.snapshot.send(restore).map(|()| p.local),
            None => Err(restore),
        };
        let (local, how) = match sent {
            Ok(local) => (local, "prepared"),
            Err(restore) => (
                self.restoring(module, name, &pid, restore).await?,
                "started",
            ),
        };
        let outcome = match tokio::time::timeout(RESTORE_LIMIT, done).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err("its runtime ended before it restored the app".into()),
            Err(_) => Err(format!(
                "its runtime did not restore the app within {RESTORE_LIMIT:?}"
            )),
        };
        match outcome {
            Ok(()) => {
                self.device.adopted(local, pid.clone());
                lock(&self.moves.needs).insert(local, need);
                // Calls naming it find it here even when the devices that
                // moved it are away; without the token they still do
                // through those.
                if let Err(e) = self.node().await.hold(&pid, local).await {
                    say(&format!("cannot declare that {pid} runs here: {e}"));
                }
                say(&format!(
                    "{pid} moved here (process {local} of this guest, {how}), restored in {:.1} ms",
                    arrived.elapsed().as_secs_f64() * 1e3
                ));
                Ok(local)
            }
            Err(why) => {
                lock(&self.moves.restores).remove(&local);
                // The source takes back the sockets it took over.
                self.udp.left(local);
                self.device.silence(local);
                let _ = self.device.kill(local).await;
                Err(format!(
                    "{pid} could not be restored on {}: {why}",
                    self.identity.name
                ))
            }
        }
    }

    /// Starts a runtime of `module` (fetched if need be) that restores
    /// `restore`, for app `pid` named `name`: its local process.
    async fn restoring(
        &self,
        module: Image,
        name: String,
        pid: &Pid,
        restore: Restore,
    ) -> Result<u32, String> {
        let bytes = self.module_bytes(module).await?;
        let _spawning = Spawning::new(&self.moves.spawning);
        let local = self
            .device
            .spawn(
                // Only the interpreter restores an app.
                SpawnImage::Wasm(bytes.as_ref().clone(), Tier::Interp),
                vec![app_name(name, pid)],
            )
            .await?;
        lock(&self.moves.restores).insert(local, restore);
        Ok(local)
    }
}

/// The name a moved app's runtime is spawned with: its own, or its pid.
fn app_name(name: String, pid: &Pid) -> String {
    if name.is_empty() {
        pid.to_string()
    } else {
        name
    }
}

// A runtime's snapshot part goes on to the destination as one part query.
const _: () = assert!(weft_control::move_proto::MAX_PART <= weft_fabric::adopt::PART);

/// Asks a runtime for its app's snapshot, whose parts go to `parts` as
/// they come: its header, once it was checked whole.
async fn capture(
    mover: &mpsc::Sender<MoveOrder>,
    wait_ms: u32,
    parts: mpsc::UnboundedSender<Vec<u8>>,
) -> Result<snapshot::Header, Uncaptured> {
    let (captured, snapshot) = oneshot::channel();
    mover
        .send(MoveOrder::Capture {
            wait_ms,
            parts,
            captured,
        })
        .await
        .map_err(|_| Uncaptured::Refused("its runtime has ended".into()))?;
    let limit = Duration::from_millis(wait_ms.into()) + CAPTURE_LIMIT;
    match tokio::time::timeout(limit, snapshot).await {
        Ok(Ok(r)) => r,
        Ok(Err(_)) => Err(Uncaptured::Refused(
            "its runtime ended or broke the move protocol".into(),
        )),
        Err(_) => Err(Uncaptured::Refused(format!(
            "its runtime wrote no snapshot within {limit:?}"
        ))),
    }
}

/// Lowercase hex of a SHA-256.
fn sha256_hex_of(sha: &[u8; 32]) -> String {
    sha.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::super::device::sha256_hex;
    use super::*;

    #[test]
    fn a_module_is_named_by_its_identity() {
        let hex = sha256_hex(b"abc");
        let sha = module_of(&format!("sha256:{hex}")).unwrap();
        assert_eq!(sha256_hex_of(&sha), hex);
        assert_eq!(module_of("program:kv"), None);
        assert_eq!(module_of("sha256:00"), None);
        assert_eq!(module_of(&format!("sha256:{}", "zz".repeat(32))), None);
    }
}
