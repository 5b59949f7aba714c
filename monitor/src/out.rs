//! The commands' standard output. A reader that goes away first
//! (`weft ps | head -1`) ends `weft` as SIGPIPE ends a filter: quietly,
//! with 141 (128 + SIGPIPE's number, [`ExitStatus::Signal`]). Rust
//! ignores SIGPIPE, so the write fails with `EPIPE` instead, and
//! `println!` would panic on it.

use std::io::{ErrorKind, Write};
use weft_monitor::status::ExitStatus;

/// `println!` for the commands' output (see the module).
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::out::line(::std::format_args!($($arg)*))
    };
}
pub(crate) use say;

/// Writes `text` and a newline to standard output.
pub(crate) fn line(text: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(text).and_then(|()| out.write_all(b"\n")) {
        failed(&e);
    }
}

/// Writes `bytes` to standard output as they are.
pub(crate) fn raw(bytes: &[u8]) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(bytes).and_then(|()| out.flush()) {
        failed(&e);
    }
}

/// Ends `weft` after a write to standard output failed: at once with 141
/// if its reader is gone, else with 1 and a line on standard error.
fn failed(e: &std::io::Error) -> ! {
    if e.kind() == ErrorKind::BrokenPipe {
        std::process::exit(ExitStatus::Signal(libc::SIGPIPE as u8).code().into());
    }
    eprintln!("weft: writing standard output: {e}");
    std::process::exit(ExitStatus::Program(1).code().into())
}
