//! The system page (PROTOCOL.md §4.2): what a program needs to tell the time
//! and seed a random generator without entering the kernel. The monitor
//! fills it before the first guest instruction and maps it read-only at
//! [`crate::layout::USER_SYSTEM_ADDR`]. Layout, little-endian:
//!
//! ```text
//! 0   tsc_hz            u64  guest TSC ticks per second (0: unknown)
//! 8   realtime_at_tsc0  u64  Unix time in ns at which the guest TSC read 0
//! 16  seed              [u8; 32] fresh random bytes from the host
//! 48  heap_mapped       u64  bytes of the anonymous area mapped at entry
//! 56  listen_count      u32  addresses granted by `--listen` listed below
//! 60  reserved          u32  zero
//! 64  listen            [address; MAX_LISTEN], 19 bytes each (net_proto::ADDR)
//! ```

use crate::net_proto::{ADDR, addr_bytes, addr_from_bytes};
use core::net::SocketAddr;

/// Listen grants the page lists (further grants still apply, unlisted).
pub const MAX_LISTEN: usize = 16;
/// Offset of the listen grants.
const LISTEN_AT: usize = 64;
/// Bytes of the system page's contents.
pub const SIZE: usize = LISTEN_AT + MAX_LISTEN * ADDR;

/// The system page's contents.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SystemInfo {
    /// Guest TSC frequency; 0 if the monitor could not tell.
    pub tsc_hz: u64,
    /// Unix time (ns) when the guest TSC read 0.
    pub realtime_at_tsc0: u64,
    /// Random bytes from the host, for seeding a generator.
    pub seed: [u8; 32],
    /// Bytes of the anonymous memory area mapped before the program
    /// started (`layout::heap_premapped`).
    pub heap_mapped: u64,
    /// The first [`MAX_LISTEN`] addresses `--listen` granted, in order; the
    /// rest `None`.
    pub listen: [Option<SocketAddr>; MAX_LISTEN],
}

impl SystemInfo {
    /// The page's bytes.
    pub fn encode(&self) -> [u8; SIZE] {
        let mut out = [0u8; SIZE];
        out[0..8].copy_from_slice(&self.tsc_hz.to_le_bytes());
        out[8..16].copy_from_slice(&self.realtime_at_tsc0.to_le_bytes());
        out[16..48].copy_from_slice(&self.seed);
        out[48..56].copy_from_slice(&self.heap_mapped.to_le_bytes());
        let granted = self.listen.iter().flatten();
        let count = granted.clone().count() as u32;
        out[56..60].copy_from_slice(&count.to_le_bytes());
        for (i, addr) in granted.enumerate() {
            let at = LISTEN_AT + i * ADDR;
            out[at..at + ADDR].copy_from_slice(&addr_bytes(*addr));
        }
        out
    }

    /// Lists `addrs` as the listen grants (the first [`MAX_LISTEN`]).
    pub fn with_listen(mut self, addrs: &[SocketAddr]) -> Self {
        for (slot, addr) in self.listen.iter_mut().zip(addrs) {
            *slot = Some(*addr);
        }
        self
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
        let count = u32::from_le_bytes([b[56], b[57], b[58], b[59]]) as usize;
        let mut listen = [None; MAX_LISTEN];
        for (i, slot) in listen.iter_mut().enumerate().take(count.min(MAX_LISTEN)) {
            let at = LISTEN_AT + i * ADDR;
            // A malformed entry is left out, as if not listed.
            let mut raw = [0u8; ADDR];
            raw.copy_from_slice(&b[at..at + ADDR]);
            *slot = addr_from_bytes(&raw).ok();
        }
        Self {
            tsc_hz: u64_at(0),
            realtime_at_tsc0: u64_at(8),
            seed,
            heap_mapped: u64_at(48),
            listen,
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
        let grants: [SocketAddr; 2] = [
            "127.0.0.1:8080".parse().unwrap(),
            "[::1]:9".parse().unwrap(),
        ];
        let s = SystemInfo {
            tsc_hz: 2_000_000_000,
            realtime_at_tsc0: 1_700_000_000_000_000_000,
            seed: [7; 32],
            heap_mapped: 32 << 20,
            ..SystemInfo::default()
        }
        .with_listen(&grants);
        assert_eq!(s.listen[..2], [Some(grants[0]), Some(grants[1])]);
        assert_eq!(SystemInfo::decode(&s.encode()), s);
        assert_eq!(s.ticks_to_ns(3_000_000_000), 1_500_000_000);
        assert_eq!(s.ticks_to_ns(u64::MAX), (u64::MAX as u128 / 2) as u64);
        assert_eq!(SystemInfo::default().ticks_to_ns(5), 0);
    }
}
