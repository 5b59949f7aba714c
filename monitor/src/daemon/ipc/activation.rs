//! Activation (PROTOCOL.md §18.7): a message to a service with no instance
//! anywhere starts one on a device whose registry declares it
//! (`"activate": true`), and is delivered once it runs.
//!
//! The first such message parks its service: it and every later one wait,
//! in order, while one task asks a declaring device (this one first, else
//! the first by name) to start a provider; then they are routed again, to
//! that device. A device starts at most one provider of a service at a
//! time: everyone who asks while one starts waits for the same outcome, so
//! twenty first messages start one provider, not twenty.
//!
//! Invariants: every parked message is routed again or answered (with why
//! the start failed); at most [`INBOX`] wait per service (more are `Busy`);
//! an activation waits at most [`START_LIMIT`] for the provider to serve.

use super::{Hub, Routed, Started, locked};
use crate::catalog::sha256_hex;
use crate::streams::{INBOX, SpawnImage};
use std::collections::VecDeque;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use weft_control::ipc_proto::{Guid, IpcError};
use weft_fabric::wire::Request;

/// How long a started provider has to provide its service.
pub const START_LIMIT: Duration = Duration::from_secs(10);

impl Hub {
    /// Holds `m` until a provider of its service is started, starting one
    /// if no one is yet.
    pub(super) fn park(self: &Arc<Self>, m: Routed) {
        let guid = m.guid;
        {
            let mut parked = locked(&self.parked);
            if let Some(queue) = parked.get_mut(&guid) {
                if queue.len() >= INBOX {
                    let why = format!("{INBOX} messages wait for service {guid} to start");
                    m.answer.answer(Err((IpcError::Busy, why)));
                } else {
                    queue.push_back(m);
                }
                return;
            }
            parked.insert(guid, VecDeque::from([m]));
        }
        let hub = self.clone();
        tokio::spawn(async move {
            let started = hub.start_somewhere(guid).await;
            loop {
                let next = {
                    let mut parked = locked(&hub.parked);
                    match parked.get_mut(&guid).and_then(VecDeque::pop_front) {
                        Some(m) => m,
                        None => {
                            parked.remove(&guid);
                            break;
                        }
                    }
                };
                match &started {
                    Ok(device) => hub.route(next, Some(device)).await,
                    Err(why) => {
                        next.answer.answer(Err(why.clone()));
                    }
                }
            }
        });
    }

    /// Has a provider of `guid` started on a device that declares it
    /// (this one first); the device's name.
    async fn start_somewhere(&self, guid: Guid) -> Result<String, (IpcError, String)> {
        let daemon = self
            .daemon()
            .ok_or((IpcError::Unreachable, "the device is stopping".to_string()))?;
        let mut devices = daemon.node().await.activators(&guid);
        devices.retain(|d| *d != self.device);
        if self.activatable().contains(&guid) {
            devices.insert(0, self.device.clone());
        }
        let mut why = (
            IpcError::NoProvider,
            format!("no instance of service {guid} runs in the fabric, and no device starts one"),
        );
        for device in devices {
            let outcome = if device == self.device {
                self.activate(guid).await
            } else {
                let ask = Request::Activate {
                    guid: guid.to_string(),
                };
                daemon
                    .call(&device, ask)
                    .await
                    .map(drop)
                    .map_err(|e| (IpcError::NoProvider, e))
            };
            match outcome {
                Ok(()) => return Ok(device),
                Err((error, message)) => {
                    why = (
                        error,
                        format!("starting service {guid} on {device}: {message}"),
                    );
                }
            }
        }
        Err(why)
    }

    /// Starts a provider of `guid` here unless one runs, and returns once
    /// one serves (§18.7): one start at a time per service.
    pub async fn activate(&self, guid: Guid) -> Result<(), (IpcError, String)> {
        if locked(&self.instances).contains_key(&guid) {
            return Ok(());
        }
        let (lead, mut outcome) = {
            let mut starting = locked(&self.starting);
            match starting.get(&guid) {
                Some(rx) => (None, rx.clone()),
                None => {
                    let (tx, rx) = watch::channel(None);
                    starting.insert(guid, rx.clone());
                    (Some(tx), rx)
                }
            }
        };
        if let Some(tx) = lead {
            let result = self.start_here(guid).await;
            locked(&self.starting).remove(&guid);
            tx.send_replace(Some(result));
        }
        let done: Started = outcome
            .wait_for(Option::is_some)
            .await
            .ok()
            .and_then(|r| r.clone());
        done.unwrap_or_else(|| Err((IpcError::NoProvider, "the start was abandoned".into())))
    }

    /// Spawns the provider the registry names for `guid` and waits until
    /// it serves, ends, or [`START_LIMIT`] passes.
    async fn start_here(&self, guid: Guid) -> Result<(), (IpcError, String)> {
        let refused = |why: String| (IpcError::NoProvider, why);
        let daemon = self
            .daemon()
            .ok_or_else(|| refused("the device is stopping".into()))?;
        let registry = self.registry.current();
        let entry = registry
            .entries(&guid)
            .find(|n| n.activate)
            .cloned()
            .ok_or_else(|| refused(format!("this device does not start service {guid}")))?;
        let (image, program) = if let Some(name) = entry.provider.strip_prefix("program:") {
            (SpawnImage::Bundled(name.to_string()), name.to_string())
        } else {
            let hash = entry.provider.trim_start_matches("sha256:");
            let path = self
                .registry
                .module(entry.path.as_deref().unwrap_or(Path::new("")));
            let bytes = tokio::fs::read(&path)
                .await
                .map_err(|e| refused(format!("{}: {e}", path.display())))?;
            if sha256_hex(&bytes) != hash {
                return Err(refused(format!(
                    "{} is not the module the registry names ({})",
                    path.display(),
                    entry.provider
                )));
            }
            let name = path
                .file_name()
                .map_or_else(|| entry.name.clone(), |n| n.to_string_lossy().into_owned());
            (SpawnImage::Bytes(bytes), name)
        };
        let mut args = vec![program];
        args.extend(entry.args.iter().cloned());
        let served = self.served.notified();
        tokio::pin!(served);
        let pid = daemon.device.spawn(image, args).await.map_err(refused)?;
        let _ = daemon.node().await.publish_start(pid).await;
        let deadline = tokio::time::Instant::now() + START_LIMIT;
        loop {
            served.as_mut().enable();
            if locked(&self.instances).contains_key(&guid) {
                return Ok(());
            }
            let born = weft_fabric::wire::Pid {
                device: self.device.clone(),
                n: pid,
            };
            if let Some(status) = daemon.device.exit_of(&born) {
                return Err(refused(format!(
                    "its provider {} ended with status {status} before it served",
                    weft_fabric::wire::Pid::text(&self.device, pid)
                )));
            }
            // Woken by a new instance, or every so often to see an end.
            let wake = tokio::time::Instant::now() + Duration::from_millis(100);
            if tokio::time::timeout_at(wake.min(deadline), served.as_mut())
                .await
                .is_ok()
            {
                served.set(self.served.notified());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(refused(format!(
                    "its provider did not serve within {START_LIMIT:?}"
                )));
            }
        }
    }
}
