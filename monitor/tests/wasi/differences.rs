//! The known differences from wasmtime, read from their table in
//! PROTOCOL.md §13.1 ("Differences from wasmtime"): one row per program and
//! aspect, `| `PROGRAM` | ASPECT | REASON |`.

use std::collections::BTreeMap;
use std::path::Path;

/// What is compared for each program.
pub const ASPECTS: &[&str] = &["stdout", "stderr", "status", "tree", "client"];

/// (program, aspect) → reason.
pub type Differences = BTreeMap<(String, String), String>;

/// The heading the table follows.
const HEADING: &str = "#### Differences from wasmtime";

/// Parses the table in the protocol text at `path`; panics if the section
/// is missing, or on a malformed row, an unknown aspect or a duplicate.
pub fn load(path: &Path) -> Differences {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let (start, _) = text
        .lines()
        .enumerate()
        .find(|(_, l)| l.trim() == HEADING)
        .unwrap_or_else(|| panic!("{}: no {HEADING:?} section", path.display()));
    let mut out = Differences::new();
    let section = text
        .lines()
        .enumerate()
        .skip(start + 1)
        .take_while(|(_, l)| !l.starts_with('#'));
    for (i, line) in section {
        let Some(row) = line.trim().strip_prefix('|') else {
            continue;
        };
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let at = format!("{}:{}", path.display(), i + 1);
        let [program, aspect, reason, ""] = cells[..] else {
            panic!("{at}: want | `PROGRAM` | ASPECT | REASON |");
        };
        if program == "program" || program.starts_with("---") {
            continue;
        }
        let program = program
            .strip_prefix('`')
            .and_then(|p| p.strip_suffix('`'))
            .unwrap_or_else(|| panic!("{at}: the program in backquotes"));
        assert!(!reason.is_empty(), "{at}: no reason given");
        assert!(
            ASPECTS.contains(&aspect),
            "{at}: aspect {aspect:?} is not one of {ASPECTS:?}"
        );
        let key = (program.to_string(), aspect.to_string());
        assert!(
            out.insert(key, reason.to_string()).is_none(),
            "{at}: {program} {aspect} listed twice"
        );
    }
    out
}
