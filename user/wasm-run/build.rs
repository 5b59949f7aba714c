fn main() {
    // The guest binary's segments each start on a 2 MiB boundary, so the
    // monitor can map its 1.5 MiB of code with one 2 MiB page (PROTOCOL.md
    // §3.4): under shadow paging every 4 KiB page touched first costs a
    // host fault, and a Wasm app's start touches hundreds.
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("none") {
        println!("cargo:rustc-link-arg-bins=-zmax-page-size=0x200000");
    }
}
