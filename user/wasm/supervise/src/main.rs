//! `supervise [--stop-after N] [--memory MIB] APP [ARGS]... [-- APP
//! [ARGS]...]...`: spawns each Wasm app (a path under `--fs-root`) as a
//! process, prints each one's end and then the process table, and exits
//! when all have ended: 0 if every app exited 0, else 1. With
//! `--stop-after N`, once N apps have ended it kills the others; with
//! `--memory MIB`, each app's memory is capped at MIB MiB.

use std::collections::BTreeMap;
use weft_app::{App, Event};

struct Supervisor {
    /// Running children: id and name.
    children: BTreeMap<u32, String>,
    failed: bool,
    /// Ends to wait for before killing the rest, if any.
    stop_after: Option<usize>,
}

impl App for Supervisor {
    fn event(&mut self, event: Event) {
        let Event::Exited { pid, status } = event else {
            return;
        };
        let name = self.children.remove(&pid).unwrap_or_default();
        println!("supervise: {name} (process {pid}) exited with status {status}");
        self.failed |= status != 0;
        print_table();
        if let Some(n) = self.stop_after.as_mut() {
            *n = n.saturating_sub(1);
            if *n == 0 {
                for (&pid, name) in &self.children {
                    println!("supervise: stopping {name} (process {pid})");
                    if let Err(e) = weft_app::kill(pid) {
                        eprintln!("supervise: kill {pid}: {e}");
                    }
                }
            }
        }
        if self.children.is_empty() {
            weft_app::exit(i32::from(self.failed));
        }
    }
}

fn print_table() {
    match weft_app::processes() {
        Ok(list) => {
            for p in list {
                println!(
                    "supervise: ps {} parent={} {} cpu_us={} memory={} sockets={} {}",
                    p.pid,
                    p.parent,
                    if p.running { "running" } else { "waiting" },
                    p.cpu.as_micros(),
                    p.memory,
                    p.sockets,
                    p.name
                );
            }
        }
        Err(e) => eprintln!("supervise: processes: {e}"),
    }
}

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut stop_after = None;
    let mut memory = 0u64;
    while let Some(option) = args.first().filter(|a| a.starts_with("--") && *a != "--") {
        let Some(n) = args.get(1).and_then(|n| n.parse::<u64>().ok()) else {
            eprintln!("supervise: {option} takes a number");
            std::process::exit(2);
        };
        match option.as_str() {
            "--stop-after" => stop_after = Some(n as usize),
            "--memory" => memory = n << 20,
            _ => {
                eprintln!("supervise: unknown option {option}");
                std::process::exit(2);
            }
        }
        args.drain(..2);
    }
    if args.is_empty() {
        eprintln!(
            "usage: supervise [--stop-after N] [--memory MIB] APP [ARGS]... [-- APP [ARGS]...]..."
        );
        std::process::exit(2);
    }
    let mut children = BTreeMap::new();
    for command in args.split(|a| a == "--").filter(|c| !c.is_empty()) {
        let rest: Vec<&str> = command[1..].iter().map(String::as_str).collect();
        match weft_app::spawn_with_memory(&command[0], &rest, memory) {
            Ok(pid) => {
                println!("supervise: started {} as process {pid}", command[0]);
                children.insert(pid, command[0].clone());
            }
            Err(e) => {
                eprintln!("supervise: cannot start {}: {e}", command[0]);
                std::process::exit(1);
            }
        }
    }
    weft_app::run(Supervisor {
        children,
        failed: false,
        stop_after,
    });
}
