//! Reading a binary body front to back (an invitation, a pairing message):
//! every read names the field it is for, so a body cut short is refused with
//! an error saying where.

/// A body that ended before a field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field} needs {needed} bytes, {left} are left")]
pub struct Truncated {
    pub field: &'static str,
    pub needed: usize,
    pub left: usize,
}

/// What is left of a body.
pub struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    pub fn new(body: &'a [u8]) -> Self {
        Reader(body)
    }

    /// The next `N` bytes.
    pub fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], Truncated> {
        let (head, rest) = self.0.split_first_chunk::<N>().ok_or(Truncated {
            field,
            needed: N,
            left: self.0.len(),
        })?;
        self.0 = rest;
        Ok(*head)
    }

    /// The next `len` bytes.
    pub fn bytes(&mut self, field: &'static str, len: usize) -> Result<&'a [u8], Truncated> {
        let (head, rest) = self.0.split_at_checked(len).ok_or(Truncated {
            field,
            needed: len,
            left: self.0.len(),
        })?;
        self.0 = rest;
        Ok(head)
    }

    /// How many bytes are left.
    pub fn left(&self) -> usize {
        self.0.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_name_the_field_that_was_cut_short() {
        let mut r = Reader::new(&[1, 2, 3]);
        assert_eq!(r.array::<2>("head"), Ok([1, 2]));
        assert_eq!(
            r.bytes("tail", 2),
            Err(Truncated {
                field: "tail",
                needed: 2,
                left: 1
            })
        );
        assert_eq!(r.bytes("tail", 1), Ok(&[3][..]));
        assert_eq!(r.left(), 0);
    }
}
