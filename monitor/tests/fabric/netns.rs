//! Hosts for fabric tests: network namespaces on one machine, joined by
//! veth pairs to a bridge that lives in a namespace of its own, so nothing
//! is added to the machine's own network. Names are unique per test
//! process and per network; everything is removed when the [`Net`] drops,
//! also when a test fails.
//!
//! A test process killed from outside runs no drop. So that it leaves
//! nothing running, every process started in a host ([`Net::command`]) is
//! killed when the thread that started it ends (`PR_SET_PDEATHSIG`); and
//! since namespace names carry the test process's pid, the next
//! [`Net::new`] removes the namespaces of test processes that are gone,
//! with whatever still runs in them.

use std::io;
use std::net::Ipv4Addr;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// What every namespace name of these tests begins with, then the test
/// process's pid and `n`.
const OWNED: &str = "weft";

/// Several hosts on one bridge.
pub struct Net {
    /// What this network's interface names begin with.
    tag: String,
    switch: String,
    hosts: Vec<String>,
}

fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("ip {}: {e} (is iproute2 installed?)", args.join(" ")));
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Net {
    /// `n` hosts, 10.77.0.1 to 10.77.0.n/24 (each network is a world of
    /// its own, so every network can use the same addresses).
    pub fn new(n: usize) -> Net {
        sweep();
        let k = NEXT.fetch_add(1, Ordering::SeqCst);
        // Interface names are at most 15 bytes: "wf" + 5 digits + suffix.
        let tag = format!("wf{:05}", (std::process::id() * 7 + k) % 100_000);
        let named = format!("{OWNED}{}n{k}", std::process::id());
        let mut net = Net {
            tag: tag.clone(),
            switch: format!("{named}sw"),
            hosts: Vec::new(),
        };
        ip(&["netns", "add", &net.switch]);
        ip(&["-n", &net.switch, "link", "add", "br0", "type", "bridge"]);
        ip(&["-n", &net.switch, "link", "set", "br0", "up"]);
        for i in 0..n {
            let ns = format!("{named}h{i}");
            ip(&["netns", "add", &ns]);
            net.hosts.push(ns.clone());
            let (inner, outer) = (format!("{tag}i{i}"), format!("{tag}o{i}"));
            ip(&[
                "-n", &ns, "link", "add", &inner, "type", "veth", "peer", "name", &outer,
            ]);
            ip(&["-n", &ns, "link", "set", &outer, "netns", &net.switch]);
            ip(&[
                "-n",
                &net.switch,
                "link",
                "set",
                &outer,
                "master",
                "br0",
                "up",
            ]);
            let addr = format!("{}/24", net.addr(i));
            ip(&["-n", &ns, "addr", "add", &addr, "dev", &inner]);
            ip(&["-n", &ns, "link", "set", &inner, "up"]);
            ip(&["-n", &ns, "link", "set", "lo", "up"]);
        }
        net
    }

    /// Host `i`'s address.
    pub fn addr(&self, i: usize) -> Ipv4Addr {
        Ipv4Addr::new(10, 77, 0, 1 + i as u8)
    }

    /// `program` to run in host `i`'s namespace, killed when the thread
    /// that starts it ends (`ip netns exec` runs it in its own process).
    pub fn command(&self, i: usize, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.hosts[i], program]);
        // SAFETY: the closure runs in the child between fork and exec, and
        // calls only prctl(2), which is async-signal-safe and touches no
        // memory of the parent.
        unsafe {
            c.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == 0 {
                    Ok(())
                } else {
                    Err(io::Error::last_os_error())
                }
            })
        };
        c
    }

    /// Cuts host `i` off the bridge (`up` false) or puts it back.
    pub fn set_link(&self, i: usize, up: bool) {
        let outer = format!("{}o{i}", self.tag);
        let state = if up { "up" } else { "down" };
        ip(&["-n", &self.switch, "link", "set", &outer, state]);
    }
}

/// Removes the namespaces of test processes that are gone (their pid is
/// no longer running) and kills what still runs in them.
fn sweep() {
    let Ok(listed) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    for name in String::from_utf8_lossy(&listed.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
    {
        let owner = name
            .strip_prefix(OWNED)
            .and_then(|rest| rest.split_once('n'))
            .and_then(|(pid, _)| pid.parse::<u32>().ok());
        let Some(pid) = owner else { continue };
        if std::path::Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        if let Ok(pids) = Command::new("ip").args(["netns", "pids", name]).output() {
            for p in String::from_utf8_lossy(&pids.stdout).split_whitespace() {
                let _ = Command::new("kill").args(["-9", p]).status();
            }
        }
        let _ = Command::new("ip")
            .args(["netns", "del", name])
            .stderr(Stdio::null())
            .status();
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        // Deleting a namespace deletes the interfaces in it; a veth pair
        // goes with either end.
        for ns in self.hosts.iter().chain(std::iter::once(&self.switch)) {
            let _ = Command::new("ip")
                .args(["netns", "del", ns])
                .stderr(Stdio::null())
                .status();
        }
    }
}
