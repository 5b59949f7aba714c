//! Reading stdin by lines, echoing them upper-cased to stdout and their
//! count to stderr.

use std::io::{self, BufRead, Write};

fn main() {
    let mut n = 0;
    let mut out = io::stdout().lock();
    for line in io::stdin().lock().lines() {
        let line = line.unwrap();
        writeln!(out, "{}", line.to_uppercase()).unwrap();
        n += 1;
    }
    eprintln!("{n} lines");
    let mut rest = String::new();
    println!("read after end: {:?}", io::stdin().read_line(&mut rest));
}
