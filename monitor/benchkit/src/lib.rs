//! `weft-benchkit`: how every Weft benchmark reports its figures.
//!
//! Each benchmark measures a value and its baseline side by side in the same run,
//! then calls [`record`]. Results accumulate in `target/bench/results.json` (a JSON
//! array of `{name, value, unit, baseline, baseline_value, ratio, machine}`, one
//! object per name, a later run of the same name replacing the earlier one); the
//! raw samples go to `target/bench/raw/<name>.json`, and `target/bench/report.md`
//! is rewritten from the whole array each time.
//!
//! `ratio` is always `value / baseline_value`. A figure that is not a number
//! (a zero baseline's ratio, say) is written as `null` and read back as NaN.

use serde::{Deserialize, Serialize};
use std::fs;
use std::io;
use std::path::PathBuf;

/// One benchmark figure with its side-by-side baseline.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Record {
    /// Stable name, e.g. `hello_wall_ms`.
    pub name: String,
    /// The measured value.
    #[serde(deserialize_with = "nan_if_null")]
    pub value: f64,
    /// Unit of `value` and `baseline_value`.
    pub unit: String,
    /// What the baseline is.
    pub baseline: String,
    /// The baseline, measured in the same run.
    #[serde(deserialize_with = "nan_if_null")]
    pub baseline_value: f64,
    /// `value / baseline_value`.
    #[serde(deserialize_with = "nan_if_null")]
    pub ratio: f64,
    /// The machine the run happened on ([`machine`]).
    pub machine: String,
}

/// JSON has no NaN: `serde_json` writes it as `null`, which must read back as
/// NaN, or one such record would make [`record`] drop every earlier result.
fn nan_if_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

impl Record {
    /// A record for this machine with `ratio` computed.
    pub fn new(name: &str, value: f64, unit: &str, baseline: &str, baseline_value: f64) -> Self {
        let ratio = if baseline_value != 0.0 {
            value / baseline_value
        } else {
            f64::NAN
        };
        Self {
            name: name.to_owned(),
            value,
            unit: unit.to_owned(),
            baseline: baseline.to_owned(),
            baseline_value,
            ratio,
            machine: machine(),
        }
    }
}

/// The directory results go to: `$WEFT_BENCH_DIR`, or `target/bench` in the
/// workspace.
pub fn bench_dir() -> PathBuf {
    std::env::var_os("WEFT_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../target/bench"))
        })
}

/// A one-line description of this machine: CPU model, core count, and whether
/// KVM here is nested (PVM).
pub fn machine() -> String {
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|r| r.trim_start_matches([' ', '\t', ':']))
        })
        .unwrap_or("unknown CPU")
        .to_owned();
    // The machine's CPUs, not this thread's affinity (benchmarks pin threads).
    let cores = cpuinfo
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count()
        .max(1);
    let cmdline = fs::read_to_string("/proc/cmdline").unwrap_or_default();
    let kvm = if cmdline.contains("nested_pvm=1") {
        "nested KVM (PVM)"
    } else {
        "KVM"
    };
    format!("{model}, {cores} cores, {kvm}")
}

/// Summary statistics of raw samples.
pub fn median(samples: &[f64]) -> f64 {
    let mut v: Vec<f64> = samples.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Merges `records` into `results.json`, stores `raw` samples per record name
/// (same order as `records`; pass an empty slice for none) and rewrites
/// `report.md`.
pub fn record(records: &[Record], raw: &[(&str, &[f64])]) -> io::Result<()> {
    record_in(&bench_dir(), records, raw)
}

/// [`record`] into the directory `dir`.
pub fn record_in(
    dir: &std::path::Path,
    records: &[Record],
    raw: &[(&str, &[f64])],
) -> io::Result<()> {
    fs::create_dir_all(dir.join("raw"))?;
    let path = dir.join("results.json");
    let mut all: Vec<Record> = match fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_default(),
        Err(_) => Vec::new(),
    };
    for r in records {
        all.retain(|o| o.name != r.name);
        all.push(r.clone());
    }
    fs::write(&path, serde_json::to_vec_pretty(&all)?)?;
    for (name, samples) in raw {
        fs::write(
            dir.join("raw").join(format!("{name}.json")),
            serde_json::to_vec(samples)?,
        )?;
    }
    fs::write(dir.join("report.md"), render(&all))?;
    Ok(())
}

