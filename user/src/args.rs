//! The program's arguments (PROTOCOL.md §4), read from the block the monitor
//! mapped read-only.

use weft_control::args;
use weft_control::layout::{USER_ARGS_ADDR, USER_ARGS_MAX};

/// The program's arguments; argument 0 is the program's name.
#[derive(Clone, Copy, Debug)]
pub struct Args<'a> {
    inner: Option<args::Args<'a>>,
}

impl Args<'static> {
    pub(crate) fn from_block(addr: u64, len: u64) -> Self {
        if addr != USER_ARGS_ADDR || len > USER_ARGS_MAX {
            return Self { inner: None };
        }
        // SAFETY: the monitor maps `len` (≤ USER_ARGS_MAX) bytes read-only at
        // USER_ARGS_ADDR for the program's lifetime and nothing writes them.
        let block = unsafe { core::slice::from_raw_parts(addr as *const u8, len as usize) };
        Self {
            inner: args::Args::parse(block).ok(),
        }
    }
}

impl<'a> Args<'a> {
    /// Number of arguments, the program name included.
    pub fn len(&self) -> usize {
        self.inner.map_or(0, |a| a.len())
    }

    /// True if there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Argument `i` as UTF-8, if present and valid.
    pub fn get(&self, i: usize) -> Option<&'a str> {
        self.inner
            .and_then(|a| a.get(i))
            .and_then(|b| core::str::from_utf8(b).ok())
    }

    /// Argument `i` as bytes.
    pub fn get_bytes(&self, i: usize) -> Option<&'a [u8]> {
        self.inner.and_then(|a| a.get(i))
    }

    /// All arguments as UTF-8 (invalid ones as "").
    pub fn iter(&self) -> impl Iterator<Item = &'a str> + '_ {
        (0..self.len()).map(|i| self.get(i).unwrap_or(""))
    }
}
