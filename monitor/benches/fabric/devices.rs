//! The benchmark's fabric: devices, each a `weft daemon` in a network
//! namespace of its own on one bridge ([`Net`]), created and paired with
//! `weft fabric create|invite|join` as a user would, and driven with the
//! `weft` CLI from the machine's own namespace (the CLI reaches a daemon
//! on the socket in its state directory).
//!
//! A daemon's standard output (its guest's output) is read line by line
//! as it comes, each line stamped with the time it arrived. Dropping a
//! [`Fabric`] kills its daemons, then removes its namespaces and state
//! directories, on every exit path.

use crate::error::{BenchError, io};
use crate::lines::{Line, StampedLines};
use crate::netns::Net;
use serde_json::Value;
use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The `weft` binary `make build` produces.
pub const WEFT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/release/weft");
/// The built Wasm apps: every daemon's `--fs-root` (read-only), so that an
/// app may start another beside it in its runtime by path.
pub const WASM_ROOT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../target/wasm/wasm32-wasip1/release"
);
/// The port every device's Zenoh router listens on.
const ZENOH_PORT: u16 = 7447;
/// How long a daemon may take to answer its CLI, and a device to be seen.
const START_LIMIT: Duration = Duration::from_secs(30);

/// Polls `check` every `every` until it holds or `limit` passes; returns
/// the time taken.
pub fn poll(
    what: &str,
    limit: Duration,
    every: Duration,
    mut check: impl FnMut() -> Result<bool, BenchError>,
) -> Result<Duration, BenchError> {
    let start = Instant::now();
    while !check()? {
        if start.elapsed() > limit {
            return Err(BenchError::Timeout {
                what: what.to_string(),
                limit,
            });
        }
        std::thread::sleep(every);
    }
    Ok(start.elapsed())
}

/// Runs `command` to completion; its stdout if it succeeded.
pub fn run(what: &str, command: &mut Command) -> Result<String, BenchError> {
    let out = command.stdin(Stdio::null()).output().map_err(io(what))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        return Err(BenchError::Failed {
            what: what.to_string(),
            status: out.status,
            output: format!("{stdout}{}", String::from_utf8_lossy(&out.stderr)),
        });
    }
    Ok(stdout)
}

/// `weft COMMAND --state DIR ARGS`: the state option goes after the
/// command (two words for `fabric ...`) and before its arguments.
fn weft(state: &Path, args: &[&str]) -> Command {
    let command = if args.first() == Some(&"fabric") {
        2
    } else {
        1
    };
    let mut c = Command::new(WEFT);
    c.args(&args[..command.min(args.len())])
        .arg("--state")
        .arg(state)
        .args(&args[command.min(args.len())..]);
    c
}

