//! `hog [MIB]`: takes memory 1 MiB at a time, up to MIB MiB (default: no
//! end) or until refused, then prints how much it got.

fn main() {
    let most: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(usize::MAX);
    let mut held: Vec<Vec<u8>> = Vec::new();
    while held.len() < most {
        let mut chunk = Vec::new();
        if chunk.try_reserve_exact(1 << 20).is_err() {
            break;
        }
        chunk.resize(1 << 20, 1);
        held.push(chunk);
    }
    println!("hog: holding {} MiB", held.len());
}
