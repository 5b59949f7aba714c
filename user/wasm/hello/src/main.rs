//! `hello.wasm`: a plain Rust `std` program for `wasm32-wasip1`. It greets,
//! prints each argument on its own line and a line on standard error, copies
//! standard input to standard output if the first argument is `-`, and exits
//! with the status N given as `exit=N`.

use std::io::{Read, Write};

fn main() {
    println!("Hello from Wasm!");
    let args: Vec<String> = std::env::args().collect();
    for a in &args[1..] {
        println!("arg: {a}");
    }
    eprintln!("{} argument(s)", args.len() - 1);
    if args.get(1).map(String::as_str) == Some("-") {
        let mut input = Vec::new();
        std::io::stdin()
            .read_to_end(&mut input)
            .expect("read stdin");
        std::io::stdout().write_all(&input).expect("write stdout");
    }
    if let Some(code) = args.iter().find_map(|a| a.strip_prefix("exit=")) {
        std::process::exit(code.parse().unwrap_or(1));
    }
}
