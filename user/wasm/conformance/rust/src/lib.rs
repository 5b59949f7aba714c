//! Helpers shared by the conformance programs: one line per observation,
//! in the same words on every runtime.

use std::fmt::Debug;
use std::io;

/// Prints `label: ok VALUE` or `label: error KIND (errno N)` for a result.
pub fn show<T: Debug>(label: &str, r: io::Result<T>) -> Option<T> {
    match r {
        Ok(v) => {
            println!("{label}: ok {v:?}");
            Some(v)
        }
        Err(e) => {
            println!("{label}: {}", describe(&e));
            None
        }
    }
}

/// Like [`show`], without printing the value.
pub fn outcome<T>(label: &str, r: io::Result<T>) -> Option<T> {
    match r {
        Ok(v) => {
            println!("{label}: ok");
            Some(v)
        }
        Err(e) => {
            println!("{label}: {}", describe(&e));
            None
        }
    }
}

/// An error's kind and, where it came from the runtime, its WASI errno.
pub fn describe(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => format!("error {:?} (errno {n})", e.kind()),
        None => format!("error {:?}", e.kind()),
    }
}

/// "yes" or "no".
pub fn yes(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}
