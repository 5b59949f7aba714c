//! Why a module could not be instrumented.

use core::fmt;

use wasmparser::BinaryReaderError;

use crate::RESERVED_PREFIX;

/// Why [`instrument`](crate::instrument) refused a module. Every variant
/// describes the input, not this crate: a well-formed core module version 1
/// is always instrumented.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The bytes are not a well-formed module (bad magic number, truncated,
    /// an unknown opcode, a bad LEB128, ...). Carries the parser's reason and
    /// byte offset.
    Malformed(BinaryReaderError),
    /// The bytes are a component (component model), not a core module.
    Component,
    /// A core module of a binary-format version other than 1.
    UnsupportedVersion(u16),
    /// A section id the format does not define.
    UnknownSection {
        /// The section's id byte.
        id: u8,
        /// Byte offset of the id.
        offset: usize,
    },
    /// A non-custom section appears twice or after one that must follow it.
    SectionOutOfOrder {
        /// The section's id byte.
        id: u8,
        /// Byte offset of the id.
        offset: usize,
    },
    /// A part of the module extends past the end of the input.
    Truncated {
        /// Byte offset of the part.
        offset: usize,
    },
    /// The code section has a different number of bodies from the function
    /// section's number of declared functions.
    FunctionCountMismatch {
        /// Functions declared by the function section.
        declared: u32,
        /// Bodies in the code section.
        bodies: u32,
    },
    /// An instruction names a global past the module's last one. The module
    /// is invalid as it stands, and after instrumentation the index would
    /// name the added global; refusing it keeps an invalid module invalid.
    GlobalOutOfRange {
        /// The global index in the instruction.
        index: u32,
        /// Byte offset of the instruction.
        offset: usize,
    },
    /// The module exports a name the instrumentation reserves (one that
    /// starts with [`RESERVED_PREFIX`]).
    ExportNameTaken,
    /// The instrumented module would exceed a size the format can encode
    /// (a section or a body over 4 GiB).
    TooLarge,
}

impl From<BinaryReaderError> for Error {
    fn from(error: BinaryReaderError) -> Self {
        Self::Malformed(error)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Malformed(e) => write!(
                f,
                "malformed Wasm module: {} (at byte {:#x})",
                e.message(),
                e.offset()
            ),
            Self::Component => f.write_str("a Wasm component, not a core module"),
            Self::UnsupportedVersion(v) => {
                write!(f, "Wasm binary format version {v}, expected 1")
            }
            Self::UnknownSection { id, offset } => {
                write!(f, "unknown section id {id} (at byte {offset:#x})")
            }
            Self::SectionOutOfOrder { id, offset } => write!(
                f,
                "section id {id} duplicated or out of order (at byte {offset:#x})"
            ),
            Self::Truncated { offset } => {
                write!(f, "truncated Wasm module (part at byte {offset:#x})")
            }
            Self::FunctionCountMismatch { declared, bodies } => write!(
                f,
                "{declared} functions declared but {bodies} bodies in the code section"
            ),
            Self::GlobalOutOfRange { index, offset } => {
                write!(f, "global index {index} out of range (at byte {offset:#x})")
            }
            Self::ExportNameTaken => write!(
                f,
                "the module exports a name starting with `{RESERVED_PREFIX}`, which Weft reserves"
            ),
            Self::TooLarge => f.write_str("the instrumented module would be too large to encode"),
        }
    }
}

impl core::error::Error for Error {}
