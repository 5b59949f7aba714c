//! Compiling Wasm modules ahead of time for the guest (PROTOCOL.md
//! §13.8): wasmtime's Cranelift, on the host, with the settings the guest's
//! runtime shares ([`weft_wasm_run::aot::config`]), for the guest's target
//! (`x86_64-unknown-none`) and the SSE features its CPU has.
//!
//! A compiler keeps its last [`RECENT`] payloads in memory (at most
//! [`RECENT_BYTES`] together, but always the newest), so a module a guest
//! spawns again is not compiled again. Artifacts are also cached on
//! disk by the module's SHA-256 and the engine's
//! compatibility hash (wasmtime's version and every setting the artifact
//! records) in `$XDG_CACHE_HOME/weft/aot` (or `~/.cache/weft/aot`): the
//! next run of the same module loads it without compiling. The cache
//! keeps the [`KEPT`] most recently used artifacts; a file that cannot be
//! read or written there only costs a compile. An artifact is trusted
//! input to the guest's runtime, which checks its header but not its
//! code; whatever it holds runs at ring 3 in the guest, as any program.

use std::collections::VecDeque;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::SystemTime;
use thiserror::Error;
use weft_control::aot::{HEADER, Header};
use weft_control::app::{INTERFACE_BYTES, INTERFACE_SECTION, MODULE, ON_EVENTS, import};

/// Artifacts kept in the cache.
pub const KEPT: usize = 64;
/// Payloads a compiler keeps in memory, for the modules a guest spawns
/// again (the disk cache is out of the sandbox's reach).
pub const RECENT: usize = 8;
/// The most bytes those payloads hold together, past the newest one: a
/// daemon runs for months, and a module of 16 MiB compiles to several
/// times that.
pub const RECENT_BYTES: usize = 64 << 20;
/// The guest's target: the artifact's code runs in a `no_std` ring-3
/// program.
const TARGET: &str = "x86_64-unknown-none";

/// Why a module could not be compiled.
#[derive(Debug, Error)]
pub enum AotError {
    /// Cranelift refused the module (not valid Wasm, or a feature the
    /// tier does not support).
    #[error("{0:#}")]
    Compile(wasmtime::Error),
    /// It uses the event ABI without stating this runtime's interface
    /// version (PROTOCOL.md §13.3), as the interpreter refuses it.
    #[error("{0}")]
    Interface(String),
    /// The CPU lacks SSE 4.1, without which Cranelift would call float
    /// helpers across the guest's soft-float boundary.
    #[error("this CPU lacks SSE 4.1, which compiled Wasm needs here (use --engine interp)")]
    NoSse41,
    /// The engine could not be made for the guest (a bug).
    #[error("the compiler for the guest cannot be set up: {0:#}")]
    Engine(wasmtime::Error),
}

/// The compiler: an engine for the guest's target, made at its first use
/// (a guest that runs no Wasm never pays for it).
pub struct Compiler {
    engine: OnceLock<wasmtime::Engine>,
    /// Where artifacts are cached, if anywhere.
    cache: Option<PathBuf>,
    /// Whether the cache is still used ([`Compiler::stop_caching`]).
    caching: AtomicBool,
    /// The last [`RECENT`] payloads made, by their module's SHA-256;
    /// newest last.
    recent: Mutex<VecDeque<([u8; 32], Vec<u8>)>>,
}

impl Compiler {
    /// A compiler caching in the user's cache directory.
    pub fn new() -> Result<Self, AotError> {
        Self::with_cache(default_cache())
    }

    /// A compiler caching in `cache` (none: compile every time).
    pub fn with_cache(cache: Option<PathBuf>) -> Result<Self, AotError> {
        if !host_has("sse4.1") {
            return Err(AotError::NoSse41);
        }
        Ok(Self {
            engine: OnceLock::new(),
            cache,
            caching: AtomicBool::new(true),
            recent: Mutex::new(VecDeque::new()),
        })
    }

    /// The engine, made now if it is the first use.
    fn engine(&self) -> Result<&wasmtime::Engine, AotError> {
        if let Some(engine) = self.engine.get() {
            return Ok(engine);
        }
        let mut c = weft_wasm_run::aot::config();
        c.target(TARGET).map_err(AotError::Engine)?;
        for (flag, feature) in weft_wasm_run::aot::CPU_FLAGS {
            if host_has(feature) {
                // SAFETY: the guest runs on this CPU, whose CPUID the
                // monitor passes through for these features; the runtime
                // checks each again before it loads the artifact.
                unsafe {
                    c.cranelift_flag_enable(flag);
                }
            }
        }
        let engine = wasmtime::Engine::new(&c).map_err(AotError::Engine)?;
        Ok(self.engine.get_or_init(|| engine))
    }

    /// Compiles without the cache from now on: a sandboxed monitor (whose
    /// guest spawns modules) may not reach the cache directory
    /// (PROTOCOL.md §20.2).
    pub fn stop_caching(&self) {
        self.caching.store(false, Ordering::Relaxed);
    }

