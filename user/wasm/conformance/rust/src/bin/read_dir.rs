//! std::fs::read_dir: the root and a subdirectory (sorted, with types), a
//! symlinked directory, a file, a missing path.

use std::fs;
use wasi_conformance::describe;

/// The entry's type as read_dir reports it (or why it could not).
fn kind(e: &fs::DirEntry) -> String {
    match e.file_type() {
        Ok(t) if t.is_symlink() => "symlink".into(),
        Ok(t) if t.is_dir() => "dir".into(),
        Ok(t) if t.is_file() => "file".into(),
        Ok(_) => "other".into(),
        Err(e) => describe(&e),
    }
}

/// Prints the sorted entries of `path`, or the error.
fn list(path: &str) {
    match fs::read_dir(path) {
        Ok(entries) => {
            let mut v: Vec<String> = entries
                .map(|e| match e {
                    Ok(e) => format!("{} {}", e.file_name().to_string_lossy(), kind(&e)),
                    Err(e) => format!("entry {}", describe(&e)),
                })
                .collect();
            v.sort();
            println!("read_dir {path}: {}", v.join(", "));
        }
        Err(e) => println!("read_dir {path}: {}", describe(&e)),
    }
}

fn main() {
    list(".");
    list("/");
    list("dir");
    list("dir/sub");
    list("emptydir");
    list("link-dir");
    list("a.txt");
    list("missing");
    list("loop-a");
    let mut paths: Vec<String> = fs::read_dir("dir")
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path().display().to_string()))
        .collect();
    paths.sort();
    println!("paths under dir: {}", paths.join(", "));
}
