//! `spawn-bench PATH N`: spawns the module at PATH (this one) N times, one
//! after another, as `PATH child T0` where T0 is the wall clock just before
//! the spawn call. In child mode the app prints `spawn_us=` the time from
//! T0 to its `main`, and ends. Both read the same guest clock.

use std::time::{Duration, SystemTime, UNIX_EPOCH};
use weft_app::{App, Event};

fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_nanos()
}

struct Bench {
    path: String,
    left: u32,
}

impl Bench {
    fn next(&mut self) {
        if self.left == 0 {
            weft_app::exit(0);
        }
        self.left -= 1;
        let t0 = now_ns().to_string();
        if let Err(e) = weft_app::spawn(&self.path, &["child", &t0]) {
            eprintln!("spawn-bench: spawn {}: {e}", self.path);
            weft_app::exit(1);
        }
    }
}

impl App for Bench {
    fn event(&mut self, event: Event) {
        if let Event::Exited { status, .. } = event {
            if status != 0 {
                eprintln!("spawn-bench: a child exited with {status}");
                weft_app::exit(1);
            }
            self.next();
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("child") {
        let t = now_ns();
        let t0: u128 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(t);
        println!("spawn_us={:.1}", t.saturating_sub(t0) as f64 / 1e3);
        return;
    }
    let (Some(path), Some(n)) = (args.get(1), args.get(2).and_then(|n| n.parse().ok())) else {
        eprintln!("usage: spawn-bench PATH N");
        std::process::exit(2);
    };
    let mut bench = Bench {
        path: path.clone(),
        left: n,
    };
    bench.next();
    weft_app::run(bench);
}
