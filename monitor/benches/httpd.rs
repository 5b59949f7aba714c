//! `make bench`: the guest's web server under load, beside nginx serving the
//! same file on the same machine in the same run.
//!
//! Both servers serve one 11-byte file (`hello world`) from a temporary
//! directory on loopback: the bundled `httpd` under `weft run --fs-root DIR
//! --read-only --listen 127.0.0.1:PORT httpd PORT`, and nginx from Debian with
//! one worker (`worker_processes 1`, in the foreground as a single process,
//! no access log, its default keep-alive) from a configuration this bench
//! writes. `httpd` keeps the small file in memory and looks at its
//! metadata at most once a second (as lighttpd's stat cache does); nginx
//! opens the file for every request unless its `open_file_cache` is on.
//! Load comes from wrk with 2 threads; each figure is measured in turns (weft, then nginx, [`TURNS`] times, after a short warm-up of each),
//! and between two runs the bench waits for the last server to go idle so a
//! backlog of dropped connections does not eat the next run's CPU.
//!
//! - `httpd_rps`: requests/s of `wrk -t2 -c100 -d10s` (median of the
//!   turns); baseline nginx under the same load. Target: ratio ≥ 0.5.
//! - `httpd_rps_vs_caching_nginx`: the same `httpd` samples against nginx
//!   with `open_file_cache` on and valid for a second, as `httpd`'s cache.
//! - `httpd_rps_vs_closing_nginx`: the same `httpd` samples against nginx
//!   with `keepalive_timeout 0`, which closes every connection after its
//!   response (wrk then opens one connection per request).
//! - `httpd_cpu_us_per_request`: CPU time (user + system, all threads) the
//!   server process spent per request answered during the 100-connection
//!   runs; baseline nginx's.
//! - `conn_1000_errors`: socket errors (connect, read, write, timeout) plus
//!   non-2xx/3xx responses of `wrk -t2 -c1000 -d10s --timeout 5s`, the worst
//!   of the turns; baseline nginx's count in the same turns. Target: 0. A
//!   zero baseline makes the ratio NaN (printed as `n/a`).
//! - `httpd_rps_1000_conns`: requests/s of those same 1,000-connection runs;
//!   baseline nginx's.
//!
//! Before and after the measurements the file is fetched once from each
//! server, and anything but `200` with the 11 bytes fails the bench. Each
//! load runs on a fresh guest under `--stats`, stopped with SIGTERM after
//! its runs: the exits, doorbells, interrupts and streams it reports are
//! printed per request. The servers and the directory go on every way out,
//! a failure included. wrk and nginx are installed by `make bench`.

use std::fmt;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};
use weft_benchkit::{Record, median, record};

const WEFT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/release/weft");
/// The file both servers serve, and its contents.
const FILE: &str = "hello.txt";
const BODY: &[u8] = b"hello world";
/// Turns of each server per load.
const TURNS: usize = 3;
/// Length of one measured wrk run.
const DURATION: &str = "10s";
/// The two loads: connections and extra wrk arguments.
const LOAD_100: (u32, &[&str]) = (100, &[]);
const LOAD_1000: (u32, &[&str]) = (1000, &["--timeout", "5s"]);

