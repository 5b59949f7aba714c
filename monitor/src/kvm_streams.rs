//! The KVM guest as the stream relay sees it: the relay's [`Vmm`] trait
//! implemented over one VM and its memory. Region 0 lies in guest RAM;
//! regions 1.. are one more mapping, made and registered as a KVM memory
//! slot on first use (measured: registering it at boot would add ~0.5 ms
//! to every `weft run`); the stream interrupt is an irqfd, the doorbell an
//! MMIO ioeventfd (both [`vm`]); the relay's thread is placed by
//! [`affinity`].
//!
//! Invariant: every mapping handed to the relay is owned by the
//! [`KvmGuest`] (guest RAM, the spawn regions' memory once made) and is
//! unmapped only when the last holder of it drops it, after the guest and
//! the relay stopped using it.

use crate::affinity::{self, Role};
use crate::guest_memory::{self, Ram};
use crate::streams::{Vmm, VmmError};
use crate::vm;
use kvm_ioctls::VmFd;
use std::ptr::NonNull;
use std::sync::{Mutex, OnceLock};
use vm_memory::GuestMemoryBackend;
use vmm_sys_util::eventfd::EventFd;

/// One KVM VM with its memory, shared by the run loop and the relay.
pub struct KvmGuest {
    vm: VmFd,
    ram: Ram,
    /// The memory of pipe regions 1.., once made.
    spawn_memory: OnceLock<Ram>,
    /// Held while the spawn regions are made, so they are made once.
    making: Mutex<()>,
    /// The KVM memory slot of `spawn_memory`: the first after guest RAM's.
    spawn_slot: u32,
}

impl KvmGuest {
    /// The guest whose memory is `ram`, in `vm` (which maps `ram`).
    pub fn new(vm: VmFd, ram: Ram) -> Self {
        Self {
            spawn_slot: ram.num_regions() as u32,
            vm,
            ram,
            spawn_memory: OnceLock::new(),
            making: Mutex::new(()),
        }
    }

    /// The VM.
    pub fn vm(&self) -> &VmFd {
        &self.vm
    }

    /// The memory that holds pipe region `index`, if it is mapped.
    fn memory_of(&self, index: u64) -> Option<&Ram> {
        match index {
            0 => Some(&self.ram),
            _ => self.spawn_memory.get(),
        }
    }
}

// SAFETY: `pipe_region` returns addresses from `guest_memory::pipe_region`,
// which checks that the mapping covers the whole region (page-aligned: the
// regions start at multiples of 64 MiB). Both mappings are owned by `self`
// (`ram`, `spawn_memory`, which is never replaced once set) and registered
// with KVM at the region's guest-physical address, so they are the guest's
// memory and stay mapped for as long as `self` lives. The monitor reaches
// them only through the relay's `RawRegion`s and bell pages and through
// `vm_memory`'s volatile accessors, never by reference.
unsafe impl Vmm for KvmGuest {
    fn pipe_region(&self, index: u64) -> Option<NonNull<u8>> {
        guest_memory::pipe_region(self.memory_of(index)?, index).map(|(base, _)| base)
    }

    fn map_spawn_regions(&self) -> Result<(), VmmError> {
        let _making = self.making.lock().unwrap_or_else(|e| e.into_inner());
        if self.spawn_memory.get().is_some() {
            return Ok(());
        }
        let memory = guest_memory::create_spawn_regions()?;
        // SAFETY: `memory` goes into `self.spawn_memory` below and stays
        // mapped for as long as `self`, and so the VM, lives; if
        // registering fails, KVM holds no slot over it.
        unsafe { vm::map_memory(&self.vm, &memory, self.spawn_slot) }?;
        let _ = self.spawn_memory.set(memory);
        Ok(())
    }

    fn zero_pipe_region(&self, index: u64) -> std::io::Result<()> {
        let memory = self
            .memory_of(index)
            .ok_or(std::io::ErrorKind::InvalidInput)?;
        guest_memory::zero_pipe_region(memory, index)
    }

    fn stream_interrupt(&self) -> Result<EventFd, VmmError> {
        Ok(vm::stream_interrupt(&self.vm)?)
    }

    fn register_doorbell(&self, fd: &EventFd) -> Result<(), VmmError> {
        Ok(vm::register_doorbell(&self.vm, fd)?)
    }

    fn pin_relay_thread(&self) {
        affinity::pin(Role::Relay);
    }
}
