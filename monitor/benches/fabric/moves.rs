//! `move_downtime_1mib_ms`, `move_downtime_64mib_ms`: how long a running
//! Wasm event app is gone while `weft move PID DEVICE` takes it from one
//! device to the other (PROTOCOL.md §19.4) with 1 MiB and 64 MiB of
//! state: from the last event it handled at the source to the first it
//! handles at the destination.
//!
//! The app is `stateful MIB 1`: MIB MiB of non-zero memory (so its
//! snapshot is MIB MiB and some: zero chunks are left out, §19.1) and a
//! timer every millisecond, on each of which it prints `tick N HASH`.
//! Spawned on `a`, it goes a→b→a… with `weft move` from the CLI of the
//! device it runs on. For each move the downtime is the time from the
//! arrival, on the source daemon's standard output, of the last tick the
//! source printed (N−1) to the arrival, on the destination's, of the first
//! tick the destination printed (N); both are stamped as they arrive by a
//! thread per daemon, so the guest-to-host path is the same at both ends.
//! The ticks bound the resolution: the app is captured some time within a
//! tick period after its last tick, and its timer at the destination is
//! due after the time it had left; the intervals between the source's
//! last ticks before each move (1 ms plus each tick's own work and
//! output) are kept as the figure's resolution.
//!
//! Baseline, in turns with the moves: the same bytes (MIB MiB) sent as
//! one Zenoh put between the same namespaces, from a router in `a`'s
//! namespace (`a`'s identity, the device configuration,
//! [`weft_fabric::zconfig::config`]: TLS over QUIC) connected to a router
//! in `b`'s (`b`'s identity, the device configuration) that subscribes:
//! from just before the put to the subscriber's callback holding the
//! whole payload, both read on the machine's monotonic clock. Target:
//! downtime ≤ 2 × baseline + 5 ms.
//!
//! The daemons are started again for this part with `--mem 512` (room for
//! a 64 MiB app and its snapshot), without the other parts' UDP grants. Two moves of each app come first,
//! unrecorded (the module fetched and compiled where it lands first), and
//! one put of each size. Afterwards the ticks printed on both devices
//! must be every N from 1 exactly once, each with the hash of a run that
//! never moved, and no `CORRUPT` line: the state moved whole every time.

use crate::Figure;
use crate::devices::Fabric;
use crate::error::BenchError;
use crate::roles::{Helper, PUTTER, SUBSCRIBER, this_program};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use weft_benchkit::median;

const STATEFUL: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../target/wasm/wasm32-wasip1/release/stateful.wasm"
);
/// The app's tick period, ms.
const PERIOD_MS: u64 = 1;
/// The daemons' guest memory for this part, MiB.
const DAEMON_MEM: &str = "512";
/// Unrecorded moves of each app before the recorded ones.
const WARMUP_MOVES: usize = 2;
/// Ticks an app prints where it is before it is moved on.
const SETTLE_TICKS: usize = 50;
/// Intervals between the source's last ticks kept per move.
const INTERVALS: usize = 20;
/// The baseline's key, outside the fabric's key space (`weft/`), and the
/// ports of its routers (not the other baselines').
const KEY: &str = "bench/moves/state";
const SUBSCRIBER_PORT: u16 = 7450;
const PUTTER_PORT: u16 = 7451;
/// How long a 64 MiB app may take to fill its memory and tick.
const START_LIMIT: Duration = Duration::from_secs(120);
/// How long an app may take to tick where it is.
const TICK_LIMIT: Duration = Duration::from_secs(10);
/// How long a move may take to show its first tick at the destination.
const MOVE_LIMIT: Duration = Duration::from_secs(60);
/// How long the source's last tick may take to arrive once the
/// destination's first has.
const LAST_LIMIT: Duration = Duration::from_secs(5);
/// How long the outputs must be quiet once the app is killed.
const QUIET: Duration = Duration::from_millis(500);
const READY_LIMIT: Duration = Duration::from_secs(30);
const PUT_LIMIT: Duration = Duration::from_secs(60);

/// The benchmark's devices, in [`Fabric::new`]'s order.
const A: usize = 0;
const B: usize = 1;

/// One app size and what is measured with it.
struct Size {
    mib: usize,
    name: &'static str,
    baseline: &'static str,
    baseline_name: &'static str,
    resolution_name: &'static str,
    /// Turns, each of `per_turn` moves then `per_turn` puts.
    turns: usize,
    per_turn: usize,
}

