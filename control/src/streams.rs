//! The pipe region, its stream slots and their doorbells (PROTOCOL.md §8).
//!
//! Guest-physical layout: the pipe region is a second block of shared memory
//! at [`PIPE_REGION_GPA`], owned by the monitor, divided into fixed-size
//! slots. A slot holds one stream: two data-pipe rings (§7), one the guest
//! produces into (`to_monitor`) and one the monitor produces into
//! (`to_guest`), each page-aligned. Slot `i`'s doorbell is the page at
//! `DOORBELL_GPA + i * PAGE_SIZE`, which is not RAM: a guest write to it
//! completes in the host kernel (an ioeventfd) and wakes the monitor's task
//! for that stream. The monitor wakes the guest with one interrupt,
//! [`crate::layout::vector::STREAM`].
//!
//! The program sees the region at [`USER_PIPES_ADDR`] and the doorbells at
//! [`USER_DOORBELLS_ADDR`], so its reads, writes and doorbells never enter the
//! kernel.

use crate::layout::PAGE_SIZE;

/// Guest-physical address of the pipe region (above the 4 GiB boundary, so
/// never RAM).
pub const PIPE_REGION_GPA: u64 = 0x1_0000_0000;
/// Size of the pipe region (a whole number of 2 MiB pages).
pub const PIPE_REGION_SIZE: u64 = 2 << 20;
/// Guest-physical address of slot 0's doorbell page.
pub const DOORBELL_GPA: u64 = 0x1_4000_0000;

/// Bytes of a data-pipe ring header (§7.2).
pub const RING_HEADER: u64 = 256;
/// Data capacity of each ring of a slot.
pub const RING_CAPACITY: u64 = 64 * 1024;
/// Distance between the two rings of a slot (page-aligned).
pub const RING_STRIDE: u64 = (RING_HEADER + RING_CAPACITY).next_multiple_of(PAGE_SIZE);
/// Size of one slot.
pub const SLOT_SIZE: u64 = 2 * RING_STRIDE;
/// Number of slots in the region.
pub const SLOTS: u64 = PIPE_REGION_SIZE / SLOT_SIZE;

/// User virtual address of the pipe region in a program.
pub const USER_PIPES_ADDR: u64 = 0x0000_7000_0000_0000;
/// User virtual address of slot 0's doorbell page in a program.
pub const USER_DOORBELLS_ADDR: u64 = 0x0000_7100_0000_0000;

/// Slots with a fixed meaning, open from boot.
pub mod slot {
    /// Reserved for the control pipe.
    pub const CONTROL: u64 = 0;
    /// Reserved for the program's standard input.
    pub const STDIN: u64 = 1;
    /// The program's standard output: it writes the `to_monitor` ring.
    pub const STDOUT: u64 = 2;
    /// The program's standard error: it writes the `to_monitor` ring.
    pub const STDERR: u64 = 3;
}

/// Offsets of a slot's rings from the start of the pipe region.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlotRings {
    /// The ring the guest produces into.
    pub to_monitor: u64,
    /// The ring the monitor produces into.
    pub to_guest: u64,
}

/// The rings of slot `slot`, if it exists.
pub const fn rings(slot: u64) -> Option<SlotRings> {
    if slot >= SLOTS {
        return None;
    }
    let base = slot * SLOT_SIZE;
    Some(SlotRings {
        to_monitor: base,
        to_guest: base + RING_STRIDE,
    })
}

/// Guest-physical address of slot `slot`'s doorbell, if it exists.
pub const fn doorbell(slot: u64) -> Option<u64> {
    if slot >= SLOTS {
        None
    } else {
        Some(DOORBELL_GPA + slot * PAGE_SIZE)
    }
}

const _: () = {
    assert!(PIPE_REGION_SIZE.is_multiple_of(2 << 20));
    assert!(SLOTS > slot::STDERR);
    assert!(DOORBELL_GPA >= PIPE_REGION_GPA + PIPE_REGION_SIZE);
    assert!(USER_PIPES_ADDR + PIPE_REGION_SIZE <= USER_DOORBELLS_ADDR);
    assert!(
        USER_DOORBELLS_ADDR + SLOTS * PAGE_SIZE
            <= crate::layout::USER_STACK_TOP - crate::layout::USER_STACK_SIZE
    );
    assert!(crate::layout::USER_HEAP_TOP <= USER_PIPES_ADDR);
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_tile_the_region_and_stop_at_its_end() {
        assert_eq!(RING_STRIDE, 68 * 1024);
        assert_eq!(SLOTS, 15);
        let last = rings(SLOTS - 1).unwrap();
        assert!(last.to_guest + RING_STRIDE <= PIPE_REGION_SIZE);
        assert_eq!(
            rings(slot::STDOUT),
            Some(SlotRings {
                to_monitor: 2 * SLOT_SIZE,
                to_guest: 2 * SLOT_SIZE + RING_STRIDE
            })
        );
        assert_eq!(rings(SLOTS), None);
        assert_eq!(doorbell(0), Some(DOORBELL_GPA));
        assert_eq!(doorbell(3), Some(DOORBELL_GPA + 3 * PAGE_SIZE));
        assert_eq!(doorbell(SLOTS), None);
    }
}
