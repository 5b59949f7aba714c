//! The program's arguments and environment (PROTOCOL.md §4), read from the
//! block the monitor mapped read-only.

use weft_control::args;
use weft_control::layout::{USER_ARGS_ADDR, USER_ARGS_MAX};

/// The program's arguments (argument 0 is the program's name) and its
/// environment variables.
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

    /// The value of the environment variable `key` (`weft run --env`) as
    /// UTF-8, if it is set and valid.
    pub fn var(&self, key: &str) -> Option<&'a str> {
        self.var_bytes(key.as_bytes())
            .and_then(|v| core::str::from_utf8(v).ok())
    }

    /// The value of the environment variable `key` as bytes, if it is set.
    pub fn var_bytes(&self, key: &[u8]) -> Option<&'a [u8]> {
        self.inner.and_then(|a| a.var(key))
    }

    /// Every environment variable as `(KEY, VALUE)` bytes, in the order
    /// given.
    pub fn vars(&self) -> impl Iterator<Item = (&'a [u8], &'a [u8])> + '_ {
        self.inner.into_iter().flat_map(|a| a.vars())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_block_anywhere_but_its_fixed_place_is_not_read() {
        // Neither call dereferences the address: it is refused first.
        for (addr, len) in [
            (0x1000, 16),
            (USER_ARGS_ADDR + 8, 16),
            (USER_ARGS_ADDR, USER_ARGS_MAX + 1),
        ] {
            let a = Args::from_block(addr, len);
            assert!(a.is_empty());
            assert_eq!((a.len(), a.get(0), a.iter().count()), (0, None, 0));
        }
    }

    #[test]
    fn arguments_read_as_text_or_bytes() {
        let mut block = [0u8; 256];
        let n = args::encode(&[&b"prog"[..], b"two words", b"\xff\xfe"], &mut block).unwrap();
        let a = Args {
            inner: args::Args::parse(&block[..n]).ok(),
        };
        assert_eq!(a.len(), 3);
        assert_eq!((a.get(0), a.get(1)), (Some("prog"), Some("two words")));
        assert_eq!((a.get(2), a.get_bytes(2)), (None, Some(&b"\xff\xfe"[..])));
        assert_eq!(a.iter().collect::<Vec<_>>(), ["prog", "two words", ""]);
        assert_eq!(a.get(3), None);
        assert_eq!((a.var("HOME"), a.vars().count()), (None, 0));
    }

    #[test]
    fn the_environment_reads_as_text_or_bytes() {
        let mut block = [0u8; 256];
        let env = [(&b"HOME"[..], &b"/root"[..]), (&b"RAW"[..], &b"\xff"[..])];
        let n = args::encode_with_env(&["prog"], &env, &mut block).unwrap();
        let a = Args {
            inner: args::Args::parse(&block[..n]).ok(),
        };
        assert_eq!(
            (a.len(), a.var("HOME"), a.var("NONE")),
            (1, Some("/root"), None)
        );
        assert_eq!(
            (a.var("RAW"), a.var_bytes(b"RAW")),
            (None, Some(&b"\xff"[..]))
        );
        assert!(a.vars().eq(env));
    }
}
