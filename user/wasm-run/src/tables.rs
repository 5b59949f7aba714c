//! The tables and dropped segments of a moving app (PROTOCOL.md §19.2):
//! read for its snapshot ([`capture`]) and set in the fresh instance a
//! restore makes ([`restore`]).
//!
//! Only a module that changes its tables or drops segments
//! ([`State::changes_tables`]) has them in its snapshot: the others' are
//! always those of a fresh instance. For such a module the load-time
//! instrumentation exports every table (`weft_wasm_instrument::table_export`),
//! every function that can ever be a table element
//! (`weft_wasm_instrument::func_export`: those its element segments, its
//! `ref.func`s and its globals' initial values name), the `i64` globals in
//! which each `data.drop` and `elem.drop` notes the segment it dropped
//! (`weft_wasm_instrument::dropped_export`), and a function replaying a
//! drop (`weft_wasm_instrument::DROP`).
//!
//! Invariants: a table entry is written as the index of the function it
//! holds, found by the function's identity ([`identity`]) among the
//! exported ones; an entry no export names, or a non-null `externref`, is
//! a [`CaptureError`] (the snapshot could not carry it). A restore checks
//! every table record and bit set against the module before it acts on
//! them, refuses what does not fit with a [`RestoreError`] saying what, and
//! never panics on a snapshot.

use crate::app::App;
use crate::engine::FUEL_SLICE;
use crate::host::Host;
use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::{self, Write as _};
use wasmi::{Func, Nullable, Ref, RefType};
use weft_control::snapshot::{BitSet, MAX_TABLE_SIZE, Segments, SegmentsView, Table, TablesView};
use weft_wasm_instrument::{DROP, SegmentKind, State, dropped_export, func_export, table_export};

/// Why the tables or segments of an app cannot be captured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaptureError {
    /// Its table `table` holds, at `entry`, a function that is not one of
    /// those the module exports as possible table elements (one of
    /// another instance).
    Foreign { table: u32, entry: u64 },
    /// Its table `table` holds a non-null `externref` at `entry`.
    Extern { table: u32, entry: u64 },
    /// Its table `table` has more entries than a snapshot carries.
    TooLarge { table: u32, size: u64 },
    /// What the instrumentation exports is not there: table `N`, function
    /// `N`, or a note of dropped segments (a bug).
    Unreachable { what: &'static str, index: u32 },
}

impl fmt::Display for CaptureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Foreign { table, entry } => write!(
                f,
                "its table {table} holds a function the module cannot name at entry {entry}"
            ),
            Self::Extern { table, entry } => write!(
                f,
                "its table {table} holds an external reference at entry {entry}, which cannot move"
            ),
            Self::TooLarge { table, size } => write!(
                f,
                "its table {table} has {size} entries, more than a snapshot carries ({MAX_TABLE_SIZE})"
            ),
            Self::Unreachable { what, index } => {
                write!(f, "its {what} {index} is not reachable through its exports")
            }
        }
    }
}

impl core::error::Error for CaptureError {}

/// Why the tables or segments of a snapshot do not fit the module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RestoreError {
    /// The module changes no table and drops no segment, yet the snapshot
    /// holds tables or segments.
    Unexpected,
    /// The snapshot has `snapshot` table records; the module has `module`
    /// tables.
    TableCount { snapshot: usize, module: u32 },
    /// Its table record of this index is not one of the module's tables.
    NoTable(u32),
    /// Its table `table` has `size` entries, fewer than the fresh
    /// instance's `now`.
    Shrunk { table: u32, size: u64, now: u64 },
    /// Its table `table` has `size` entries, more than the table's maximum
    /// `max` (or than it could grow to).
    Grow {
        table: u32,
        size: u64,
        max: Option<u64>,
    },
    /// Its table `table` names, at `entry`, function `function`, which the
    /// module does not export as a possible table element.
    Function {
        table: u32,
        entry: u64,
        function: u32,
    },
    /// Its table `table` names a function at `entry`, but holds
    /// `externref`s.
    Type { table: u32, entry: u64 },
    /// The snapshot's bit set of `kind` segments has `snapshot` bits; the
    /// module has `module` such segments.
    SegmentCount {
        kind: SegmentKind,
        snapshot: usize,
        module: usize,
    },
    /// Its active (or declarative) segment `index` of `kind` is not
    /// dropped, which no instance can be.
    ActiveKept { kind: SegmentKind, index: usize },
    /// Its segment `index` of `kind` is dropped, but the module cannot
    /// drop it (or the drop failed).
    NotDropped { kind: SegmentKind, index: usize },
    /// What the instrumentation exports is not there (a bug).
    Unreachable { what: &'static str, index: u32 },
}