/// A scratch directory for state directories and logs, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Result<Scratch, BenchError> {
        let dir = std::env::temp_dir().join(format!("weft-fabric-bench-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(io(format!("creating {}", dir.display())))?;
        Ok(Scratch(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running `weft daemon`; SIGKILLed when dropped.
pub struct Daemon {
    child: Child,
    output: StampedLines,
    log: PathBuf,
}

impl Daemon {
    /// Starts the daemon of `state` in `command` (`ip netns exec NS weft`)
    /// and waits until it answers its CLI.
    fn start(
        mut command: Command,
        state: &Path,
        bind: SocketAddr,
        options: &[String],
    ) -> Result<Daemon, BenchError> {
        let log = state.with_extension("log");
        let err = File::create(&log).map_err(io(format!("creating {}", log.display())))?;
        let mut child = command
            .args(["daemon", "--state"])
            .arg(state)
            .args(["--bind", &bind.to_string()])
            .args(options)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(err)
            .spawn()
            .map_err(io("starting weft daemon"))?;
        let output = StampedLines::of(&mut child, "weft daemon")?;
        let mut daemon = Daemon { child, output, log };
        let what = format!("the daemon of {} answers", state.display());
        poll(&what, START_LIMIT, Duration::from_millis(20), || {
            if let Ok(Some(status)) = daemon.child.try_wait() {
                return Err(BenchError::Failed {
                    what: format!("weft daemon --state {}", state.display()),
                    status,
                    output: daemon.log(),
                });
            }
            Ok(weft(state, &["fabric", "devices"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success()))
        })?;
        daemon.skip_output();
        Ok(daemon)
    }

    /// What the daemon wrote on standard error.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Drops the output lines that arrived so far.
    pub fn skip_output(&self) {
        self.output.skip();
    }

    /// The daemon's output lines, as they come.
    pub fn output(&self) -> &StampedLines {
        &self.output
    }

    /// The next output line that `wanted` accepts (earlier ones dropped),
    /// within `limit`; a failure carries the daemon's log.
    pub fn next_line(
        &self,
        what: &str,
        limit: Duration,
        wanted: impl Fn(&str) -> bool,
    ) -> Result<Line, BenchError> {
        self.output
            .next(what, limit, wanted)
            .map_err(|error| BenchError::Daemon {
                error: Box::new(error),
                log: self.log(),
            })
    }

    /// `kill -9` of the daemon, reaped.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Devices on one bridge, all paired into one fabric, each with its
/// daemon. Fields drop in order: daemons, then namespaces, then files.
pub struct Fabric {
    daemons: Vec<Daemon>,
    net: Net,
    scratch: Scratch,
    names: Vec<&'static str>,
    /// Options every daemon is started with instead of the UDP grants
    /// ([`Fabric::restart_all_with`]).
    options: Option<Vec<String>>,
}

impl Fabric {
    /// Creates the fabric on `names[0]`, pairs the others through it, and
    /// starts every daemon; returns once every device sees every other.
    pub fn new(names: &[&'static str]) -> Result<Fabric, BenchError> {
        let mut fabric = Fabric {
            daemons: Vec::new(),
            net: Net::new(names.len()),
            scratch: Scratch::new()?,
            names: names.to_vec(),
            options: None,
        };
        fabric.cli(0, &["fabric", "create", "--name", names[0]])?;
        fabric.daemons.push(fabric.start(0)?);
        for (i, name) in names.iter().enumerate().skip(1) {
            let token = fabric.cli(0, &["fabric", "invite", "--expires", "60"])?;
            let mut join = fabric.net.command(i, WEFT);
            join.args(["fabric", "join", "--state"])
                .arg(fabric.state(i))
                .args(["--name", name, token.trim()]);
            run(&format!("weft fabric join --name {name}"), &mut join)?;
            fabric.daemons.push(fabric.start(i)?);
        }
        for i in 0..names.len() {
            fabric.await_available(i, |seen| seen.len() == names.len())?;
        }
        Ok(fabric)
    }

    /// Device `i`'s name.
    pub fn name(&self, i: usize) -> &'static str {
        self.names[i]
    }

    /// Device `i`'s state directory.
    pub fn state(&self, i: usize) -> PathBuf {
        self.scratch.0.join(self.names[i])
    }

    /// Where device `i`'s Zenoh router listens.
    pub fn zenoh_addr(&self, i: usize) -> SocketAddr {
        SocketAddr::from((self.net.addr(i), ZENOH_PORT))
    }

    /// `program` to run in device `i`'s namespace.
    pub fn command_in(&self, i: usize, program: &str) -> Command {
        self.net.command(i, program)
    }

    /// Device `i`'s daemon.
    pub fn daemon(&self, i: usize) -> &Daemon {
        &self.daemons[i]
    }

    /// The UDP ports every device grants on its own address (`--listen`),
    /// which is also its fabric address (`--fabric-ip`).
    pub const UDP_PORTS: [u16; 2] = [9600, 9601];

    fn start(&self, i: usize) -> Result<Daemon, BenchError> {
        let ip = self.net.addr(i).to_string();
        let mut options = vec!["--fabric-ip".to_string(), ip.clone()];
        match &self.options {
            Some(instead) => options.extend(instead.iter().cloned()),
            None => {
                for port in Self::UDP_PORTS {
                    options.extend(["--listen".to_string(), format!("{ip}:{port}")]);
                }
                options.extend(["--fs-root", WASM_ROOT, "--read-only"].map(String::from));
            }
        }
        Daemon::start(
            self.net.command(i, WEFT),
            &self.state(i),
            self.zenoh_addr(i),
            &options,
        )
    }

    /// Device `i`'s address in its namespace (its fabric address).
    pub fn ip(&self, i: usize) -> std::net::Ipv4Addr {
        self.net.addr(i)
    }

    /// `kill -9` of device `i`'s daemon.
    pub fn kill9(&mut self, i: usize) {
        self.daemons[i].kill9();
    }

    /// Starts device `i`'s daemon again and waits until every device sees it.
    pub fn restart(&mut self, i: usize) -> Result<(), BenchError> {
        self.daemons[i] = self.start(i)?;
        let name = self.names[i];
        for j in 0..self.names.len() {
            self.await_available(j, |seen| seen.iter().any(|n| n == name))?;
        }
        Ok(())
    }

    /// Kills every daemon, then starts them all again with `options`
    /// instead of the UDP grants (this time and every later start: the
    /// grants are preopened in every app, and an app that holds a socket
    /// cannot move), and waits until every device sees every other.
    pub fn restart_all_with(&mut self, options: &[&str]) -> Result<(), BenchError> {
        self.options = Some(options.iter().map(|o| o.to_string()).collect());
        for daemon in &mut self.daemons {
            daemon.kill9();
        }
        for i in 0..self.daemons.len() {
            self.daemons[i] = self.start(i)?;
        }
        let all = self.names.len();
        for i in 0..all {
            self.await_available(i, |seen| seen.len() == all)?;
        }
        Ok(())
    }

    /// `weft ARGS` for device `i` (its `--state` added), which must succeed;
    /// its standard output.
    pub fn cli(&self, i: usize, args: &[&str]) -> Result<String, BenchError> {
        run(
            &format!("weft {}", args.join(" ")),
            &mut weft(&self.state(i), args),
        )
    }

    /// The devices device `i` sees available now.
    pub fn available(&self, i: usize) -> Result<Vec<String>, BenchError> {
        let out = self.cli(i, &["fabric", "devices", "--available", "--json"])?;
        let bad = || BenchError::Output {
            what: "weft fabric devices --available --json".into(),
            text: out.clone(),
        };
        let devices: Vec<Value> = serde_json::from_str(&out).map_err(|_| bad())?;
        devices
            .iter()
            .map(|d| d["name"].as_str().map(str::to_string).ok_or_else(bad))
            .collect()
    }

    fn await_available(
        &self,
        i: usize,
        done: impl Fn(&[String]) -> bool,
    ) -> Result<(), BenchError> {
        let what = format!("the devices {} sees available", self.names[i]);
        poll(&what, START_LIMIT, Duration::from_millis(20), || {
            Ok(done(&self.available(i)?))
        })
        .map(drop)
    }
}
