//! std::fs::canonicalize on plain paths, through symlinks, missing paths.

use std::fs;
use wasi_conformance::show;

fn main() {
    for p in [
        "a.txt",
        "/a.txt",
        "dir/../a.txt",
        "link-file",
        "link-dir/c.txt",
        "dir/link-up",
        "missing",
        "dangling",
        ".",
    ] {
        show(&format!("canonicalize {p}"), fs::canonicalize(p));
    }
}