/// A segment kind's name, for reports.
fn kind_name(kind: SegmentKind) -> &'static str {
    match kind {
        SegmentKind::Data => "data",
        SegmentKind::Element => "element",
    }
}

impl fmt::Display for RestoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unexpected => f.write_str(
                "it holds tables or dropped segments, but its module changes no table and drops no segment",
            ),
            Self::TableCount { snapshot, module } => write!(
                f,
                "it holds {snapshot} tables, but its module has {module}"
            ),
            Self::NoTable(index) => write!(f, "its table {index} is not one of the module's"),
            Self::Shrunk { table, size, now } => write!(
                f,
                "its table {table} has {size} entries, fewer than the module's {now}"
            ),
            Self::Grow {
                table,
                size,
                max: Some(max),
            } => write!(
                f,
                "its table {table} has {size} entries, more than the module's maximum {max}"
            ),
            Self::Grow {
                table,
                size,
                max: None,
            } => write!(f, "its table {table} cannot grow to {size} entries here"),
            Self::Function {
                table,
                entry,
                function,
            } => write!(
                f,
                "its table {table} holds function {function} at entry {entry}, which the module cannot put in a table"
            ),
            Self::Type { table, entry } => write!(
                f,
                "its table {table} holds a function at entry {entry}, but the module's holds external references"
            ),
            Self::SegmentCount {
                kind,
                snapshot,
                module,
            } => write!(
                f,
                "it has {snapshot} {} segments, but its module has {module}",
                kind_name(*kind)
            ),
            Self::ActiveKept { kind, index } => write!(
                f,
                "its active {} segment {index} is not dropped, which no instance can be",
                kind_name(*kind)
            ),
            Self::NotDropped { kind, index } => write!(
                f,
                "its {} segment {index} is dropped, but the module cannot drop it",
                kind_name(*kind)
            ),
            Self::Unreachable { what, index } => {
                write!(f, "its module's {what} {index} is not reachable through its exports")
            }
        }
    }
}

impl core::error::Error for RestoreError {}

/// The tables and dropped segments of an app, as its snapshot holds them.
#[derive(Debug, Default)]
pub struct Captured {
    /// Each table's index and entries (function indices, `None` for null).
    tables: Vec<(u32, Vec<Option<u32>>)>,
    data: Vec<bool>,
    elements: Vec<bool>,
}

impl Captured {
    /// The tables, for the snapshot writer (none for a module that changes
    /// no table).
    pub fn tables(&self) -> Vec<Table<'_>> {
        self.tables
            .iter()
            .map(|(index, entries)| Table {
                index: *index,
                entries,
            })
            .collect()
    }

    /// The dropped segments, for the snapshot writer (none for a module
    /// that changes no table).
    pub fn segments(&self) -> Segments<'_> {
        Segments {
            data: &self.data,
            elements: &self.elements,
        }
    }
}

/// The identity of `func`, as text, written into `buf` (cleared first).
///
/// Why text: wasmi 2's [`Func`] has no public index and no `PartialEq`
/// (wasmi keeps its equality crate-private). Its derived `Debug` output,
/// however, prints the handle's parts: the id of the store that owns it
/// and its key in that store's function arena, e.g. `Func(Stored { store:
/// StoreId(1), value: RawHandle { key: 5, marker: "wasmi::func::Func" }
/// })`. Invariant relied on (wasmi is pinned at 2.0.0 in `Cargo.lock`):
/// two `Func`s of one store print the same text if and only if they are
/// the same function, and printing is deterministic. A table entry and the
/// export of the same function are the same handle (wasmi copies the
/// instance's handle into both), so their texts match. Were a wasmi
/// upgrade to drop the key from `Debug`, distinct functions would look
/// alike: the runtime's table tests, which call every moved slot, would
/// catch it.
fn identity<'b>(func: &Func, buf: &'b mut String) -> &'b str {
    buf.clear();
    // Writing to a `String` cannot fail.
    let _ = write!(buf, "{func:?}");
    buf
}

