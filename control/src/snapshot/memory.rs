//! The memory section: a linear memory's size and its runs of chunks that
//! are not all zero; the chunks not in a run are zero.
//!
//! The writer finds the runs itself, each as long as it can be, and hands
//! each run's bytes to the sink as one slice of the memory. The reader
//! accepts runs that are sorted and do not overlap (adjacent runs, and zero
//! chunks inside a run, are allowed: they say the same thing).

use super::cursor::Cursor;
use super::out::Out;
use super::{CHUNK, MAX_MEMORIES, MAX_PAGES, PAGE, SnapshotError};

/// `max_pages` when the memory has no maximum.
const NO_MAXIMUM: u32 = u32::MAX;
/// Chunks in a page.
const CHUNKS_PER_PAGE: u64 = (PAGE / CHUNK) as u64;

crate::wire_layout! {
    /// The start of the memory section's body (§19.1).
    #[derive(Clone, Copy, Debug)]
    struct MemoryHead: 12 {
        [0] index: u32,
        [4] pages: u32,
        [8] max_pages: u32,
    }
}

crate::wire_layout! {
    /// The start of a run of chunks (§19.1); its bytes follow.
    #[derive(Clone, Copy, Debug)]
    struct RunHead: 8 {
        [0] first: u32,
        [4] count: u32,
    }
}
const _: () = assert!(MemoryHead::SIZE == 12 && RunHead::SIZE == 8);

/// Checks a memory's size in pages and its maximum (the header at `at`).
fn check_limits(pages: u64, max: Option<u32>, at: u64) -> Result<(), SnapshotError> {
    if pages > u64::from(MAX_PAGES) {
        return Err(SnapshotError::OutOfRange {
            what: "memory pages",
            value: pages,
            at,
        });
    }
    match max {
        Some(m) if u64::from(m) < pages || m > MAX_PAGES => Err(SnapshotError::OutOfRange {
            what: "memory maximum pages",
            value: m.into(),
            at,
        }),
        _ => Ok(()),
    }
}

/// Checks the writer's memory: whole pages, within the limits.
pub(super) fn check_input(bytes: &[u8], max: Option<u32>, at: u64) -> Result<(), SnapshotError> {
    let len = bytes.len() as u64;
    if !len.is_multiple_of(PAGE as u64) {
        return Err(SnapshotError::OutOfRange {
            what: "memory length",
            value: len,
            at,
        });
    }
    check_limits(len / PAGE as u64, max, at)
}

/// Whether a chunk's bytes are all zero: eight at a time, in blocks of
/// 64 (the guest's code has no vector unit: a byte at a time made the scan
/// of a 64 MiB memory take ~25 ms there; the host's compiler vectorizes
/// the blocks).
fn is_zero(chunk: &[u8]) -> bool {
    let (words, rest) = chunk.as_chunks::<8>();
    rest.iter().all(|&b| b == 0)
        && words
            .chunks(8)
            .all(|block| block.iter().fold(0, |acc, w| acc | u64::from_ne_bytes(*w)) == 0)
}

/// The runs of chunks of a memory that are not all zero: the first chunk
/// and the count, ascending, each as long as it can be.
struct Runs<'a> {
    chunks: core::slice::Chunks<'a, u8>,
    next: usize,
}

impl Iterator for Runs<'_> {
    type Item = (usize, usize);

    fn next(&mut self) -> Option<(usize, usize)> {
        let first = loop {
            let chunk = self.chunks.next()?;
            self.next += 1;
            if !is_zero(chunk) {
                break self.next - 1;
            }
        };
        for chunk in self.chunks.by_ref() {
            self.next += 1;
            if is_zero(chunk) {
                return Some((first, self.next - 1 - first));
            }
        }
        Some((first, self.next - first))
    }
}

fn runs(bytes: &[u8]) -> Runs<'_> {
    Runs {
        chunks: bytes.chunks(CHUNK),
        next: 0,
    }
}

/// Puts out the memory section's body for `bytes` (checked by
/// [`check_input`]; the casts to `u32` hold for a memory of at most
/// [`MAX_PAGES`]).
pub(super) fn encode(bytes: &[u8], max: Option<u32>, out: &mut Out<'_>) {
    let head = MemoryHead {
        index: 0,
        pages: (bytes.len() / PAGE) as u32,
        max_pages: max.unwrap_or(NO_MAXIMUM),
    };
    out(&head.encode());
    for (first, count) in runs(bytes) {
        let run = RunHead {
            first: first as u32,
            count: count as u32,
        };
        out(&run.encode());
        out(bytes
            .get(first * CHUNK..(first + count) * CHUNK)
            .unwrap_or_default());
    }
}

