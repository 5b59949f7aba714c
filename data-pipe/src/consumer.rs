//! The reading end of a ring.

use crate::access::Memory;
use crate::chunk::Chunks;
use crate::error::Error;
use crate::layout::LayoutError;
use crate::ring::{CONSUMER, End};
use crate::wake::{NoNotify, Notify};

/// The reading end of one ring (PROTOCOL.md §7.4). Non-blocking: every
/// operation returns at once; [`Blocking`](crate::Blocking) adds waiting.
///
/// Dropping the consumer closes it: the producer's writes then fail with
/// [`Error::BrokenPipe`].
pub struct Consumer<M: Memory, N: Notify = NoNotify> {
    end: End<M, N>,
    /// Bytes handed out by the last `peek`, not yet consumed.
    peeked: usize,
}

impl<M: Memory, N: Notify> Consumer<M, N> {
    /// The consumer of the ring of `capacity` data bytes at offset `base` of
    /// `mem`, notifying the producer through `notify`. The ring header must
    /// have been zeroed before either side attached (§7.5).
    pub fn new(mem: M, base: usize, capacity: usize, notify: N) -> Result<Self, LayoutError> {
        Ok(Self {
            end: End::new(mem, base, capacity, notify, &CONSUMER)?,
            peeked: 0,
        })
    }

    /// Data capacity of the ring in bytes.
    pub fn capacity(&self) -> usize {
        self.end.capacity()
    }

    /// Bytes that can be read now without blocking (0 when empty, whether
    /// or not the producer closed).
    pub fn readable_len(&mut self) -> Result<usize, Error> {
        match available(&mut self.end, usize::MAX) {
            Err(Error::WouldBlock) => Ok(0),
            other => other,
        }
    }

    /// Reads up to `buf.len()` bytes and returns the count: `Ok(0)` at
    /// end-of-stream (the producer closed and everything was read) or for an
    /// empty `buf`; [`Error::WouldBlock`] if the ring is empty and open.
    pub fn read(&mut self, buf: &mut [u8]) -> Result<usize, Error> {
        if buf.is_empty() {
            self.end.check()?;
            return Ok(0);
        }
        let n = available(&mut self.end, buf.len())?.min(buf.len());
        if n > 0 {
            self.peeked = 0;
            self.end.chunks(self.end.own, n).read(&mut buf[..n]);
            self.end.publish(n);
        }
        Ok(n)
    }

    /// Shows every readable byte in place; [`consume`](Self::consume) releases
    /// them. Empty chunks mean end-of-stream; [`Error::WouldBlock`] that the
    /// ring is empty and open. A later `peek`, `read` or `consume` voids the
    /// view.
    pub fn peek(&mut self) -> Result<Chunks<'_, M>, Error> {
        let n = available(&mut self.end, usize::MAX)?;
        self.peeked = n;
        Ok(self.end.chunks(self.end.own, n))
    }

    /// Releases the first `n` bytes of the last [`peek`](Self::peek).
    pub fn consume(&mut self, n: usize) -> Result<(), Error> {
        self.end.release(n, &mut self.peeked)
    }

    /// Closes this end: the producer's later writes fail with
    /// [`Error::BrokenPipe`]; unread bytes are discarded. Idempotent; later
    /// reads fail with [`Error::Closed`].
    pub fn close(&mut self) {
        self.end.close();
    }
}

crate::wake::impl_waitable!(Consumer);

/// Readable bytes, re-reading the producer's index only if the cached value
/// shows fewer than `want` (and at least one): `Ok(0)` at end-of-stream,
/// [`Error::WouldBlock`] when empty and open.
fn available<M: Memory, N: Notify>(end: &mut End<M, N>, want: usize) -> Result<usize, Error> {
    end.check()?;
    let capacity = end.capacity() as u64;
    let avail = end.peer.wrapping_sub(end.own);
    if avail >= want.max(1) as u64 || end.peer_final {
        return Ok(avail as usize);
    }
    // The producer may publish at most the free space.
    end.refresh_peer(capacity - avail)?;
    let avail = end.peer.wrapping_sub(end.own);
    if avail > 0 {
        return Ok(avail as usize);
    }
    if !end.peer_closed()? {
        return Err(Error::WouldBlock);
    }
    // Bytes published before the close flag are visible now (§7.6): read the
    // index once more; it is final.
    end.refresh_peer(capacity)?;
    end.peer_final = true;
    Ok(end.peer.wrapping_sub(end.own) as usize)
}

/// Ready when there are bytes to read or the stream has ended.
fn ready<M: Memory, N: Notify>(end: &mut End<M, N>) -> Result<bool, Error> {
    match available(end, 1) {
        Ok(_) => Ok(true),
        Err(Error::WouldBlock) => Ok(false),
        Err(e) => Err(e),
    }
}
