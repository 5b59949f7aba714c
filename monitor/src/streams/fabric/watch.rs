//! A FABRIC stream's watch (PROTOCOL.md §17.4): the daemon's events,
//! queued per stream and written to the guest as `EVENT` frames.
//!
//! The daemon hands a watching stream a [`FabricWatch`]: the devices
//! available at that moment (sent first, as `DEVICE_UP` events) and a
//! subscription to everything that happens from then on. The stream's
//! watch task moves events from the subscription into the stream's own
//! [`Queue`] at once, and from the queue to the stream's writer as the
//! guest makes room.
//!
//! Invariants: a stream holds at most [`MAX_QUEUED`] undelivered entries
//! (events and `LOST` markers) plus one `LOST` marker, whatever the guest
//! does; an event is dropped only when that many wait (or the daemon's
//! subscription itself lagged),
//! and every run of drops becomes one `LOST` event with their number, in
//! the place of the events it stands for; events are delivered in the
//! order the daemon published them.

use std::collections::VecDeque;
use tokio::sync::{broadcast, mpsc};
use weft_control::fabric_proto::Event;

/// Undelivered events one stream holds at most.
pub const MAX_QUEUED: usize = 256;

/// An event of the fabric, as the daemon publishes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FabricEvent {
    /// The device of this name became available.
    DeviceUp(String),
    /// The device of this name became unavailable.
    DeviceDown(String),
    /// The process of this pid (`NAME:N`) started.
    Started(String),
    /// Process `pid` ended with `status`.
    Ended { pid: String, status: u32 },
}

/// What the daemon grants a watching stream.
#[derive(Debug)]
pub struct FabricWatch {
    /// The devices available when the subscription began.
    pub available: Vec<String>,
    /// Every event published since.
    pub events: broadcast::Receiver<FabricEvent>,
}

/// One entry of a [`Queue`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Queued {
    Event(FabricEvent),
    /// This many events were dropped here.
    Lost(u32),
}

/// A stream's undelivered events: at most [`MAX_QUEUED`] entries, then
/// one `Lost` entry that counts what did not fit.
#[derive(Debug, Default)]
pub struct Queue {
    entries: VecDeque<Queued>,
}

impl Queue {
    /// Queues `event`, or counts it as lost if the queue is full.
    pub fn push(&mut self, event: FabricEvent) {
        if self.entries.len() < MAX_QUEUED {
            self.entries.push_back(Queued::Event(event));
        } else {
            self.lost(1);
        }
    }

    /// Counts `n` events as lost after those queued.
    pub fn lost(&mut self, n: u64) {
        let n = u32::try_from(n).unwrap_or(u32::MAX);
        match self.entries.back_mut() {
            Some(Queued::Lost(count)) => *count = count.saturating_add(n),
            _ => self.entries.push_back(Queued::Lost(n)),
        }
    }

    /// The next entry to deliver.
    pub fn pop(&mut self) -> Option<Queued> {
        self.entries.pop_front()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Entries held (events and the `Lost` marker).
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.len()
    }
}

/// The `EVENT` frame of `entry`.
pub fn frame(entry: &Queued) -> Vec<u8> {
    let event = match entry {
        Queued::Event(FabricEvent::DeviceUp(name)) => Event::DeviceUp(name),
        Queued::Event(FabricEvent::DeviceDown(name)) => Event::DeviceDown(name),
        Queued::Event(FabricEvent::Started(pid)) => Event::Started(pid),
        Queued::Event(FabricEvent::Ended { pid, status }) => Event::Ended {
            pid,
            status: *status,
        },
        Queued::Lost(count) => Event::Lost(*count),
    };
    let mut buf = vec![0u8; Event::MAX_FRAME];
    // Names and pids from the daemon are short; one too long for a frame
    // (a bug) is delivered as one lost event.
    let n = event
        .encode(&mut buf)
        .unwrap_or_else(|| Event::Lost(1).encode(&mut buf).unwrap_or_default());
    buf.truncate(n);
    buf
}

