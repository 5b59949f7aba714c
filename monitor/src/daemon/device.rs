//! The fabric's calls as this device answers them: its processes live in
//! the device guest and are reached through the guest's agent
//! ([`DeviceHandle`]); Wasm modules other devices offer are fetched by
//! content hash and kept in a bounded cache; exits are remembered for a
//! while so that a waiter that asks late still learns the status.

pub use crate::catalog::sha256_hex;
use crate::streams::{DeviceHandle, SpawnImage};
use std::sync::{Arc, Mutex};
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

/// What the daemon keeps of its device guest.
pub struct LocalDevice {
    pub name: String,
    pub handle: DeviceHandle,
    exits: Mutex<Bounded<u32>>,
    /// Names of the processes spawned lately (for their ended records).
    names: Mutex<Bounded<String>>,
    modules: Mutex<Bounded<Arc<Vec<u8>>>>,
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
    pub fn new(name: String, handle: DeviceHandle) -> Self {
        LocalDevice {
            name,
            handle,
            exits: Mutex::new(Bounded::new(RECENT_EXITS, |_| 1)),
            names: Mutex::new(Bounded::new(RECENT_EXITS, |_| 1)),
            modules: Mutex::new(Bounded::new(CACHE_BYTES, |m: &Arc<Vec<u8>>| m.len())),
        }
    }

    /// A process record as the fabric lists it.
    pub fn process(&self, r: &ProcessRecord) -> Process {
        Process {
            pid: Pid::text(&self.name, r.pid),
            device: self.name.clone(),
            name: String::from_utf8_lossy(r.name()).into_owned(),
            state: state_name(r.state).to_string(),
            cpu_ns: r.cpu_ns,
            memory: r.memory,
            streams: r.streams,
            status: (r.state == state::ENDED).then_some(r.status),
        }
    }

    /// Records that `pid` ended with `status`.
    pub fn ended(&self, pid: u32, status: u32) {
        if let Ok(mut e) = self.exits.lock() {
            e.insert(pid.to_string(), status);
        }
    }

    /// The status `pid` ended with, if it ended lately.
    pub fn exit_of(&self, pid: u32) -> Option<u32> {
        self.exits.lock().ok()?.get(&pid.to_string())
    }

    /// The apps running in the guest (the agent left out).
    pub async fn processes(&self) -> Result<Vec<Process>, String> {
        let records = self.handle.list().await.map_err(|e| e.to_string())?;
        Ok(records
            .iter()
            .filter(|r| r.pid != AGENT_PID)
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

    /// One process, running or lately ended.
    pub async fn stats(&self, pid: u32) -> Result<Process, String> {
        if pid == AGENT_PID {
            return Err(format!("no process {}:{pid}", self.name));
        }
        match self.handle.stats(pid).await {
            Ok(r) => Ok(self.process(&r)),
            Err(e) => match self.exit_of(pid) {
                Some(status) => Ok(Process {
                    pid: Pid::text(&self.name, pid),
                    device: self.name.clone(),
                    name: self
                        .names
                        .lock()
                        .ok()
                        .and_then(|n| n.get(&pid.to_string()))
                        .unwrap_or_default(),
                    state: "ended".into(),
                    cpu_ns: 0,
                    memory: 0,
                    streams: 0,
                    status: Some(status),
                }),
                None => Err(format!("no process {}:{pid} ({e})", self.name)),
            },
        }
    }

    /// Ends a process.
    pub async fn kill(&self, pid: u32) -> Result<(), String> {
        if pid == AGENT_PID {
            return Err(format!("process {}:{pid} is the device's agent", self.name));
        }
        self.handle
            .kill(pid)
            .await
            .map_err(|e| format!("kill {}:{pid}: {e}", self.name))
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
        let name = args.first().cloned().unwrap_or_default();
        let args = args.into_iter().map(String::into_bytes).collect();
        let pid = self
            .handle
            .spawn(image, args)
            .await
            .map_err(|e| format!("spawn on {}: {e}", self.name))?;
        if let Ok(mut names) = self.names.lock() {
            names.insert(pid.to_string(), name);
        }
        Ok(pid)
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
