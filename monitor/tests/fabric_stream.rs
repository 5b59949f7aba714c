//! Integration tests of the FABRIC stream (PROTOCOL.md §17): a real KVM
//! guest booted through the library with a fabric link, whose calls a
//! tokio task answers with canned responses (two devices, three processes,
//! a spawn that returns `b:7`, an error for the kill of an unknown pid);
//! the native `fabric-ls` and the Wasm `fabric-ls.wasm` make the calls and
//! print what they got; `fabric-hostile` sends frames that break the
//! protocol. A watch is granted with one device available and a few
//! events, or two thousand events for a program that does not read them
//! at once (its stream drops what does not fit and says how many). Plus
//! `weft run fabric-ls`, where no daemon answers.
//!
//! The guest's output is the process's own standard output, so each case
//! boots in a child process: this binary (no test harness) runs itself
//! with [`CHILD`] naming the case, and the parent asserts on what the child
//! printed and how it exited.

mod common;

use common::{target, wasm};
use std::borrow::Cow;
use std::process::Command;
use std::time::Instant;
use tokio::sync::{broadcast, mpsc};
use weft_fabric::local::{LocalRequest, LocalResponse, Program};
use weft_fabric::wire::{Device, Process};
use weft_monitor::catalog::{Catalog, WASM_RUNTIME};
use weft_monitor::run::{self, Payload, RunConfig};
use weft_monitor::status::ExitStatus;
use weft_monitor::streams::{FabricAsk, FabricCall, FabricEvent, FabricWatch, MAX_QUEUED, Policy};

/// Set in a child: the case to boot (`native`, `wasm` or `hostile`), the
/// program's arguments after it, space-separated.
const CHILD: &str = "WEFT_FABRIC_STREAM_CASE";

fn main() {
    match std::env::var(CHILD) {
        Ok(case) => std::process::exit(child(&case)),
        Err(_) => common::run_cases(TESTS),
    }
}

const TESTS: &[(&str, fn())] = &[
    ("native_fabric_ls_lists_the_fabric", || {
        lists_the_fabric("native")
    }),
    ("wasm_fabric_ls_lists_the_fabric", || {
        lists_the_fabric("wasm")
    }),
    ("native_spawn_and_a_refused_kill", || {
        spawn_and_refused_kill("native")
    }),
    ("wasm_spawn_and_a_refused_kill", || {
        spawn_and_refused_kill("wasm")
    }),
    (
        "under_plain_run_fabric_ls_says_the_guest_is_no_device",
        plain_run,
    ),
    ("hostile_frames_end_only_their_stream", hostile),
    ("native_watch_sees_devices_and_processes", || {
        watch("native")
    }),
    ("wasm_watch_sees_devices_and_processes", || watch("wasm")),
    ("native_slow_watcher_is_told_what_it_lost", || {
        slow_watch("native")
    }),
    ("wasm_slow_watcher_is_told_what_it_lost", || {
        slow_watch("wasm")
    }),
];

/// Events published after a watch is granted with `alpha` available.
fn watch_script(case: &str) -> Vec<FabricEvent> {
    match case {
        "native-watch-slow" | "wasm-watch-slow" => (0..SLOW_EVENTS)
            .map(|n| FabricEvent::Started(format!("{}:{n}", "d".repeat(1000))))
            .collect(),
        _ => vec![
            FabricEvent::DeviceDown("beta".into()),
            FabricEvent::Started("b:7".into()),
            FabricEvent::Ended {
                pid: "b:7".into(),
                status: 3,
            },
        ],
    }
}

/// Events published for the slow watcher: far more than its ring and its
/// stream's queue hold.
const SLOW_EVENTS: usize = 2000;

fn watch(case: &str) {
    let (status, out, err) = boot(&format!("{case}-watch"), "watch 4");
    assert_eq!(
        (status, out.as_str()),
        (
            0,
            "event up alpha\n\
             event down beta\n\
             event started b:7\n\
             event ended b:7 3\n"
        ),
        "{err}"
    );
}

