//! `spin`: computes forever and never waits, as a runaway app would.

fn main() {
    println!("spin: spinning");
    let mut x = 1u64;
    loop {
        x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
    }
}
