//! `proc-bench PATH N`: spawns the ELF at PATH (read once through the file
//! system) N times, one after another, each as `proc-bench child T` where T
//! is the guest clock just before the `spawn` call; each child prints
//! `spawn_us=` the time from T to its own `main`, and the parent waits for
//! it. Test-only: the `make bench` figure `process_spawn_us`.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::format;
use weft_user::process::{self, Image};
use weft_user::{Args, eprintln, fs, println, time};

weft_user::entry!(main);

fn main(args: Args) -> i32 {
    if args.get(1) == Some("child") {
        let now = time::monotonic_ns();
        let t0: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(now);
        println!("spawn_us={:.1}", now.saturating_sub(t0) as f64 / 1000.0);
        return 0;
    }
    let (Some(path), Some(Ok(n))) = (args.get(1), args.get(2).map(str::parse::<u32>)) else {
        eprintln!("usage: proc-bench PATH N");
        return 2;
    };
    let image = match fs::read(path) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("proc-bench: {path}: {e}");
            return 1;
        }
    };
    for _ in 0..n {
        let t0 = format!("{}", time::monotonic_ns());
        let spawned = process::spawn(Image::Bytes(&image), &["proc-bench", "child", &t0])
            .and_then(process::wait);
        if let Err(e) = spawned {
            eprintln!("proc-bench: spawn: {e}");
            return 1;
        }
    }
    0
}
