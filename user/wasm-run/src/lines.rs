//! An app's standard output and error, handed to the runtime's streams in
//! whole lines.
//!
//! Apps write a line in pieces: Rust's `println!` does once `main` has
//! returned (std then makes standard output unbuffered), which is how an
//! event app runs, and C programs with unbuffered output do. Several apps
//! share their runtime's streams, and an app can end (be killed) between
//! two of its writes, so pieces written straight through could be mixed
//! with another app's, or a line cut short and the next program's output
//! joined to it. So what an app writes after its last newline is held:
//! it is written when the line ends, when the app writes to its other
//! output (the order of the two is kept), when more than [`HELD_MAX`]
//! bytes wait, and when the app stops running ([`Lines::flush`]: the end
//! of its turn, a wait, its end).
//!
//! Invariant: every byte is written once, in the order the app wrote it
//! to that output, and bytes of both outputs in the order the app wrote
//! them; between two turns nothing is held.

use crate::host::{Host, Output, WasiResult};
use alloc::vec::Vec;

/// Bytes held after the last newline at most: a longer partial line is
/// written as it is.
pub const HELD_MAX: usize = 4096;

/// What one app wrote to its standard output or error after its last
/// newline.
#[derive(Default)]
pub struct Lines {
    held: Vec<u8>,
    /// Where the held bytes go.
    to: Option<Output>,
}

impl Lines {
    /// Takes `bytes` written to `to`: writes what ends a line (with what
    /// was held before it), holds the rest. Whole lines and long partial
    /// ones go straight from `bytes` when nothing is held.
    pub fn write<H: Host>(&mut self, host: &H, to: Output, bytes: &[u8]) -> WasiResult<()> {
        if self.to != Some(to) {
            self.flush(host)?;
            self.to = Some(to);
        }
        let ends = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        let (lines, tail) = bytes.split_at(ends);
        if !lines.is_empty() {
            if self.held.is_empty() {
                host.write(to, lines)?;
            } else {
                self.held.extend_from_slice(lines);
                self.flush(host)?;
            }
        }
        if self.held.is_empty() && tail.len() > HELD_MAX {
            return host.write(to, tail);
        }
        self.held.extend_from_slice(tail);
        if self.held.len() > HELD_MAX {
            self.flush(host)?;
        }
        Ok(())
    }

    /// Writes what is held.
    pub fn flush<H: Host>(&mut self, host: &H) -> WasiResult<()> {
        match self.to {
            Some(to) if !self.held.is_empty() => {
                let held = core::mem::take(&mut self.held);
                host.write(to, &held)
            }
            _ => Ok(()),
        }
    }
}
