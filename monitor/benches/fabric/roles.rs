//! The parts of the benchmark that run inside a device's network
//! namespace. The benchmark runs itself again under `ip netns exec NS`
//! with a role and its arguments ([`Helper::start`]); a role reports on
//! standard output, one line at a time, and a [`Helper`] is killed when
//! dropped.
//!
//! - `querier STATE ROUTER ROUNDS KEY PAYLOAD [KEY PAYLOAD]...`: a Zenoh
//!   session with the configuration of the device of STATE (its TLS
//!   identity, [`zconfig::config`]) but in client mode, connected to the
//!   router ROUTER only, so that its queries go through that router. It
//!   waits for a first answer on every KEY, then asks each KEY in turn
//!   with its PAYLOAD, [`WARMUP`] rounds unrecorded and ROUNDS recorded,
//!   and prints `{"samples_us": [[...], ...], "replies": [...]}`: the
//!   microseconds from each query to its first reply, per key, and the
//!   last reply per key.
//! - `replier STATE LISTEN PEER KEY PAYLOAD`: a Zenoh router with the
//!   device configuration of STATE, listening on LISTEN and connected to
//!   PEER, that answers every query on KEY with PAYLOAD; prints `ready`
//!   once its queryable is declared, and exits when its standard input
//!   ends.
//! - `watcher STATE ROUTER NAME`: a Zenoh session like the querier's,
//!   connected to the router ROUTER only, following the presence token of
//!   device NAME (`weft/dev/NAME`); prints `connected` once it sees it,
//!   then `closed` when it goes (the router's link lost: its lease ended).
//! - `pinger ROUNDS ADDR...`: a UDP socket that sends a 64-byte datagram
//!   to each ADDR in turn and waits for its echo, [`WARMUP`] rounds
//!   unrecorded and ROUNDS recorded; prints `{"samples_us": [[...], ...]}`,
//!   per address.
//! - `subscriber STATE LISTEN KEY`: a Zenoh router with the device
//!   configuration of STATE, listening on LISTEN, subscribed to KEY;
//!   prints `ready` once its subscriber is declared, then `got SEQ LEN NS`
//!   for each sample, from its callback: SEQ the payload's first 8 bytes
//!   (little-endian), LEN its length, NS the monotonic clock
//!   ([`monotonic_ns`]) when the callback had the whole payload. Exits
//!   when its standard input ends.
//! - `putter STATE LISTEN PEER KEY`: a Zenoh router with the device
//!   configuration of STATE, listening on LISTEN and connected to PEER, a
//!   publisher on KEY (congestion control `Block`: a large payload waits
//!   for room, never dropped); prints `ready` once a subscriber matches.
//!   For each line `put SEQ SIZE` on its standard input it makes a payload
//!   of SIZE bytes starting with SEQ, then reads the monotonic clock (NS),
//!   puts it and prints `sent SEQ NS`. Exits when its standard input ends.

use crate::error::{BenchError, io, zerr};
use crate::lines::StampedLines;
use serde_json::json;
use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};
use weft_fabric::keys;
use weft_fabric::state::{CA_CRT, DEVICE_CRT, DEVICE_KEY};
use weft_fabric::zconfig::{self, Endpoints, TlsFiles};
use zenoh::Wait;
use zenoh::bytes::ZBytes;
use zenoh::qos::CongestionControl;
use zenoh::sample::SampleKind;

/// Rounds of queries before the recorded ones.
const WARMUP: usize = 20;
/// How long one query may wait for its reply.
const ASK_LIMIT: Duration = Duration::from_secs(5);
/// How long the querier waits for a first answer on a key (routes to a
/// queryable spread through the routers when it is declared).
const FIRST_ANSWER_LIMIT: Duration = Duration::from_secs(20);

pub const QUERIER: &str = "querier";
pub const REPLIER: &str = "replier";
pub const WATCHER: &str = "watcher";
pub const PINGER: &str = "pinger";
pub const SUBSCRIBER: &str = "subscriber";
pub const PUTTER: &str = "putter";
/// How long the putter waits for a subscriber to match.
const MATCH_LIMIT: Duration = Duration::from_secs(20);

