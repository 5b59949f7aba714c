//! `kv-app serve GUID [beside PATH ARGS...] | kv-app wait GUID |
//! kv-app set|get|del GUID KEY [VALUE] | kv-app put GUID KEY VALUE |
//! kv-app cancel GUID DATA | kv-app rtt GUID N`: a
//! key-value service on IPC by GUID (PROTOCOL.md §13.7, §18) and its
//! client, in a device guest; the Wasm twin of the native `kv`.
//!
//! `serve` is an event app providing service GUID (named `kv`): the
//! requests `set KEY VALUE`, `get KEY`, `del KEY` and `count KEY` are
//! answered `ok`, the value, the new count, or refused (`no such key`,
//! `bad request`, `not a count`); a one-way `set`
//! or `del` is applied without an answer. With `beside`, it first starts
//! the module at guest path PATH with ARGS as its child in the same
//! runtime, and prints `beside ended STATUS` when that ends.
//!
//! `wait` is a command that provides GUID (named `kv-wait`), prints
//! `waiting`, waits for one message (only this app waits), answers a
//! request `woke`, prints `woke DATA` and ends.
//!
//! The client sends one request and prints the answer; `put` sends a
//! one-way `set` and prints `queued` once a provider has it; `cancel`
//! sends DATA as a request, cancels it at once and prints `cancelled` (or
//! the answer, if it came first). `rtt` sends `count rtt` N times, one
//! request after the other, checks that the answers count up by one (each
//! request handled once, in order), and prints each round trip as
//! `rtt_samples_ns T1 T2 ...` (up to 32 a line), then `rtt_ns MEDIAN`, as
//! the native `ipc-check rtt` does. A failure
//! prints `kv-app: WHY` on standard error and exits 1; bad arguments exit
//! 2.

extern crate alloc;

#[path = "../../../src/bin/kv/rules.rs"]
mod rules;

use rules::apply;
use std::collections::BTreeMap;
use std::time::Duration;
use weft_app::ipc::{Error, Guid, Ipc, IpcError, Outcome, Service};
use weft_app::{App, Event, Interest};

const USAGE: &str = "usage: kv-app serve GUID [beside PATH ARGS...] | kv-app wait GUID | \
                     kv-app set GUID KEY VALUE | kv-app get GUID KEY | kv-app del GUID KEY | \
                     kv-app put GUID KEY VALUE | kv-app cancel GUID DATA | kv-app rtt GUID N";
/// Round trips `rtt` prints on one line.
const SAMPLES_PER_LINE: usize = 32;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    let Some(guid) = words.get(1).and_then(|g| Guid::parse(g)) else {
        usage();
    };
    let request = match words.as_slice() {
        ["serve", _] => return report(serve(guid, None)),
        ["serve", _, "beside", path, rest @ ..] => return report(serve(guid, Some((path, rest)))),
        ["wait", _] => return report(wait(guid)),
        ["cancel", _, data] => return report(cancel(guid, data)),
        ["rtt", _, n] => match n.parse() {
            Ok(n) if n > 0 => return report(rtt(guid, n)),
            _ => usage(),
        },
        ["put", _, key, value] => {
            let sent = Ipc::open()
                .and_then(|mut ipc| ipc.send(guid, None, format!("set {key} {value}").as_bytes()));
            return report(sent.map(|()| println!("queued")));
        }
        ["set", _, key, value] => format!("set {key} {value}"),
        ["get", _, key] => format!("get {key}"),
        ["del", _, key] => format!("del {key}"),
        _ => usage(),
    };
    let answer = Ipc::open().and_then(|mut ipc| ipc.request(guid, None, request.as_bytes(), None));
    report(answer.map(|a| println!("{}", String::from_utf8_lossy(&a))));
}

