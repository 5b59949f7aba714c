//! Reading a snapshot: after [`check`], its sections in order, each
//! checked whole before it is yielded.

use super::cursor::Cursor;
use super::{
    GlobalsView, HEADER, Header, HostView, MAX_SECTION, MemoryView, SectionHead, SectionKind,
    SegmentsView, SnapshotError, TablesView, check,
};

/// A checked section.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Section<'a> {
    /// [`SectionKind::Memory`].
    Memory(MemoryView<'a>),
    /// [`SectionKind::Globals`].
    Globals(GlobalsView<'a>),
    /// [`SectionKind::Tables`].
    Tables(TablesView<'a>),
    /// [`SectionKind::Segments`].
    Segments(SegmentsView<'a>),
    /// [`SectionKind::Host`].
    Host(HostView<'a>),
}

impl Section<'_> {
    /// Its kind.
    pub fn kind(&self) -> SectionKind {
        match self {
            Self::Memory(_) => SectionKind::Memory,
            Self::Globals(_) => SectionKind::Globals,
            Self::Tables(_) => SectionKind::Tables,
            Self::Segments(_) => SectionKind::Segments,
            Self::Host(_) => SectionKind::Host,
        }
    }
}

/// Checks a section's body of `kind`.
fn parse(kind: SectionKind, body: Cursor<'_>) -> Result<Section<'_>, SnapshotError> {
    Ok(match kind {
        SectionKind::Memory => Section::Memory(MemoryView::parse(body)?),
        SectionKind::Globals => Section::Globals(GlobalsView::parse(body)?),
        SectionKind::Tables => Section::Tables(TablesView::parse(body)?),
        SectionKind::Segments => Section::Segments(SegmentsView::parse(body)?),
        SectionKind::Host => Section::Host(HostView::parse(body)?),
    })
}

/// Reads a checked snapshot's sections in order: an iterator of sections,
/// each checked whole, that stops after the first error.
#[derive(Clone, Debug)]
pub struct Reader<'a> {
    header: Header,
    body: Cursor<'a>,
    last: Option<SectionKind>,
    done: bool,
}

impl<'a> Reader<'a> {
    /// [`check`]s `bytes` and starts reading their sections.
    pub fn new(bytes: &'a [u8]) -> Result<Self, SnapshotError> {
        check(bytes)?;
        Self::framed(bytes)
    }

    /// Starts reading the sections of `bytes`, whose checksum was checked
    /// already ([`super::check_frame`]: the rest is checked here).
    pub fn framed(bytes: &'a [u8]) -> Result<Self, SnapshotError> {
        let header = super::check_frame(bytes)?;
        let end = bytes.len().saturating_sub(super::TRAILER);
        let body = bytes
            .get(HEADER..end)
            .ok_or(SnapshotError::Truncated { at: HEADER as u64 })?;
        Ok(Self {
            header,
            body: Cursor::new(body, HEADER as u64),
            last: None,
            done: false,
        })
    }

    /// The snapshot's header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The next section; `None` at the end of a whole snapshot.
    fn section(&mut self) -> Result<Option<Section<'a>>, SnapshotError> {
        if self.body.is_empty() {
            return match self.last {
                Some(SectionKind::Host) => Ok(None),
                _ => Err(SnapshotError::MissingSection(SectionKind::Host)),
            };
        }
        let at = self.body.at();
        let head = SectionHead::decode(self.body.array("section header")?).ok_or(
            SnapshotError::Reserved {
                what: "section header",
                at,
            },
        )?;
        let kind = SectionKind::from_u16(head.kind).ok_or(SnapshotError::UnknownSection {
            kind: head.kind,
            at,
        })?;
        if let Some(after) = self.last.filter(|l| kind <= *l) {
            return Err(SnapshotError::SectionOrder { kind, after });
        }
        if kind != SectionKind::Memory && head.len > MAX_SECTION {
            return Err(SnapshotError::SectionTooLong {
                kind,
                len: head.len,
            });
        }
        let body = self.body.split(head.len, "section body")?;
        self.last = Some(kind);
        parse(kind, body).map(Some)
    }
}

impl<'a> Iterator for Reader<'a> {
    type Item = Result<Section<'a>, SnapshotError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let next = self.section();
        self.done = !matches!(next, Ok(Some(_)));
        next.transpose()
    }
}

/// A whole snapshot, checked: its header and every section (a section the
/// snapshot leaves out is empty here; a module without memory has none).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Contents<'a> {
    /// The checked header.
    pub header: Header,
    /// The linear memory, if the module has one.
    pub memory: Option<MemoryView<'a>>,
    /// The globals.
    pub globals: GlobalsView<'a>,
    /// The tables.
    pub tables: TablesView<'a>,
    /// Which segments were dropped.
    pub segments: SegmentsView<'a>,
    /// The host records.
    pub host: HostView<'a>,
}

/// Checks a whole snapshot, every section of it.
pub fn read(bytes: &[u8]) -> Result<Contents<'_>, SnapshotError> {
    check(bytes)?;
    read_summed(bytes)
}

/// Checks every section of a snapshot whose checksum was checked already
/// (by the monitor that hands it to a runtime, §19.3); everything but the
/// checksum is checked as [`read`] does.
pub fn read_summed(bytes: &[u8]) -> Result<Contents<'_>, SnapshotError> {
    let mut reader = Reader::framed(bytes)?;
    let mut out = Contents {
        header: *reader.header(),
        memory: None,
        globals: GlobalsView::default(),
        tables: TablesView::default(),
        segments: SegmentsView::default(),
        host: HostView::default(),
    };
    for section in reader.by_ref() {
        match section? {
            Section::Memory(m) => out.memory = Some(m),
            Section::Globals(g) => out.globals = g,
            Section::Tables(t) => out.tables = t,
            Section::Segments(s) => out.segments = s,
            Section::Host(h) => out.host = h,
        }
    }
    Ok(out)
}
