//! Moving a running Wasm app between devices (PROTOCOL.md §19), with three
//! real daemons in network namespaces: the stateful app (`stateful`: a
//! running FNV hash over every event it has seen, and MiBs of memory it
//! keeps rewriting and checking) goes round a→b→c→a and every tick it
//! prints, on whichever device, carries the hash of a run that never
//! moved; moves that cannot happen fail saying why and leave the app where
//! it was; a destination killed mid-move leaves the app running at the
//! source with its state; a service the app provides moves with it, and
//! two clients calling it all along get every answer once, in order.
//!
//! `make test` goes round three times; `make move-soak` a thousand hops;
//! the stateful app provides a service on its way round, which two clients
//! call all along.

mod udp;

use super::common::wasm;
use super::netns::Net;
use super::{
    Daemon, Scratch, cli, device_names, eventually, ipc_call, json, module_identity, ok, pair,
    serial, weft_in,
};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// The key-value service the moving `kv-app` provides.
const KV: &str = "5c0f7a2e-1d3b-4e5f-8a6b-7c8d9e0f1a2b";

/// FNV-1a's offset basis: `stateful`'s hash before its first tick.
const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// `stateful`'s hash at tick `n` from its hash at tick `n − 1`: FNV-1a
/// over the record of timer event `n` (kind 4, id 0, value the token),
/// little-endian.
fn tick_hash(h: u64, n: u64) -> u64 {
    let mut record = [0u8; 16];
    record[..4].copy_from_slice(&4u32.to_le_bytes());
    record[8..].copy_from_slice(&n.to_le_bytes());
    record
        .iter()
        .fold(h, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// Every `tick N HASH` line in `log`: N → HASH. The daemon's own lines
/// (each written whole) are taken out first: the app's output and the
/// daemon's go to the log through two streams, so one of those may land
/// inside a line of the app's.
fn ticks(log: &str) -> BTreeMap<u64, String> {
    let mut app = String::with_capacity(log.len());
    let mut rest = log;
    while let Some(at) = rest.find("weft daemon: ") {
        app.push_str(&rest[..at]);
        rest = rest[at..].split_once('\n').map_or("", |(_, after)| after);
    }
    app.push_str(rest);
    app.lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            (words.next()? == "tick").then_some(())?;
            let n = words.next()?.parse().ok()?;
            Some((n, words.next()?.to_string()))
        })
        .collect()
}

/// The ticks of every log, each N once (a tick printed twice, by two
/// devices or one, fails), each with the hash a run that never moved has.
fn checked_ticks(logs: &[String]) -> u64 {
    let mut all = BTreeMap::new();
    for log in logs {
        for (n, hash) in ticks(log) {
            assert!(!log.contains("CORRUPT"), "memory corrupted: {log}");
            assert!(all.insert(n, hash).is_none(), "tick {n} printed twice");
        }
    }
    let last = all.keys().next_back().copied().unwrap_or(0);
    // The hashes a run that never moved prints, one after the other (a
    // hash computed afresh for each tick made this check quadratic, and a
    // thousand hops spent their time in it).
    let mut expected = FNV_OFFSET;
    for n in 1..=last {
        let hash = all.get(&n).unwrap_or_else(|| panic!("tick {n} is missing"));
        expected = tick_hash(expected, n);
        assert_eq!(*hash, format!("{expected:016x}"), "tick {n}'s hash");
    }
    last
}

/// Three devices a, b, c in namespaces of one bridge.
struct Fabric {
    net: Net,
    _scratch: Scratch,
    dirs: Vec<PathBuf>,
    daemons: Vec<Daemon>,
}

impl Fabric {
    fn new() -> Fabric {
        Fabric::owning(None)
    }

