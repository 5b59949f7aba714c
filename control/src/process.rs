//! Processes (PROTOCOL.md §14): the spawn request a program hands the kernel,
//! the records it reads back, and what the monitor reports per process slot.
//!
//! The kernel keeps the process table ([`MAX_PROCESSES`] slots); the monitor
//! builds each process's address space (natively, through the `SPAWN`
//! hypercall) and owns its memory and its pipe region: slot `i` uses pipe
//! region `i` ([`crate::streams::region_gpa`]). All values little-endian.

use crate::streams;

/// Process-table slots, and so processes alive at once (slot 0 is the first
/// program's).
pub const MAX_PROCESSES: usize = streams::REGIONS as usize;
/// Anonymous memory mapped before a spawned program starts, unless its
/// request asks for another amount.
pub const DEFAULT_HEAP: u64 = 2 << 20;
/// The most anonymous memory a spawn request may ask to have mapped.
pub const MAX_HEAP: u64 = 1 << 30;
/// Bytes of a program name in records (the last path component of its
/// first argument, truncated, NUL-padded).
pub const NAME_LEN: usize = 24;

/// Exit status of a process that was killed ([`crate::status::KILLED`]).
pub const KILLED_STATUS: u32 = crate::status::KILLED as u32;
/// Exit status of a process that faulted ([`crate::status::CRASHED`]).
pub const CRASHED_STATUS: u32 = crate::status::CRASHED as u32;

/// How a process ended (`PROCESS_END`'s third argument).
pub mod end {
    /// It called `exit`.
    pub const EXITED: u64 = 0;
    /// Another process killed it.
    pub const KILLED: u64 = 1;
    /// It faulted; the fault report is in the mailbox.
    pub const FAULTED: u64 = 2;
}

/// [`SpawnRequest::source`] values.
pub mod source {
    /// `image` is the name of a program bundled with `weft`.
    pub const BUNDLED: u32 = 1;
    /// `image` is an ELF executable in the caller's memory.
    pub const ELF: u32 = 2;
}

/// [`SpawnRequest::tier`] values: how a Wasm module runs (PROTOCOL.md
/// §13.8). Any other image takes only [`tier::DEFAULT`].
pub mod tier {
    /// As the guest runs modules by default (`weft run --engine`,
    /// `weft daemon --engine`).
    pub const DEFAULT: u32 = 0;
    /// In the interpreter (the bundled Wasm runtime).
    pub const INTERP: u32 = 1;
    /// Compiled ahead of time by the monitor.
    pub const COMPILED: u32 = 2;

    /// Whether `t` is one of the values above.
    pub const fn is_valid(t: u32) -> bool {
        t <= COMPILED
    }
}

crate::wire_layout! {
    /// What to run: 48 bytes in the caller's memory (§14.2).
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct SpawnRequest: 48, strict {
        /// [`source`].
        [0] pub source: u32,
        /// [`tier`]: for a Wasm module, how it runs.
        [4] pub tier: u32,
        /// User address of the name or ELF bytes.
        [8] pub image_addr: u64,
        /// Their length.
        [16] pub image_len: u64,
        /// User address of an arguments block (§4), name first.
        [24] pub args_addr: u64,
        /// Its length.
        [32] pub args_len: u64,
        /// Anonymous memory mapped at entry; 0: [`DEFAULT_HEAP`].
        [40] pub heap_bytes: u64,
    }
}

/// [`ProcessRecord::state`] values.
pub mod state {
    /// Running or ready to run.
    pub const RUNNABLE: u32 = 1;
    /// Waiting (streams, a timer, another process).
    pub const BLOCKED: u32 = 2;
    /// Ended; its parent has not yet collected its status.
    pub const ENDED: u32 = 3;
}

crate::wire_layout! {
    /// One process as the `PROCESSES` and `PROCESS` syscalls report it: 64
    /// bytes (§14.3). Bytes 36..40 are reserved (zero).
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct ProcessRecord: 64 {
        [0] pub pid: u32,
        /// 0: none.
        [4] pub parent: u32,
        /// [`state`].
        [8] pub state: u32,
        /// Exit status once [`state::ENDED`].
        [12] pub status: u32,
        /// Time it has run.
        [16] pub cpu_ns: u64,
        /// Bytes of memory the monitor gave it.
        [24] pub memory: u64,
        /// Streams open (control pipe and standard streams included).
        [32] pub streams: u32,
        /// [`name_of`] its first argument.
        [40] pub name: [u8; NAME_LEN],
    }
}

impl ProcessRecord {
    /// The name up to its first NUL.
    pub fn name(&self) -> &[u8] {
        name_text(&self.name)
    }
}

/// A recorded name up to its first NUL (process records here, Wasm app
/// records in [`crate::app`]).
pub fn name_text<const N: usize>(name: &[u8; N]) -> &[u8] {
    let end = name.iter().position(|b| *b == 0).unwrap_or(N);
    &name[..end]
}