/// Reads `app`'s tables and dropped segments for its snapshot: nothing for
/// a module that changes no table and drops no segment.
pub fn capture<H: Host>(app: &App<H>) -> Result<Captured, CaptureError> {
    let state: &State = &app.state;
    if !state.changes_tables {
        return Ok(Captured::default());
    }
    let store = &app.store;
    let mut buf = String::new();
    // Each possible table element's identity, to its function index (the
    // lowest, should two exports be one function).
    let mut names = BTreeMap::new();
    for &index in &state.functions {
        let func =
            app.instance
                .get_func(store, &func_export(index))
                .ok_or(CaptureError::Unreachable {
                    what: "function",
                    index,
                })?;
        names
            .entry(String::from(identity(&func, &mut buf)))
            .or_insert(index);
    }
    let mut tables = Vec::new();
    for index in 0..state.tables {
        let table = app.instance.get_table(store, &table_export(index)).ok_or(
            CaptureError::Unreachable {
                what: "table",
                index,
            },
        )?;
        let size = table.size(store);
        if size > u64::from(MAX_TABLE_SIZE) {
            return Err(CaptureError::TooLarge { table: index, size });
        }
        let mut entries = Vec::new();
        for entry in 0..size {
            let value = match table.get(store, entry) {
                None | Some(Ref::Func(Nullable::Null) | Ref::Extern(Nullable::Null)) => None,
                Some(Ref::Func(Nullable::Val(func))) => {
                    let name = identity(&func, &mut buf);
                    let function = names.get(name).ok_or(CaptureError::Foreign {
                        table: index,
                        entry,
                    })?;
                    Some(*function)
                }
                Some(Ref::Extern(Nullable::Val(_))) => {
                    return Err(CaptureError::Extern {
                        table: index,
                        entry,
                    });
                }
            };
            entries.push(value);
        }
        tables.push((index, entries));
    }
    Ok(Captured {
        tables,
        data: dropped(app, SegmentKind::Data, &state.data_passive).map_err(|index| {
            CaptureError::Unreachable {
                what: "note of dropped data segments",
                index,
            }
        })?,
        elements: dropped(app, SegmentKind::Element, &state.elements_passive).map_err(|index| {
            CaptureError::Unreachable {
                what: "note of dropped element segments",
                index,
            }
        })?,
    })
}

/// Which segments of `kind` are dropped in `app`, by index: the active
/// ones (dropped when the instance was made) and the passive ones its
/// notes say. `Err` names a note word that is not reachable.
fn dropped<H: Host>(app: &App<H>, kind: SegmentKind, passive: &[bool]) -> Result<Vec<bool>, u32> {
    let mut words = Vec::new();
    for word in 0..passive.len().div_ceil(64) {
        let word = u32::try_from(word).map_err(|_| u32::MAX)?;
        let bits = app
            .instance
            .get_global(&app.store, &dropped_export(kind, word))
            .and_then(|g| g.get(&app.store).i64())
            .ok_or(word)?;
        words.push(bits as u64);
    }
    Ok(passive
        .iter()
        .enumerate()
        .map(|(i, &passive)| {
            let noted = words.get(i / 64).is_some_and(|w| w >> (i % 64) & 1 != 0);
            !passive || noted
        })
        .collect())
}

/// Sets the tables and drops the segments of `app`, a fresh instance, as
/// the snapshot's `tables` and `segments` say (see the [module](self)
/// docs); checks them all against the module first.
pub fn restore<H: Host>(
    app: &mut App<H>,
    tables: &TablesView<'_>,
    segments: &SegmentsView<'_>,
) -> Result<(), RestoreError> {
    let state = app.state.clone();
    let has_segments = !segments.data.is_empty() || !segments.elements.is_empty();
    if !state.changes_tables {
        if !tables.is_empty() || has_segments {
            return Err(RestoreError::Unexpected);
        }
        return Ok(());
    }
    if tables.len() != state.tables as usize {
        return Err(RestoreError::TableCount {
            snapshot: tables.len(),
            module: state.tables,
        });
    }
    // Indices ascend in a checked view, and there are as many as the
    // module's tables: each must be the next one.
    for (expected, view) in (0..).zip(tables.iter()) {
        if view.index() != expected {
            return Err(RestoreError::NoTable(view.index()));
        }
    }
    for kind in [SegmentKind::Data, SegmentKind::Element] {
        let (bits, passive) = segment_bits(kind, segments, &state);
        if bits.len() != passive.len() {
            return Err(RestoreError::SegmentCount {
                kind,
                snapshot: bits.len(),
                module: passive.len(),
            });
        }
        if let Some(index) =
            (0..bits.len()).find(|&i| !bits.get(i) && passive.get(i) == Some(&false))
        {
            return Err(RestoreError::ActiveKept { kind, index });
        }
    }
    for view in tables.iter() {
        restore_table(app, &state, view.index(), view.size(), view.entries())?;
    }
    restore_segments(app, &state, segments)
}

