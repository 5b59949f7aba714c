//! Handing an app's snapshot to the device it moves to (PROTOCOL.md §19.4),
//! on `weft/dev/<name>/adopt`: the snapshot goes in **parts** of at most
//! [`PART`] bytes, each one query answered once it is stored, at most
//! [`WINDOW`] in flight; then one **adopt** query names the assembled
//! snapshot and carries the request. The adopt follows the last parts at
//! once: one that comes while some of its transfer's bytes are still on
//! their way (even before its first part) waits for them (at most [`STALE`]). No Zenoh message is ever larger than a
//! part, so a destination that dies mid-move holds up at most a window of
//! its link's queue, never the source's whole session.
//!
//! A **prepare** query may come first, before the app is captured: it
//! names the app as the adopt will (its attachment goes on with the same
//! JSON request), so that the destination starts the app's runtime and
//! readies it while the app still runs; the adopt then only hands it the
//! snapshot.
//!
//! Every query's attachment starts with a 33-byte head ([`Head`]); a part's
//! payload is its bytes, a prepare's or an adopt's attachment goes on with
//! the JSON request. The receiving side keeps one assembly at a time
//! ([`Assembly`]), forgotten when it is taken, replaced by a newer
//! transfer once idle for [`STALE`], and bounded by [`MAX_SNAPSHOT`].
//!
//! Invariants: a part is stored only at its stated offset, inside the
//! stated total, and each byte once (parts may come in any order, but never
//! overlap); an adopt is answered only for a transfer whose every byte
//! arrived; decoding never panics.

use std::time::{Duration, Instant};

/// The most snapshot bytes one part query carries.
pub const PART: usize = 256 << 10;
/// How many part queries one transfer keeps in flight: all of a 1 MiB
/// snapshot's as the runtime writes them (4 held its hand-over back by
/// ~0.8 ms here).
pub const WINDOW: usize = 16;
/// The largest snapshot a move carries (`weft_control::move_proto::MAX_SNAPSHOT`).
pub const MAX_SNAPSHOT: u64 = (1 << 30) + (64 << 20);
/// How long an assembly may go without a part before a newer transfer
/// replaces it.
pub const STALE: Duration = Duration::from_secs(10);
/// The head's version.
pub const VERSION: u8 = 1;

/// What a query on the adopt key carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Bytes of a snapshot, at `offset`.
    Part = 1,
    /// The request that takes the assembled snapshot.
    Adopt = 2,
    /// The request the adopt will make, ahead of the snapshot: start the
    /// app's runtime and have it wait for its snapshot.
    Prepare = 3,
}

/// The head of every adopt query's attachment, 33 bytes, little-endian:
/// `version: u8` (1), `kind: u8` (1 part, 2 adopt, 3 prepare), 7 reserved
/// zero bytes, `transfer: u64` (the sender's random id for this snapshot's
/// transfer), `offset: u64` (a part's first byte; 0 for an adopt or a
/// prepare), `total: u64` (the snapshot's whole length, 1 to
/// [`MAX_SNAPSHOT`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Head {
    pub kind: Kind,
    pub transfer: u64,
    pub offset: u64,
    pub total: u64,
}

impl Head {
    /// Bytes of the encoded head.
    pub const SIZE: usize = 33;

    pub fn encode(&self) -> [u8; Self::SIZE] {
        let mut b = [0u8; Self::SIZE];
        b[0] = VERSION;
        b[1] = self.kind as u8;
        b[9..17].copy_from_slice(&self.transfer.to_le_bytes());
        b[17..25].copy_from_slice(&self.offset.to_le_bytes());
        b[25..33].copy_from_slice(&self.total.to_le_bytes());
        b
    }