    /// With `Some(port)`, device a owns its namespace's address as a
    /// fabric address (`--fabric-ip`) and grants `--listen` on `port`
    /// there.
    fn owning(port: Option<u16>) -> Fabric {
        let net = Net::new(3);
        let fabric = port.map(|p| (net.addr(0).to_string(), format!("{}:{p}", net.addr(0))));
        let scratch = Scratch::new("moves");
        let dirs: Vec<PathBuf> = ["a", "b", "c"].iter().map(|n| scratch.state(n)).collect();
        let addr = |i: usize| format!("{}:7447", net.addr(i));
        ok(&dirs[0], &["fabric", "create", "--name", "a"]);
        // Room for an app of tens of MiB and its snapshot; a file an app
        // can open on each.
        let roots: Vec<String> = ["a", "b", "c"]
            .iter()
            .map(|n| {
                let root = scratch.state(&format!("{n}-root"));
                std::fs::create_dir_all(&root).unwrap();
                std::fs::write(root.join("data.txt"), n).unwrap();
                root.display().to_string()
            })
            .collect();
        let start = |i: usize| {
            let mut options = vec!["--mem", "512", "--fs-root", &roots[i], "--read-only"];
            if let (0, Some((ip, granted))) = (i, &fabric) {
                options.extend(["--fabric-ip", ip, "--listen", granted]);
            }
            Daemon::start_with(weft_in(&net, i), &dirs[i], &addr(i), &[], &options)
        };
        let mut daemons = vec![start(0)];
        for (i, name) in [(1, "b"), (2, "c")] {
            pair(&dirs[0], &dirs[i], name, weft_in(&net, i));
            daemons.push(start(i));
        }
        for d in &dirs {
            eventually("three available", Duration::from_secs(20), || {
                device_names(d, true) == ["a", "b", "c"]
            });
        }
        Fabric {
            net,
            _scratch: scratch,
            dirs,
            daemons,
        }
    }

    fn dir(&self, device: &str) -> &Path {
        &self.dirs[index(device)]
    }

    fn logs(&self) -> Vec<String> {
        self.daemons.iter().map(Daemon::log).collect()
    }

    /// The highest tick `device`'s log holds.
    fn last_tick(&self, device: &str) -> u64 {
        let log = self.daemons[index(device)].log();
        ticks(&log).keys().next_back().copied().unwrap_or(0)
    }
}

fn index(device: &str) -> usize {
    match device {
        "a" => 0,
        "b" => 1,
        _ => 2,
    }
}

/// The device `pid` runs on, as `from` sees it.
fn device_of(from: &Path, pid: &str) -> String {
    let out = ok(from, &["stats", "--json", pid]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["pid"], pid, "{v}");
    v["device"].as_str().unwrap_or_default().to_string()
}

#[test]
fn a_stateful_app_moves_round_three_devices_with_its_state() {
    let _serial = serial();
    go_round(9);
}

/// The thousand-hop loop of `make move-soak`.
#[test]
#[ignore = "a soak: run by `make move-soak`"]
fn a_stateful_app_moves_a_thousand_times() {
    let _serial = serial();
    go_round(1000);
}

fn go_round(hops: usize) {
    let f = Fabric::new();
    // It provides a service too, which two clients call all along.
    let pid = serve(&f, &wasm("stateful"), &["--serve", KV, "4", "20"]);
    assert!(pid.starts_with("a:"), "{pid}");
    eventually("it ticks on a", Duration::from_secs(20), || {
        f.last_tick("a") >= 3
    });
    let clients = Clients::start(&f);
    let route = ["b", "c", "a"];
    for hop in 0..hops {
        let to = route[hop % 3];
        // Each hop asked from another device than the last.
        let from = route[(hop + 1) % 3];
        let out = ok(f.dir(from), &["move", &pid, to]);
        assert_eq!(out.trim(), format!("{pid} runs on {to}"));
        let before = checked_ticks(&f.logs());
        eventually(
            "it ticks on at its destination",
            Duration::from_secs(20),
            || f.last_tick(to) > before,
        );
        assert_eq!(device_of(f.dir(from), &pid), to);
    }
    let last = checked_ticks(&f.logs());
    assert!(last as usize > hops, "{last} ticks over {hops} hops");
    prepared_every_time(&f.logs(), hops);
    clients.answered_more(1);
    for (n, key) in clients.finish(&f).into_iter().zip(KEYS) {
        eprintln!("{key}: {n} answers, in order, across {hops} moves");
    }
    // It is listed once, under its pid, on the device it ended on.
    let listed = json(f.dir("b"), &["ps", "--json"]);
    let mine: Vec<_> = listed.iter().filter(|p| p["pid"] == pid.as_str()).collect();
    assert_eq!(mine.len(), 1, "{listed:?}");
    // Killed and waited for from devices it never ran on as such.
    let at = route[(hops + 2) % 3];
    ok(f.dir("b"), &["kill", &pid]);
    let (code, _, err) = cli(f.dir("c"), &["ps", "--json"]);
    assert_eq!(code, 0, "{err}");
    eventually("its end is seen", Duration::from_secs(10), || {
        let v: serde_json::Value =
            serde_json::from_str(&ok(f.dir("a"), &["stats", "--json", &pid])).unwrap();
        v["status"] == 137 && v["device"] == at
    });
}

