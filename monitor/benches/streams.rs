//! `make bench`: the stream relays, each beside a native baseline measured in
//! the same run.
//!
//! - `file_read_throughput`: `weft run --fs-root DIR cat /big > /dev/null`
//!   (whole process, boot included) against native `cat DIR/big > /dev/null`,
//!   for a file in the page cache.
//! - `tcp_relay_throughput`: a host client streams data through the guest's
//!   `echo-server` and reads it back, against the same client and a native
//!   loopback echo server (one thread per connection).
//! - `tcp_relay_rtt_us`: 64-byte round trips through the same two servers.
//! - `file_read_doorbells_per_mib`, `file_read_interrupts_per_mib`,
//!   `tcp_echo_doorbells_per_mib`, `tcp_echo_interrupts_per_mib`: signals per
//!   MiB moved (from `--stats`), against one per 256 KiB ring-full (4/MiB),
//!   what a relay without wake-up suppression would need at the least.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use weft_benchkit::{Record, median, record};

const WEFT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/release/weft");
const FILE_MIB: usize = 256;
const ECHO_MIB: usize = 256;
const RUNS: usize = 9;
const ROUND_TRIPS: usize = 2000;
/// Signals per MiB if every 256 KiB ring-full needed one.
const ONE_PER_RING: f64 = 4.0;

