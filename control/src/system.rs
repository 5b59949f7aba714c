//! The system page (PROTOCOL.md §4.2): what a program needs to tell the time
//! and seed a random generator without entering the kernel. The monitor
//! fills it before the first guest instruction and maps it read-only at
//! [`crate::layout::USER_SYSTEM_ADDR`]. Layout, little-endian:
//!
//! ```text
//! 0   tsc_hz            u64  guest TSC ticks per second (0: unknown)
//! 8   realtime_at_tsc0  u64  Unix time in ns at which the guest TSC read 0
//! 16  seed              [u8; 32] fresh random bytes from the host
//! ```

/// Bytes of the system page's contents.
pub const SIZE: usize = 48;

/// The system page's contents.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SystemInfo {
    /// Guest TSC frequency; 0 if the monitor could not tell.
    pub tsc_hz: u64,
    /// Unix time (ns) when the guest TSC read 0.
    pub realtime_at_tsc0: u64,
    /// Random bytes from the host, for seeding a generator.
    pub seed: [u8; 32],
}

impl SystemInfo {
    /// The page's bytes.
    pub fn encode(&self) -> [u8; SIZE] {
        let mut out = [0u8; SIZE];
        out[0..8].copy_from_slice(&self.tsc_hz.to_le_bytes());
        out[8..16].copy_from_slice(&self.realtime_at_tsc0.to_le_bytes());
        out[16..48].copy_from_slice(&self.seed);
        out
    }

    /// Decodes the page's bytes.
    pub fn decode(b: &[u8; SIZE]) -> Self {
        let u64_at = |o: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&b[o..o + 8]);
            u64::from_le_bytes(w)
        };
        let mut seed = [0u8; 32];
        seed.copy_from_slice(&b[16..48]);
        Self {
            tsc_hz: u64_at(0),
            realtime_at_tsc0: u64_at(8),
            seed,
        }
    }

    /// Nanoseconds for `ticks` of the guest TSC (0 if the rate is unknown).
    pub fn ticks_to_ns(&self, ticks: u64) -> u64 {
        if self.tsc_hz == 0 {
            return 0;
        }
        (u128::from(ticks) * 1_000_000_000 / u128::from(self.tsc_hz)) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_converts_ticks() {
        let s = SystemInfo {
            tsc_hz: 2_000_000_000,
            realtime_at_tsc0: 1_700_000_000_000_000_000,
            seed: [7; 32],
        };
        assert_eq!(SystemInfo::decode(&s.encode()), s);
        assert_eq!(s.ticks_to_ns(3_000_000_000), 1_500_000_000);
        assert_eq!(s.ticks_to_ns(u64::MAX), (u64::MAX as u128 / 2) as u64);
        assert_eq!(SystemInfo::default().ticks_to_ns(5), 0);
    }
}