    /// Reads a head from the start of `bytes`; the rest after it.
    pub fn decode(bytes: &[u8]) -> Result<(Head, &[u8]), String> {
        if bytes.len() < Self::SIZE {
            return Err(format!("an adopt head of {} bytes", bytes.len()));
        }
        let (b, rest) = bytes.split_at(Self::SIZE);
        if b[0] != VERSION {
            return Err(format!("adopt head version {}", b[0]));
        }
        let kind = match b[1] {
            1 => Kind::Part,
            2 => Kind::Adopt,
            3 => Kind::Prepare,
            k => return Err(format!("adopt query kind {k}")),
        };
        if b[2..9].iter().any(|&r| r != 0) {
            return Err("reserved adopt head bytes are not zero".into());
        }
        let u64_at = |at: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&b[at..at + 8]);
            u64::from_le_bytes(w)
        };
        let head = Head {
            kind,
            transfer: u64_at(9),
            offset: u64_at(17),
            total: u64_at(25),
        };
        if head.total == 0 || head.total > MAX_SNAPSHOT {
            return Err(format!("a snapshot of {} bytes", head.total));
        }
        if head.kind != Kind::Part && head.offset != 0 {
            return Err(format!("an adopt or prepare at offset {}", head.offset));
        }
        Ok((head, rest))
    }
}

/// The snapshot of one transfer being put together.
pub struct Assembly {
    transfer: u64,
    bytes: Vec<u8>,
    /// The parts stored, as (offset, length), to refuse overlaps.
    parts: Vec<(u64, u64)>,
    got: u64,
    touched: Instant,
}

/// Where a receiving device keeps the transfer under way, and the last
/// transfer taken (so that an adopt of it again does not wait for parts
/// that will never come).
#[derive(Default)]
pub struct Assemblies(Option<Assembly>, Option<u64>);

impl Assemblies {
    /// Stores a part of transfer `head.transfer`.
    pub fn part(&mut self, head: &Head, bytes: &[u8]) -> Result<(), String> {
        let len = bytes.len() as u64;
        if bytes.is_empty() || bytes.len() > PART {
            return Err(format!("a part of {len} bytes"));
        }
        let end = head
            .offset
            .checked_add(len)
            .filter(|&e| e <= head.total)
            .ok_or_else(|| format!("a part at {} past the snapshot's end", head.offset))?;
        let current = self.0.as_ref().map(|a| (a.transfer, a.touched));
        match current {
            Some((t, _)) if t == head.transfer => {}
            Some((_, touched)) if touched.elapsed() < STALE => {
                return Err("busy: the device is taking another app".into());
            }
            _ => {
                let mut buf = Vec::new();
                buf.try_reserve_exact(head.total as usize)
                    .map_err(|_| format!("no memory for a snapshot of {} bytes", head.total))?;
                buf.resize(head.total as usize, 0);
                self.0 = Some(Assembly {
                    transfer: head.transfer,
                    bytes: buf,
                    parts: Vec::new(),
                    got: 0,
                    touched: Instant::now(),
                });
            }
        }
        let a = self.0.as_mut().ok_or("no assembly")?;
        if a.bytes.len() as u64 != head.total {
            return Err("the part states another total than its transfer".into());
        }
        if a.parts.iter().any(|&(o, l)| head.offset < o + l && o < end) {
            return Err(format!("a part at {} overlaps another", head.offset));
        }
        a.bytes[head.offset as usize..end as usize].copy_from_slice(bytes);
        a.parts.push((head.offset, len));
        a.got += len;
        a.touched = Instant::now();
        Ok(())
    }

    /// Forgets a transfer that has been idle for [`STALE`] (its sender
    /// gave up or died).
    pub fn expire(&mut self) {
        if self
            .0
            .as_ref()
            .is_some_and(|a| a.touched.elapsed() >= STALE)
        {
            self.0 = None;
        }
    }

    /// Whether some bytes of transfer `head.transfer` have not come yet:
    /// some of its parts are stored and not all, or none is and it is not
    /// the transfer taken last. (The source sends its last parts and the
    /// adopt at once, each on its own query, so the adopt may even come
    /// before the first part.)
    pub fn waits_for(&self, head: &Head) -> bool {
        match &self.0 {
            Some(a) if a.transfer == head.transfer => a.got < a.bytes.len() as u64,
            _ => self.1 != Some(head.transfer),
        }
    }