/// Sends `data` as a request, cancels it at once, and prints `cancelled`
/// (or the answer, if it came first).
fn cancel(guid: Guid, data: &str) -> Result<(), Error> {
    let mut ipc = Ipc::open()?;
    let id = ipc.submit(guid, None, data.as_bytes(), Some(Duration::from_secs(30)))?;
    ipc.cancel(id)?;
    match ipc.wait_for(id)? {
        Outcome::Failed(Error::Failed {
            error: IpcError::Cancelled,
            ..
        }) => println!("cancelled"),
        Outcome::Failed(e) => return Err(e),
        Outcome::Answer(a) => println!("{}", String::from_utf8_lossy(&a)),
        Outcome::Sent => println!("queued"),
    }
    Ok(())
}

/// `rtt`: `n` requests `count rtt`, one after the other (see the module).
fn rtt(guid: Guid, n: usize) -> Result<(), Error> {
    let mut ipc = Ipc::open()?;
    let mut times = Vec::with_capacity(n);
    let mut last: Option<u64> = None;
    for _ in 0..n {
        let start = std::time::Instant::now();
        let answer = ipc.request(guid, None, b"count rtt", None)?;
        times.push(start.elapsed().as_nanos());
        let count = std::str::from_utf8(&answer)
            .ok()
            .and_then(|t| t.parse::<u64>().ok());
        match (last, count) {
            (None, Some(c)) => last = Some(c),
            (Some(l), Some(c)) if c == l + 1 => last = Some(c),
            _ => fail(&format!(
                "rtt: after count {last:?} the answer was {:?}",
                String::from_utf8_lossy(&answer)
            )),
        }
    }
    for line in times.chunks(SAMPLES_PER_LINE) {
        let words: Vec<String> = line.iter().map(u128::to_string).collect();
        println!("rtt_samples_ns {}", words.join(" "));
    }
    times.sort_unstable();
    println!("rtt_ns {}", times[n / 2]);
    Ok(())
}

fn usage() -> ! {
    eprintln!("{USAGE}");
    std::process::exit(2)
}

fn report(r: Result<(), Error>) {
    if let Err(e) = r {
        fail(&e.to_string());
    }
}

fn fail(why: &str) -> ! {
    eprintln!("kv-app: {why}");
    std::process::exit(1)
}

/// The service as an event app.
struct Kv {
    service: Service,
    store: BTreeMap<Vec<u8>, Vec<u8>>,
}

impl Kv {
    /// Answers every message that is there now.
    fn drain(&mut self) -> Result<(), Error> {
        while let Some(m) = self.service.next_message()? {
            let answer = apply(&mut self.store, &m.data).map(<[u8]>::to_vec);
            if m.request {
                match answer {
                    Ok(value) => self.service.reply(m.id, &value)?,
                    Err(why) => self.service.refuse(m.id, why)?,
                }
            }
        }
        Ok(())
    }
}

impl App for Kv {
    fn event(&mut self, event: Event) {
        match event {
            Event::Readable(_) => report(self.drain()),
            Event::Closed { code, .. } => fail(&format!("the service's stream ended ({code})")),
            Event::Exited { status, .. } => println!("beside ended {status}"),
            _ => {}
        }
    }
}

fn serve(guid: Guid, beside: Option<(&str, &[&str])>) -> Result<(), Error> {
    if let Some((path, args)) = beside {
        match weft_app::spawn(path, args) {
            Ok(pid) => println!("beside {pid}"),
            Err(e) => fail(&format!("cannot start {path}: {e}")),
        }
    }
    let service = Service::create(guid, "kv")?;
    if let Err(e) = weft_app::interest(&service, Interest::Readable) {
        fail(&format!("interest: {e}"));
    }
    println!("serving");
    weft_app::run(Kv {
        service,
        store: BTreeMap::new(),
    });
    Ok(())
}

fn wait(guid: Guid) -> Result<(), Error> {
    let mut service = Service::create(guid, "kv-wait")?;
    println!("waiting");
    let m = service.wait_message()?;
    if m.request {
        service.reply(m.id, b"woke")?;
    }
    println!("woke {}", String::from_utf8_lossy(&m.data));
    Ok(())
}
