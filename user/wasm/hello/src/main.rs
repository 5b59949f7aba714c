//! `hello.wasm`: a plain Rust `std` program for `wasm32-wasip1`. It greets,
//! prints each argument on its own line and a line on standard error, copies
//! standard input to standard output if the first argument is `-`, prints
//! its environment (`env: KEY=VALUE` a line) if an argument is `env`, checks
//! the clocks, sleeping and randomness if an argument is `time`, and exits
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
        let copied = std::io::stdin()
            .read_to_end(&mut input)
            .and_then(|_| std::io::stdout().write_all(&input));
        if let Err(e) = copied {
            eprintln!("hello: copying standard input: {}", e.kind());
            std::process::exit(1);
        }
    }
    if args.iter().any(|a| a == "env") {
        for (key, value) in std::env::vars_os() {
            println!("env: {}={}", key.to_string_lossy(), value.to_string_lossy());
        }
    }
    if args.iter().any(|a| a == "time") {
        let start = std::time::Instant::now();
        std::thread::sleep(std::time::Duration::from_millis(30));
        println!(
            "slept at least 30 ms: {}",
            start.elapsed().as_millis() >= 30
        );
        let since_2020 = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .is_ok_and(|d| d.as_secs() > 1_577_836_800);
        println!("the wall clock is past 2020: {since_2020}");
        // A HashMap's hasher is seeded from `random_get`.
        let m: std::collections::HashMap<&str, usize> =
            args.iter().map(|a| (a.as_str(), a.len())).collect();
        println!("hash map of {} arguments", m.len());
    }
    if let Some(code) = args.iter().find_map(|a| a.strip_prefix("exit=")) {
        std::process::exit(code.parse().unwrap_or(1));
    }
}
