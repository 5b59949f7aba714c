//! Keeping the vCPU and the stream relay on different host CPUs.
//!
//! Both sides of a busy stream poll for a while before sleeping (a sleep is
//! expensive on nested KVM, see `user/src/stream.rs`). If the scheduler puts
//! the vCPU thread and the relay thread on the same CPU, each polls while the
//! other cannot run: measured on a 2-CPU host, reading a 256 MiB file took
//! 160 ms or 380 ms (4000 guest sleeps) depending on placement. When the
//! process may use at least two CPUs, the vCPU thread takes the first and
//! the relay thread the last; otherwise nothing is pinned.

/// The CPUs this process may run on, in order.
fn allowed() -> Vec<usize> {
    // SAFETY: `cpu_set_t` is plain data for which all-zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid, writable cpu_set_t of the size passed.
    let r = unsafe { libc::sched_getaffinity(0, std::mem::size_of_val(&set), &mut set) };
    if r != 0 {
        return Vec::new();
    }
    (0..libc::CPU_SETSIZE as usize)
        // SAFETY: `cpu` is below CPU_SETSIZE, the set's capacity.
        .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
        .collect()
}

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
    let cpus = allowed();
    if cpus.len() < 2 {
        return;
    }
    let cpu = match role {
        Role::Vcpu => cpus[0],
        Role::Relay => cpus[cpus.len() - 1],
    };
    // SAFETY: as in `allowed`.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `cpu` came from the allowed set, so it is below CPU_SETSIZE.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: `set` is a valid cpu_set_t of the size passed; 0 is this thread.
    unsafe { libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set) };
}
