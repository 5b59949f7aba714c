//! The walk over a module's sections: copy most byte for byte, rewrite the
//! global, export and code sections, and add the global and export
//! sections where they are missing.

use alloc::vec::Vec;
use core::ops::Range;

use wasmparser::{
    ConstExpr, DataKind, DataSectionReader, ElementItems, ElementKind, ElementSectionReader,
    Encoding, ExportSectionReader, ExternalKind, FunctionSectionReader, GlobalSectionReader,
    Operator, Parser, Payload, TypeRef, TypeSectionReader,
};

use crate::code::{Code, DropNotes, bytes};
use crate::encode::{self, len_leb, u32_leb};
use crate::names::FunctionNames;
use crate::{
    CURRENT_FUNCTION, DROP, Error, Instrumented, RESERVED_PREFIX, SegmentKind, State,
    dropped_export, func_export, global_export, table_export,
};

/// Section ids this walk writes.
const CUSTOM: u8 = 0;
const TYPE: u8 = 1;
const FUNCTION: u8 = 3;
const GLOBAL: u8 = 6;
const EXPORT: u8 = 7;
const CODE: u8 = 10;

/// [`rank`] of the type, function, data count and code sections.
const TYPE_RANK: u8 = 1;
const FUNCTION_RANK: u8 = 3;
const CODE_RANK: u8 = 12;

/// The type of the added [`DROP`] function: `(func (param i32 i32))`.
const DROP_TYPE: [u8; 5] = [0x60, 0x02, 0x7F, 0x7F, 0x00];

/// An added note global: type `i64` (0x7E), mutable, `i64.const 0`.
const NOTE_GLOBAL: [u8; 5] = [0x7E, 0x01, 0x42, 0x00, 0x0B];

/// Export kinds.
const FUNC_EXPORT_KIND: u8 = 0x00;
const TABLE_EXPORT_KIND: u8 = 0x01;

/// What the first walk learned of a module that changes its tables, for
/// the second, which exports its tables and functions, notes its drops
/// and adds [`DROP`] (all decided before the code, where the first walk
/// learns that the module changes its tables).
#[derive(Debug, Default)]
struct Layout {
    /// Functions that can be table elements, increasing, each once.
    functions: Vec<u32>,
    data_passive: Vec<bool>,
    elements_passive: Vec<bool>,
    /// Whether the module has a data count section (without one, no
    /// code can drop a data segment, nor can [`DROP`]).
    data_count: bool,
}

impl Layout {
    /// Note globals for `count` segments: one per 64.
    fn words(count: usize) -> Result<u32, Error> {
        u32::try_from(count.div_ceil(64)).map_err(|_| Error::TooLarge)
    }
}

/// [`rank`] of the global and export sections.
const GLOBAL_RANK: u8 = 7;
const EXPORT_RANK: u8 = 8;

/// Where a non-custom section must come, lowest first; `None` for an id the
/// format does not define. The tag section (13, exception handling) comes
/// between memory and global, and data count (12) between element and
/// code, so ids alone do not give the order.
fn rank(id: u8) -> Option<u8> {
    Some(match id {
        1..=5 => id,     // type, import, function, table, memory
        13 => 6,         // tag
        6..=9 => id + 1, // global, export, start, element
        12 => 11,        // data count
        10 => 12,        // code
        11 => 13,        // data
        _ => return None,
    })
}

/// The added global's entry: type `i32` (0x7F), mutable (0x01), initial
/// value `i32.const -1` (0x41 0x7F, end 0x0B). -1 is
/// [`NOT_STARTED`](crate::NOT_STARTED).
const ADDED_GLOBAL: [u8; 5] = [0x7F, 0x01, 0x41, 0x7F, 0x0B];

/// The export of the added global: kind global (0x03), then its index.
const GLOBAL_EXPORT_KIND: u8 = 0x03;

