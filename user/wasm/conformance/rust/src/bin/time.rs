//! Time through std: SystemTime is plausible, Instant is monotonic, sleep
//! (poll_oneoff) waits at least as long as asked.

use std::thread::sleep;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use wasi_conformance::yes;

fn main() {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    println!("after 2020 {}", yes(now.as_secs() > 1_577_836_800));
    let t = Instant::now();
    sleep(Duration::from_millis(30));
    let e = t.elapsed();
    println!(
        "slept at least 30ms {}, under 2s {}",
        yes(e >= Duration::from_millis(30)),
        yes(e < Duration::from_secs(2))
    );
    let a = Instant::now();
    let b = Instant::now();
    println!("instants ordered {}", yes(b >= a));
    sleep(Duration::ZERO);
    println!("zero sleep returns");
}