/// The snapshot's bit set of `kind` segments and the module's passive
/// flags of that kind.
fn segment_bits<'a, 's>(
    kind: SegmentKind,
    segments: &SegmentsView<'a>,
    state: &'s State,
) -> (BitSet<'a>, &'s [bool]) {
    match kind {
        SegmentKind::Data => (segments.data, &state.data_passive),
        SegmentKind::Element => (segments.elements, &state.elements_passive),
    }
}

/// Grows `app`'s table `index` to `size` and sets its entries.
fn restore_table<H: Host>(
    app: &mut App<H>,
    state: &State,
    index: u32,
    size: u32,
    entries: impl Iterator<Item = Option<u32>>,
) -> Result<(), RestoreError> {
    let table = app
        .instance
        .get_table(&app.store, &table_export(index))
        .ok_or(RestoreError::NoTable(index))?;
    let ty = table.ty(&app.store);
    let size = u64::from(size);
    let now = table.size(&app.store);
    let more = size.checked_sub(now).ok_or(RestoreError::Shrunk {
        table: index,
        size,
        now,
    })?;
    let max = ty.maximum();
    if max.is_some_and(|max| size > max) {
        return Err(RestoreError::Grow {
            table: index,
            size,
            max,
        });
    }
    if more > 0 {
        table
            .grow(&mut app.store, more, Ref::null(ty.element()))
            .map_err(|_| RestoreError::Grow {
                table: index,
                size,
                max,
            })?;
    }
    for (entry, function) in (0u64..).zip(entries) {
        let value = match function {
            None => Ref::null(ty.element()),
            Some(_) if ty.element() != RefType::Func => {
                return Err(RestoreError::Type {
                    table: index,
                    entry,
                });
            }
            Some(function) => {
                let misfit = RestoreError::Function {
                    table: index,
                    entry,
                    function,
                };
                if state.functions.binary_search(&function).is_err() {
                    return Err(misfit);
                }
                let func = app
                    .instance
                    .get_func(&app.store, &func_export(function))
                    .ok_or(misfit)?;
                Ref::Func(Nullable::Val(func))
            }
        };
        table
            .set(&mut app.store, entry, value)
            .map_err(|_| RestoreError::Grow {
                table: index,
                size,
                max,
            })?;
    }
    Ok(())
}

/// Drops in `app` each passive segment the snapshot says was dropped (with
/// the module's own [`DROP`], which notes it too), then checks that the
/// instance's notes say what the snapshot says.
fn restore_segments<H: Host>(
    app: &mut App<H>,
    state: &State,
    segments: &SegmentsView<'_>,
) -> Result<(), RestoreError> {
    let drop = app
        .instance
        .get_typed_func::<(i32, i32), ()>(&app.store, DROP)
        .map_err(|_| RestoreError::Unreachable {
            what: "function",
            index: u32::MAX,
        })?;
    for kind in [SegmentKind::Data, SegmentKind::Element] {
        let (bits, passive) = segment_bits(kind, segments, state);
        for index in (0..bits.len()).filter(|&i| bits.get(i) && passive.get(i) == Some(&true)) {
            let failed = RestoreError::NotDropped { kind, index };
            let at = i32::try_from(index).map_err(|_| failed.clone())?;
            // Fails only without fuel metering, which the engine always has.
            let _ = app.store.set_fuel(FUEL_SLICE);
            drop.call(&mut app.store, (kind as i32, at))
                .map_err(|_| failed)?;
        }
        let noted = dropped(app, kind, passive).map_err(|index| RestoreError::Unreachable {
            what: "note of dropped segments",
            index,
        })?;
        if let Some(index) = (0..bits.len()).find(|&i| noted.get(i) != Some(&bits.get(i))) {
            return Err(RestoreError::NotDropped { kind, index });
        }
    }
    Ok(())
}
