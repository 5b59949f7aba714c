//! The instance's state besides its memory: the globals' values, the
//! tables' entries, and which segments were dropped.
//!
//! Each section is a count and its entries, indices ascending. A section
//! with nothing in it is left out (the writer leaves it out), so an empty
//! one is refused.

use super::cursor::Cursor;
use super::out::Out;
use super::{MAX_GLOBALS, MAX_SEGMENTS, MAX_TABLE_SIZE, MAX_TABLES, SnapshotError};

/// A Wasm number type, by its binary encoding's byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ValType {
    /// `i32`.
    I32 = 0x7F,
    /// `i64`.
    I64 = 0x7E,
    /// `f32`.
    F32 = 0x7D,
    /// `f64`.
    F64 = 0x7C,
}

impl ValType {
    /// Every type.
    pub const ALL: [ValType; 4] = [Self::I32, Self::I64, Self::F32, Self::F64];

    /// The type whose byte is `b`, if any.
    pub fn from_u8(b: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|t| *t as u8 == b)
    }

    /// Whether its values are 32 bits wide (their `bits` above 32 are 0).
    pub const fn is_32_bit(self) -> bool {
        matches!(self, Self::I32 | Self::F32)
    }
}

/// A global's value: integers as their two's-complement bits, floats as
/// their IEEE 754 bits (so NaN payloads survive), a 32-bit value in the low
/// half.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Global {
    /// Its index in the instance's global index space.
    pub index: u32,
    /// Its type.
    pub ty: ValType,
    /// Its value's bits.
    pub bits: u64,
}

crate::wire_layout! {
    /// A global's entry (§19.1): bytes 5..8 are reserved.
    #[derive(Clone, Copy, Debug)]
    struct GlobalEntry: 16, strict {
        [0] index: u32,
        [4] ty: u8,
        [8] bits: u64,
    }
}
const _: () = assert!(GlobalEntry::SIZE == 16);

/// One table's entries, by index: a function index, or `None` for null.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Table<'a> {
    /// Its index in the instance's table index space.
    pub index: u32,
    /// Its entries, in order.
    pub entries: &'a [Option<u32>],
}

/// The encoding of a null table entry (so no function has this index).
const NULL: u32 = u32::MAX;

/// Which segments were dropped (`true`: dropped), by index.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Segments<'a> {
    /// Data segments.
    pub data: &'a [bool],
    /// Element segments.
    pub elements: &'a [bool],
}

/// Checks a section's count: 1 to `max` (0 is left out).
fn check_count(what: &'static str, count: u64, max: u32, at: u64) -> Result<(), SnapshotError> {
    if count == 0 || count > u64::from(max) {
        return Err(SnapshotError::OutOfRange {
            what,
            value: count,
            at,
        });
    }
    Ok(())
}

/// Checks that `index` is above `previous`.
fn check_ascending(
    what: &'static str,
    index: u32,
    previous: Option<u32>,
    at: u64,
) -> Result<(), SnapshotError> {
    match previous {
        Some(p) if index <= p => Err(SnapshotError::NotAscending {
            what,
            value: index.into(),
            at,
        }),
        _ => Ok(()),
    }
}

/// Checks a global (the one before it had index `previous`).
fn check_global(g: &Global, previous: Option<u32>, at: u64) -> Result<(), SnapshotError> {
    check_ascending("global index", g.index, previous, at)?;
    if g.ty.is_32_bit() && g.bits >> 32 != 0 {
        return Err(SnapshotError::OutOfRange {
            what: "32-bit global's bits",
            value: g.bits,
            at,
        });
    }
    Ok(())
}

/// Checks the writer's globals (not empty).
pub(super) fn check_globals(globals: &[Global], at: u64) -> Result<(), SnapshotError> {
    check_count("globals count", globals.len() as u64, MAX_GLOBALS, at)?;
    let mut previous = None;
    for g in globals {
        check_global(g, previous, at)?;
        previous = Some(g.index);
    }
    Ok(())
}

/// Puts out the globals section's body.
pub(super) fn encode_globals(globals: &[Global], out: &mut Out<'_>) {
    out(&(globals.len() as u32).to_le_bytes());
    for g in globals {
        let entry = GlobalEntry {
            index: g.index,
            ty: g.ty as u8,
            bits: g.bits,
        };
        out(&entry.encode());
    }
}

