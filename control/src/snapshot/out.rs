//! Where the section encoders put their bytes: the writer's sink (through
//! the checksum), or a counter that only measures them, so a section's
//! planned length and its bytes come from the same code.

/// The output of an encoder.
pub(super) type Out<'o> = dyn FnMut(&[u8]) + 'o;

/// How many bytes `encode` puts out.
pub(super) fn measure(encode: impl FnOnce(&mut Out<'_>)) -> u64 {
    let mut n = 0u64;
    encode(&mut |b: &[u8]| n = n.saturating_add(b.len() as u64));
    n
}
