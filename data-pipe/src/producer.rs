//! The writing end of a ring.

use crate::access::Memory;
use crate::chunk::Chunks;
use crate::error::Error;
use crate::layout::LayoutError;
use crate::ring::{End, PRODUCER};
use crate::wake::{NoNotify, Notify};

/// The writing end of one ring (PROTOCOL.md §7.4). Non-blocking: every
/// operation returns at once; [`Blocking`](crate::Blocking) adds waiting.
///
/// Dropping the producer closes it: the consumer reads the remaining bytes,
/// then end-of-stream.
pub struct Producer<M: Memory, N: Notify = NoNotify> {
    end: End<M, N>,
    /// Bytes handed out by the last `reserve`, not yet committed.
    reserved: usize,
}

impl<M: Memory, N: Notify> Producer<M, N> {
    /// The producer of the ring of `capacity` data bytes at offset `base` of
    /// `mem`, notifying the consumer through `notify`. The ring header must
    /// have been zeroed before either side attached (§7.5).
    pub fn new(mem: M, base: usize, capacity: usize, notify: N) -> Result<Self, LayoutError> {
        Ok(Self {
            end: End::new(mem, base, capacity, notify, &PRODUCER)?,
            reserved: 0,
        })
    }

    /// Data capacity of the ring in bytes.
    pub fn capacity(&self) -> usize {
        self.end.capacity()
    }

    /// Bytes that can be written now without blocking.
    pub fn writable_len(&mut self) -> Result<usize, Error> {
        space(&mut self.end, usize::MAX)
    }

    /// Writes as much of `buf` as fits and returns the count;
    /// [`Error::WouldBlock`] if the ring is full, [`Error::BrokenPipe`] if the
    /// consumer closed. An empty `buf` writes nothing and returns `Ok(0)`.
    pub fn write(&mut self, buf: &[u8]) -> Result<usize, Error> {
        let free = space(&mut self.end, buf.len())?;
        if buf.is_empty() {
            return Ok(0);
        }
        let n = free.min(buf.len());
        if n == 0 {
            return Err(Error::WouldBlock);
        }
        self.reserved = 0;
        self.end.chunks(self.end.own, n).write(&buf[..n]);
        self.end.publish(n);
        Ok(n)
    }

    /// Hands out up to `max` bytes of free space for the caller to fill in
    /// place; [`commit`](Self::commit) publishes them. A later `reserve`,
    /// `write` or `commit` voids the reservation.
    pub fn reserve(&mut self, max: usize) -> Result<Chunks<'_, M>, Error> {
        let free = space(&mut self.end, max)?;
        let n = free.min(max);
        if n == 0 && max > 0 {
            return Err(Error::WouldBlock);
        }
        self.reserved = n;
        Ok(self.end.chunks(self.end.own, n))
    }

    /// Publishes the first `n` bytes of the last reservation.
    pub fn commit(&mut self, n: usize) -> Result<(), Error> {
        self.end.release(n, &mut self.reserved)
    }

    /// Closes this end: the consumer sees end-of-stream once it has read
    /// everything published. Idempotent; later writes fail with
    /// [`Error::Closed`].
    pub fn close(&mut self) {
        self.end.close();
    }
}

crate::wake::impl_waitable!(Producer);

/// Free space, re-reading the consumer's index only if the cached value
/// shows less than `want` bytes.
fn space<M: Memory, N: Notify>(end: &mut End<M, N>, want: usize) -> Result<usize, Error> {
    end.check()?;
    if end.peer_closed()? {
        return Err(Error::BrokenPipe);
    }
    let capacity = end.capacity() as u64;
    let used = end.own.wrapping_sub(end.peer);
    if ((capacity - used) as usize) < want {
        // The consumer may release at most what was published.
        end.refresh_peer(used)?;
    }
    Ok((capacity - end.own.wrapping_sub(end.peer)) as usize)
}

/// Ready when there is space, or when a write would fail at once because
/// the consumer closed.
fn ready<M: Memory, N: Notify>(end: &mut End<M, N>) -> Result<bool, Error> {
    match space(end, 1) {
        Ok(free) => Ok(free > 0),
        Err(Error::BrokenPipe) => Ok(true),
        Err(e) => Err(e),
    }
}
