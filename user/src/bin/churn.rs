//! `churn N CONCURRENCY PROGRAM [ARGS]...`: spawns PROGRAM (bundled, or,
//! for a path, a file read once through the file system) N times with
//! ARGS, keeping up to CONCURRENCY of them alive: whenever that many run,
//! it waits for the oldest before spawning the next. A spawn refused with
//! `TooManyProcesses` while fewer than CONCURRENCY run (the free slots'
//! regions still deliver their last processes' streams, §14.4) is tried
//! again every millisecond for up to [`DRAIN_WAIT_MS`]. It stops at the
//! first spawn that fails otherwise; then prints
//! `churn: N spawned, N exited with status 0 in US us` (the counts it saw,
//! the guest time it took) and exits 0 if every spawn succeeded and every
//! child exited 0, else 1. Test-only: the process pool's long-run test and
//! the `make bench` figure `spawn_churn_per_s`.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::collections::VecDeque;
use alloc::vec::Vec;
use core::time::Duration;
use weft_user::process::{self, Image};
use weft_user::{Args, ErrorCode, eprintln, fs, println, time};

weft_user::entry!(main);

const USAGE: &str = "usage: churn N CONCURRENCY PROGRAM [ARGS]...";

/// How long a spawn waits for a draining slot before it counts as failed.
const DRAIN_WAIT_MS: u32 = 2_000;

fn main(args: Args) -> i32 {
    let words: Vec<&str> = args.iter().skip(1).collect();
    let (Some(Ok(n)), Some(Ok(concurrency)), Some(child)) = (
        words.first().map(|w| w.parse::<u64>()),
        words.get(1).map(|w| w.parse::<usize>()),
        words.get(2..).filter(|c| !c.is_empty()),
    ) else {
        eprintln!("{USAGE}");
        return 2;
    };
    if concurrency == 0 {
        eprintln!("{USAGE}");
        return 2;
    }
    let file;
    let image = if child[0].contains('/') {
        file = match fs::read(child[0]) {
            Ok(b) => b,
            Err(e) => {
                eprintln!("churn: {}: {e}", child[0]);
                return 1;
            }
        };
        Image::Bytes(&file)
    } else {
        Image::Bundled(child[0])
    };
    let start = time::monotonic_ns();
    let (mut spawned, mut clean) = (0u64, 0u64);
    let mut live = VecDeque::with_capacity(concurrency);
    let mut failed = false;
    let mut waited_ms = 0;
    while spawned < n || !live.is_empty() {
        if spawned < n && live.len() < concurrency && !failed {
            match process::spawn(image, child) {
                Ok(pid) => {
                    live.push_back(pid);
                    spawned += 1;
                    waited_ms = 0;
                }
                Err(ErrorCode::TooManyProcesses) if waited_ms < DRAIN_WAIT_MS => {
                    weft_user::sleep(Duration::from_millis(1));
                    waited_ms += 1;
                }
                Err(e) => {
                    eprintln!("churn: spawn {}: {e}", spawned + 1);
                    failed = true;
                }
            }
            continue;
        }
        let Some(pid) = live.pop_front() else {
            break;
        };
        match process::wait(pid) {
            Ok(0) => clean += 1,
            Ok(s) => eprintln!("churn: pid {pid} exited with status {s}"),
            Err(e) => eprintln!("churn: wait for pid {pid}: {e}"),
        }
    }
    let us = time::monotonic_ns().saturating_sub(start) / 1000;
    println!("churn: {spawned} spawned, {clean} exited with status 0 in {us} us");
    if spawned == n && clean == n { 0 } else { 1 }
}
