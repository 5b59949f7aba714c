//! `weft-wasm-instrument`: rewrites a Wasm module at load time so that,
//! after a trap, the runtime can tell which function the trap happened in.
//!
//! The interpreter (wasmi) reports a trap's kind but neither a backtrace nor
//! a location. [`instrument`] adds one mutable `i32` global, exported as
//! [`CURRENT_FUNCTION`], that always holds the index of the function
//! executing: every defined function sets it on entry, and sets it back
//! after each call it makes returns. After a trap, the runtime reads the
//! global and [`FunctionNames::describe`] turns it into a name.
//!
//! # What changes, what does not
//!
//! - The global is appended at the end of the global index space (index =
//!   imported globals + defined globals), so no existing global index
//!   changes. Its initial value is [`NOT_STARTED`].
//! - Function indices, types, tables, memories, data and every custom
//!   section stay as they are, byte for byte and in place. Only the global,
//!   export and code sections are rewritten (the first two are added, in
//!   their place in the section order, if absent); for a module that
//!   changes its tables, the type and function sections too (entries are
//!   appended, see below).
//! - Each body starts with `i32.const <own index>; global.set <global>`, and
//!   the same two instructions follow every `call`, `call_indirect` and
//!   `call_ref`, except right before `return` or the body's final `end`,
//!   where nothing can trap. `return_call*` need nothing after them.
//! - A function's name comes from the `name` custom section, else from an
//!   export, else it is shown as `function[N]` ([`FunctionNames`]).
//! - Each mutable global the module defines is exported too, as
//!   [`global_export`]`(index)`, so that the runtime can read and write the
//!   whole of an instance's state (to move an app), and [`State`] says
//!   which they are and whether any function changes a table or drops a
//!   segment.
//! - A module that changes a table or drops a segment (`table.set`,
//!   `table.grow`, `table.fill`, `table.copy`, `table.init`, `elem.drop`,
//!   `data.drop`; [`State::changes_tables`]) also exports every table as
//!   [`table_export`]`(index)` and every function that can ever be a table
//!   element as [`func_export`]`(index)` (those its element segments,
//!   `ref.func`s in code and globals' initial values name, imported ones
//!   included); each `data.drop k` and `elem.drop k` first sets bit
//!   `k % 64` of an added mutable `i64` global, exported as
//!   [`dropped_export`]`(kind, k / 64)`; and an added function, exported
//!   as [`DROP`], replays a drop (notes included). The notes go after the
//!   added global, the function after the module's functions, its type
//!   after the module's types: no index the module uses changes. To know
//!   all this before the sections it goes in, such a module is walked
//!   twice; any other module once, and its output is as before.
//!
//! # Invariants
//!
//! - A trap inside function F (including a stack exhaustion at a call F
//!   makes) leaves F's index in the global. A trap in an imported (host)
//!   function leaves the index of the Wasm function that called it. (With
//!   exception handling, which wasmi does not implement, a caught exception
//!   would leave the thrower's index until the catcher's next call returns.)
//! - The output is valid if and only if the input is (short of the
//!   format's size limits: a body right at the limit can grow past it). The
//!   added global and export cannot collide with anything the module
//!   declares: [`Error`] refuses a module that already exports
//!   [`CURRENT_FUNCTION`] or names a global past its last one, which would
//!   otherwise alias the added global.
//! - Work is linear in the module's size (bar sorting the function names):
//!   one pass (two for a module that changes its tables) over the sections
//!   and one over each body's instructions,
//!   copying the bytes between insertions in bulk, with no allocation per
//!   instruction.
//! - Malformed input gives an [`Error`] saying what is wrong; nothing here
//!   panics on any input. The crate parses but does not validate: the
//!   runtime validates the output when it compiles it.
//!
//! Custom sections that refer to code offsets (DWARF `.debug_*`, branch
//! hints) are copied unchanged and so point at the old offsets; Weft reads
//! none of them. SIMD instructions are accepted only with this crate's
//! `simd` feature (to enable along with wasmi's); without it they are
//! malformed input, as they are to a wasmi built without SIMD.
//!
//! This crate owns the rewrite and the names; reading the global after a
//! trap and printing the report belong to the runtime (`wasm-run`).
//!
//! # Example
//!
//! ```
//! use weft_wasm_instrument::{CURRENT_FUNCTION, instrument};
//!
//! let wasm = wat::parse_str(r#"
//!     (module
//!       (func $inner (unreachable))
//!       (func (export "run") (call $inner)))
//! "#)?;
//! let instrumented = instrument(&wasm)?;
//!
//! let engine = wasmi::Engine::default();
//! let module = wasmi::Module::new(&engine, &instrumented.module)?;
//! let mut store = wasmi::Store::new(&engine, ());
//! let instance = wasmi::Linker::new(&engine).instantiate_and_start(&mut store, &module)?;
//! let run = instance.get_typed_func::<(), ()>(&store, "run")?;
//! assert!(run.call(&mut store, ()).is_err());
//!
//! let global = instance.get_global(&store, CURRENT_FUNCTION).unwrap();
//! let current = global.get(&store).i32().unwrap();
//! assert_eq!(instrumented.names.describe(current).to_string(), "inner");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

mod code;
mod encode;
mod error;
mod module;
mod names;

use alloc::vec::Vec;

pub use error::Error;
pub use names::{CurrentFunction, FunctionNames};

/// The name under which the instrumented module exports the global holding
/// the index of the function executing.
pub const CURRENT_FUNCTION: &str = "weft:current-function";

/// The global's value before any function of the module has started.
pub const NOT_STARTED: i32 = -1;

