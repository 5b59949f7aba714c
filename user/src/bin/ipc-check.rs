//! `ipc-check serve GUID | call GUID N TAG [PID] | send GUID N TAG | cancel
//! GUID | rtt GUID N`: exercises IPC (PROTOCOL.md §18) in a device guest.
//!
//! `serve` provides GUID (named `ipc-check`): a request is answered with
//! `echo:` and its data, except `hold` (never answered), `refuse`
//! (refused) and `stats` (answered `requests=R oneway=O disorder=D`: the
//! requests and one-way messages seen, and how many came out of order,
//! reading each message as `TAG SEQ` and expecting each sender's TAG's
//! SEQs to count up from 0). `call` makes N requests `TAG 0` … one after
//! another and checks each answer; `send` sends N one-way messages,
//! keeping up to 32 in flight, and prints `msgs_per_s RATE` (N over the
//! nanoseconds from the first send to the last one queued, rounded down);
//! `cancel` makes a `hold` request, cancels it and expects `cancelled`;
//! `rtt` times N requests and prints every time in order on lines
//! `rtt_samples_ns T1 T2 ...` (up to [`SAMPLES_PER_LINE`] a line), then
//! `rtt_ns MEDIAN`. Each prints `ok` and exits 0, or prints `ipc-check:
//! WHY` on standard error and exits 1; bad arguments exit 2.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;
use core::time::Duration;
use weft_user::ipc::{Guid, Ipc, IpcError, IpcFailure, Service, To};
use weft_user::{Args, eprintln, println};

weft_user::entry!(main);

const USAGE: &str = "usage: ipc-check serve GUID | call GUID N TAG [PID] | send GUID N TAG | cancel GUID | rtt GUID N";
/// One-way messages `send` keeps in flight.
const WINDOW: u32 = 32;
/// Times on one `rtt_samples_ns` line: each line stays within one write
/// of standard output (512 bytes), so lines of programs printing at once
/// do not interleave.
const SAMPLES_PER_LINE: usize = 32;

fn main(args: Args) -> i32 {
    let words: Vec<&str> = args.iter().skip(1).collect();
    let Some(guid) = words.get(1).and_then(|g| Guid::parse(g)) else {
        eprintln!("{USAGE}");
        return 2;
    };
    let count = |w: &str| w.parse::<u32>().ok();
    let result = match words.as_slice() {
        ["serve", _] => serve(guid),
        ["call", _, n, tag, rest @ ..] if rest.len() <= 1 => match count(n) {
            Some(n) => call(
                To {
                    guid,
                    pid: rest.first().copied(),
                },
                n,
                tag,
            ),
            None => Err(usage()),
        },
        ["send", _, n, tag] => match count(n) {
            Some(n) => send(guid, n, tag),
            None => Err(usage()),
        },
        ["cancel", _] => cancel(guid),
        ["rtt", _, n] => match count(n) {
            Some(n) if n > 0 => rtt(guid, n),
            _ => Err(usage()),
        },
        _ => Err(usage()),
    };
    match result {
        Ok(()) => {
            println!("ok");
            0
        }
        Err(Failure::Usage) => {
            eprintln!("{USAGE}");
            2
        }
        Err(Failure::Failed(why)) => {
            eprintln!("ipc-check: {why}");
            1
        }
    }
}

enum Failure {
    Usage,
    Failed(String),
}

fn usage() -> Failure {
    Failure::Usage
}

impl From<IpcFailure> for Failure {
    fn from(e: IpcFailure) -> Self {
        Failure::Failed(format!("{e}"))
    }
}

/// What the service has seen.
#[derive(Default)]
struct Seen {
    requests: u64,
    oneway: u64,
    disorder: u64,
    /// The next SEQ expected of each (sender, TAG).
    next: BTreeMap<(String, Vec<u8>), u64>,
}