/// Each of the `hops` moves in `logs` restored the app in a runtime its
/// destination prepared before the capture (§19.4), not one started in
/// the app's downtime, and no process crashed (a prepared runtime that
/// crashes leaves every move to the slow way, unseen otherwise).
fn prepared_every_time(logs: &[String], hops: usize) {
    let all = logs.concat();
    assert!(!all.contains("crashed"), "a process crashed: {all}");
    let adopted: Vec<&str> = all.lines().filter(|l| l.contains("moved here")).collect();
    assert_eq!(adopted.len(), hops, "{adopted:#?}");
    for line in adopted {
        assert!(
            line.contains(", prepared)"),
            "not restored where prepared: {line}"
        );
    }
}

#[test]
fn moves_that_cannot_happen_fail_clearly_and_lose_nothing() {
    let _serial = serial();
    let mut f = Fabric::new();
    let app = wasm("stateful");
    let refused = |from: &str, pid: &str, to: &str, wait: &str, why: &str| {
        let (code, out, err) = cli(f.dir(from), &["move", pid, to, "--wait", wait]);
        assert_ne!(code, 0, "{out}");
        assert!(err.contains(why), "moving {pid} to {to}: {err}");
    };

    // A native program, and a Wasm command inside its entry point.
    let native = ok(f.dir("a"), &["spawn", "--device", "a", "sleep", "600000"]);
    refused("b", native.trim(), "c", "1", "cannot move");
    let spin = ok(f.dir("a"), &["spawn", "--device", "a", &wasm("spin")]);
    refused("a", spin.trim(), "b", "1", "a command cannot move");

    // An event app busy in a batch longer than the move's wait.
    let busy = ok(
        f.dir("a"),
        &["spawn", "--device", "a", &app, "1", "10", "1500"],
    );
    eventually("the busy app ticks", Duration::from_secs(20), || {
        f.daemons[0].log().contains("tick 1 ")
    });
    refused("a", busy.trim(), "b", "0.2", "busy");
    ok(f.dir("a"), &["kill", busy.trim()]);

    // Nowhere to go.
    let pid = ok(f.dir("a"), &["spawn", "--device", "a", &app, "32", "20"])
        .trim()
        .to_string();
    eventually("it ticks", Duration::from_secs(30), || {
        f.last_tick("a") >= 2
    });
    refused("b", &pid, "a", "1", "runs on a already");
    refused("b", &pid, "nowhere", "1", "not an available device");

    // The destination dies while the app's 32 MiB travel: the app goes on
    // at the source with its state.
    let mover = {
        let dir = f.dir("a").to_path_buf();
        let pid = pid.clone();
        std::thread::spawn(move || cli(&dir, &["move", &pid, "c"]))
    };
    std::thread::sleep(Duration::from_millis(150));
    f.daemons[2].kill9();
    let (code, _, err) = mover.join().unwrap();
    assert_ne!(code, 0, "the move went through before c died");
    assert!(err.contains("goes on on a"), "{err}");
    let before = f.last_tick("a");
    eventually("it ticks on at a", Duration::from_secs(20), || {
        f.last_tick("a") > before + 2
    });
    checked_ticks(&f.logs());
    // Asked from b once the fabric has noticed c is gone (its lease).
    eventually("b finds it on a", Duration::from_secs(10), || {
        let (code, out, _) = cli(f.dir("b"), &["stats", "--json", &pid]);
        code == 0 && out.contains("\"device\":\"a\"")
    });

    // The engine: by default a device compiles commands and interprets
    // event apps (which move); a spawn may ask. A compiled event app runs
    // (and ticks) but does not move, and says so.
    let engine = |pid: &str| {
        let out = ok(f.dir("a"), &["stats", "--json", pid]);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        v["engine"].as_str().unwrap_or("none").to_string()
    };
    assert_eq!(engine(spin.trim()), "aot");
    assert_eq!(engine(&pid), "interp");
    assert_eq!(engine(native.trim()), "none");
    let interpreted = ok(
        f.dir("a"),
        &[
            "spawn",
            "--device",
            "b",
            "--engine",
            "interp",
            &wasm("spin"),
        ],
    );
    assert_eq!(engine(interpreted.trim()), "interp");
    ok(f.dir("a"), &["kill", &pid]);
    let compiled = ok(
        f.dir("a"),
        &["spawn", "--device", "b", "--engine", "aot", &app, "1", "20"],
    );
    let compiled = compiled.trim();
    assert!(compiled.starts_with("b:"), "{compiled}");
    assert_eq!(engine(compiled), "aot");
    let table = ok(f.dir("a"), &["ps", "--device", "b"]);
    assert!(
        table
            .lines()
            .any(|l| l.starts_with(compiled) && l.ends_with("  aot")),
        "{table}"
    );
    eventually(
        "the compiled app ticks on b",
        Duration::from_secs(20),
        || f.last_tick("b") >= 2,
    );
    let (code, _, err) = cli(f.dir("a"), &["move", compiled, "a", "--wait", "1"]);
    assert_ne!(code, 0);
    assert!(err.contains("runs compiled (engine aot)"), "{err}");
    let (code, _, err) = cli(f.dir("a"), &["spawn", "--engine", "aot", "sleep", "1"]);
    assert_ne!(code, 0);
    assert!(err.contains("only to a Wasm module"), "{err}");
    // A module the compiler refuses (it uses the event ABI without
    // stating its interface version) is refused at its spawn, saying why.
    let unstated = f.dir("a").join("unstated.wasm");
    let module =
        "(module (import \"weft\" \"pid\" (func (result i32))) (func (export \"_start\")))";
    std::fs::write(&unstated, wat::parse_str(module).unwrap()).unwrap();
    let unstated = unstated.to_str().unwrap();
    let (code, _, err) = cli(
        f.dir("a"),
        &["spawn", "--device", "b", "--engine", "aot", unstated],
    );
    assert_ne!(code, 0);
    assert!(
        err.contains("cannot run compiled") && err.contains("interface"),
        "{err}"
    );
}

