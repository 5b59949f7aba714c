//! The program arguments block (PROTOCOL.md §4): the program's arguments
//! and its environment.
//!
//! The monitor encodes the program's arguments (its name first) and its
//! environment variables into one block and maps it read-only at
//! [`crate::layout::USER_ARGS_ADDR`]; the program's runtime decodes it.
//! Layout, all little-endian `u32`:
//!
//! ```text
//! 0        argc
//! 4        total length of the block in bytes
//! 8        envc
//! 12       reserved, zero
//! 16       argc + envc entries of { offset: u32, len: u32 }, offsets from
//!          the block start: the arguments', then the variables'
//! 16+8*(argc+envc)  the bytes (not NUL-terminated, not necessarily UTF-8)
//! ```
//!
//! A variable's bytes are `KEY=VALUE`: KEY is not empty and holds neither
//! `=` nor NUL, VALUE holds no NUL ([`check_variable`]). Invariant: a block
//! [`Args::parse`] accepts has every entry inside the block and every
//! variable well formed.

use core::fmt;

/// Why an arguments block could not be built or read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArgsError {
    /// The arguments do not fit in the space given.
    TooLarge,
    /// The block is shorter than its header or entry table says.
    Truncated,
    /// An entry points outside the block.
    OutOfBounds,
    /// An environment variable is not `KEY=VALUE` as [`check_variable`]
    /// requires.
    BadVariable(VariableError),
}

impl fmt::Display for ArgsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLarge => write!(
                f,
                "the arguments and environment exceed the {} bytes of their block",
                crate::layout::USER_ARGS_MAX
            ),
            Self::Truncated => f.write_str("the block is shorter than its header says"),
            Self::OutOfBounds => f.write_str("an entry lies outside the block"),
            Self::BadVariable(e) => write!(f, "{e}"),
        }
    }
}

/// What is wrong with an environment variable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VariableError {
    /// The name is empty.
    EmptyName,
    /// The name holds `=`.
    EqualsInName,
    /// The name or the value holds a NUL byte.
    Nul,
    /// A block's entry holds no `=`.
    NotKeyValue,
}

impl fmt::Display for VariableError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::EmptyName => "the variable's name is empty",
            Self::EqualsInName => "the variable's name holds `=`",
            Self::Nul => "the variable holds a NUL byte",
            Self::NotKeyValue => "the variable is not KEY=VALUE",
        })
    }
}

const HEADER: usize = 16;
const ENTRY: usize = 8;

fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    let s = b.get(off..off.checked_add(4)?)?;
    Some(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

fn put_u32(out: &mut [u8], off: usize, v: usize) {
    out[off..off + 4].copy_from_slice(&(v as u32).to_le_bytes());
}

/// Whether `key` and `value` make a variable the block may carry: the name
/// not empty, without `=` or NUL; the value without NUL.
pub fn check_variable(key: &[u8], value: &[u8]) -> Result<(), VariableError> {
    if key.is_empty() {
        Err(VariableError::EmptyName)
    } else if key.contains(&b'=') {
        Err(VariableError::EqualsInName)
    } else if key.contains(&0) || value.contains(&0) {
        Err(VariableError::Nul)
    } else {
        Ok(())
    }
}

/// The length of the block holding `args` and `env`, if it can be
/// encoded at all (its offsets are `u32`).
pub fn block_len<A: AsRef<[u8]>, K: AsRef<[u8]>, V: AsRef<[u8]>>(
    args: &[A],
    env: &[(K, V)],
) -> Option<usize> {
    let table_end = args
        .len()
        .checked_add(env.len())?
        .checked_mul(ENTRY)?
        .checked_add(HEADER)?;
    let arg_bytes = args
        .iter()
        .try_fold(0usize, |acc, a| acc.checked_add(a.as_ref().len()))?;
    let env_bytes = env.iter().try_fold(0usize, |acc, (k, v)| {
        acc.checked_add(k.as_ref().len())?
            .checked_add(1)?
            .checked_add(v.as_ref().len())
    })?;
    let total = table_end.checked_add(arg_bytes)?.checked_add(env_bytes)?;
    u32::try_from(total).ok().map(|_| total)
}

/// Encodes `args` and no environment into `out`; returns the block's length.
pub fn encode<A: AsRef<[u8]>>(args: &[A], out: &mut [u8]) -> Result<usize, ArgsError> {
    encode_with_env::<A, &[u8], &[u8]>(args, &[], out)
}

/// Encodes `args` and the variables `env` (each `(KEY, VALUE)`, checked
/// with [`check_variable`]) into `out`; returns the block's length.
pub fn encode_with_env<A: AsRef<[u8]>, K: AsRef<[u8]>, V: AsRef<[u8]>>(
    args: &[A],
    env: &[(K, V)],
    out: &mut [u8],
) -> Result<usize, ArgsError> {
    for (k, v) in env {
        check_variable(k.as_ref(), v.as_ref()).map_err(ArgsError::BadVariable)?;
    }
    let total = block_len(args, env).ok_or(ArgsError::TooLarge)?;
    if total > out.len() {
        return Err(ArgsError::TooLarge);
    }
    put_u32(out, 0, args.len());
    put_u32(out, 4, total);
    put_u32(out, 8, env.len());
    put_u32(out, 12, 0);
    let mut entry = HEADER;
    let mut at = HEADER + (args.len() + env.len()) * ENTRY;
    let mut put = |parts: &[&[u8]]| {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        put_u32(out, entry, at);
        put_u32(out, entry + 4, len);
        for p in parts {
            out[at..at + p.len()].copy_from_slice(p);
            at += p.len();
        }
        entry += ENTRY;
    };
    for a in args {
        put(&[a.as_ref()]);
    }
    for (k, v) in env {
        put(&[k.as_ref(), b"=", v.as_ref()]);
    }
    Ok(total)
}

/// A validated arguments block.
#[derive(Clone, Copy, Debug)]
pub struct Args<'a> {
    block: &'a [u8],
    argc: usize,
    envc: usize,
}

