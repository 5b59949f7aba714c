//! std::fs::hard_link: shared content through both names, the link
//! surviving the original's removal, errors.

use std::fs;
use wasi_conformance::{outcome, show};

fn main() {
    outcome("hard_link a.txt h.txt", fs::hard_link("a.txt", "h.txt"));
    outcome("write via h.txt", fs::write("h.txt", "rewritten\n"));
    show("a.txt now", fs::read_to_string("a.txt"));
    outcome("remove a.txt", fs::remove_file("a.txt"));
    show("h.txt after", fs::read_to_string("h.txt"));
    outcome("hard_link over existing", fs::hard_link("b.txt", "h.txt"));
    outcome("hard_link a directory", fs::hard_link("dir", "dir2"));
    outcome("hard_link missing", fs::hard_link("missing", "m"));
    outcome("hard_link a symlink", fs::hard_link("link-file", "hl"));
    show(
        "hl is a symlink",
        fs::symlink_metadata("hl").map(|m| m.file_type().is_symlink()),
    );
}