/// The start of every export name the instrumentation adds; a module that
/// exports such a name itself is refused.
pub const RESERVED_PREFIX: &str = "weft:";

/// The start of the export name of each of the module's own mutable
/// globals, followed by its index in decimal ([`global_export`]).
pub const GLOBAL_PREFIX: &str = "weft:global:";

/// The name under which the instrumented module exports its mutable global
/// `index` (in the module's global index space).
pub fn global_export(index: u32) -> alloc::string::String {
    alloc::format!("{GLOBAL_PREFIX}{index}")
}

/// The start of the export name of each table of a module that changes
/// its tables, followed by its index in decimal ([`table_export`]).
pub const TABLE_PREFIX: &str = "weft:table:";

/// The name under which the instrumented module exports table `index` (in
/// the module's table index space), when it changes its tables
/// ([`State::changes_tables`]).
pub fn table_export(index: u32) -> alloc::string::String {
    alloc::format!("{TABLE_PREFIX}{index}")
}

/// The start of the export name of each function that can be a table
/// element of a module that changes its tables, followed by its index in
/// decimal ([`func_export`]).
pub const FUNC_PREFIX: &str = "weft:func:";

/// The name under which the instrumented module exports function `index`
/// (in the module's function index space, imports first), when it changes
/// its tables and `index` is one of [`State::functions`].
pub fn func_export(index: u32) -> alloc::string::String {
    alloc::format!("{FUNC_PREFIX}{index}")
}

/// The start of the export names of the `i64` globals that note which data
/// segments were dropped, followed by the number of the global in decimal
/// ([`dropped_export`]).
pub const DROPPED_DATA_PREFIX: &str = "weft:dropped-data:";

/// The same as [`DROPPED_DATA_PREFIX`], for element segments.
pub const DROPPED_ELEMENTS_PREFIX: &str = "weft:dropped-elem:";

/// Which kind of segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SegmentKind {
    /// A data segment (`data.drop`). Its number in [`DROP`]'s first
    /// parameter is 0.
    Data = 0,
    /// An element segment (`elem.drop`); 1 in [`DROP`]'s first parameter.
    Element = 1,
}

/// The name under which a module that changes its tables exports its
/// `i64` global `word` (0 first) of notes of dropped segments of `kind`:
/// bit `i` (least significant first) of word `w` is set once segment
/// `64 w + i` of that kind was dropped by `data.drop` or `elem.drop`
/// (active segments, dropped when the instance is made, are not noted).
pub fn dropped_export(kind: SegmentKind, word: u32) -> alloc::string::String {
    let prefix = match kind {
        SegmentKind::Data => DROPPED_DATA_PREFIX,
        SegmentKind::Element => DROPPED_ELEMENTS_PREFIX,
    };
    alloc::format!("{prefix}{word}")
}

/// The name of the function, of type `(i32 kind, i32 index) -> ()`, that
/// a module that changes its tables exports to drop its segment `index` of
/// kind `kind` ([`SegmentKind`] as `i32`), as `data.drop index` or
/// `elem.drop index` in its code would, noting the drop as they do; any
/// other `kind` or `index` does nothing. A restore calls it.
pub const DROP: &str = "weft:drop";

/// An instrumented module and the names of its functions.
#[derive(Debug, Clone)]
pub struct Instrumented {
    /// The rewritten module binary, to hand to the runtime in place of the
    /// original.
    pub module: Vec<u8>,
    /// The name of each function, for [`FunctionNames::describe`].
    pub names: FunctionNames,
    /// What of an instance's state lies outside its memories.
    pub state: State,
}

/// What of an instance's state lies outside its linear memories, as the
/// instrumented module exposes it: what moving an app must carry besides
/// its memory (PROTOCOL.md §19).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct State {
    /// The indices of the module's own mutable globals, in increasing
    /// order, each exported as [`global_export`]`(index)` (imported
    /// globals belong to the host).
    pub globals: Vec<u32>,
    /// Whether some function changes a table or drops a segment
    /// (`table.set`, `table.grow`, `table.fill`, `table.copy`,
    /// `table.init`, `elem.drop`, `data.drop`). If not, an instance's
    /// tables and segments are always those of a fresh instance of the
    /// module.
    pub changes_tables: bool,
    /// Whether the module has a start function, which runs whenever an
    /// instance is made.
    pub start: bool,
    /// The module's tables, imported ones included, each exported as
    /// [`table_export`]`(index)`, when it changes its tables; else 0 (none
    /// exported).
    pub tables: u32,
    /// When it changes its tables: the index of every function that can
    /// be a table element, in increasing order, each exported as
    /// [`func_export`]`(index)`: those an element segment names (as an
    /// index or a `ref.func`), and those a `ref.func` names in code or in
    /// a global's initial value. Else empty.
    pub functions: Vec<u32>,
    /// When it changes its tables: whether each data segment, by index,
    /// is passive (the others are dropped when the instance is made), the
    /// drops of which it notes in the globals [`dropped_export`] names and
    /// [`DROP`] makes. Else empty.
    pub data_passive: Vec<bool>,
    /// The same as [`data_passive`](Self::data_passive), for element
    /// segments (declarative ones are not passive).
    pub elements_passive: Vec<bool>,
}

/// Rewrites `module` (a core Wasm module binary) to keep the index of the
/// executing function in an exported global, see the [crate] docs.
///
/// # Errors
///
/// [`Error`] if `module` is not a well-formed core module of binary version
/// 1, or if it exports a name that starts with [`RESERVED_PREFIX`] or
/// refers to a global it does not have.
pub fn instrument(module: &[u8]) -> Result<Instrumented, Error> {
    module::instrument(module)
}