#[test]
fn apps_move_themselves_and_native_programs_move_them() {
    let _serial = serial();
    let f = Fabric::new();
    // Every eighth tick it asks to go to the next of c, b, a (it ticks on
    // while the destination readies itself).
    let app = wasm("stateful");
    let pid = ok(
        f.dir("a"),
        &[
            "spawn", "--device", "a", &app, "1", "20", "0", "8", "c", "b", "a",
        ],
    )
    .trim()
    .to_string();
    eventually("it went round by itself", Duration::from_secs(30), || {
        let logs = f.logs();
        logs.iter().all(|l| l.contains("going")) && f.last_tick("a") > 12
    });
    checked_ticks(&f.logs());
    for (device, log) in ["a", "b", "c"].iter().zip(f.logs()) {
        assert!(!log.contains("stay "), "{device} refused a move: {log}");
        assert!(!ticks(&log).is_empty(), "{device} ran no ticks: {log}");
    }

    // Ended, so that none of its moves takes c (a device takes one app
    // at a time) while a native program in b's guest moves another app of
    // a's there.
    ok(f.dir("b"), &["kill", &pid]);
    let still = ok(f.dir("a"), &["spawn", "--device", "a", &app, "1", "50"])
        .trim()
        .to_string();
    let (code, _, err) = cli(
        f.dir("b"),
        &["spawn", "--wait", "fabric-ls", "move", &still, "c"],
    );
    assert_eq!(code, 0, "{err}{}", f.daemons[1].log());
    eventually(
        "the native program said so",
        Duration::from_secs(10),
        || f.daemons[1].log().contains(&format!("moved {still} c")),
    );
    assert_eq!(device_of(f.dir("a"), &still), "c");
}

