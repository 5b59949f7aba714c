//! What the relay needs from the VMM that runs the guest, and nothing more:
//! the pipe regions' memory (region 0 from boot, regions 1.. mapped into
//! guest memory on first use, each zeroed before reuse), the stream
//! interrupt (an eventfd whose writes raise it), the doorbell (an eventfd
//! the guest's doorbell writes signal inside the host kernel), and where
//! the relay's thread runs. The relay knows no VMM: KVM's side implements
//! [`Vmm`] (`crate::kvm_streams`), another VMM can implement it too.

use std::ptr::NonNull;
use vmm_sys_util::eventfd::EventFd;

/// A VMM's failure, as the VMM reports it (the relay only passes it on).
pub type VmmError = Box<dyn std::error::Error + Send + Sync>;

/// The VMM's side of the relay.
///
/// # Safety
///
/// An implementor guarantees that, for as long as it lives, every address
/// [`pipe_region`](Vmm::pipe_region) returns is the page-aligned host
/// address of the whole `PIPE_REGION_SIZE` bytes of that pipe region,
/// mapped readable and writable and shared with the guest as the region's
/// guest-physical memory, and that the VMM itself forms no Rust reference
/// into those bytes (the relay and the guest both write them).
pub unsafe trait Vmm: Send + Sync {
    /// The host address of pipe region `index`: region 0 at any time,
    /// regions 1.. once [`map_spawn_regions`](Vmm::map_spawn_regions)
    /// succeeded; `None` otherwise.
    fn pipe_region(&self, index: u64) -> Option<NonNull<u8>>;

    /// Makes pipe regions 1.. guest memory. Done on first use (a run that
    /// spawns nothing does not pay for it); later calls do nothing.
    fn map_spawn_regions(&self) -> Result<(), VmmError>;

    /// Zeroes pipe region `index` (mapped already) for a new process, in
    /// the relay's view and the guest's.
    fn zero_pipe_region(&self, index: u64) -> std::io::Result<()>;

    /// An eventfd whose every write raises the stream interrupt (§8).
    fn stream_interrupt(&self) -> Result<EventFd, VmmError>;

    /// Makes the guest's writes to the doorbell page signal `fd` without
    /// leaving the host kernel (§8.2). Until it is called, the VMM forwards
    /// doorbell exits to [`Relay::ring`](super::Relay::ring).
    fn register_doorbell(&self, fd: &EventFd) -> Result<(), VmmError>;

    /// Places the calling thread, the relay's, on the host's CPUs.
    fn pin_relay_thread(&self);

    /// How often the relay must look at the bell pages itself, for a VMM
    /// whose guest's doorbell writes reach no one (QEMU, §22.4); `None`
    /// (the default) where they signal the doorbell.
    fn bell_poll(&self) -> Option<std::time::Duration> {
        None
    }
}