impl Seen {
    fn note(&mut self, sender: &str, data: &[u8]) {
        let Some(space) = data.iter().rposition(|b| *b == b' ') else {
            return;
        };
        let seq = core::str::from_utf8(&data[space + 1..])
            .ok()
            .and_then(|s| s.parse::<u64>().ok());
        let Some(seq) = seq else { return };
        let next = self
            .next
            .entry((String::from(sender), data[..space].to_vec()))
            .or_insert(0);
        if seq != *next {
            self.disorder += 1;
        }
        *next = seq + 1;
    }
}

fn serve(guid: Guid) -> Result<(), Failure> {
    let mut service = Service::create(guid, "ipc-check")?;
    let mut seen = Seen::default();
    while let Some(m) = service.next_message(None)? {
        if !m.request {
            seen.oneway += 1;
            seen.note(&m.sender, &m.data);
            continue;
        }
        match m.data.as_slice() {
            b"hold" => {}
            b"refuse" => service.refuse(m.id, "asked to refuse")?,
            b"stats" => {
                let s = format!(
                    "requests={} oneway={} disorder={}",
                    seen.requests, seen.oneway, seen.disorder
                );
                service.reply(m.id, s.as_bytes())?;
            }
            data => {
                seen.requests += 1;
                seen.note(&m.sender, data);
                let mut answer = b"echo:".to_vec();
                answer.extend_from_slice(data);
                service.reply(m.id, &answer)?;
            }
        }
    }
    Ok(())
}

fn call(to: To<'_>, n: u32, tag: &str) -> Result<(), Failure> {
    let mut ipc = Ipc::open()?;
    for i in 0..n {
        let data = format!("{tag} {i}");
        let answer = ipc.request(to, data.as_bytes(), None)?;
        if answer != format!("echo:{data}").as_bytes() {
            return Err(Failure::Failed(format!(
                "request {i} got {:?}",
                String::from_utf8_lossy(&answer)
            )));
        }
    }
    Ok(())
}

fn send(guid: Guid, n: u32, tag: &str) -> Result<(), Failure> {
    let mut ipc = Ipc::open()?;
    let to = To { guid, pid: None };
    let mut outstanding = 0;
    let start = weft_user::time::monotonic_ns();
    for i in 0..n {
        if outstanding == WINDOW {
            ipc.next_answer()?.1?;
            outstanding -= 1;
        }
        ipc.submit(to, format!("{tag} {i}").as_bytes(), None)?;
        outstanding += 1;
    }
    for _ in 0..outstanding {
        ipc.next_answer()?.1?;
    }
    let elapsed = weft_user::time::monotonic_ns().saturating_sub(start).max(1);
    println!(
        "msgs_per_s {}",
        u128::from(n) * 1_000_000_000 / u128::from(elapsed)
    );
    Ok(())
}

fn cancel(guid: Guid) -> Result<(), Failure> {
    let mut ipc = Ipc::open()?;
    let to = To { guid, pid: None };
    let id = ipc.submit(to, b"hold", Some(Duration::from_secs(30)))?;
    ipc.cancel(id)?;
    match ipc.next_answer()? {
        (
            got,
            Err(IpcFailure::Failed {
                error: IpcError::Cancelled,
                ..
            }),
        ) if got == id => Ok(()),
        (got, other) => Err(Failure::Failed(format!("request {got} answered {other:?}"))),
    }
}

fn rtt(guid: Guid, n: u32) -> Result<(), Failure> {
    let mut ipc = Ipc::open()?;
    let to = To { guid, pid: None };
    let mut times = Vec::with_capacity(n as usize);
    for i in 0..n {
        let data = format!("rtt {i}");
        let start = weft_user::time::monotonic_ns();
        ipc.request(to, data.as_bytes(), None)?;
        times.push(weft_user::time::monotonic_ns() - start);
    }
    for line in times.chunks(SAMPLES_PER_LINE) {
        let mut text = String::from("rtt_samples_ns");
        for t in line {
            let _ = write!(text, " {t}");
        }
        println!("{text}");
    }
    times.sort_unstable();
    println!("rtt_ns {}", times[times.len() / 2]);
    Ok(())
}