/// Starts `app ARGS...` on a, whose module every device's registry names
/// as the provider of [`KV`]; its pid, once every device sees the service.
fn serve(f: &Fabric, app: &str, args: &[&str]) -> String {
    let registry = format!(
        r#"{{"services":[{{"guid":"{KV}","name":"kv","provider":"{}"}}]}}"#,
        module_identity(app)
    );
    for d in ["a", "b", "c"] {
        std::fs::write(f.dir(d).join("services.json"), &registry).unwrap();
    }
    let mut spawn = vec!["spawn", "--device", "a", app];
    spawn.extend_from_slice(args);
    let pid = ok(f.dir("a"), &spawn).trim().to_string();
    eventually("the service is seen", Duration::from_secs(20), || {
        ["b", "c"].iter().all(|d| {
            json(f.dir(d), &["ipc", "services", "--json"])
                .iter()
                .any(|s| s["guid"] == KV && s["pid"] == pid.as_str())
        })
    });
    pid
}

/// The key-value service `kv-app`, started on a.
fn serve_kv(f: &Fabric) -> String {
    serve(f, &wasm("kv-app"), &["serve", KV])
}

/// Two clients, on b and on c, that call `count from-b` and `count
/// from-c` on [`KV`] from their device's CLI, one request at a time, until
/// stopped: each answer must be the next number, so each request was
/// handled once, in order, by one store.
struct Clients {
    stop: Arc<AtomicBool>,
    answered: [Arc<AtomicU64>; 2],
    threads: Vec<std::thread::JoinHandle<Result<u64, String>>>,
}

const KEYS: [&str; 2] = ["from-b", "from-c"];

impl Clients {
    fn start(f: &Fabric) -> Clients {
        let stop = Arc::new(AtomicBool::new(false));
        let answered = [Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0))];
        let threads = ["b", "c"]
            .iter()
            .zip(KEYS)
            .zip(&answered)
            .map(|((d, key), count)| {
                let (dir, stop, count) = (f.dir(d).to_path_buf(), stop.clone(), count.clone());
                std::thread::spawn(move || count_on(&dir, key, &stop, &count))
            })
            .collect();
        Clients {
            stop,
            answered,
            threads,
        }
    }

    /// Waits until each client is answered `n` times more (or one failed).
    fn answered_more(&self, n: u64) {
        let before: Vec<u64> = self
            .answered
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect();
        eventually("the clients are answered", Duration::from_secs(30), || {
            self.answered
                .iter()
                .zip(&before)
                .all(|(c, b)| c.load(Ordering::Relaxed) >= b + n)
                || self.threads.iter().any(|t| t.is_finished())
        });
    }

    /// Stops them; how many answers each had (a client that failed fails
    /// the test with why, and the daemons' logs).
    fn finish(self, f: &Fabric) -> [u64; 2] {
        self.stop.store(true, Ordering::Relaxed);
        let mut counts = [0; 2];
        for (i, t) in self.threads.into_iter().enumerate() {
            let answered = t.join().unwrap();
            counts[i] = answered.unwrap_or_else(|why| panic!("{why}\n{:#?}", f.logs()));
        }
        counts
    }
}

/// One client's loop (see [`Clients`]): its count of answers, or what went
/// wrong.
fn count_on(dir: &Path, key: &str, stop: &AtomicBool, answered: &AtomicU64) -> Result<u64, String> {
    let request = format!("count {key}");
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let (code, out, err) = ipc_call(dir, &["--timeout", "20", KV, &request]);
        if code != 0 {
            return Err(format!("request {} of {key}: {err}", n + 1));
        }
        n += 1;
        if out.trim() != n.to_string() {
            return Err(format!("request {n} of {key} was answered {out:?}"));
        }
        answered.store(n, Ordering::Relaxed);
    }
    Ok(n)
}

