//! The fabric, end to end: real daemons (each a KVM device guest and a
//! Zenoh router with mutual TLS) in network namespaces joined by a bridge,
//! and on loopback with `--peer`, driven by the `weft` CLI as a user would.

mod churn;
#[path = "../common/mod.rs"]
mod common;
mod ipc;
mod ipc_resend;
mod ipc_wasm;
mod moves;
mod netns;
mod udp;

use common::{wasm, weft};
use netns::Net;
use serde_json::Value;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Everything fabric-related in one test process at a time: the tests share
/// the machine's two cores, and a daemon's guest is not small.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

/// A scratch directory for state directories and logs, removed at the end.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        let p = std::env::temp_dir().join(format!("weft-fabric-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Scratch(p)
    }

    fn state(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    /// Removes the directory, unless the test failed: its daemons' logs
    /// are then kept for a look, and where they are is said.
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("the failed test's files are kept in {}", self.0.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// Runs a finished `weft` command; returns (status, stdout, stderr).
fn output(mut c: Command) -> (i32, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = c.stdin(Stdio::null()).output().expect("spawn weft");
    (
        status.code().unwrap_or(-1),
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

/// `weft COMMAND --state DIR ARGS` (the state option goes before the
/// arguments: `spawn` takes everything after FILE as the program's).
fn cli(state: &Path, args: &[&str]) -> (i32, String, String) {
    let command = if matches!(args[0], "fabric" | "ipc") {
        2
    } else {
        1
    };
    let mut c = weft();
    c.args(&args[..command])
        .arg("--state")
        .arg(state)
        .args(&args[command..]);
    output(c)
}

/// `weft ARGS --state DIR`, which must succeed; its stdout.
fn ok(state: &Path, args: &[&str]) -> String {
    let (code, out, err) = cli(state, args);
    assert_eq!(
        code,
        0,
        "weft {args:?} --state {}: {err}{out}",
        state.display()
    );
    out
}

/// `weft ipc call ARGS...` against `state`'s daemon.
fn ipc_call(state: &Path, args: &[&str]) -> (i32, String, String) {
    let mut all = vec!["ipc", "call"];
    all.extend_from_slice(args);
    cli(state, &all)
}

/// The registry identity (`sha256:HEX`) of the module at `path`.
fn module_identity(path: &str) -> String {
    let module = std::fs::read(path).unwrap();
    let hex: String = ring::digest::digest(&ring::digest::SHA256, &module)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256:{hex}")
}

fn json(state: &Path, args: &[&str]) -> Vec<Value> {
    let out = ok(state, args);
    serde_json::from_str::<Vec<Value>>(&out).unwrap_or_else(|e| panic!("{args:?}: {e}: {out}"))
}

/// Names of the devices `state`'s daemon lists, known or available.
fn device_names(state: &Path, available: bool) -> Vec<String> {
    let mut args = vec!["fabric", "devices", "--json"];
    if available {
        args.push("--available");
    }
    let mut names: Vec<String> = json(state, &args)
        .iter()
        .map(|d| d["name"].as_str().unwrap_or_default().to_string())
        .collect();
    names.sort();
    names
}

/// Polls `check` until it holds or `limit` passes; returns the time taken.
fn eventually(what: &str, limit: Duration, mut check: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < limit, "not within {limit:?}: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
    start.elapsed()
}

/// A running daemon; SIGKILLed when dropped. Its output goes to files.
struct Daemon {
    child: Child,
    state: PathBuf,
    log: PathBuf,
}

impl Daemon {
    fn start(command: Command, state: &Path, bind: &str, peers: &[String]) -> Daemon {
        Daemon::start_with(command, state, bind, peers, &[])
    }

    /// [`Daemon::start`] with more options of `weft daemon`.
    fn start_with(
        mut command: Command,
        state: &Path,
        bind: &str,
        peers: &[String],
        options: &[&str],
    ) -> Daemon {
        let log = state.with_extension("log");
        command
            .args(["daemon", "--state"])
            .arg(state)
            .args(["--bind", bind])
            .args(options);
        for p in peers {
            command.args(["--peer", p]);
        }
        let out = File::create(&log).unwrap();
        let err = out.try_clone().unwrap();
        let child = command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("spawn weft daemon");
        let mut d = Daemon {
            child,
            state: state.to_path_buf(),
            log,
        };
        eventually("the daemon answers", Duration::from_secs(30), || {
            assert!(
                d.child.try_wait().unwrap().is_none(),
                "daemon exited: {}",
                d.log()
            );
            cli(&d.state, &["fabric", "devices"]).0 == 0
        });
        // Every daemon of these tests runs in its sandbox's system-call
        // filter (PROTOCOL.md §20.2), entered before its node opened.
        let status = std::fs::read_to_string(format!("/proc/{}/status", d.child.id())).unwrap();
        assert!(status.contains("\nSeccomp:\t2\n"), "{status}");
        // And its vCPU keeps a host CPU of its own (monitor/src/affinity.rs).
        let pid = d.child.id();
        eventually(
            "the vCPU on a CPU of its own",
            Duration::from_secs(10),
            || vcpu_apart(pid).is_ok(),
        );
        assert_eq!(vcpu_apart(pid), Ok(()));
        d
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// With two CPUs or more, whether the vCPU thread of daemon `pid` (its
/// main thread) runs on one CPU, and the threads of its runtime and of
/// Zenoh (started by them) on none of it; else what is wrong.
fn vcpu_apart(pid: u32) -> Result<(), String> {
    let cpus_of = |status: &str| {
        let list = status
            .lines()
            .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
            .expect("Cpus_allowed_list");
        cpu_list(list.trim())
    };
    if cpus_of(&std::fs::read_to_string("/proc/self/status").unwrap()).len() < 2 {
        return Ok(());
    }
    let threads: Vec<(String, Vec<usize>)> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(|task| {
            let status = std::fs::read_to_string(task.ok()?.path().join("status")).ok()?;
            let name = status.lines().find_map(|l| l.strip_prefix("Name:"))?;
            Some((name.trim().to_string(), cpus_of(&status)))
        })
        .collect();
    let main = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let vcpu = cpus_of(&main);
    if vcpu.len() != 1 {
        return Err(format!("the vCPU thread may run on {vcpu:?}: {threads:?}"));
    }
    let others: Vec<_> = threads
        .iter()
        .filter(|(name, _)| {
            name == "weft-fabric"
                || name == "weft-relay"
                || ["rx-", "tx-", "net-", "acc-", "app-"]
                    .iter()
                    .any(|p| name.starts_with(p))
        })
        .collect();
    if others.len() < 4 {
        return Err(format!("too few runtime and Zenoh threads: {threads:?}"));
    }
    match others.iter().find(|(_, cpus)| cpus.contains(&vcpu[0])) {
        Some((name, _)) => Err(format!("{name} may run on the vCPU's CPU: {threads:?}")),
        None => Ok(()),
    }
}

/// The CPUs of a `Cpus_allowed_list` ("0-2,5").
fn cpu_list(list: &str) -> Vec<usize> {
    list.split(',')
        .flat_map(|range| {
            let (a, b) = range.split_once('-').unwrap_or((range, range));
            a.parse::<usize>().unwrap()..=b.parse::<usize>().unwrap()
        })
        .collect()
}

fn weft_in(net: &Net, host: usize) -> Command {
    net.command(host, env!("CARGO_BIN_EXE_weft"))
}

/// Pairs `name` (state `dir`, joining from `joiner`) through `inviter`'s daemon.
fn pair(inviter: &Path, dir: &Path, name: &str, mut joiner: Command) {
    let token = ok(inviter, &["fabric", "invite", "--expires", "60"]);
    let token = token.trim();
    joiner
        .args(["fabric", "join", "--state"])
        .arg(dir)
        .args(["--name", name, token]);
    let (code, out, err) = output(joiner);
    assert_eq!(code, 0, "join {name}: {err}{out}");
    // The token is one-time.
    let mut again = weft();
    again
        .args(["fabric", "join", "--state"])
        .arg(dir.with_extension("again"))
        .args(["--name", "again", token]);
    let (code, _, err) = output(again);
    assert_ne!(code, 0, "a used token joined again");
    assert!(!err.is_empty());
}

fn field<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or_default()
}

#[test]
fn three_devices_in_namespaces() {
    let _serial = serial();
    let net = Net::new(4);
    let scratch = Scratch::new("netns");
    let (a, b, c, x) = (
        scratch.state("a"),
        scratch.state("b"),
        scratch.state("c"),
        scratch.state("x"),
    );
    let addr = |i: usize| format!("{}:7447", net.addr(i));

    ok(&a, &["fabric", "create", "--name", "a"]);
    let _da = Daemon::start(weft_in(&net, 0), &a, &addr(0), &[]);
    pair(&a, &b, "b", weft_in(&net, 1));
    let db = Daemon::start(weft_in(&net, 1), &b, &addr(1), &[]);
    pair(&a, &c, "c", weft_in(&net, 2));
    let mut dc = Daemon::start(weft_in(&net, 2), &c, &addr(2), &[]);

    // Every device knows and sees all three.
    let all = ["a", "b", "c"];
    for s in [&a, &b, &c] {
        eventually(
            "three known, three available",
            Duration::from_secs(20),
            || device_names(s, false) == all && device_names(s, true) == all,
        );
    }
    let listed = json(&b, &["fabric", "devices", "--json"]);
    for d in &listed {
        assert!(d["id"].as_str().is_some_and(|id| id.len() == 16), "{d}");
        assert_eq!(d["available"], true);
        assert!(
            d["addresses"][0]
                .as_str()
                .is_some_and(|a| a.starts_with("10.77.0.")),
            "{d}"
        );
    }

    // A device of another fabric on the same network sees nothing and is
    // seen by no one, even pointed straight at a.
    ok(&x, &["fabric", "create", "--name", "x"]);
    let _dx = Daemon::start(weft_in(&net, 3), &x, &addr(3), &[addr(0)]);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(device_names(&x, true), ["x"]);
    assert_eq!(device_names(&a, true), all);
    let (code, _, err) = cli(&x, &["ps", "--device", "a"]);
    assert_ne!(code, 0);
    assert!(err.contains("no device a"), "{err}");

    // Spawn from a onto c: its output (in c's log) and its exit.
    let hello = wasm("hello");
    let (code, out, err) = cli(
        &a,
        &[
            "spawn", "--device", "c", "--wait", &hello, "fabric", "exit=3",
        ],
    );
    assert_eq!(code, 3, "{err}");
    assert!(out.trim().starts_with("c:"), "{out}");
    eventually("hello's output on c", Duration::from_secs(5), || {
        dc.log().contains("arg: fabric")
    });

    // ps on b lists processes of all three (native ones: each device's
    // own `sleep`).
    let mut sleepers = Vec::new();
    for (device, s) in [("a", &a), ("b", &b), ("c", &a)] {
        let out = ok(s, &["spawn", "--device", device, "sleep", "600000"]);
        sleepers.push(out.trim().to_string());
    }
    let ps = json(&b, &["ps", "--json"]);
    for pid in &sleepers {
        let p = ps
            .iter()
            .find(|p| field(p, "pid") == pid)
            .unwrap_or_else(|| panic!("{pid} not in {ps:?}"));
        assert_eq!(field(p, "device"), &pid[..1]);
        assert!(p["memory"].as_u64().is_some_and(|m| m > 0), "{p}");
    }
    let only_c = json(&b, &["ps", "--device", "c", "--json"]);
    assert!(only_c.iter().all(|p| field(p, "device") == "c"));

    // An app inside b's guest makes the same calls (a FABRIC stream): it
    // lists the three devices and a's sleeper, and spawns on c.
    let (code, _, err) = cli(&b, &["spawn", "--wait", "fabric-ls"]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = cli(&b, &["spawn", "--wait", "fabric-ls", "spawn", "hello", "c"]);
    assert_eq!(code, 0, "{err}");
    eventually(
        "fabric-ls's listing in b's output",
        Duration::from_secs(5),
        || {
            let log = db.log();
            [
                "device a available",
                "device b available",
                "device c available",
            ]
            .iter()
            .all(|line| log.contains(line))
                && log.contains(&format!("process {} a sleep", sleepers[0]))
                && log.contains("spawned c:")
        },
    );

    // Stats of one, from a device other than its own.
    let stats =
        || -> Value { serde_json::from_str(&ok(&b, &["stats", "--json", &sleepers[2]])).unwrap() };
    let first = stats();
    assert_eq!(field(&first, "pid"), sleepers[2]);
    assert_eq!(field(&first, "device"), "c");
    assert_eq!(field(&first, "name"), "sleep");
    assert!(first["streams"].as_u64().is_some_and(|n| n >= 3), "{first}");
    eventually("sleep waits on its timer", Duration::from_secs(5), || {
        field(&stats(), "state") == "waiting"
    });

    // Kill from a of a process on c: 137 reported to a waiter.
    let spin = wasm("spin");
    let mut waiter = weft()
        .args(["spawn", "--state"])
        .arg(&a)
        .args(["--device", "c", "--wait", &spin])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = common::lines(waiter.stdout.take().unwrap())
        .recv_timeout(Duration::from_secs(20))
        .expect("the waiter prints the pid");
    ok(&a, &["kill", &pid]);
    let status = waiter.wait().unwrap();
    assert_eq!(status.code(), Some(137));
    let stats = ok(&c, &["stats", "--json", &pid]);
    assert!(stats.contains("\"status\":137"), "{stats}");

    // kill -9 of c's daemon: unavailable at a and b within 5 s, still known.
    dc.kill9();
    for s in [&a, &b] {
        let took = eventually("c unavailable", Duration::from_secs(5), || {
            device_names(s, true) == ["a", "b"]
        });
        eprintln!("c unavailable after {took:?}");
        assert_eq!(device_names(s, false), all);
    }

    // c restarted: available again.
    let mut dc = Daemon::start(weft_in(&net, 2), &c, &addr(2), &[]);
    for s in [&a, &b] {
        eventually("c available again", Duration::from_secs(20), || {
            device_names(s, true) == all
        });
    }

    // A cut link: c goes unavailable (its token is not left behind, Zenoh
    // #2602), and comes back when the link does.
    net.set_link(2, false);
    for s in [&a, &b] {
        let took = eventually("c unavailable, link cut", Duration::from_secs(20), || {
            device_names(s, true) == ["a", "b"]
        });
        eprintln!("c unavailable after a cut link: {took:?}");
    }
    net.set_link(2, true);
    for s in [&a, &b] {
        eventually("c back with its link", Duration::from_secs(30), || {
            device_names(s, true) == all
        });
    }

    // c removed: it can no longer list or reach anything, nor after a restart.
    ok(&a, &["fabric", "remove", "c"]);
    for s in [&a, &b] {
        eventually("c gone", Duration::from_secs(20), || {
            device_names(s, false) == ["a", "b"]
        });
    }
    eventually("c refuses to work", Duration::from_secs(20), || {
        let (code, _, err) = cli(&c, &["ps", "--device", "a"]);
        code != 0 && !err.is_empty()
    });
    dc.kill9();
    let mut restart = weft_in(&net, 2);
    restart
        .args(["daemon", "--state"])
        .arg(&c)
        .args(["--bind", &addr(2)]);
    let (code, _, err) = output(restart);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("removed"), "{err}");
    // Nor can a removed name be given again.
    let (code, out, err) = cli(&a, &["fabric", "remove", "c"]);
    assert_ne!(code, 0, "{out}");
    assert!(err.contains("no device c"), "{err}");
}

#[test]
fn cli_without_a_daemon_says_so() {
    let scratch = Scratch::new("nodaemon");
    let a = scratch.state("a");
    ok(&a, &["fabric", "create", "--name", "a"]);
    for args in [
        &["fabric", "devices"][..],
        &["ps"],
        &["kill", "a:3"],
        &["stats", "a:3"],
        &["fabric", "invite"],
    ] {
        let (code, _, err) = cli(&a, args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains("no daemon is running"), "{args:?}: {err}");
    }
    // create refuses a directory that holds a device; names are checked.
    let (code, _, err) = cli(&a, &["fabric", "create", "--name", "a"]);
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = cli(
        &scratch.state("bad"),
        &["fabric", "create", "--name", "Bad/Name"],
    );
    assert_eq!(code, 2, "{err}");
}

/// A Zenoh session of device `dir` (paired, no daemon), connected to
/// `peer`, to send what no daemon would.
async fn raw_session(dir: &Path, peer: &str) -> zenoh::Session {
    use weft_fabric::zconfig::{Endpoints, TlsFiles, config};
    let tls = TlsFiles {
        ca: dir.join("ca.crt"),
        certificate: dir.join("device.crt"),
        key: dir.join("device.key"),
    };
    let endpoints = Endpoints {
        listen: vec![
            format!("127.0.0.1:{}", common::free_port())
                .parse()
                .unwrap(),
        ],
        peers: vec![peer.parse().unwrap()],
    };
    zenoh::open(config(&tls, &endpoints, &[]).unwrap())
        .await
        .unwrap()
}

/// A state directory for device `name` of `creator`'s fabric, its
/// certificate signed by the fabric's CA for `validity`.
fn signed_device(creator: &Path, name: &str, dir: &Path, validity: Duration) -> PathBuf {
    use weft_fabric::identity::{DeviceKey, DeviceName};
    use weft_fabric::state::StateDir;
    let ca = StateDir::open(creator).unwrap().load_ca().unwrap().unwrap();
    let name = DeviceName::new(name).unwrap();
    let key = DeviceKey::generate().unwrap();
    let signed = ca
        .sign(&key.csr_pem(&name).unwrap(), &name, validity)
        .unwrap();
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("ca.crt"), ca.cert_pem()).unwrap();
    std::fs::write(dir.join("device.crt"), &signed.cert_pem).unwrap();
    let info = weft_fabric::identity::DeviceInfo {
        name,
        id: signed.id,
        fabric: ca.fabric(),
    };
    let device = key.into_device(info, signed.cert_pem, ca.cert_pem().to_owned());
    std::fs::write(dir.join("device.key"), device.key_pem()).unwrap();
    dir.to_path_buf()
}

/// A runtime for a raw Zenoh session of the test's own.
fn zenoh_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// The one reply to a `get` on `key` with `payload`, as text.
async fn ask_raw(session: &zenoh::Session, key: &str, payload: Vec<u8>) -> Result<String, String> {
    let replies = session
        .get(key)
        .payload(payload)
        .timeout(Duration::from_secs(10))
        .await
        .unwrap();
    let reply = replies
        .recv_async()
        .await
        .map_err(|_| "no reply".to_string())?;
    match reply.into_result() {
        Ok(sample) => Ok(String::from_utf8_lossy(&sample.payload().to_bytes()).into_owned()),
        Err(e) => Err(String::from_utf8_lossy(&e.payload().to_bytes()).into_owned()),
    }
}

#[test]
fn loopback_peers_and_a_hostile_member() {
    let _serial = serial();
    let scratch = Scratch::new("loopback");
    let (a, b, g) = (scratch.state("a"), scratch.state("b"), scratch.state("g"));
    let (pa, pb) = (common::free_port(), common::free_port());
    let (addr_a, addr_b) = (format!("127.0.0.1:{pa}"), format!("127.0.0.1:{pb}"));

    ok(&a, &["fabric", "create", "--name", "a"]);
    let da = Daemon::start(weft(), &a, &addr_a, &[]);
    pair(&a, &b, "b", weft());
    // b is told where a is with --peer (a's address is also in b's registry).
    let db = Daemon::start(weft(), &b, &addr_b, std::slice::from_ref(&addr_a));
    for s in [&a, &b] {
        eventually("both available", Duration::from_secs(20), || {
            device_names(s, true) == ["a", "b"]
        });
    }
    // Calls right after a device appears are answered (Zenoh #2516).
    ok(&a, &["ps", "--device", "b"]);
    ok(&b, &["ps", "--device", "a"]);
    let devices = json(&b, &["fabric", "devices", "--json"]);
    let a_entry = devices.iter().find(|d| d["name"] == "a").unwrap();
    assert_eq!(a_entry["addresses"][0], addr_a.as_str());
    assert!(a_entry["figures"]["processes"].is_u64(), "{a_entry}");

    // g is a paired device that speaks Zenoh directly, and badly.
    pair(&a, &g, "g", weft());
    let runtime = zenoh_runtime();
    runtime.block_on(async {
        let session = raw_session(&g, &addr_a).await;
        let call = "weft/dev/b/call";
        let wait_for_b = Instant::now();
        while ask_raw(&session, call, br#"{"v":1,"op":"info"}"#.to_vec()).await.is_err() {
            assert!(wait_for_b.elapsed() < Duration::from_secs(20), "b never answered g");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let big = {
            let mut v = br#"{"v":1,"op":"ps","pad":""#.to_vec();
            v.extend(std::iter::repeat_n(b'x', 300 * 1024));
            v.extend(br#""}"#);
            v
        };
        let hostile: Vec<(&str, Vec<u8>, &str)> = vec![
            ("nothing", vec![], "bad payload"),
            ("not JSON", b"\xff\xfe garbage".to_vec(), "bad payload"),
            ("a number", b"17".to_vec(), "bad payload"),
            ("another version", br#"{"v":9,"op":"ps"}"#.to_vec(), "version 9"),
            ("an unknown call", br#"{"v":1,"op":"reboot"}"#.to_vec(), "unknown variant"),
            ("a negative pid", br#"{"v":1,"op":"kill","pid":-4}"#.to_vec(), "bad payload"),
            ("the agent", br#"{"v":1,"op":"kill","pid":1}"#.to_vec(), "agent"),
            ("no such pid", br#"{"v":1,"op":"stats","pid":4000}"#.to_vec(), "no process"),
            ("over the limit", big, "over the"),
            (
                "a native path",
                br#"{"v":1,"op":"spawn","image":{"kind":"program","name":"/bin/sh"},"args":[]}"#.to_vec(),
                "own programs",
            ),
            (
                "an unknown program",
                br#"{"v":1,"op":"spawn","image":{"kind":"program","name":"rm"},"args":["rm"]}"#.to_vec(),
                "spawn on b",
            ),
            (
                "a bad hash",
                br#"{"v":1,"op":"spawn","image":{"kind":"wasm","sha256":"zz","size":9,"from":"g"},"args":[]}"#.to_vec(),
                "hash",
            ),
            (
                "a module nobody offers",
                format!(
                    r#"{{"v":1,"op":"spawn","image":{{"kind":"wasm","sha256":"{}","size":9,"from":"g"}},"args":[]}}"#,
                    "ab".repeat(32)
                )
                .into_bytes(),
                "g",
            ),
        ];
        for (what, payload, expect) in hostile {
            let answer = ask_raw(&session, call, payload).await;
            let text = answer.unwrap_or_else(|e| e);
            assert!(
                text.contains("\"reply\":\"error\"") && text.contains(expect),
                "{what}: {text}"
            );
        }
        // Garbage where nothing is asked: an exit nobody ended, a blob
        // nobody offers, a removal of no device.
        session.put("weft/dev/b/exit/3", b"\x00garbage".to_vec()).await.unwrap();
        session.put("weft/fabric/removed/Not-A-Name", vec![]).await.unwrap();
        session.put("weft/fabric/removed/nobody", vec![]).await.unwrap();
        let blob = ask_raw(&session, "weft/dev/a/blob/..", vec![]).await;
        assert!(blob.is_err(), "{blob:?}");
        // Many calls at once: each answered, some perhaps "busy".
        let mut calls = tokio::task::JoinSet::new();
        for _ in 0..100 {
            let session = session.clone();
            calls.spawn(async move { ask_raw(&session, call, br#"{"v":1,"op":"ps"}"#.to_vec()).await });
        }
        while let Some(r) = calls.join_next().await {
            let text = r.unwrap().unwrap_or_else(|e| e);
            assert!(text.contains("\"reply\":\"processes\"") || text.contains("busy"), "{text}");
        }
        session.close().await.unwrap();
    });

    // A device whose certificate expired reaches nothing, though the CA
    // signed it: "e", valid for one second, asks a second later (and "f",
    // made the same way but valid for an hour, is answered).
    let f = signed_device(&a, "f", &scratch.state("f"), Duration::from_secs(3600));
    let e = signed_device(&a, "e", &scratch.state("e"), Duration::from_secs(1));
    std::thread::sleep(Duration::from_secs(2));
    runtime.block_on(async {
        let session = raw_session(&f, &addr_a).await;
        let started = Instant::now();
        while ask_raw(
            &session,
            "weft/dev/a/call",
            br#"{"v":1,"op":"info"}"#.to_vec(),
        )
        .await
        .is_err()
        {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "f never answered"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        session.close().await.unwrap();
        let session = raw_session(&e, &addr_a).await;
        for _ in 0..5 {
            let answer = ask_raw(
                &session,
                "weft/dev/a/call",
                br#"{"v":1,"op":"info"}"#.to_vec(),
            );
            assert_eq!(answer.await, Err("no reply".to_string()));
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        session.close().await.unwrap();
    });

    // Both daemons still work, know nobody new, and never panicked.
    for s in [&a, &b] {
        eventually("g known everywhere", Duration::from_secs(15), || {
            device_names(s, false) == ["a", "b", "g"]
        });
        assert_eq!(device_names(s, true), ["a", "b"]);
        json(s, &["ps", "--json"]);
    }
    for d in [&da, &db] {
        assert!(!d.log().contains("panicked"), "{}", d.log());
    }

    // SIGTERM stops b cleanly: status 143, withdrawn at once (a watcher
    // on a sees it go), socket gone.
    let mut watcher = weft()
        .args(["fabric", "devices", "--watch", "--json", "--state"])
        .arg(&a)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let watched = common::lines(watcher.stdout.take().unwrap());
    let listing = watched.recv_timeout(Duration::from_secs(10)).unwrap();
    assert!(
        listing.starts_with('[') && listing.contains("\"b\""),
        "{listing}"
    );
    let mut db = db;
    let term = Command::new("kill")
        .args(["-TERM", &db.child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let took = eventually(
        "b unavailable after SIGTERM",
        Duration::from_secs(5),
        || device_names(&a, true) == ["a"],
    );
    eprintln!("b unavailable {took:?} after SIGTERM");
    let event = watched.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(event, r#"{"available":false,"name":"b"}"#);
    let _ = watcher.kill();
    let _ = watcher.wait();
    let status = db.child.wait().unwrap();
    assert_eq!(status.code(), Some(143), "{}", db.log());
    assert!(db.log().contains("stopped"), "{}", db.log());
    assert!(!b.join("daemon.sock").exists());
    let (code, _, err) = cli(&b, &["ps"]);
    assert_eq!(code, 2, "{err}");
}

/// An app inside device a watches the fabric (a FABRIC stream's WATCH,
/// PROTOCOL.md §17.4): it sees the three devices, a process on b start
/// and end with its status, and c go away when c's daemon is killed.
#[test]
fn loopback_watching_app_sees_devices_and_processes() {
    let _serial = serial();
    let scratch = Scratch::new("watch");
    let (a, b, c) = (scratch.state("a"), scratch.state("b"), scratch.state("c"));
    let addr_a = format!("127.0.0.1:{}", common::free_port());
    let peers = [addr_a.clone()];
    ok(&a, &["fabric", "create", "--name", "a"]);
    let da = Daemon::start(weft(), &a, &addr_a, &[]);
    pair(&a, &b, "b", weft());
    let addr_b = format!("127.0.0.1:{}", common::free_port());
    let _db = Daemon::start(weft(), &b, &addr_b, &peers);
    pair(&a, &c, "c", weft());
    let addr_c = format!("127.0.0.1:{}", common::free_port());
    let mut dc = Daemon::start(weft(), &c, &addr_c, &peers);
    eventually("three available at a", Duration::from_secs(20), || {
        device_names(&a, true) == ["a", "b", "c"]
    });

    let watcher = ok(&a, &["spawn", "fabric-ls", "watch", "1000"]);
    assert!(watcher.trim().starts_with("a:"), "{watcher}");
    let seen = |what: &str| da.log().lines().any(|l| l == what);
    eventually(
        "the watcher sees a, b and c",
        Duration::from_secs(10),
        || {
            ["event up a", "event up b", "event up c"]
                .iter()
                .all(|e| seen(e))
        },
    );

    let hello = wasm("hello");
    let (code, out, err) = cli(
        &a,
        &[
            "spawn", "--device", "b", "--wait", &hello, "watched", "exit=3",
        ],
    );
    assert_eq!(code, 3, "{err}");
    let pid = out.trim().to_string();
    assert!(pid.starts_with("b:"), "{out}");
    eventually(
        "the watcher sees b's process end",
        Duration::from_secs(10),
        || seen(&format!("event started {pid}")) && seen(&format!("event ended {pid} 3")),
    );

    dc.kill9();
    eventually("the watcher sees c go", Duration::from_secs(10), || {
        seen("event down c")
    });
    assert!(!da.log().contains("panicked"), "{}", da.log());
}

/// When the certificate of the device of state directory `dir` ends, in
/// seconds since the Unix epoch.
fn cert_end(dir: &Path) -> i64 {
    let pem = std::fs::read_to_string(dir.join("device.crt")).unwrap();
    weft_fabric::identity::CertSummary::of_pem(&pem)
        .unwrap()
        .not_after_unix
}

fn now_unix() -> i64 {
    weft_fabric::identity::now_unix() as i64
}

/// Whether every panic in a daemon's `log` is Zenoh's own. Zenoh 1.10.2's
/// `Session::close` frees its routing tables while the receive tasks of its
/// last links may still handle a link-state message, which then panics on
/// a freed resource (and poisons that closed session's locks; the link's
/// reader task that ran it then panics too, in `zenoh-transport`). A
/// daemon closes its session to reopen it with a renewed certificate, so a
/// router leaving a mesh of three may hit it; the new session is not
/// affected.
fn no_weft_panic(log: &str) -> bool {
    log.lines().filter(|l| l.contains("panicked at")).all(|l| {
        l.contains("/zenoh-1.10.2/src/net/routing/")
            || l.contains("/zenoh-transport-1.10.2/src/unicast/")
    })
}

/// `weft` issuing certificates valid for `secs` (PROTOCOL.md §16.6).
fn weft_issuing(secs: u64) -> Command {
    let mut c = weft();
    c.env(weft_fabric::identity::VALIDITY_ENV, secs.to_string());
    c
}

#[test]
fn certificates_are_renewed_before_they_expire() {
    const VALIDITY: u64 = 40;
    const SPACING: Duration = Duration::from_secs(8);
    let _serial = serial();
    let scratch = Scratch::new("renew");
    let dirs = [scratch.state("a"), scratch.state("b"), scratch.state("c")];
    let [a, b, c] = &dirs;
    let addrs: Vec<String> = (0..3)
        .map(|_| format!("127.0.0.1:{}", common::free_port()))
        .collect();

    let mut create = weft_issuing(VALIDITY);
    create
        .args(["fabric", "create", "--state"])
        .arg(a)
        .args(["--name", "a"]);
    let (code, _, err) = output(create);
    assert_eq!(code, 0, "{err}");
    // a holds the CA: it signs b's and c's certificates at pairing and at
    // every renewal, each valid for VALIDITY seconds.
    // Pairings some seconds apart, so that the devices renew (and reopen
    // their sessions) at different times, as devices do.
    let da = Daemon::start(weft_issuing(VALIDITY), a, &addrs[0], &[]);
    std::thread::sleep(SPACING);
    pair(a, b, "b", weft());
    let db = Daemon::start(weft(), b, &addrs[1], std::slice::from_ref(&addrs[0]));
    std::thread::sleep(SPACING);
    pair(a, c, "c", weft());
    let dc = Daemon::start(weft(), c, &addrs[2], std::slice::from_ref(&addrs[0]));
    let first: Vec<i64> = dirs.iter().map(|d| cert_end(d)).collect();
    for end in &first {
        assert!(end - now_unix() <= VALIDITY as i64, "{first:?}");
    }
    let all = ["a", "b", "c"];
    for s in &dirs {
        eventually("three available", Duration::from_secs(20), || {
            device_names(s, true) == all
        });
    }
    let sleeper = ok(a, &["spawn", "--device", "c", "sleep", "600000"]);
    let sleeper = sleeper.trim();

    // Every device calls every other until well past the end of the first
    // certificates. A call made while its target reopens its session with
    // a renewed certificate may fail; the next one must not.
    let until = first.iter().max().copied().unwrap_or_default() + VALIDITY as i64 + 5;
    let mut rounds = 0;
    while now_unix() < until {
        for (from, to) in [(a, "b"), (b, "c"), (c, "a")] {
            eventually(
                &format!("{} calls {to}", from.display()),
                Duration::from_secs(15),
                || cli(from, &["ps", "--device", to, "--json"]).0 == 0,
            );
        }
        eventually("stats from b", Duration::from_secs(15), || {
            cli(b, &["stats", "--json", sleeper]).0 == 0
        });
        rounds += 1;
        std::thread::sleep(Duration::from_secs(2));
    }
    eprintln!("{rounds} rounds of calls");

    // Each device renewed its certificate (same key, later end) at least
    // twice, and all three still see and reach each other.
    for (i, d) in [&da, &db, &dc].iter().enumerate() {
        let end = cert_end(&dirs[i]);
        assert!(
            end > first[i] + VALIDITY as i64 / 2,
            "{}: {end} vs {}",
            all[i],
            first[i]
        );
        let log = d.log();
        let renewed = log.matches("certificate renewed by a").count();
        assert!(renewed >= 2, "{} renewed {renewed} times: {log}", all[i]);
        assert!(no_weft_panic(&log), "{log}");
    }
    for s in &dirs {
        eventually(
            "three available at the end",
            Duration::from_secs(20),
            || device_names(s, true) == all,
        );
    }
    let stats: Value = serde_json::from_str(&ok(a, &["stats", "--json", sleeper])).unwrap();
    assert_eq!(field(&stats, "state"), "waiting", "{stats}");
}

#[test]
fn a_crashed_device_guest_ends_its_daemon() {
    let _serial = serial();
    let scratch = Scratch::new("crash");
    let (a, b, c) = (scratch.state("a"), scratch.state("b"), scratch.state("c"));
    let addrs: Vec<String> = (0..3)
        .map(|_| format!("127.0.0.1:{}", common::free_port()))
        .collect();
    ok(&a, &["fabric", "create", "--name", "a"]);
    let da = Daemon::start(weft(), &a, &addrs[0], &[]);
    pair(&a, &b, "b", weft());
    pair(&a, &c, "c", weft());
    let db = Daemon::start(weft(), &b, &addrs[1], std::slice::from_ref(&addrs[0]));
    // c's guest runs the kernel that crashes on request.
    let kernel = common::crash_kernel();
    let mut dc = Daemon::start_with(
        weft(),
        &c,
        &addrs[2],
        std::slice::from_ref(&addrs[0]),
        &["--kernel", &kernel],
    );
    let all = ["a", "b", "c"];
    for s in [&a, &b, &c] {
        eventually("three available", Duration::from_secs(20), || {
            device_names(s, true) == all
        });
    }

    // An app spawned from a asks c's kernel to panic: the spawn call ends
    // (answered or refused), c's daemon reports the crash and exits 125.
    let asked = Instant::now();
    let (code, out, err) = cli(&a, &["spawn", "--device", "c", "crash-kernel", "panic"]);
    eprintln!(
        "spawn of crash-kernel on c: {code} {out}{err} after {:?}",
        asked.elapsed()
    );
    let status = {
        let started = Instant::now();
        loop {
            if let Some(status) = dc.child.try_wait().unwrap() {
                break status;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "c's daemon still runs after its guest crashed: {}",
                dc.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let log = dc.log();
    assert_eq!(status.code(), Some(125), "{log}");
    assert!(log.contains("guest crash: kernel panic"), "{log}");
    assert!(
        log.contains("crash test: the program asked the kernel to panic"),
        "{log}"
    );
    assert!(
        log.contains("the device guest ended (status 125); the device is unavailable"),
        "{log}"
    );
    assert!(!c.join("daemon.sock").exists());

    // c is unavailable at a and b at once, still known; calls to it fail
    // without waiting out a call's limit, and the others still work.
    for s in [&a, &b] {
        let took = eventually("c unavailable", Duration::from_secs(5), || {
            device_names(s, true) == ["a", "b"]
        });
        eprintln!("c unavailable {took:?} after its guest crashed");
        assert_eq!(device_names(s, false), all);
        let asked = Instant::now();
        let (code, _, err) = cli(s, &["ps", "--device", "c"]);
        assert_ne!(code, 0);
        assert!(err.contains("c"), "{err}");
        assert!(
            asked.elapsed() < Duration::from_secs(5),
            "{:?}",
            asked.elapsed()
        );
        let ps = json(s, &["ps", "--json"]);
        assert!(ps.iter().all(|p| field(p, "device") != "c"), "{ps:?}");
    }
    let (code, _, err) = cli(&c, &["ps"]);
    assert_eq!(code, 2, "{err}");
    for d in [&da, &db] {
        assert!(!d.log().contains("panicked"), "{}", d.log());
    }
}
