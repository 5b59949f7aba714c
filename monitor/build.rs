//! Embeds the guest kernel and the bundled programs, built for
//! x86_64-unknown-none by `make guest` before the monitor (see the Makefile).

use std::path::PathBuf;

/// Bundled programs: (name, file in the guest build directory).
const PROGRAMS: &[&str] = &["hello", "exit-code", "fault", "spin", "sleep"];

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let guest_dir = std::env::var_os("WEFT_GUEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest.join("../target/x86_64-unknown-none/release"));
    println!("cargo:rerun-if-env-changed=WEFT_GUEST_DIR");
    let mut missing = Vec::new();
    let mut entries = String::new();
    let mut need = |name: &str| -> String {
        let path = guest_dir.join(name);
        println!("cargo:rerun-if-changed={}", path.display());
        if !path.is_file() {
            missing.push(path.display().to_string());
        }
        path.display().to_string()
    };
    let kernel = need("weft-kernel");
    for p in PROGRAMS {
        let path = need(p);
        entries.push_str(&format!("    ({p:?}, include_bytes!({path:?})),\n"));
    }
    if !missing.is_empty() {
        panic!(
            "the guest kernel and programs must be built first (run `make build`, or `make guest`); missing: {}",
            missing.join(", ")
        );
    }
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let code = format!(
        "/// The bundled kernel ELF.\npub static KERNEL: &[u8] = include_bytes!({kernel:?});\n\
         /// The bundled programs: (name, ELF).\npub static PROGRAMS: &[(&str, &[u8])] = &[\n{entries}];\n"
    );
    std::fs::write(out.join("bundled.rs"), code).expect("write bundled.rs");
}
