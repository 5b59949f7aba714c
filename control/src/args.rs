//! The program arguments block (PROTOCOL.md §4).
//!
//! The monitor encodes the program's arguments (its name first) into one block and
//! maps it read-only at [`crate::layout::USER_ARGS_ADDR`]; the program's runtime
//! decodes it. Layout, all little-endian `u32`:
//!
//! ```text
//! 0       argc
//! 4       total length of the block in bytes
//! 8       argc entries of { offset: u32, len: u32 }, offsets from the block start
//! 8+8*argc argument bytes (not NUL-terminated, not necessarily UTF-8)
//! ```

/// Why an arguments block could not be built or read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArgsError {
    /// The arguments do not fit in the space given.
    TooLarge,
    /// The block is shorter than its header or entry table says.
    Truncated,
    /// An entry points outside the block.
    OutOfBounds,
}

const HEADER: usize = 8;
const ENTRY: usize = 8;

fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    let s = b.get(off..off.checked_add(4)?)?;
    Some(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

/// Encodes `args` into `out` and returns the block's length.
pub fn encode<A: AsRef<[u8]>>(args: &[A], out: &mut [u8]) -> Result<usize, ArgsError> {
    let table_end = args
        .len()
        .checked_mul(ENTRY)
        .and_then(|t| t.checked_add(HEADER))
        .ok_or(ArgsError::TooLarge)?;
    let total = args
        .iter()
        .try_fold(table_end, |acc, a| acc.checked_add(a.as_ref().len()))
        .ok_or(ArgsError::TooLarge)?;
    if total > out.len() || u32::try_from(total).is_err() {
        return Err(ArgsError::TooLarge);
    }
    out[0..4].copy_from_slice(&(args.len() as u32).to_le_bytes());
    out[4..8].copy_from_slice(&(total as u32).to_le_bytes());
    let mut at = table_end;
    for (i, a) in args.iter().enumerate() {
        let a = a.as_ref();
        let e = HEADER + i * ENTRY;
        out[e..e + 4].copy_from_slice(&(at as u32).to_le_bytes());
        out[e + 4..e + 8].copy_from_slice(&(a.len() as u32).to_le_bytes());
        out[at..at + a.len()].copy_from_slice(a);
        at += a.len();
    }
    Ok(total)
}

/// A validated arguments block.
#[derive(Clone, Copy, Debug)]
pub struct Args<'a> {
    block: &'a [u8],
    argc: usize,
}

impl<'a> Args<'a> {
    /// Validates `block`: the header, the entry table and every entry's range.
    pub fn parse(block: &'a [u8]) -> Result<Self, ArgsError> {
        let argc = u32_at(block, 0).ok_or(ArgsError::Truncated)? as usize;
        let total = u32_at(block, 4).ok_or(ArgsError::Truncated)? as usize;
        let block = block.get(..total).ok_or(ArgsError::Truncated)?;
        let table_end = argc
            .checked_mul(ENTRY)
            .and_then(|t| t.checked_add(HEADER))
            .ok_or(ArgsError::Truncated)?;
        if table_end > block.len() {
            return Err(ArgsError::Truncated);
        }
        let args = Self { block, argc };
        for i in 0..argc {
            args.range(i).ok_or(ArgsError::OutOfBounds)?;
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let mut buf = [0u8; 128];
        let n = encode(&["hello", "", "wörld"], &mut buf).unwrap();
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
    }

    #[test]
    fn encode_refuses_overflowing_output() {
        let mut buf = [0u8; 16];
        assert_eq!(
            encode(&["too long for sixteen"], &mut buf),
            Err(ArgsError::TooLarge)
        );
    }

    #[test]
    fn parse_rejects_bad_blocks() {
        assert_eq!(Args::parse(&[1, 0]).unwrap_err(), ArgsError::Truncated);
        // argc 1000 with a tiny block.
        let mut b = [0u8; 16];
        b[0..4].copy_from_slice(&1000u32.to_le_bytes());
        b[4..8].copy_from_slice(&16u32.to_le_bytes());
        assert_eq!(Args::parse(&b).unwrap_err(), ArgsError::Truncated);
        // One entry pointing past the end.
        b[0..4].copy_from_slice(&1u32.to_le_bytes());
        b[8..12].copy_from_slice(&12u32.to_le_bytes());
        b[12..16].copy_from_slice(&9u32.to_le_bytes());
        assert_eq!(Args::parse(&b).unwrap_err(), ArgsError::OutOfBounds);
        // Entry offset near u32::MAX must not overflow.
        b[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(Args::parse(&b).unwrap_err(), ArgsError::OutOfBounds);
        // Total length longer than the slice.
        b[4..8].copy_from_slice(&17u32.to_le_bytes());
        assert_eq!(Args::parse(&b).unwrap_err(), ArgsError::Truncated);
    }
}
