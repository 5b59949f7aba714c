//! Reading a snapshot's fields in order, with each field's offset from the
//! start of the snapshot kept for errors.

use super::SnapshotError;

/// The unread part of a section (or of the body), and its offset in the
/// snapshot. Reads past its end fail with [`SnapshotError::Overrun`]
/// naming the field; nothing is read past it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Cursor<'a> {
    rest: &'a [u8],
    at: u64,
}

impl<'a> Cursor<'a> {
    /// A cursor over `bytes`, which start at offset `at` of the snapshot.
    pub(super) const fn new(bytes: &'a [u8], at: u64) -> Self {
        Self { rest: bytes, at }
    }

    /// The offset of the next unread byte.
    pub(super) const fn at(&self) -> u64 {
        self.at
    }

    /// Whether every byte was read.
    pub(super) const fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    /// Bytes not read yet.
    pub(super) const fn remaining(&self) -> usize {
        self.rest.len()
    }

    /// The next `n` bytes, the field `what`.
    pub(super) fn take(&mut self, n: u64, what: &'static str) -> Result<&'a [u8], SnapshotError> {
        let overrun = SnapshotError::Overrun { what, at: self.at };
        let n = usize::try_from(n).map_err(|_| overrun)?;
        let (head, tail) = self.rest.split_at_checked(n).ok_or(overrun)?;
        self.rest = tail;
        self.at += n as u64;
        Ok(head)
    }

    /// The next `n` bytes as a cursor of their own.
    pub(super) fn split(&mut self, n: u64, what: &'static str) -> Result<Self, SnapshotError> {
        let at = self.at;
        self.take(n, what).map(|bytes| Self::new(bytes, at))
    }

    /// The next `N` bytes, the field `what`.
    pub(super) fn array<const N: usize>(
        &mut self,
        what: &'static str,
    ) -> Result<&'a [u8; N], SnapshotError> {
        let (head, tail) = self
            .rest
            .split_first_chunk::<N>()
            .ok_or(SnapshotError::Overrun { what, at: self.at })?;
        self.rest = tail;
        self.at += N as u64;
        Ok(head)
    }

    /// The next little-endian `u16`.
    pub(super) fn u16(&mut self, what: &'static str) -> Result<u16, SnapshotError> {
        self.array(what).map(|b| u16::from_le_bytes(*b))
    }

    /// The next little-endian `u32`.
    pub(super) fn u32(&mut self, what: &'static str) -> Result<u32, SnapshotError> {
        self.array(what).map(|b| u32::from_le_bytes(*b))
    }

    /// The next little-endian `u64`.
    pub(super) fn u64(&mut self, what: &'static str) -> Result<u64, SnapshotError> {
        self.array(what).map(|b| u64::from_le_bytes(*b))
    }

    /// Succeeds only if every byte was read.
    pub(super) fn finish(self) -> Result<(), SnapshotError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(SnapshotError::Trailing { at: self.at })
        }
    }
}
