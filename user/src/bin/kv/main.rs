//! `kv serve GUID | kv set|get|del GUID KEY [VALUE]`: a key-value service
//! on IPC (PROTOCOL.md §18), and its client, in a device guest.
//!
//! `serve` provides service GUID (named `kv`) until the process ends: the
//! requests `set KEY VALUE`, `get KEY`, `del KEY` and `count KEY` are
//! answered `ok`, the value, the new count, or refused (`no such key`,
//! `bad request`, `not a count`); a one-way `set`
//! or `del` is applied without an answer. The client sends one request and
//! prints the answer; a failure prints `kv: WHY` on standard error and
//! exits 1; bad arguments exit 2.
#![no_std]
#![no_main]

extern crate alloc;

mod rules;

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::vec::Vec;
use rules::apply;
use weft_user::ipc::{Guid, Ipc, IpcFailure, Service, To};
use weft_user::{Args, eprintln, println};

weft_user::entry!(main);

const USAGE: &str =
    "usage: kv serve GUID | kv set GUID KEY VALUE | kv get GUID KEY | kv del GUID KEY";

fn main(args: Args) -> i32 {
    let words: Vec<&str> = args.iter().skip(1).collect();
    let Some(guid) = words.get(1).and_then(|g| Guid::parse(g)) else {
        eprintln!("{USAGE}");
        return 2;
    };
    let request = match words.as_slice() {
        ["serve", _] => return report(serve(guid)),
        ["set", _, key, value] => format!("set {key} {value}"),
        ["get", _, key] => format!("get {key}"),
        ["del", _, key] => format!("del {key}"),
        _ => {
            eprintln!("{USAGE}");
            return 2;
        }
    };
    let to = To { guid, pid: None };
    report(
        Ipc::open()
            .and_then(|mut ipc| ipc.request(to, request.as_bytes(), None))
            .map(|a| {
                println!("{}", core::str::from_utf8(&a).unwrap_or("(not UTF-8)"));
            }),
    )
}

fn report(r: Result<(), IpcFailure>) -> i32 {
    match r {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("kv: {e}");
            1
        }
    }
}

fn serve(guid: Guid) -> Result<(), IpcFailure> {
    let mut service = Service::create(guid, "kv")?;
    let mut store = BTreeMap::new();
    while let Some(m) = service.next_message(None)? {
        let answer = apply(&mut store, &m.data).map(<[u8]>::to_vec);
        if m.request {
            match answer {
                Ok(value) => service.reply(m.id, &value)?,
                Err(why) => service.refuse(m.id, why)?,
            }
        }
    }
    Ok(())
}
