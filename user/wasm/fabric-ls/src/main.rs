//! `fabric-ls [spawn PROGRAM [DEVICE] | kill PID | wait PID SECS | watch
//! COUNT [slow]]`: fabric calls from an app in a device guest (PROTOCOL.md
//! §17), printed as the native `fabric-ls` prints them.
//!
//! Without arguments it prints every known device (`device NAME
//! available|unavailable`) and every process of the available devices
//! (`process PID DEVICE NAME STATE`). `spawn` starts a device's own program
//! and prints `spawned PID`; `kill` prints `killed PID`; `wait` prints
//! `exited PID STATUS` or `running PID`. `watch` is an event app: it
//! prints each event of the fabric as it comes (`event up NAME`, `event
//! down NAME`, `event started PID`, `event ended PID STATUS`, `event lost
//! N`) until COUNT are told; with `slow` it starts reading a second after
//! the watch began. A failure prints `fabric-ls: CALL:
//! WHY` on standard error and exits 1; bad arguments exit 2.

use std::time::Duration;
use weft_app::fabric::{self, Error, Event, Image, Watch};
use weft_app::{App, Interest};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    let (call, done) = match words.as_slice() {
        [] => ("list", list()),
        ["spawn", program] => ("spawn", spawn(program, None)),
        ["spawn", program, device] => ("spawn", spawn(program, Some(device))),
        ["kill", pid] => (
            "kill",
            fabric::kill(pid).map(|()| format!("killed {pid}\n")),
        ),
        ["wait", pid, secs] if secs.parse::<u32>().is_ok() => {
            ("wait", wait(pid, secs.parse().unwrap_or_default()))
        }
        ["watch", count, rest @ ..] if count.parse::<u64>().is_ok() && rest.len() <= 1 => {
            let slow = rest == ["slow"];
            ("watch", watch(count.parse().unwrap_or_default(), slow))
        }
        _ => {
            eprintln!(
                "usage: fabric-ls [spawn PROGRAM [DEVICE] | kill PID | wait PID SECS | watch COUNT [slow]]"
            );
            std::process::exit(2);
        }
    };
    match done {
        Ok(out) => print!("{out}"),
        Err(e) => {
            eprintln!("fabric-ls: {call}: {e}");
            std::process::exit(1);
        }
    }
}

fn list() -> Result<String, Error> {
    let mut out = String::new();
    for d in fabric::devices(false)? {
        let state = if d.available {
            "available"
        } else {
            "unavailable"
        };
        out += &format!("device {} {state}\n", d.name);
    }
    for p in fabric::processes(None)? {
        out += &format!("process {} {} {} {}\n", p.pid, p.device, p.name, p.state);
    }
    Ok(out)
}

fn spawn(program: &str, device: Option<&str>) -> Result<String, Error> {
    let pid = fabric::spawn(device, Image::Name(program), &[program])?;
    Ok(format!("spawned {pid}\n"))
}

fn wait(pid: &str, secs: u32) -> Result<String, Error> {
    Ok(match fabric::wait(pid, secs)? {
        Some(status) => format!("exited {pid} {status}\n"),
        None => format!("running {pid}\n"),
    })
}

/// Prints the events of a watch until `count` are told (a `lost N` tells N).
struct Watcher {
    watch: Watch,
    told: u64,
    count: u64,
}

impl App for Watcher {
    fn event(&mut self, event: weft_app::Event) {
        if let weft_app::Event::Timer(_) = event {
            // The slow start is over: read from now on.
            if let Err(e) = weft_app::interest(&self.watch, Interest::Readable) {
                eprintln!("fabric-ls: watch: {e}");
                weft_app::exit(1);
            }
        }
        loop {
            match self.watch.next_event() {
                Ok(Some(e)) => {
                    self.told += match e {
                        Event::Lost(n) => u64::from(n),
                        _ => 1,
                    };
                    println!("event {e}");
                    if self.told >= self.count {
                        weft_app::exit(0);
                    }
                }
                Ok(None) => return,
                Err(e) => {
                    eprintln!("fabric-ls: watch: {e}");
                    weft_app::exit(1);
                }
            }
        }
    }
}

/// Starts the watch and hands it to the runtime (nothing to print now).
fn watch(count: u64, slow: bool) -> Result<String, Error> {
    let watch = fabric::watch()?;
    if slow {
        weft_app::timer(0, Duration::from_secs(1));
    } else if let Err(e) = weft_app::interest(&watch, Interest::Readable) {
        eprintln!("fabric-ls: watch: {e}");
        std::process::exit(1);
    }
    weft_app::run(Watcher {
        watch,
        told: 0,
        count,
    });
    Ok(String::new())
}