fn main() {
    let dir = std::env::temp_dir().join(format!("weft-bench-streams-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let mut records = Vec::new();
    let mut raw: Vec<(&str, Vec<f64>)> = Vec::new();

    let (guest, native, signals) = file_read(&dir);
    records.push(Record::new(
        "file_read_throughput",
        median(&guest),
        "MB/s",
        "native `cat FILE > /dev/null`",
        median(&native),
    ));
    records.extend(per_mib("file_read", &signals, FILE_MIB));
    raw.push(("file_read_throughput", guest));
    raw.push(("file_read_throughput_native", native));

    let native_server = NativeEcho::start();
    let guest_server = GuestEcho::start();
    let mut thr = (Vec::new(), Vec::new());
    for _ in 0..RUNS {
        thr.0.push(throughput(guest_server.port, ECHO_MIB));
        thr.1.push(throughput(native_server.port, ECHO_MIB));
    }
    let rtt = (
        round_trips(guest_server.port),
        round_trips(native_server.port),
    );
    let echo_signals = guest_server.stop();
    records.push(Record::new(
        "tcp_relay_throughput",
        median(&thr.0),
        "MB/s",
        "same client, native loopback echo server",
        median(&thr.1),
    ));
    records.push(Record::new(
        "tcp_relay_rtt_us",
        median(&rtt.0),
        "us",
        "same client, native loopback echo server",
        median(&rtt.1),
    ));
    // Each throughput run moves ECHO_MIB in and out; the round trips ~0.
    records.extend(per_mib(
        "tcp_echo",
        &echo_signals,
        2 * ECHO_MIB * (RUNS + 1),
    ));
    raw.push(("tcp_relay_throughput", thr.0));
    raw.push(("tcp_relay_throughput_native", thr.1));
    raw.push(("tcp_relay_rtt_us", rtt.0));
    raw.push(("tcp_relay_rtt_us_native", rtt.1));

    let _ = std::fs::remove_dir_all(&dir);
    let raw: Vec<(&str, &[f64])> = raw.iter().map(|(n, v)| (*n, v.as_slice())).collect();
    record(&records, &raw).expect("write results");
    for r in &records {
        println!(
            "{:<32} {:>12.2} {:<5} baseline {:>12.2}  ratio {:.2}",
            r.name, r.value, r.unit, r.baseline_value, r.ratio
        );
    }
}

/// `doorbells=` and `interrupts=` from a `--stats` report.
struct Signals {
    doorbells: f64,
    interrupts: f64,
}

impl Signals {
    fn parse(stats: &str) -> Self {
        let field = |name: &str| -> f64 {
            stats
                .split(&format!(" {name}="))
                .nth(1)
                .and_then(|r| r.split_whitespace().next())
                .and_then(|v| v.parse().ok())
                .unwrap_or(f64::NAN)
        };
        Self {
            doorbells: field("doorbells"),
            interrupts: field("interrupts"),
        }
    }
}

fn per_mib(prefix: &str, s: &Signals, mib: usize) -> [Record; 2] {
    let baseline = "one signal per 256 KiB ring-full";
    [
        Record::new(
            &format!("{prefix}_doorbells_per_mib"),
            s.doorbells / mib as f64,
            "1/MiB",
            baseline,
            ONE_PER_RING,
        ),
        Record::new(
            &format!("{prefix}_interrupts_per_mib"),
            s.interrupts / mib as f64,
            "1/MiB",
            baseline,
            ONE_PER_RING,
        ),
    ]
}

/// Guest and native `cat` throughputs (MB/s) and the signals of one guest
/// run.
fn file_read(dir: &Path) -> (Vec<f64>, Vec<f64>, Signals) {
    let big = dir.join("big");
    let mut data = vec![0u8; FILE_MIB << 20];
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    for chunk in data.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    std::fs::write(&big, &data).expect("write the file");
    drop(data);
    let bytes = (FILE_MIB << 20) as f64;
    let guest = |stats: bool| {
        let mut cmd = Command::new(WEFT);
        cmd.arg("run");
        if stats {
            cmd.arg("--stats");
        }
        cmd.args(["--fs-root", &dir.display().to_string(), "cat", "/big"]);
        cmd
    };
    let native_cmd = || {
        let mut c = Command::new("cat");
        c.arg(&big);
        c
    };
    // Warm the page cache and both binaries.
    timed(&mut native_cmd());
    timed(&mut guest(false));
    let (mut g, mut n) = (Vec::new(), Vec::new());
    for _ in 0..RUNS {
        g.push(bytes / timed(&mut guest(false)) / 1e6);
        n.push(bytes / timed(&mut native_cmd()) / 1e6);
    }
    let out = guest(true)
        .stdout(Stdio::null())
        .output()
        .expect("spawn weft");
    (g, n, Signals::parse(&String::from_utf8_lossy(&out.stderr)))
}

/// Runs `cmd` with standard output to /dev/null; returns seconds.
fn timed(cmd: &mut Command) -> f64 {
    let t = Instant::now();
    let out = cmd.stdout(Stdio::null()).output().expect("spawn");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    t.elapsed().as_secs_f64()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

fn connect(port: u16) -> TcpStream {
    for _ in 0..500 {
        if let Ok(s) = TcpStream::connect(("127.0.0.1", port)) {
            s.set_nodelay(true).expect("nodelay");
            return s;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("nothing listens on port {port}");
}

/// Sends `mib` MiB through an echo server on `port` while reading it back;
/// returns MB/s of payload echoed.
fn throughput(port: u16, mib: usize) -> f64 {
    let s = connect(port);
    let mut rx = s.try_clone().expect("clone");
    let total = mib << 20;
    let t = Instant::now();
    let writer = std::thread::spawn(move || {
        let mut s = s;
        let buf = vec![0x5Au8; 64 << 10];
        for _ in 0..total / buf.len() {
            s.write_all(&buf).expect("send");
        }
        s.shutdown(Shutdown::Write).expect("shutdown");
    });
    let mut buf = vec![0u8; 64 << 10];
    let mut got = 0;
    while got < total {
        match rx.read(&mut buf).expect("receive") {
            0 => break,
            n => got += n,
        }
    }
    writer.join().expect("writer");
    assert_eq!(got, total, "echo lost bytes");
    total as f64 / t.elapsed().as_secs_f64() / 1e6
}

/// Microseconds per 64-byte round trip through an echo server on `port`.
fn round_trips(port: u16) -> Vec<f64> {
    let mut s = connect(port);
    let msg = [0xA5u8; 64];
    let mut back = [0u8; 64];
    let mut samples = Vec::with_capacity(ROUND_TRIPS);
    for i in 0..ROUND_TRIPS + 100 {
        let t = Instant::now();
        s.write_all(&msg).expect("send");
        s.read_exact(&mut back).expect("receive");
        if i >= 100 {
            samples.push(t.elapsed().as_secs_f64() * 1e6);
        }
    }
    samples
}

/// A native loopback echo server, one thread per connection.
struct NativeEcho {
    port: u16,
}

impl NativeEcho {
    fn start() -> Self {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("addr").port();
        std::thread::spawn(move || {
            for c in l.incoming().flatten() {
                let _ = c.set_nodelay(true);
                std::thread::spawn(move || {
                    let mut c = c;
                    let mut buf = vec![0u8; 64 << 10];
                    while let Ok(n) = c.read(&mut buf) {
                        if n == 0 || c.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    let _ = c.shutdown(Shutdown::Write);
                });
            }
        });
        Self { port }
    }
}

/// The guest's `echo-server` under `weft run --stats`.
struct GuestEcho {
    port: u16,
    child: Child,
}

impl GuestEcho {
    fn start() -> Self {
        let port = free_port();
        let child = Command::new(WEFT)
            .args(["run", "--stats", "--listen"])
            .arg(format!("127.0.0.1:{port}"))
            .args(["echo-server", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn weft");
        Self { port, child }
    }

    /// Stops the guest with SIGTERM (`weft` still prints `--stats`) and
    /// returns its signal counts.
    fn stop(self) -> Signals {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let out = self.child.wait_with_output().expect("wait for weft");
        Signals::parse(&String::from_utf8_lossy(&out.stderr))
    }
}
