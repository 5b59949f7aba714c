//! The `weft` process's exit statuses (the contract in the README); the
//! numbers are `weft_control::status`'s.

use weft_control::status;

/// How `weft` exits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitStatus {
    /// The program's own status, 0..=125.
    Program(u8),
    /// A usage or configuration error.
    Usage,
    /// `--timeout` expired.
    Timeout,
    /// The guest crashed: kernel panic, fault, triple fault or protocol violation.
    Crash,
    /// `weft` was stopped by this signal (SIGINT, SIGTERM): 128 + its number.
    Signal(u8),
}

impl ExitStatus {
    /// The numeric process exit status.
    pub fn code(self) -> u8 {
        match self {
            ExitStatus::Program(s) => s,
            ExitStatus::Usage => status::UNUSABLE,
            ExitStatus::Timeout => status::TIMEOUT,
            ExitStatus::Crash => status::CRASHED,
            ExitStatus::Signal(sig) => status::signalled(sig),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_match_the_contract() {
        assert_eq!(ExitStatus::Program(7).code(), 7);
        assert_eq!(ExitStatus::Usage.code(), 2);
        assert_eq!(ExitStatus::Timeout.code(), 124);
        assert_eq!(ExitStatus::Crash.code(), 125);
    }
}