fn slow_watch(case: &str) {
    let total = SLOW_EVENTS + 1;
    let (status, out, err) = boot(
        &format!("{case}-watch-slow"),
        &format!("watch {total} slow"),
    );
    assert_eq!(status, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.first(), Some(&"event up alpha"), "{err}");
    let lost: Vec<usize> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("event lost ")?.parse().ok())
        .collect();
    // The program stops once every event is told: seen or counted lost.
    assert_eq!(lines.len() - lost.len() + lost.iter().sum::<usize>(), total);
    assert!(!lost.is_empty(), "nothing was lost: {}", lines.len());
    // What is seen is in the order published, and at least a queue's worth
    // (the ring holds more).
    let seen: Vec<usize> = lines
        .iter()
        .filter_map(|l| {
            l.strip_prefix("event started ")?
                .rsplit(':')
                .next()?
                .parse()
                .ok()
        })
        .collect();
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "{seen:?}");
    assert!(lines.len() - lost.len() >= MAX_QUEUED, "{}", lines.len());
}

const LISTING: &str = "device alpha available\n\
                       device beta unavailable\n\
                       process alpha:2 alpha httpd running\n\
                       process alpha:3 alpha spin waiting\n\
                       process b:7 b hello ended\n";

fn lists_the_fabric(case: &str) {
    let (status, out, err) = boot(case, "");
    assert_eq!((status, out.as_str()), (0, LISTING), "{err}");
}

fn spawn_and_refused_kill(case: &str) {
    let (status, out, err) = boot(case, "spawn hello b");
    assert_eq!((status, out.as_str()), (0, "spawned b:7\n"), "{err}");
    let (status, out, err) = boot(case, "kill a:99");
    assert_eq!((status, out.as_str()), (1, ""), "{err}");
    assert!(
        err.contains("fabric-ls: kill: no process a:99 on device a"),
        "{err}"
    );
}

fn hostile() {
    let (status, out, err) = boot("hostile", "");
    assert_eq!(
        (status, out.as_str()),
        (
            0,
            "unknown kind: sent Ok(()), answer Some(Protocol)\n\
             image alone: sent Ok(()), answer Some(Protocol)\n\
             spawn cut short: sent Ok(()), answer Some(Protocol)\n\
             devices: 2\n"
        ),
        "{err}"
    );
    assert_eq!(err.matches("protocol violation").count(), 3, "{err}");
}

fn plain_run() {
    let (status, out, err) = common::run(&["run", "fabric-ls"]);
    assert_eq!((status, out.as_str()), (1, ""), "{err}");
    assert!(err.contains("not a device of a fabric"), "{err}");
    // IPC streams too (§18.1), for providers and senders alike.
    let guid = "0b5e1a7c-3d2f-4e6a-8b9c-0d1e2f3a4b5c";
    for args in [
        ["run", "kv", "serve", guid, ""],
        ["run", "kv", "get", guid, "k"],
    ] {
        let args: Vec<&str> = args.into_iter().filter(|a| !a.is_empty()).collect();
        let (status, out, err) = common::run(&args);
        assert_eq!((status, out.as_str()), (1, ""), "{err}");
        assert!(
            err.contains("IPC streams are served only under `weft daemon`"),
            "{err}"
        );
    }
}

/// Boots `case` in a child process with `args`: its status and output.
fn boot(case: &str, args: &str) -> (i32, String, String) {
    let out = Command::new(std::env::current_exe().unwrap())
        .env(CHILD, format!("{case} {args}"))
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn guest(name: &str) -> Vec<u8> {
    let p = target().join("x86_64-unknown-none/release").join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e} (run `make guest`)", p.display()))
}

/// No program is spawned by name in these cases.
struct NoPrograms;

impl Catalog for NoPrograms {
    fn find(&self, _: &str) -> Option<Cow<'static, [u8]>> {
        None
    }
}

