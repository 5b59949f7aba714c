//! The fabric's commands: `weft fabric create|invite|join|devices|remove`,
//! `weft ps|spawn|kill|stats`. `create` and `join` work on the state
//! directory alone; the others ask the daemon of that directory, and say
//! so (status 2) when none runs.

use crate::cli::{FabricCommand, MoveArgs, PidArgs, PsArgs, SpawnArgs, SpawnEngine, StatsArgs};
use crate::out::say;
use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;
use weft_fabric::local::{self, LocalError, LocalRequest, LocalResponse, Program};
use weft_fabric::wire::{Device, Engine, Process};
use weft_monitor::daemon::Identity;
use weft_monitor::status::ExitStatus;

/// How long a command waits for the daemon's answer (a spawn may fetch a
/// module; `--wait` waits longer).
pub(crate) const ANSWER_LIMIT: Duration = Duration::from_secs(60);

/// A command's failure: its message and exit status.
pub(crate) struct Failed(pub String, pub ExitStatus);

impl From<LocalError> for Failed {
    fn from(e: LocalError) -> Self {
        let status = match e {
            LocalError::NoDaemon(_) => ExitStatus::Usage,
            _ => ExitStatus::Program(1),
        };
        Failed(e.to_string(), status)
    }
}

pub(crate) fn failed(message: String) -> Failed {
    Failed(message, ExitStatus::Program(1))
}

pub(crate) fn ask(
    dir: &Path,
    request: LocalRequest,
    limit: Duration,
) -> Result<LocalResponse, Failed> {
    ask_with(dir, request, None, limit)
}

/// [`ask`], with `file`'s descriptor sent along (a module file's).
fn ask_with(
    dir: &Path,
    request: LocalRequest,
    file: Option<&std::fs::File>,
    limit: Duration,
) -> Result<LocalResponse, Failed> {
    let fd = file.map(std::os::fd::AsFd::as_fd);
    match local::request_with(dir, &request, fd, limit)? {
        LocalResponse::Error { message } => Err(failed(message)),
        r => Ok(r),
    }
}

pub(crate) fn unexpected(r: &LocalResponse) -> Failed {
    failed(format!("unexpected answer from the daemon: {r:?}"))
}

pub(crate) fn finish(result: Result<ExitStatus, Failed>) -> ExitStatus {
    match result {
        Ok(s) => s,
        Err(Failed(message, status)) => {
            eprintln!("weft: {message}");
            status
        }
    }
}

pub(crate) fn print_json<T: serde::Serialize>(value: &T) {
    match serde_json::to_string(value) {
        Ok(text) => say!("{text}"),
        Err(e) => eprintln!("weft: {e}"),
    }
}

/// `weft fabric ...`.
pub fn fabric(command: &FabricCommand) -> ExitStatus {
    finish(match command {
        FabricCommand::Create(a) => Identity::create_fabric(&a.state.state, &a.name)
            .map(|fabric| {
                say!("created fabric {fabric}; this device is {}", a.name);
                ExitStatus::Program(0)
            })
            .map_err(|e| Failed(e, ExitStatus::Usage)),
        FabricCommand::Join(a) => Identity::join(&a.state.state, &a.name, &a.token)
            .map(|fabric| {
                say!("device {} joined fabric {fabric}", a.name);
                ExitStatus::Program(0)
            })
            .map_err(|e| Failed(e, ExitStatus::Usage)),
        FabricCommand::Invite(a) => invite(&a.state.state, a.expires),
        FabricCommand::Devices(a) => devices(&a.state.state, a.available, a.json).and_then(|s| {
            if a.watch {
                watch(&a.state.state, a.json)
            } else {
                Ok(s)
            }
        }),
        FabricCommand::Remove(a) => {
            let request = LocalRequest::Remove {
                name: a.name.clone(),
            };
            ask(&a.state.state, request, ANSWER_LIMIT).map(|_| ExitStatus::Program(0))
        }
    })
}

fn invite(dir: &Path, expires_secs: u64) -> Result<ExitStatus, Failed> {
    match ask(dir, LocalRequest::Invite { expires_secs }, ANSWER_LIMIT)? {
        LocalResponse::Invitation { token } => {
            say!("{token}");
            Ok(ExitStatus::Program(0))
        }
        other => Err(unexpected(&other)),
    }
}

fn devices(dir: &Path, available: bool, json: bool) -> Result<ExitStatus, Failed> {
    let devices = match ask(dir, LocalRequest::Devices { available }, ANSWER_LIMIT)? {
        LocalResponse::Devices { devices } => devices,
        other => return Err(unexpected(&other)),
    };
    if json {
        print_json(&devices);
    } else {
        print_devices(&devices);
    }
    Ok(ExitStatus::Program(0))
}

/// Prints each device that comes or goes, until the daemon ends.
fn watch(dir: &Path, json: bool) -> Result<ExitStatus, Failed> {
    let mut known: Option<BTreeSet<String>> = None;
    local::exchange(dir, &LocalRequest::Watch, None, None, |r| {
        let LocalResponse::Available { names } = r else {
            return false;
        };
        let now: BTreeSet<String> = names.into_iter().collect();
        if let Some(before) = &known {
            let came = now.difference(before).map(|n| (n, true));
            let went = before.difference(&now).map(|n| (n, false));
            for (name, available) in came.chain(went) {
                if json {
                    say!(
                        "{}",
                        serde_json::json!({ "name": name, "available": available })
                    );
                } else {
                    let state = if available {
                        "available"
                    } else {
                        "unavailable"
                    };
                    say!("{name} {state}");
                }
            }
        }
        known = Some(now);
        true
    })?;
    Ok(ExitStatus::Program(0))
}

