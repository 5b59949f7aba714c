//! The pipe region, its stream slots and the doorbell (PROTOCOL.md §8).
//!
//! Guest-physical layout: the pipe region is a second block of shared memory
//! at [`PIPE_REGION_GPA`], owned by the monitor. Its first page is the *bell
//! page* (pending doorbell bits, §8.2); then come fixed-size slots. A slot
//! holds one stream: two data-pipe rings (§7), one the guest produces into
//! (`to_monitor`) and one the monitor produces into (`to_guest`), each
//! page-aligned, and the stream's *status word* (§8.3) in the padding after
//! the `to_guest` ring.
//!
//! Signals: to wake the monitor, the guest sets its bit in the bell page and,
//! if the bit was clear, writes the one doorbell page at [`DOORBELL_GPA`],
//! which is not RAM: the write completes in the host kernel (an ioeventfd) or
//! as a forwarded exit, and the monitor scans the bits. The monitor wakes the
//! guest with one interrupt, [`crate::layout::vector::STREAM`].
//!
//! The program sees the region at [`USER_PIPES_ADDR`] and the doorbell at
//! [`USER_DOORBELLS_ADDR`], so its reads, writes and doorbells never enter the
//! kernel.

use crate::layout::PAGE_SIZE;

/// Guest-physical address of the pipe region (above the 4 GiB boundary, so
/// never RAM).
pub const PIPE_REGION_GPA: u64 = 0x1_0000_0000;
/// Size of the pipe region (a whole number of 2 MiB pages).
pub const PIPE_REGION_SIZE: u64 = 64 << 20;
/// Guest-physical address of the doorbell page.
pub const DOORBELL_GPA: u64 = 0x1_4000_0000;
/// Guest-physical address of the park page (§8.4), right after the doorbell
/// page: a program's read of it asks the monitor to hold the CPU until a
/// stream interrupt would wake it.
pub const PARK_GPA: u64 = DOORBELL_GPA + PAGE_SIZE;
/// Pipe regions: one per process slot (§14), region `i` at
/// [`region_gpa`]`(i)`. Region 0 is the first program's and exists from
/// boot; the others are created with the first spawn.
pub const REGIONS: u64 = 16;

/// Guest-physical address of pipe region `index` (< [`REGIONS`]).
pub const fn region_gpa(index: u64) -> u64 {
    PIPE_REGION_GPA + index * PIPE_REGION_SIZE
}

/// Bytes of a data-pipe ring header (§7.2).
pub const RING_HEADER: u64 = 256;
/// Data capacity of each ring of a slot. Measured against 64 KiB: a guest
/// `cat` of a cached file went from 0.40 to 0.45 of native `cat`'s
/// throughput, the TCP echo relay from 0.50 to 0.70 of a native echo server
/// (more bytes in flight between the two sides' CPUs).
pub const RING_CAPACITY: u64 = 256 * 1024;
/// Distance between the two rings of a slot (page-aligned).
pub const RING_STRIDE: u64 = (RING_HEADER + RING_CAPACITY).next_multiple_of(PAGE_SIZE);
/// Size of one slot.
pub const SLOT_SIZE: u64 = 2 * RING_STRIDE;
/// Offset of slot 0 in the region: the bell page comes first.
pub const SLOTS_BASE: u64 = PAGE_SIZE;
/// Number of slots in the region.
pub const SLOTS: u64 = (PIPE_REGION_SIZE - SLOTS_BASE) / SLOT_SIZE;

/// User virtual address of the pipe region in a program.
pub const USER_PIPES_ADDR: u64 = 0x0000_7000_0000_0000;
/// User virtual address of the doorbell page in a program.
pub const USER_DOORBELLS_ADDR: u64 = 0x0000_7100_0000_0000;
/// User virtual address of the park page in a program (read-only).
pub const USER_PARK_ADDR: u64 = USER_DOORBELLS_ADDR + PAGE_SIZE;

/// What a read of the park page returns (§8.4).
pub mod park {
    /// The monitor did not hold the CPU, or stopped holding it for
    /// another reason than a wake of the reader's slot: wait in the
    /// kernel (`wait`, §5.2).
    pub const NOT_PARKED: u32 = 0;
    /// A stream interrupt for the reader's slot ended the hold; the
    /// interrupt itself was not raised.
    pub const WOKEN: u32 = 1;
    /// With a timer armed, the monitor holds the CPU only if it is due
    /// later than this (ns), and ends the hold half this before it is due:
    /// the kernel takes the timer's interrupt, which cannot come while the
    /// CPU is held.
    pub const TIMER_CLEARANCE_NS: u64 = 600_000;
}