/// The child: boots fabric-ls (native or Wasm) with a fabric link answered
/// by [`answer`]; the program's status.
fn child(case: &str) -> i32 {
    let mut words = case.split_whitespace();
    let kind = words.next().unwrap_or_default();
    let mut argv = vec![b"fabric-ls".to_vec()];
    argv.extend(words.map(|w| w.as_bytes().to_vec()));
    let kernel = guest("weft-kernel");
    let (program, payload) = match kind {
        "native" | "native-watch" | "native-watch-slow" => (guest("fabric-ls"), None),
        "hostile" => (guest("fabric-hostile"), None),
        _ => (
            guest(WASM_RUNTIME),
            Some(std::fs::read(wasm("fabric-ls")).unwrap()),
        ),
    };
    let (link, calls) = mpsc::channel(4);
    let script = watch_script(kind);
    let daemon = std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(answer(calls, script))
    });
    let cfg = RunConfig {
        kernel: &kernel,
        program: &program,
        payload: payload.as_deref().map(|bytes| Payload {
            bytes,
            executable: false,
        }),
        program_name: "fabric-ls",
        args: argv,
        env: Vec::new(),
        mem_bytes: 256 << 20,
        timeout: Some(std::time::Duration::from_secs(60)),
        stats: false,
        policy: Policy::default(),
        catalog: &NoPrograms,
        device: None,
        fabric: Some(link),
        // A thread of the test runs beside it, as in a daemon.
        sandbox: None,
        gdb: None,
        engine: weft_monitor::run::Engine::Weft,
    };
    let status = run::run(cfg, Instant::now()).unwrap();
    // The link is gone with the run: the daemon's task ends.
    daemon.join().unwrap();
    match status {
        ExitStatus::Program(s) => s.into(),
        other => panic!("the guest ended with {other:?}"),
    }
}

fn process(pid: &str, name: &str, state: &str, status: Option<u32>) -> Process {
    let device = pid.split(':').next().unwrap_or_default().to_string();
    Process {
        pid: pid.into(),
        device,
        name: name.into(),
        state: state.into(),
        cpu_ns: 1000,
        memory: 4096,
        streams: 3,
        status,
        engine: None,
    }
}

/// The canned daemon: answers each call until the link is dropped; a
/// watch is granted with `alpha` available, then `script` is published.
async fn answer(mut calls: mpsc::Receiver<FabricAsk>, script: Vec<FabricEvent>) {
    let (publish, _) = broadcast::channel(2 * SLOW_EVENTS);
    while let Some(ask) = calls.recv().await {
        let FabricCall { request, reply } = match ask {
            FabricAsk::Call(call) => call,
            FabricAsk::Watch(granted) => {
                let watch = FabricWatch {
                    available: vec!["alpha".into()],
                    events: publish.subscribe(),
                };
                let _ = granted.send(watch);
                for event in &script {
                    publish.send(event.clone()).unwrap();
                }
                continue;
            }
            // No IPC here (monitor/tests/fabric/ipc.rs has it): the ask is
            // dropped, which the stream answers as a daemon gone.
            FabricAsk::Ipc(_) => continue,
            // No moves here (monitor/tests/fabric/moves.rs has them).
            FabricAsk::Move(_) => continue,
            // No fabric addresses here: every UDP bind is local.
            FabricAsk::Udp(ask) => {
                let _ = ask.reply.send(weft_monitor::streams::UdpRoute::Local);
                continue;
            }
        };
        let response = match request {
            LocalRequest::Devices { available: false } => LocalResponse::Devices {
                devices: vec![
                    Device {
                        name: "alpha".into(),
                        id: "00aa".into(),
                        available: true,
                        addresses: vec!["10.0.0.1:7447".into()],
                        figures: None,
                    },
                    Device {
                        name: "beta".into(),
                        id: "00bb".into(),
                        available: false,
                        addresses: Vec::new(),
                        figures: None,
                    },
                ],
            },
            LocalRequest::Ps { device: None } => LocalResponse::Processes {
                processes: vec![
                    process("alpha:2", "httpd", "running", None),
                    process("alpha:3", "spin", "waiting", None),
                    process("b:7", "hello", "ended", Some(0)),
                ],
            },
            LocalRequest::Spawn {
                device: Some(device),
                program: Program::Name { name },
                args,
                engine: None,
            } if device == "b" && name == "hello" && args == ["hello"] => {
                LocalResponse::Spawned { pid: "b:7".into() }
            }
            LocalRequest::Kill { pid } => LocalResponse::Error {
                message: format!("no process {pid} on device a"),
            },
            other => LocalResponse::Error {
                message: format!("unexpected call {other:?}"),
            },
        };
        // The guest may be gone.
        let _ = reply.send(response);
    }
}