/// Runs the role `args[0]` with its arguments, if `args[0]` names one.
pub fn run(args: &[String]) -> Option<Result<(), BenchError>> {
    let (role, rest) = args.split_first()?;
    match role.as_str() {
        QUERIER => Some(querier(rest)),
        REPLIER => Some(replier(rest)),
        WATCHER => Some(watcher(rest)),
        PINGER => Some(pinger(rest)),
        SUBSCRIBER => Some(subscriber(rest)),
        PUTTER => Some(putter(rest)),
        _ => None,
    }
}

fn usage(role: &str, args: &[String]) -> BenchError {
    BenchError::Output {
        what: format!("the arguments of role {role}"),
        text: args.join(" "),
    }
}

fn parse<T: std::str::FromStr>(role: &str, args: &[String], text: &str) -> Result<T, BenchError> {
    text.parse().map_err(|_| usage(role, args))
}

/// The TLS identity in the device state directory `state`.
fn tls(state: &Path) -> TlsFiles {
    TlsFiles {
        ca: state.join(CA_CRT),
        certificate: state.join(DEVICE_CRT),
        key: state.join(DEVICE_KEY),
    }
}

fn say(line: &str) -> Result<(), BenchError> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")
        .and_then(|()| out.flush())
        .map_err(io("writing to the benchmark"))
}

