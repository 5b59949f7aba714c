//! Sequential little-endian encoding of the fixed layouts in this crate.
//!
//! Encoders write fields in declaration order, which the `assert_layout!` checks
//! tie to the documented offsets; out-of-range accesses write nothing and read
//! zero (they cannot happen for the fixed sizes used, and the round-trip tests
//! prove it).

pub(crate) struct Writer<'a> {
    buf: &'a mut [u8],
    at: usize,
}

impl<'a> Writer<'a> {
    pub(crate) fn new(buf: &'a mut [u8]) -> Self {
        Self { buf, at: 0 }
    }

    fn put<const N: usize>(&mut self, bytes: [u8; N]) {
        if let Some(dst) = self.buf.get_mut(self.at..self.at + N) {
            dst.copy_from_slice(&bytes);
        }
        self.at += N;
    }

    pub(crate) fn u64(&mut self, v: u64) {
        self.put(v.to_le_bytes());
    }

    pub(crate) fn u32(&mut self, v: u32) {
        self.put(v.to_le_bytes());
    }

    pub(crate) fn bytes<const N: usize>(&mut self, v: &[u8; N]) {
        self.put(*v);
    }
}

pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Self { buf, at: 0 }
    }

    fn take<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        if let Some(src) = self.buf.get(self.at..self.at + N) {
            out.copy_from_slice(src);
        }
        self.at += N;
        out
    }

    pub(crate) fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.take())
    }

    pub(crate) fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.take())
    }
}
