//! The platform wasmtime's `no_std` runtime needs from the program: its
//! thread-local words, executable code, and the CPU's features.
//!
//! Code is never made executable here: the monitor maps the payload block,
//! where the artifact lies, read and execute before the program starts
//! (never writable, so no page is ever writable and executable). Publishing
//! code only checks that it lies there.

use alloc::sync::Arc;
use core::arch::x86_64::__cpuid;
use core::sync::atomic::{AtomicPtr, AtomicU64, Ordering};
use weft_wasm_run::aot;

/// wasmtime's thread-local words: the program has one thread.
static TLS: [AtomicPtr<u8>; 2] = [const { AtomicPtr::new(core::ptr::null_mut()) }; 2];

/// wasmtime's thread-local word `slot` (0 or 1).
#[unsafe(no_mangle)]
extern "C" fn wasmtime_tls_get(slot: usize) -> *mut u8 {
    TLS.get(slot)
        .map_or(core::ptr::null_mut(), |w| w.load(Ordering::Relaxed))
}

/// Sets wasmtime's thread-local word `slot` (0 or 1).
#[unsafe(no_mangle)]
extern "C" fn wasmtime_tls_set(slot: usize, value: *mut u8) {
    if let Some(w) = TLS.get(slot) {
        w.store(value, Ordering::Relaxed);
    }
}

/// The code of the artifact in the payload block: executable already.
struct PayloadCode {
    /// The artifact's address range.
    start: usize,
    end: usize,
}

impl wasmtime::CustomCodeMemory for PayloadCode {
    fn required_alignment(&self) -> usize {
        1
    }

    fn publish_executable(&self, ptr: *const u8, len: usize) -> wasmtime::Result<()> {
        let at = ptr as usize;
        match at >= self.start && at.checked_add(len).is_some_and(|e| e <= self.end) {
            true => Ok(()),
            false => Err(wasmtime::format_err!(
                "code at {at:#x} lies outside the payload block"
            )),
        }
    }

    fn unpublish_executable(&self, _ptr: *const u8, _len: usize) -> wasmtime::Result<()> {
        Ok(())
    }
}

/// CPUID leaf 1's ECX, once read (the top bit set: not read yet). Every
/// CPUID exits to the monitor (10-40 µs here), and the load asks for each
/// of the artifact's features in turn.
static LEAF1_ECX: AtomicU64 = AtomicU64::new(u64::MAX);

/// Whether the CPU has `feature` (a name of [`aot::CPU_FLAGS`]); `None` for
/// another name, which fails the load.
fn has_feature(feature: &str) -> Option<bool> {
    let ecx = match LEAF1_ECX.load(Ordering::Relaxed) {
        u64::MAX => {
            let ecx = __cpuid(1).ecx;
            LEAF1_ECX.store(ecx.into(), Ordering::Relaxed);
            ecx
        }
        known => known as u32,
    };
    let bit = match feature {
        "sse3" => 0,
        "ssse3" => 9,
        "sse4.1" => 19,
        "sse4.2" => 20,
        "popcnt" => 23,
        _ => return None,
    };
    Some(ecx & (1 << bit) != 0)
}

/// The engine for the artifact in `artifact` (in the payload block).
pub fn engine(artifact: &'static [u8]) -> wasmtime::Result<wasmtime::Engine> {
    let mut c = aot::config();
    let start = artifact.as_ptr() as usize;
    c.with_custom_code_memory(Some(Arc::new(PayloadCode {
        start,
        end: start + artifact.len(),
    })));
    // SAFETY: `has_feature` reads the CPU's own answer (CPUID), which the
    // monitor passes through for these features.
    unsafe {
        c.detect_host_feature(has_feature);
    }
    wasmtime::Engine::new(&c)
}
