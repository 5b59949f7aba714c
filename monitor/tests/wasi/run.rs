//! Running one program under weft and under the reference (wasmtime, by
//! reference.py), each in a fresh fixture tree, and what each run left:
//! stdout, stderr, exit status, the tree and, for socket programs, what
//! the test's clients received.

use crate::fixture;
use crate::programs::{Program, STDIN, Settings};
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// What a run left behind.
pub struct Outcome {
    pub stdout: String,
    pub stderr: String,
    pub status: i32,
    pub tree: String,
    pub client: String,
}

/// The line a socket program prints before accepting on listener K; the
/// test then connects a client to that listener.
const WAITING: &str = "waiting for a client on listener ";

/// The reference runner, next to this file.
fn reference_py() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/wasi/reference.py"
    ))
}

/// The options both runners take alike: the tree (read-only or not, or
/// none) and the environment.
fn grant(cmd: &mut Command, s: &Settings, tree: &Path) {
    if !s.no_root {
        cmd.arg("--fs-root").arg(tree);
    }
    if s.read_only {
        cmd.arg("--read-only");
    }
    for (k, v) in s.env {
        cmd.arg("--env").arg(format!("{k}={v}"));
    }
}

/// A fresh fixture at `dir/tree` and the stdin file at `dir/stdin`.
fn prepare(dir: &Path) -> (PathBuf, PathBuf) {
    let _ = fs::remove_dir_all(dir);
    fs::create_dir_all(dir).unwrap();
    let tree = dir.join("tree");
    fixture::build(&tree);
    let stdin = dir.join("stdin");
    fs::write(&stdin, STDIN).unwrap();
    (tree, stdin)
}

/// Runs `program` under `weft run --engine ENGINE` in a fixture under
/// `dir`.
pub fn weft(weft: &Path, engine: &str, program: &Program, dir: &Path) -> Outcome {
    let (tree, stdin) = prepare(dir);
    let s = &program.settings;
    let mut cmd = Command::new(weft);
    cmd.args(["run", "--timeout", "60", "--engine", engine]);
    grant(&mut cmd, s, &tree);
    let ports: Vec<u16> = (0..s.listeners).map(|_| free_port()).collect();
    for p in &ports {
        cmd.arg("--listen").arg(format!("127.0.0.1:{p}"));
    }
    cmd.arg(&program.wasm).args(s.args);
    cmd.stdin(fs::File::open(&stdin).unwrap())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn weft");
    let stderr = child.stderr.take().unwrap();
    let stderr = thread::spawn(move || read_all(stderr));
    let (stdout, client) = drive(child.stdout.take().unwrap(), &ports);
    let status = child.wait().unwrap().code().unwrap_or(-1);
    Outcome {
        stdout,
        stderr: stderr.join().unwrap(),
        status,
        tree: fixture::snapshot(&tree),
        client,
    }
}

/// Runs `program` under reference.py (wasmtime) in a fixture under `dir`.
pub fn reference(program: &Program, dir: &Path) -> Outcome {
    let (tree, stdin) = prepare(dir);
    let s = &program.settings;
    let (out, err) = (dir.join("stdout"), dir.join("stderr"));
    let mut cmd = Command::new("python3");
    cmd.arg(reference_py());
    grant(&mut cmd, s, &tree);
    cmd.arg("--stdin").arg(&stdin);
    cmd.arg("--stdout").arg(&out).arg("--stderr").arg(&err);
    cmd.arg(&program.wasm).args(s.args);
    let status = cmd.status().expect("spawn python3");
    Outcome {
        stdout: read_file(&out),
        stderr: read_file(&err),
        status: status.code().unwrap_or(-1),
        tree: fixture::snapshot(&tree),
        client: String::new(),
    }
}

/// The outcome a socket program must have (it cannot run under the
/// reference): the checked-in expected stdout and client transcript
/// (user/wasm/conformance/expected/NAME.stdout and NAME.client), no stderr,
/// status 0, the fixture untouched.
pub fn expected(program: &Program, source: &Path, dir: &Path) -> Outcome {
    let (tree, _) = prepare(dir);
    let stem = program.name.replace('/', "-");
    let expected = source.join("expected");
    Outcome {
        stdout: read_file(&expected.join(format!("{stem}.stdout"))),
        stderr: String::new(),
        status: 0,
        tree: fixture::snapshot(&tree),
        client: read_file(&expected.join(format!("{stem}.client"))),
    }
}

/// Collects the program's stdout; at each `WAITING` line, connects a
/// client to that listener, sends "ping K", closes its sending side and
/// records what came back. Returns stdout and the clients' transcript.
fn drive(stdout: impl Read, ports: &[u16]) -> (String, String) {
    let mut out = String::new();
    let mut client = String::new();
    let mut reader = BufReader::new(stdout);
    let mut line = String::new();
    while reader.read_line(&mut line).unwrap_or(0) > 0 {
        if let Some(k) = line.trim_end().strip_prefix(WAITING) {
            let k: usize = k.parse().expect("listener index");
            client += &format!("listener {k}: {}\n", exchange(ports[k], k));
        }
        out += &line;
        line.clear();
    }
    (out, client)
}

/// One client's exchange with listener `k` at `port`: what it received, or
/// why it could not connect.
fn exchange(port: u16, k: usize) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut conn = loop {
        match TcpStream::connect(("127.0.0.1", port)) {
            Ok(c) => break c,
            Err(e) if Instant::now() > deadline => return format!("connect failed: {e}"),
            Err(_) => thread::sleep(Duration::from_millis(20)),
        }
    };
    conn.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let sent = conn
        .write_all(format!("ping {k}\n").as_bytes())
        .and_then(|()| conn.shutdown(Shutdown::Write));
    let mut got = Vec::new();
    let read = conn.read_to_end(&mut got);
    format!(
        "sent {}, received {:?}{}",
        if sent.is_ok() { "ok" } else { "failed" },
        String::from_utf8_lossy(&got),
        read.err()
            .map(|e| format!(", then {e}"))
            .unwrap_or_default()
    )
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("probe a free port")
        .port()
}

fn read_all(mut r: impl Read) -> String {
    let mut v = Vec::new();
    let _ = r.read_to_end(&mut v);
    String::from_utf8_lossy(&v).into_owned()
}

fn read_file(path: &Path) -> String {
    fs::read(path)
        .map(|v| String::from_utf8_lossy(&v).into_owned())
        .unwrap_or_default()
}
