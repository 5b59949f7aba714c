//! `weft-abi`: the syscall ABI between the Weft kernel and ring-3 programs
//! (PROTOCOL.md §5), defined once for both sides.
//!
//! A syscall is `int3` (the gate [`SYSCALL_VECTOR`], PROTOCOL.md §5.1) with the number in `rax` and up
//! to four arguments in `rdi`, `rsi`, `rdx`, `r10`; the result comes back in
//! `rax`, and `rcx`, `r11`, `rdi`, `rsi`, `rdx`, `r8`, `r9`, `r10` are clobbered. A result
//! is [`encode`]d: values above `u64::MAX - MAX_ERROR` are negated error codes
//! ([`weft_control::error::ErrorCode`]).
//!
//! Program entry: `rip` = the ELF entry, `rsp` = 16-byte aligned stack top,
//! `rdi` = address of the arguments block (PROTOCOL.md §4), `rsi` = its length,
//! all other registers zero, interrupts enabled.
#![no_std]
#![forbid(unsafe_code)]

pub use weft_control::error::ErrorCode;

/// The interrupt vector of the syscall gate (the only gate ring 3 may use).
pub use weft_control::layout::vector::SYSCALL as SYSCALL_VECTOR;

/// Syscall numbers (§5.2). Numbers are never reused.
pub mod nr {
    /// `write(fd, ptr, len) -> len`: write bytes to standard output (fd 1) or
    /// standard error (fd 2).
    pub const WRITE: u64 = 1;
    /// `exit(status) -> !`: end the calling process with `status` (0..=125);
    /// the first program's exit ends the guest.
    pub const EXIT: u64 = 2;
    /// `sleep(nanoseconds) -> 0`: block for at least that long.
    pub const SLEEP: u64 = 3;
    /// `map(len) -> addr`: map `len` bytes (rounded up to pages) of zeroed,
    /// read/write, non-executable memory and return its address.
    pub const MAP: u64 = 4;
    /// `wait(seen, timeout_ns) -> count`: block until the stream-interrupt count
    /// differs from `seen` or `timeout_ns` passes (`u64::MAX`: no limit);
    /// returns the count. Programs wait for their streams with it (§8).
    pub const WAIT: u64 = 5;
    /// `spawn(request) -> pid`: start a program in a new process (§14.2);
    /// `request` is the user address of a 48-byte `SpawnRequest`.
    pub const SPAWN: u64 = 6;
    /// `kill(pid) -> 0`: end a process (status 137).
    pub const KILL: u64 = 7;
    /// `await(pid, timeout_ns) -> status`: block until the caller's child
    /// `pid` ends (or `timeout_ns` passes: `TimedOut`), collect it and return
    /// its exit status.
    pub const AWAIT: u64 = 8;
    /// `processes(buf, max) -> count`: write up to `max` 64-byte process
    /// records (§14.3) to `buf`; return how many processes exist.
    pub const PROCESSES: u64 = 9;
    /// `process(pid, buf) -> 0`: write process `pid`'s record to `buf`.
    pub const PROCESS: u64 = 10;
    /// `crash(kind) -> !`: make the kernel fail on purpose; only kernels built
    /// with the `crash-test` feature define it (others return `NoSyscall`).
    pub const CRASH: u64 = 0x7F00;
}

/// `CRASH` kinds.
pub mod crash {
    /// A Rust panic in the kernel.
    pub const PANIC: u64 = 1;
    /// A ring-0 page fault on an unmapped kernel address.
    pub const PAGE_FAULT: u64 = 2;
}

/// Standard output for `WRITE`.
pub const FD_STDOUT: u64 = 1;
/// Standard error for `WRITE`.
pub const FD_STDERR: u64 = 2;

/// Largest error code a result can carry.
pub const MAX_ERROR: u64 = 4095;

/// Largest exit status a program can report
/// ([`weft_control::status::MAX_PROGRAM`]).
pub const MAX_EXIT_STATUS: u64 = weft_control::status::MAX_PROGRAM as u64;

/// Encodes a syscall result for `rax`.
pub fn encode(result: Result<u64, ErrorCode>) -> u64 {
    match result {
        Ok(v) => v,
        Err(e) => (e as u64).wrapping_neg(),
    }
}

/// Decodes `rax` after a syscall. An out-of-range negated code decodes as
/// `Unsupported` rather than being mistaken for success.
pub fn decode(raw: u64) -> Result<u64, ErrorCode> {
    let neg = raw.wrapping_neg();
    if raw != 0 && neg <= MAX_ERROR {
        Err(u32::try_from(neg)
            .ok()
            .and_then(ErrorCode::from_u32)
            .unwrap_or(ErrorCode::Unsupported))
    } else {
        Ok(raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_round_trip() {
        for v in [0u64, 1, 4096, u64::MAX - MAX_ERROR] {
            assert_eq!(decode(encode(Ok(v))), Ok(v));
        }
        for e in ErrorCode::ALL {
            assert_eq!(decode(encode(Err(e))), Err(e));
        }
        assert_eq!(decode(u64::MAX - 100), Err(ErrorCode::Unsupported));
    }
}
