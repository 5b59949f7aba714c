//! The checked-in list of known differences from wasmtime,
//! user/wasm/conformance/differences.txt: one line per program and aspect,
//! `PROGRAM ASPECT REASON`, `#` starting a comment.

use std::collections::BTreeMap;
use std::path::Path;

/// What is compared for each program.
pub const ASPECTS: &[&str] = &["stdout", "stderr", "status", "tree", "client"];

/// (program, aspect) → reason.
pub type Differences = BTreeMap<(String, String), String>;

/// Parses the list; panics on a malformed line, an unknown aspect or a
/// duplicate.
pub fn load(path: &Path) -> Differences {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut out = Differences::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut words = line.split_whitespace();
        let (Some(program), Some(aspect)) = (words.next(), words.next()) else {
            panic!("{}:{}: want PROGRAM ASPECT REASON", path.display(), i + 1);
        };
        let reason = words.collect::<Vec<_>>().join(" ");
        assert!(
            !reason.is_empty(),
            "{}:{}: no reason given",
            path.display(),
            i + 1
        );
        assert!(
            ASPECTS.contains(&aspect),
            "{}:{}: aspect {aspect:?} is not one of {ASPECTS:?}",
            path.display(),
            i + 1
        );
        let key = (program.to_string(), aspect.to_string());
        assert!(
            out.insert(key, reason).is_none(),
            "{}:{}: {program} {aspect} listed twice",
            path.display(),
            i + 1
        );
    }
    out
}