fn querier(args: &[String]) -> Result<(), BenchError> {
    let [state, router, rounds, targets @ ..] = args else {
        return Err(usage(QUERIER, args));
    };
    if targets.is_empty() || targets.len() % 2 != 0 {
        return Err(usage(QUERIER, args));
    }
    let rounds: usize = parse(QUERIER, args, rounds)?;
    let session = client_of(QUERIER, state, parse(QUERIER, args, router)?)?;
    let targets: Vec<(&str, &[u8])> = targets
        .chunks_exact(2)
        .map(|t| (t[0].as_str(), t[1].as_bytes()))
        .collect();
    for &(key, payload) in &targets {
        let start = Instant::now();
        while ask(&session, key, payload).is_err() {
            if start.elapsed() > FIRST_ANSWER_LIMIT {
                return Err(BenchError::Timeout {
                    what: format!("a first answer on {key}"),
                    limit: FIRST_ANSWER_LIMIT,
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let mut samples = vec![Vec::with_capacity(rounds); targets.len()];
    let mut replies = vec![String::new(); targets.len()];
    for round in 0..WARMUP + rounds {
        for (i, &(key, payload)) in targets.iter().enumerate() {
            let start = Instant::now();
            let reply = ask(&session, key, payload)?;
            let us = start.elapsed().as_secs_f64() * 1e6;
            if round >= WARMUP {
                samples[i].push(us);
            }
            replies[i] = String::from_utf8_lossy(&reply).into_owned();
        }
    }
    let _ = session.close().wait();
    say(&json!({ "samples_us": samples, "replies": replies }).to_string())
}

/// One query on `key` with `payload`; its first reply's payload.
fn ask(session: &zenoh::Session, key: &str, payload: &[u8]) -> Result<Vec<u8>, BenchError> {
    let what = format!("a query on {key}");
    let replies = session
        .get(key)
        .payload(payload.to_vec())
        .timeout(ASK_LIMIT)
        // As the devices ask: the first reply as it comes.
        .consolidation(zenoh::query::ConsolidationMode::None)
        .wait()
        .map_err(zerr(&what))?;
    let reply = replies.recv().map_err(zerr(&what))?;
    match reply.result() {
        Ok(sample) => Ok(sample.payload().to_bytes().into_owned()),
        Err(e) => Err(BenchError::Zenoh {
            what,
            message: format!(
                "an error reply: {}",
                e.payload().try_to_string().unwrap_or_default()
            ),
        }),
    }
}

fn replier(args: &[String]) -> Result<(), BenchError> {
    let [state, listen, peer, key, payload] = args else {
        return Err(usage(REPLIER, args));
    };
    let endpoints = Endpoints {
        listen: vec![parse(REPLIER, args, listen)?],
        peers: vec![parse(REPLIER, args, peer)?],
    };
    let config = zconfig::config(&tls(Path::new(state)), &endpoints, &[])
        .map_err(zerr("the replier's configuration"))?;
    let session = zenoh::open(config)
        .wait()
        .map_err(zerr("opening the replier's session"))?;
    let queryable = session
        .declare_queryable(key.as_str())
        .wait()
        .map_err(zerr("declaring the replier's queryable"))?;
    // The benchmark ends the replier by closing its standard input (or by
    // killing it).
    std::thread::spawn(|| {
        let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
        std::process::exit(0);
    });
    say("ready")?;
    while let Ok(query) = queryable.recv() {
        query
            .reply(key.as_str(), payload.as_bytes().to_vec())
            .wait()
            .map_err(zerr("replying"))?;
    }
    Ok(())
}

/// A client session with the device configuration of `state` (its TLS
/// identity), connected to `router` only.
fn client_of(role: &str, state: &str, router: SocketAddr) -> Result<zenoh::Session, BenchError> {
    let endpoints = Endpoints {
        listen: Vec::new(),
        peers: vec![router],
    };
    let mut config = zconfig::config(&tls(Path::new(state)), &endpoints, &[])
        .map_err(zerr(&format!("the {role}'s configuration")))?;
    config
        .insert_json5("mode", "\"client\"")
        .map_err(zerr(&format!("the {role}'s client mode")))?;
    zenoh::open(config)
        .wait()
        .map_err(zerr(&format!("opening the {role}'s session")))
}

fn watcher(args: &[String]) -> Result<(), BenchError> {
    let [state, router, name] = args else {
        return Err(usage(WATCHER, args));
    };
    let session = client_of(WATCHER, state, parse(WATCHER, args, router)?)?;
    let presence = keys::presence(name);
    let tokens = session
        .liveliness()
        .declare_subscriber(&presence)
        .history(true)
        .wait()
        .map_err(zerr("following the presence token"))?;
    let mut seen = false;
    while let Ok(sample) = tokens.recv() {
        match (sample.kind(), seen) {
            (SampleKind::Put, false) => {
                seen = true;
                say("connected")?;
            }
            (SampleKind::Delete, true) => return say("closed"),
            _ => {}
        }
    }
    say("closed")
}

fn pinger(args: &[String]) -> Result<(), BenchError> {
    let [rounds, targets @ ..] = args else {
        return Err(usage(PINGER, args));
    };
    let rounds: usize = parse(PINGER, args, rounds)?;
    let targets = targets
        .iter()
        .map(|t| parse::<SocketAddr>(PINGER, args, t))
        .collect::<Result<Vec<_>, _>>()?;
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").map_err(io("binding the pinger"))?;
    socket
        .set_read_timeout(Some(ASK_LIMIT))
        .map_err(io("the pinger's timeout"))?;
    let mut samples = vec![Vec::with_capacity(rounds); targets.len()];
    let mut buf = [0u8; 512];
    for round in 0..WARMUP + rounds {
        for (i, &to) in targets.iter().enumerate() {
            let mut ping = [0u8; 64];
            ping[..8].copy_from_slice(&(round as u64).to_le_bytes());
            let start = Instant::now();
            socket
                .send_to(&ping, to)
                .map_err(io(format!("sending to {to}")))?;
            // An echo of an earlier round (late) is skipped.
            loop {
                let (n, from) = socket
                    .recv_from(&mut buf)
                    .map_err(io(format!("the echo from {to}")))?;
                if from == to && buf[..n] == ping {
                    break;
                }
            }
            if round >= WARMUP {
                samples[i].push(start.elapsed().as_secs_f64() * 1e6);
            }
        }
    }
    say(&json!({ "samples_us": samples }).to_string())
}

/// CLOCK_MONOTONIC in nanoseconds: one clock for every process of the
/// machine (network namespaces share it), so times taken in two roles
/// compare.
pub fn monotonic_ns() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid, writable timespec for the call's duration.
    let r = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    assert_eq!(r, 0, "CLOCK_MONOTONIC is always there");
    now.tv_sec as u64 * 1_000_000_000 + now.tv_nsec as u64
}

/// A router session with the device configuration of `state`, listening on
/// `listen` and connected to `peers`.
fn router_of(
    role: &str,
    state: &str,
    listen: SocketAddr,
    peers: Vec<SocketAddr>,
) -> Result<zenoh::Session, BenchError> {
    let endpoints = Endpoints {
        listen: vec![listen],
        peers,
    };
    let config = zconfig::config(&tls(Path::new(state)), &endpoints, &[])
        .map_err(zerr(&format!("the {role}'s configuration")))?;
    zenoh::open(config)
        .wait()
        .map_err(zerr(&format!("opening the {role}'s session")))
}

fn subscriber(args: &[String]) -> Result<(), BenchError> {
    let [state, listen, key] = args else {
        return Err(usage(SUBSCRIBER, args));
    };
    let session = router_of(
        SUBSCRIBER,
        state,
        parse(SUBSCRIBER, args, listen)?,
        Vec::new(),
    )?;
    let _subscriber = session
        .declare_subscriber(key.as_str())
        .callback(|sample| {
            let at = monotonic_ns();
            let payload = sample.payload();
            let mut seq = [0u8; 8];
            let seq = match std::io::Read::read_exact(&mut payload.reader(), &mut seq) {
                Ok(()) => u64::from_le_bytes(seq),
                Err(_) => u64::MAX,
            };
            // The benchmark sees a failed write as a missing line.
            let _ = say(&format!("got {seq} {} {at}", payload.len()));
        })
        .wait()
        .map_err(zerr("declaring the subscriber"))?;
    say("ready")?;
    let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
    Ok(())
}

fn putter(args: &[String]) -> Result<(), BenchError> {
    let [state, listen, peer, key] = args else {
        return Err(usage(PUTTER, args));
    };
    let session = router_of(
        PUTTER,
        state,
        parse(PUTTER, args, listen)?,
        vec![parse(PUTTER, args, peer)?],
    )?;
    let publisher = session
        .declare_publisher(key.as_str())
        .congestion_control(CongestionControl::Block)
        .wait()
        .map_err(zerr("declaring the publisher"))?;
    let start = Instant::now();
    while !publisher
        .matching_status()
        .wait()
        .map_err(zerr("the publisher's matching status"))?
        .matching()
    {
        if start.elapsed() > MATCH_LIMIT {
            return Err(BenchError::Timeout {
                what: format!("a subscriber matching {key}"),
                limit: MATCH_LIMIT,
            });
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    say("ready")?;
    for line in std::io::stdin().lines() {
        let line = line.map_err(io("the putter's orders"))?;
        let order: Vec<&str> = line.split(' ').collect();
        let bad = || usage(PUTTER, std::slice::from_ref(&line));
        let ["put", seq, size] = order.as_slice() else {
            return Err(bad());
        };
        let seq: u64 = seq.parse().map_err(|_| bad())?;
        let size: usize = size.parse().map_err(|_| bad())?;
        let mut payload = vec![0xa5u8; size.max(8)];
        payload[..8].copy_from_slice(&seq.to_le_bytes());
        let payload = ZBytes::from(payload);
        let at = monotonic_ns();
        publisher
            .put(payload)
            .wait()
            .map_err(zerr("putting the payload"))?;
        say(&format!("sent {seq} {at}"))?;
    }
    Ok(())
}

/// A role running in a device's namespace; killed when dropped.
pub struct Helper {
    child: Child,
    stdin: Option<ChildStdin>,
    output: StampedLines,
}

impl Helper {
    /// Runs this benchmark as `role` with `args` in `command`, which is
    /// `ip netns exec NS` for the namespace wanted.
    pub fn start(mut command: Command, role: &str, args: &[String]) -> Result<Helper, BenchError> {
        let mut child = command
            .arg(role)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(io(format!("starting the {role}")))?;
        let stdin = child.stdin.take();
        let output = StampedLines::of(&mut child, role)?;
        Ok(Helper {
            child,
            stdin,
            output,
        })
    }

    /// The helper's standard output.
    pub fn output(&self) -> &StampedLines {
        &self.output
    }

    /// Writes `line` to the helper's standard input.
    pub fn tell(&mut self, line: &str) -> Result<(), BenchError> {
        let stdin = self.stdin.as_mut().ok_or_else(|| BenchError::Output {
            what: "a helper's standard input".into(),
            text: "closed".into(),
        })?;
        writeln!(stdin, "{line}")
            .and_then(|()| stdin.flush())
            .map_err(io("writing to a helper"))
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// This benchmark's own executable, to run as a role.
pub fn this_program() -> Result<String, BenchError> {
    let exe = std::env::current_exe().map_err(io("finding the benchmark's executable"))?;
    Ok(exe.display().to_string())
}
