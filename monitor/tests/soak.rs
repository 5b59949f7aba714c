//! The soak test (`make soak`): one guest serves HTTP and TCP echo to a
//! thousand concurrent clients for ten minutes (`WEFT_SOAK_SECS`, default
//! 600), every response byte-exact, while `weft`'s resident memory and
//! descriptor count stay flat.
//!
//! The guest is one `weft run` with `procs` starting `httpd` on one port
//! and as many `echo-server`s as the echo clients need on ports of their
//! own (an `echo-server` serves 63 connections at once; the rest would wait
//! in its backlog for as long as the connections it serves last), all under
//! `--read-only --fs-root` a directory of three files of known contents
//! (11 bytes, 4 KiB, 300 KiB).
//!
//! Half the clients are HTTP: each loops connect, `GET` one of the files
//! (`Connection: close`, which is all `httpd` does), read to end-of-file,
//! check the status, `Content-Length` and every byte of the body. `httpd`
//! serves one connection at a time, so the others wait in the listener's
//! backlog: the clients' timeouts are generous. The other half are echo
//! clients: each keeps a connection for a random number of messages of
//! random sizes (1 B to 64 KiB, random bytes), checks each echo byte for
//! byte, then closes and connects again.
//!
//! Every sampling interval (10 s in the full run) the test prints `weft`'s
//! resident set (`VmRSS`) and open descriptors. At the end it asserts: no
//! mismatch, no error of any kind (connect, read, write, timeout), `weft`
//! still running, and flat resources: past the warm-up (the first 20% of the
//! run), the largest sample of the last 20% exceeds the largest of 20%–50%
//! by at most 10% + 4 MiB of RSS and one descriptor per client + 16; and
//! once the clients are gone the descriptors come back to within 16 of
//! those the guest held at rest (sampled after it served each port once,
//! since the monitor binds the ports before the guest starts). `weft` is
//! stopped with SIGTERM (its `--stats` are printed) and the directory
//! removed however the test ends.
//!
//! `make test` runs the short variant ([`soak_briefly`]: 20 s, 200
//! clients); `make soak` the full one ([`soak_a_thousand_clients`],
//! ignored otherwise).

mod common;

use common::resources::{Flatness, Sample};
use common::{TempDir, free_port, random_bytes};
use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// Connections one `echo-server` serves at once (its `MAX_CONNECTIONS`).
const ECHO_PER_SERVER: usize = 63;
/// The largest echo message.
const MAX_MESSAGE: usize = 64 * 1024;
/// The most messages one echo connection carries before it is closed.
const MAX_SESSION: u64 = 100;
/// How long a client waits to connect, and for any read or write.
/// `httpd` serves one connection at a time, so with 500 HTTP clients a
/// request waits for up to 499 others.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(300);
/// Failures described in full (all are counted).
const MAX_REPORTED: usize = 20;
/// The longest the guest may take, after the clients are gone, to close
/// the descriptors of their connections.
const SETTLE: Duration = Duration::from_secs(10);
/// Guest RAM; its default stream budget (682 at 512 MiB) covers the ~550
/// streams of the full run (`echo-server`s' and `httpd`'s listeners and
/// connections, files, standard streams).
const GUEST_MIB: &str = "512";

/// One soak run's shape.
struct Soak {
    duration: Duration,
    http_clients: usize,
    echo_clients: usize,
    /// Time between two samples of `weft`'s resources.
    sample_every: Duration,
}

/// The full soak: 500 HTTP and 500 echo clients for `WEFT_SOAK_SECS`
/// seconds (default 600).
#[test]
#[ignore = "ten minutes; `make soak` runs it"]
fn soak_a_thousand_clients() {
    let secs = match std::env::var("WEFT_SOAK_SECS") {
        Ok(s) => s
            .parse::<u64>()
            .unwrap_or_else(|e| panic!("WEFT_SOAK_SECS={s:?}: {e}")),
        Err(_) => 600,
    };
    assert!(secs >= 10, "WEFT_SOAK_SECS must be at least 10");
    soak(&Soak {
        duration: Duration::from_secs(secs),
        http_clients: 500,
        echo_clients: 500,
        sample_every: Duration::from_secs((secs / 20).clamp(1, 10)),
    });
}