const SIZES: [Size; 2] = [
    Size {
        mib: 1,
        name: "move_downtime_1mib_ms",
        baseline: "one raw Zenoh put of 1 MiB a to b, TLS/QUIC, device config",
        baseline_name: "zenoh_put_1mib_ms",
        resolution_name: "tick_interval_1mib_ms",
        turns: 4,
        per_turn: 10,
    },
    Size {
        mib: 64,
        name: "move_downtime_64mib_ms",
        baseline: "one raw Zenoh put of 64 MiB a to b, TLS/QUIC, device config",
        baseline_name: "zenoh_put_64mib_ms",
        resolution_name: "tick_interval_64mib_ms",
        turns: 4,
        per_turn: 4,
    },
];

pub fn measure(fabric: &mut Fabric) -> Result<[Figure; 2], BenchError> {
    fabric.restart_all_with(&["--mem", DAEMON_MEM])?;
    let fabric = &*fabric;
    let mut baseline = Baseline::start(fabric)?;
    let [small, large] = &SIZES;
    Ok([
        measure_size(fabric, &mut baseline, small)?,
        measure_size(fabric, &mut baseline, large)?,
    ])
}

/// Prints, for each downtime among `figures`, the target and whether its
/// median meets it on this machine.
pub fn targets(figures: &[Figure]) {
    for f in figures
        .iter()
        .filter(|f| f.name.starts_with("move_downtime_"))
    {
        let (value, bound) = (median(&f.samples), 2.0 * median(&f.baseline_samples) + 5.0);
        println!(
            "{:<24} {:>9.1} {:<2} target ≤ 2 × baseline + 5 ms = {:.1} ms: {}  ({})",
            f.name,
            value,
            f.unit,
            bound,
            if value <= bound { "met" } else { "not met" },
            weft_benchkit::machine()
        );
    }
}

fn measure_size(
    fabric: &Fabric,
    baseline: &mut Baseline,
    size: &Size,
) -> Result<Figure, BenchError> {
    let bytes = size.mib << 20;
    for device in [A, B] {
        fabric.daemon(device).skip_output();
    }
    let logged = [A, B].map(|i| fabric.daemon(i).log().len());
    let spawned = fabric.cli(
        A,
        &[
            "spawn",
            "--device",
            fabric.name(A),
            STATEFUL,
            &size.mib.to_string(),
            &PERIOD_MS.to_string(),
        ],
    )?;
    let mut app = App {
        fabric,
        pid: spawned.trim().to_string(),
        at: A,
        ticks: [Vec::new(), Vec::new()],
        arrived: 0,
    };
    app.settle(START_LIMIT)?;
    baseline.put_ms(bytes)?;
    for _ in 0..WARMUP_MOVES {
        app.hop()?;
    }
    let (mut downtimes, mut intervals, mut puts) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..size.turns {
        for _ in 0..size.per_turn {
            let (downtime, before) = app.hop()?;
            downtimes.push(downtime);
            intervals.extend(before);
        }
        for _ in 0..size.per_turn {
            puts.push(baseline.put_ms(bytes)?);
        }
    }
    let last = app.end()?;
    println!(
        "moves: {} MiB: {} moves; ticks 1 to {last} on a and b, each once, hashes right",
        size.mib,
        WARMUP_MOVES + downtimes.len()
    );
    // This size's moves only: what the logs gained meanwhile.
    let logs = [A, B].map(|i| {
        fabric
            .daemon(i)
            .log()
            .get(logged[i]..)
            .unwrap_or_default()
            .to_string()
    });
    println!("moves: {} MiB: {}", size.mib, phases(&logs));
    Ok(Figure {
        name: size.name,
        unit: "ms",
        samples: downtimes,
        baseline: size.baseline,
        baseline_name: size.baseline_name,
        baseline_samples: puts,
        resolution: Some((size.resolution_name, intervals)),
    })
}

/// A `tick N HASH` line of the app and when it arrived.
struct Tick {
    at: Instant,
    n: u64,
    hash: String,
}

/// The running `stateful` app and every tick it printed, per device.
struct App<'f> {
    fabric: &'f Fabric,
    pid: String,
    /// The device it runs on.
    at: usize,
    ticks: [Vec<Tick>; 2],
    /// Where its ticks on the device it runs on begin in `ticks[at]`.
    arrived: usize,
}

