//! The byte layout of one ring in shared memory (PROTOCOL.md §7.2–§7.4).
//!
//! A ring is a 256-byte header of four 64-byte cache lines followed by a data
//! area of `capacity` bytes (a power of two). Each line has one writer, so the
//! two sides never write to the same cache line:
//!
//! | offset | size | field | written by |
//! |---:|---:|---|---|
//! | 0 | 8 | `produced`: free-running count of bytes published | producer |
//! | 64 | 8 | `consumed`: free-running count of bytes released | consumer |
//! | 128 | 8 | `consumer_wait`: 0 awake, else sleep epoch (waits for data) | consumer |
//! | 136 | 4 | `consumer_closed`: 0 open, 1 closed | consumer |
//! | 192 | 8 | `producer_wait`: 0 awake, else sleep epoch (waits for space) | producer |
//! | 200 | 4 | `producer_closed`: 0 open, 1 closed | producer |
//! | 256 | capacity | data: byte `i` of the stream lives at `256 + i % capacity` | producer |
//!
//! All other header bytes are reserved and zero.

/// The size of a cache line, the unit of separation between the two sides.
pub const CACHE_LINE: usize = 64;

/// Offset of `produced` (u64, §7.2).
pub const PRODUCED: usize = 0;
/// Offset of `consumed` (u64, §7.2).
pub const CONSUMED: usize = CACHE_LINE;
/// Offset of `consumer_wait` (u64, §7.3).
pub const CONSUMER_WAIT: usize = 2 * CACHE_LINE;
/// Offset of `consumer_closed` (u32, §7.3).
pub const CONSUMER_CLOSED: usize = 2 * CACHE_LINE + 8;
/// Offset of `producer_wait` (u64, §7.3).
pub const PRODUCER_WAIT: usize = 3 * CACHE_LINE;
/// Offset of `producer_closed` (u32, §7.3).
pub const PRODUCER_CLOSED: usize = 3 * CACHE_LINE + 8;
/// Size of the header; the data area starts here (§7.2).
pub const HEADER: usize = 4 * CACHE_LINE;

/// Bytes published into the ring at `base` of `mem` and not yet released,
/// as its header says: a view from outside both ends (whether a consumer
/// has caught up). A header the peer corrupted gives a meaningless count.
pub fn unconsumed<M: crate::Memory>(mem: &M, base: usize) -> u64 {
    let produced = mem.load_u64(base + PRODUCED, core::sync::atomic::Ordering::Acquire);
    let consumed = mem.load_u64(base + CONSUMED, core::sync::atomic::Ordering::Acquire);
    produced.wrapping_sub(consumed)
}
// The pipe region's slot layout (weft-control, PROTOCOL.md §8.1) reserves
// this much before each ring's data.
const _: () = assert!(HEADER as u64 == weft_control::streams::RING_HEADER);
/// The largest capacity a ring may have: 2^31 bytes, so that every length and
/// offset fits a `u32` and `usize` on every target.
pub const MAX_CAPACITY: usize = 1 << 31;

/// The header of one ring as a Rust type. It is never instantiated over
/// shared memory (the ring reads and writes fields by offset through
/// [`Memory`](crate::Memory)); it exists so the compiler checks the offsets
/// above against a `#[repr(C)]` layout with no padding (§7.2).
#[repr(C, align(64))]
pub struct Header {
    /// Line 0, written by the producer.
    pub produced: u64,
    /// Reserved, zero.
    pub reserved0: [u8; 56],
    /// Line 1, written by the consumer.
    pub consumed: u64,
    /// Reserved, zero.
    pub reserved1: [u8; 56],
    /// Line 2, written by the consumer.
    pub consumer_wait: u64,
    /// Line 2, written by the consumer.
    pub consumer_closed: u32,
    /// Reserved, zero.
    pub reserved2: [u8; 52],
    /// Line 3, written by the producer.
    pub producer_wait: u64,
    /// Line 3, written by the producer.
    pub producer_closed: u32,
    /// Reserved, zero.
    pub reserved3: [u8; 52],
}

