//! `trap [MS]`: waits MS milliseconds (default 0), then reaches an
//! `unreachable` instruction in the function `explode`.

#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn explode(depth: u32) -> u32 {
    if std::hint::black_box(depth) > 0 {
        return explode(depth - 1) + 1;
    }
    core::arch::wasm32::unreachable()
}

fn main() {
    let ms: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(0);
    std::thread::sleep(std::time::Duration::from_millis(ms));
    println!("trap: exploding");
    explode(3);
}