/// Slots with a fixed meaning, open from boot.
pub mod slot {
    /// The control pipe (§9): opens and closes the other slots.
    pub const CONTROL: u64 = 0;
    /// The program's standard input: it reads the `to_guest` ring.
    pub const STDIN: u64 = 1;
    /// The program's standard output: it writes the `to_monitor` ring.
    pub const STDOUT: u64 = 2;
    /// The program's standard error: it writes the `to_monitor` ring.
    pub const STDERR: u64 = 3;
    /// The first slot the control pipe hands out.
    pub const FIRST_DYNAMIC: u64 = 4;
}

/// Pending-doorbell bits in the bell page (§8.2): slot `s` has bit
/// `2 * s + reason`, in little-endian `u64` words from offset 0.
pub mod bell {
    /// The guest published data into (or closed) a `to_monitor` ring.
    pub const DATA: u64 = 0;
    /// The guest freed space in (or closed its end of) a `to_guest` ring.
    pub const SPACE: u64 = 1;
    /// `u64` words of pending bits.
    pub const WORDS: u64 = (2 * super::SLOTS).div_ceil(64);

    /// The word offset (bytes from the region's start) and bit mask of
    /// slot `slot`'s pending bit for `reason`.
    pub const fn bit(slot: u64, reason: u64) -> (u64, u64) {
        let n = 2 * slot + reason;
        (8 * (n / 64), 1 << (n % 64))
    }
}

/// Offsets of a slot's rings and status word from the start of the pipe
/// region.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlotRings {
    /// The ring the guest produces into.
    pub to_monitor: u64,
    /// The ring the monitor produces into.
    pub to_guest: u64,
    /// The stream's status word (§8.3), a `u32`.
    pub status: u64,
}

/// The rings of slot `slot`, if it exists.
pub const fn rings(slot: u64) -> Option<SlotRings> {
    if slot >= SLOTS {
        return None;
    }
    let base = SLOTS_BASE + slot * SLOT_SIZE;
    Some(SlotRings {
        to_monitor: base,
        to_guest: base + RING_STRIDE,
        status: base + RING_STRIDE + RING_HEADER + RING_CAPACITY,
    })
}

const _: () = {
    assert!(PIPE_REGION_SIZE.is_multiple_of(2 << 20));
    assert!(SLOTS > slot::FIRST_DYNAMIC);
    assert!(bell::WORDS * 8 <= SLOTS_BASE);
    assert!(RING_HEADER + RING_CAPACITY + 4 <= RING_STRIDE);
    assert!(DOORBELL_GPA >= PIPE_REGION_GPA + REGIONS * PIPE_REGION_SIZE);
    assert!(USER_PIPES_ADDR + PIPE_REGION_SIZE <= USER_DOORBELLS_ADDR);
    assert!(
        USER_PARK_ADDR + PAGE_SIZE
            <= crate::layout::USER_STACK_TOP - crate::layout::USER_STACK_SIZE
    );
    assert!(crate::layout::USER_HEAP_TOP <= USER_PIPES_ADDR);
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_tile_the_region_and_stop_at_its_end() {
        assert_eq!(RING_STRIDE, 260 * 1024);
        assert_eq!(SLOTS, 126);
        let last = rings(SLOTS - 1).unwrap();
        assert!(last.to_guest + RING_STRIDE <= PIPE_REGION_SIZE);
        assert_eq!(
            rings(slot::STDOUT),
            Some(SlotRings {
                to_monitor: 4096 + 2 * SLOT_SIZE,
                to_guest: 4096 + 2 * SLOT_SIZE + RING_STRIDE,
                status: 4096 + 2 * SLOT_SIZE + RING_STRIDE + 256 + 256 * 1024,
            })
        );
        assert_eq!(rings(SLOTS), None);
    }

    #[test]
    fn bell_bits_are_distinct_and_inside_the_bell_page() {
        assert_eq!(bell::bit(0, bell::DATA), (0, 1));
        assert_eq!(bell::bit(0, bell::SPACE), (0, 2));
        assert_eq!(bell::bit(32, bell::DATA), (8, 1));
        let (word, mask) = bell::bit(SLOTS - 1, bell::SPACE);
        assert!(word < bell::WORDS * 8);
        assert_eq!(mask.count_ones(), 1);
    }
}
