//! Error codes carried in hypercall results and syscall returns (PROTOCOL.md §6).
//!
//! Numbers are never reused; 0 means success and is not a variant.

/// Why a hypercall or syscall failed.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    /// An address or range is outside guest memory, not mapped, or not mapped with
    /// the access the operation needs.
    BadAddress = 1,
    /// A length is larger than the operation allows.
    BadLength = 2,
    /// The hypercall number is not defined.
    BadHypercall = 3,
    /// An argument is out of its range (for example an unknown stream number).
    BadArgument = 4,
    /// The syscall number is not defined.
    NoSyscall = 5,
    /// Memory for the operation could not be allocated.
    OutOfMemory = 6,
    /// The operation is defined but not supported by this build.
    Unsupported = 7,
    /// No process has that pid, or it is not the caller's child.
    NoProcess = 8,
    /// The wait's time limit passed first.
    TimedOut = 9,
    /// The program image is not a valid executable for Weft.
    BadImage = 10,
    /// No bundled program has that name.
    NotFound = 11,
    /// Every process slot is taken.
    TooManyProcesses = 12,
}

impl ErrorCode {
    /// Every defined code, in numeric order.
    pub const ALL: [ErrorCode; 12] = [
        Self::BadAddress,
        Self::BadLength,
        Self::BadHypercall,
        Self::BadArgument,
        Self::NoSyscall,
        Self::OutOfMemory,
        Self::Unsupported,
        Self::NoProcess,
        Self::TimedOut,
        Self::BadImage,
        Self::NotFound,
        Self::TooManyProcesses,
    ];

    /// The code for `n`, if it is defined.
    pub fn from_u32(n: u32) -> Option<Self> {
        Self::ALL.into_iter().find(|c| *c as u32 == n)
    }

    /// A short lower-case description.
    pub const fn description(self) -> &'static str {
        match self {
            Self::BadAddress => "bad address",
            Self::BadLength => "length too large",
            Self::BadHypercall => "unknown hypercall",
            Self::BadArgument => "argument out of range",
            Self::NoSyscall => "unknown syscall",
            Self::OutOfMemory => "out of memory",
            Self::Unsupported => "not supported",
            Self::NoProcess => "no such child process",
            Self::TimedOut => "timed out",
            Self::BadImage => "not a valid program image",
            Self::NotFound => "no such bundled program",
            Self::TooManyProcesses => "too many processes",
        }
    }
}

impl core::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.description())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_zero_is_not_an_error() {
        for c in ErrorCode::ALL {
            assert_eq!(ErrorCode::from_u32(c as u32), Some(c));
        }
        assert_eq!(ErrorCode::from_u32(0), None);
        assert_eq!(ErrorCode::from_u32(13), None);
    }
}