#[test]
fn a_service_moves_with_its_app_and_its_clients_lose_nothing() {
    let _serial = serial();
    let f = Fabric::new();
    let pid = serve_kv(&f);

    // Two clients, on b and on c, call it all along.
    let clients = Clients::start(&f);
    let route = ["b", "c", "a", "c", "b", "a"];
    for (hop, to) in route.iter().enumerate() {
        // Each client is answered a few times more before the next move.
        clients.answered_more(3);
        let from = route[(hop + 1) % route.len()];
        let (code, out, err) = cli(f.dir(from), &["move", &pid, to, "--wait", "10"]);
        assert_eq!(code, 0, "hop {hop} to {to}: {out}{err}{:#?}", f.logs());
        assert_eq!(out.trim(), format!("{pid} runs on {to}"));
    }
    // A move that fails once the app is captured (c's registry no longer
    // names the module, so the restored app cannot provide the service
    // there): the app goes on at a, and so do the requests held meanwhile.
    clients.answered_more(3);
    std::fs::write(f.dir("c").join("services.json"), r#"{"services":[]}"#).unwrap();
    let (code, _, err) = cli(f.dir("a"), &["move", &pid, "c", "--wait", "10"]);
    assert_ne!(code, 0, "moved to c without a provider entry");
    assert!(err.contains("goes on on a"), "{err}");
    clients.answered_more(3);
    for (n, key) in clients.finish(&f).into_iter().zip(KEYS) {
        eprintln!("{key}: {n} answers, in order, across {} moves", route.len());
        assert!(n >= 3 * (route.len() as u64 + 1), "{key}: {n} answers");
        // The store moved whole: the count is where the client left it.
        let (code, out, err) = ipc_call(f.dir("a"), &[KV, &format!("get {key}")]);
        assert_eq!((code, out.trim()), (0, n.to_string().as_str()), "{err}");
    }
    // Requests came while it moved: held at the source and sent on (each
    // client calls without a pause, so most moves hold one of each).
    let logs = f.logs();
    let forwarded: Vec<&str> = logs
        .iter()
        .flat_map(|l| l.lines().filter(|l| l.contains("sent on to")))
        .collect();
    assert!(forwarded.len() >= route.len() / 2, "{forwarded:#?}");
    // One instance, on the device the app ended on.
    let services = json(f.dir("b"), &["ipc", "services", "--json"]);
    let ours: Vec<_> = services.iter().filter(|s| s["guid"] == KV).collect();
    assert_eq!(ours.len(), 1, "{services:?}");
    assert_eq!(ours[0]["device"], "a", "{services:?}");
}

#[test]
fn a_moved_app_is_found_when_its_first_device_is_gone() {
    let _serial = serial();
    let mut f = Fabric::new();
    let pid = serve_kv(&f);
    assert_eq!(ipc_call(f.dir("c"), &[KV, "count z"]).1.trim(), "1");
    // Moved by a, to b: c sees neither the move nor, once a is gone, the
    // device that remembers it.
    assert_eq!(
        ok(f.dir("a"), &["move", &pid, "b"]).trim(),
        format!("{pid} runs on b")
    );
    eventually("c sees it served from b", Duration::from_secs(20), || {
        json(f.dir("c"), &["ipc", "services", "--json"])
            .iter()
            .any(|s| s["guid"] == KV && s["pid"] == pid.as_str() && s["device"] == "b")
    });
    f.daemons[0].kill9();
    eventually("c finds it on b", Duration::from_secs(20), || {
        let (code, out, _) = cli(f.dir("c"), &["stats", "--json", &pid]);
        code == 0 && out.contains("\"device\":\"b\"")
    });
    // A message to it by its pid reaches it there, with its state.
    let (code, out, err) = ipc_call(f.dir("c"), &["--pid", &pid, KV, "count z"]);
    assert_eq!((code, out.trim()), (0, "2"), "{err}");
}

#[test]
fn what_cannot_follow_an_app_is_closed_and_the_app_told() {
    let _serial = serial();
    let f = Fabric::new();
    let app = wasm("stateful");
    let pid = ok(
        f.dir("a"),
        &[
            "spawn",
            "--device",
            "a",
            &app,
            "--open",
            "/data.txt",
            "1",
            "20",
        ],
    )
    .trim()
    .to_string();
    eventually("it ticks on a", Duration::from_secs(20), || {
        f.last_tick("a") >= 2
    });
    assert_eq!(
        ok(f.dir("a"), &["move", &pid, "b"]).trim(),
        format!("{pid} runs on b")
    );
    eventually("it ticks on at b", Duration::from_secs(20), || {
        f.last_tick("b") > 0
    });
    // Its file (descriptor 4, the first after the root) stayed behind,
    // and it was told, once, in its first batch at b.
    let told = "stateful: descriptor 4 (file) was closed by the move";
    let logs = f.logs();
    assert_eq!(logs[1].matches(told).count(), 1, "{}", logs[1]);
    assert!(!logs[0].contains(told), "{}", logs[0]);
    checked_ticks(&logs);
}