/// What the walk has learned of the module so far, and the output.
struct Walk<'m> {
    module: &'m [u8],
    out: Vec<u8>,
    /// Rank of the last non-custom section.
    last_rank: u8,
    imported_functions: u32,
    imported_globals: u32,
    /// Functions the function section declares (bodies expected).
    declared_functions: u32,
    /// Globals the global section defines.
    defined_globals: u32,
    /// The indices of the mutable ones among them.
    mutable_globals: Vec<u32>,
    /// Whether there is a start section.
    start: bool,
    global_written: bool,
    export_written: bool,
    /// Set at the code section's start, for its bodies.
    code: Option<Code<'m>>,
    /// Where the output code section's content starts while it is being
    /// written (its size goes there once the last body is in).
    open_code: Option<usize>,
    /// Bodies rewritten so far.
    bodies: u32,
    names: FunctionNames,
    /// Tables imported and defined.
    tables: u32,
    /// Types the type section defines (counted on the second walk only).
    types: u32,
    /// Functions element segments and global initial values name.
    refs: Vec<u32>,
    data_passive: Vec<bool>,
    elements_passive: Vec<bool>,
    data_count: bool,
    /// On the second walk of a module that changes its tables: what the
    /// first learned.
    layout: Option<&'m Layout>,
    type_written: bool,
    function_written: bool,
    code_written: bool,
}

/// Instruments `module` (see the crate docs). A module that changes its
/// tables is walked twice: the first walk learns it (in the code, after
/// the sections the added exports and globals go in), the second writes
/// them. Other modules are walked once.
pub(crate) fn instrument(module: &[u8]) -> Result<Instrumented, Error> {
    let first = walk(module, None)?;
    if !first.changes_tables() {
        return first.finish();
    }
    let mut functions = first.refs.clone();
    if let Some(code) = &first.code {
        functions.extend_from_slice(&code.refs);
    }
    functions.sort_unstable();
    functions.dedup();
    let layout = Layout {
        functions,
        data_passive: first.data_passive,
        elements_passive: first.elements_passive,
        data_count: first.data_count,
    };
    walk(module, Some(&layout))?.finish()
}

/// One walk over `module`, with the layout of the second walk if it is
/// that.
fn walk<'m>(module: &'m [u8], layout: Option<&'m Layout>) -> Result<Walk<'m>, Error> {
    let mut walk = Walk {
        module,
        // Call sites grow by a few bytes each; a tenth more is ample for
        // typical code and saves most reallocations.
        out: Vec::with_capacity(module.len() + module.len() / 10 + 64),
        last_rank: 0,
        imported_functions: 0,
        imported_globals: 0,
        declared_functions: 0,
        defined_globals: 0,
        mutable_globals: Vec::new(),
        start: false,
        global_written: false,
        export_written: false,
        code: None,
        open_code: None,
        bodies: 0,
        names: FunctionNames::default(),
        tables: 0,
        types: 0,
        refs: Vec::new(),
        data_passive: Vec::new(),
        elements_passive: Vec::new(),
        data_count: false,
        layout,
        type_written: false,
        function_written: false,
        code_written: false,
    };
    // The end of the last section handled: the next one's header starts
    // here.
    let mut cursor = 0;
    for payload in Parser::new(0).parse_all(module) {
        let payload = payload?;
        if let Payload::CodeSectionEntry(body) = &payload {
            // The parser yields bodies only after the code section's start,
            // which sets `code`.
            let code = walk
                .code
                .as_mut()
                .ok_or(Error::Truncated { offset: cursor })?;
            let function = walk.imported_functions.saturating_add(walk.bodies);
            code.rewrite(body, function, &mut walk.out)?;
            walk.bodies = walk.bodies.saturating_add(1);
            continue;
        }
        walk.close_code()?;
        match &payload {
            Payload::Version {
                num,
                encoding,
                range,
            } => {
                match encoding {
                    Encoding::Module if *num == 1 => {}
                    Encoding::Module => return Err(Error::UnsupportedVersion(*num)),
                    Encoding::Component => return Err(Error::Component),
                }
                walk.out.extend_from_slice(bytes(module, range.clone())?);
                cursor = range.end;
            }
            Payload::End(_) => break,
            payload => {
                let Some((id, content)) = payload.as_section() else {
                    // Only components yield other payloads.
                    return Err(Error::Component);
                };
                walk.section(payload, id, cursor, content.clone())?;
                cursor = content.end;
            }
        }
    }
    if walk.bodies != walk.declared_functions {
        return Err(Error::FunctionCountMismatch {
            declared: walk.declared_functions,
            bodies: walk.bodies,
        });
    }
    walk.add_missing_sections_before(u8::MAX)?;
    Ok(walk)
}

