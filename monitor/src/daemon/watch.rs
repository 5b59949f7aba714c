//! The fabric's events for the guest's watching FABRIC streams
//! (PROTOCOL.md §17.4): devices that become available or unavailable, and
//! processes that start or end anywhere in the fabric.
//!
//! Two tasks follow what the daemon's node already knows — its presence
//! watch (the available devices this device knows) and every device's
//! start and exit puts (§16.2) — and publish each change once, to every
//! watcher, on one broadcast channel. A watcher subscribes with
//! [`Events::subscribe`] and gets the devices available at that moment
//! with the subscription, taken under the same lock as each publication,
//! so that no change falls between the two or is told twice.
//!
//! Invariants: the tasks follow the node that is current (they start over
//! on the new one when it is reopened) and stop when this device is
//! removed; publishing never waits for a watcher (a slow one lags, and its
//! stream counts what it lost).

use super::fabric::Daemon;
use crate::streams::{FabricEvent, FabricWatch};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::broadcast;
use weft_fabric::node::Lifecycle;

/// Events the broadcast channel holds for a watcher that lags.
const BACKLOG: usize = 1024;
/// How soon a subscription the node refused is tried again.
const RETRY: Duration = Duration::from_secs(1);

/// The devices available as last published, and the channel.
struct State {
    available: BTreeSet<String>,
    publish: broadcast::Sender<FabricEvent>,
}

/// The fabric's events, for every watcher.
pub struct Events {
    state: Mutex<State>,
}

impl Events {
    /// Starts following `daemon`'s node.
    pub fn start(daemon: Arc<Daemon>) -> Arc<Events> {
        let events = Arc::new(Events {
            state: Mutex::new(State {
                available: BTreeSet::new(),
                publish: broadcast::channel(BACKLOG).0,
            }),
        });
        tokio::spawn(events.clone().follow_devices(daemon.clone()));
        tokio::spawn(events.clone().follow_processes(daemon));
        events
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Each publication leaves the state whole: a poisoned lock is
        // still usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new watcher's subscription: the devices available now and every
    /// event from now on.
    pub fn subscribe(&self) -> FabricWatch {
        let state = self.state();
        FabricWatch {
            available: state.available.iter().cloned().collect(),
            events: state.publish.subscribe(),
        }
    }

    /// Publishes the difference between the devices last published and
    /// `now`.
    fn devices_now(&self, now: BTreeSet<String>) {
        let mut state = self.state();
        for gone in state.available.difference(&now) {
            let _ = state.publish.send(FabricEvent::DeviceDown(gone.clone()));
        }
        for came in now.difference(&state.available) {
            let _ = state.publish.send(FabricEvent::DeviceUp(came.clone()));
        }
        state.available = now;
    }

    async fn follow_devices(self: Arc<Self>, daemon: Arc<Daemon>) {
        while !daemon.is_removed() {
            let mut available = daemon.node().await.available();
            loop {
                available.borrow_and_update();
                let now = daemon.available_members().await.into_iter().collect();
                self.devices_now(now);
                // A reopened node has a new presence watch.
                if available.changed().await.is_err() {
                    break;
                }
            }
            // A closed node's watch ends at once: wait for its successor.
            tokio::time::sleep(RETRY).await;
        }
    }

    async fn follow_processes(self: Arc<Self>, daemon: Arc<Daemon>) {
        while !daemon.is_removed() {
            let node = daemon.node().await;
            if let Ok(mut lifecycle) = node.lifecycle().await {
                // Until the node's session closes (reopened or stopped).
                while let Some(event) = lifecycle.recv().await {
                    let event = match event {
                        Lifecycle::Started { pid } => FabricEvent::Started(pid),
                        Lifecycle::Ended { pid, status } => FabricEvent::Ended { pid, status },
                    };
                    let _ = self.state().publish.send(event);
                }
            }
            tokio::time::sleep(RETRY).await;
        }
    }
}