/// The Markdown report for `records`.
pub fn render(records: &[Record]) -> String {
    let mut out = String::from("# Weft benchmark report\n\n");
    if let Some(r) = records.first() {
        out.push_str(&format!("Machine: {}\n\n", r.machine));
    }
    out.push_str("| name | value | unit | baseline | baseline value | ratio |\n|---|---:|---|---|---:|---:|\n");
    for r in records {
        out.push_str(&format!(
            "| {} | {:.4} | {} | {} | {:.4} | {:.3} |\n",
            r.name, r.value, r.unit, r.baseline, r.baseline_value, r.ratio
        ));
    }
    out.push_str("\n`ratio` = value / baseline value. Raw samples: `raw/<name>.json`.\n");
    out
}

/// Ends `child`, which the caller has not waited for: `SIGTERM` (so that a
/// `weft` prints its `--stats`), then `SIGKILL` if it is still there after
/// `grace`; reaped either way.
pub fn terminate(child: &mut std::process::Child, grace: std::time::Duration) {
    if let Ok(pid) = i32::try_from(child.id()) {
        // SAFETY: `kill` has no memory effects; `pid` is the caller's child,
        // not yet waited for, so the id is still its own.
        unsafe { libc::kill(pid, libc::SIGTERM) };
    }
    let deadline = std::time::Instant::now() + grace;
    while std::time::Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_even_and_nan() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&[]).is_nan());
        assert_eq!(median(&[f64::NAN, 5.0]), 5.0);
    }

    #[test]
    fn record_replaces_same_name_and_renders() {
        let dir = std::env::temp_dir().join(format!("weft-benchkit-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let a = Record::new("a", 2.0, "ms", "floor", 1.0);
        let mut a2 = a.clone();
        a2.value = 3.0;
        a2.ratio = 3.0;
        let b = Record::new("b", 1.0, "GB/s", "memcpy", 4.0);
        record_in(&dir, &[a, b.clone()], &[("a", &[1.0, 2.0])]).unwrap();
        record_in(&dir, &[a2.clone()], &[]).unwrap();
        let back: Vec<Record> =
            serde_json::from_slice(&fs::read(dir.join("results.json")).unwrap()).unwrap();
        assert_eq!(back, vec![b, a2]);
        assert_eq!(back[0].ratio, 0.25);
        let md = fs::read_to_string(dir.join("report.md")).unwrap();
        assert!(
            md.contains("| a | 3.0000 | ms | floor | 1.0000 | 3.000 |"),
            "{md}"
        );
        assert_eq!(
            fs::read_to_string(dir.join("raw/a.json")).unwrap(),
            "[1.0,2.0]"
        );
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_zero_baseline_keeps_earlier_results() {
        let dir = std::env::temp_dir().join(format!("weft-benchkit-nan-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let a = Record::new("a", 2.0, "ms", "floor", 1.0);
        let zero = Record::new("errors", 0.0, "errors", "none", 0.0);
        assert!(zero.ratio.is_nan());
        record_in(&dir, &[a.clone(), zero], &[]).unwrap();
        let b = Record::new("b", 1.0, "GB/s", "memcpy", 4.0);
        record_in(&dir, std::slice::from_ref(&b), &[]).unwrap();
        let back: Vec<Record> =
            serde_json::from_slice(&fs::read(dir.join("results.json")).unwrap()).unwrap();
        assert_eq!(back.len(), 3, "{back:?}");
        assert_eq!(back[0], a);
        assert_eq!(back[1].name, "errors");
        assert!(back[1].ratio.is_nan());
        assert_eq!(back[2], b);
        let _ = fs::remove_dir_all(&dir);
    }
}
