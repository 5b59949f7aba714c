//! What the producer and the consumer of a ring share: the private state
//! each side keeps (its own index, a validated copy of the peer's, wake-up
//! bookkeeping) and the steps both take (publishing an index, validating the
//! peer's, reading the peer's close flag, sleeping and notifying).
//!
//! Invariants of [`End`] (PROTOCOL.md §7.7): `own` is the only authoritative
//! copy of this side's index (it is written to shared memory, never read
//! back); `peer` is the last peer index that passed validation, so
//! `0 <= producer index - consumer index <= capacity` holds for the private
//! pair at all times; every data offset is derived from these two values.

use core::sync::atomic::Ordering;

use crate::access::Memory;
use crate::chunk::Chunks;
use crate::error::Error;
use crate::layout::{self, Geometry, LayoutError};
use crate::wake::{Notify, WaitDecision, WakeState};

/// The header fields one side writes and the ones it reads (§7.2–§7.3).
#[derive(Debug)]
pub(crate) struct Role {
    own_index: usize,
    peer_index: usize,
    own_wait: usize,
    peer_wait: usize,
    own_closed: usize,
    peer_closed: usize,
}

pub(crate) const PRODUCER: Role = Role {
    own_index: layout::PRODUCED,
    peer_index: layout::CONSUMED,
    own_wait: layout::PRODUCER_WAIT,
    peer_wait: layout::CONSUMER_WAIT,
    own_closed: layout::PRODUCER_CLOSED,
    peer_closed: layout::CONSUMER_CLOSED,
};

pub(crate) const CONSUMER: Role = Role {
    own_index: layout::CONSUMED,
    peer_index: layout::PRODUCED,
    own_wait: layout::CONSUMER_WAIT,
    peer_wait: layout::PRODUCER_WAIT,
    own_closed: layout::CONSUMER_CLOSED,
    peer_closed: layout::PRODUCER_CLOSED,
};

/// Whether this end may still move bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Open,
    Closed,
    Corrupt,
}

/// One side of one ring (see the module docs for its invariants).
pub(crate) struct End<M: Memory, N: Notify> {
    mem: M,
    geometry: Geometry,
    notify: N,
    role: &'static Role,
    /// This side's index.
    pub(crate) own: u64,
    /// The peer's index as last validated.
    pub(crate) peer: u64,
    state: State,
    /// The peer's close flag read 1; it is not read again.
    peer_closed: bool,
    /// Consumer only: the producer's index was read after its close flag,
    /// so it is final and not read again.
    pub(crate) peer_final: bool,
    wake: WakeState,
}

impl<M: Memory, N: Notify> End<M, N> {
    pub(crate) fn new(
        mem: M,
        base: usize,
        capacity: usize,
        notify: N,
        role: &'static Role,
    ) -> Result<Self, LayoutError> {
        let geometry = Geometry::new(base, capacity, mem.size())?;
        Ok(Self {
            mem,
            geometry,
            notify,
            role,
            own: 0,
            peer: 0,
            state: State::Open,
            peer_closed: false,
            peer_final: false,
            wake: WakeState::default(),
        })
    }

    pub(crate) fn capacity(&self) -> usize {
        self.geometry.capacity()
    }

    /// Fails unless this end is open and the peer has not been caught lying.
    pub(crate) fn check(&self) -> Result<(), Error> {
        match self.state {
            State::Open => Ok(()),
            State::Closed => Err(Error::Closed),
            State::Corrupt => Err(Error::Corrupt),
        }
    }

    fn corrupt(&mut self) -> Error {
        self.state = State::Corrupt;
        Error::Corrupt
    }

    /// Reads the peer's index and accepts it if it moved forward by at most
    /// `limit` bytes since the last accepted value (§7.7). Returns the
    /// accepted index.
    pub(crate) fn refresh_peer(&mut self, limit: u64) -> Result<u64, Error> {
        let index = self
            .mem
            .load_u64(self.geometry.field(self.role.peer_index), Ordering::Acquire);
        if index.wrapping_sub(self.peer) > limit {
            return Err(self.corrupt());
        }
        self.peer = index;
        Ok(index)
    }

    /// Whether the peer has closed its end; a flag other than 0 or 1 is a
    /// protocol violation. A flag once seen as 1 is not read again.
    pub(crate) fn peer_closed(&mut self) -> Result<bool, Error> {
        if !self.peer_closed {
            match self.mem.load_u32(
                self.geometry.field(self.role.peer_closed),
                Ordering::Acquire,
            ) {
                0 => {}
                1 => self.peer_closed = true,
                _ => return Err(self.corrupt()),
            }
        }
        Ok(self.peer_closed)
    }

    /// Publishes `n` bytes of the `granted` that the last reservation or peek
    /// handed out (and voids that grant): [`Error::Overrun`] if `n` exceeds it.
    pub(crate) fn release(&mut self, n: usize, granted: &mut usize) -> Result<(), Error> {
        self.check()?;
        if n > core::mem::take(granted) {
            return Err(Error::Overrun);
        }
        if n > 0 {
            self.publish(n);
        }
        Ok(())
    }

    /// Makes this side's index `own + n` visible to the peer, then wakes the
    /// peer if it sleeps.
    pub(crate) fn publish(&mut self, n: usize) {
        self.own = self.own.wrapping_add(n as u64);
        self.mem.store_u64(
            self.geometry.field(self.role.own_index),
            self.own,
            Ordering::Release,
        );
        self.kick();
    }

    /// After a publication: fence, read the peer's wait word, notify once
    /// per peer sleep epoch (§7.6).
    fn kick(&mut self) {
        self.mem.fence();
        let word = self
            .mem
            .load_u64(self.geometry.field(self.role.peer_wait), Ordering::Relaxed);
        if self.wake.should_notify(word) {
            self.notify.notify();
        }
    }

    /// The sleep half of §7.6: publish an epoch, fence, re-check with
    /// `ready`; clear the word again if there is work after all.
    pub(crate) fn prepare_wait(
        &mut self,
        ready: impl FnOnce(&mut Self) -> Result<bool, Error>,
    ) -> Result<WaitDecision, Error> {
        let epoch = self.wake.begin();
        self.mem.store_u64(
            self.geometry.field(self.role.own_wait),
            epoch,
            Ordering::Relaxed,
        );
        self.mem.fence();
        match ready(self) {
            Ok(false) => Ok(WaitDecision::Sleep),
            other => {
                self.end_wait();
                other.map(|_| WaitDecision::Ready)
            }
        }
    }

    pub(crate) fn end_wait(&mut self) {
        if self.wake.end() {
            self.mem.store_u64(
                self.geometry.field(self.role.own_wait),
                0,
                Ordering::Relaxed,
            );
        }
    }

    /// Sets this side's close flag and wakes the peer. Idempotent.
    pub(crate) fn close(&mut self) {
        if self.state != State::Closed {
            self.state = State::Closed;
            self.end_wait();
            self.mem.store_u32(
                self.geometry.field(self.role.own_closed),
                1,
                Ordering::Release,
            );
            self.kick();
        }
    }

    /// The data area holding the `len` stream bytes from position `pos`.
    pub(crate) fn chunks(&self, pos: u64, len: usize) -> Chunks<'_, M> {
        Chunks::new(&self.mem, self.geometry, pos, len)
    }
}

impl<M: Memory, N: Notify> Drop for End<M, N> {
    fn drop(&mut self) {
        self.close();
    }
}
