//! A process's resources over a long run, and the check that they stayed
//! flat: what the soak tests (`weft run` under a thousand clients, the
//! fabric's daemons under churn) assert of a process meant to run for
//! months.

use std::fs;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

/// Descriptors a process at rest may hold over the count it had before the
/// load, once the load is gone.
pub const REST_SLACK: usize = 16;

/// A process's resident memory and open descriptors at one moment.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    /// Since the run's start.
    pub at: Duration,
    pub rss_kib: u64,
    pub fds: usize,
}

impl Sample {
    /// Process `pid` now; `start` is the run's.
    pub fn take(pid: u32, start: Instant) -> Self {
        let proc = PathBuf::from(format!("/proc/{pid}"));
        Self {
            at: start.elapsed(),
            rss_kib: rss_kib(&proc),
            fds: fs::read_dir(proc.join("fd"))
                .map(Iterator::count)
                .unwrap_or_else(|e| panic!("read {}/fd: {e}", proc.display())),
        }
    }

    /// Process `pid` at rest: sampled until two samples 200 ms apart hold
    /// the same descriptors (the connections of what came before closed),
    /// for at most `limit`.
    pub fn at_rest(pid: u32, start: Instant, limit: Duration) -> Self {
        let by = Instant::now() + limit;
        let mut last = Self::take(pid, start);
        loop {
            thread::sleep(Duration::from_millis(200));
            let now = Self::take(pid, start);
            if now.fds == last.fds || Instant::now() >= by {
                return now;
            }
            last = now;
        }
    }

    /// Process `pid` once its descriptors are back within [`REST_SLACK`]
    /// of `idle`'s, or after `limit` (a process closes the ends of the
    /// last connections at its own pace; leaked ones never close).
    pub fn settled(pid: u32, start: Instant, idle: &Sample, limit: Duration) -> Self {
        let by = Instant::now() + limit;
        let mut last = Self::take(pid, start);
        while last.fds > idle.fds + REST_SLACK && Instant::now() < by {
            thread::sleep(Duration::from_millis(100));
            last = Self::take(pid, start);
        }
        last
    }
}

fn rss_kib(proc: &Path) -> u64 {
    let status = fs::read_to_string(proc.join("status"))
        .unwrap_or_else(|e| panic!("read {}/status: {e}", proc.display()));
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS in {}/status", proc.display()))
}

/// The largest RSS and descriptor count of the 20%–50% window and of the
/// last 20% of a run: past the warm-up (the first 20%), the last 20% may
/// exceed 20%–50% by 10% + 4 MiB of RSS and by the descriptors in flux
/// plus [`REST_SLACK`]; and after the load the descriptors must come back
/// to within [`REST_SLACK`] of those held at rest before it.
pub struct Flatness {
    early_rss_kib: u64,
    late_rss_kib: u64,
    early_fds: usize,
    late_fds: usize,
    first: Sample,
    last: Sample,
    /// Before the load.
    idle: Sample,
    /// Descriptors the load may hold open at once (its connections come
    /// and go, so samples under load vary with them).
    in_flux: usize,
}

impl Flatness {
    /// Of `samples` over a run of `run`, the last taken after the load.
    pub fn of(samples: &[Sample], run: Duration, idle: Sample, in_flux: usize) -> Self {
        let window = |from: f64, to: f64| {
            let w: Vec<Sample> = samples
                .iter()
                .filter(|s| {
                    let f = s.at.as_secs_f64() / run.as_secs_f64();
                    f >= from && f <= to
                })
                .copied()
                .collect();
            assert!(
                !w.is_empty(),
                "no sample between {from} and {to} of the run"
            );
            w
        };
        let (early, late) = (window(0.2, 0.5), window(0.8, f64::INFINITY));
        Self {
            early_rss_kib: early.iter().map(|s| s.rss_kib).max().unwrap(),
            late_rss_kib: late.iter().map(|s| s.rss_kib).max().unwrap(),
            early_fds: early.iter().map(|s| s.fds).max().unwrap(),
            late_fds: late.iter().map(|s| s.fds).max().unwrap(),
            first: samples[0],
            last: *samples.last().unwrap(),
            idle,
            in_flux,
        }
    }

    /// The RSS the last 20% may reach: 10% + 4 MiB over 20%–50%'s.
    fn rss_limit_kib(&self) -> u64 {
        self.early_rss_kib + self.early_rss_kib / 10 + 4096
    }

    /// The descriptors the last 20% may reach: 20%–50%'s, plus those in
    /// flux and [`REST_SLACK`]. A leak is caught after the load, when the
    /// count must come back to the idle one.
    fn fds_limit(&self) -> usize {
        self.early_fds + self.in_flux + REST_SLACK
    }

    /// Panics, naming `who`, unless the run was flat.
    pub fn assert(&self, who: &str) {
        assert!(
            self.last.fds <= self.idle.fds + REST_SLACK,
            "{who} kept descriptors after the load: {} before it, {} after: {self}",
            self.idle.fds,
            self.last.fds
        );
        assert!(
            self.late_rss_kib <= self.rss_limit_kib(),
            "{who}'s RSS grew: {self}"
        );
        assert!(
            self.late_fds <= self.fds_limit(),
            "{who}'s descriptors grew: {self}"
        );
    }
}

impl std::fmt::Display for Flatness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "RSS max {} KiB at 20-50% of the run, {} KiB in the last 20% (limit {}); \
             descriptors max {} at 20-50%, {} in the last 20% (limit {}); \
             at rest {} KiB / {} fds, first sample {} KiB / {} fds, last {} KiB / {} fds",
            self.early_rss_kib,
            self.late_rss_kib,
            self.rss_limit_kib(),
            self.early_fds,
            self.late_fds,
            self.fds_limit(),
            self.idle.rss_kib,
            self.idle.fds,
            self.first.rss_kib,
            self.first.fds,
            self.last.rss_kib,
            self.last.fds
        )
    }
}