/// `KEY=VALUE` split at its first `=`, if it is a variable the block may
/// carry.
fn split_variable(entry: &[u8]) -> Result<(&[u8], &[u8]), VariableError> {
    let eq = entry
        .iter()
        .position(|b| *b == b'=')
        .ok_or(VariableError::NotKeyValue)?;
    let (key, value) = (&entry[..eq], &entry[eq + 1..]);
    check_variable(key, value)?;
    Ok((key, value))
}

impl<'a> Args<'a> {
    /// Validates `block`: the header, the entry table, every entry's range
    /// and every variable's form.
    pub fn parse(block: &'a [u8]) -> Result<Self, ArgsError> {
        let argc = u32_at(block, 0).ok_or(ArgsError::Truncated)? as usize;
        let total = u32_at(block, 4).ok_or(ArgsError::Truncated)? as usize;
        let envc = u32_at(block, 8).ok_or(ArgsError::Truncated)? as usize;
        let block = block.get(..total).ok_or(ArgsError::Truncated)?;
        let table_end = argc
            .checked_add(envc)
            .and_then(|n| n.checked_mul(ENTRY))
            .and_then(|t| t.checked_add(HEADER))
            .ok_or(ArgsError::Truncated)?;
        if table_end > block.len() {
            return Err(ArgsError::Truncated);
        }
        let args = Self { block, argc, envc };
        for i in 0..argc + envc {
            let entry = args.range(i).ok_or(ArgsError::OutOfBounds)?;
            if i >= argc {
                split_variable(entry).map_err(ArgsError::BadVariable)?;
            }
        }
        Ok(args)
    }

