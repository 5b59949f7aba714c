//! create_dir_all and remove_dir_all (with symlinks inside, which are
//! removed, not followed); remove_dir and remove_file errors.

use std::fs;
use wasi_conformance::{outcome, show};

fn main() {
    outcome("create_dir_all x/y/z", fs::create_dir_all("x/y/z"));
    outcome("create_dir_all again", fs::create_dir_all("x/y/z"));
    outcome("create_dir_all over a file", fs::create_dir_all("a.txt/q"));
    fs::write("x/y/f.txt", "f").unwrap();
    outcome("remove_dir non-empty", fs::remove_dir("x"));
    outcome("remove_file a dir", fs::remove_file("x"));
    outcome("remove_dir a file", fs::remove_dir("a.txt"));
    outcome("remove_dir_all dir", fs::remove_dir_all("dir"));
    show("link-dir now", fs::metadata("link-dir").map(|m| m.is_dir()));
    outcome("remove_dir_all x", fs::remove_dir_all("x"));
    outcome("remove_dir_all missing", fs::remove_dir_all("missing"));
    outcome("remove_dir_all a symlink", fs::remove_dir_all("link-dir"));
}
