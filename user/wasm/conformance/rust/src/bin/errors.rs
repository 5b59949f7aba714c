//! The error kinds and errnos std reports for common failures.

use std::fs::{self, File, OpenOptions};
use wasi_conformance::outcome;

fn main() {
    outcome("open missing", File::open("missing"));
    outcome("open ../a.txt", File::open("../a.txt"));
    outcome("open escape", File::open("escape"));
    outcome("open loop-a", File::open("loop-a"));
    outcome("open a.txt/x", File::open("a.txt/x"));
    outcome("create a directory", File::create("dir"));
    outcome("create_dir existing", fs::create_dir("dir"));
    outcome("remove_dir non-empty", fs::remove_dir("dir"));
    outcome("rename over a non-empty dir", fs::rename("emptydir", "dir"));
    outcome(
        "open for writing ro.txt",
        OpenOptions::new().write(true).open("ro.txt"),
    );
    outcome("read_to_string a dir", fs::read_to_string("dir"));
}