/// A checked memory section: its size, and its runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryView<'a> {
    index: u32,
    pages: u32,
    max_pages: Option<u32>,
    /// The runs, each checked.
    runs: Cursor<'a>,
}

/// A run's first chunk, chunk count and bytes.
type Run<'a> = (u32, u32, &'a [u8]);

/// Reads the next run of `c`, checking it against the memory's `chunks`
/// and the end of the run before it.
fn next_run<'a>(
    c: &mut Cursor<'a>,
    chunks: u64,
    previous_end: u32,
) -> Result<Run<'a>, SnapshotError> {
    let at = c.at();
    let RunHead { first, count } = RunHead::decode(c.array("memory run header")?);
    if count == 0 {
        return Err(SnapshotError::OutOfRange {
            what: "memory run chunk count",
            value: 0,
            at,
        });
    }
    if first < previous_end {
        return Err(SnapshotError::ChunkOrder {
            first,
            previous_end,
        });
    }
    if u64::from(first) + u64::from(count) > chunks {
        return Err(SnapshotError::ChunkPastEnd {
            first,
            count,
            chunks: chunks as u32,
        });
    }
    let bytes = c.take(u64::from(count) * CHUNK as u64, "memory run")?;
    Ok((first, count, bytes))
}

impl<'a> MemoryView<'a> {
    /// Checks a memory section's body.
    pub(super) fn parse(mut body: Cursor<'a>) -> Result<Self, SnapshotError> {
        let at = body.at();
        let head = MemoryHead::decode(body.array("memory header")?);
        if head.index >= MAX_MEMORIES {
            return Err(SnapshotError::OutOfRange {
                what: "memory index",
                value: head.index.into(),
                at,
            });
        }
        let max_pages = (head.max_pages != NO_MAXIMUM).then_some(head.max_pages);
        check_limits(head.pages.into(), max_pages, at)?;
        let view = Self {
            index: head.index,
            pages: head.pages,
            max_pages,
            runs: body,
        };
        let mut c = body;
        let mut end = 0;
        while !c.is_empty() {
            let (first, count, _) = next_run(&mut c, view.chunks(), end)?;
            end = first + count;
        }
        Ok(view)
    }

    /// Which memory of the instance it is (0: the only one).
    pub fn index(&self) -> u32 {
        self.index
    }

    /// Its size in Wasm pages.
    pub fn pages(&self) -> u32 {
        self.pages
    }

    /// The most pages it may grow to, if it has a maximum.
    pub fn max_pages(&self) -> Option<u32> {
        self.max_pages
    }

    /// Its size in bytes.
    pub fn byte_len(&self) -> u64 {
        u64::from(self.pages) * PAGE as u64
    }

    fn chunks(&self) -> u64 {
        u64::from(self.pages) * CHUNKS_PER_PAGE
    }

    /// Its runs of chunks that are not all zero: each one's offset in the
    /// memory, in bytes, and its bytes, ascending; every other byte is zero.
    pub fn runs(&self) -> impl Iterator<Item = (u64, &'a [u8])> + 'a {
        let mut c = self.runs;
        let chunks = self.chunks();
        let mut end = 0;
        core::iter::from_fn(move || {
            // Checked by `parse`: this cannot fail.
            let (first, count, bytes) = next_run(&mut c, chunks, end).ok()?;
            end = first + count;
            Some((u64::from(first) * CHUNK as u64, bytes))
        })
    }
}

/// Restores a memory into `dst`, which must be its size
/// ([`MemoryView::byte_len`]): the runs' bytes where they go, zero
/// elsewhere.
pub fn restore_memory(memory: &MemoryView<'_>, dst: &mut [u8]) -> Result<(), SnapshotError> {
    let mismatch = SnapshotError::DestinationSize {
        expected: memory.byte_len(),
        found: dst.len() as u64,
    };
    if dst.len() as u64 != memory.byte_len() {
        return Err(mismatch);
    }
    let mut done = 0;
    for (offset, bytes) in memory.runs() {
        let start = usize::try_from(offset).map_err(|_| mismatch)?;
        let end = start + bytes.len();
        dst.get_mut(done..start).ok_or(mismatch)?.fill(0);
        dst.get_mut(start..end)
            .ok_or(mismatch)?
            .copy_from_slice(bytes);
        done = end;
    }
    dst.get_mut(done..).ok_or(mismatch)?.fill(0);
    Ok(())
}
