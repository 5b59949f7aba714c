//! `weft ipc services|call|send` (PROTOCOL.md §18): the device's CLI as an
//! IPC client, through its daemon's local socket.

use crate::cli::{IpcCallArgs, IpcCommand, IpcSendArgs, ServicesArgs};
use crate::fabric_cli::{ANSWER_LIMIT, Failed, ask, finish, print_json, unexpected};
use crate::out::{self, say};
use std::time::Duration;
use weft_fabric::local::{LocalRequest, LocalResponse};
use weft_monitor::status::ExitStatus;

/// How long a one-way send waits for its message to be queued.
const SEND_LIMIT_MS: u32 = 10_000;

/// `weft ipc ...`.
pub fn ipc(command: &IpcCommand) -> ExitStatus {
    finish(match command {
        IpcCommand::Services(a) => services(a),
        IpcCommand::Call(a) => call(a),
        IpcCommand::Send(a) => send(a, false, SEND_LIMIT_MS).map(|_| ExitStatus::Program(0)),
    })
}

fn services(a: &ServicesArgs) -> Result<ExitStatus, Failed> {
    let services = match ask(&a.state.state, LocalRequest::IpcServices, ANSWER_LIMIT)? {
        LocalResponse::Services { services } => services,
        other => return Err(unexpected(&other)),
    };
    if a.json {
        print_json(&services);
    } else {
        say!("{:<36} {:<20} {:<20}", "GUID", "NAME", "PID");
        for s in &services {
            say!("{:<36} {:<20} {:<20}", s.guid, s.name, s.pid);
        }
    }
    Ok(ExitStatus::Program(0))
}

fn call(a: &IpcCallArgs) -> Result<ExitStatus, Failed> {
    // Whole milliseconds, at least one (the parser keeps it in range).
    let ms = ((a.timeout * 1000.0).round() as u32).max(1);
    let data = send(&a.send, true, ms)?;
    out::raw(&data);
    Ok(ExitStatus::Program(0))
}

/// Sends `a`'s message (a request if `request`) and returns the reply's
/// bytes (none for a one-way message).
fn send(a: &IpcSendArgs, request: bool, timeout_ms: u32) -> Result<Vec<u8>, Failed> {
    let ask_ = LocalRequest::IpcSend {
        guid: a.guid.clone(),
        pid: a.pid.clone(),
        request,
        timeout_ms,
        data: a.data.as_bytes().to_vec(),
    };
    let limit = ANSWER_LIMIT + Duration::from_millis(timeout_ms.into());
    match ask(&a.state.state, ask_, limit)? {
        LocalResponse::Answer { data } if request => Ok(data),
        LocalResponse::Done if !request => Ok(Vec::new()),
        other => Err(unexpected(&other)),
    }
}
