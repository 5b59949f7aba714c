//! Standard input, output and error, and the print macros.
//!
//! All three are streams open from boot (PROTOCOL.md §8): bytes go straight
//! through shared rings at ring 3, and the monitor is woken only if it sleeps.
//! Each `print!` formats into a small buffer and writes it whole.

use crate::cell::ExclusiveCell;
use crate::stream::{self, Reader, Writer};
use core::fmt::{self, Write};
use embedded_io::{Read as _, Write as _};
use weft_control::streams::slot;

/// Where printed text goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

impl Stream {
    /// Whether weft's own stream this one reaches is a terminal.
    pub fn is_terminal(self) -> bool {
        let info = crate::time::info();
        match self {
            Self::Stdout => info.stdout_terminal,
            Self::Stderr => info.stderr_terminal,
        }
    }
}

static STDOUT: ExclusiveCell<Option<Writer>> = ExclusiveCell::new(None);
static STDERR: ExclusiveCell<Option<Writer>> = ExclusiveCell::new(None);
static STDIN: ExclusiveCell<Option<Reader>> = ExclusiveCell::new(None);

/// Reads standard input into `buf`, blocking until at least one byte is
/// there; `Ok(0)` is end-of-file.
pub fn read_stdin(buf: &mut [u8]) -> Result<usize, StreamError> {
    STDIN
        .with(|r| {
            if r.is_none() {
                *r = stream::stdin_reader();
            }
            let r = r.as_mut().ok_or(StreamError::Closed)?;
            r.read(buf).map_err(|_| StreamError::Closed)
        })
        .unwrap_or(Err(StreamError::Busy))
}

/// Why bytes could not be written or read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamError {
    /// The stream is closed or broken (the monitor stopped reading it, or its
    /// ring was found corrupt).
    Closed,
    /// The stream is in use further up the call stack (a print inside a
    /// print).
    Busy,
}

impl Stream {
    fn cell(self) -> (&'static ExclusiveCell<Option<Writer>>, u64) {
        match self {
            Stream::Stdout => (&STDOUT, slot::STDOUT),
            Stream::Stderr => (&STDERR, slot::STDERR),
        }
    }

    /// Writes all of `bytes`, blocking while the ring is full.
    pub fn write_all(self, bytes: &[u8]) -> Result<(), StreamError> {
        let (cell, slot) = self.cell();
        cell.with(|w| {
            if w.is_none() {
                *w = stream::writer(slot);
            }
            let w = w.as_mut().ok_or(StreamError::Closed)?;
            w.write_all(bytes).map_err(|_| StreamError::Closed)
        })
        .unwrap_or(Err(StreamError::Busy))
    }
}

struct Buffered {
    stream: Stream,
    buf: [u8; 512],
    len: usize,
}

impl Buffered {
    fn flush(&mut self) {
        if self.len > 0 {
            let _ = self.stream.write_all(&self.buf[..self.len]);
            self.len = 0;
        }
    }
}

impl Write for Buffered {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut bytes = s.as_bytes();
        while !bytes.is_empty() {
            if self.len == self.buf.len() {
                self.flush();
            }
            let n = bytes.len().min(self.buf.len() - self.len);
            self.buf[self.len..self.len + n].copy_from_slice(&bytes[..n]);
            self.len += n;
            bytes = &bytes[n..];
        }
        Ok(())
    }
}

#[doc(hidden)]
pub fn _print(stream: Stream, args: fmt::Arguments<'_>) {
    let mut out = Buffered {
        stream,
        buf: [0; 512],
        len: 0,
    };
    let _ = out.write_fmt(args);
    out.flush();
}

/// Prints to standard output.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => { $crate::_print($crate::Stream::Stdout, format_args!($($arg)*)) };
}

/// Prints a line to standard output.
#[macro_export]
macro_rules! println {
    () => { $crate::print!("\n") };
    ($($arg:tt)*) => { $crate::_print($crate::Stream::Stdout, format_args!("{}\n", format_args!($($arg)*))) };
}

/// Prints to standard error.
#[macro_export]
macro_rules! eprint {
    ($($arg:tt)*) => { $crate::_print($crate::Stream::Stderr, format_args!($($arg)*)) };
}

/// Prints a line to standard error.
#[macro_export]
macro_rules! eprintln {
    () => { $crate::eprint!("\n") };
    ($($arg:tt)*) => { $crate::_print($crate::Stream::Stderr, format_args!("{}\n", format_args!($($arg)*))) };
}
