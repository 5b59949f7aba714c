//! Views of the data area handed out by `reserve` and `peek`: zero-copy
//! access without Rust references into shared memory.

use crate::access::Memory;
use crate::layout::Geometry;

/// A contiguous run of bytes in a ring's data area. Bytes move in and out by
/// copying through [`Memory`]; the view never exposes a reference.
#[derive(Clone, Copy, Debug)]
pub struct Chunk<'a, M> {
    mem: &'a M,
    offset: usize,
    len: usize,
}

impl<M: Memory> Chunk<'_, M> {
    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the chunk is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Where the chunk starts, as an offset into the region: for an owner
    /// of the region's mapping that hands the bytes to the host kernel
    /// (`readv`, `writev`) without copying them through this process (see
    /// [`RawRegion::span`](crate::RawRegion::span)).
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// Copies as much of `src` as fits from byte `at` of the chunk on;
    /// returns how many bytes were copied.
    pub fn write(&self, at: usize, src: &[u8]) -> usize {
        let n = src.len().min(self.len.saturating_sub(at));
        if n > 0 {
            self.mem.copy_in(self.offset + at, &src[..n]);
        }
        n
    }

    /// Copies as many bytes as fit into `dst` from byte `at` of the chunk on;
    /// returns how many bytes were copied.
    pub fn read(&self, at: usize, dst: &mut [u8]) -> usize {
        let n = dst.len().min(self.len.saturating_sub(at));
        if n > 0 {
            self.mem.copy_out(self.offset + at, &mut dst[..n]);
        }
        n
    }
}

/// Up to two chunks covering a range of the stream: the second is non-empty
/// only when the range wraps around the end of the data area.
#[derive(Clone, Copy, Debug)]
pub struct Chunks<'a, M> {
    /// The part up to the end of the data area.
    pub first: Chunk<'a, M>,
    /// The part that wrapped to the start of the data area.
    pub second: Chunk<'a, M>,
}

impl<'a, M: Memory> Chunks<'a, M> {
    pub(crate) fn new(mem: &'a M, geometry: Geometry, pos: u64, len: usize) -> Self {
        let (offset, to_end) = geometry.data_at(pos);
        let first = len.min(to_end);
        let (wrapped, _) = geometry.data_at(0);
        Self {
            first: Chunk {
                mem,
                offset,
                len: first,
            },
            second: Chunk {
                mem,
                offset: wrapped,
                len: len - first,
            },
        }
    }

    /// Total length in bytes.
    pub fn len(&self) -> usize {
        self.first.len + self.second.len
    }

    /// Whether both chunks are empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Copies as much of `src` as fits, from the start; returns the count.
    pub fn write(&self, src: &[u8]) -> usize {
        let n = self.first.write(0, src);
        n + self.second.write(0, &src[n..])
    }

    /// Fills as much of `dst` as there are bytes, from the start; returns
    /// the count.
    pub fn read(&self, dst: &mut [u8]) -> usize {
        let n = self.first.read(0, dst);
        n + self.second.read(0, &mut dst[n..])
    }
}
