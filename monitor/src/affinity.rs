//! Where the monitor's threads run: the vCPU on a host CPU of its own, every
//! other thread on the others.
//!
//! Both sides of a busy stream poll for a while before sleeping (a sleep is
//! expensive on nested KVM, see `user/src/stream.rs`). If the scheduler puts
//! the vCPU thread and the relay thread on the same CPU, each polls while the
//! other cannot run: measured on a 2-CPU host, reading a 256 MiB file took
//! 160 ms or 380 ms (4000 guest sleeps) depending on placement.
//!
//! The same holds for every thread that wakes the vCPU: a parked vCPU
//! (PROTOCOL.md §8.4) woken by a message from another device should find its
//! CPU free, not busy with the Zenoh thread that woke it. So the vCPU's CPU
//! is its own, and the relay, the daemon's runtime and Zenoh's threads run
//! on the others.
//!
//! Several wefts on one host (a fabric's devices in one machine's network
//! namespaces, guests run side by side) each claim a different CPU for
//! their vCPU while there are enough: the claim is an exclusive lock on a
//! byte of one shared file ([`claims_file`]), the first free byte in
//! order, so the k-th weft running at once takes the k-th CPU (modulo
//! their number), and a weft's claim ends with its process. Without the
//! file, the vCPU takes the first CPU. With one CPU, nothing is placed.
//!
//! Measured on a 2-CPU host with two daemons (`make bench`'s fabric part,
//! 8 runs each, taken in turns with the placement before, where both
//! vCPUs shared the first CPU and the other threads floated):
//! `ipc_rtt_cross_device_us` went from 1.35–1.70 (median 1.49) to
//! 1.23–1.37 (median 1.26) times raw Zenoh's round trip (1.21–1.53,
//! median 1.31, over 26 runs in all), and a 1 MiB move's downtime from
//! 12.6–16.8 ms to 11.6–14.0 ms (3 runs each); `weft run`'s stream
//! figures (file reads, the TCP relay) did not move. Both daemons' vCPUs
//! on one CPU and all their other threads on the other made the round
//! trip as fast but the moves slower: the two daemons' Zenoh threads then
//! shared one CPU.
//!
//! Invariant: [`place_process`] runs while the process has one thread, so
//! every thread started later inherits "the others", but those started by
//! the vCPU thread once it has pinned itself ([`Role::Vcpu`]).

use crate::host;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Which thread to place.
#[derive(Clone, Copy, Debug)]
pub enum Role {
    /// The thread that runs the vCPU: its own CPU.
    Vcpu,
    /// The stream relay's thread: the others.
    Relay,
}

/// Bytes of the claims file tried, at most: wefts running at once beyond
/// this many share the first CPU.
const MAX_CLAIMS: u64 = 1024;

/// The process's placement, once chosen.
#[derive(Debug)]
struct Placement {
    vcpu: usize,
    /// Every allowed CPU but the vCPU's.
    others: Vec<usize>,
    /// Holds the claim on the vCPU's CPU while the process lives.
    _claim: Option<File>,
}

static PLACEMENT: OnceLock<Option<Placement>> = OnceLock::new();

/// Claims a CPU for this process's vCPU and moves the calling thread to
/// the others, so that the threads it starts run there. Called first by a
/// weft that runs a guest, while it has one thread; later calls do nothing.
pub fn place_process() {
    PLACEMENT.get_or_init(|| {
        let placement = choose(claim(&claims_file()));
        if let Some(p) = &placement {
            // Failure only costs speed, so it is ignored.
            let _ = host::pin_current_thread(&p.others);
        }
        placement
    });
}

/// Pins the calling thread for `role`, if the process has two CPUs or more
/// (with no CPU claimed when [`place_process`] did not run: QEMU's runs).
/// Failure only costs speed, so it is ignored.
pub fn pin(role: Role) {
    let Some(p) = PLACEMENT.get_or_init(|| choose(None)) else {
        return;
    };
    let _ = match role {
        Role::Vcpu => host::pin_current_thread(&[p.vcpu]),
        Role::Relay => host::pin_current_thread(&p.others),
    };
}

/// The placement for `claim` (the claimed byte and the file holding it),
/// if the process may use two CPUs or more.
fn choose(claim: Option<(u64, File)>) -> Option<Placement> {
    let cpus = host::allowed_cpus();
    if cpus.len() < 2 {
        return None;
    }
    let (index, claim) = match claim {
        Some((at, file)) => (usize::try_from(at).unwrap_or(0) % cpus.len(), Some(file)),
        None => (0, None),
    };
    let vcpu = cpus[index];
    Some(Placement {
        vcpu,
        others: cpus.into_iter().filter(|&c| c != vcpu).collect(),
        _claim: claim,
    })
}

/// The first free byte of the claims file `path`, locked, and the file;
/// `None` if it cannot be opened for writing (another user's, say).
fn claim(path: &Path) -> Option<(u64, File)> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o666)
        .open(path)
        .ok()?;
    // Past the umask, so that every user's wefts can claim in it (only
    // its owner can widen it; failing leaves the others unclaimed).
    let _ = file.set_permissions(std::fs::Permissions::from_mode(0o666));
    let at = (0..MAX_CLAIMS).find(|&at| host::lock_byte(&file, at).is_ok())?;
    Some((at, file))
}

/// The host-wide file whose bytes are the claims: in `/run/lock` (shared
/// by every network namespace of the host, emptied at boot), else in the
/// temporary directory.
fn claims_file() -> PathBuf {
    let lock = PathBuf::from("/run/lock");
    let dir = if lock.is_dir() {
        lock
    } else {
        std::env::temp_dir()
    };
    dir.join("weft-vcpus")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claim_takes_the_first_free_byte_and_ends_with_its_file() {
        let path = std::env::temp_dir().join(format!("weft-claims-{}", std::process::id()));
        let first = claim(&path).expect("the claims file opens");
        let second = claim(&path).expect("the claims file opens");
        assert_eq!((first.0, second.0), (0, 1));
        drop(first);
        let third = claim(&path).expect("the claims file opens");
        assert_eq!(third.0, 0);
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn the_vcpu_takes_the_claimed_cpu_modulo_their_number_and_the_others_the_rest() {
        let cpus = host::allowed_cpus();
        if cpus.len() < 2 {
            assert!(choose(None).is_none());
            return;
        }
        let unclaimed = choose(None).unwrap();
        assert_eq!(unclaimed.vcpu, cpus[0]);
        assert_eq!(unclaimed.others, cpus[1..]);
        let any_file = File::open("/dev/null").unwrap();
        let placed = choose(Some((cpus.len() as u64 + 1, any_file))).unwrap();
        assert_eq!(placed.vcpu, cpus[1]);
        let mut rest = cpus.clone();
        rest.remove(1);
        assert_eq!(placed.others, rest);
    }
}