const _: () = {
    use core::mem::{offset_of, size_of};
    assert!(size_of::<Header>() == HEADER);
    assert!(offset_of!(Header, produced) == PRODUCED);
    assert!(offset_of!(Header, consumed) == CONSUMED);
    assert!(offset_of!(Header, consumer_wait) == CONSUMER_WAIT);
    assert!(offset_of!(Header, consumer_closed) == CONSUMER_CLOSED);
    assert!(offset_of!(Header, producer_wait) == PRODUCER_WAIT);
    assert!(offset_of!(Header, producer_closed) == PRODUCER_CLOSED);
    // Each side's fields sit on its own lines.
    assert!(PRODUCED / CACHE_LINE != CONSUMED / CACHE_LINE);
    assert!(CONSUMER_CLOSED / CACHE_LINE == CONSUMER_WAIT / CACHE_LINE);
    assert!(PRODUCER_CLOSED / CACHE_LINE == PRODUCER_WAIT / CACHE_LINE);
    assert!(HEADER.is_multiple_of(CACHE_LINE));
};

/// Why a region cannot hold a ring or a pipe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayoutError {
    /// The capacity is zero, not a power of two, or above [`MAX_CAPACITY`].
    Capacity,
    /// The region or the ring does not start on a 64-byte boundary.
    Misaligned,
    /// The region is smaller than the rings placed in it.
    TooSmall,
}

impl core::fmt::Display for LayoutError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Self::Capacity => "ring capacity is not a power of two in 1..=2^31",
            Self::Misaligned => "ring region is not 64-byte aligned",
            Self::TooSmall => "region is smaller than the ring layout",
        })
    }
}

impl core::error::Error for LayoutError {}

/// Where one ring lives inside a region: its base offset and its capacity,
/// both checked. The capacity comes from the caller (the control message that
/// created the pipe), never from shared memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    base: usize,
    capacity: usize,
}

impl Geometry {
    /// Checks that a ring of `capacity` bytes at `base` fits a region of
    /// `region_len` bytes.
    pub fn new(base: usize, capacity: usize, region_len: usize) -> Result<Self, LayoutError> {
        if !capacity.is_power_of_two() || capacity > MAX_CAPACITY {
            return Err(LayoutError::Capacity);
        }
        if !base.is_multiple_of(CACHE_LINE) {
            return Err(LayoutError::Misaligned);
        }
        let end = base
            .checked_add(ring_size(capacity))
            .ok_or(LayoutError::TooSmall)?;
        if end > region_len {
            return Err(LayoutError::TooSmall);
        }
        Ok(Self { base, capacity })
    }

    /// Offset of the ring header in the region.
    pub fn base(&self) -> usize {
        self.base
    }

    /// Data capacity in bytes (a power of two).
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Offset in the region of header field `field` (one of the constants).
    pub(crate) fn field(&self, field: usize) -> usize {
        self.base + field
    }

    /// Offset in the region of stream position `pos`, and how many bytes
    /// follow it before the data area wraps.
    pub(crate) fn data_at(&self, pos: u64) -> (usize, usize) {
        // The mask keeps the result below `capacity` (≤ 2^31), so it fits usize.
        let index = (pos & (self.capacity as u64 - 1)) as usize;
        (self.base + HEADER + index, self.capacity - index)
    }
}

/// Bytes one ring of `capacity` takes, header included, rounded up to a
/// cache line so that rings can be placed back to back.
pub const fn ring_size(capacity: usize) -> usize {
    (HEADER + capacity).next_multiple_of(CACHE_LINE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geometry_checks_capacity_alignment_and_size() {
        assert_eq!(Geometry::new(0, 0, 1 << 20), Err(LayoutError::Capacity));
        assert_eq!(Geometry::new(0, 3, 1 << 20), Err(LayoutError::Capacity));
        assert_eq!(
            Geometry::new(0, 1 << 32, usize::MAX),
            Err(LayoutError::Capacity)
        );
        assert_eq!(Geometry::new(8, 64, 1 << 20), Err(LayoutError::Misaligned));
        assert_eq!(
            Geometry::new(0, 64, HEADER + 63),
            Err(LayoutError::TooSmall)
        );
        assert_eq!(
            Geometry::new(usize::MAX - 63, 64, usize::MAX),
            Err(LayoutError::TooSmall)
        );
        let g = Geometry::new(64, 64, 64 + HEADER + 64).unwrap();
        assert_eq!(g.data_at(0), (64 + HEADER, 64));
        assert_eq!(g.data_at(130), (64 + HEADER + 2, 62));
        assert_eq!(g.data_at(u64::MAX), (64 + HEADER + 63, 1));
    }

    #[test]
    fn ring_size_rounds_to_cache_lines() {
        assert_eq!(ring_size(1), HEADER + 64);
        assert_eq!(ring_size(4096), HEADER + 4096);
    }
}
