//! Delivery in the order sent: messages of one sending session to one
//! service carry consecutive numbers (their lane's), and an arrival ahead
//! of a gap waits until the gap is filled (a message sent again because
//! its query reached no one) or [`GAP_WAIT`] passes.
//!
//! Invariants: an arrival is handed back exactly once, and those of one
//! lane in increasing number except for one that comes after its gap was
//! given up on (handed back at once: late, never lost); at most
//! [`MAX_HELD`] arrivals wait in a lane and [`MAX_LANES`] lanes are kept
//! (lanes with nothing held are forgotten first; a forgotten lane starts
//! again at whatever number comes next, after at most [`GAP_WAIT`]).

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

/// How long arrivals wait behind a gap.
pub const GAP_WAIT: Duration = Duration::from_secs(2);
/// Arrivals held in one lane at most.
pub const MAX_HELD: usize = 1024;
/// Lanes kept at most.
pub const MAX_LANES: usize = 1024;

struct Lane<T> {
    /// The number expected next; `None` before the lane's first delivery
    /// (a lane is first seen at 0, or after it was forgotten).
    next: Option<u64>,
    held: BTreeMap<u64, T>,
    /// Since when the oldest of `held` waits.
    since: Option<Instant>,
}

/// The lanes of one service on one device, by the sending session's
/// origin.
pub struct Order<T> {
    lanes: HashMap<u64, Lane<T>>,
}

impl<T> Default for Order<T> {
    fn default() -> Self {
        Order {
            lanes: HashMap::new(),
        }
    }
}

impl<T> Order<T> {
    /// Takes number `seq` of lane `origin`; returns what may be delivered
    /// now, in order.
    pub fn arrive(&mut self, origin: u64, seq: u64, item: T, now: Instant) -> Vec<T> {
        if self.lanes.len() >= MAX_LANES && !self.lanes.contains_key(&origin) {
            self.lanes.retain(|_, l| !l.held.is_empty());
        }
        let lane = self.lanes.entry(origin).or_insert_with(|| Lane {
            next: None,
            held: BTreeMap::new(),
            since: None,
        });
        let expected = lane.next.or((seq == 0).then_some(0));
        match expected {
            Some(n) if seq < n => vec![item],
            Some(n) if seq == n => {
                let mut out = vec![item];
                let mut next = n + 1;
                while let Some(more) = lane.held.remove(&next) {
                    out.push(more);
                    next += 1;
                }
                lane.next = Some(next);
                if lane.held.is_empty() {
                    lane.since = None;
                }
                out
            }
            _ => {
                lane.held.insert(seq, item);
                lane.since.get_or_insert(now);
                if lane.held.len() > MAX_HELD {
                    return release(lane);
                }
                Vec::new()
            }
        }
    }

    /// When the oldest gap is given up on, if any waits.
    pub fn deadline(&self) -> Option<Instant> {
        self.lanes
            .values()
            .filter_map(|l| l.since)
            .min()
            .map(|s| s + GAP_WAIT)
    }

    /// Gives up the gaps that waited [`GAP_WAIT`]: their lanes' held
    /// arrivals, in order.
    pub fn expire(&mut self, now: Instant) -> Vec<T> {
        let mut out = Vec::new();
        for lane in self.lanes.values_mut() {
            if lane
                .since
                .is_some_and(|s| now.duration_since(s) >= GAP_WAIT)
            {
                out.extend(release(lane));
            }
        }
        out
    }
}

/// Hands back everything `lane` holds, in order, and expects what follows
/// it.
fn release<T>(lane: &mut Lane<T>) -> Vec<T> {
    let held = std::mem::take(&mut lane.held);
    if let Some(last) = held.keys().next_back() {
        lane.next = Some(last + 1);
    }
    lane.since = None;
    held.into_values().collect()
}
