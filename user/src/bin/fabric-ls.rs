//! `fabric-ls [spawn PROGRAM [DEVICE] | kill PID | wait PID SECS | move PID
//! DEVICE | watch COUNT [slow]]`: fabric calls from a device guest
//! (PROTOCOL.md §17).
//!
//! Without arguments it prints every known device (`device NAME
//! available|unavailable`) and every process of the available devices
//! (`process PID DEVICE NAME STATE`), one per line. `spawn` starts a
//! device's own program (on DEVICE, or this device) and prints `spawned
//! PID`; `kill` prints `killed PID`; `wait` prints `exited PID STATUS` or
//! `running PID`; `move` moves a Wasm event app (§19.4) and prints `moved
//! PID DEVICE`. `watch` prints the fabric's events as they come (`event
//! up NAME`, `event down NAME`, `event started PID`, `event ended PID
//! STATUS`, `event lost N`) until COUNT events are told (a `lost N` tells
//! N); with `slow` it lets a second pass before it reads the first. A
//! failure prints `fabric-ls: CALL: WHY` on standard error
//! and exits 1; bad arguments exit 2.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;
use weft_user::fabric::{Event, Fabric, FabricError, Image};
use weft_user::{Args, eprintln, print, println};

weft_user::entry!(main);

/// One of the calls, over an open stream with the arguments after its name.
type Call = fn(&mut Fabric, &[&str]) -> Result<String, FabricError>;

const USAGE: &str = "usage: fabric-ls [spawn PROGRAM [DEVICE] | kill PID | wait PID SECS | move PID DEVICE | watch COUNT [slow]]";

fn main(args: Args) -> i32 {
    let words: Vec<&str> = args.iter().skip(1).collect();
    if let ["watch", count, rest @ ..] = words.as_slice()
        && let (Ok(count), [] | ["slow"]) = (count.parse::<u64>(), rest)
    {
        let slow = !rest.is_empty();
        return report("watch", Fabric::open().and_then(|f| watch(f, count, slow)));
    }
    let (call, run): (&str, Call) = match words.as_slice() {
        [] => ("list", list),
        ["spawn", _] | ["spawn", _, _] => ("spawn", spawn),
        ["kill", _] => ("kill", kill),
        ["move", _, _] => ("move", move_to),
        ["wait", _, secs] if secs.parse::<u32>().is_ok() => ("wait", wait),
        _ => {
            eprintln!("{USAGE}");
            return 2;
        }
    };
    let done = Fabric::open().and_then(|mut f| run(&mut f, words.get(1..).unwrap_or_default()));
    report(call, done)
}

/// Prints what `call` gave, or why it failed; the program's status.
fn report(call: &str, done: Result<String, FabricError>) -> i32 {
    match done {
        Ok(out) => {
            print!("{out}");
            0
        }
        Err(e) => {
            eprintln!("fabric-ls: {call}: {e}");
            1
        }
    }
}

fn list(f: &mut Fabric, _: &[&str]) -> Result<String, FabricError> {
    let mut out = String::new();
    for d in f.devices(false)? {
        let state = if d.available {
            "available"
        } else {
            "unavailable"
        };
        let _ = writeln!(out, "device {} {state}", d.name);
    }
    for p in f.processes(None)? {
        let _ = writeln!(out, "process {} {} {} {}", p.pid, p.device, p.name, p.state);
    }
    Ok(out)
}

fn spawn(f: &mut Fabric, words: &[&str]) -> Result<String, FabricError> {
    let program = words.first().copied().unwrap_or_default();
    let pid = f.spawn(words.get(1).copied(), Image::Name(program), &[program])?;
    Ok(alloc::format!("spawned {pid}\n"))
}

fn kill(f: &mut Fabric, words: &[&str]) -> Result<String, FabricError> {
    let pid = words.first().copied().unwrap_or_default();
    f.kill(pid)?;
    Ok(alloc::format!("killed {pid}\n"))
}

/// How long a move waits for the app's batch to end.
const MOVE_WAIT_MS: u32 = 5000;

fn move_to(f: &mut Fabric, words: &[&str]) -> Result<String, FabricError> {
    let pid = words.first().copied().unwrap_or_default();
    let device = words.get(1).copied().unwrap_or_default();
    f.move_to(pid, device, MOVE_WAIT_MS)?;
    Ok(alloc::format!("moved {pid} {device}\n"))
}

fn wait(f: &mut Fabric, words: &[&str]) -> Result<String, FabricError> {
    let pid = words.first().copied().unwrap_or_default();
    let secs = words
        .get(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_default();
    Ok(match f.wait(pid, secs)? {
        Some(status) => alloc::format!("exited {pid} {status}\n"),
        None => alloc::format!("running {pid}\n"),
    })
}

/// Prints each event of a watch on `f` until `count` are told.
fn watch(f: Fabric, count: u64, slow: bool) -> Result<String, FabricError> {
    let mut watch = f.watch()?;
    if slow {
        weft_user::sleep(core::time::Duration::from_secs(1));
    }
    let mut told = 0;
    while told < count {
        let Some(event) = watch.next_event(None)? else {
            continue;
        };
        told += match event {
            Event::Lost(n) => u64::from(n),
            _ => 1,
        };
        println!("event {event}");
    }
    Ok(String::new())
}
