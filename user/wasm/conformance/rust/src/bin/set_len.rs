//! File::set_len: shrink, grow with zeros, on a file opened read-only.

use std::fs::{self, File, OpenOptions};
use wasi_conformance::{outcome, show};

fn main() {
    let f = OpenOptions::new().write(true).open("b.txt").unwrap();
    outcome("set_len 3", f.set_len(3));
    show("len", f.metadata().map(|m| m.len()));
    outcome("set_len 6", f.set_len(6));
    show("content", fs::read("b.txt"));
    let r = File::open("a.txt").unwrap();
    outcome("set_len on read-only", r.set_len(0));
    show("a.txt", fs::read_to_string("a.txt"));
}
