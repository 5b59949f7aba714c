//! Waiting for a process's exit (`weft spawn --wait`, PROTOCOL.md §16.5):
//! one subscriber on every device's exits ([`keys::EXIT_ALL`]), declared
//! when the node opens, hands each exit to whoever waits for that pid.
//!
//! A subscriber per waited process would declare a key expression of its
//! own (`weft/dev/<name>/exit/<n>`, a new one for every process) to the
//! session and to every peer's routing tables, and Zenoh keeps such
//! resources after the subscriber is gone: measured, ~1 KiB more in the
//! waiting daemon and in each other one for every `spawn --wait`, without
//! bound.
//!
//! Invariant: an entry exists only while its [`ExitWait`] does (dropping
//! it, whatever ended the wait, removes the entry), so the map holds no
//! more than the waits in progress.

use super::{FabricError, Lifecycle, Node, lifecycle_of, zerr};
use crate::keys;
use crate::wire;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::oneshot;
use zenoh::Session;
use zenoh::pubsub::Subscriber;

/// The waits for one pid: each one's number and where its status goes.
type Waiting = Vec<(u64, oneshot::Sender<u32>)>;

/// The waits in progress, by pid (`NAME:N`).
#[derive(Default)]
pub(super) struct ExitWaits {
    waits: Mutex<HashMap<String, Waiting>>,
    next: AtomicU64,
}

impl ExitWaits {
    fn locked(&self) -> MutexGuard<'_, HashMap<String, Waiting>> {
        // Every change is a single insert or removal: a poisoned lock
        // still holds a consistent map.
        self.waits.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Hands process `pid`'s exit `status` to everyone waiting for it.
    fn ended(&self, pid: &str, status: u32) {
        let waiting = self.locked().remove(pid).unwrap_or_default();
        for (_, tx) in waiting {
            let _ = tx.send(status);
        }
    }

    /// Waits for process `pid`'s exit from now on.
    fn wait(self: &Arc<Self>, pid: String) -> ExitWait {
        let (tx, rx) = oneshot::channel();
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.locked().entry(pid.clone()).or_default().push((id, tx));
        ExitWait {
            waits: self.clone(),
            pid,
            id,
            rx,
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.locked().values().map(Vec::len).sum()
    }
}

/// One wait for an exit; dropping it withdraws it.
struct ExitWait {
    waits: Arc<ExitWaits>,
    pid: String,
    id: u64,
    rx: oneshot::Receiver<u32>,
}

impl Drop for ExitWait {
    fn drop(&mut self) {
        let mut waits = self.waits.locked();
        if let Some(list) = waits.get_mut(&self.pid) {
            list.retain(|(id, _)| *id != self.id);
            if list.is_empty() {
                waits.remove(&self.pid);
            }
        }
    }
}

/// Declares the subscriber that feeds `waits` every device's exits; it
/// lasts as long as the returned value.
pub(super) async fn follow(
    session: &Session,
    waits: Arc<ExitWaits>,
) -> Result<Subscriber<()>, FabricError> {
    session
        .declare_subscriber(keys::EXIT_ALL)
        .callback(move |sample| {
            if let Some(Lifecycle::Ended { pid, status }) = lifecycle_of(&sample, true) {
                waits.ended(&pid, status);
            }
        })
        .await
        .map_err(zerr)
}

impl Node {
    /// Waits for the exit of process `device:pid`, at most `limit`;
    /// `check` runs once the wait is in place (to find an exit that
    /// happened before it) and its `Some` ends the wait at once.
    pub async fn wait_exit<F>(
        &self,
        device: &str,
        pid: u32,
        limit: Duration,
        check: F,
    ) -> Result<Option<u32>, FabricError>
    where
        F: Future<Output = Option<u32>>,
    {
        let mut wait = self.exit_waits.wait(wire::Pid::text(device, pid));
        if let Some(status) = check.await {
            return Ok(Some(status));
        }
        Ok(tokio::time::timeout(limit, &mut wait.rx)
            .await
            .ok()
            .and_then(Result::ok))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_exit_reaches_every_wait_for_its_pid_and_no_other() {
        let waits = Arc::new(ExitWaits::default());
        let (mut a, mut b) = (waits.wait("x:1".into()), waits.wait("x:1".into()));
        let mut other = waits.wait("x:2".into());
        waits.ended("x:1", 7);
        assert_eq!((&mut a.rx).await, Ok(7));
        assert_eq!((&mut b.rx).await, Ok(7));
        assert!(other.rx.try_recv().is_err());
        drop((a, b));
        assert_eq!(waits.len(), 1);
    }

    #[test]
    fn a_wait_that_ends_unanswered_leaves_nothing() {
        let waits = Arc::new(ExitWaits::default());
        for n in 0..100 {
            let w = waits.wait(format!("x:{n}"));
            let again = waits.wait(format!("x:{n}"));
            drop(w);
            assert_eq!(waits.len(), 1);
            drop(again);
        }
        assert_eq!(waits.len(), 0);
        assert!(waits.locked().is_empty());
    }
}
