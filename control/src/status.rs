//! Exit statuses with a fixed meaning (PROTOCOL.md §5.2, §13, §14; the
//! `weft` contract in the README), defined once for the kernel, the user
//! runtime, the Wasm runtime and the monitor.
//!
//! A program chooses its own status in `0..=`[`MAX_PROGRAM`]; the values
//! above it are reserved for what ends a program from outside (or ends `weft`
//! itself), so a status always says who ended the program and why.

/// The largest status a program may exit with; `exit` turns anything larger
/// into [`CRASHED`].
pub const MAX_PROGRAM: u8 = 125;

/// The module or program could not be used (not a valid ELF or Wasm module,
/// an import the runtime lacks); also `weft`'s status for a usage or
/// configuration error.
pub const UNUSABLE: u8 = 2;

/// A Rust program panicked (the user runtime's panic handler).
pub const PANICKED: u8 = 101;

/// `weft --timeout` expired.
pub const TIMEOUT: u8 = 124;

/// A crash: a CPU fault in a process, a Wasm trap, a kernel panic, a triple
/// fault or a protocol violation.
pub const CRASHED: u8 = 125;

/// The process was killed (128 + SIGKILL's number, as a shell reports it).
pub const KILLED: u8 = 137;

/// `weft` was stopped by signal `signal`: 128 + its number.
pub const fn signalled(signal: u8) -> u8 {
    128u8.saturating_add(signal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_statuses_lie_above_program_statuses() {
        for s in [KILLED, signalled(2), signalled(15)] {
            assert!(s > MAX_PROGRAM);
        }
        assert_eq!((signalled(2), signalled(15)), (130, 143));
        assert_eq!(CRASHED, MAX_PROGRAM);
    }
}
