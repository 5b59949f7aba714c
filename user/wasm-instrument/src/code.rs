//! Rewriting function bodies: record the running function at entry and
//! after every call returns.

use alloc::vec::Vec;

use wasmparser::{FunctionBody, OperatorsReader, VisitOperator};

use crate::encode::{self, NoteDrop, SetCurrent};
use crate::{Error, SegmentKind};

/// The bytes inserted at a cut.
enum Bytes {
    Current(SetCurrent),
    Note(NoteDrop),
    None,
}

impl Bytes {
    fn as_bytes(&self) -> &[u8] {
        match self {
            Self::Current(set) => set.as_bytes(),
            Self::Note(note) => note.as_bytes(),
            Self::None => &[],
        }
    }
}

/// What every body rewrite needs to know about the module.
pub(crate) struct Code<'m> {
    /// The whole input module; offsets from the parser index into it.
    module: &'m [u8],
    /// Globals the input module has, so also the index of the added
    /// global; an instruction naming a global at or past it is refused.
    globals: u32,
    /// Where the notes of dropped segments go, if drops are noted (a
    /// module that changes its tables, on the walk that knows it).
    notes: Option<DropNotes>,
    /// Offsets in the body being rewritten, and what goes there. Kept
    /// between bodies so a module's rewrite allocates it once.
    cuts: Vec<(usize, Insert)>,
    /// Whether a body read so far changes a table or drops a segment.
    pub(crate) changes_tables: bool,
    /// The functions `ref.func` names in the bodies read so far (with
    /// repeats).
    pub(crate) refs: Vec<u32>,
}

/// The first global of the notes of dropped segments of each kind
/// ([`NoteDrop`]): segment `k` is bit `k % 64` of global `first + k / 64`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DropNotes {
    pub(crate) data: u32,
    pub(crate) elements: u32,
}

impl DropNotes {
    /// The note that segment `index` of `kind` is dropped.
    pub(crate) fn note(&self, kind: SegmentKind, index: u32) -> NoteDrop {
        let first = match kind {
            SegmentKind::Data => self.data,
            SegmentKind::Element => self.elements,
        };
        NoteDrop::new(first.saturating_add(index / 64), index % 64)
    }
}

/// What goes at a cut.
#[derive(Debug, Clone, Copy)]
enum Insert {
    /// [`SetCurrent`] of the body's function.
    Current,
    /// The note that this segment is dropped, before the drop.
    Drop(SegmentKind, u32),
}

impl<'m> Code<'m> {
    pub(crate) fn new(module: &'m [u8], globals: u32, notes: Option<DropNotes>) -> Self {
        Self {
            module,
            globals,
            notes,
            cuts: Vec::new(),
            changes_tables: false,
            refs: Vec::new(),
        }
    }

    /// Appends `body`, the body of function `function`, rewritten and with
    /// its size prefix, to `out`.
    ///
    /// The locals are copied as they are, then `SetCurrent(function)`, then
    /// the instructions, with `SetCurrent(function)` again after each
    /// `call`, `call_indirect` and `call_ref`, unless the next instruction
    /// is `return` or the body's final `end` (nothing there can trap).
    /// `return_call*` leave the function, so nothing follows them. When
    /// drops are noted, [`NoteDrop`] goes right before each `data.drop` and
    /// `elem.drop`. Bytes between insertions are copied in bulk.
    pub(crate) fn rewrite(
        &mut self,
        body: &FunctionBody<'_>,
        function: u32,
        out: &mut Vec<u8>,
    ) -> Result<(), Error> {
        let set = SetCurrent::new(function, self.globals);
        let range = body.range();
        let mut ops = body.get_operators_reader()?;
        let first_op = ops.original_position();
        self.find_cuts(&mut ops)?;

        let notes = self.notes;
        let insert = |what: Insert| match (what, notes) {
            (Insert::Current, _) => Bytes::Current(set),
            (Insert::Drop(kind, index), Some(notes)) => Bytes::Note(notes.note(kind, index)),
            (Insert::Drop(..), None) => Bytes::None,
        };
        let added = set.as_bytes().len()
            + self
                .cuts
                .iter()
                .map(|&(_, what)| insert(what).as_bytes().len())
                .sum::<usize>();
        encode::len_leb(out, range.len() + added)?;
        out.reserve(range.len() + added);
        out.extend_from_slice(self.bytes(range.start..first_op)?);
        out.extend_from_slice(set.as_bytes());
        let mut copied = first_op;
        for &(cut, what) in &self.cuts {
            out.extend_from_slice(self.bytes(copied..cut)?);
            out.extend_from_slice(insert(what).as_bytes());
            copied = cut;
        }
        out.extend_from_slice(self.bytes(copied..range.end)?);
        Ok(())
    }