    fn range(&self, i: usize) -> Option<&'a [u8]> {
        let e = HEADER + i * ENTRY;
        let off = u32_at(self.block, e)? as usize;
        let len = u32_at(self.block, e + 4)? as usize;
        self.block.get(off..off.checked_add(len)?)
    }

    /// Number of arguments (the program name included).
    pub fn len(&self) -> usize {
        self.argc
    }

    /// True if there are no arguments at all.
    pub fn is_empty(&self) -> bool {
        self.argc == 0
    }

    /// Argument `i`, if there is one.
    pub fn get(&self, i: usize) -> Option<&'a [u8]> {
        if i < self.argc { self.range(i) } else { None }
    }

    /// All arguments in order.
    pub fn iter(&self) -> impl Iterator<Item = &'a [u8]> + '_ {
        (0..self.argc).filter_map(|i| self.range(i))
    }

    /// The environment's variables in order, each `KEY=VALUE`.
    pub fn env(&self) -> impl Iterator<Item = &'a [u8]> + use<'a> {
        let this = *self;
        (this.argc..this.argc + this.envc).filter_map(move |i| this.range(i))
    }

    /// The environment's variables in order, each `(KEY, VALUE)`.
    pub fn vars(&self) -> impl Iterator<Item = (&'a [u8], &'a [u8])> + use<'a> {
        self.env().filter_map(|e| split_variable(e).ok())
    }

    /// The value of the variable `key`, if the environment has it.
    pub fn var(&self, key: &[u8]) -> Option<&'a [u8]> {
        self.vars().find(|(k, _)| *k == key).map(|(_, v)| v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NO_ENV: &[(&[u8], &[u8])] = &[];

    #[test]
    fn round_trip() {
        let mut buf = [0u8; 128];
        let n = encode(&["hello", "", "wörld"], &mut buf).unwrap();
        assert_eq!(Some(n), block_len(&["hello", "", "wörld"], NO_ENV));
        let args = Args::parse(&buf[..n]).unwrap();
        assert_eq!(args.len(), 3);
        let got: [&[u8]; 3] = [
            args.get(0).unwrap(),
            args.get(1).unwrap(),
            args.get(2).unwrap(),
        ];
        assert_eq!(got, [b"hello".as_slice(), b"", "wörld".as_bytes()]);
        assert_eq!(args.get(3), None);
        assert_eq!(args.iter().count(), 3);
        assert_eq!(args.env().count(), 0);
    }

    #[test]
    fn the_environment_follows_the_arguments() {
        let mut buf = [0u8; 128];
        let env = [("HOME", "/root"), ("EMPTY", ""), ("EQ", "a=b")];
        let n = encode_with_env(&["prog", "x"], &env, &mut buf).unwrap();
        assert_eq!(Some(n), block_len(&["prog", "x"], &env));
        let args = Args::parse(&buf[..n]).unwrap();
        assert_eq!((args.len(), args.get(2)), (2, None));
        let listed: [&[u8]; 3] = [b"HOME=/root", b"EMPTY=", b"EQ=a=b"];
        assert!(args.env().eq(listed));
        assert_eq!(args.var(b"EQ"), Some(&b"a=b"[..]));
        assert_eq!(args.var(b"EMPTY"), Some(&b""[..]));
        assert_eq!(args.var(b"NONE"), None);
        assert_eq!(args.vars().count(), 3);
    }

    #[test]
    fn bad_variables_are_refused_on_both_sides() {
        let mut buf = [0u8; 128];
        for (k, v, why) in [
            ("", "x", VariableError::EmptyName),
            ("A=B", "x", VariableError::EqualsInName),
            ("A\0", "x", VariableError::Nul),
            ("A", "x\0", VariableError::Nul),
        ] {
            assert_eq!(
                encode_with_env(&["p"], &[(k, v)], &mut buf),
                Err(ArgsError::BadVariable(why))
            );
        }
        // A block whose variable lacks `=`, or has a NUL in its value.
        for (bad, why) in [
            ("NOEQUALS", VariableError::NotKeyValue),
            ("=x", VariableError::EmptyName),
            ("A=\0", VariableError::Nul),
        ] {
            let n = encode_with_env(&["p"], &[("K", "v")], &mut buf).unwrap();
            let at = n - 3;
            let mut block = buf[..at].to_vec();
            block.extend_from_slice(bad.as_bytes());
            let total = block.len();
            block[4..8].copy_from_slice(&(total as u32).to_le_bytes());
            block[HEADER + ENTRY + 4..HEADER + 2 * ENTRY]
                .copy_from_slice(&(bad.len() as u32).to_le_bytes());
            assert_eq!(
                Args::parse(&block).unwrap_err(),
                ArgsError::BadVariable(why),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn encode_refuses_overflowing_output() {
        let mut buf = [0u8; 24];
        assert_eq!(
            encode(&["too long for twenty-four"], &mut buf),
            Err(ArgsError::TooLarge)
        );
        assert_eq!(
            encode_with_env(&["p"], &[("KEY", "a value too long")], &mut buf),
            Err(ArgsError::TooLarge)
        );
    }

    #[test]
    fn parse_rejects_bad_blocks() {
        assert_eq!(Args::parse(&[1, 0]).unwrap_err(), ArgsError::Truncated);
        // argc 1000 with a tiny block.
        let mut b = [0u8; 32];
        b[0..4].copy_from_slice(&1000u32.to_le_bytes());
        b[4..8].copy_from_slice(&32u32.to_le_bytes());
        assert_eq!(Args::parse(&b).unwrap_err(), ArgsError::Truncated);
        // envc near u32::MAX must not overflow.
        b[0..4].copy_from_slice(&u32::MAX.to_le_bytes());
        b[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(Args::parse(&b).unwrap_err(), ArgsError::Truncated);
        // One entry pointing past the end.
        b[0..4].copy_from_slice(&1u32.to_le_bytes());
        b[8..12].copy_from_slice(&0u32.to_le_bytes());
        b[16..20].copy_from_slice(&28u32.to_le_bytes());
        b[20..24].copy_from_slice(&5u32.to_le_bytes());
        assert_eq!(Args::parse(&b).unwrap_err(), ArgsError::OutOfBounds);
        // Entry offset near u32::MAX must not overflow.
        b[16..20].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(Args::parse(&b).unwrap_err(), ArgsError::OutOfBounds);
        // Total length longer than the slice.
        b[4..8].copy_from_slice(&33u32.to_le_bytes());
        assert_eq!(Args::parse(&b).unwrap_err(), ArgsError::Truncated);
    }
}