/// The same soak, short and smaller, so `make test` runs its code.
#[test]
fn soak_briefly() {
    soak(&Soak {
        duration: Duration::from_secs(20),
        http_clients: 100,
        echo_clients: 100,
        sample_every: Duration::from_millis(500),
    });
}

fn soak(cfg: &Soak) {
    let root = Root::new();
    let files = Arc::new(root.files.clone());
    let echo_servers = cfg.echo_clients.div_ceil(ECHO_PER_SERVER).max(1);
    let http_port = free_port();
    let echo_ports: Vec<u16> = (0..echo_servers).map(|_| free_port()).collect();
    let mut guest = Guest::start(&root, http_port, &echo_ports);
    println!(
        "soak: weft pid {} serving httpd on {http_port}, {echo_servers} echo-server(s) on {:?}; \
         {} HTTP + {} echo clients for {} s",
        guest.pid(),
        echo_ports,
        cfg.http_clients,
        cfg.echo_clients,
        cfg.duration.as_secs()
    );

    let tally = Arc::new(Tally::default());
    let start = Instant::now();
    // The guest at rest, before any client: what it must come back to.
    let idle = guest.at_rest(start);
    let deadline = start + cfg.duration;
    let mut clients = Vec::with_capacity(cfg.http_clients + cfg.echo_clients);
    for i in 0..cfg.http_clients {
        let (tally, files) = (tally.clone(), files.clone());
        let addr = SocketAddr::from(([127, 0, 0, 1], http_port));
        clients.push(spawn_client(format!("http-{i}"), move || {
            http_client(i, addr, &files, deadline, start, &tally);
        }));
    }
    for i in 0..cfg.echo_clients {
        let tally = tally.clone();
        let addr = SocketAddr::from(([127, 0, 0, 1], echo_ports[i % echo_servers]));
        clients.push(spawn_client(format!("echo-{i}"), move || {
            echo_client(i, addr, deadline, start, &tally);
        }));
    }

    // Sample until the deadline, then once more after the clients are done
    // (and the descriptors they left settled).
    let mut samples = vec![Sample::take(guest.pid(), start)];
    print(&samples[0], &tally);
    while Instant::now() < deadline {
        let next = start + cfg.sample_every * samples.len() as u32;
        thread::sleep(next.min(deadline).saturating_duration_since(Instant::now()));
        if Instant::now() >= next {
            let s = Sample::take(guest.pid(), start);
            print(&s, &tally);
            samples.push(s);
        }
    }
    for c in clients {
        c.join().expect("a client thread panicked");
    }
    let elapsed = start.elapsed();
    // The guest closes its ends of the last connections at its own pace
    // (on a loaded machine, a second or more after the clients are gone):
    // wait up to SETTLE for the descriptors to come back before the last
    // sample. Leaked ones never do.
    let last = Sample::settled(guest.pid(), start, &idle, SETTLE);
    print(&last, &tally);
    samples.push(last);
    let running = guest.running();
    let log = guest.stop();

    let t = tally.snapshot();
    let secs = elapsed.as_secs_f64();
    println!(
        "soak: {:.0} s: HTTP {} requests ({:.0}/s), {} body bytes; echo {} messages ({:.0}/s) \
         on {} connections, {} bytes each way",
        secs,
        t.http_requests,
        t.http_requests as f64 / secs,
        t.http_bytes,
        t.echo_messages,
        t.echo_messages as f64 / secs,
        t.echo_sessions,
        t.echo_bytes
    );
    println!(
        "soak: slowest HTTP request {:.3} s, slowest echo round trip {:.3} s",
        t.slowest_http_us as f64 / 1e6,
        t.slowest_echo_us as f64 / 1e6
    );
    println!(
        "soak: errors: connect {}, i/o {}, mismatches {}",
        t.connect_errors, t.io_errors, t.mismatches
    );
    for (kind, n) in tally.failure_kinds.lock().unwrap().iter() {
        println!("soak:   {n} x {kind}");
    }
    let flat = Flatness::of(
        &samples,
        cfg.duration,
        idle,
        cfg.http_clients + cfg.echo_clients,
    );
    println!("soak: {flat}");
    println!("soak: weft's log:\n{log}");

    let failures = tally.failures.lock().unwrap();
    let described = failures.join("\n  ");
    assert!(running, "weft stopped during the soak; its log:\n{log}");
    assert_eq!(
        t.mismatches, 0,
        "responses that were not byte-exact; first ones:\n  {described}"
    );
    assert_eq!(
        t.connect_errors + t.io_errors,
        0,
        "clients failed (connect {}, i/o {}); first failures:\n  {described}",
        t.connect_errors,
        t.io_errors
    );
    assert!(t.http_requests > 0 && t.echo_messages > 0, "no traffic");
    flat.assert("weft");
}