impl App<'_> {
    /// Reads device `device`'s output, keeping the app's ticks, until a
    /// tick `stop` accepts (returned) or `limit` passes (`None`).
    fn pull(
        &mut self,
        device: usize,
        limit: Duration,
        mut stop: impl FnMut(&Tick) -> bool,
    ) -> Result<Option<&Tick>, BenchError> {
        let fabric = self.fabric;
        let daemon = fabric.daemon(device);
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let (at, line) = match daemon.output().next("the app's output", left, |l| {
                l.contains("tick ") || l.contains("stateful ")
            }) {
                Ok(line) => line,
                Err(BenchError::Timeout { .. }) => return Ok(None),
                Err(error) => {
                    return Err(BenchError::Daemon {
                        error: Box::new(error),
                        log: daemon.log(),
                    });
                }
            };
            if line.contains("CORRUPT") || line.contains("UNEXPECTED") {
                return Err(bad(&format!("the app on {}", fabric.name(device)), &line));
            }
            let Some(rest) = line.find("tick ").map(|i| &line[i + "tick ".len()..]) else {
                continue;
            };
            let mut words = rest.split_whitespace();
            let (Some(n), Some(hash)) = (words.next().and_then(|n| n.parse().ok()), words.next())
            else {
                return Err(bad("a tick line", &line));
            };
            let tick = Tick {
                at,
                n,
                hash: hash.to_string(),
            };
            let done = stop(&tick);
            self.ticks[device].push(tick);
            if done {
                return Ok(self.ticks[device].last());
            }
        }
    }

    /// Waits until the app has ticked [`SETTLE_TICKS`] times where it is.
    fn settle(&mut self, limit: Duration) -> Result<(), BenchError> {
        let (at, arrived) = (self.at, self.arrived);
        if self.ticks[at].len() - arrived >= SETTLE_TICKS {
            return Ok(());
        }
        let want = arrived + SETTLE_TICKS;
        let mut count = self.ticks[at].len();
        let settled = self.pull(at, limit, |_| {
            count += 1;
            count >= want
        });
        match settled? {
            Some(_) => Ok(()),
            None => Err(BenchError::Timeout {
                what: format!(
                    "{SETTLE_TICKS} ticks of {} on {}",
                    self.pid,
                    self.fabric.name(at)
                ),
                limit,
            }),
        }
    }

    /// Moves the app to the other device once it has settled where it is:
    /// the downtime (ms) and the intervals between the source's last ticks
    /// (ms).
    fn hop(&mut self) -> Result<(f64, Vec<f64>), BenchError> {
        self.settle(TICK_LIMIT)?;
        let (from, to) = (self.at, 1 - self.at);
        let (source, destination) = (self.fabric.name(from), self.fabric.name(to));
        let out = self.fabric.cli(from, &["move", &self.pid, destination])?;
        let said = format!("{} runs on {destination}", self.pid);
        if out.trim() != said {
            return Err(bad(&format!("weft move {} {destination}", self.pid), &out));
        }
        let first = self
            .pull(to, MOVE_LIMIT, |_| true)?
            .map(|t| (t.at, t.n))
            .ok_or_else(|| BenchError::Timeout {
                what: format!("the first tick of {} on {destination}", self.pid),
                limit: MOVE_LIMIT,
            })?;
        self.at = to;
        self.arrived = self.ticks[to].len() - 1;
        let (first_at, first_n) = first;
        let wanted = first_n - 1;
        // The source's last tick may have been read already, while the
        // app settled there.
        let read = self.ticks[from].last().filter(|t| t.n >= wanted).is_some();
        let last = if read {
            self.ticks[from].last()
        } else {
            self.pull(from, LAST_LIMIT, |t| t.n >= wanted)?
        };
        let last = match last {
            Some(t) if t.n == wanted => t.at,
            other => {
                let why = match other {
                    Some(t) => format!("tick {} after it", t.n),
                    None => format!("no tick {wanted}"),
                };
                let what = format!("the ticks on {source} before tick {first_n} on {destination}");
                return Err(bad(&what, &why));
            }
        };
        let downtime = match first_at.checked_duration_since(last) {
            Some(d) => d.as_secs_f64() * 1e3,
            None => -(last.duration_since(first_at).as_secs_f64() * 1e3),
        };
        let stay = &self.ticks[from];
        let before = stay[stay.len() - (INTERVALS + 1)..]
            .windows(2)
            .map(|w| w[1].at.duration_since(w[0].at).as_secs_f64() * 1e3)
            .collect();
        Ok((downtime, before))
    }

    /// Kills the app, reads both outputs until they are quiet, and checks
    /// its ticks on both devices: each N from 1 once, with the hash of a
    /// run that never moved. The last N.
    fn end(mut self) -> Result<u64, BenchError> {
        self.fabric.cli(self.at, &["kill", &self.pid])?;
        loop {
            let seen = self.ticks.iter().map(Vec::len).sum::<usize>();
            for device in [A, B] {
                self.pull(device, QUIET, |_| false)?;
            }
            if self.ticks.iter().map(Vec::len).sum::<usize>() == seen {
                break;
            }
        }
        let mut all: Vec<(u64, &str, usize)> = self
            .ticks
            .iter()
            .enumerate()
            .flat_map(|(device, ticks)| ticks.iter().map(move |t| (t.n, t.hash.as_str(), device)))
            .collect();
        all.sort_by_key(|&(n, _, _)| n);
        let what = format!("the ticks of {} on a and b", self.pid);
        let mut hash = FNV_OFFSET;
        for (i, &(n, printed, device)) in all.iter().enumerate() {
            let expected = i as u64 + 1;
            let name = self.fabric.name(device);
            if n != expected {
                let why = if n < expected {
                    format!("tick {n} printed twice (again on {name})")
                } else {
                    format!("tick {expected} missing")
                };
                return Err(bad(&what, &why));
            }
            hash = tick_hash(hash, n);
            if printed != format!("{hash:016x}") {
                let why = format!("tick {n} on {name} has hash {printed}, not {hash:016x}");
                return Err(bad(&what, &why));
            }
        }
        Ok(all.len() as u64)
    }
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// `stateful`'s hash after tick `n`, from its hash after tick `n − 1`:
/// FNV-1a over the record of timer `n` (kind 4, id 0, value the token),
/// little-endian.
fn tick_hash(hash: u64, n: u64) -> u64 {
    let mut record = [0u8; 16];
    record[..4].copy_from_slice(&4u32.to_le_bytes());
    record[8..].copy_from_slice(&n.to_le_bytes());
    record.iter().fold(hash, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn bad(what: &str, text: &str) -> BenchError {
    BenchError::Output {
        what: what.to_string(),
        text: text.to_string(),
    }
}

/// The raw Zenoh baseline: a subscribing router in `b`'s namespace and a
/// putting router in `a`'s, linked to each other only; killed when dropped.
struct Baseline {
    subscriber: Helper,
    putter: Helper,
    seq: u64,
}

impl Baseline {
    fn start(fabric: &Fabric) -> Result<Baseline, BenchError> {
        let program = this_program()?;
        let state = |i: usize| fabric.state(i).display().to_string();
        let at_b = SocketAddr::from((fabric.ip(B), SUBSCRIBER_PORT));
        let at_a = SocketAddr::from((fabric.ip(A), PUTTER_PORT));
        let subscriber = Helper::start(
            fabric.command_in(B, &program),
            SUBSCRIBER,
            &[state(B), at_b.to_string(), KEY.into()],
        )?;
        subscriber
            .output()
            .next("the baseline's subscriber is ready", READY_LIMIT, |l| {
                l == "ready"
            })?;
        let putter = Helper::start(
            fabric.command_in(A, &program),
            PUTTER,
            &[state(A), at_a.to_string(), at_b.to_string(), KEY.into()],
        )?;
        putter
            .output()
            .next("the baseline's putter is ready", READY_LIMIT, |l| {
                l == "ready"
            })?;
        Ok(Baseline {
            subscriber,
            putter,
            seq: 0,
        })
    }

    /// One put of `bytes` from `a` to `b`: ms from just before it to the
    /// subscriber's callback.
    fn put_ms(&mut self, bytes: usize) -> Result<f64, BenchError> {
        self.seq += 1;
        let seq = self.seq;
        self.putter.tell(&format!("put {seq} {bytes}"))?;
        let (_, sent) = self
            .putter
            .output()
            .next("the baseline's put", PUT_LIMIT, |l| l.starts_with("sent "))?;
        let (_, got) = self
            .subscriber
            .output()
            .next("the baseline's sample", PUT_LIMIT, |l| {
                l.starts_with("got ")
            })?;
        let words = |line: &str| -> Vec<u64> {
            line.split(' ')
                .skip(1)
                .filter_map(|w| w.parse().ok())
                .collect()
        };
        match (words(&sent).as_slice(), words(&got).as_slice()) {
            ([s, sent_ns], [g, len, got_ns])
                if *s == seq && *g == seq && *len == bytes as u64 && got_ns >= sent_ns =>
            {
                Ok((got_ns - sent_ns) as f64 / 1e6)
            }
            _ => Err(bad(
                &format!("the baseline's put {seq} of {bytes} bytes"),
                &format!("{sent} / {got}"),
            )),
        }
    }
}

/// The medians of a move's phases, from the daemons' `logs`: the capture
/// (from the order to the snapshot in hand), the hand-over (from then to
/// the destination's answer) and, within it, the destination's restore.
fn phases(logs: &[String; 2]) -> String {
    let figures = |label: &str| {
        let mut v: Vec<f64> = logs
            .iter()
            .flat_map(|log| log.lines())
            .filter_map(|line| {
                let rest = &line[line.find(label)? + label.len()..];
                rest.split(" ms").next()?.parse().ok()
            })
            .collect();
        v.sort_by(f64::total_cmp);
        v
    };
    let median_of = |label: &str| {
        let v = figures(label);
        if v.is_empty() {
            "-".to_string()
        } else {
            format!("{:.1} ms", v[v.len() / 2])
        }
    };
    format!(
        "phases (median over the moves, warm-ups included): capture {}, hand-over {}, of which the restore {}",
        median_of("captured in "),
        median_of("handed over in "),
        median_of("restored in ")
    )
}