impl Walk<'_> {
    /// Whether some body changes a table or drops a segment.
    fn changes_tables(&self) -> bool {
        self.code.as_ref().is_some_and(|c| c.changes_tables)
    }

    /// The result of a finished walk.
    fn finish(mut self) -> Result<Instrumented, Error> {
        let functions = self
            .imported_functions
            .saturating_add(self.declared_functions);
        self.names.finish(functions);
        let changes_tables = self.changes_tables();
        let mut state = State {
            globals: self.mutable_globals,
            changes_tables,
            start: self.start,
            ..State::default()
        };
        if let Some(layout) = self.layout {
            state.tables = self.tables;
            state.functions = layout.functions.clone();
            state.data_passive = layout.data_passive.clone();
            state.elements_passive = layout.elements_passive.clone();
        }
        Ok(Instrumented {
            module: self.out,
            names: self.names,
            state,
        })
    }

    /// Where the notes of dropped segments go, on the second walk: right
    /// after the added global.
    fn drop_notes(&self) -> Result<Option<DropNotes>, Error> {
        let Some(layout) = self.layout else {
            return Ok(None);
        };
        let data = self.added_global()?.checked_add(1).ok_or(Error::TooLarge)?;
        let elements = data
            .checked_add(Layout::words(layout.data_passive.len())?)
            .ok_or(Error::TooLarge)?;
        Ok(Some(DropNotes { data, elements }))
    }

    /// The index of the added [`DROP`] function: after the module's.
    fn drop_function(&self) -> Result<u32, Error> {
        self.imported_functions
            .checked_add(self.declared_functions)
            .ok_or(Error::TooLarge)
    }

    /// Handles a section whose header starts at `header` and whose content
    /// is `content`. For the code section, only its start: the bodies
    /// follow as payloads of their own.
    fn section(
        &mut self,
        payload: &Payload<'_>,
        id: u8,
        header: usize,
        content: Range<usize>,
    ) -> Result<(), Error> {
        if id != CUSTOM {
            let rank = rank(id).ok_or(Error::UnknownSection { id, offset: header })?;
            if rank <= self.last_rank {
                return Err(Error::SectionOutOfOrder { id, offset: header });
            }
            self.last_rank = rank;
            self.add_missing_sections_before(rank)?;
        }
        match payload {
            Payload::TypeSection(types) if self.layout.is_some() => {
                return self.type_section(Some(types));
            }
            Payload::ImportSection(imports) => {
                for import in imports.clone() {
                    match import?.ty {
                        TypeRef::Func(_) => self.imported_functions += 1,
                        TypeRef::Global(_) => self.imported_globals += 1,
                        TypeRef::Table(_) => self.tables = self.tables.saturating_add(1),
                        _ => {}
                    }
                }
            }
            Payload::FunctionSection(functions) => {
                for function in functions.clone() {
                    function?;
                }
                self.declared_functions = functions.count();
                if self.layout.is_some() {
                    return self.function_section(Some(functions));
                }
            }
            Payload::TableSection(tables) => {
                self.tables = self.tables.saturating_add(tables.count());
            }
            Payload::GlobalSection(globals) => return self.global_section(Some(globals)),
            Payload::ExportSection(exports) => return self.export_section(Some(exports)),
            Payload::StartSection { .. } => self.start = true,
            Payload::ElementSection(elements) => self.check_elements(elements)?,
            Payload::DataCountSection { .. } => self.data_count = true,
            Payload::DataSection(data) => self.check_data(data)?,
            Payload::CodeSectionStart { count, .. } => {
                if *count != self.declared_functions {
                    return Err(Error::FunctionCountMismatch {
                        declared: self.declared_functions,
                        bodies: *count,
                    });
                }
                let notes = self.drop_notes()?;
                self.code = Some(Code::new(self.module, self.globals()?, notes));
                self.code_written = true;
                self.open_code = Some(encode::section_start(&mut self.out, CODE));
                let added = u32::from(self.layout.is_some());
                u32_leb(
                    &mut self.out,
                    count.checked_add(added).ok_or(Error::TooLarge)?,
                );
                return Ok(());
            }
            Payload::CustomSection(custom) => self.names.read_custom(custom),
            _ => {}
        }
        self.out
            .extend_from_slice(bytes(self.module, header..content.end)?);
        Ok(())
    }

    /// Finishes the output code section if it is open: its last body is
    /// in (then, on the second walk, [`DROP`]'s).
    fn close_code(&mut self) -> Result<(), Error> {
        match self.open_code.take() {
            Some(start) => {
                self.drop_body()?;
                encode::section_end(&mut self.out, start)
            }
            None => Ok(()),
        }
    }

    /// Writes a new global and a new export section if the module lacks
    /// them and the next section (of rank `rank`) must follow them; on the
    /// second walk, a type, function and code section too (for [`DROP`]).
    fn add_missing_sections_before(&mut self, rank: u8) -> Result<(), Error> {
        let second = self.layout.is_some();
        if second && rank > TYPE_RANK && !self.type_written {
            self.type_section(None)?;
        }
        if second && rank > FUNCTION_RANK && !self.function_written {
            self.function_section(None)?;
        }
        if rank > GLOBAL_RANK && !self.global_written {
            self.global_section(None)?;
        }
        if rank > EXPORT_RANK && !self.export_written {
            self.export_section(None)?;
        }
        if second && rank > CODE_RANK && !self.code_written {
            self.code_written = true;
            let start = encode::section_start(&mut self.out, CODE);
            u32_leb(&mut self.out, 1);
            self.drop_body()?;
            encode::section_end(&mut self.out, start)?;
        }
        Ok(())
    }

    /// Writes the type section on the second walk: the module's types
    /// byte for byte, then [`DROP_TYPE`]. Notes how many types there were
    /// (the added one's index).
    fn type_section(&mut self, types: Option<&TypeSectionReader<'_>>) -> Result<(), Error> {
        self.type_written = true;
        let mut entries = 0..0;
        let mut groups = 0u32;
        if let Some(types) = types {
            groups = types.count();
            entries = types.original_position()..types.range().end;
            for group in types.clone() {
                let count = u32::try_from(group?.types().len()).map_err(|_| Error::TooLarge)?;
                self.types = self.types.checked_add(count).ok_or(Error::TooLarge)?;
            }
        }
        let count = groups.checked_add(1).ok_or(Error::TooLarge)?;
        let entries = bytes(self.module, entries)?;
        encode::section(&mut self.out, TYPE, |out| {
            u32_leb(out, count);
            out.extend_from_slice(entries);
            out.extend_from_slice(&DROP_TYPE);
            Ok(())
        })
    }

    /// Writes the function section on the second walk: the module's
    /// functions' types byte for byte, then [`DROP`]'s.
    fn function_section(
        &mut self,
        functions: Option<&FunctionSectionReader<'_>>,
    ) -> Result<(), Error> {
        self.function_written = true;
        let mut entries = 0..0;
        if let Some(functions) = functions {
            entries = functions.original_position()..functions.range().end;
        }
        let count = self
            .declared_functions
            .checked_add(1)
            .ok_or(Error::TooLarge)?;
        let entries = bytes(self.module, entries)?;
        let ty = self.types;
        encode::section(&mut self.out, FUNCTION, |out| {
            u32_leb(out, count);
            out.extend_from_slice(entries);
            u32_leb(out, ty);
            Ok(())
        })
    }

    /// Appends the body of [`DROP`] to the open code section, on the
    /// second walk: by its first parameter, data or element segments;
    /// then a `br_table` on its second over one block per segment, each
    /// noting the drop and dropping it; any other kind or index does
    /// nothing. Without a data count section there are no data arms (the
    /// module could not be valid with `data.drop`).
    fn drop_body(&mut self) -> Result<(), Error> {
        let (Some(layout), Some(notes)) = (self.layout, self.drop_notes()?) else {
            return Ok(());
        };
        let data = if layout.data_count {
            layout.data_passive.len()
        } else {
            0
        };
        let elements = layout.elements_passive.len();
        let mut body = Vec::new();
        body.push(0x00); // no locals
        body.extend_from_slice(&[0x20, 0x00, 0x45, 0x04, 0x40]); // local.get 0; i32.eqz; if
        dispatch(&mut body, notes, SegmentKind::Data, data)?;
        body.push(0x05); // else
        // local.get 0; i32.const 1; i32.eq; if
        body.extend_from_slice(&[0x20, 0x00, 0x41, 0x01, 0x46, 0x04, 0x40]);
        dispatch(&mut body, notes, SegmentKind::Element, elements)?;
        body.extend_from_slice(&[0x0B, 0x0B, 0x0B]); // end (if), end (if), end (body)
        len_leb(&mut self.out, body.len())?;
        self.out.extend_from_slice(&body);
        Ok(())
    }

    /// Writes the global section: the module's globals byte for byte, then
    /// the added one, then (on the second walk) the notes of dropped data
    /// segments and those of element segments, one `i64` per 64 segments.
    fn global_section(&mut self, globals: Option<&GlobalSectionReader<'_>>) -> Result<(), Error> {
        self.global_written = true;
        let mut entries = 0..0;
        if let Some(globals) = globals {
            // The count is the header's; reading every entry below checks
            // it against the bytes.
            self.defined_globals = globals.count();
            entries = globals.original_position()..globals.range().end;
            for (i, global) in (self.imported_globals..).zip(globals.clone()) {
                let global = global?;
                self.check_const_expr(&global.init_expr, true)?;
                if global.ty.mutable {
                    self.mutable_globals.push(i);
                }
            }
        }
        let notes = match self.layout {
            Some(layout) => Layout::words(layout.data_passive.len())?
                .checked_add(Layout::words(layout.elements_passive.len())?)
                .ok_or(Error::TooLarge)?,
            None => 0,
        };
        let count = self
            .defined_globals
            .checked_add(1)
            .and_then(|c| c.checked_add(notes))
            .ok_or(Error::TooLarge)?;
        let entries = bytes(self.module, entries)?;
        encode::section(&mut self.out, GLOBAL, |out| {
            u32_leb(out, count);
            out.extend_from_slice(entries);
            out.extend_from_slice(&ADDED_GLOBAL);
            for _ in 0..notes {
                out.extend_from_slice(&NOTE_GLOBAL);
            }
            Ok(())
        })
    }

    /// Writes the export section: the module's exports byte for byte, then
    /// the added global's, then each mutable global's; on the second walk
    /// then each table, each function that can be a table element, each
    /// note global and [`DROP`]. Notes export names of functions on the
    /// way.
    fn export_section(&mut self, exports: Option<&ExportSectionReader<'_>>) -> Result<(), Error> {
        self.export_written = true;
        let mut entries = 0..0;
        let mut count = 0u32;
        if let Some(exports) = exports {
            count = exports.count();
            entries = exports.original_position()..exports.range().end;
            for export in exports.clone() {
                let export = export?;
                if export.name.starts_with(RESERVED_PREFIX) {
                    return Err(Error::ExportNameTaken);
                }
                if export.kind == ExternalKind::Func {
                    self.names.add_export(export.index, export.name);
                }
            }
        }
        let added = u32::try_from(self.mutable_globals.len()).map_err(|_| Error::TooLarge)?;
        let mut count = count
            .checked_add(1)
            .and_then(|c| c.checked_add(added))
            .ok_or(Error::TooLarge)?;
        let moved = match (self.layout, self.drop_notes()?) {
            (Some(layout), Some(notes)) => {
                let words = (
                    Layout::words(layout.data_passive.len())?,
                    Layout::words(layout.elements_passive.len())?,
                );
                let functions =
                    u32::try_from(layout.functions.len()).map_err(|_| Error::TooLarge)?;
                count = [self.tables, functions, words.0, words.1, 1]
                    .into_iter()
                    .try_fold(count, u32::checked_add)
                    .ok_or(Error::TooLarge)?;
                Some((layout, notes, words, self.drop_function()?))
            }
            _ => None,
        };
        let global = self.added_global()?;
        let entries = bytes(self.module, entries)?;
        let mutable = &self.mutable_globals;
        let tables = self.tables;
        encode::section(&mut self.out, EXPORT, |out| {
            u32_leb(out, count);
            out.extend_from_slice(entries);
            export_global(out, CURRENT_FUNCTION, global)?;
            for &index in mutable {
                export_global(out, &global_export(index), index)?;
            }
            let Some((layout, notes, (data, elements), drop)) = moved else {
                return Ok(());
            };
            for index in 0..tables {
                export(out, &table_export(index), TABLE_EXPORT_KIND, index)?;
            }
            for &index in &layout.functions {
                export(out, &func_export(index), FUNC_EXPORT_KIND, index)?;
            }
            for (kind, first, words) in [
                (SegmentKind::Data, notes.data, data),
                (SegmentKind::Element, notes.elements, elements),
            ] {
                for word in 0..words {
                    let global = first.checked_add(word).ok_or(Error::TooLarge)?;
                    export_global(out, &dropped_export(kind, word), global)?;
                }
            }
            export(out, DROP, FUNC_EXPORT_KIND, drop)
        })
    }

    /// Checks the constant expressions of element segments (offsets and
    /// items) for global indices past the module's globals; notes the
    /// functions the segments name and which segments are passive.
    fn check_elements(&mut self, elements: &ElementSectionReader<'_>) -> Result<(), Error> {
        for element in elements.clone() {
            let element = element?;
            self.elements_passive
                .push(matches!(element.kind, ElementKind::Passive));
            if let ElementKind::Active { offset_expr, .. } = &element.kind {
                self.check_const_expr(offset_expr, false)?;
            }
            match element.items {
                ElementItems::Functions(functions) => {
                    for function in functions {
                        self.refs.push(function?);
                    }
                }
                ElementItems::Expressions(_, items) => {
                    for item in items {
                        self.check_const_expr(&item?, true)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Checks data segment offsets for global indices past the module's
    /// globals; notes which segments are passive.
    fn check_data(&mut self, data: &DataSectionReader<'_>) -> Result<(), Error> {
        for segment in data.clone() {
            match segment?.kind {
                DataKind::Active { offset_expr, .. } => {
                    self.data_passive.push(false);
                    self.check_const_expr(&offset_expr, false)?;
                }
                DataKind::Passive => self.data_passive.push(true),
            }
        }
        Ok(())
    }

    /// Fails if `expr` reads a global past the module's globals (after
    /// instrumentation it would read the added one). With `refs`, notes
    /// the functions its `ref.func`s name.
    fn check_const_expr(&mut self, expr: &ConstExpr<'_>, refs: bool) -> Result<(), Error> {
        let globals = self.globals()?;
        let mut ops = expr.get_operators_reader();
        while !ops.eof() {
            let offset = ops.original_position();
            match ops.read()? {
                Operator::GlobalGet { global_index } if global_index >= globals => {
                    return Err(Error::GlobalOutOfRange {
                        index: global_index,
                        offset,
                    });
                }
                Operator::RefFunc { function_index } if refs => self.refs.push(function_index),
                _ => {}
            }
        }
        Ok(())
    }

    /// The input module's number of globals, imported and defined.
    fn globals(&self) -> Result<u32, Error> {
        self.imported_globals
            .checked_add(self.defined_globals)
            .ok_or(Error::TooLarge)
    }

    /// The added global's index: the one after the module's globals.
    fn added_global(&self) -> Result<u32, Error> {
        self.globals()
    }
}

/// Appends an export entry of global `index` under `name`.
fn export_global(out: &mut Vec<u8>, name: &str, index: u32) -> Result<(), Error> {
    export(out, name, GLOBAL_EXPORT_KIND, index)
}

/// Appends an export entry of `index` of `kind` under `name`.
fn export(out: &mut Vec<u8>, name: &str, kind: u8, index: u32) -> Result<(), Error> {
    len_leb(out, name.len())?;
    out.extend_from_slice(name.as_bytes());
    out.push(kind);
    u32_leb(out, index);
    Ok(())
}

/// Appends to [`DROP`]'s body the dispatch over `count` segments of `kind`
/// on its second parameter: `count + 1` nested blocks, a `br_table` whose
/// target `i` leaves block `i`, after which segment `i`'s drop is noted
/// and made and the function returns; the default leaves them all.
fn dispatch(
    body: &mut Vec<u8>,
    notes: DropNotes,
    kind: SegmentKind,
    count: usize,
) -> Result<(), Error> {
    if count == 0 {
        return Ok(());
    }
    let count = u32::try_from(count).map_err(|_| Error::TooLarge)?;
    for _ in 0..=count {
        body.extend_from_slice(&[0x02, 0x40]); // block
    }
    body.extend_from_slice(&[0x20, 0x01, 0x0E]); // local.get 1; br_table
    u32_leb(body, count);
    for target in 0..=count {
        u32_leb(body, target);
    }
    let opcode = match kind {
        SegmentKind::Data => 9,     // data.drop
        SegmentKind::Element => 13, // elem.drop
    };
    for index in 0..count {
        body.push(0x0B); // end
        body.extend_from_slice(notes.note(kind, index).as_bytes());
        body.push(0xFC);
        u32_leb(body, opcode);
        u32_leb(body, index);
        body.push(0x0F); // return
    }
    body.push(0x0B); // end of the outermost block
    Ok(())
}