/// Reads a global's entry (not checked against the one before).
fn next_global(c: &mut Cursor<'_>) -> Result<Global, SnapshotError> {
    let at = c.at();
    let raw = GlobalEntry::decode(c.array("global")?)
        .ok_or(SnapshotError::Reserved { what: "global", at })?;
    Ok(Global {
        index: raw.index,
        ty: ValType::from_u8(raw.ty).ok_or(SnapshotError::GlobalType {
            ty: raw.ty,
            at: at + 4,
        })?,
        bits: raw.bits,
    })
}

/// A checked globals section (empty when the snapshot has none).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GlobalsView<'a> {
    count: u32,
    entries: Cursor<'a>,
}

impl<'a> GlobalsView<'a> {
    /// Checks a globals section's body.
    pub(super) fn parse(mut body: Cursor<'a>) -> Result<Self, SnapshotError> {
        let at = body.at();
        let count = body.u32("globals count")?;
        check_count("globals count", count.into(), MAX_GLOBALS, at)?;
        let view = Self {
            count,
            entries: body,
        };
        let mut previous = None;
        for _ in 0..count {
            let at = body.at();
            let g = next_global(&mut body)?;
            check_global(&g, previous, at)?;
            previous = Some(g.index);
        }
        body.finish()?;
        Ok(view)
    }

    /// How many globals there are.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The globals, by ascending index.
    pub fn iter(&self) -> impl Iterator<Item = Global> + 'a {
        let mut c = self.entries;
        (0..self.count).map_while(move |_| next_global(&mut c).ok())
    }
}

/// Checks the writer's tables (not empty).
pub(super) fn check_tables(tables: &[Table<'_>], at: u64) -> Result<(), SnapshotError> {
    check_count("tables count", tables.len() as u64, MAX_TABLES, at)?;
    let mut previous = None;
    for t in tables {
        check_ascending("table index", t.index, previous, at)?;
        previous = Some(t.index);
        let size = t.entries.len() as u64;
        if size > u64::from(MAX_TABLE_SIZE) {
            return Err(SnapshotError::OutOfRange {
                what: "table size",
                value: size,
                at,
            });
        }
        if t.entries.contains(&Some(NULL)) {
            return Err(SnapshotError::OutOfRange {
                what: "table entry's function index",
                value: NULL.into(),
                at,
            });
        }
    }
    Ok(())
}

/// Puts out the tables section's body.
pub(super) fn encode_tables(tables: &[Table<'_>], out: &mut Out<'_>) {
    out(&(tables.len() as u32).to_le_bytes());
    for t in tables {
        out(&t.index.to_le_bytes());
        out(&(t.entries.len() as u32).to_le_bytes());
        for e in t.entries {
            out(&e.unwrap_or(NULL).to_le_bytes());
        }
    }
}

/// One table of a checked tables section.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TableView<'a> {
    index: u32,
    /// Its entries' bytes, 4 each.
    entries: &'a [u8],
}

impl<'a> TableView<'a> {
    /// Its index in the instance's table index space.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// How many entries it has.
    pub fn size(&self) -> u32 {
        (self.entries.len() / 4) as u32
    }

    /// Its entries, in order: a function index, or `None` for null.
    pub fn entries(&self) -> impl Iterator<Item = Option<u32>> + 'a {
        self.entries.chunks_exact(4).map(|raw| {
            let mut word = [0; 4];
            word.copy_from_slice(raw);
            Some(u32::from_le_bytes(word)).filter(|f| *f != NULL)
        })
    }
}

/// Reads a table (not checked against the one before).
fn next_table<'a>(c: &mut Cursor<'a>) -> Result<TableView<'a>, SnapshotError> {
    let index = c.u32("table index")?;
    let at = c.at();
    let size = c.u32("table size")?;
    if size > MAX_TABLE_SIZE {
        return Err(SnapshotError::OutOfRange {
            what: "table size",
            value: size.into(),
            at,
        });
    }
    let entries = c.take(u64::from(size) * 4, "table entries")?;
    Ok(TableView { index, entries })
}

/// A checked tables section (empty when the snapshot has none).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TablesView<'a> {
    count: u32,
    tables: Cursor<'a>,
}

