//! `fabric-ls [spawn PROGRAM [DEVICE] | kill PID | wait PID SECS]`: fabric
//! calls from an app in a device guest (PROTOCOL.md §17), printed as the
//! native `fabric-ls` prints them.
//!
//! Without arguments it prints every known device (`device NAME
//! available|unavailable`) and every process of the available devices
//! (`process PID DEVICE NAME STATE`). `spawn` starts a device's own program
//! and prints `spawned PID`; `kill` prints `killed PID`; `wait` prints
//! `exited PID STATUS` or `running PID`. A failure prints `fabric-ls: CALL:
//! WHY` on standard error and exits 1; bad arguments exit 2.

use weft_app::fabric::{self, Error, Image};

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
        _ => {
            eprintln!("usage: fabric-ls [spawn PROGRAM [DEVICE] | kill PID | wait PID SECS]");
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