fn main() -> ExitCode {
    match bench() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("httpd bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Why the bench could not measure.
#[derive(Debug)]
struct BenchError(String);

impl fmt::Display for BenchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn error(msg: impl Into<String>) -> BenchError {
    BenchError(msg.into())
}

fn bench() -> Result<(), BenchError> {
    let wrk = tool("wrk")?;
    let nginx_bin = tool("nginx")?;
    let dir = TempDir::new()?;
    let www = dir.0.join("www");
    fs::create_dir_all(&www).map_err(|e| error(format!("create {}: {e}", www.display())))?;
    fs::write(www.join(FILE), BODY).map_err(|e| error(format!("write the file: {e}")))?;
    let nginx = Nginx::start(&nginx_bin, &dir.0, &www)?;
    let mut figures = Vec::new();
    let mut per_request = Vec::new();

    // 100 connections: httpd, nginx and nginx closing every connection.
    let weft = Server::weft(&dir.0, &www, "100")?;
    let targets = [
        (weft.name.as_str(), weft.port, weft.pid()),
        ("nginx", nginx.port, nginx.server.pid()),
        (
            "nginx (keepalive_timeout 0)",
            nginx.close_port,
            nginx.server.pid(),
        ),
        (
            "nginx (open_file_cache)",
            nginx.cache_port,
            nginx.server.pid(),
        ),
    ];
    let turns_100 = turns(&wrk, &targets, LOAD_100)?;
    per_request.push(("100 connections", weft.stop()?, turns_100.requests(0)));
    let runs = &turns_100.runs;
    let rps = |i: usize| runs[i].iter().map(|r| r.rps).collect::<Vec<_>>();
    let cpu = |i: usize| runs[i].iter().map(|r| r.cpu_us_per_request()).collect();
    figures.push(Figure {
        name: "httpd_rps",
        unit: "req/s",
        baseline: "nginx, 1 worker, same file, wrk -t2 -c100 -d10s",
        samples: rps(0),
        baseline_name: "httpd_rps_nginx",
        baseline_samples: rps(1),
        worst: false,
    });
    figures.push(Figure {
        name: "httpd_rps_vs_caching_nginx",
        unit: "req/s",
        baseline: "nginx, 1 worker, open_file_cache valid 1s, same file, wrk -t2 -c100 -d10s",
        samples: rps(0),
        baseline_name: "httpd_rps_nginx_cache",
        baseline_samples: rps(3),
        worst: false,
    });
    figures.push(Figure {
        name: "httpd_rps_vs_closing_nginx",
        unit: "req/s",
        baseline: "nginx, 1 worker, keepalive_timeout 0, same file, wrk -t2 -c100 -d10s",
        samples: rps(0),
        baseline_name: "httpd_rps_nginx_close",
        baseline_samples: rps(2),
        worst: false,
    });
    figures.push(Figure {
        name: "httpd_cpu_us_per_request",
        unit: "us",
        baseline: "nginx, 1 worker, same file, wrk -t2 -c100 -d10s",
        samples: cpu(0),
        baseline_name: "httpd_cpu_us_per_request_nginx",
        baseline_samples: cpu(1),
        worst: false,
    });

    // 1,000 connections: httpd and nginx.
    let weft = Server::weft(&dir.0, &www, "1000")?;
    let targets = [
        (weft.name.as_str(), weft.port, weft.pid()),
        ("nginx", nginx.port, nginx.server.pid()),
    ];
    let turns_1000 = turns(&wrk, &targets, LOAD_1000)?;
    per_request.push(("1000 connections", weft.stop()?, turns_1000.requests(0)));
    let runs = &turns_1000.runs;
    drop(nginx);
    drop(dir);
    let errors = |i: usize| runs[i].iter().map(|r| r.errors()).collect::<Vec<_>>();
    figures.push(Figure {
        name: "conn_1000_errors",
        unit: "errors",
        baseline: "nginx, 1 worker, same file, wrk -t2 -c1000 -d10s --timeout 5s (worst turn)",
        samples: errors(0),
        baseline_name: "conn_1000_errors_nginx",
        baseline_samples: errors(1),
        worst: true,
    });
    figures.push(Figure {
        name: "httpd_rps_1000_conns",
        unit: "req/s",
        baseline: "nginx, 1 worker, same file, wrk -t2 -c1000 -d10s --timeout 5s",
        samples: runs[0].iter().map(|r| r.rps).collect(),
        baseline_name: "httpd_rps_1000_conns_nginx",
        baseline_samples: runs[1].iter().map(|r| r.rps).collect(),
        worst: false,
    });

    let records: Vec<Record> = figures.iter().map(Figure::record).collect();
    let raw: Vec<(&str, &[f64])> = figures
        .iter()
        .flat_map(|f| {
            [
                (f.name, f.samples.as_slice()),
                (f.baseline_name, f.baseline_samples.as_slice()),
            ]
        })
        .collect();
    record(&records, &raw).map_err(|e| error(format!("write results: {e}")))?;
    for r in &records {
        let ratio = if r.ratio.is_finite() {
            format!("{:.2}", r.ratio)
        } else {
            "n/a".to_owned()
        };
        println!(
            "{:<28} {:>10.1} {:<6} baseline {:>10.1}  ratio {ratio}",
            r.name, r.value, r.unit, r.baseline_value
        );
    }
    for (load, stats, requests) in &per_request {
        println!(
            "httpd per request at {load} ({requests} requests): {}",
            stats.per(*requests)
        );
    }
    println!("targets: httpd_rps ratio >= 0.5, conn_1000_errors = 0");
    Ok(())
}

/// One figure, its baseline, and the raw samples of both.
struct Figure {
    name: &'static str,
    unit: &'static str,
    baseline: &'static str,
    samples: Vec<f64>,
    baseline_name: &'static str,
    baseline_samples: Vec<f64>,
    /// The figure is the largest sample (an error count) instead of the
    /// median.
    worst: bool,
}

impl Figure {
    fn record(&self) -> Record {
        let summary = |s: &[f64]| {
            if self.worst {
                s.iter().copied().fold(f64::NAN, f64::max)
            } else {
                median(s)
            }
        };
        Record::new(
            self.name,
            summary(&self.samples),
            self.unit,
            self.baseline,
            summary(&self.baseline_samples),
        )
    }
}

/// Finds `name` on `PATH` or in `/usr/sbin` (where Debian puts nginx).
fn tool(name: &str) -> Result<PathBuf, BenchError> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin")])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| error(format!("{name} not found: `make bench-setup` installs it")))
}

/// A directory of this run, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Result<Self, BenchError> {
        let dir = std::env::temp_dir().join(format!("weft-bench-httpd-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).map_err(|e| error(format!("create {}: {e}", dir.display())))?;
        Ok(Self(dir))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A server process on a loopback port, stopped when dropped.
struct Server {
    name: String,
    port: u16,
    child: Option<Child>,
    /// Where its standard error goes.
    log: PathBuf,
}

impl Server {
    /// `httpd` in a fresh guest under `--stats`, serving `www`; `tag` names
    /// its log.
    fn weft(dir: &Path, www: &Path, tag: &str) -> Result<Self, BenchError> {
        let port = free_port()?;
        let log = dir.join(format!("weft-{tag}.log"));
        let mut cmd = Command::new(WEFT);
        cmd.args(["run", "--stats", "--fs-root"])
            .arg(www)
            .args(["--read-only", "--listen", &format!("127.0.0.1:{port}")])
            // A bound on the guest should the bench be killed.
            .args(["--timeout", "1800", "httpd", &port.to_string()]);
        Self::spawn("weft httpd", port, cmd, log)
    }

    /// Runs `cmd` with its output to `log`, then waits until `port` accepts.
    fn spawn(name: &str, port: u16, mut cmd: Command, log: PathBuf) -> Result<Self, BenchError> {
        // A file, not a pipe: a guest whose stderr is not read would stall.
        let out =
            File::create(&log).map_err(|e| error(format!("create {}: {e}", log.display())))?;
        let err = out
            .try_clone()
            .map_err(|e| error(format!("clone {}: {e}", log.display())))?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| error(format!("spawn {name} ({cmd:?}): {e}")))?;
        let mut server = Self {
            name: name.to_owned(),
            port,
            child: Some(child),
            log,
        };
        server.wait_until_up()?;
        Ok(server)
    }

    fn wait_until_up(&mut self) -> Result<(), BenchError> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Ok(());
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                return Err(error(format!(
                    "{} exited before listening ({status}): {}",
                    self.name,
                    self.log_text()
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(error(format!(
            "{} does not listen on port {} after 30 s: {}",
            self.name,
            self.port,
            self.log_text()
        )))
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Stops the server with SIGTERM (`weft` then prints `--stats`) and
    /// returns its counters.
    fn stop(mut self) -> Result<GuestStats, BenchError> {
        self.terminate();
        GuestStats::parse(&self.log_text()).ok_or_else(|| {
            error(format!(
                "no --stats from {}: {}",
                self.name,
                self.log_text()
            ))
        })
    }

    /// SIGTERM, then SIGKILL if the process has not gone after 10 s.
    fn terminate(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        weft_benchkit::terminate(&mut child, Duration::from_secs(10));
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.terminate();
    }
}

/// nginx with one worker: keep-alive on `port`, off on `close_port`, and
/// with `open_file_cache` on `cache_port`.
struct Nginx {
    server: Server,
    port: u16,
    close_port: u16,
    cache_port: u16,
}

impl Nginx {
    fn start(bin: &Path, dir: &Path, www: &Path) -> Result<Self, BenchError> {
        let port = free_port()?;
        let close_port = free_port()?;
        let cache_port = free_port()?;
        let prefix = dir.join("nginx");
        fs::create_dir_all(prefix.join("temp"))
            .map_err(|e| error(format!("create {}: {e}", prefix.display())))?;
        let p = |name: &str| prefix.join(name).display().to_string();
        let conf = format!(
            "worker_processes 1;\n\
             master_process off;\n\
             daemon off;\n\
             pid {pid};\n\
             error_log {log} warn;\n\
             worker_rlimit_nofile 8192;\n\
             events {{ worker_connections 4096; }}\n\
             http {{\n\
             \x20 access_log off;\n\
             \x20 sendfile on;\n\
             \x20 default_type text/plain;\n\
             \x20 client_body_temp_path {t}/body;\n\
             \x20 proxy_temp_path {t}/proxy;\n\
             \x20 fastcgi_temp_path {t}/fastcgi;\n\
             \x20 uwsgi_temp_path {t}/uwsgi;\n\
             \x20 scgi_temp_path {t}/scgi;\n\
             \x20 server {{ listen 127.0.0.1:{port}; root {www}; }}\n\
             \x20 server {{ listen 127.0.0.1:{close_port}; root {www}; keepalive_timeout 0; }}\n\
             \x20 server {{ listen 127.0.0.1:{cache_port}; root {www}; \
             open_file_cache max=64 inactive=20s; open_file_cache_valid 1s; }}\n\
             }}\n",
            pid = p("nginx.pid"),
            log = p("error.log"),
            t = p("temp"),
            www = www.display(),
        );
        let conf_path = prefix.join("nginx.conf");
        fs::write(&conf_path, conf).map_err(|e| error(format!("write nginx.conf: {e}")))?;
        let mut cmd = Command::new(bin);
        cmd.arg("-p")
            .arg(&prefix)
            .arg("-e")
            .arg(prefix.join("error.log"))
            .arg("-c")
            .arg(&conf_path);
        let server = Server::spawn("nginx", port, cmd, prefix.join("stderr.log"))?;
        Ok(Self {
            server,
            port,
            close_port,
            cache_port,
        })
    }
}

fn free_port() -> Result<u16, BenchError> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| error(format!("find a free port: {e}")))
}

/// Fetches the file once; anything but `200` and its 11 bytes is an error.
fn check(name: &str, port: u16) -> Result<(), BenchError> {
    let fetch = || -> std::io::Result<Vec<u8>> {
        let mut s = TcpStream::connect(("127.0.0.1", port))?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        write!(
            s,
            "GET /{FILE} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        )?;
        let mut reply = Vec::new();
        s.read_to_end(&mut reply)?;
        Ok(reply)
    };
    let reply = fetch().map_err(|e| error(format!("GET /{FILE} from {name}: {e}")))?;
    let text = String::from_utf8_lossy(&reply);
    let (head, body) = match reply.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(at) => (&reply[..at], &reply[at + 4..]),
        None => (&reply[..], &[][..]),
    };
    let status_ok = head.starts_with(b"HTTP/1.1 200 ") || head.starts_with(b"HTTP/1.0 200 ");
    if !status_ok || body != BODY {
        return Err(error(format!(
            "{name} answered GET /{FILE} wrongly (want 200 and {:?}): {text:?}",
            String::from_utf8_lossy(BODY)
        )));
    }
    Ok(())
}

/// What one wrk run reported, and the server's CPU time during it.
#[derive(Clone, Copy, Debug)]
struct Run {
    rps: f64,
    requests: f64,
    /// Socket errors: connect, read, write, timeout.
    socket_errors: [f64; 4],
    non_2xx: f64,
    cpu_s: f64,
}

impl Run {
    fn errors(&self) -> f64 {
        self.socket_errors.iter().sum::<f64>() + self.non_2xx
    }

    fn cpu_us_per_request(&self) -> f64 {
        self.cpu_s * 1e6 / self.requests
    }

    /// Parses wrk's report.
    fn parse(out: &str) -> Option<Self> {
        let after = |key: &str| -> Option<&str> {
            out.lines()
                .find_map(|l| l.trim().strip_prefix(key))
                .map(str::trim)
        };
        let rps = after("Requests/sec:")?.parse().ok()?;
        let requests = out
            .lines()
            .find(|l| l.contains(" requests in "))?
            .split_whitespace()
            .next()?
            .parse()
            .ok()?;
        // "Socket errors: connect 0, read 0, write 0, timeout 12"
        let mut socket_errors = [0.0; 4];
        if let Some(s) = after("Socket errors:") {
            for (kind, count) in ["connect", "read", "write", "timeout"]
                .iter()
                .zip(&mut socket_errors)
            {
                *count = s
                    .split(',')
                    .find_map(|part| part.trim().strip_prefix(kind))?
                    .trim()
                    .parse()
                    .ok()?;
            }
        }
        let non_2xx = match after("Non-2xx or 3xx responses:") {
            Some(n) => n.parse().ok()?,
            None => 0.0,
        };
        Some(Self {
            rps,
            requests,
            socket_errors,
            non_2xx,
            cpu_s: 0.0,
        })
    }
}

/// Each target's measured runs, and the requests its warm-up run and checks
/// added.
struct Turns {
    runs: Vec<Vec<Run>>,
    unmeasured: Vec<f64>,
}

impl Turns {
    /// Requests answered by target `i` in all, warm-up and checks included.
    fn requests(&self, i: usize) -> f64 {
        self.runs[i].iter().map(|r| r.requests).sum::<f64>() + self.unmeasured[i]
    }
}

/// Alternates wrk runs at `load` over `targets` (name, port, server pid),
/// a short warm-up of each first, the file checked on each before and
/// after.
fn turns(
    wrk: &Path,
    targets: &[(&str, u16, u32)],
    (connections, extra): (u32, &[&str]),
) -> Result<Turns, BenchError> {
    let mut unmeasured = Vec::new();
    for (name, port, pid) in targets {
        check(name, *port)?;
        let warm = load(wrk, name, *port, *pid, connections, extra, "2s")?;
        // The checks before and after.
        unmeasured.push(warm.requests + 2.0);
    }
    let mut runs = vec![Vec::new(); targets.len()];
    for turn in 0..TURNS {
        for (i, (name, port, pid)) in targets.iter().enumerate() {
            let run = load(wrk, name, *port, *pid, connections, extra, DURATION)?;
            let [c, r, w, t] = run.socket_errors;
            eprintln!(
                "  turn {turn}: {name:<28} {connections:>4} conns {:>9.1} req/s {:>6.1} us CPU/req, \
                 errors {} (connect {c}, read {r}, write {w}, timeout {t}, non-2xx {})",
                run.rps,
                run.cpu_us_per_request(),
                run.errors(),
                run.non_2xx
            );
            runs[i].push(run);
        }
    }
    for (name, port, _) in targets {
        check(name, *port)?;
    }
    Ok(Turns { runs, unmeasured })
}

/// One wrk run against `port`; waits for the server (`pid`) to go idle
/// afterwards.
fn load(
    wrk: &Path,
    name: &str,
    port: u16,
    pid: u32,
    connections: u32,
    extra: &[&str],
    duration: &str,
) -> Result<Run, BenchError> {
    let cpu_before = cpu_seconds(pid);
    let out = Command::new(wrk)
        .args(["-t2", &format!("-c{connections}"), &format!("-d{duration}")])
        .args(extra)
        .arg(format!("http://127.0.0.1:{port}/{FILE}"))
        .output()
        .map_err(|e| error(format!("run wrk: {e}")))?;
    let cpu = cpu_seconds(pid) - cpu_before;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(error(format!(
            "wrk against {name} failed ({}): {text}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    let mut run =
        Run::parse(&text).ok_or_else(|| error(format!("unreadable wrk report: {text}")))?;
    run.cpu_s = cpu;
    settle(pid);
    Ok(run)
}

/// User plus system CPU seconds of process `pid`, all its threads.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command name, which is in parentheses.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    // utime and stime are fields 14 and 15, the 12th and 13th after `)`.
    let ticks: f64 = fields
        .get(11..13)
        .map(|f| f.iter().filter_map(|t| t.parse::<f64>().ok()).sum())
        .unwrap_or(f64::NAN);
    // SAFETY: `sysconf` only reads a configuration value.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    ticks / hz.max(1) as f64
}

/// Waits (at most 20 s) until process `pid` uses under 2% of a CPU over
/// 250 ms.
fn settle(pid: u32) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut last = cpu_seconds(pid);
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(250));
        let now = cpu_seconds(pid);
        let used = now - last;
        if !used.is_finite() || used < 0.005 {
            return;
        }
        last = now;
    }
}

/// Counters from a `--stats` report.
struct GuestStats {
    exits: f64,
    io_exits: f64,
    hlt_exits: f64,
    doorbells: f64,
    doorbell_exits: f64,
    interrupts: f64,
    streams: f64,
}

impl GuestStats {
    /// Each counter divided by `requests`.
    fn per(&self, requests: f64) -> Self {
        Self {
            exits: self.exits / requests,
            io_exits: self.io_exits / requests,
            hlt_exits: self.hlt_exits / requests,
            doorbells: self.doorbells / requests,
            doorbell_exits: self.doorbell_exits / requests,
            interrupts: self.interrupts / requests,
            streams: self.streams / requests,
        }
    }

    fn parse(report: &str) -> Option<Self> {
        let field = |name: &str| -> Option<f64> {
            report
                .split(&format!(" {name}="))
                .nth(1)
                .and_then(|r| r.split_whitespace().next())
                .and_then(|v| v.parse().ok())
        };
        Some(Self {
            exits: field("total")?,
            io_exits: field("io")?,
            hlt_exits: field("hlt")?,
            doorbells: field("doorbells")?,
            doorbell_exits: field("doorbell_exits")?,
            interrupts: field("interrupts")?,
            streams: field("opened")?,
        })
    }
}

impl fmt::Display for GuestStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "exits {:.2} (io {:.2}, hlt {:.2}), doorbells {:.2} (exiting {:.2}), \
             interrupts {:.2}, streams opened {:.2}",
            self.exits,
            self.io_exits,
            self.hlt_exits,
            self.doorbells,
            self.doorbell_exits,
            self.interrupts,
            self.streams
        )
    }
}