impl<'a> TablesView<'a> {
    /// Checks a tables section's body.
    pub(super) fn parse(mut body: Cursor<'a>) -> Result<Self, SnapshotError> {
        let at = body.at();
        let count = body.u32("tables count")?;
        check_count("tables count", count.into(), MAX_TABLES, at)?;
        let view = Self {
            count,
            tables: body,
        };
        let mut previous = None;
        for _ in 0..count {
            let at = body.at();
            let t = next_table(&mut body)?;
            check_ascending("table index", t.index, previous, at)?;
            previous = Some(t.index);
        }
        body.finish()?;
        Ok(view)
    }

    /// How many tables there are.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The tables, by ascending index.
    pub fn iter(&self) -> impl Iterator<Item = TableView<'a>> + 'a {
        let mut c = self.tables;
        (0..self.count).map_while(move |_| next_table(&mut c).ok())
    }
}

/// Bytes of a bit set of `count` bits.
fn bit_bytes(count: u64) -> u64 {
    count.div_ceil(8)
}

/// Checks the writer's segments (not both empty).
pub(super) fn check_segments(s: &Segments<'_>, at: u64) -> Result<(), SnapshotError> {
    let (data, elements) = (s.data.len() as u64, s.elements.len() as u64);
    check_count("segments count", data + elements, u32::MAX, at)?;
    for (what, count) in [("data segments", data), ("element segments", elements)] {
        if count > u64::from(MAX_SEGMENTS) {
            return Err(SnapshotError::OutOfRange {
                what,
                value: count,
                at,
            });
        }
    }
    Ok(())
}

/// Puts out a count and its bit set (bit `i % 8` of byte `i / 8` is entry
/// `i`).
fn encode_bits(bits: &[bool], out: &mut Out<'_>) {
    out(&(bits.len() as u32).to_le_bytes());
    for group in bits.chunks(64 * 8) {
        let mut staged = [0u8; 64];
        for (i, dropped) in group.iter().enumerate() {
            if let Some(byte) = staged.get_mut(i / 8) {
                *byte |= u8::from(*dropped) << (i % 8);
            }
        }
        out(staged.get(..group.len().div_ceil(8)).unwrap_or_default());
    }
}

/// Puts out the segments section's body.
pub(super) fn encode_segments(s: &Segments<'_>, out: &mut Out<'_>) {
    encode_bits(s.data, out);
    encode_bits(s.elements, out);
}

/// A checked bit set: `len` bits, the last byte's unused bits zero.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BitSet<'a> {
    len: u32,
    bytes: &'a [u8],
}

impl<'a> BitSet<'a> {
    /// Reads a count and its bit set.
    fn parse(c: &mut Cursor<'a>, what: &'static str) -> Result<Self, SnapshotError> {
        let at = c.at();
        let len = c.u32(what)?;
        if len > MAX_SEGMENTS {
            return Err(SnapshotError::OutOfRange {
                what,
                value: len.into(),
                at,
            });
        }
        let at = c.at();
        let bytes = c.take(bit_bytes(len.into()), what)?;
        let used = len % 8;
        if let Some(last) = bytes.last()
            && used != 0
            && last >> used != 0
        {
            return Err(SnapshotError::StrayBits { what, at });
        }
        Ok(Self { len, bytes })
    }

    /// How many bits it has.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// Whether it has none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bit `i` (`false` past the end).
    pub fn get(&self, i: usize) -> bool {
        self.bytes.get(i / 8).is_some_and(|b| b >> (i % 8) & 1 != 0)
    }

    /// The bits, in order.
    pub fn iter(&self) -> impl Iterator<Item = bool> + 'a {
        let set = *self;
        (0..self.len()).map(move |i| set.get(i))
    }
}

/// A checked segments section (empty when the snapshot has none).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SegmentsView<'a> {
    /// Which data segments were dropped.
    pub data: BitSet<'a>,
    /// Which element segments were dropped.
    pub elements: BitSet<'a>,
}

impl<'a> SegmentsView<'a> {
    /// Checks a segments section's body.
    pub(super) fn parse(mut body: Cursor<'a>) -> Result<Self, SnapshotError> {
        let at = body.at();
        let data = BitSet::parse(&mut body, "data segments")?;
        let elements = BitSet::parse(&mut body, "element segments")?;
        body.finish()?;
        let count = u64::from(data.len) + u64::from(elements.len);
        check_count("segments count", count, u32::MAX, at)?;
        Ok(Self { data, elements })
    }
}
