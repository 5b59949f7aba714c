//! A bidirectional pipe: two rings back to back in one region (PROTOCOL.md
//! §7.5).

use crate::access::Memory;
use crate::consumer::Consumer;
use crate::layout::{LayoutError, ring_size};
use crate::producer::Producer;
use crate::wake::Notify;

/// Which end of a pipe this is. Side A (the guest) writes ring 0 and reads
/// ring 1; side B (the monitor) writes ring 1 and reads ring 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// Writes ring 0, reads ring 1.
    A,
    /// Writes ring 1, reads ring 0.
    B,
}

/// Bytes a pipe of two rings of `capacity` takes.
pub const fn pipe_size(capacity: usize) -> usize {
    2 * ring_size(capacity)
}

/// One end of a bidirectional pipe: the producer of one ring and the
/// consumer of the other.
pub struct Pipe<M: Memory, N: Notify> {
    /// Writes to the peer.
    pub tx: Producer<M, N>,
    /// Reads from the peer.
    pub rx: Consumer<M, N>,
}

impl<M: Memory + Clone, N: Notify> Pipe<M, N> {
    /// The `side` end of the pipe of two rings of `capacity` bytes each at
    /// offset `base` of `mem`. `tx_notify` tells the peer that data arrived,
    /// `rx_notify` that space was freed (they may be the same doorbell if the
    /// peer re-checks both rings when woken).
    pub fn new(
        mem: M,
        base: usize,
        capacity: usize,
        side: Side,
        tx_notify: N,
        rx_notify: N,
    ) -> Result<Self, LayoutError> {
        let second = base
            .checked_add(ring_size(capacity))
            .ok_or(LayoutError::TooSmall)?;
        let (tx_base, rx_base) = match side {
            Side::A => (base, second),
            Side::B => (second, base),
        };
        Ok(Self {
            tx: Producer::new(mem.clone(), tx_base, capacity, tx_notify)?,
            rx: Consumer::new(mem, rx_base, capacity, rx_notify)?,
        })
    }
}

#[cfg(all(test, feature = "std"))]
mod tests {
    use super::*;
    use crate::{HeapRegion, NoNotify};

    #[test]
    fn two_ends_talk_both_ways() {
        let mem = HeapRegion::new(pipe_size(64));
        let mut a = Pipe::new(&mem, 0, 64, Side::A, NoNotify, NoNotify).unwrap();
        let mut b = Pipe::new(&mem, 0, 64, Side::B, NoNotify, NoNotify).unwrap();
        assert_eq!(a.tx.write(b"ping"), Ok(4));
        assert_eq!(b.tx.write(b"pong!"), Ok(5));
        let mut buf = [0; 8];
        assert_eq!(b.rx.read(&mut buf), Ok(4));
        assert_eq!(&buf[..4], b"ping");
        assert_eq!(a.rx.read(&mut buf), Ok(5));
        assert_eq!(&buf[..5], b"pong!");
        assert_eq!(
            Pipe::new(&mem, 64, 64, Side::A, NoNotify, NoNotify).err(),
            Some(LayoutError::TooSmall)
        );
    }
}