    /// Reads every instruction of a body, noting in `cuts` the end of each
    /// call that needs [`SetCurrent`] after it and (when drops are noted)
    /// the start of each `data.drop` and `elem.drop`, noting the functions
    /// `ref.func` names, and refusing global indices past the module's
    /// globals.
    fn find_cuts(&mut self, ops: &mut OperatorsReader<'_>) -> Result<(), Error> {
        self.cuts.clear();
        // The end of a call just read: cut there unless the instruction
        // after it cannot trap.
        let mut after_call = None;
        while !ops.eof() {
            let offset = ops.original_position();
            let kind = ops.visit_operator(&mut Classify)?;
            let end = ops.original_position();
            if let Some(cut) = after_call.take() {
                let leaves = kind == Kind::Return || (kind == Kind::End && ops.eof());
                if !leaves {
                    self.cuts.push((cut, Insert::Current));
                }
            }
            match kind {
                Kind::Call => after_call = Some(end),
                Kind::Global(index) => self.check_global(index, offset)?,
                Kind::ChangesTables => self.changes_tables = true,
                Kind::Drop(segment, index) => {
                    self.changes_tables = true;
                    if self.notes.is_some() {
                        self.cuts.push((offset, Insert::Drop(segment, index)));
                    }
                }
                Kind::RefFunc(function) => self.refs.push(function),
                Kind::Return | Kind::End | Kind::Other => {}
            }
        }
        // A body whose last instruction is a call has no final `end`: it is
        // invalid, and the runtime's validator will say so.
        self.cuts
            .extend(after_call.map(|cut| (cut, Insert::Current)));
        Ok(())
    }

    /// Fails if `index` is past the input module's globals.
    fn check_global(&self, index: u32, offset: usize) -> Result<(), Error> {
        if index < self.globals {
            Ok(())
        } else {
            Err(Error::GlobalOutOfRange { index, offset })
        }
    }

    fn bytes(&self, range: core::ops::Range<usize>) -> Result<&'m [u8], Error> {
        bytes(self.module, range)
    }
}

/// `module[range]`, for a range the parser produced. The parser only hands
/// out ranges inside the data it was given; failing rather than panicking
/// keeps a surprise there from ever taking the runtime down.
pub(crate) fn bytes(module: &[u8], range: core::ops::Range<usize>) -> Result<&[u8], Error> {
    let offset = range.start;
    module.get(range).ok_or(Error::Truncated { offset })
}

/// What [`Code::find_cuts`] needs to know of an instruction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `call`, `call_indirect`, `call_ref`: returns to the caller.
    Call,
    Return,
    End,
    /// `global.get` or `global.set` of this global.
    Global(u32),
    /// Changes a table: `table.set`, `table.grow`, `table.fill`,
    /// `table.copy`, `table.init`.
    ChangesTables,
    /// Drops a segment: `data.drop`, `elem.drop`.
    Drop(SegmentKind, u32),
    /// `ref.func` of this function.
    RefFunc(u32),
    Other,
}

/// Decodes an instruction to its [`Kind`], without building the full
/// [`wasmparser::Operator`] (a third faster on real modules).
struct Classify;

/// Defines every `visit_*` method of [`VisitOperator`] from wasmparser's
/// list of instructions, each returning the instruction's [`Kind`].
macro_rules! classify {
    ($( @$proposal:ident $op:ident $({ $($arg:ident: $argty:ty),* })? => $visit:ident ($($ann:tt)*) )*) => {
        $(
            fn $visit(&mut self $($(, $arg: $argty)*)?) -> Kind {
                classify!(@kind $op $($($arg)*)?)
            }
        )*
    };
    (@kind Call $($arg:ident)*) => { Kind::Call };
    (@kind CallIndirect $($arg:ident)*) => { Kind::Call };
    (@kind CallRef $($arg:ident)*) => { Kind::Call };
    (@kind Return) => { Kind::Return };
    (@kind End) => { Kind::End };
    (@kind GlobalGet $index:ident) => { Kind::Global($index) };
    (@kind GlobalSet $index:ident) => { Kind::Global($index) };
    (@kind TableSet $($arg:ident)*) => { Kind::ChangesTables };
    (@kind TableGrow $($arg:ident)*) => { Kind::ChangesTables };
    (@kind TableFill $($arg:ident)*) => { Kind::ChangesTables };
    (@kind TableCopy $($arg:ident)*) => { Kind::ChangesTables };
    (@kind TableInit $($arg:ident)*) => { Kind::ChangesTables };
    (@kind ElemDrop $index:ident) => { Kind::Drop(SegmentKind::Element, $index) };
    (@kind DataDrop $index:ident) => { Kind::Drop(SegmentKind::Data, $index) };
    (@kind RefFunc $index:ident) => { Kind::RefFunc($index) };
    (@kind $op:ident $($arg:ident)*) => { Kind::Other };
}

#[allow(unused_variables)] // Most instructions' immediates do not matter here.
impl<'a> VisitOperator<'a> for Classify {
    type Output = Kind;

    #[cfg(feature = "simd")]
    fn simd_visitor(
        &mut self,
    ) -> Option<&mut dyn wasmparser::VisitSimdOperator<'a, Output = Self::Output>> {
        Some(self)
    }

    wasmparser::for_each_visit_operator!(classify);
}

#[cfg(feature = "simd")]
#[allow(unused_variables)]
impl<'a> wasmparser::VisitSimdOperator<'a> for Classify {
    wasmparser::for_each_visit_simd_operator!(classify);
}
