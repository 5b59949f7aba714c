//! Services that follow their app when it moves (PROTOCOL.md §19.5).
//!
//! Before the app is captured, each of its instances' delivery is paused
//! ([`Hub::pause`]): the stream writes `PAUSED`, and what comes after stays
//! in the instance's queue, which the runtime waits for before it captures
//! (nothing unread, nothing unanswered). If the move fails, delivery goes
//! on ([`Hub::resume`]). If it succeeds, the app's restored runtime has
//! declared each service again at the destination, and [`Hub::moved`]
//! takes each queue over: a forwarder sends what it holds, and what still
//! comes here, to the instance there, in the order it was queued, and each
//! answer goes back to its sender. The instance here stays listed (so
//! senders that still pick this device are forwarded in the same order)
//! until this device sees the destination's instance, at most
//! [`LISTED_LIMIT`]; after that its service's queryable lingers and a
//! [`Forward`] sends the stragglers on, for [`FORWARD_KEEP`].
//!
//! Invariants: a message queued here for a moved app is forwarded exactly
//! once, and its sender gets exactly one answer (the destination's, or
//! why there is none); the forwards kept are bounded by the services of
//! this device's hub and expire.

use super::{Hub, QUERY_GRACE, locked};
use crate::streams::{Answerer, Delivery, Hold, Inbox};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use weft_control::ipc_proto::{Guid, IpcError};
use weft_fabric::ipc::Message;

/// How long a delivery may take to pause or hand its queue over.
const HOLD_LIMIT: Duration = Duration::from_secs(2);
/// How long a moved instance stays listed here at most, waiting to see
/// the destination's.
const LISTED_LIMIT: Duration = Duration::from_secs(10);
/// How often the forwarder looks for the destination's instance.
const LISTED_POLL: Duration = Duration::from_millis(20);
/// How long messages that still come here for a moved instance are sent
/// on.
const FORWARD_KEEP: Duration = Duration::from_secs(30);

/// Where the instance of a service that moved away went.
#[derive(Clone, Debug)]
pub(super) struct Forward {
    /// The process it was here.
    was: u32,
    /// The device it went to.
    to: String,
    /// The process it is there.
    there: u32,
    until: Instant,
}

impl Hub {
    /// The delivery holds of local process `pid`'s instances, by service.
    fn holds_of(&self, pid: u32) -> Vec<(Guid, tokio::sync::mpsc::Sender<Hold>)> {
        locked(&self.instances)
            .iter()
            .flat_map(|(g, list)| {
                list.iter()
                    .filter(|i| i.pid == pid)
                    .map(|i| (*g, i.holds.clone()))
            })
            .collect()
    }

    /// Pauses the delivery of local process `pid`'s services (it is about
    /// to be captured); returns once each stream has its `PAUSED` queued.
    pub async fn pause(&self, pid: u32) {
        for (_, holds) in self.holds_of(pid) {
            let (queued, paused) = oneshot::channel();
            if holds.send(Hold::Pause(queued)).await.is_ok() {
                let _ = tokio::time::timeout(HOLD_LIMIT, paused).await;
            }
        }
    }

    /// Delivers again to local process `pid`'s services (its move failed).
    pub async fn resume(&self, pid: u32) {
        for (_, holds) in self.holds_of(pid) {
            let _ = holds.send(Hold::Resume).await;
        }
    }

    /// Local process `pid` moved to `to`, where it runs as process
    /// `there`: its services' queues are forwarded there.
    pub async fn moved(self: &Arc<Self>, pid: u32, to: &str, there: u32) {
        for (guid, holds) in self.holds_of(pid) {
            let (way, inbox) = oneshot::channel();
            if holds.send(Hold::Surrender(way)).await.is_err() {
                continue;
            }
            let Ok(Ok(inbox)) = tokio::time::timeout(HOLD_LIMIT, inbox).await else {
                continue;
            };
            let forward = Forward {
                was: pid,
                to: to.to_string(),
                there,
                until: Instant::now() + FORWARD_KEEP,
            };
            {
                let now = Instant::now();
                let mut forwards = locked(&self.forwards);
                forwards.retain(|_, f| f.until > now);
                forwards.insert(guid, forward.clone());
            }
            let hub = self.clone();
            tokio::spawn(async move { hub.forward_queue(guid, forward, inbox).await });
        }
    }

