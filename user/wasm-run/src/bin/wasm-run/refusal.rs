//! Refusals for want of a grant, told on standard error. An app sees only
//! a WASI errno (`EACCES` for an address `--listen` or `--connect` does not
//! grant, `ENOTCAPABLE` for a file without `--fs-root`), which its own
//! message cannot explain; so the runtime writes one line naming what was
//! asked and the option that allows it, as the monitor worded it (the
//! line a native program prints: `weft: address not allowed: listening on
//! 0.0.0.0:8080 is not allowed: not granted by --listen`). Standard output
//! is untouched, and nothing is written for any other error, so a program
//! given every grant prints nothing extra.
//!
//! At most [`MAX_REPORTS`] lines are written, so that an app that retries
//! a refused call in a loop cannot flood standard error.

use core::sync::atomic::{AtomicUsize, Ordering};
use weft_user::{Code, Error, eprintln};

/// Refusals told at most.
const MAX_REPORTS: usize = 16;

/// Refusals told so far.
static REPORTED: AtomicUsize = AtomicUsize::new(0);

/// Whether `e` is a refusal for want of a grant: an address not granted
/// (`NotAllowed`), or a protocol not available without its option
/// (`Unsupported`: files without `--fs-root`).
fn is_refusal(e: &Error) -> bool {
    matches!(e.code(), Code::NotAllowed | Code::Unsupported)
}

/// Tells `e` on standard error if it is a refusal for want of a grant.
pub fn note(e: &Error) {
    if !is_refusal(e) {
        return;
    }
    match REPORTED.fetch_add(1, Ordering::Relaxed) {
        n if n < MAX_REPORTS => eprintln!("weft: {e}"),
        MAX_REPORTS => eprintln!("weft: further refusals are not reported"),
        _ => {}
    }
}
