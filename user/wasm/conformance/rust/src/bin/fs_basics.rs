//! std::fs basics: write, read, append, create_new, copy, metadata.

use std::fs::{self, OpenOptions};
use std::io::Write;
use wasi_conformance::{outcome, show};

fn main() {
    outcome("write new.txt", fs::write("new.txt", "first\n"));
    show("read new.txt", fs::read_to_string("new.txt"));
    let mut f = OpenOptions::new().append(true).open("new.txt").unwrap();
    outcome("append", f.write_all(b"second\n"));
    drop(f);
    show("read after append", fs::read_to_string("new.txt"));
    outcome(
        "create_new over existing",
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .open("a.txt"),
    );
    outcome(
        "create_new fresh",
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .open("fresh.txt"),
    );
    show("copy b.txt -> copy.txt", fs::copy("b.txt", "copy.txt"));
    show("read copy.txt", fs::read_to_string("copy.txt"));
    show("copy a directory", fs::copy("dir", "dircopy"));
    let m = fs::metadata("b.txt").unwrap();
    println!(
        "b.txt: file {} dir {} len {} readonly {}",
        m.is_file(),
        m.is_dir(),
        m.len(),
        m.permissions().readonly()
    );
    let m = fs::metadata("dir").unwrap();
    println!("dir: file {} dir {}", m.is_file(), m.is_dir());
    show("read a directory", fs::read("dir"));
    show("read missing", fs::read("missing"));
    show("exists link-file", fs::exists("link-file"));
    show("exists dangling", fs::exists("dangling"));
    outcome("write into a missing dir", fs::write("nodir/x", "x"));
    outcome(
        "truncate via OpenOptions",
        OpenOptions::new()
            .write(true)
            .truncate(true)
            .open("dir/c.txt"),
    );
    show("read truncated", fs::read_to_string("dir/c.txt"));
}