    /// Where a message to `guid` (for process `target`, if named) that
    /// finds no instance here goes: the instance that moved away, if one
    /// did lately.
    pub(super) fn forward_of(&self, guid: Guid, target: Option<u32>) -> Option<Forward> {
        let forwards = locked(&self.forwards);
        let f = forwards.get(&guid)?;
        (f.until > Instant::now() && target.is_none_or(|t| t == f.was)).then(|| f.clone())
    }

    /// Forwards what a moved instance's queue holds and receives, in
    /// order; keeps the instance listed until the destination's is seen.
    async fn forward_queue(self: Arc<Self>, guid: Guid, forward: Forward, inbox: Inbox) {
        let Inbox {
            mut messages,
            registration,
            ..
        } = inbox;
        let mut registration = Some(registration);
        let mut sent = 0u64;
        let listed_until = tokio::time::Instant::now() + LISTED_LIMIT;
        loop {
            if registration.is_some() {
                let Some(daemon) = self.daemon() else { return };
                let node = daemon.node().await;
                let seen = node
                    .providers(&guid)
                    .contains(&(forward.to.clone(), forward.there));
                if seen || tokio::time::Instant::now() >= listed_until {
                    // Withdraws it, but not the service's queryable: a
                    // sender that still picked this device reaches the
                    // forward. Its queue closes once drained.
                    node.linger(guid, true);
                    registration = None;
                }
            }
            let next = if registration.is_some() {
                match tokio::time::timeout(LISTED_POLL, messages.recv()).await {
                    Ok(next) => next,
                    Err(_) => continue,
                }
            } else {
                messages.recv().await
            };
            match next {
                Some(d) => {
                    self.forward_one(guid, &forward, d).await;
                    sent += 1;
                }
                None => break,
            }
        }
        if sent > 0 {
            super::super::say(&format!(
                "{sent} messages for service {guid} sent on to {}:{}, where its instance moved",
                forward.to, forward.there
            ));
        }
        // The queryable goes with the forward (unless a newer one came).
        tokio::time::sleep_until(forward.until.into()).await;
        let newer = locked(&self.forwards)
            .get(&guid)
            .is_some_and(|f| f.until > forward.until);
        if !newer && let Some(daemon) = self.daemon() {
            daemon.node().await.linger(guid, false);
        }
    }

    /// Sends `d` on to the instance `forward` names; its answer goes to
    /// its sender.
    pub(super) async fn forward_one(&self, guid: Guid, forward: &Forward, d: Delivery) {
        let unreachable = |why: String| Err((IpcError::Unreachable, why));
        let Some(daemon) = self.daemon() else {
            if let Some(way) = d.answer {
                way.answer(unreachable("the device is stopping".into()));
            }
            return;
        };
        let message = Message {
            request: d.request,
            target: forward.there,
            timeout_ms: u32::try_from(d.timeout.as_millis()).unwrap_or(u32::MAX),
            sender: d.sender,
            data: d.data,
        };
        let node = daemon.node().await;
        let limit = d.timeout + QUERY_GRACE;
        // A message whose sender was answered already (a one-way message
        // acknowledged once queued here) still has its answer taken.
        let way = d.answer;
        let to = way
            .as_ref()
            .map_or_else(|| Answerer::new(drop), |w| w.answerer().clone());
        match node
            .send_message(&forward.to, guid, message, limit, true, &to)
            .await
        {
            Ok(answer) => {
                tokio::spawn(async move {
                    let answer = answer.await;
                    if let Some(way) = way {
                        way.answer(answer);
                    }
                });
            }
            Err(e) => {
                if let Some(way) = way {
                    way.answer(unreachable(e.to_string()));
                }
            }
        }
    }
}