fn print_devices(devices: &[Device]) {
    say!(
        "{:<16} {:<16} {:<9} {:>9} {:>10}  ADDRESSES",
        "NAME",
        "ID",
        "AVAILABLE",
        "PROCESSES",
        "MEMORY"
    );
    for d in devices {
        let (processes, memory) = d.figures.map_or(("-".into(), "-".into()), |f| {
            (f.processes.to_string(), f.memory.to_string())
        });
        say!(
            "{:<16} {:<16} {:<9} {:>9} {:>10}  {}",
            d.name,
            d.id,
            if d.available { "yes" } else { "no" },
            processes,
            memory,
            d.addresses.join(",")
        );
    }
}

/// `weft ps`.
pub fn ps(a: &PsArgs) -> ExitStatus {
    finish((|| {
        let request = LocalRequest::Ps {
            device: a.device.clone(),
        };
        let processes = match ask(&a.state.state, request, ANSWER_LIMIT)? {
            LocalResponse::Processes { processes } => processes,
            other => return Err(unexpected(&other)),
        };
        if a.json {
            print_json(&processes);
        } else {
            say!(
                "{:<20} {:<16} {:<16} {:<8} {:>14} {:>10}  ENGINE",
                "PID",
                "DEVICE",
                "NAME",
                "STATE",
                "CPU_NS",
                "MEMORY"
            );
            for p in &processes {
                say!(
                    "{:<20} {:<16} {:<16} {:<8} {:>14} {:>10}  {}",
                    p.pid,
                    p.device,
                    p.name,
                    p.state,
                    p.cpu_ns,
                    p.memory,
                    engine_name(p.engine).unwrap_or("-")
                );
            }
        }
        Ok(ExitStatus::Program(0))
    })())
}

/// How a Wasm app runs, as `weft ps` and `weft stats` print it; `None`
/// for a native program.
fn engine_name(engine: Option<Engine>) -> Option<&'static str> {
    engine.map(|e| match e {
        Engine::Aot => "aot",
        Engine::Interp => "interp",
    })
}

/// `weft spawn`.
pub fn spawn(a: &SpawnArgs) -> ExitStatus {
    finish((|| {
        let file = a.file();
        // A module file is opened here and its descriptor sent: the
        // daemon opens no path of ours.
        let name = file.to_string();
        let (program, module) = if file.contains('/') || file.ends_with(".wasm") {
            let module = std::fs::File::open(file).map_err(|e| failed(format!("{file}: {e}")))?;
            (Program::File { name }, Some(module))
        } else {
            (Program::Name { name }, None)
        };
        let name = Path::new(file)
            .file_name()
            .map_or(file.to_string(), |n| n.to_string_lossy().into_owned());
        let mut args = vec![name];
        args.extend(a.args().iter().cloned());
        let engine = a.engine.map(|e| match e {
            SpawnEngine::Aot => Engine::Aot,
            SpawnEngine::Interp => Engine::Interp,
        });
        let request = LocalRequest::Spawn {
            device: a.device.clone(),
            program,
            args,
            engine,
        };
        let pid = match ask_with(&a.state.state, request, module.as_ref(), ANSWER_LIMIT)? {
            LocalResponse::Spawned { pid } => pid,
            other => return Err(unexpected(&other)),
        };
        say!("{pid}");
        if !a.wait {
            return Ok(ExitStatus::Program(0));
        }
        let limit_secs = 24 * 3600;
        let request = LocalRequest::Wait { pid, limit_secs };
        match ask(
            &a.state.state,
            request,
            Duration::from_secs(limit_secs + 10),
        )? {
            LocalResponse::Exited { status, .. } => Ok(ExitStatus::Program(status.min(255) as u8)),
            other => Err(unexpected(&other)),
        }
    })())
}

/// `weft kill`.
pub fn kill(a: &PidArgs) -> ExitStatus {
    let request = LocalRequest::Kill { pid: a.pid.clone() };
    finish(ask(&a.state.state, request, ANSWER_LIMIT).map(|_| ExitStatus::Program(0)))
}

/// `weft move`: prints where the app runs now.
pub fn move_app(a: &MoveArgs) -> ExitStatus {
    let request = LocalRequest::Move {
        pid: a.pid.pid.clone(),
        to: a.device.clone(),
        wait_ms: (a.wait * 1000.0).round() as u32,
    };
    let limit = ANSWER_LIMIT + Duration::from_secs_f64(a.wait);
    finish(
        ask(&a.pid.state.state, request, limit).and_then(|r| match r {
            LocalResponse::Done => {
                say!("{} runs on {}", a.pid.pid, a.device);
                Ok(ExitStatus::Program(0))
            }
            other => Err(unexpected(&other)),
        }),
    )
}

/// `weft stats`.
pub fn stats(a: &StatsArgs) -> ExitStatus {
    finish((|| {
        let request = LocalRequest::Stats {
            pid: a.pid.pid.clone(),
        };
        let process: Process = match ask(&a.pid.state.state, request, ANSWER_LIMIT)? {
            LocalResponse::Process { process } => process,
            other => return Err(unexpected(&other)),
        };
        if a.json {
            print_json(&process);
        } else {
            say!("pid      {}", process.pid);
            say!("device   {}", process.device);
            say!("name     {}", process.name);
            say!("state    {}", process.state);
            say!("cpu_ns   {}", process.cpu_ns);
            say!("memory   {}", process.memory);
            say!("streams  {}", process.streams);
            if let Some(engine) = engine_name(process.engine) {
                say!("engine   {engine}");
            }
            if let Some(status) = process.status {
                say!("status   {status}");
            }
        }
        Ok(ExitStatus::Program(0))
    })())
}
