//! Keeping the vCPU and the stream relay on different host CPUs.
//!
//! Both sides of a busy stream poll for a while before sleeping (a sleep is
//! expensive on nested KVM, see `user/src/stream.rs`). If the scheduler puts
//! the vCPU thread and the relay thread on the same CPU, each polls while the
//! other cannot run: measured on a 2-CPU host, reading a 256 MiB file took
//! 160 ms or 380 ms (4000 guest sleeps) depending on placement. When the
//! process may use at least two CPUs, the vCPU thread takes the first and
//! the relay thread the last; otherwise nothing is pinned.

use crate::host;

/// Which thread to place.
#[derive(Clone, Copy, Debug)]
pub enum Role {
    /// The thread that runs the vCPU.
    Vcpu,
    /// The stream relay's thread.
    Relay,
}

/// Pins the calling thread for `role`, if the process has two CPUs or more.
/// Failure only costs speed, so it is ignored.
pub fn pin(role: Role) {
    let cpus = host::allowed_cpus();
    if cpus.len() < 2 {
        return;
    }
    let cpu = match role {
        Role::Vcpu => cpus[0],
        Role::Relay => cpus[cpus.len() - 1],
    };
    let _ = host::pin_current_thread(cpu);
}