/// The name recorded for a program whose first argument is `arg0`: its last
/// `/`-separated component, cut to the record's `N` bytes
/// ([`NAME_LEN`] here, [`crate::app::NAME_LEN`] for Wasm apps).
pub fn name_of<const N: usize>(arg0: &[u8]) -> [u8; N] {
    let base = arg0.rsplit(|b| *b == b'/').next().unwrap_or(arg0);
    let mut name = [0u8; N];
    let n = base.len().min(N);
    name[..n].copy_from_slice(&base[..n]);
    name
}

crate::wire_layout! {
    /// One slot of the process status page (§14.6): 24 bytes.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct SlotStatus: 24, in_place {
        [0] pub pid: u32,
        /// 0: none.
        [4] pub parent: u32,
        /// [`state`].
        [8] pub state: u32,
        /// Exit status once [`state::ENDED`].
        [12] pub status: u32,
        /// Guest TSC ticks it ran up to its last switch out (or the CPU's
        /// last halt); the running process has run since
        /// [`StatusPage::switched_in`] too.
        [16] pub cpu_ticks: u64,
    }
}

crate::wire_layout! {
    /// The process status page (§14.6): the kernel's table as the monitor
    /// reads it without entering the guest. The kernel writes it at each
    /// scheduling decision, `seq` odd while it does (a sequence lock: a
    /// reader copies the page and keeps the copy only if `seq` was even
    /// and unchanged around it). Only the slots `occupied` names mean
    /// anything.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct StatusPage: 432, in_place {
        /// Even when the page is whole; odd while the kernel writes it.
        [0] pub seq: u64,
        /// Bit `i` set: slot `i` holds a process.
        [8] pub occupied: u32,
        /// The slot that runs, or last ran.
        [12] pub current: u32,
        /// Guest TSC when `current` was switched in (or woke from a halt).
        [16] pub switched_in: u64,
        /// 1 while the CPU halts with nothing to run.
        [24] pub idle: u32,
        /// Bit `i` set: slot `i`'s process is runnable (`current`'s
        /// included, while it runs).
        [28] pub runnable: u32,
        [32] pub slots: [SlotStatus; MAX_PROCESSES],
        /// The monitor's word, outside the sequence lock: bit `i` set when
        /// it raised the stream interrupt for pipe region `i`, whose
        /// process slot is `i` (§8.3). The monitor sets bits with an
        /// atomic OR before raising the interrupt; the kernel takes them
        /// with an atomic swap at each scheduling decision.
        [416] pub wake: u32,
        /// Bit `i` set: the monitor woke slot `i` while its process did not
        /// wait for streams; its next wait ends at once (§8.3).
        [420] pub pending: u32,
        /// Guest TSC the timer is armed to fire by; 0 if it is not armed
        /// (or, for a while after it fired, may still say when it was).
        [424] pub armed: u64,
    }
}

crate::wire_layout! {
    /// What the monitor knows of one process slot, as the `FIGURES`
    /// hypercall reports it: 40 bytes (§3.3).
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct SlotFigures: 40 {
        /// Bytes of guest memory the slot's process holds.
        [0] pub memory: u64,
        /// Streams open in its pipe region.
        [8] pub streams: u32,
        /// 1 if a process holds the slot, else 0.
        [12] pub live: u32,
        /// [`name_of`] its program.
        [16] pub name: [u8; NAME_LEN],
    }
}

const _: () = assert!(MAX_PROCESSES * SlotFigures::SIZE <= crate::hypercall::DATA_LEN);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spawn_requests_round_trip() {
        let r = SpawnRequest {
            source: source::ELF,
            tier: tier::COMPILED,
            image_addr: 0x1000,
            image_len: 2,
            args_addr: 0x2000,
            args_len: 3,
            heap_bytes: 4 << 20,
        };
        let mut b = r.encode();
        assert_eq!(SpawnRequest::decode(&b), Some(r));
        assert_eq!(&b[4..8], &2u32.to_le_bytes());
        assert_eq!(&b[8..16], &0x1000u64.to_le_bytes());
        b[4] = 9;
        assert_eq!(SpawnRequest::decode(&b).map(|r| r.tier), Some(9));
    }

    #[test]
    fn records_and_figures_round_trip() {
        let rec = ProcessRecord {
            pid: 3,
            parent: 1,
            state: state::ENDED,
            status: 137,
            cpu_ns: 5,
            memory: 6,
            streams: 4,
            name: name_of(b"/bin/spin"),
        };
        let b = rec.encode();
        assert_eq!(&b[40..44], b"spin");
        assert_eq!(ProcessRecord::decode(&b), rec);
        assert_eq!(rec.name(), b"spin");
        let f = SlotFigures {
            memory: 1 << 20,
            streams: 3,
            live: 1,
            name: name_of(b"hello"),
        };
        assert_eq!(SlotFigures::decode(&f.encode()), f);
    }

    #[test]
    fn names_are_the_last_component_cut_to_fit() {
        assert_eq!(&name_of::<NAME_LEN>(b"a/b/c")[..2], b"c\0");
        assert_eq!(name_of(&[b'x'; 40]), [b'x'; NAME_LEN]);
        assert_eq!(name_of(b""), [0; NAME_LEN]);
    }
}
