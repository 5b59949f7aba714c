fn main() {
    // Programs are static, non-PIE executables (PROTOCOL.md §5.1).
    println!("cargo:rustc-link-arg-bins=--no-pie");
}
