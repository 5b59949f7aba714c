//! Hosts for fabric tests: network namespaces on one machine, joined by
//! veth pairs to a bridge that lives in a namespace of its own, so nothing
//! is added to the machine's own network. Names are unique per test
//! process and per network; everything is removed when the [`Net`] drops,
//! also when a test fails.

use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// Several hosts on one bridge.
pub struct Net {
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
        let k = NEXT.fetch_add(1, Ordering::SeqCst);
        // Interface names are at most 15 bytes: "wf" + 5 digits + suffix.
        let tag = format!("wf{:05}", (std::process::id() * 7 + k) % 100_000);
        let mut net = Net {
            switch: format!("{tag}sw"),
            hosts: Vec::new(),
        };
        ip(&["netns", "add", &net.switch]);
        ip(&["-n", &net.switch, "link", "add", "br0", "type", "bridge"]);
        ip(&["-n", &net.switch, "link", "set", "br0", "up"]);
        for i in 0..n {
            let ns = format!("{tag}h{i}");
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

    /// `program` to run in host `i`'s namespace.
    pub fn command(&self, i: usize, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.hosts[i], program]);
        c
    }

    /// Cuts host `i` off the bridge (`up` false) or puts it back.
    pub fn set_link(&self, i: usize, up: bool) {
        let outer = format!("{}o{i}", self.switch.trim_end_matches("sw"));
        let state = if up { "up" } else { "down" };
        ip(&["-n", &self.switch, "link", "set", &outer, state]);
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
