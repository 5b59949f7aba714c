//! Function names, for reporting which function a trap happened in.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::ops::Range;

use wasmparser::{KnownCustom, Name};

/// The name of every function of a module, by function index (imported
/// functions first, as in the module's function index space).
///
/// A function's name is, in order of preference: its entry in the `name`
/// custom section's function-names subsection, its first export name, or
/// none (then it is shown as `function[N]`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FunctionNames {
    /// How many functions the module has, imported ones included.
    functions: u32,
    /// Every name, back to back; `named` points into it. One allocation for
    /// all names rather than one per name.
    text: String,
    /// The named functions; once [`finish`](Self::finish)ed, sorted by
    /// index with no index twice. Sparse, so memory follows the names the
    /// module carries, not a function count it claims.
    named: Vec<Named>,
}

/// One name of one function, and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Named {
    index: u32,
    source: Source,
    span: Range<u32>,
}

/// Where a name came from; the derived order is the order of preference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Source {
    NameSection,
    Export,
}

impl FunctionNames {
    /// The number of functions in the module, imported ones included.
    pub fn len(&self) -> u32 {
        self.functions
    }

    /// Whether the module has no functions at all.
    pub fn is_empty(&self) -> bool {
        self.functions == 0
    }

    /// The name of function `index`, if the module gives it one.
    pub fn name(&self, index: u32) -> Option<&str> {
        let at = self.named.binary_search_by_key(&index, |n| n.index).ok()?;
        let span = self.named.get(at)?.span.clone();
        self.text.get(span.start as usize..span.end as usize)
    }

    /// What a value read from the [`CURRENT_FUNCTION`](crate::CURRENT_FUNCTION)
    /// global says; [`CurrentFunction`]'s `Display` is the text for a trap
    /// report.
    pub fn describe(&self, current: i32) -> CurrentFunction<'_> {
        match u32::try_from(current) {
            Err(_) if current == crate::NOT_STARTED => CurrentFunction::NotStarted,
            Ok(index) if index < self.functions => CurrentFunction::Function {
                index,
                name: self.name(index),
            },
            _ => CurrentFunction::Invalid(current),
        }
    }

    /// Records an export name of function `index`.
    pub(crate) fn add_export(&mut self, index: u32, name: &str) {
        self.add(index, Source::Export, name);
    }

    /// Takes the function names from a `name` custom section. The section
    /// is optional metadata: a malformed one is used as far as it parses,
    /// never an error.
    pub(crate) fn read_custom(&mut self, custom: &wasmparser::CustomSectionReader<'_>) {
        let KnownCustom::Name(section) = custom.as_known() else {
            return;
        };
        for subsection in section {
            let Ok(Name::Function(map)) = subsection else {
                continue;
            };
            for naming in map {
                match naming {
                    Ok(naming) => self.add(naming.index, Source::NameSection, naming.name),
                    Err(_) => break,
                }
            }
        }
    }

    fn add(&mut self, index: u32, source: Source, name: &str) {
        let start = self.text.len();
        // Every name is a part of the module's bytes, at most twice over, so
        // this fits u32 for any module the format can express; a module that
        // would overflow it only loses names.
        let (Ok(start), Ok(end)) = (u32::try_from(start), u32::try_from(start + name.len())) else {
            return;
        };
        self.text.push_str(name);
        self.named.push(Named {
            index,
            source,
            span: start..end,
        });
    }

    /// Sets the module's number of functions, drops names of indices past
    /// it and keeps one name per function, the preferred one: a `name`
    /// section entry before an export, and the first of each kind.
    pub(crate) fn finish(&mut self, functions: u32) {
        self.functions = functions;
        self.named.retain(|n| n.index < functions);
        // Stable: among equal keys the first added stays first.
        self.named.sort_by_key(|n| (n.index, n.source));
        self.named.dedup_by_key(|n| n.index);
    }
}

/// The function a trap happened in, as told by the
/// [`CURRENT_FUNCTION`](crate::CURRENT_FUNCTION) global.
///
/// `Display` gives the function's name, or `function[N]` if it has none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CurrentFunction<'a> {
    /// The global still holds its initial value: no function of the module
    /// had started (for example, instantiation itself failed).
    NotStarted,
    /// Function `index` (in the module's function index space).
    Function {
        /// The function's index.
        index: u32,
        /// Its name, if the module gives it one.
        name: Option<&'a str>,
    },
    /// A value that is no function of the module. Instrumentation never
    /// stores one; seeing it means the global was not this module's.
    Invalid(i32),
}

impl fmt::Display for CurrentFunction<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotStarted => f.write_str("no function (none had started)"),
            Self::Function {
                name: Some(name), ..
            } => f.write_str(name),
            Self::Function { index, name: None } => write!(f, "function[{index}]"),
            Self::Invalid(value) => write!(f, "unknown function (global value {value})"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn first_export_names_a_function_unless_the_name_section_does() {
        let mut names = FunctionNames::default();
        names.add_export(1, "first");
        names.add_export(1, "second");
        names.add_export(2, "exported");
        names.add(2, Source::NameSection, "from_name_section");
        names.add(7, Source::NameSection, "out of range");
        names.finish(3);
        assert_eq!(names.name(0), None);
        assert_eq!(names.name(1), Some("first"));
        assert_eq!(names.name(2), Some("from_name_section"));
        assert_eq!(names.name(7), None);
    }

    #[test]
    fn describe() {
        let mut names = FunctionNames::default();
        names.add(0, Source::NameSection, "main");
        names.finish(2);
        assert_eq!(names.describe(0).to_string(), "main");
        assert_eq!(names.describe(1).to_string(), "function[1]");
        assert_eq!(names.describe(-1), CurrentFunction::NotStarted);
        assert_eq!(names.describe(2), CurrentFunction::Invalid(2));
        assert_eq!(names.describe(-5), CurrentFunction::Invalid(-5));
    }
}
