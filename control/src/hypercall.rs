//! Hypercalls: the port, the numbers and the per-CPU mailbox (PROTOCOL.md §3).
//!
//! A hypercall is one 8-bit `out` to [`PORT`] whose value is the hypercall
//! number; its arguments and result live in the calling CPU's [`Mailbox`] page,
//! whose guest-physical address the monitor chose at boot. Every hypercall is a
//! VM exit (10–40 µs here), so they are for rare control only: the data path never
//! uses them.

/// A hypercall's access width in bytes: one (`out dx, al`). QEMU's
/// debug-port device passes single bytes only (§22.3), so a number is at
/// most 255.
pub const WIDTH: u8 = 1;

/// The I/O port a hypercall writes its number to: QEMU's conventional
/// debug port, free on both VMMs (QEMU's firmware configuration device
/// holds 0x510).
pub const PORT: u16 = 0x00E9;

/// The mailbox's `done` once the monitor has answered the call.
pub const DONE: u64 = 1;

/// Hypercall numbers (§3.3). Numbers are never reused.
pub mod nr {
    /// Write bytes to the monitor's standard output or error.
    pub const CONSOLE_WRITE: u32 = 1;
    /// Stop the VM; the program's exit status is `args[0]`.
    pub const EXIT: u32 = 2;
    /// Kernel panic: message in `data`, registers in `args`.
    pub const PANIC: u32 = 3;
    /// CPU exception the kernel could not handle: a [`super::FaultReport`] in `data`.
    pub const FAULT: u32 = 4;
    /// Build a process's address space (§14.4): `args` = slot, pid, the
    /// caller's PML4, the user address of its `SpawnRequest`; on success
    /// `data` holds the new program's `ProgramInfo` (§2.2).
    pub const SPAWN: u32 = 5;
    /// Map zeroed read/write user memory into a process (§14.4): `args` =
    /// slot, PML4, user address, pages.
    pub const MAP: u32 = 6;
    /// A process other than the first ended (§14.4): `args` = slot, pid, how
    /// (`crate::process::end`); for a fault, a [`super::FaultReport`] in
    /// `data`.
    pub const PROCESS_END: u32 = 7;
    /// Per-slot figures (§14.4): `data` receives `MAX_PROCESSES`
    /// `SlotFigures` records.
    pub const FIGURES: u32 = 8;
    /// A program took an exception (§21): a [`super::FaultReport`] in
    /// `data`. `result` 0: a debugger handled it; the program resumes with
    /// the frame now in `data`. Otherwise the exception takes its course.
    pub const DEBUG: u32 = 9;
}

/// `CONSOLE_WRITE` stream numbers (`args[0]`).
pub mod console {
    /// The monitor's standard output.
    pub const STDOUT: u64 = 1;
    /// The monitor's standard error.
    pub const STDERR: u64 = 2;
    /// `args[2]`: the bytes are in the mailbox's `data`.
    pub const SOURCE_INLINE: u64 = 0;
    /// `args[2]`: the bytes are at user virtual address `args[3]` in the address
    /// space whose PML4 is at guest-physical `args[4]`; every page must be present
    /// and user-accessible.
    pub const SOURCE_USER: u64 = 1;
    /// Largest `len` of one user-source write.
    pub const MAX_USER_WRITE: u64 = 1 << 20;
}

/// Offset of `data` within the mailbox.
pub const DATA_OFFSET: usize = 64;
/// Size of the mailbox's `data` area.
pub const DATA_LEN: usize = 4096 - DATA_OFFSET;

crate::wire_layout! {
    /// The per-CPU hypercall mailbox, one 4 KiB page (§3.2).
    #[derive(Clone, Copy, Debug)]
    pub struct Mailbox: 4096, in_place {
        /// Arguments, meaning per hypercall.
        [0] pub args: [u64; 6],
        /// Written by the monitor before the guest resumes: 0 or an
        /// [`crate::error::ErrorCode`].
        [48] pub result: u64,
        /// Zeroed by the kernel before the call; the monitor sets it to
        /// [`DONE`] once `result` and `data` are written (§3.1).
        [56] pub done: u64,
        /// Inline payload.
        [DATA_OFFSET] pub data: [u8; DATA_LEN],
    }
}

