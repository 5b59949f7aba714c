//! Reading and writing the module's linear memory from host functions. Every
//! pointer and length comes from the module: out-of-bounds accesses become
//! `EFAULT`, never a trap of the runtime.

use super::Ctx;
use crate::errno;
use alloc::string::String;
use alloc::vec::Vec;
use wasmi::{Caller, Extern, Memory};

/// The result of a WASI call: `Err` holds the errno.
pub type WasiResult<T> = Result<T, i32>;

/// The module's exported linear memory.
pub fn memory(c: &Caller<'_, Ctx>) -> WasiResult<Memory> {
    c.get_export("memory")
        .and_then(Extern::into_memory)
        .ok_or(errno::FAULT)
}

/// `len` bytes at `at`.
pub fn read(c: &Caller<'_, Ctx>, at: i32, len: i32) -> WasiResult<Vec<u8>> {
    let mut buf = alloc::vec![0u8; len as u32 as usize];
    memory(c)?
        .read(c, at as u32 as usize, &mut buf)
        .map_err(|_| errno::FAULT)?;
    Ok(buf)
}

/// The UTF-8 string of `len` bytes at `at`.
pub fn read_str(c: &Caller<'_, Ctx>, at: i32, len: i32) -> WasiResult<String> {
    String::from_utf8(read(c, at, len)?).map_err(|_| errno::ILSEQ)
}

/// A little-endian `u32` at `at`.
pub fn read_u32(c: &Caller<'_, Ctx>, at: i32) -> WasiResult<u32> {
    let b = read(c, at, 4)?;
    Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// Writes `bytes` at `at`.
pub fn write(c: &mut Caller<'_, Ctx>, at: i32, bytes: &[u8]) -> WasiResult<()> {
    memory(c)?
        .write(c, at as u32 as usize, bytes)
        .map_err(|_| errno::FAULT)
}

/// Writes a little-endian `u32` at `at`.
pub fn write_u32(c: &mut Caller<'_, Ctx>, at: i32, v: u32) -> WasiResult<()> {
    write(c, at, &v.to_le_bytes())
}

/// Writes a little-endian `u64` at `at`.
pub fn write_u64(c: &mut Caller<'_, Ctx>, at: i32, v: u64) -> WasiResult<()> {
    write(c, at, &v.to_le_bytes())
}

/// The `(ptr, len)` pairs of an iovec array of `n` entries at `at`.
pub fn iovecs(c: &Caller<'_, Ctx>, at: i32, n: i32) -> WasiResult<Vec<(i32, i32)>> {
    (0..n.max(0))
        .map(|i| {
            let e = at.wrapping_add(i.wrapping_mul(8));
            Ok((
                read_u32(c, e)? as i32,
                read_u32(c, e.wrapping_add(4))? as i32,
            ))
        })
        .collect()
}

/// The errno of a result, 0 for success.
pub fn errno_of(r: WasiResult<()>) -> i32 {
    r.err().unwrap_or(errno::SUCCESS)
}