fn spawn_client(name: String, f: impl FnOnce() + Send + 'static) -> thread::JoinHandle<()> {
    thread::Builder::new()
        .name(name)
        .stack_size(256 * 1024)
        .spawn(f)
        .expect("spawn a client thread")
}

/// The served directory and what it holds.
struct Root {
    dir: TempDir,
    /// Each file's URL path and contents.
    files: Vec<(String, Vec<u8>)>,
}

impl Root {
    fn new() -> Self {
        let dir = TempDir::new("soak");
        fs::create_dir_all(dir.join("www")).unwrap();
        let page: Vec<u8> = (0..4096u32)
            .map(|i| b"0123456789abcdef"[i as usize % 16])
            .collect();
        let files = vec![
            ("/hello.txt".to_owned(), b"hello world".to_vec()),
            ("/page.html".to_owned(), page),
            ("/big.bin".to_owned(), random_bytes(0x50a4, 300 * 1024)),
        ];
        for (path, body) in &files {
            fs::write(dir.join("www").join(&path[1..]), body).unwrap();
        }
        Self { dir, files }
    }

    fn www(&self) -> PathBuf {
        self.dir.join("www")
    }

    fn log(&self) -> PathBuf {
        self.dir.join("weft.log")
    }
}

/// The `weft` serving the soak; stopped with SIGTERM (then SIGKILL) when
/// dropped, whatever ends the test.
struct Guest {
    child: Option<Child>,
    log: PathBuf,
}

impl Guest {
    fn start(root: &Root, http_port: u16, echo_ports: &[u16]) -> Self {
        let mut args: Vec<String> = [
            "run",
            "--stats",
            "--mem",
            GUEST_MIB,
            "--timeout",
            "7200",
            "--read-only",
        ]
        .map(String::from)
        .to_vec();
        args.push("--fs-root".into());
        args.push(root.www().display().to_string());
        for port in std::iter::once(&http_port).chain(echo_ports) {
            args.push("--listen".into());
            args.push(format!("127.0.0.1:{port}"));
        }
        args.extend(["procs".into(), "httpd".into(), http_port.to_string()]);
        for port in echo_ports {
            args.extend(["--".into(), "echo-server".into(), port.to_string()]);
        }
        // A file, not a pipe: nothing has to drain it during the run.
        let log = root.log();
        let out = fs::File::create(&log).unwrap();
        let err = out.try_clone().unwrap();
        let child = common::weft()
            .args(&args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("spawn weft");
        let mut guest = Self {
            child: Some(child),
            log,
        };
        let (path, body) = &root.files[0];
        let http = SocketAddr::from(([127, 0, 0, 1], http_port));
        guest.wait_until_serving(http_port, || get(http, path, body, &mut Vec::new()));
        for &port in echo_ports {
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            guest.wait_until_serving(port, || {
                let mut back = vec![0u8; MAX_MESSAGE];
                let tally = Tally::default();
                let far = Instant::now() + CLIENT_TIMEOUT;
                echo_session(addr, 1, far, &mut Rng(port.into()), &mut back, &tally)
            });
        }
        guest
    }

    /// Waits until the guest itself serves `probe` (a grant's port is
    /// bound by the monitor before the guest starts, so a connection alone
    /// proves nothing).
    fn wait_until_serving(&mut self, port: u16, probe: impl Fn() -> Result<(), Failure>) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut last = None;
        while Instant::now() < deadline {
            match probe() {
                Ok(()) => return,
                Err(f) => last = Some(f),
            }
            assert!(
                self.running(),
                "weft exited before serving on {port}: {}",
                self.log_text()
            );
            thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "weft does not serve on {port} ({last:?}): {}",
            self.log_text()
        );
    }

