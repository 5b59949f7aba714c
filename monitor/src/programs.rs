//! The kernel and example programs bundled into `weft` (the catalog the
//! guest's spawn requests name programs from), and how a PROGRAM argument
//! is resolved: a bundled name, else a path to a file.

use std::borrow::Cow;
use std::path::Path;
use thiserror::Error;
use weft_monitor::catalog::{self, Catalog, Program, WASM_RUNTIME};

include!(concat!(env!("OUT_DIR"), "/bundled.rs"));

/// Why a program could not be found or read.
#[derive(Debug, Error)]
pub enum ProgramError {
    /// Neither a bundled program nor a readable file.
    #[error(
        "{name}: no such file, and no bundled program by that name (bundled: {})",
        bundled_names()
    )]
    NotFound { name: String },
    /// The file exists but could not be read.
    #[error("{path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
}

/// The programs bundled into `weft`.
#[derive(Clone, Copy, Debug)]
pub struct Bundled;

impl Catalog for Bundled {
    fn find(&self, name: &str) -> Option<Cow<'static, [u8]>> {
        bundled(name)
    }
}

/// Names of the bundled programs, comma-separated.
pub fn bundled_names() -> String {
    PROGRAMS
        .iter()
        .map(|(n, _)| *n)
        .collect::<Vec<_>>()
        .join(", ")
}

/// What PROGRAM names: a path if it names an existing file or contains a
/// `/`, otherwise a bundled program. A Wasm module (recognised by its magic
/// bytes) runs in the bundled Wasm runtime.
pub fn resolve(name: &str) -> Result<Program, ProgramError> {
    let path = Path::new(name);
    let bytes = if name.contains('/') || path.is_file() {
        match std::fs::read(path) {
            Ok(b) => Cow::Owned(b),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(ProgramError::NotFound {
                    name: name.to_owned(),
                });
            }
            Err(source) => {
                return Err(ProgramError::Read {
                    path: name.to_owned(),
                    source,
                });
            }
        }
    } else {
        bundled(name).ok_or_else(|| ProgramError::NotFound {
            name: name.to_owned(),
        })?
    };
    catalog::runnable(&Bundled, bytes).map_err(|catalog::NoRuntime| ProgramError::NotFound {
        name: WASM_RUNTIME.to_owned(),
    })
}

/// The bundled program called `name`.
fn bundled(name: &str) -> Option<Cow<'static, [u8]>> {
    PROGRAMS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, elf)| Cow::Borrowed(*elf))
}

/// The kernel ELF: `--kernel PATH`, or the bundled one.
pub fn kernel(path: Option<&Path>) -> Result<Cow<'static, [u8]>, ProgramError> {
    match path {
        None => Ok(Cow::Borrowed(KERNEL)),
        Some(p) => std::fs::read(p)
            .map(Cow::Owned)
            .map_err(|source| ProgramError::Read {
                path: p.display().to_string(),
                source,
            }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundled_programs_resolve_and_unknown_names_do_not() {
        for name in ["hello", "exit-code", "fault", "spin", "sleep", "cat"] {
            let p = resolve(name).unwrap();
            assert!(
                p.elf.starts_with(b"\x7fELF") && p.payload.is_none(),
                "{name}"
            );
        }
        let err = resolve("no-such-program").unwrap_err().to_string();
        assert!(
            err.contains("no bundled program") && err.contains("hello"),
            "{err}"
        );
        assert!(matches!(
            resolve("./no/such/file"),
            Err(ProgramError::NotFound { .. })
        ));
        assert!(kernel(None).unwrap().starts_with(b"\x7fELF"));
    }

    #[test]
    fn wasm_files_run_in_the_runtime_with_the_module_as_payload() {
        let dir = std::env::temp_dir().join(format!("weft-programs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("app.wasm");
        std::fs::write(&f, b"\0asm\x01\0\0\0").unwrap();
        let p = resolve(f.to_str().unwrap()).unwrap();
        assert_eq!(p.elf, bundled(WASM_RUNTIME).unwrap());
        assert_eq!(p.payload.as_deref(), Some(&b"\0asm\x01\0\0\0"[..]));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
