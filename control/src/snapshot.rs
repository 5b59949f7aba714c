//! App snapshots (PROTOCOL.md §19.1): the versioned, checksummed bytes that
//! carry a Wasm event app's whole state from one device to another between
//! two event batches.
//!
//! A snapshot is a 48-byte [`Header`], then sections in a fixed order —
//! [`SectionKind::Memory`], `Globals`, `Tables`, `Segments`, `Host` — then
//! a 4-byte trailer: the CRC-32 (IEEE) of every byte before it. The first
//! four carry the interpreter instance's state (linear memory, globals,
//! tables, dropped segments); the host section carries what the runtime
//! holds for the app ([`HostRecord`]: pid, arguments, descriptors that
//! follow it, event registrations, timers, children's ends).
//!
//! The Wasm runtime in the guest writes a snapshot with a [`Writer`], which
//! hands its bytes to a sink as it goes and computes the checksum on the
//! way: it never holds the snapshot, nor any part of it beyond one field
//! (memory runs go to the sink as slices of the memory itself). Linear
//! memory is cut into [`CHUNK`]s and only the runs of chunks that are not
//! all zero are written. The monitors in between only [`check`] a snapshot
//! (header, length, checksum) and forward it; the destination's runtime
//! reads it with a [`Reader`] (or [`read`]) and restores the memory with
//! [`restore_memory`].
//!
//! Invariants:
//! - decoding never panics: every length is checked against the bytes at
//!   hand, and every error ([`SnapshotError`]) names what was wrong and
//!   where (an offset from the start of the snapshot);
//! - each section the reader yields was validated whole, so its views'
//!   iterators cannot fail; reserved bytes are zero, indices ascend, counts
//!   and sizes are within the limits below, so each state has one encoding;
//! - the writer checks its input by the reader's rules before it hands out
//!   a byte of it, so it never writes what the reader refuses;
//! - nothing here allocates: the reader borrows the snapshot, the writer
//!   borrows its input.
//!
//! ```
//! use weft_control::snapshot::{self, HostRecord, Plan, Writer};
//!
//! let memory = vec![0u8; snapshot::PAGE];
//! let host = [HostRecord::Pid(7)];
//! let plan = Plan::new().memory(&memory).host(&host);
//! let mut out = Vec::new();
//! let mut w = Writer::new(|b: &[u8]| out.extend_from_slice(b));
//! w.header([0; 32], &plan)?;
//! w.memory(&memory, None)?;
//! w.host(&host)?;
//! let len = w.finish()?;
//! assert_eq!(len as usize, out.len());
//! let snap = snapshot::read(&out)?;
//! assert_eq!(snap.memory.map(|m| m.pages()), Some(1));
//! assert_eq!(snap.host.iter().next(), Some(HostRecord::Pid(7)));
//! # Ok::<(), snapshot::SnapshotError>(())
//! ```

mod cursor;
mod error;
mod host;
mod instance;
mod memory;
mod out;
mod reader;
mod writer;

pub use error::SnapshotError;
pub use host::{ByteStrings, Descriptor, FIRST_FD, HostRecord, HostView, descriptor, record};
pub use instance::{
    BitSet, Global, GlobalsView, Segments, SegmentsView, Table, TableView, TablesView, ValType,
};
pub use memory::{MemoryView, restore_memory};
pub use reader::{Contents, Reader, Section, read, read_summed};
pub use writer::{Plan, Writer};