    /// The guest at rest: sampled until two samples 200 ms apart hold the
    /// same descriptors (the probes' connections closed), at most 10 s.
    fn at_rest(&self, start: Instant) -> Sample {
        Sample::at_rest(self.pid(), start, SETTLE)
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Stops `weft` and returns its output (the `--stats` included).
    fn stop(mut self) -> String {
        self.terminate();
        self.log_text()
    }

    /// SIGTERM, then SIGKILL if `weft` has not gone after 15 s.
    fn terminate(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        weft_benchkit::terminate(&mut child, Duration::from_secs(15));
    }
}

impl Drop for Guest {
    fn drop(&mut self) {
        self.terminate();
    }
}

/// What the clients did, summed.
#[derive(Default)]
struct Tally {
    http_requests: AtomicU64,
    http_bytes: AtomicU64,
    echo_messages: AtomicU64,
    echo_sessions: AtomicU64,
    echo_bytes: AtomicU64,
    connect_errors: AtomicU64,
    io_errors: AtomicU64,
    mismatches: AtomicU64,
    /// The slowest HTTP request (connect to end-of-file) and echo round
    /// trip, in microseconds.
    slowest_http_us: AtomicU64,
    slowest_echo_us: AtomicU64,
    /// The first [`MAX_REPORTED`] failures, described.
    failures: Mutex<Vec<String>>,
    /// Failures by client kind, step and error kind.
    failure_kinds: Mutex<BTreeMap<String, u64>>,
}

/// A [`Tally`]'s counts at one moment.
#[derive(Clone, Copy, Debug)]
struct Counts {
    http_requests: u64,
    http_bytes: u64,
    echo_messages: u64,
    echo_sessions: u64,
    echo_bytes: u64,
    connect_errors: u64,
    io_errors: u64,
    mismatches: u64,
    slowest_http_us: u64,
    slowest_echo_us: u64,
}

/// How one exchange failed.
#[derive(Debug)]
enum Failure {
    Connect(io::Error),
    /// A step (`send`, `read`, …), the error's kind, and a description.
    Io(&'static str, io::ErrorKind, String),
    Mismatch(String),
}

/// A failure in the middle of an exchange.
fn io_failure(step: &'static str, e: &io::Error, what: String) -> Failure {
    Failure::Io(step, e.kind(), format!("{what}: {e}"))
}

impl Tally {
    fn snapshot(&self) -> Counts {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Counts {
            http_requests: get(&self.http_requests),
            http_bytes: get(&self.http_bytes),
            echo_messages: get(&self.echo_messages),
            echo_sessions: get(&self.echo_sessions),
            echo_bytes: get(&self.echo_bytes),
            connect_errors: get(&self.connect_errors),
            io_errors: get(&self.io_errors),
            mismatches: get(&self.mismatches),
            slowest_http_us: get(&self.slowest_http_us),
            slowest_echo_us: get(&self.slowest_echo_us),
        }
    }

