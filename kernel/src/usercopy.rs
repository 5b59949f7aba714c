//! Copies from the kernel into a process's memory, checked: the kernel never
//! touches a user address the process could not write itself.
//!
//! The range is walked through the process's page tables with user and
//! write access required (no fault can happen in ring 0), then written
//! through the direct map.

use crate::memory::{self, DirectMap};
use weft_control::error::ErrorCode;
use weft_control::layout::is_user_range;
use weft_image::paging::{Access, translate_range};

/// Writes `bytes` at user address `addr` of the address space `root`.
pub fn write(root: u64, addr: u64, bytes: &[u8]) -> Result<(), ErrorCode> {
    let len = bytes.len() as u64;
    if !is_user_range(addr, len) {
        return Err(ErrorCode::BadAddress);
    }
    let access = Access {
        user: true,
        write: true,
        execute: false,
    };
    let mem = DirectMap::new(memory::ram());
    let mut done = 0usize;
    translate_range(&mem, root, addr, len, access, |phys, n| {
        let dst = memory::ram_slice(phys, n).ok_or(())?;
        dst.copy_from_slice(&bytes[done..done + n as usize]);
        done += n as usize;
        Ok::<(), ()>(())
    })
    .map_err(|_| ErrorCode::BadAddress)
}
