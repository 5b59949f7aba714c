//! Symlinks through std: creating (`fs::soft_link`, the one stable way on
//! wasm32-wasip1), read_link, symlink_metadata against metadata, removing a
//! link.

use std::fs;
use std::io;
use std::path::Path;
use wasi_conformance::{outcome, show};

/// Creates a symlink at `link` pointing to `target`.
fn symlink_path(target: &str, link: &str) -> io::Result<()> {
    #[allow(deprecated)]
    fs::soft_link(Path::new(target), Path::new(link))
}

fn main() {
    outcome("symlink_path a.txt s1", symlink_path("a.txt", "s1"));
    show("read through s1", fs::read_to_string("s1"));
    show("read_link s1", fs::read_link("s1"));
    show("read_link link-dir", fs::read_link("link-dir"));
    show("read_link dir/link-up", fs::read_link("dir/link-up"));
    show("read_link a.txt", fs::read_link("a.txt"));
    for p in ["link-file", "link-dir", "dangling", "loop-a", "a.txt"] {
        let l = fs::symlink_metadata(p).map(|m| m.file_type().is_symlink());
        let m = fs::metadata(p).map(|m| (m.is_file(), m.is_dir()));
        show(&format!("{p} symlink_metadata is_symlink"), l);
        show(&format!("{p} metadata (file, dir)"), m);
    }
    outcome("remove_file link-dir", fs::remove_file("link-dir"));
    show("dir still a dir", fs::metadata("dir").map(|m| m.is_dir()));
    outcome("symlink_path over a file", symlink_path("a.txt", "b.txt"));
}
