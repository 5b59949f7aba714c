//! The fabric's calls as this device answers them: its processes live in
//! the device guest and are reached through the guest's agent
//! ([`DeviceHandle`]); Wasm modules other devices offer are fetched by
//! content hash and kept in a bounded cache; exits are remembered for a
//! while so that a waiter that asks late still learns the status.
//!
//! A process keeps its fabric pid wherever it moves (§19.4): one that came
//! here from another device runs under a local pid of this guest but is
//! listed, stopped and reported under the pid it was born with
//! ([`LocalDevice::adopted`]); one that left is remembered with where it
//! went ([`LocalDevice::moved_away`]), so that calls naming it are sent on,
//! and its runtime's end is no exit.

pub use crate::catalog::sha256_hex;
use crate::catalog::{Catalog, Tier};
use crate::streams::{DeviceHandle, SpawnImage};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use weft_control::process::{ProcessRecord, state};
use weft_fabric::bounded::Bounded;
use weft_fabric::wire::{Figures, Image, Pid, Process};

/// Ended processes remembered (oldest forgotten first).
pub const RECENT_EXITS: usize = 1024;
/// Bytes of fetched Wasm modules kept (oldest dropped first).
pub const CACHE_BYTES: usize = 256 << 20;
/// The largest Wasm module a spawn takes.
pub const MAX_MODULE: u64 = 16 << 20;
/// The device agent's pid: infrastructure, not listed among the apps.
pub const AGENT_PID: u32 = 1;
/// How long a look at a process that has just ended waits for its end to
/// be recorded (the guest's report of it comes a moment after), and how
/// often it looks.
const END_RECORDED: std::time::Duration = std::time::Duration::from_millis(500);
const END_POLL: std::time::Duration = std::time::Duration::from_millis(5);

/// Whether `bytes` may be spawned as a Wasm module (`what` names it in the
/// error): at most [`MAX_MODULE`] bytes, with Wasm's magic number.
pub fn check_module(what: &str, bytes: &[u8]) -> Result<(), String> {
    if bytes.len() as u64 > MAX_MODULE {
        return Err(format!(
            "{what}: more than {MAX_MODULE} bytes; a module may have at most that"
        ));
    }
    if !bytes.starts_with(b"\0asm") {
        return Err(format!(
            "{what}: not a Wasm module (native programs run only from the target device's own programs)"
        ));
    }
    Ok(())
}

/// What the daemon keeps of its device guest.
pub struct LocalDevice {
    pub name: String,
    pub handle: DeviceHandle,
    /// Statuses of the processes that ended lately, by fabric pid.
    exits: Mutex<Bounded<u32>>,
    /// Names of the processes spawned lately (for their ended records), by
    /// local pid.
    names: Mutex<Bounded<String>>,
    /// How its Wasm modules run: those it compiles are compiled before
    /// their spawn ([`LocalDevice::precompile`]).
    catalog: &'static dyn Catalog,
    modules: Mutex<Bounded<Arc<Vec<u8>>>>,
    /// Processes running here that were born elsewhere: local pid → the
    /// fabric pid they keep.
    adopted: Mutex<HashMap<u32, Pid>>,
    /// Processes that moved away from here lately: fabric pid → the device
    /// they went to.
    away: Mutex<Bounded<String>>,
    /// Local pids whose end is no exit of theirs (their app moved on, or
    /// an adoption failed).
    silent: Mutex<HashSet<u32>>,
}

/// Where a process named by its fabric pid is, as this device knows.
#[derive(Debug, PartialEq, Eq)]
pub enum Whereabouts {
    /// Here, under this local pid.
    Here(u32),
    /// It moved from here to this device.
    Went(String),
    /// Not here, and this device never held it.
    Unknown,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Each update is one insert or remove: never left half done.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn state_name(s: u32) -> &'static str {
    match s {
        state::RUNNABLE => "running",
        state::BLOCKED => "waiting",
        state::ENDED => "ended",
        _ => "unknown",
    }
}

impl LocalDevice {
    pub fn new(name: String, handle: DeviceHandle, catalog: &'static dyn Catalog) -> Self {
        LocalDevice {
            name,
            handle,
            catalog,
            exits: Mutex::new(Bounded::new(RECENT_EXITS, |_| 1)),
            names: Mutex::new(Bounded::new(RECENT_EXITS, |_| 1)),
            modules: Mutex::new(Bounded::new(CACHE_BYTES, |m: &Arc<Vec<u8>>| m.len())),
            adopted: Mutex::default(),
            away: Mutex::new(Bounded::new(RECENT_EXITS, |_| 1)),
            silent: Mutex::default(),
        }
    }

    /// The fabric pid of local process `local`.
    pub fn fabric_pid(&self, local: u32) -> Pid {
        lock(&self.adopted).get(&local).cloned().unwrap_or(Pid {
            device: self.name.clone(),
            n: local,
        })
    }

