//! `procs [--list] [--kill-after MS] PROGRAM [ARGS]... [-- PROGRAM [ARGS]...]...`
//!
//! Starts each PROGRAM in a process of its own, all at once: a bundled
//! program by name, or, for a path (one containing `/`), a file read
//! through the file system (`--fs-root`) and run as an ELF executable or
//! a Wasm module. With `--list` it prints the process table once they are
//! started. It then waits for each in turn and reports how it ended; with
//! `--kill-after MS`, one still running MS milliseconds after the start is
//! killed. Exits 0 if every program started, 1 if one could not.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::borrow::Cow;
use alloc::vec::Vec;
use core::time::Duration;
use weft_user::process::{self, Image, Pid};
use weft_user::{Args, eprintln, fs, println, time};

weft_user::entry!(main);

const USAGE: &str =
    "usage: procs [--list] [--kill-after MS] PROGRAM [ARGS]... [-- PROGRAM [ARGS]...]...";

fn main(args: Args) -> i32 {
    let mut words: Vec<&str> = args.iter().skip(1).collect();
    let mut list = false;
    let mut kill_after = None;
    loop {
        match words.first().copied() {
            Some("--list") => {
                list = true;
                words.remove(0);
            }
            Some("--kill-after") => match words.get(1).map(|s| s.parse::<u64>()) {
                Some(Ok(ms)) => {
                    kill_after = Some(ms);
                    words.drain(..2);
                }
                _ => {
                    eprintln!("{USAGE}");
                    return 2;
                }
            },
            _ => break,
        }
    }
    let groups: Vec<&[&str]> = words
        .split(|w| *w == "--")
        .filter(|g| !g.is_empty())
        .collect();
    if groups.is_empty() {
        eprintln!("{USAGE}");
        return 2;
    }
    let start = time::monotonic_ns();
    let mut status = 0;
    let mut children: Vec<(Pid, &str)> = Vec::new();
    for group in groups {
        let name = group[0];
        match start_one(name, group) {
            Ok(pid) => children.push((pid, name)),
            Err(e) => {
                eprintln!("procs: {name}: cannot start: {e}");
                status = 1;
            }
        }
    }
    if list {
        print_table();
    }
    for (pid, name) in children {
        let ended = match kill_after {
            None => process::wait(pid),
            Some(ms) => {
                let left = (start + ms * 1_000_000).saturating_sub(time::monotonic_ns());
                match process::wait_timeout(pid, Duration::from_nanos(left)) {
                    Ok(Some(s)) => Ok(s),
                    Ok(None) => process::kill(pid).and_then(|()| process::wait(pid)),
                    Err(e) => Err(e),
                }
            }
        };
        match ended {
            Ok(s) => println!("procs: {name} (pid {pid}) exited with status {s}"),
            Err(e) => eprintln!("procs: {name} (pid {pid}): {e}"),
        }
    }
    status
}

/// Spawns `name` (bundled, or a file for a path) with `args`.
fn start_one(name: &str, args: &[&str]) -> Result<Pid, Cow<'static, str>> {
    if name.contains('/') {
        let bytes = fs::read(name).map_err(|e| Cow::Owned(alloc::format!("{e}")))?;
        process::spawn(Image::Bytes(&bytes), args).map_err(|e| Cow::Borrowed(e.description()))
    } else {
        process::spawn(Image::Bundled(name), args).map_err(|e| Cow::Borrowed(e.description()))
    }
}

fn print_table() {
    let records = match process::list() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("procs: cannot list processes: {e}");
            return;
        }
    };
    println!("  PID PARENT STATE     CPU_US  MEM_KIB STREAMS NAME");
    for r in records {
        let state = match r.state {
            1 => "runnable",
            2 => "blocked",
            _ => "ended",
        };
        println!(
            "{:>5} {:>6} {:<8} {:>7} {:>8} {:>7} {}",
            r.pid,
            r.parent,
            state,
            r.cpu_ns / 1000,
            r.memory / 1024,
            r.streams,
            core::str::from_utf8(r.name()).unwrap_or("?")
        );
    }
}
