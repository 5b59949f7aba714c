//! The one kernel-entry instruction, `int3` (PROTOCOL.md §5.1), and the typed
//! calls on it.

use core::arch::asm;
use weft_abi::{ErrorCode, decode, nr};

/// Makes syscall `number` with up to four arguments.
///
/// # Safety
///
/// Pointer arguments must be valid for what `number` does with them (the kernel
/// checks they are user addresses, not that they are the caller's to give).
pub unsafe fn syscall(number: u64, a0: u64, a1: u64, a2: u64, a3: u64) -> Result<u64, ErrorCode> {
    let ret: u64;
    // SAFETY: `int3` enters the kernel, which preserves rbx, rbp, rsp and
    // r12–r15 and may read memory the arguments point at (so not `nomem`).
    unsafe {
        asm!("int3",
            inlateout("rax") number => ret,
            inlateout("rdi") a0 => _, inlateout("rsi") a1 => _, inlateout("rdx") a2 => _,
            inlateout("r10") a3 => _, lateout("rcx") _, lateout("r11") _,
            lateout("r8") _, lateout("r9") _,
            options(nostack));
    }
    decode(ret)
}

/// Maps `len` bytes of zeroed read/write memory; returns its address.
pub fn map(len: u64) -> Result<u64, ErrorCode> {
    // SAFETY: no pointer arguments.
    unsafe { syscall(nr::MAP, len, 0, 0, 0) }
}