    /// Where process `pid` is, as far as this device knows.
    pub fn whereabouts(&self, pid: &Pid) -> Whereabouts {
        let adopted = lock(&self.adopted);
        if let Some((&local, _)) = adopted.iter().find(|(_, p)| *p == pid) {
            return Whereabouts::Here(local);
        }
        if let Some(to) = lock(&self.away).get(&pid.to_string()) {
            return Whereabouts::Went(to);
        }
        // The agent (pid 1) included: a kill names it to be refused.
        let born_here = pid.device == self.name;
        if born_here && !adopted.contains_key(&pid.n) && !lock(&self.silent).contains(&pid.n) {
            return Whereabouts::Here(pid.n);
        }
        Whereabouts::Unknown
    }

    /// Records that local process `local` is `pid`, moved here.
    pub fn adopted(&self, local: u32, pid: Pid) {
        lock(&self.away).remove(&pid.to_string());
        lock(&self.adopted).insert(local, pid);
    }

    /// The processes moved here that run now: (local process, pid).
    pub fn moved_here(&self) -> Vec<(u32, Pid)> {
        lock(&self.adopted)
            .iter()
            .map(|(l, p)| (*l, p.clone()))
            .collect()
    }

    /// Records that local process `local`'s app moved to `to`: its
    /// runtime's end is no exit.
    pub fn moved_away(&self, local: u32, to: &str) {
        let pid = self.fabric_pid(local);
        lock(&self.silent).insert(local);
        lock(&self.adopted).remove(&local);
        lock(&self.away).insert(pid.to_string(), to.to_string());
    }

    /// Records that local process `local` ends without an exit of its own
    /// (a runtime whose adoption failed).
    pub fn silence(&self, local: u32) {
        lock(&self.silent).insert(local);
    }

    /// Records that `pid`, which moved from here, runs on `at` now.
    pub fn located(&self, pid: &Pid, at: &str) {
        if !matches!(self.whereabouts(pid), Whereabouts::Here(_)) {
            lock(&self.away).insert(pid.to_string(), at.to_string());
        }
    }

    /// A process record as the fabric lists it.
    pub fn process(&self, r: &ProcessRecord) -> Process {
        Process {
            pid: self.fabric_pid(r.pid).to_string(),
            device: self.name.clone(),
            name: String::from_utf8_lossy(r.name()).into_owned(),
            state: state_name(r.state).to_string(),
            cpu_ns: r.cpu_ns,
            memory: r.memory,
            streams: r.streams,
            status: (r.state == state::ENDED).then_some(r.status),
            engine: self.handle.tier_of(r.pid).and_then(Tier::engine),
        }
    }

    /// Records that local process `local` ended with `status`; the fabric
    /// pid whose exit that is, or `None` when its end is no exit (its app
    /// moved on).
    pub fn ended(&self, local: u32, status: u32) -> Option<Pid> {
        if lock(&self.silent).remove(&local) {
            return None;
        }
        let pid = self.fabric_pid(local);
        lock(&self.adopted).remove(&local);
        let mut names = lock(&self.names);
        if let Some(name) = names.remove(&Pid::text(&self.name, local)) {
            names.insert(pid.to_string(), name);
        }
        lock(&self.exits).insert(pid.to_string(), status);
        Some(pid)
    }

    /// The status process `pid` (its fabric pid) ended with, if it ended
    /// here lately.
    pub fn exit_of(&self, pid: &Pid) -> Option<u32> {
        lock(&self.exits).get(&pid.to_string())
    }

    /// The apps running in the guest (the agent, and runtimes whose app
    /// moved on, left out).
    pub async fn processes(&self) -> Result<Vec<Process>, String> {
        let records = self.handle.list().await.map_err(|e| e.to_string())?;
        let silent = lock(&self.silent).clone();
        Ok(records
            .iter()
            .filter(|r| r.pid != AGENT_PID && !silent.contains(&r.pid))
            .map(|r| self.process(r))
            .collect())
    }

    /// The device's figures.
    pub async fn figures(&self) -> Figures {
        let apps = self.processes().await.unwrap_or_default();
        Figures {
            processes: apps.iter().filter(|p| p.state != "ended").count() as u32,
            memory: apps.iter().map(|p| p.memory).sum(),
        }
    }