    /// Counts `failure` of `client` and describes it (the first few).
    fn fail(&self, client: &str, start: Instant, failure: Failure) {
        let (counter, kind, what) = match failure {
            Failure::Connect(e) => (
                &self.connect_errors,
                format!("connect: {:?}", e.kind()),
                format!("connect: {e}"),
            ),
            Failure::Io(step, kind, e) => (&self.io_errors, format!("{step}: {kind:?}"), e),
            Failure::Mismatch(e) => (
                &self.mismatches,
                "mismatch".to_owned(),
                format!("MISMATCH: {e}"),
            ),
        };
        counter.fetch_add(1, Ordering::Relaxed);
        let class = client.split(' ').next().unwrap_or(client);
        *self
            .failure_kinds
            .lock()
            .unwrap()
            .entry(format!("{class} {kind}"))
            .or_default() += 1;
        let line = format!("{client} at {:.1} s: {what}", start.elapsed().as_secs_f64());
        let mut failures = self.failures.lock().unwrap();
        if failures.len() < MAX_REPORTED {
            eprintln!("soak: {line}");
            failures.push(line);
        }
    }
}

fn connect(addr: SocketAddr) -> Result<TcpStream, Failure> {
    let conn = TcpStream::connect_timeout(&addr, CLIENT_TIMEOUT).map_err(Failure::Connect)?;
    conn.set_read_timeout(Some(CLIENT_TIMEOUT)).unwrap();
    conn.set_write_timeout(Some(CLIENT_TIMEOUT)).unwrap();
    conn.set_nodelay(true).unwrap();
    Ok(conn)
}

/// Fetches the files in turn until `deadline`.
fn http_client(
    id: usize,
    addr: SocketAddr,
    files: &[(String, Vec<u8>)],
    deadline: Instant,
    start: Instant,
    tally: &Tally,
) {
    let name = format!("HTTP client {id}");
    let mut response = Vec::with_capacity(files.iter().map(|f| f.1.len()).max().unwrap() + 1024);
    let mut n = id;
    while Instant::now() < deadline {
        let (path, body) = &files[n % files.len()];
        n += 1;
        let began = Instant::now();
        match get(addr, path, body, &mut response) {
            Ok(()) => {
                tally
                    .slowest_http_us
                    .fetch_max(micros(began), Ordering::Relaxed);
                tally.http_requests.fetch_add(1, Ordering::Relaxed);
                tally
                    .http_bytes
                    .fetch_add(body.len() as u64, Ordering::Relaxed);
            }
            Err(f) => {
                tally.fail(&name, start, f);
                thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

/// One `GET path` on a new connection; the response must be `200` with
/// exactly `body`.
fn get(addr: SocketAddr, path: &str, body: &[u8], response: &mut Vec<u8>) -> Result<(), Failure> {
    let mut conn = connect(addr)?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nUser-Agent: soak\r\n\r\n"
    );
    conn.write_all(request.as_bytes())
        .map_err(|e| io_failure("send", &e, format!("GET {path}: send")))?;
    response.clear();
    conn.read_to_end(response).map_err(|e| {
        let what = format!("GET {path}: read after {} bytes", response.len());
        io_failure("read", &e, what)
    })?;
    let Some(end) = response.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Err(Failure::Mismatch(format!(
            "GET {path}: no complete head in {} bytes: {:?}",
            response.len(),
            String::from_utf8_lossy(&response[..response.len().min(200)])
        )));
    };
    let head = String::from_utf8_lossy(&response[..end]);
    let got = &response[end + 4..];
    let status = head.lines().next().unwrap_or("");
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .and_then(|l| l.trim().parse::<usize>().ok());
    if status != "HTTP/1.1 200 OK" || length != Some(body.len()) || got != body {
        return Err(Failure::Mismatch(format!(
            "GET {path}: status {status:?}, Content-Length {length:?}, {} body bytes \
             (expected 200, {} bytes){}",
            got.len(),
            body.len(),
            first_difference(got, body)
        )));
    }
    Ok(())
}

/// Where `got` first differs from `want`, for a mismatch's description.
fn first_difference(got: &[u8], want: &[u8]) -> String {
    match got.iter().zip(want).position(|(a, b)| a != b) {
        Some(i) => format!(
            "; first difference at byte {i}: got {:02x?}, expected {:02x?}",
            &got[i..got.len().min(i + 16)],
            &want[i..want.len().min(i + 16)]
        ),
        None if got.len() != want.len() => {
            format!("; the common {} bytes agree", got.len().min(want.len()))
        }
        None => String::new(),
    }
}

/// Echo sessions until `deadline`: each a connection carrying 1 to
/// [`MAX_SESSION`] messages of 1 B to [`MAX_MESSAGE`].
fn echo_client(id: usize, addr: SocketAddr, deadline: Instant, start: Instant, tally: &Tally) {
    let name = format!("echo client {id} (port {})", addr.port());
    let mut rng = Rng(0x9e37_79b9 ^ (id as u64 + 1).wrapping_mul(0xff51_afd7_ed55_8ccd));
    let mut back = vec![0u8; MAX_MESSAGE];
    while Instant::now() < deadline {
        let messages = 1 + rng.next() % MAX_SESSION;
        match echo_session(addr, messages, deadline, &mut rng, &mut back, tally) {
            Ok(()) => {
                tally.echo_sessions.fetch_add(1, Ordering::Relaxed);
            }
            Err(f) => {
                tally.fail(&name, start, f);
                thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

fn echo_session(
    addr: SocketAddr,
    messages: u64,
    deadline: Instant,
    rng: &mut Rng,
    back: &mut [u8],
    tally: &Tally,
) -> Result<(), Failure> {
    let mut conn = connect(addr)?;
    for m in 0..messages {
        if Instant::now() >= deadline {
            break;
        }
        let len = 1 + (rng.next() % MAX_MESSAGE as u64) as usize;
        let data = random_bytes(rng.next(), len);
        let began = Instant::now();
        conn.write_all(&data)
            .map_err(|e| io_failure("send", &e, format!("message {m} ({len} B): send")))?;
        let mut got = 0;
        while got < len {
            match conn.read(&mut back[got..len]) {
                Ok(0) => {
                    return Err(Failure::Io(
                        "read",
                        io::ErrorKind::UnexpectedEof,
                        format!(
                            "message {m} ({len} B): the server closed after {got} bytes of \
                             the echo"
                        ),
                    ));
                }
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let what = format!("message {m} ({len} B): read after {got} bytes of the echo");
                    return Err(io_failure("read", &e, what));
                }
            }
        }
        if back[..len] != data[..] {
            return Err(Failure::Mismatch(format!(
                "echo of message {m} ({len} B) differs{}",
                first_difference(&back[..len], &data)
            )));
        }
        tally
            .slowest_echo_us
            .fetch_max(micros(began), Ordering::Relaxed);
        tally.echo_messages.fetch_add(1, Ordering::Relaxed);
        tally.echo_bytes.fetch_add(len as u64, Ordering::Relaxed);
    }
    // Our end first: the server sees end-of-file, and must have nothing
    // more to say.
    conn.shutdown(Shutdown::Write)
        .map_err(|e| io_failure("shutdown", &e, "shutdown".into()))?;
    match conn.read(&mut back[..1]) {
        Ok(0) => Ok(()),
        Ok(_) => Err(Failure::Mismatch("bytes after the last echo".into())),
        Err(e) => Err(io_failure("end", &e, "waiting for the server's end".into())),
    }
}

fn micros(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_micros()).unwrap_or(u64::MAX)
}

/// xorshift64*: sizes, session lengths and seeds.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// Prints sample `s` beside the clients' tally so far.
fn print(s: &Sample, tally: &Tally) {
    let t = tally.snapshot();
    println!(
        "soak: t={:>4}s rss={:>7} KiB fds={:>4}  http={} echo={} errors={}",
        s.at.as_secs(),
        s.rss_kib,
        s.fds,
        t.http_requests,
        t.echo_messages,
        t.connect_errors + t.io_errors + t.mismatches
    );
}
