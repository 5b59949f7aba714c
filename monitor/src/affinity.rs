//! Where the monitor's threads run: the vCPU on a host CPU of its own.
//!
//! Both sides of a busy stream poll for a while before sleeping (a sleep is
//! expensive on nested KVM, see `user/src/stream.rs`). If the scheduler puts
//! the vCPU thread and the relay thread on the same CPU, each polls while the
//! other cannot run: measured on a 2-CPU host, reading a 256 MiB file took
//! 160 ms or 380 ms (4000 guest sleeps) depending on placement. When the
//! process may use at least two CPUs, the vCPU thread takes the first and
//! the relay thread the last; otherwise nothing is pinned.
//!
//! A daemon's other threads (its runtime's, and Zenoh's, which start from
//! them and keep their mask) stay off the vCPU's CPU ([`Role::Apart`]): a
//! parked vCPU woken by a message from another device then finds its CPU
//! free, not busy with the Zenoh thread that woke it. Measured on a 2-CPU
//! host, `make bench`'s `ipc_rtt_cross_device_us` (medians of 7 and 8
//! runs, taken in turns): 462 µs against 495 µs, 1.29 against 1.46 times
//! raw Zenoh's round trip; one-way messages per second unchanged.
//!
//! Invariant: the CPUs are those the process could use when the first
//! thread was placed (every later mask is a part of them).

use crate::host;
use std::sync::OnceLock;

/// Which thread to place.
#[derive(Clone, Copy, Debug)]
pub enum Role {
    /// The thread that runs the vCPU: the first CPU.
    Vcpu,
    /// The stream relay's thread: the last CPU.
    Relay,
    /// Any other thread of a daemon: every CPU but the vCPU's.
    Apart,
}

/// Pins the calling thread for `role`, if the process has two CPUs or more.
/// Failure only costs speed, so it is ignored.
pub fn pin(role: Role) {
    static CPUS: OnceLock<Vec<usize>> = OnceLock::new();
    let cpus = CPUS.get_or_init(host::allowed_cpus);
    if cpus.len() < 2 {
        return;
    }
    let place = match role {
        Role::Vcpu => &cpus[..1],
        Role::Relay => &cpus[cpus.len() - 1..],
        Role::Apart => &cpus[1..],
    };
    let _ = host::pin_current_thread(place);
}
