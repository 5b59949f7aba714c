//! Embeds the guest kernel and the bundled programs, built for
//! x86_64-unknown-none by `make guest` before the monitor (see the Makefile).

use std::path::PathBuf;

/// Bundled programs: (name, file in the guest build directory).
const PROGRAMS: &[&str] = &[
    "hello",
    "env",
    "exit-code",
    "fault",
    "spin",
    "sleep",
    "cat",
    "ls",
    "cp",
    "echo-server",
    "http-get",
    "udp-echo",
    "httpd",
    "procs",
    "fabric-ls",
    "kv",
    "ipc-check",
    "wasm-run",
    "wasm-aot",
    "device",
    "crash-kernel",
];

fn main() {
    let manifest =
        PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let guest_dir = std::env::var_os("WEFT_GUEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest.join("../target/x86_64-unknown-none/release"));
    println!("cargo:rerun-if-env-changed=WEFT_GUEST_DIR");
    let mut missing = Vec::new();
    let mut entries = String::new();
    let mut statics = String::new();
    // Each image is embedded 64-byte aligned, so ELF readers that need aligned
    // headers can parse it in place.
    let mut embed = |name: &str, ident: &str| -> String {
        let path = guest_dir.join(name);
        println!("cargo:rerun-if-changed={}", path.display());
        let len = std::fs::metadata(&path)
            .map(|m| m.len())
            .unwrap_or_else(|_| {
                missing.push(path.display().to_string());
                0
            });
        statics.push_str(&format!(
            "static {ident}: Aligned<{len}> = Aligned(*include_bytes!({:?}));\n",
            path.display().to_string()
        ));
        format!("&{ident}.0")
    };
    let kernel = embed("weft-kernel", "KERNEL_IMAGE");
    for (i, p) in PROGRAMS.iter().enumerate() {
        let r = embed(p, &format!("PROGRAM_{i}"));
        entries.push_str(&format!("    ({p:?}, {r}),\n"));
    }
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    // Only the `weft` binary includes the table: the library (and its unit
    // tests) builds without the guest artifacts, and the binary fails with
    // this message when they are missing.
    let code = if missing.is_empty() {
        format!(
            "#[repr(C, align(64))]\nstruct Aligned<const N: usize>([u8; N]);\n{statics}\
             /// The bundled kernel ELF.\npub static KERNEL: &[u8] = {kernel};\n\
             /// The bundled programs: (name, ELF).\npub static PROGRAMS: &[(&str, &[u8])] = &[\n{entries}];\n"
        )
    } else {
        format!(
            "compile_error!({:?});\n",
            format!(
                "the guest kernel and programs must be built first (run `make build`, or `make guest`); missing: {}",
                missing.join(", ")
            )
        )
    };
    std::fs::write(out.join("bundled.rs"), code).expect("write bundled.rs");
}