/// The first four bytes of every snapshot, `WSNP`.
pub const MAGIC: u32 = u32::from_le_bytes(*b"WSNP");
/// The snapshot format's version, independent of the crate's and of the
/// interface version.
pub const VERSION: u16 = 1;
/// Bytes of the header.
pub const HEADER: usize = 48;
/// Bytes of a section's header: kind, reserved, length.
pub const SECTION_HEADER: usize = 12;
/// Bytes of the trailer (the CRC-32).
pub const TRAILER: usize = 4;
/// The unit in which linear memory is written: a chunk whose bytes are all
/// zero is left out.
pub const CHUNK: usize = 4096;
/// A Wasm page.
pub const PAGE: usize = 65536;
/// Linear memories a snapshot carries (the runtime gives an app one).
pub const MAX_MEMORIES: u32 = 1;
/// The largest linear memory, in pages: all of wasm32's 4 GiB.
pub const MAX_PAGES: u32 = 65536;
/// The most globals (the web embeddings' limit).
pub const MAX_GLOBALS: u32 = 1_000_000;
/// The most tables (the web embeddings' limit).
pub const MAX_TABLES: u32 = 100_000;
/// The most entries of one table (the web embeddings' limit).
pub const MAX_TABLE_SIZE: u32 = 10_000_000;
/// The most data segments, and the most element segments.
pub const MAX_SEGMENTS: u32 = 100_000;
/// The longest section body other than the memory's, which its size in
/// pages bounds.
pub const MAX_SECTION: u64 = 64 << 20;
/// The longest host record body.
pub const MAX_HOST_RECORD: u32 = 1 << 20;

/// The kinds of section, in the order they come.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u16)]
pub enum SectionKind {
    /// The linear memory: its size and its non-zero chunks.
    Memory = 1,
    /// The globals' values.
    Globals = 2,
    /// The tables' entries.
    Tables = 3,
    /// Which data and element segments were dropped.
    Segments = 4,
    /// The runtime's state for the app ([`HostRecord`]s); always present.
    Host = 5,
}

impl SectionKind {
    /// Every kind, in order.
    pub const ALL: [SectionKind; 5] = [
        Self::Memory,
        Self::Globals,
        Self::Tables,
        Self::Segments,
        Self::Host,
    ];

    /// The kind numbered `n`, if any.
    pub fn from_u16(n: u16) -> Option<Self> {
        Self::ALL.into_iter().find(|k| *k as u16 == n)
    }

    /// Its name, as errors print it.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Memory => "memory",
            Self::Globals => "globals",
            Self::Tables => "tables",
            Self::Segments => "segments",
            Self::Host => "host",
        }
    }
}

impl core::fmt::Display for SectionKind {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

crate::wire_layout! {
    /// The header's bytes (§19.1).
    #[derive(Clone, Copy, Debug)]
    struct RawHeader: 48 {
        [0] magic: u32,
        [4] version: u16,
        [6] flags: u16,
        [8] module: [u8; 32],
        [40] body_len: u64,
    }
}
const _: () = assert!(RawHeader::SIZE == HEADER);

crate::wire_layout! {
    /// A section's header (§19.1): bytes 2..4 are reserved.
    #[derive(Clone, Copy, Debug)]
    struct SectionHead: 12, strict {
        [0] kind: u16,
        [4] len: u64,
    }
}
const _: () = assert!(SectionHead::SIZE == SECTION_HEADER);

/// A checked header: magic, version and flags were right.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Header {
    /// The SHA-256 of the module whose instance the snapshot holds.
    pub module: [u8; 32],
    /// Bytes of sections, after the header and up to the trailer.
    pub body_len: u64,
}

impl Header {
    /// Decodes and checks the first [`HEADER`] bytes of a snapshot: magic,
    /// version and flags (a monitor that forwards a snapshot learns its
    /// length from them).
    pub fn decode(raw: &[u8; HEADER]) -> Result<Self, SnapshotError> {
        let h = RawHeader::decode(raw);
        if h.magic != MAGIC {
            return Err(SnapshotError::BadMagic(h.magic));
        }
        if h.version != VERSION {
            return Err(SnapshotError::Version(h.version));
        }
        if h.flags != 0 {
            return Err(SnapshotError::Flags(h.flags));
        }
        Ok(Self {
            module: h.module,
            body_len: h.body_len,
        })
    }

    /// The header's bytes.
    pub fn encode(&self) -> [u8; HEADER] {
        RawHeader {
            magic: MAGIC,
            version: VERSION,
            flags: 0,
            module: self.module,
            body_len: self.body_len,
        }
        .encode()
    }

    /// Bytes of the whole snapshot, header and trailer included (`None` if
    /// that overflows a `u64`).
    pub fn total_len(&self) -> Option<u64> {
        self.body_len.checked_add((HEADER + TRAILER) as u64)
    }
}

