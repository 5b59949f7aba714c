//! Why a snapshot was refused, or could not be written.

use super::{SectionKind, VERSION};
use core::fmt;

/// Why a snapshot was refused (reading), or could not be written (the
/// [`Writer`](super::Writer)'s input breaks a rule the reader checks, or its
/// methods were called out of order).
///
/// Offsets (`at`) count from the start of the snapshot; for the
/// [`HostRecord`](super::HostRecord) helpers used alone, from the start of
/// the record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SnapshotError {
    /// The first four bytes are not [`MAGIC`](super::MAGIC): not a snapshot.
    BadMagic(u32),
    /// The snapshot states a format version this reader does not speak.
    Version(u16),
    /// The header's flags are not 0.
    Flags(u16),
    /// The snapshot ends at offset `at`, before the length its header
    /// states (or before the end of the header).
    Truncated { at: u64 },
    /// Bytes follow the end: the snapshot's trailer, or a section's or a
    /// record's last field, ends at `at`.
    Trailing { at: u64 },
    /// The CRC-32 of the bytes (`expected`) is not the trailer's (`found`).
    Checksum { expected: u32, found: u32 },
    /// `what`, at offset `at`, runs past the end of its section (or of the
    /// body).
    Overrun { what: &'static str, at: u64 },
    /// Reserved bytes of `what`, at offset `at`, are not zero.
    Reserved { what: &'static str, at: u64 },
    /// A section of a kind this version does not know.
    UnknownSection { kind: u16, at: u64 },
    /// A section of `kind` comes after one of `after` (out of order, or
    /// repeated).
    SectionOrder {
        kind: SectionKind,
        after: SectionKind,
    },
    /// A section that must be there is not.
    MissingSection(SectionKind),
    /// A section's body is longer than its limit
    /// ([`MAX_SECTION`](super::MAX_SECTION)).
    SectionTooLong { kind: SectionKind, len: u64 },
    /// `what` holds `value`, outside its range.
    OutOfRange {
        what: &'static str,
        value: u64,
        at: u64,
    },
    /// `what` (an index, a descriptor number) holds `value`, not above the
    /// one before it: indices ascend, each once.
    NotAscending {
        what: &'static str,
        value: u64,
        at: u64,
    },
    /// A run of `count` chunks from chunk `first` goes past the memory's
    /// end (`chunks` chunks).
    ChunkPastEnd { first: u32, count: u32, chunks: u32 },
    /// A run starting at chunk `first` overlaps the run before it, or comes
    /// before it: that one ends at chunk `previous_end`.
    ChunkOrder { first: u32, previous_end: u32 },
    /// A global's type byte is not a Wasm number type.
    GlobalType { ty: u8, at: u64 },
    /// Bits past the count of a bit set of `what` are set.
    StrayBits { what: &'static str, at: u64 },
    /// A host record of a kind this version does not know.
    UnknownHostRecord { kind: u16, at: u64 },
    /// A host record of `kind` comes after one of `after` (out of order, or
    /// a record that comes once repeated).
    HostRecordOrder { kind: u16, after: u16, at: u64 },
    /// The host section has no record of `kind`, which must be there.
    MissingHostRecord(u16),
    /// A descriptor record of a kind this version does not know.
    UnknownDescriptor { kind: u16, at: u64 },
    /// `what` is not UTF-8.
    NotUtf8 { what: &'static str, at: u64 },
    /// A service's GUID is the nil UUID.
    NilGuid { at: u64 },
    /// [`restore_memory`](super::restore_memory)'s destination is not the
    /// memory's size.
    DestinationSize { expected: u64, found: u64 },
    /// The writer was asked for `step` after `after` (a step out of
    /// order, or repeated).
    WriteOrder {
        step: &'static str,
        after: &'static str,
    },
    /// The writer's `kind` section is `actual` bytes, its plan said
    /// `planned` (`None`: no such section).
    Unplanned {
        kind: SectionKind,
        planned: Option<u64>,
        actual: Option<u64>,
    },
}

impl fmt::Display for SnapshotError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::BadMagic(m) => write!(f, "not a snapshot: its magic is {m:#010x}"),
            Self::Version(v) => write!(
                f,
                "snapshot version {v} is not supported (this reader speaks {VERSION})"
            ),
            Self::Flags(v) => write!(f, "snapshot flags {v:#x} are not 0"),
            Self::Truncated { at } => write!(f, "snapshot truncated at offset {at}"),
            Self::Trailing { at } => write!(f, "snapshot has bytes after its end at offset {at}"),
            Self::Checksum { expected, found } => write!(
                f,
                "snapshot checksum mismatch: the bytes give {expected:#010x}, the trailer says {found:#010x}"
            ),
            Self::Overrun { what, at } => {
                write!(f, "snapshot {what} at offset {at} runs past its section")
            }
            Self::Reserved { what, at } => {
                write!(f, "snapshot {what} at offset {at} has reserved bytes not 0")
            }
            Self::UnknownSection { kind, at } => {
                write!(f, "snapshot section kind {kind} at offset {at} is unknown")
            }
            Self::SectionOrder { kind, after } => write!(
                f,
                "snapshot section {kind} is out of order: it comes after section {after}"
            ),
            Self::MissingSection(kind) => write!(f, "snapshot has no {kind} section"),
            Self::SectionTooLong { kind, len } => {
                write!(f, "snapshot {kind} section of {len} bytes is too long")
            }
            Self::OutOfRange { what, value, at } => {
                write!(f, "snapshot {what} {value} at offset {at} is out of range")
            }
            Self::NotAscending { what, value, at } => write!(
                f,
                "snapshot {what} {value} at offset {at} is not above the one before"
            ),
            Self::ChunkPastEnd {
                first,
                count,
                chunks,
            } => write!(
                f,
                "snapshot memory run of {count} chunks from chunk {first} goes past the memory's {chunks} chunks"
            ),
            Self::ChunkOrder {
                first,
                previous_end,
            } => write!(
                f,
                "snapshot memory run at chunk {first} overlaps or precedes the run before it, which ends at chunk {previous_end}"
            ),
            Self::GlobalType { ty, at } => {
                write!(
                    f,
                    "snapshot global type {ty:#04x} at offset {at} is unknown"
                )
            }
            Self::StrayBits { what, at } => write!(
                f,
                "snapshot bit set of {what} at offset {at} has bits set past its count"
            ),
            Self::UnknownHostRecord { kind, at } => {
                write!(
                    f,
                    "snapshot host record kind {kind} at offset {at} is unknown"
                )
            }
            Self::HostRecordOrder { kind, after, at } => write!(
                f,
                "snapshot host record kind {kind} at offset {at} comes after kind {after}: out of order or repeated"
            ),
            Self::MissingHostRecord(kind) => {
                write!(f, "snapshot has no host record of kind {kind}")
            }
            Self::UnknownDescriptor { kind, at } => {
                write!(
                    f,
                    "snapshot descriptor kind {kind} at offset {at} is unknown"
                )
            }
            Self::NotUtf8 { what, at } => {
                write!(f, "snapshot {what} at offset {at} is not UTF-8")
            }
            Self::NilGuid { at } => write!(f, "snapshot service GUID at offset {at} is nil"),
            Self::DestinationSize { expected, found } => write!(
                f,
                "memory of {found} bytes cannot take a snapshot's memory of {expected} bytes"
            ),
            Self::WriteOrder { step, after } => {
                write!(f, "snapshot writer: `{step}` cannot come after `{after}`")
            }
            Self::Unplanned {
                kind,
                planned,
                actual,
            } => write!(
                f,
                "snapshot writer: the {kind} section is {}, its plan said {}",
                Bytes(actual),
                Bytes(planned)
            ),
        }
    }
}

impl core::error::Error for SnapshotError {}

/// A section's planned or actual length, as [`SnapshotError::Unplanned`]
/// prints it.
struct Bytes(Option<u64>);

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(n) => write!(f, "{n} bytes"),
            None => f.write_str("absent"),
        }
    }
}