    /// The payload block for `wasm-aot` running `module` (PROTOCOL.md
    /// §13.8): a header, then the artifact from the block's second page.
    pub fn payload(&self, module: &[u8]) -> Result<Vec<u8>, AotError> {
        let hash = sha256(module);
        let recent = |r: &mut VecDeque<([u8; 32], Vec<u8>)>| {
            let i = r.iter().position(|(h, _)| *h == hash)?;
            let entry = r.remove(i)?;
            let payload = entry.1.clone();
            r.push_back(entry);
            Some(payload)
        };
        if let Some(p) = recent(&mut self.recent.lock().unwrap_or_else(|p| p.into_inner())) {
            return Ok(p);
        }
        check_interface(module)?;
        let artifact = self.artifact(module)?;
        let header = Header {
            artifact_len: artifact.len() as u64,
            module_sha256: hash,
        };
        let mut payload = Vec::with_capacity(HEADER + artifact.len());
        payload.extend_from_slice(&header.encode());
        payload.extend_from_slice(&artifact);
        let mut r = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        r.push_back((hash, payload.clone()));
        while r.len() > RECENT
            || (r.len() > 1 && r.iter().map(|(_, p)| p.len()).sum::<usize>() > RECENT_BYTES)
        {
            r.pop_front();
        }
        Ok(payload)
    }

    /// `module` compiled for the guest: from the cache, else compiled
    /// (and cached).
    pub fn artifact(&self, module: &[u8]) -> Result<Vec<u8>, AotError> {
        let engine = self.engine()?;
        let cache = self.cache.as_ref();
        let file = cache
            .filter(|_| self.caching.load(Ordering::Relaxed))
            .map(|dir| {
                let mut h = std::hash::DefaultHasher::new();
                engine.precompile_compatibility_hash().hash(&mut h);
                dir.join(format!(
                    "{}-{:016x}.cwasm",
                    hex(&sha256(module)),
                    h.finish()
                ))
            });
        if let Some(f) = &file
            && let Ok(bytes) = std::fs::read(f)
            && wasmtime::Engine::detect_precompiled(&bytes).is_some()
        {
            // Marks it used, for the eviction.
            let _ = std::fs::File::options()
                .append(true)
                .open(f)
                .and_then(|h| h.set_modified(SystemTime::now()));
            return Ok(bytes);
        }
        let artifact = engine
            .precompile_module(module)
            .map_err(AotError::Compile)?;
        if let Some(f) = &file {
            store(f, &artifact);
        }
        Ok(artifact)
    }
}

/// The `weft` functions only the interpreter serves in full: an app that
/// imports one runs there by default (`--engine auto`, PROTOCOL.md §13.8).
const INTERPRETER_ONLY: [&str; 4] = [
    import::SPAWN,
    import::KILL,
    import::PROCESSES,
    import::MOVE_SELF,
];

/// Whether `module` imports a process call of the event ABI that the
/// compiled tier does not serve ([`INTERPRETER_ONLY`]), or, where apps
/// move (`movable`: a device's guest), is an event app (it exports
/// `weft_on_events`), which only the interpreter moves (PROTOCOL.md
/// §19). A module that does not parse says no: the compiler will say why.
pub fn needs_interpreter(module: &[u8], movable: bool) -> bool {
    use wasmparser::{Parser, Payload};
    Parser::new(0).parse_all(module).any(|p| match p {
        Ok(Payload::ImportSection(imports)) => imports
            .into_iter()
            .flatten()
            .any(|i| i.module == MODULE && INTERPRETER_ONLY.contains(&i.name)),
        Ok(Payload::ExportSection(exports)) if movable => exports_on_events(exports),
        _ => false,
    })
}

/// Whether `module` is an event app (PROTOCOL.md §13.2: it exports
/// `weft_on_events`). A module that does not parse is not.
pub fn is_event_app(module: &[u8]) -> bool {
    use wasmparser::{Parser, Payload};
    Parser::new(0).parse_all(module).any(|p| match p {
        Ok(Payload::ExportSection(exports)) => exports_on_events(exports),
        _ => false,
    })
}

fn exports_on_events(exports: wasmparser::ExportSectionReader<'_>) -> bool {
    exports.into_iter().flatten().any(|e| e.name == ON_EVENTS)
}

/// Checks that a module importing the event ABI (`weft`) states this
/// runtime's interface version in one [`INTERFACE_SECTION`], as the
/// interpreter does at load. A module that does not parse is left to the
/// compiler, which says why.
fn check_interface(module: &[u8]) -> Result<(), AotError> {
    use wasmparser::{Parser, Payload};
    let mut imports_weft = false;
    let mut stated = Vec::new();
    for payload in Parser::new(0).parse_all(module) {
        match payload {
            Ok(Payload::ImportSection(imports)) => {
                imports_weft |= imports.into_iter().flatten().any(|i| i.module == MODULE);
            }
            Ok(Payload::CustomSection(c)) if c.name() == INTERFACE_SECTION => {
                stated.push(c.data().to_vec());
            }
            Ok(_) => {}
            Err(_) => return Ok(()),
        }
    }
    let found = match stated.as_slice() {
        _ if !imports_weft => return Ok(()),
        [data] if data.as_slice() == INTERFACE_BYTES => return Ok(()),
        [data] => <[u8; 4]>::try_from(data.as_slice())
            .ok()
            .map(u32::from_le_bytes),
        _ => None,
    };
    let refusal = weft_wasm_run::engine::LoadError::Interface { found };
    Err(AotError::Interface(refusal.to_string()))
}

