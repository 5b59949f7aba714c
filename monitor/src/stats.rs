//! Counters and boot-phase times for `--stats`.

use crate::sandbox::FileRules;
use crate::streams::QuotaFigures;
use crate::streams::budget::BudgetFigures;
use std::fmt::Write;
use std::time::{Duration, Instant};
use weft_control::boot::BootStamps;

/// VM exits by kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExitCounts {
    pub io: u64,
    pub mmio: u64,
    pub hlt: u64,
    pub shutdown: u64,
    pub interrupted: u64,
    pub other: u64,
}

/// Hypercalls by number.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HypercallCounts {
    pub console_write: u64,
    pub exit: u64,
    pub panic: u64,
    pub fault: u64,
    /// Spawn, map, process-end and figures calls.
    pub process: u64,
    pub unknown: u64,
}

/// Everything `--stats` prints.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    pub exits: ExitCounts,
    pub hypercalls: HypercallCounts,
    pub console_bytes: u64,
    /// Bytes relayed from the guest's output streams.
    pub stream_bytes: u64,
    /// Stream interrupts raised.
    pub stream_interrupts: u64,
    /// Doorbells that exited to the monitor (before the doorbell became an
    /// ioeventfd).
    pub doorbells: u64,
    /// Stream pairs the control pipe opened.
    pub streams_opened: u64,
    /// Doorbells rung, all ways.
    pub stream_doorbells: u64,
    pub phases: Phases,
    /// The file rules of the monitor's sandbox, if it entered one.
    pub sandbox: Option<FileRules>,
    /// The guest's budgets at the end.
    pub budgets: Option<BudgetFigures>,
    /// The file-system quota at the end, if there is one.
    pub fs_quota: Option<QuotaFigures>,
}

/// Host times of the boot phases, measured from the monitor's start.
#[derive(Clone, Debug, Default)]
pub struct Phases {
    pub vm_created: Option<Duration>,
    pub kernel_loaded: Option<Duration>,
    pub first_instruction: Option<Duration>,
    pub kernel_ready: Option<Duration>,
    pub program_entered: Option<Duration>,
    pub exit: Option<Duration>,
}

impl Phases {
    /// Converts the guest's TSC stamps to times since `start`, given one
    /// simultaneous reading of the guest TSC (`tsc_now`) and the host clock
    /// (`now`). Stamps that are zero (never written) or later than `tsc_now`
    /// are left out: the guest wrote them, so they are only reports.
    pub fn set_guest_stamps(
        &mut self,
        start: Instant,
        stamps: &BootStamps,
        tsc_hz: u64,
        tsc_now: u64,
        now: Instant,
    ) {
        let at = |stamp: u64| -> Option<Duration> {
            if stamp == 0 || stamp > tsc_now || tsc_hz == 0 {
                return None;
            }
            let ago = Duration::from_secs_f64((tsc_now - stamp) as f64 / tsc_hz as f64);
            now.checked_sub(ago)
                .map(|t| t.saturating_duration_since(start))
        };
        self.first_instruction = at(stamps.kernel_entry);
        self.kernel_ready = at(stamps.kernel_ready);
        self.program_entered = at(stamps.program_entry);
    }
}

/// Memory figures.
#[derive(Clone, Copy, Debug, Default)]
pub struct MemoryFigures {
    pub guest_mib: u64,
    pub rss_peak_kib: u64,
    pub guest_resident_kib: u64,
}

/// Peak resident set size of this process in KiB (`VmHWM`).
pub fn rss_peak_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