/// Checks a whole snapshot as a monitor does before forwarding it: magic,
/// version, flags, that its length is what the header states (no byte
/// missing, none after the trailer), and the checksum. The sections are
/// not looked into ([`Reader`] does that).
pub fn check(bytes: &[u8]) -> Result<Header, SnapshotError> {
    let mut checker = Checker::new();
    checker.update(bytes);
    checker.finish()
}

/// [`check`] for a snapshot that comes in parts, without holding it: for
/// a monitor that forwards each part as it comes (§19.4). It keeps the
/// header's bytes, the checksum so far and the last [`TRAILER`] bytes
/// (which are not covered until more come).
#[derive(Clone)]
pub struct Checker {
    crc: crc32fast::Hasher,
    head: [u8; HEADER],
    /// The last `min(len, TRAILER)` bytes so far, not yet in `crc`.
    tail: [u8; TRAILER],
    len: u64,
}

impl Default for Checker {
    fn default() -> Self {
        Self::new()
    }
}

impl Checker {
    /// A check of a snapshot none of whose bytes came yet.
    pub fn new() -> Self {
        Self {
            crc: crc32fast::Hasher::new(),
            head: [0; HEADER],
            tail: [0; TRAILER],
            len: 0,
        }
    }

    /// Takes the next bytes of the snapshot.
    pub fn update(&mut self, part: &[u8]) {
        let at = usize::try_from(self.len).unwrap_or(HEADER);
        if let Some(room) = self.head.get_mut(at..) {
            let n = room.len().min(part.len());
            room[..n].copy_from_slice(&part[..n]);
        }
        let held = at.min(TRAILER);
        match part.split_last_chunk::<TRAILER>() {
            Some((covered, last)) => {
                self.crc.update(&self.tail[..held]);
                self.crc.update(covered);
                self.tail = *last;
            }
            None => {
                let mut both = [0u8; 2 * TRAILER];
                both[..held].copy_from_slice(&self.tail[..held]);
                both[held..held + part.len()].copy_from_slice(part);
                let n = held + part.len();
                let keep = n.min(TRAILER);
                self.crc.update(&both[..n - keep]);
                self.tail[..keep].copy_from_slice(&both[n - keep..n]);
            }
        }
        self.len += part.len() as u64;
    }

    /// How many bytes came so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether no byte came yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The snapshot's header, if every byte it states came, no more, and
    /// the checksum holds.
    pub fn finish(self) -> Result<Header, SnapshotError> {
        let seen = usize::try_from(self.len).map_or(HEADER, |n| n.min(HEADER));
        let header = frame(&self.head[..seen], self.len)?;
        let expected = self.crc.finalize();
        let found = u32::from_le_bytes(self.tail);
        if expected != found {
            return Err(SnapshotError::Checksum { expected, found });
        }
        Ok(header)
    }
}

/// What [`check`] checks but the checksum: for a runtime handed a snapshot
/// its monitor checked whole (§19.3), which need not compute it again.
pub fn check_frame(bytes: &[u8]) -> Result<Header, SnapshotError> {
    frame(bytes, bytes.len() as u64)
}

/// The header of a snapshot of `len` bytes that starts with `start` (at
/// least its first [`HEADER`] bytes, or all of them if it is shorter):
/// magic, version and flags, and that `len` is what the header states.
fn frame(start: &[u8], len: u64) -> Result<Header, SnapshotError> {
    let magic = start
        .first_chunk::<4>()
        .ok_or(SnapshotError::Truncated { at: len })?;
    if *magic != MAGIC.to_le_bytes() {
        return Err(SnapshotError::BadMagic(u32::from_le_bytes(*magic)));
    }
    let raw = start
        .first_chunk::<HEADER>()
        .ok_or(SnapshotError::Truncated { at: len })?;
    let header = Header::decode(raw)?;
    let total = header
        .total_len()
        .ok_or(SnapshotError::Truncated { at: len })?;
    if len < total {
        return Err(SnapshotError::Truncated { at: len });
    }
    if len > total {
        return Err(SnapshotError::Trailing { at: total });
    }
    Ok(header)
}

#[cfg(test)]
mod tests;
