//! Standard output and error, and the print macros.
//!
//! Each `print!` formats into a small buffer and writes it with as few `write`
//! syscalls as possible (one, unless the text is longer than the buffer).

use crate::syscall;
use core::fmt::{self, Write};

/// Where printed text goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

impl Stream {
    fn fd(self) -> u64 {
        match self {
            Stream::Stdout => weft_abi::FD_STDOUT,
            Stream::Stderr => weft_abi::FD_STDERR,
        }
    }

    /// Writes all of `bytes`.
    pub fn write_all(self, bytes: &[u8]) -> Result<(), weft_abi::ErrorCode> {
        syscall::write(self.fd(), bytes).map(drop)
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