/// `$XDG_CACHE_HOME/weft/aot`, else `~/.cache/weft/aot`.
fn default_cache() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("weft").join("aot"))
}

/// Writes `artifact` to `file` whole (a temporary file renamed), then
/// drops the least recently used artifacts past [`KEPT`]. Failures are
/// ignored: the cache only saves compiles.
fn store(file: &Path, artifact: &[u8]) {
    let Some(dir) = file.parent() else { return };
    if std::fs::create_dir_all(dir).is_err() {
        return;
    }
    let tmp = dir.join(format!(".{}.tmp", std::process::id()));
    if std::fs::write(&tmp, artifact).is_ok() && std::fs::rename(&tmp, file).is_ok() {
        evict(dir);
    } else {
        let _ = std::fs::remove_file(&tmp);
    }
}

/// Removes the least recently used `.cwasm` files of `dir` past [`KEPT`].
fn evict(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut files: Vec<(SystemTime, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "cwasm"))
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .collect();
    if files.len() <= KEPT {
        return;
    }
    files.sort();
    for (_, path) in &files[..files.len() - KEPT] {
        let _ = std::fs::remove_file(path);
    }
}

/// Whether this CPU has `feature` (a name of `aot::CPU_FLAGS`).
fn host_has(feature: &str) -> bool {
    match feature {
        "sse3" => std::arch::is_x86_feature_detected!("sse3"),
        "ssse3" => std::arch::is_x86_feature_detected!("ssse3"),
        "sse4.1" => std::arch::is_x86_feature_detected!("sse4.1"),
        "sse4.2" => std::arch::is_x86_feature_detected!("sse4.2"),
        "popcnt" => std::arch::is_x86_feature_detected!("popcnt"),
        _ => false,
    }
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `(module (func (export "_start")))`
    const EMPTY: &[u8] = &[
        0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, 0x01, 0x04, 0x01, 0x60, 0x00, 0x00, 0x03,
        0x02, 0x01, 0x00, 0x07, 0x0a, 0x01, 0x06, b'_', b's', b't', b'a', b'r', b't', 0x00, 0x00,
        0x0a, 0x04, 0x01, 0x02, 0x00, 0x0b,
    ];

    #[test]
    fn a_module_is_compiled_once_and_then_read_from_the_cache() {
        let dir = std::env::temp_dir().join(format!("weft-aot-cache-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let c = Compiler::with_cache(Some(dir.clone())).unwrap();
        let first = c.payload(EMPTY).unwrap();
        let header = Header::decode(&first).unwrap();
        assert_eq!(header.module_sha256, sha256(EMPTY));
        assert!(first[HEADER..].starts_with(b"\x7fELF"));
        let cached: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        assert_eq!(cached.len(), 1);
        // The same compiler answers again from memory (the disk is not
        // read: a junk entry there goes unnoticed)...
        let path = cached[0].as_ref().unwrap().path();
        std::fs::write(&path, b"junk").unwrap();
        assert_eq!(c.payload(EMPTY).unwrap(), first);
        assert_eq!(std::fs::read(&path).unwrap(), b"junk");
        // ... and a new one compiles a corrupt entry again rather than
        // handing it out.
        let c = Compiler::with_cache(Some(dir.clone())).unwrap();
        assert_eq!(c.payload(EMPTY).unwrap(), first);
        assert!(std::fs::read(&path).unwrap().starts_with(b"\x7fELF"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn an_invalid_module_is_refused_with_the_compiler_s_reason() {
        let c = Compiler::with_cache(None).unwrap();
        let e = c.payload(b"\0asm\x01\0\0\0\xff\xff").unwrap_err();
        assert!(matches!(e, AotError::Compile(_)), "{e}");
        assert!(!e.to_string().is_empty());
    }

    #[test]
    fn the_cache_keeps_the_most_recently_used() {
        let dir = std::env::temp_dir().join(format!("weft-aot-evict-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let t0 = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
        for i in 0..KEPT + 3 {
            let f = dir.join(format!("{i:03}.cwasm"));
            std::fs::write(&f, b"x").unwrap();
            let h = std::fs::File::options().append(true).open(&f).unwrap();
            h.set_modified(t0 + std::time::Duration::from_secs(i as u64))
                .unwrap();
        }
        evict(&dir);
        let mut left: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left.len(), KEPT);
        assert_eq!(left[0], "003.cwasm");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
