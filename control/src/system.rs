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
//! 60  flags             u32  bits 0, 1: weft's standard output, error is a
//!                             terminal; others zero
//! 64  listen            [address; MAX_LISTEN], 19 bytes each (net_proto::ADDR)
//! ```

use crate::net_proto::{ADDR, addr_bytes, addr_from_bytes};
use core::net::SocketAddr;

/// Listen grants the page lists (further grants still apply, unlisted).
pub const MAX_LISTEN: usize = 16;
/// Bytes of the system page's contents: the listen grants start at 64.
pub const SIZE: usize = 64 + MAX_LISTEN * ADDR;

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
    /// Weft's standard output is a terminal.
    pub stdout_terminal: bool,
    /// Weft's standard error is a terminal.
    pub stderr_terminal: bool,
}

/// `flags` bits: standard output, error is a terminal.
const STDOUT_TERMINAL: u32 = 1;
const STDERR_TERMINAL: u32 = 2;

crate::wire_layout! {
    /// The system page's bytes (§4.2); [`SystemInfo`] is what they mean.
    #[derive(Clone, Copy, Debug)]
    struct SystemPage: 368 {
        [0] tsc_hz: u64,
        [8] realtime_at_tsc0: u64,
        [16] seed: [u8; 32],
        [48] heap_mapped: u64,
        [56] listen_count: u32,
        [60] flags: u32,
        [64] listen: [[u8; ADDR]; MAX_LISTEN],
    }
}
const _: () = assert!(SystemPage::SIZE == SIZE);

impl SystemInfo {
    /// The page's bytes.
    pub fn encode(&self) -> [u8; SIZE] {
        let mut page = SystemPage {
            tsc_hz: self.tsc_hz,
            realtime_at_tsc0: self.realtime_at_tsc0,
            seed: self.seed,
            heap_mapped: self.heap_mapped,
            listen_count: 0,
            flags: if self.stdout_terminal {
                STDOUT_TERMINAL
            } else {
                0
            } | if self.stderr_terminal {
                STDERR_TERMINAL
            } else {
                0
            },
            listen: [[0; ADDR]; MAX_LISTEN],
        };
        for (slot, addr) in page.listen.iter_mut().zip(self.listen.iter().flatten()) {
            *slot = addr_bytes(*addr);
            page.listen_count += 1;
        }
        page.encode()
    }

    /// Lists `addrs` as the listen grants (the first [`MAX_LISTEN`]).
    pub fn with_listen(mut self, addrs: &[SocketAddr]) -> Self {
        for (slot, addr) in self.listen.iter_mut().zip(addrs) {
            *slot = Some(*addr);
        }
        self
    }

    /// Decodes the page's bytes. A malformed listen entry is left out, as
    /// if not listed.
    pub fn decode(b: &[u8; SIZE]) -> Self {
        let page = SystemPage::decode(b);
        let mut listen = [None; MAX_LISTEN];
        let count = (page.listen_count as usize).min(MAX_LISTEN);
        for (slot, raw) in listen.iter_mut().zip(&page.listen[..count]) {
            *slot = addr_from_bytes(raw).ok();
        }
        Self {
            tsc_hz: page.tsc_hz,
            realtime_at_tsc0: page.realtime_at_tsc0,
            seed: page.seed,
            heap_mapped: page.heap_mapped,
            listen,
            stdout_terminal: page.flags & STDOUT_TERMINAL != 0,
            stderr_terminal: page.flags & STDERR_TERMINAL != 0,
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
            stderr_terminal: true,
            ..SystemInfo::default()
        }
        .with_listen(&grants);
        assert_eq!(s.encode()[60], 2);
        assert_eq!(s.listen[..2], [Some(grants[0]), Some(grants[1])]);
        assert_eq!(SystemInfo::decode(&s.encode()), s);
        assert_eq!(s.ticks_to_ns(3_000_000_000), 1_500_000_000);
        assert_eq!(s.ticks_to_ns(u64::MAX), (u64::MAX as u128 / 2) as u64);
        assert_eq!(SystemInfo::default().ticks_to_ns(5), 0);
    }
}