    /// Takes the whole snapshot of transfer `head.transfer`.
    pub fn take(&mut self, head: &Head) -> Result<Vec<u8>, String> {
        match self.0.take() {
            Some(a)
                if a.transfer == head.transfer
                    && a.got == head.total
                    && a.got == a.bytes.len() as u64 =>
            {
                self.1 = Some(a.transfer);
                Ok(a.bytes)
            }
            Some(a) if a.transfer == head.transfer => {
                let got = a.got;
                Err(format!(
                    "the snapshot is incomplete: {got} of {} bytes",
                    head.total
                ))
            }
            other => {
                self.0 = other;
                Err("no snapshot of that transfer arrived".into())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(kind: Kind, transfer: u64, offset: u64, total: u64) -> Head {
        Head {
            kind,
            transfer,
            offset,
            total,
        }
    }

    #[test]
    fn heads_round_trip_and_bad_ones_are_refused() {
        let h = head(Kind::Part, 7, 4096, 10_000);
        let mut bytes = h.encode().to_vec();
        bytes.extend_from_slice(b"{}");
        assert_eq!(Head::decode(&bytes), Ok((h, &b"{}"[..])));
        assert!(Head::decode(&bytes[..10]).is_err());
        let mut bad = bytes.clone();
        bad[0] = 2;
        assert!(Head::decode(&bad).is_err());
        let mut bad = bytes.clone();
        bad[1] = 4;
        assert!(Head::decode(&bad).is_err());
        let prepare = head(Kind::Prepare, 7, 0, 10_000);
        assert_eq!(Head::decode(&prepare.encode()), Ok((prepare, &[][..])));
        let astray = head(Kind::Prepare, 7, 4096, 10_000).encode();
        assert!(Head::decode(&astray).is_err());
        let mut bad = bytes.clone();
        bad[5] = 1;
        assert!(Head::decode(&bad).is_err());
        let zero = head(Kind::Adopt, 7, 0, 0).encode();
        assert!(Head::decode(&zero).is_err());
        let huge = head(Kind::Adopt, 7, 0, MAX_SNAPSHOT + 1).encode();
        assert!(Head::decode(&huge).is_err());
    }

    #[test]
    fn parts_in_any_order_make_the_snapshot() {
        let snapshot: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
        let mut a = Assemblies::default();
        let adopt = head(Kind::Adopt, 1, 0, 10_000);
        // An adopt waits while some of its bytes are on their way, the
        // first part's too.
        assert!(a.waits_for(&adopt), "nothing of it came yet");
        for offset in [8192u64, 0, 4096] {
            let end = (offset as usize + 4096).min(snapshot.len());
            let h = head(Kind::Part, 1, offset, 10_000);
            a.part(&h, &snapshot[offset as usize..end]).unwrap();
            assert_eq!(a.waits_for(&adopt), offset != 4096);
        }
        assert_eq!(a.take(&adopt).unwrap(), snapshot);
        // Taken: gone, and an adopt of it again does not wait.
        assert!(!a.waits_for(&adopt));
        assert!(a.take(&head(Kind::Adopt, 1, 0, 10_000)).is_err());
        assert!(a.waits_for(&head(Kind::Adopt, 2, 0, 10_000)));
    }

    #[test]
    fn bad_parts_are_refused_and_lose_nothing() {
        let mut a = Assemblies::default();
        let part = |offset| head(Kind::Part, 1, offset, 100);
        a.part(&part(0), &[1; 50]).unwrap();
        assert!(
            a.part(&part(40), &[2; 20])
                .unwrap_err()
                .contains("overlaps")
        );
        assert!(a.part(&part(90), &[2; 20]).unwrap_err().contains("past"));
        assert!(a.part(&part(50), &[]).is_err());
        // Another transfer while this one is fresh: busy.
        let other = head(Kind::Part, 2, 0, 100);
        assert!(a.part(&other, &[3; 10]).unwrap_err().contains("busy"));
        a.expire();
        assert!(a.part(&other, &[3; 10]).unwrap_err().contains("busy"));
        // Incomplete: refused, and the assembly is gone with it.
        let adopt = head(Kind::Adopt, 1, 0, 100);
        assert!(a.take(&adopt).unwrap_err().contains("incomplete"));
        // Another transfer's adopt leaves this one alone.
        a.part(&part(0), &[1; 50]).unwrap();
        assert!(a.take(&head(Kind::Adopt, 9, 0, 100)).is_err());
        a.part(&part(50), &[1; 50]).unwrap();
        assert_eq!(a.take(&adopt).unwrap(), vec![1; 100]);
    }
}
