//! Declares `cfg(loom)`, under which `tests/loom.rs` model-checks the ring.
fn main() {
    println!("cargo::rustc-check-cfg=cfg(loom)");
}
