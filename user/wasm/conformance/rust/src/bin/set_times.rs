//! File::set_times and set_modified: exact times read back equal.

use std::fs::{self, File, FileTimes, OpenOptions};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use wasi_conformance::{outcome, yes};

fn main() {
    let t1 = UNIX_EPOCH + Duration::new(1_000_000_000, 500_000_000);
    let t2 = UNIX_EPOCH + Duration::new(1_100_000_000, 7);
    let f = OpenOptions::new().write(true).open("a.txt").unwrap();
    outcome(
        "set_times",
        f.set_times(FileTimes::new().set_accessed(t1).set_modified(t2)),
    );
    let m = fs::metadata("a.txt").unwrap();
    println!(
        "modified reads back equal {}",
        yes(m.modified().ok() == Some(t2))
    );
    println!(
        "accessed reads back equal {}",
        yes(m.accessed().ok() == Some(t1))
    );
    let r = File::open("b.txt").unwrap();
    outcome("set_modified on a read-only file", r.set_modified(t1));
    let m = fs::metadata("b.txt").unwrap();
    println!(
        "b.txt modified equal {}",
        yes(m.modified().ok() == Some(t1))
    );
    let now = SystemTime::now();
    let fresh = fs::metadata("dir/c.txt").unwrap().modified().unwrap();
    println!("untouched file modified before now {}", yes(fresh <= now));
}
