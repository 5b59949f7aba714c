//! Rewriting function bodies: record the running function at entry and
//! after every call returns.

use alloc::vec::Vec;

use wasmparser::{FunctionBody, OperatorsReader, VisitOperator};

use crate::Error;
use crate::encode::{self, SetCurrent};

/// What every body rewrite needs to know about the module.
pub(crate) struct Code<'m> {
    /// The whole input module; offsets from the parser index into it.
    module: &'m [u8],
    /// Globals the input module has, so also the index of the added
    /// global; an instruction naming a global at or past it is refused.
    globals: u32,
    /// Offsets in the body being rewritten after which [`SetCurrent`] goes.
    /// Kept between bodies so a module's rewrite allocates it once.
    cuts: Vec<usize>,
    /// Whether a body read so far changes a table or drops a segment.
    pub(crate) changes_tables: bool,
}

impl<'m> Code<'m> {
    pub(crate) fn new(module: &'m [u8], globals: u32) -> Self {
        Self {
            module,
            globals,
            cuts: Vec::new(),
            changes_tables: false,
        }
    }

    /// Appends `body`, the body of function `function`, rewritten and with
    /// its size prefix, to `out`.
    ///
    /// The locals are copied as they are, then `SetCurrent(function)`, then
    /// the instructions, with `SetCurrent(function)` again after each
    /// `call`, `call_indirect` and `call_ref`, unless the next instruction
    /// is `return` or the body's final `end` (nothing there can trap).
    /// `return_call*` leave the function, so nothing follows them. Bytes
    /// between insertions are copied in bulk.
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

        let insertions = self.cuts.len() + 1;
        let added = set.as_bytes().len() * insertions;
        encode::len_leb(out, range.len() + added)?;
        out.reserve(range.len() + added);
        let mut copied = range.start;
        for &cut in core::iter::once(&first_op).chain(&self.cuts) {
            out.extend_from_slice(self.bytes(copied..cut)?);
            out.extend_from_slice(set.as_bytes());
            copied = cut;
        }
        out.extend_from_slice(self.bytes(copied..range.end)?);
        Ok(())
    }

    /// Reads every instruction of a body, noting in `cuts` the end of each
    /// call that needs [`SetCurrent`] after it, and refusing global indices
    /// past the module's globals.
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
                    self.cuts.push(cut);
                }
            }
            match kind {
                Kind::Call => after_call = Some(end),
                Kind::Global(index) => self.check_global(index, offset)?,
                Kind::ChangesTables => self.changes_tables = true,
                Kind::Return | Kind::End | Kind::Other => {}
            }
        }
        // A body whose last instruction is a call has no final `end`: it is
        // invalid, and the runtime's validator will say so.
        self.cuts.extend(after_call);
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
    /// Changes a table or drops a segment: `table.set`, `table.grow`,
    /// `table.fill`, `table.copy`, `table.init`, `elem.drop`, `data.drop`.
    ChangesTables,
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
    (@kind ElemDrop $($arg:ident)*) => { Kind::ChangesTables };
    (@kind DataDrop $($arg:ident)*) => { Kind::ChangesTables };
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
