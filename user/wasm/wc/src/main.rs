//! `wc.wasm [--out FILE] PATH...`: counts the lines, words and bytes of each
//! file with `std::fs`, prints one line per file and a total, and with
//! `--out` also writes the report to FILE (creating a directory `reports`
//! beside it first if it is named in the path). Exit status 1 if a file
//! could not be read or the report could not be written.

use std::fs;
use std::io::Write;

fn count(bytes: &[u8]) -> (usize, usize, usize) {
    let lines = bytes.iter().filter(|&&b| b == b'\n').count();
    let words = bytes
        .split(|b| b.is_ascii_whitespace())
        .filter(|w| !w.is_empty())
        .count();
    (lines, words, bytes.len())
}

/// Writes `report` to `out`, creating its directory first.
fn write_report(out: &str, report: &str) -> std::io::Result<()> {
    if let Some(dir) = std::path::Path::new(out)
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
    {
        fs::create_dir_all(dir)?;
    }
    fs::File::create(out)?.write_all(report.as_bytes())
}

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let out = match args.iter().position(|a| a == "--out") {
        Some(i) if i + 1 < args.len() => {
            let f = args.remove(i + 1);
            args.remove(i);
            Some(f)
        }
        _ => None,
    };
    let mut report = String::new();
    let mut total = (0, 0, 0);
    let mut status = 0;
    for path in &args {
        match fs::read(path) {
            Ok(bytes) => {
                let (l, w, b) = count(&bytes);
                total = (total.0 + l, total.1 + w, total.2 + b);
                report.push_str(&format!("{l:>7} {w:>7} {b:>7} {path}\n"));
            }
            Err(e) => {
                eprintln!("wc: {path}: {}", e.kind());
                status = 1;
            }
        }
    }
    report.push_str(&format!(
        "{:>7} {:>7} {:>7} total\n",
        total.0, total.1, total.2
    ));
    print!("{report}");
    if let Some(out) = out
        && let Err(e) = write_report(&out, &report)
    {
        eprintln!("wc: {out}: {}", e.kind());
        status = 1;
    }
    std::process::exit(status);
}
