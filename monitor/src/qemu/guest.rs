//! The guest's memory under QEMU (PROTOCOL.md §22.1): one memory file,
//! shared between QEMU, which uses it as the machine's RAM, and the
//! monitor, which builds the boot state in it and serves the pipe regions
//! from it. Its first `--mem` bytes are guest RAM at guest-physical 0; the
//! next 1 GiB is the sixteen pipe regions at 4 GiB (QEMU places the RAM
//! above `max-ram-below-4g` there). The relay's [`Vmm`] over it: no
//! stream interrupt reaches the guest and no doorbell reaches the monitor,
//! so the relay looks at the bell pages every [`BELL_POLL`] and the kernel
//! at the wake word every `IDLE_POLL` (§22.4).
//!
//! Invariant: the mapping is owned by the [`QemuGuest`] and unmapped only
//! when its last holder drops it, after the guest (QEMU is killed first)
//! and the relay stopped using it.

use crate::affinity::{self, Role};
use crate::guest_memory::{self, MemoryError, Ram};
use crate::host;
use crate::streams::{Vmm, VmmError};
use std::fs::File;
use std::ptr::NonNull;
use std::sync::Arc;
use std::time::Duration;
use vm_memory::{FileOffset, GuestAddress, GuestMemoryMmap};
use vmm_sys_util::eventfd::EventFd;
use weft_control::streams::{PIPE_REGION_GPA, PIPE_REGION_SIZE, REGIONS};

/// How often the relay looks at the bell pages (tokio's timer grain).
pub const BELL_POLL: Duration = Duration::from_millis(1);

/// The bytes of all pipe regions, after RAM in the memory file.
pub const REGION_BYTES: u64 = REGIONS * PIPE_REGION_SIZE;

/// Guest memory in a file QEMU shares.
pub struct QemuGuest {
    file: Arc<File>,
    ram: Ram,
    mem_size: u64,
}

impl QemuGuest {
    /// A zeroed memory file of `mem_size` bytes of RAM and the pipe
    /// regions, mapped here.
    pub fn create(mem_size: u64) -> Result<Self, MemoryError> {
        let too_small = |_| MemoryError::TooSmall {
            needed: mem_size,
            what: "RAM",
        };
        let len = usize::try_from(mem_size).map_err(too_small)?;
        let file = Arc::new(
            host::memory_file("weft-guest", mem_size + REGION_BYTES)
                .map_err(|e| MemoryError::File(mem_size, e))?,
        );
        let ram = GuestMemoryMmap::from_ranges_with_files([
            (
                GuestAddress(0),
                len,
                Some(FileOffset::from_arc(file.clone(), 0)),
            ),
            (
                GuestAddress(PIPE_REGION_GPA),
                REGION_BYTES as usize,
                Some(FileOffset::from_arc(file.clone(), mem_size)),
            ),
        ])
        .map_err(|e| MemoryError::Map(mem_size, e))?;
        Ok(Self {
            file,
            ram,
            mem_size,
        })
    }

    /// Guest RAM and the pipe regions.
    pub fn ram(&self) -> &Ram {
        &self.ram
    }

    /// The memory file, for QEMU.
    pub fn file(&self) -> &File {
        &self.file
    }
}

// SAFETY: `pipe_region` returns addresses from `guest_memory::pipe_region`,
// which checks that the mapping covers the whole region (page-aligned:
// regions start at multiples of 64 MiB). The mapping is owned by `self`,
// shared with QEMU as the region's guest-physical memory, and stays mapped
// for as long as `self` lives. The monitor reaches it only through the
// relay's `RawRegion`s and bell pages and `vm_memory`'s volatile
// accessors, never by reference.
unsafe impl Vmm for QemuGuest {
    fn pipe_region(&self, index: u64) -> Option<NonNull<u8>> {
        guest_memory::pipe_region(&self.ram, index).map(|(base, _)| base)
    }

    /// Every region is QEMU's memory from the start.
    fn map_spawn_regions(&self) -> Result<(), VmmError> {
        Ok(())
    }

    fn zero_pipe_region(&self, index: u64) -> std::io::Result<()> {
        if index >= REGIONS {
            return Err(std::io::ErrorKind::InvalidInput.into());
        }
        // A hole punched in the shared file reads as zeroes on both sides.
        let offset = self.mem_size + index * PIPE_REGION_SIZE;
        host::punch_hole(&self.file, offset, PIPE_REGION_SIZE)
    }

    /// An eventfd no one reads: the guest's idle poll finds the wake word.
    fn stream_interrupt(&self) -> Result<EventFd, VmmError> {
        Ok(EventFd::new(libc::EFD_NONBLOCK)?)
    }

    /// Never called: no doorbell exit reaches the monitor to count.
    fn register_doorbell(&self, _fd: &EventFd) -> Result<(), VmmError> {
        Ok(())
    }

    fn pin_relay_thread(&self) {
        affinity::pin(Role::Relay);
    }

    fn bell_poll(&self) -> Option<Duration> {
        Some(BELL_POLL)
    }
}
