//! Threads are not available to wasm32-wasip1 programs: spawn fails.

use wasi_conformance::outcome;

fn main() {
    outcome(
        "spawn",
        std::thread::Builder::new().spawn(|| println!("in a thread")),
    );
    println!(
        "available_parallelism: {:?}",
        std::thread::available_parallelism().map_err(|e| e.kind())
    );
}
