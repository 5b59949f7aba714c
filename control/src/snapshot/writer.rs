//! Writing a snapshot as a stream: the header, the sections in order, the
//! trailer, each handed to a sink as it is made.
//!
//! The header states the body's length, so the sections' lengths are known
//! before the first byte goes out: a [`Plan`] measures them from the same
//! input (scanning the memory for its runs, and nothing more), and the
//! writer checks each section against it before writing it.

use super::host::{self, HostRecord};
use super::instance::{self, Global, Segments, Table};
use super::memory;
use super::out::{Out, measure};
use super::{Header, MAX_SECTION, SECTION_HEADER, SectionHead, SectionKind, SnapshotError};

/// The sections a snapshot will have, and each one's length; measured from
/// the input the [`Writer`] will be given.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    memory: Option<u64>,
    globals: Option<u64>,
    tables: Option<u64>,
    segments: Option<u64>,
    host: Option<u64>,
}

impl Plan {
    /// A plan with no section.
    pub const fn new() -> Self {
        Self {
            memory: None,
            globals: None,
            tables: None,
            segments: None,
            host: None,
        }
    }

    /// The memory section for `bytes` (which are scanned for their runs).
    pub fn memory(mut self, bytes: &[u8]) -> Self {
        self.memory = Some(measure(|out| memory::encode(bytes, None, out)));
        self
    }

    /// The globals section (none for no globals).
    pub fn globals(mut self, globals: &[Global]) -> Self {
        self.globals =
            (!globals.is_empty()).then(|| measure(|out| instance::encode_globals(globals, out)));
        self
    }

    /// The tables section (none for no tables).
    pub fn tables(mut self, tables: &[Table<'_>]) -> Self {
        self.tables =
            (!tables.is_empty()).then(|| measure(|out| instance::encode_tables(tables, out)));
        self
    }

    /// The segments section (none for no segments).
    pub fn segments(mut self, segments: &Segments<'_>) -> Self {
        let present = !segments.data.is_empty() || !segments.elements.is_empty();
        self.segments = present.then(|| measure(|out| instance::encode_segments(segments, out)));
        self
    }

    /// The host section.
    pub fn host(mut self, records: &[HostRecord<'_>]) -> Self {
        self.host = Some(measure(|out| host::encode_records(records, out)));
        self
    }

    /// The planned body length of section `kind`, if it is planned.
    pub fn section_len(&self, kind: SectionKind) -> Option<u64> {
        match kind {
            SectionKind::Memory => self.memory,
            SectionKind::Globals => self.globals,
            SectionKind::Tables => self.tables,
            SectionKind::Segments => self.segments,
            SectionKind::Host => self.host,
        }
    }

    /// Bytes of the body: every planned section, with its header.
    pub fn body_len(&self) -> u64 {
        SectionKind::ALL
            .into_iter()
            .filter_map(|k| self.section_len(k))
            .fold(0u64, |sum, len| {
                sum.saturating_add(len)
                    .saturating_add(SECTION_HEADER as u64)
            })
    }
}

/// Where a writer is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Step {
    Start,
    Header,
    Section(SectionKind),
    Finished,
}

impl Step {
    fn name(self) -> &'static str {
        match self {
            Self::Start => "new",
            Self::Header => "header",
            Self::Section(kind) => kind.name(),
            Self::Finished => "finish",
        }
    }
}

/// Writes a snapshot to `sink` as it goes: [`Writer::header`], then the
/// sections in order ([`Writer::memory`], [`Writer::globals`],
/// [`Writer::tables`], [`Writer::segments`], each when planned, and
/// [`Writer::host`]), then [`Writer::finish`].
///
/// The writer holds no bytes: each field goes to the sink as it is made,
/// and each run of memory chunks as one slice of the memory. A call out of
/// order, or whose input breaks a rule of the reader or differs from the
/// plan, fails with nothing written.
pub struct Writer<S: FnMut(&[u8])> {
    sink: S,
    crc: crc32fast::Hasher,
    /// Bytes handed to the sink.
    at: u64,
    plan: Plan,
    step: Step,
}

impl<S: FnMut(&[u8])> Writer<S> {
    /// A writer that hands its bytes to `sink`.
    pub fn new(sink: S) -> Self {
        Self {
            sink,
            crc: crc32fast::Hasher::new(),
            at: 0,
            plan: Plan::new(),
            step: Step::Start,
        }
    }

    /// Hands `bytes` to the sink, through the checksum.
    fn put(&mut self, bytes: &[u8]) {
        self.crc.update(bytes);
        self.at += bytes.len() as u64;
        (self.sink)(bytes);
    }