impl Stats {
    /// The `--stats` report (PROTOCOL-independent; documented in the README).
    pub fn render(&self, mem: &MemoryFigures) -> String {
        let e = &self.exits;
        let h = &self.hypercalls;
        let total = e.io + e.mmio + e.hlt + e.shutdown + e.interrupted + e.other;
        let mut out = String::from("weft: stats\n");
        let _ = writeln!(
            out,
            "  exits: io={} mmio={} hlt={} shutdown={} interrupted={} other={} total={total}",
            e.io, e.mmio, e.hlt, e.shutdown, e.interrupted, e.other
        );
        let _ = writeln!(
            out,
            "  hypercalls: console_write={} exit={} panic={} fault={} process={} unknown={}",
            h.console_write, h.exit, h.panic, h.fault, h.process, h.unknown
        );
        let _ = writeln!(out, "  console: bytes={}", self.console_bytes);
        let _ = writeln!(
            out,
            "  streams: opened={} bytes_out={} doorbells={} doorbell_exits={} interrupts={}",
            self.streams_opened,
            self.stream_bytes,
            self.stream_doorbells,
            self.doorbells,
            self.stream_interrupts
        );
        let p = &self.phases;
        let mut phases = String::new();
        for (name, t) in [
            ("vm_created", p.vm_created),
            ("kernel_loaded", p.kernel_loaded),
            ("first_instruction", p.first_instruction),
            ("kernel_ready", p.kernel_ready),
            ("program_entered", p.program_entered),
            ("exit", p.exit),
        ] {
            match t {
                Some(t) => {
                    let _ = write!(phases, " {name}={}", t.as_micros());
                }
                None => {
                    let _ = write!(phases, " {name}=-");
                }
            }
        }
        let _ = writeln!(out, "  phases (us since monitor start):{phases}");
        let _ = writeln!(
            out,
            "  memory: guest_mib={} rss_peak_kib={} guest_resident_kib={}",
            mem.guest_mib, mem.rss_peak_kib, mem.guest_resident_kib
        );
        let sandbox = match self.sandbox {
            None => "off",
            Some(FileRules::Full) => "system_calls files ports",
            Some(FileRules::Partial) => "system_calls files(partial)",
            Some(FileRules::Absent) => "system_calls (no landlock)",
        };
        if let Some(b) = self.budgets {
            let _ = writeln!(
                out,
                "  budgets: streams={}/{} per_process={} refused={} lingering={}/{} lingering_dropped={}",
                b.streams_open,
                b.limits.streams,
                b.limits.process_streams,
                b.streams_refused,
                b.lingering,
                b.limits.lingering,
                b.lingering_dropped
            );
        }
        if let Some(q) = self.fs_quota {
            let _ = writeln!(
                out,
                "  fs_quota: added={} limit={} refused={}",
                q.added, q.limit, q.refused
            );
        }
        let _ = writeln!(out, "  sandbox: {sandbox}");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guest_stamps_convert_and_bad_ones_are_dropped() {
        let start = Instant::now();
        let now = start + Duration::from_millis(10);
        let stamps = BootStamps {
            kernel_entry: 1_000,
            kernel_ready: 0,
            program_entry: 9_999_999,
            reserved: 0,
        };
        let mut p = Phases::default();
        // 1 MHz TSC read as 5_001_000 at `now`: kernel entry was 5 s ago, which
        // is before `start`, so it saturates to zero.
        p.set_guest_stamps(start, &stamps, 1_000_000, 5_001_000, now);
        assert_eq!(p.first_instruction, Some(Duration::ZERO));
        assert_eq!(p.kernel_ready, None);
        assert_eq!(p.program_entered, None);
        p.set_guest_stamps(
            start,
            &BootStamps {
                kernel_entry: 996_000,
                ..stamps
            },
            1_000_000,
            1_000_000,
            now,
        );
        assert_eq!(p.first_instruction, Some(Duration::from_millis(6)));
    }

    #[test]
    fn render_names_every_counter() {
        let mut s = Stats::default();
        s.exits.io = 3;
        s.hypercalls.exit = 1;
        let out = s.render(&MemoryFigures {
            guest_mib: 64,
            rss_peak_kib: 10,
            guest_resident_kib: 4,
        });
        assert!(out.contains("exits: io=3 mmio=0 hlt=0 shutdown=0 interrupted=0 other=0 total=3"));
        assert!(out.contains("hypercalls: console_write=0 exit=1"));
        assert!(out.contains("vm_created=-"));
        assert!(out.contains("rss_peak_kib=10 guest_resident_kib=4"));
        assert!(out.contains("sandbox: off"));
    }
}
