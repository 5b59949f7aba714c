//! An app's linear memory and context as host functions see them. Every
//! pointer and length comes from the app: out-of-bounds accesses become
//! `EFAULT`, never a trap of the runtime.

use crate::app::{Ctx, Interp};
use crate::host::{Host, WasiResult};
use alloc::string::String;
use alloc::vec::Vec;
use core::ops::Range;
use wasmi::{AsContextMut, Caller, Extern};
use weft_control::app::errno;

/// The errno of a result, 0 for success.
pub fn errno_of(r: WasiResult<()>) -> i32 {
    r.err().unwrap_or(errno::SUCCESS)
}

/// An app's memory and its context, borrowed together for one host call.
pub struct Env<'a, H: Host, X = Interp<H>> {
    pub mem: &'a mut [u8],
    pub ctx: &'a mut Ctx<H, X>,
}

/// Runs `f` on the calling app's memory and context; `EFAULT` if the app
/// exports no memory.
pub fn with_env<H: Host, R>(
    c: &mut Caller<'_, Ctx<H>>,
    f: impl FnOnce(&mut Env<'_, H>) -> WasiResult<R>,
) -> WasiResult<R> {
    let memory = match c.data().x.memory {
        Some(m) => m,
        None => {
            let m = c
                .get_export("memory")
                .and_then(Extern::into_memory)
                .ok_or(errno::FAULT)?;
            c.data_mut().x.memory = Some(m);
            m
        }
    };
    let (mem, ctx) = memory.data_and_store_mut(c.as_context_mut());
    f(&mut Env { mem, ctx })
}

impl<H: Host, X> Env<'_, H, X> {
    fn range(&self, at: i32, len: usize) -> WasiResult<Range<usize>> {
        let start = at as u32 as usize;
        let end = start.checked_add(len).ok_or(errno::FAULT)?;
        if end > self.mem.len() {
            return Err(errno::FAULT);
        }
        Ok(start..end)
    }

    /// The `len` bytes at `at`.
    pub fn bytes(&self, at: i32, len: i32) -> WasiResult<&[u8]> {
        let r = self.range(at, len as u32 as usize)?;
        Ok(&self.mem[r])
    }

    /// The UTF-8 string of `len` bytes at `at`.
    pub fn read_str(&self, at: i32, len: i32) -> WasiResult<String> {
        let b = self.bytes(at, len)?;
        core::str::from_utf8(b)
            .map(String::from)
            .map_err(|_| errno::ILSEQ)
    }

    /// A little-endian `u32` at `at`.
    pub fn read_u32(&self, at: i32) -> WasiResult<u32> {
        let b = self.bytes(at, 4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// Writes `bytes` at `at`.
    pub fn write(&mut self, at: i32, bytes: &[u8]) -> WasiResult<()> {
        let r = self.range(at, bytes.len())?;
        self.mem[r].copy_from_slice(bytes);
        Ok(())
    }

    /// Writes a little-endian `u32` at `at`.
    pub fn write_u32(&mut self, at: i32, v: u32) -> WasiResult<()> {
        self.write(at, &v.to_le_bytes())
    }

    /// Writes a little-endian `u64` at `at`.
    pub fn write_u64(&mut self, at: i32, v: u64) -> WasiResult<()> {
        self.write(at, &v.to_le_bytes())
    }

    /// The `(ptr, len)` pairs of an iovec array of `n` entries at `at`.
    pub fn iovecs(&self, at: i32, n: i32) -> WasiResult<Vec<(i32, i32)>> {
        (0..n.max(0))
            .map(|i| {
                let e = at.wrapping_add(i.wrapping_mul(8));
                Ok((
                    self.read_u32(e)? as i32,
                    self.read_u32(e.wrapping_add(4))? as i32,
                ))
            })
            .collect()
    }

    /// The bytes of the iovecs at `iovs`, gathered.
    pub fn gather(&self, iovs: i32, n: i32) -> WasiResult<Vec<u8>> {
        let mut out = Vec::new();
        for (ptr, len) in self.iovecs(iovs, n)? {
            out.extend_from_slice(self.bytes(ptr, len)?);
        }
        Ok(out)
    }

    /// Scatters `data` over the iovecs at `iovs`, in order.
    pub fn scatter(&mut self, iovs: i32, n: i32, mut data: &[u8]) -> WasiResult<()> {
        for (ptr, len) in self.iovecs(iovs, n)? {
            if data.is_empty() {
                break;
            }
            let k = data.len().min(len as u32 as usize);
            self.write(ptr, &data[..k])?;
            data = &data[k..];
        }
        Ok(())
    }

    /// The total length of the iovecs at `iovs` (saturating).
    pub fn capacity(&self, iovs: i32, n: i32) -> WasiResult<usize> {
        Ok(self
            .iovecs(iovs, n)?
            .iter()
            .fold(0usize, |t, &(_, len)| t.saturating_add(len as u32 as usize)))
    }
}