/// Delivers `watch`'s events to `out` (the stream's writer), through the
/// stream's queue, until the stream ends or the daemon's publisher is
/// gone.
///
/// # Cancel safety
///
/// Cancelling drops the queued events; nothing else is held.
pub async fn forward(watch: FabricWatch, out: mpsc::Sender<Vec<u8>>) {
    let FabricWatch {
        available,
        mut events,
    } = watch;
    let mut queue = Queue::default();
    for name in available {
        queue.push(FabricEvent::DeviceUp(name));
    }
    let mut open = true;
    while open || !queue.is_empty() {
        tokio::select! {
            biased;
            e = events.recv(), if open => match e {
                Ok(event) => queue.push(event),
                Err(broadcast::error::RecvError::Lagged(n)) => queue.lost(n),
                Err(broadcast::error::RecvError::Closed) => open = false,
            },
            room = out.reserve(), if !queue.is_empty() => {
                let Ok(room) = room else { return };
                if let Some(entry) = queue.pop() {
                    room.send(frame(&entry));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn started(n: usize) -> FabricEvent {
        FabricEvent::Started(format!("a:{n}"))
    }

    #[test]
    fn a_full_queue_counts_what_it_drops_in_one_lost_entry() {
        let mut q = Queue::default();
        for n in 0..MAX_QUEUED + 10 {
            q.push(started(n));
        }
        assert_eq!(q.len(), MAX_QUEUED + 1);
        q.lost(5);
        assert_eq!(q.len(), MAX_QUEUED + 1);
        assert_eq!(q.pop(), Some(Queued::Event(started(0))));
        // The marker holds a place: one more is lost.
        q.push(started(998));
        assert_eq!(q.pop(), Some(Queued::Event(started(1))));
        // Room again: a new event goes after the marker.
        q.push(started(999));
        for n in 2..MAX_QUEUED {
            assert_eq!(q.pop(), Some(Queued::Event(started(n))));
        }
        assert_eq!(q.pop(), Some(Queued::Lost(16)));
        assert_eq!(q.pop(), Some(Queued::Event(started(999))));
        assert_eq!(q.pop(), None);
        q.lost(u64::MAX);
        assert_eq!(q.pop(), Some(Queued::Lost(u32::MAX)));
    }

    #[test]
    fn frames_decode_to_their_events() {
        let entries = [
            Queued::Event(FabricEvent::DeviceDown("c".into())),
            Queued::Event(FabricEvent::Ended {
                pid: "b:3".into(),
                status: 3,
            }),
            Queued::Lost(7),
        ];
        let events = [
            Event::DeviceDown("c"),
            Event::Ended {
                pid: "b:3",
                status: 3,
            },
            Event::Lost(7),
        ];
        for (entry, event) in entries.iter().zip(events) {
            let f = frame(entry);
            let (h, body) = weft_control::frame::split(&f).unwrap();
            assert_eq!(h.kind, weft_control::fabric_proto::kind::EVENT);
            assert_eq!(Event::decode(body), Ok(event));
        }
    }

    #[tokio::test]
    async fn a_slow_reader_gets_the_first_events_then_one_lost() {
        let (publish, events) = broadcast::channel(4096);
        let (out, mut frames) = mpsc::channel(1);
        for n in 0..1000 {
            publish.send(started(n)).unwrap();
        }
        drop(publish);
        let watch = FabricWatch {
            available: vec!["a".into()],
            events,
        };
        // Nothing is read until the task has taken every event.
        let task = tokio::spawn(forward(watch, out));
        tokio::task::yield_now().await;
        let mut got = Vec::new();
        while let Some(f) = frames.recv().await {
            let (_, body) = weft_control::frame::split(&f).unwrap();
            got.push(format!("{:?}", Event::decode(body).unwrap()));
        }
        task.await.unwrap();
        let seen = got.iter().filter(|g| g.starts_with("Started")).count();
        let lost: u32 = got
            .iter()
            .filter_map(|g| {
                g.strip_prefix("Lost(")?
                    .strip_suffix(')')?
                    .parse::<u32>()
                    .ok()
            })
            .sum();
        assert_eq!(got[0], r#"DeviceUp("a")"#);
        assert_eq!(seen as u32 + lost, 1000, "{got:?}");
        assert!(lost > 0, "{got:?}");
    }
}
