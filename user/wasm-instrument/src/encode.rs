//! The few pieces of the Wasm binary format this crate writes: LEB128
//! integers, section headers and the instruction that records the current
//! function.

use alloc::vec::Vec;

use crate::Error;

/// Appends `value` as unsigned LEB128 (1 to 5 bytes).
pub(crate) fn u32_leb(out: &mut Vec<u8>, mut value: u32) {
    loop {
        let byte = (value & 0x7F) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// Appends a `usize` length as unsigned LEB128, or fails if it does not fit
/// the format's `u32`.
pub(crate) fn len_leb(out: &mut Vec<u8>, len: usize) -> Result<(), Error> {
    u32_leb(out, u32::try_from(len).map_err(|_| Error::TooLarge)?);
    Ok(())
}

/// `i32.const <function> ; global.set <global>`: the instructions that
/// record `function` as the one running. At most 12 bytes.
#[derive(Clone, Copy)]
pub(crate) struct SetCurrent {
    bytes: [u8; 12],
    len: usize,
}

impl SetCurrent {
    pub(crate) fn new(function: u32, global: u32) -> Self {
        let mut bytes = [0; 12];
        let mut len = 0;
        let mut push = |byte: u8| {
            bytes[len] = byte;
            len += 1;
        };
        push(0x41); // i32.const
        // Signed LEB128 of the index as an i32 (indices are below 2^31: the
        // format caps a module's functions far lower).
        let mut value = function as i32;
        loop {
            let byte = (value & 0x7F) as u8;
            value >>= 7;
            let done = (value == 0 && byte & 0x40 == 0) || (value == -1 && byte & 0x40 != 0);
            if done {
                push(byte);
                break;
            }
            push(byte | 0x80);
        }
        push(0x24); // global.set
        let mut value = global;
        loop {
            let byte = (value & 0x7F) as u8;
            value >>= 7;
            if value == 0 {
                push(byte);
                break;
            }
            push(byte | 0x80);
        }
        Self { bytes, len }
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// `global.get <g> ; i64.const <1 << bit> ; i64.or ; global.set <g>`: the
/// instructions that set bit `bit` (0 to 63) of the `i64` global `g`, which
/// note that a segment was dropped. At most 24 bytes.
#[derive(Clone, Copy)]
pub(crate) struct NoteDrop {
    bytes: [u8; 24],
    len: usize,
}

impl NoteDrop {
    pub(crate) fn new(global: u32, bit: u32) -> Self {
        // Staged on the stack: no allocation per instruction.
        let mut bytes = [0; 24];
        let mut len = 0;
        let mut push = |byte: u8| {
            if let Some(b) = bytes.get_mut(len) {
                *b = byte;
                len += 1;
            }
        };
        let mut staged = [0u8; 10];
        push(0x23); // global.get
        let n = u32_leb_into(&mut staged, global);
        staged[..n].iter().for_each(|&b| push(b));
        push(0x42); // i64.const
        let n = i64_leb_into(&mut staged, 1i64.wrapping_shl(bit));
        staged[..n].iter().for_each(|&b| push(b));
        push(0x84); // i64.or
        push(0x24); // global.set
        let n = u32_leb_into(&mut staged, global);
        staged[..n].iter().for_each(|&b| push(b));
        Self { bytes, len }
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// Writes `value` as unsigned LEB128 into `out`; returns its length (1 to
/// 5).
fn u32_leb_into(out: &mut [u8; 10], mut value: u32) -> usize {
    let mut len = 0;
    for slot in out.iter_mut() {
        let byte = (value & 0x7F) as u8;
        value >>= 7;
        len += 1;
        if value == 0 {
            *slot = byte;
            break;
        }
        *slot = byte | 0x80;
    }
    len
}

/// Writes `value` as signed LEB128 into `out`; returns its length (1 to
/// 10).
fn i64_leb_into(out: &mut [u8; 10], mut value: i64) -> usize {
    let mut len = 0;
    for slot in out.iter_mut() {
        let byte = (value & 0x7F) as u8;
        value >>= 7;
        len += 1;
        let done = (value == 0 && byte & 0x40 == 0) || (value == -1 && byte & 0x40 != 0);
        if done {
            *slot = byte;
            break;
        }
        *slot = byte | 0x80;
    }
    len
}

/// Writes a section whose content `content` appends to `out`.
pub(crate) fn section(
    out: &mut Vec<u8>,
    id: u8,
    content: impl FnOnce(&mut Vec<u8>) -> Result<(), Error>,
) -> Result<(), Error> {
    let start = section_start(out, id);
    content(out)?;
    section_end(out, start)
}

/// Starts a section: writes its id and returns where its content starts.
/// The content goes straight into `out`; [`section_end`] then splices its
/// size in before it (one move of the content, no second buffer).
pub(crate) fn section_start(out: &mut Vec<u8>, id: u8) -> usize {
    out.push(id);
    out.len()
}

/// Ends the section whose content started at `start` (from
/// [`section_start`]).
pub(crate) fn section_end(out: &mut Vec<u8>, start: usize) -> Result<(), Error> {
    let mut size = Vec::with_capacity(5);
    len_leb(&mut size, out.len().saturating_sub(start))?;
    out.splice(start..start, size);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leb(value: u32) -> Vec<u8> {
        let mut out = Vec::new();
        u32_leb(&mut out, value);
        out
    }

    #[test]
    fn unsigned_leb128() {
        assert_eq!(leb(0), [0]);
        assert_eq!(leb(127), [0x7F]);
        assert_eq!(leb(128), [0x80, 0x01]);
        assert_eq!(leb(624_485), [0xE5, 0x8E, 0x26]);
        assert_eq!(leb(u32::MAX), [0xFF, 0xFF, 0xFF, 0xFF, 0x0F]);
    }

    #[test]
    fn set_current_encodes_signed_index_and_unsigned_global() {
        // 63 fits one signed byte; 64 needs two (bit 6 is the sign bit).
        assert_eq!(SetCurrent::new(63, 0).as_bytes(), [0x41, 0x3F, 0x24, 0x00]);
        assert_eq!(
            SetCurrent::new(64, 128).as_bytes(),
            [0x41, 0xC0, 0x00, 0x24, 0x80, 0x01]
        );
        let widest = SetCurrent::new(i32::MAX as u32, u32::MAX);
        assert_eq!(widest.as_bytes().len(), 12);
    }

    #[test]
    fn note_drop_sets_one_bit() {
        // Bit 0: i64.const 1; bit 63: i64.const i64::MIN, ten bytes.
        assert_eq!(
            NoteDrop::new(3, 0).as_bytes(),
            [0x23, 3, 0x42, 1, 0x84, 0x24, 3]
        );
        let widest = NoteDrop::new(u32::MAX, 63);
        assert_eq!(widest.as_bytes().len(), 1 + 5 + 1 + 10 + 1 + 1 + 5);
        let mut min = [0; 10];
        assert_eq!(i64_leb_into(&mut min, i64::MIN), 10);
        assert_eq!(
            min,
            [0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x7F]
        );
    }

    #[test]
    fn section_size_is_spliced_before_content() {
        let mut out = alloc::vec![0xAA];
        section(&mut out, 6, |out| {
            out.extend_from_slice(&[1; 200]);
            Ok(())
        })
        .unwrap();
        assert_eq!(out[..4], [0xAA, 6, 0xC8, 0x01]);
        assert_eq!(out.len(), 4 + 200);
    }
}
