//! The walk over a module's sections: copy most byte for byte, rewrite the
//! global, export and code sections, and add the global and export
//! sections where they are missing.

use alloc::vec::Vec;
use core::ops::Range;

use wasmparser::{
    ConstExpr, DataSectionReader, ElementItems, ElementKind, ElementSectionReader, Encoding,
    ExportSectionReader, ExternalKind, GlobalSectionReader, Operator, Parser, Payload, TypeRef,
};

use crate::code::{Code, bytes};
use crate::encode::{self, len_leb, u32_leb};
use crate::names::FunctionNames;
use crate::{CURRENT_FUNCTION, Error, Instrumented, RESERVED_PREFIX, State, global_export};

/// Section ids this walk writes.
const CUSTOM: u8 = 0;
const GLOBAL: u8 = 6;
const EXPORT: u8 = 7;
const CODE: u8 = 10;

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
}

pub(crate) fn instrument(module: &[u8]) -> Result<Instrumented, Error> {
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
    let functions = walk
        .imported_functions
        .saturating_add(walk.declared_functions);
    walk.names.finish(functions);
    let changes_tables = walk.code.as_ref().is_some_and(|c| c.changes_tables);
    Ok(Instrumented {
        module: walk.out,
        names: walk.names,
        state: State {
            globals: walk.mutable_globals,
            changes_tables,
            start: walk.start,
        },
    })
}

impl Walk<'_> {
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
            Payload::ImportSection(imports) => {
                for import in imports.clone() {
                    match import?.ty {
                        TypeRef::Func(_) => self.imported_functions += 1,
                        TypeRef::Global(_) => self.imported_globals += 1,
                        _ => {}
                    }
                }
            }
            Payload::FunctionSection(functions) => {
                for function in functions.clone() {
                    function?;
                }
                self.declared_functions = functions.count();
            }
            Payload::GlobalSection(globals) => return self.global_section(Some(globals)),
            Payload::ExportSection(exports) => return self.export_section(Some(exports)),
            Payload::StartSection { .. } => self.start = true,
            Payload::ElementSection(elements) => self.check_elements(elements)?,
            Payload::DataSection(data) => self.check_data(data)?,
            Payload::CodeSectionStart { count, .. } => {
                if *count != self.declared_functions {
                    return Err(Error::FunctionCountMismatch {
                        declared: self.declared_functions,
                        bodies: *count,
                    });
                }
                self.code = Some(Code::new(self.module, self.globals()?));
                self.open_code = Some(encode::section_start(&mut self.out, CODE));
                u32_leb(&mut self.out, *count);
                return Ok(());
            }
            Payload::CustomSection(custom) => self.names.read_custom(custom),
            _ => {}
        }
        self.out
            .extend_from_slice(bytes(self.module, header..content.end)?);
        Ok(())
    }

    /// Finishes the output code section if it is open: its last body is in.
    fn close_code(&mut self) -> Result<(), Error> {
        match self.open_code.take() {
            Some(start) => encode::section_end(&mut self.out, start),
            None => Ok(()),
        }
    }

    /// Writes a new global and a new export section if the module lacks
    /// them and the next section (of rank `rank`) must follow them.
    fn add_missing_sections_before(&mut self, rank: u8) -> Result<(), Error> {
        if rank > GLOBAL_RANK && !self.global_written {
            self.global_section(None)?;
        }
        if rank > EXPORT_RANK && !self.export_written {
            self.export_section(None)?;
        }
        Ok(())
    }

    /// Writes the global section: the module's globals byte for byte, then
    /// the added one.
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
                self.check_const_expr(&global.init_expr)?;
                if global.ty.mutable {
                    self.mutable_globals.push(i);
                }
            }
        }
        let count = self.defined_globals.checked_add(1).ok_or(Error::TooLarge)?;
        let entries = bytes(self.module, entries)?;
        encode::section(&mut self.out, GLOBAL, |out| {
            u32_leb(out, count);
            out.extend_from_slice(entries);
            out.extend_from_slice(&ADDED_GLOBAL);
            Ok(())
        })
    }

    /// Writes the export section: the module's exports byte for byte, then
    /// the added global's, then each mutable global's. Notes export names
    /// of functions on the way.
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
        let count = count
            .checked_add(1)
            .and_then(|c| c.checked_add(added))
            .ok_or(Error::TooLarge)?;
        let global = self.added_global()?;
        let entries = bytes(self.module, entries)?;
        let mutable = &self.mutable_globals;
        encode::section(&mut self.out, EXPORT, |out| {
            u32_leb(out, count);
            out.extend_from_slice(entries);
            export_global(out, CURRENT_FUNCTION, global)?;
            for &index in mutable {
                export_global(out, &global_export(index), index)?;
            }
            Ok(())
        })
    }

    /// Checks the constant expressions of element segments (offsets and
    /// items) for global indices past the module's globals.
    fn check_elements(&self, elements: &ElementSectionReader<'_>) -> Result<(), Error> {
        for element in elements.clone() {
            let element = element?;
            if let ElementKind::Active { offset_expr, .. } = &element.kind {
                self.check_const_expr(offset_expr)?;
            }
            if let ElementItems::Expressions(_, items) = element.items {
                for item in items {
                    self.check_const_expr(&item?)?;
                }
            }
        }
        Ok(())
    }

    /// Checks data segment offsets for global indices past the module's
    /// globals.
    fn check_data(&self, data: &DataSectionReader<'_>) -> Result<(), Error> {
        for segment in data.clone() {
            if let wasmparser::DataKind::Active { offset_expr, .. } = segment?.kind {
                self.check_const_expr(&offset_expr)?;
            }
        }
        Ok(())
    }

    /// Fails if `expr` reads a global past the module's globals (after
    /// instrumentation it would read the added one).
    fn check_const_expr(&self, expr: &ConstExpr<'_>) -> Result<(), Error> {
        let globals = self.globals()?;
        let mut ops = expr.get_operators_reader();
        while !ops.eof() {
            let offset = ops.original_position();
            if let Operator::GlobalGet { global_index } = ops.read()?
                && global_index >= globals
            {
                return Err(Error::GlobalOutOfRange {
                    index: global_index,
                    offset,
                });
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
    len_leb(out, name.len())?;
    out.extend_from_slice(name.as_bytes());
    out.push(GLOBAL_EXPORT_KIND);
    u32_leb(out, index);
    Ok(())
}