    /// One process, running here (under local pid `local`, if it runs)
    /// or lately ended here.
    pub async fn stats(&self, pid: &Pid, local: Option<u32>) -> Result<Process, String> {
        let running = match local {
            Some(local) if local != AGENT_PID => self.handle.stats(local).await.ok(),
            _ => None,
        };
        if running.is_none() && local.is_some() {
            // It ran here a moment ago: its end is being recorded.
            let deadline = tokio::time::Instant::now() + END_RECORDED;
            while self.exit_of(pid).is_none() && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(END_POLL).await;
            }
        }
        match running {
            Some(r) => Ok(self.process(&r)),
            None => match self.exit_of(pid) {
                Some(status) => Ok(Process {
                    pid: pid.to_string(),
                    device: self.name.clone(),
                    name: lock(&self.names).get(&pid.to_string()).unwrap_or_default(),
                    state: "ended".into(),
                    cpu_ns: 0,
                    memory: 0,
                    streams: 0,
                    status: Some(status),
                    engine: None,
                }),
                None => Err(format!("no process {pid} on {}", self.name)),
            },
        }
    }

    /// Ends local process `local`.
    pub async fn kill(&self, local: u32) -> Result<(), String> {
        let pid = self.fabric_pid(local);
        if local == AGENT_PID {
            return Err(format!("process {pid} is the device's agent"));
        }
        self.handle
            .kill(local)
            .await
            .map_err(|e| format!("kill {pid}: {e}"))
    }

    /// A cached module.
    pub fn module(&self, hash: &str) -> Option<Arc<Vec<u8>>> {
        self.modules.lock().ok()?.get(hash)
    }

    /// Caches a module under its hash.
    pub fn cache(&self, hash: String, module: Arc<Vec<u8>>) {
        if let Ok(mut m) = self.modules.lock() {
            m.insert(hash, module);
        }
    }

    /// Starts a program already resolved to an image.
    pub async fn spawn(&self, image: SpawnImage, args: Vec<String>) -> Result<u32, String> {
        let image = self.precompile(image).await?;
        let name = args.first().cloned().unwrap_or_default();
        let args = args.into_iter().map(String::into_bytes).collect();
        let pid = self
            .handle
            .spawn(image, args)
            .await
            .map_err(|e| format!("spawn on {}: {e}", self.name))?;
        lock(&self.names).insert(Pid::text(&self.name, pid), name);
        Ok(pid)
    }

    /// Compiles a Wasm module that runs compiled here (PROTOCOL.md §13.8)
    /// on a thread of its own, before it is handed to the guest: the
    /// spawn's hypercall then finds it compiled (`aot::RECENT`) and the
    /// guest's vCPU never waits for Cranelift; a module the compiler
    /// refuses is refused here, saying why.
    async fn precompile(&self, image: SpawnImage) -> Result<SpawnImage, String> {
        let (bytes, tier) = match image {
            SpawnImage::Wasm(bytes, tier) if tier != Tier::Interp => (bytes, tier),
            SpawnImage::Bytes(bytes) if bytes.starts_with(b"\0asm") => (bytes, Tier::Default),
            other => return Ok(other),
        };
        let catalog = self.catalog;
        let (bytes, refused) = tokio::task::spawn_blocking(move || {
            let refused = match catalog.compile(&bytes, tier) {
                Some(Err(e)) => Some(e.to_string()),
                _ => None,
            };
            (bytes, refused)
        })
        .await
        .map_err(|e| format!("compiling the module: {e}"))?;
        match refused {
            Some(why) => Err(format!("the module cannot run compiled: {why}")),
            None => Ok(SpawnImage::Wasm(bytes, tier)),
        }
    }
}

/// Checks a spawn's image before anything is fetched: a program name must
/// be a bare name, a module must be of an allowed size with a well-formed
/// hash.
pub fn check_image(image: &Image) -> Result<(), String> {
    match image {
        Image::Program { name } => {
            if name.is_empty() || name.contains('/') || name.len() > 64 {
                return Err(format!(
                    "native programs run only from the target device's own programs; {name:?} is not one's name"
                ));
            }
        }
        Image::Wasm { sha256, size, from } => {
            if sha256.len() != 64
                || !sha256
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
            {
                return Err(format!(
                    "module hash {sha256:?} is not 64 lowercase hex digits"
                ));
            }
            if *size == 0 || *size > MAX_MODULE {
                return Err(format!("module of {size} bytes: the limit is {MAX_MODULE}"));
            }
            if !weft_fabric::keys::valid_name(from) {
                return Err(format!(
                    "module offered by {from:?}, which is not a device name"
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_are_checked_before_any_fetch() {
        let wasm = |sha256: &str, size, from: &str| Image::Wasm {
            sha256: sha256.into(),
            size,
            from: from.into(),
        };
        let good = "0f".repeat(32);
        assert!(check_image(&wasm(&good, 100, "alpha")).is_ok());
        assert!(check_image(&wasm(&good.to_uppercase(), 100, "alpha")).is_err());
        assert!(check_image(&wasm("00", 100, "alpha")).is_err());
        assert!(check_image(&wasm(&good, MAX_MODULE + 1, "alpha")).is_err());
        assert!(check_image(&wasm(&good, 100, "a/b")).is_err());
        assert!(
            check_image(&Image::Program {
                name: "hello".into()
            })
            .is_ok()
        );
        assert!(
            check_image(&Image::Program {
                name: "/bin/sh".into()
            })
            .is_err()
        );
    }

    #[test]
    fn sha256_is_lowercase_hex() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
