//! `ls [DIR]`: lists a directory (default `/`), one name per line, sorted,
//! directories with a trailing `/`.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::string::String;
use weft_user::fs::{self, FileKind};
use weft_user::{Args, eprintln, print};

weft_user::entry!(main);

fn main(args: Args) -> i32 {
    let dir = args.get(1).unwrap_or("/");
    let mut entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("ls: {e}");
            return 1;
        }
    };
    entries.sort_by(|a, b| a.name().cmp(b.name()));
    let mut out = String::new();
    for e in &entries {
        out.push_str(e.name());
        if e.file_type() == FileKind::Dir {
            out.push('/');
        }
        out.push('\n');
    }
    print!("{out}");
    0
}