    /// Checks that `to` may come now.
    fn order(&self, to: Step) -> Result<(), SnapshotError> {
        let ok = match to {
            Step::Start => false,
            Step::Header => self.step == Step::Start,
            _ => Step::Header <= self.step && self.step < to,
        };
        if ok {
            Ok(())
        } else {
            Err(SnapshotError::WriteOrder {
                step: to.name(),
                after: self.step.name(),
            })
        }
    }

    /// Writes the header of a snapshot of the instance of module `module`
    /// (its SHA-256) with the sections `plan` lists (the host section among
    /// them).
    pub fn header(&mut self, module: [u8; 32], plan: &Plan) -> Result<(), SnapshotError> {
        self.order(Step::Header)?;
        if plan.host.is_none() {
            return Err(SnapshotError::MissingSection(SectionKind::Host));
        }
        let header = Header {
            module,
            body_len: plan.body_len(),
        };
        self.plan = *plan;
        self.put(&header.encode());
        self.step = Step::Header;
        Ok(())
    }

    /// Writes section `kind` if `present`: checks the input (`check`, given
    /// the offset), measures it, checks it against the plan, then encodes
    /// it.
    fn section(
        &mut self,
        kind: SectionKind,
        present: bool,
        check: impl FnOnce(u64) -> Result<(), SnapshotError>,
        encode: impl Fn(&mut Out<'_>),
    ) -> Result<(), SnapshotError> {
        self.order(Step::Section(kind))?;
        let len = if present {
            check(self.at)?;
            Some(measure(&encode))
        } else {
            None
        };
        if let Some(len) = len.filter(|l| kind != SectionKind::Memory && *l > MAX_SECTION) {
            return Err(SnapshotError::SectionTooLong { kind, len });
        }
        let planned = self.plan.section_len(kind);
        if planned != len {
            return Err(SnapshotError::Unplanned {
                kind,
                planned,
                actual: len,
            });
        }
        if let Some(len) = len {
            let head = SectionHead {
                kind: kind as u16,
                len,
            };
            self.put(&head.encode());
            encode(&mut |b: &[u8]| self.put(b));
        }
        self.step = Step::Section(kind);
        Ok(())
    }

    /// Writes the linear memory: `bytes` (whole pages) and its maximum in
    /// pages, if it has one. Only its runs of chunks that are not all zero
    /// are written.
    pub fn memory(&mut self, bytes: &[u8], max_pages: Option<u32>) -> Result<(), SnapshotError> {
        self.section(
            SectionKind::Memory,
            true,
            |at| memory::check_input(bytes, max_pages, at),
            |out| memory::encode(bytes, max_pages, out),
        )
    }

    /// Writes the globals, by ascending index (nothing for none).
    pub fn globals(&mut self, globals: &[Global]) -> Result<(), SnapshotError> {
        self.section(
            SectionKind::Globals,
            !globals.is_empty(),
            |at| instance::check_globals(globals, at),
            |out| instance::encode_globals(globals, out),
        )
    }

    /// Writes the tables, by ascending index (nothing for none).
    pub fn tables(&mut self, tables: &[Table<'_>]) -> Result<(), SnapshotError> {
        self.section(
            SectionKind::Tables,
            !tables.is_empty(),
            |at| instance::check_tables(tables, at),
            |out| instance::encode_tables(tables, out),
        )
    }

    /// Writes which segments were dropped (nothing for no segments).
    pub fn segments(&mut self, segments: &Segments<'_>) -> Result<(), SnapshotError> {
        self.section(
            SectionKind::Segments,
            !segments.data.is_empty() || !segments.elements.is_empty(),
            |at| instance::check_segments(segments, at),
            |out| instance::encode_segments(segments, out),
        )
    }

    /// Writes the host records, in the section's order (the pid first).
    pub fn host(&mut self, records: &[HostRecord<'_>]) -> Result<(), SnapshotError> {
        self.section(
            SectionKind::Host,
            true,
            |at| host::check_records(records, at),
            |out| host::encode_records(records, out),
        )
    }

    /// Writes the trailer (the checksum); the snapshot's length.
    pub fn finish(&mut self) -> Result<u64, SnapshotError> {
        self.order(Step::Finished)?;
        let missing = SectionKind::ALL
            .into_iter()
            .find(|k| Step::Section(*k) > self.step && self.plan.section_len(*k).is_some());
        if let Some(kind) = missing {
            return Err(SnapshotError::MissingSection(kind));
        }
        let crc = core::mem::take(&mut self.crc).finalize();
        (self.sink)(&crc.to_le_bytes());
        self.at += crc.to_le_bytes().len() as u64;
        self.step = Step::Finished;
        Ok(self.at)
    }
}
