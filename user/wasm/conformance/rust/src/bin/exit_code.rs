//! std::process::exit after output on both streams: status 9.

use std::io::Write;

fn main() {
    print!("no newline, flushed by hand");
    std::io::stdout().flush().unwrap();
    eprintln!("to stderr");
    std::process::exit(9);
}