crate::wire_layout! {
    /// General-purpose registers and the CPU's exception frame, in the order
    /// the kernel's exception entry pushes them (lowest address first) (§3.4).
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct FaultFrame: 176, in_place {
        [0] pub r15: u64,
        [8] pub r14: u64,
        [16] pub r13: u64,
        [24] pub r12: u64,
        [32] pub r11: u64,
        [40] pub r10: u64,
        [48] pub r9: u64,
        [56] pub r8: u64,
        [64] pub rbp: u64,
        [72] pub rdi: u64,
        [80] pub rsi: u64,
        [88] pub rdx: u64,
        [96] pub rcx: u64,
        [104] pub rbx: u64,
        [112] pub rax: u64,
        /// Exception vector (0..=31).
        [120] pub vector: u64,
        /// The CPU's error code, or 0 for exceptions without one.
        [128] pub error_code: u64,
        [136] pub rip: u64,
        [144] pub cs: u64,
        [152] pub rflags: u64,
        [160] pub rsp: u64,
        [168] pub ss: u64,
    }
}

crate::wire_layout! {
    /// The `FAULT` hypercall payload: the frame plus the control registers
    /// that explain it (§3.4).
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct FaultReport: 192, in_place {
        [0] pub frame: FaultFrame,
        /// `CR2`: the faulting linear address of a page fault.
        [176] pub cr2: u64,
        /// `CR3`: the page-table root in use.
        [184] pub cr3: u64,
    }
}

impl FaultReport {
    /// True if the fault happened at ring 3 (in the program).
    pub fn from_user(&self) -> bool {
        self.frame.cs & 3 == 3
    }
}

/// The architectural names of exception vectors 0..=31.
pub fn exception_name(vector: u64) -> &'static str {
    const NAMES: [&str; 22] = [
        "divide error",
        "debug",
        "non-maskable interrupt",
        "breakpoint",
        "overflow",
        "bound range exceeded",
        "invalid opcode",
        "device not available",
        "double fault",
        "coprocessor segment overrun",
        "invalid TSS",
        "segment not present",
        "stack-segment fault",
        "general protection fault",
        "page fault",
        "reserved",
        "x87 floating-point error",
        "alignment check",
        "machine check",
        "SIMD floating-point error",
        "virtualization exception",
        "control protection fault",
    ];
    usize::try_from(vector)
        .ok()
        .and_then(|v| NAMES.get(v))
        .copied()
        .unwrap_or("reserved exception")
}

/// Page-fault error-code bits (§3.4).
pub mod pf {
    /// The page was present (a protection violation rather than a missing page).
    pub const PRESENT: u64 = 1 << 0;
    /// The access was a write.
    pub const WRITE: u64 = 1 << 1;
    /// The access came from ring 3.
    pub const USER: u64 = 1 << 2;
    /// The access was an instruction fetch.
    pub const FETCH: u64 = 1 << 4;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_report_decodes_in_push_order() {
        let mut b = [0u8; FaultReport::SIZE];
        for i in 0..24 {
            b[i * 8..i * 8 + 8].copy_from_slice(&(i as u64 + 100).to_le_bytes());
        }
        let r = FaultReport::decode(&b);
        assert_eq!(r.frame.r15, 100);
        assert_eq!(r.frame.rbp, 108);
        assert_eq!(r.frame.vector, 115);
        assert_eq!(r.frame.rip, 117);
        assert_eq!(r.frame.ss, 121);
        assert_eq!((r.cr2, r.cr3), (122, 123));
        assert!(!r.from_user());
    }

    #[test]
    fn exception_names_cover_known_vectors() {
        assert_eq!(exception_name(14), "page fault");
        assert_eq!(exception_name(13), "general protection fault");
        assert_eq!(exception_name(31), "reserved exception");
        assert_eq!(exception_name(u64::MAX), "reserved exception");
    }
}
