//! Guest memory layout shared by the monitor, the kernel and user programs
//! (PROTOCOL.md §1).
//!
//! The monitor builds every address space before the first guest instruction; the
//! kernel and programs rely on these constants, never on where the monitor happened
//! to place a physical frame (that is in the boot info).

/// Size of a page and of a physical frame.
pub const PAGE_SIZE: u64 = 4096;

/// Kernel virtual address at which all guest RAM is mapped, read/write, no-execute,
/// supervisor-only: physical address `p` is at `DIRECT_MAP_BASE + p`.
pub const DIRECT_MAP_BASE: u64 = 0xFFFF_8000_0000_0000;
/// The local APIC's registers in xAPIC mode (physical 0xFEE0_0000), where
/// the kernel reaches them when the boot info says `XAPIC` (§1.2).
pub const XAPIC_BASE: u64 = DIRECT_MAP_BASE + XAPIC_PHYS;
/// The local APIC's guest-physical address.
pub const XAPIC_PHYS: u64 = 0xFEE0_0000;

/// Lowest address of the kernel half; the kernel ELF must load at or above it.
pub const KERNEL_SPACE_BASE: u64 = 0xFFFF_8000_0000_0000;

/// The kernel ELF's segments must lie in `[KERNEL_IMAGE_BASE, KERNEL_IMAGE_TOP)`
/// (the top 2 GiB, as the kernel code model requires, below the stacks).
pub const KERNEL_IMAGE_BASE: u64 = 0xFFFF_FFFF_8000_0000;
/// See [`KERNEL_IMAGE_BASE`].
pub const KERNEL_IMAGE_TOP: u64 = 0xFFFF_FFFF_BF00_0000;

/// Top of the boot kernel stack (it grows down; the page below its lowest page is
/// left unmapped as a guard).
pub const KERNEL_STACK_TOP: u64 = 0xFFFF_FFFF_C000_0000;
/// Size of the boot kernel stack.
pub const KERNEL_STACK_SIZE: u64 = 64 * 1024;
/// Top of the double-fault stack (TSS IST1), with a guard page below it too.
pub const FAULT_STACK_TOP: u64 = 0xFFFF_FFFF_C010_0000;
/// Size of the double-fault stack.
pub const FAULT_STACK_SIZE: u64 = 16 * 1024;

/// Lowest address a program may load at (the first 64 KiB stay unmapped so null
/// and near-null dereferences fault).
pub const USER_BASE: u64 = 0x0001_0000;
/// One past the highest user address (end of the canonical lower half).
pub const USER_TOP: u64 = 0x0000_8000_0000_0000;
/// The program arguments block (§4) is mapped read-only here.
pub const USER_ARGS_ADDR: u64 = 0x0000_7FFF_F000_0000;
/// Largest arguments block the monitor builds.
pub const USER_ARGS_MAX: u64 = 64 * 1024;
/// The system page (§4.2) is mapped read-only here.
pub const USER_SYSTEM_ADDR: u64 = 0x0000_7FFF_F010_0000;
/// The process status page (§14.6) is mapped read-only here, in every
/// program: a ring end polls it to learn whether another process waits for
/// the CPU (§8.4).
pub const USER_STATUS_ADDR: u64 = 0x0000_7FFF_F020_0000;
/// Top of the user stack; the page below its lowest page is unmapped.
pub const USER_STACK_TOP: u64 = 0x0000_7FFF_E000_0000;
/// Size of the user stack.
pub const USER_STACK_SIZE: u64 = 256 * 1024;
/// Anonymous user memory (the `map` syscall) is placed from here upwards.
pub const USER_HEAP_BASE: u64 = 0x0000_4000_0000_0000;
/// The least of the anonymous area mapped read/write and zeroed before the
/// program starts ([`heap_premapped`]); `map` hands out addresses after it.
pub const USER_HEAP_INITIAL: u64 = 8 << 20;

/// How much of the anonymous area the monitor maps before the program
/// starts, for a guest of `mem_bytes`: half the guest's memory, between
/// [`USER_HEAP_INITIAL`] and 1 GiB, in whole 2 MiB. Mapping is native work
/// for the monitor (~10 µs per MiB), while growing through `map` costs
/// ~65 µs per 4 KiB page of emulated ring 0 (~17 ms per MiB): a Wasm app
/// taking 15 MiB went from 0.9 s to a few ms. Untouched pages cost the host
/// nothing.
pub const fn heap_premapped(mem_bytes: u64) -> u64 {
    let half = mem_bytes / 2;
    let bytes = if half < USER_HEAP_INITIAL {
        USER_HEAP_INITIAL
    } else if half > 1 << 30 {
        1 << 30
    } else {
        half
    };
    bytes & !((2 << 20) - 1)
}
/// One past the highest address of the anonymous user memory area.
pub const USER_HEAP_TOP: u64 = 0x0000_6000_0000_0000;
/// The payload block (§4.1), if the monitor gives one, is mapped read-only
/// here: a little-endian `u64` length, then that many bytes (a Wasm module
/// for the Wasm runtime).
pub const USER_PAYLOAD_ADDR: u64 = 0x0000_6000_0000_0000;
/// Largest payload block (length word included).
pub const USER_PAYLOAD_MAX: u64 = 1 << 30;

/// GDT selectors (§2.4). `USER_DATA` precedes `USER_CODE` as SYSRET requires.
pub mod selector {
    /// 64-bit kernel code.
    pub const KERNEL_CODE: u16 = 0x08;
    /// Kernel data and stack.
    pub const KERNEL_DATA: u16 = 0x10;
    /// User data and stack, RPL 3.
    pub const USER_DATA: u16 = 0x18 | 3;
    /// 64-bit user code, RPL 3.
    pub const USER_CODE: u16 = 0x20 | 3;
    /// The task-state segment (a 16-byte descriptor).
    pub const TSS: u16 = 0x28;
}

/// Interrupt vectors the kernel handles (§2.5).
pub mod vector {
    /// Exceptions occupy vectors 0..=31.
    pub const EXCEPTIONS: u8 = 32;
    /// The local APIC timer.
    pub const TIMER: u8 = 0x20;
    /// The monitor's stream interrupt (an MSI from an irqfd, §8).
    pub const STREAM: u8 = 0x21;
    /// The syscall gate, the only vector ring 3 may raise: `int3` (PROTOCOL.md
    /// §5.1 explains why not `syscall` or `int 0x80`).
    pub const SYSCALL: u8 = 3;
    /// The local APIC spurious-interrupt vector.
    pub const SPURIOUS: u8 = 0xFF;
    /// The double-fault exception, which runs on IST1.
    pub const DOUBLE_FAULT: u8 = 8;
    /// Number of entries in the kernel's vector table: 0..=32, STREAM,
    /// SPURIOUS, then the xAPIC variants of TIMER and STREAM.
    pub const TABLE_LEN: usize = 37;
}

/// True if `[addr, addr + len)` is a non-empty or empty range that lies entirely in
/// the user half, without overflow.
pub const fn is_user_range(addr: u64, len: u64) -> bool {
    match addr.checked_add(len) {
        Some(end) => addr >= USER_BASE && end <= USER_TOP,
        None => false,
    }
}

const _: () = {
    assert!(USER_ARGS_ADDR + USER_ARGS_MAX <= USER_SYSTEM_ADDR);
    assert!(USER_SYSTEM_ADDR + PAGE_SIZE <= USER_STATUS_ADDR);
    assert!(USER_STATUS_ADDR + PAGE_SIZE <= USER_TOP);
    assert!(USER_STACK_TOP <= USER_ARGS_ADDR);
    assert!(USER_HEAP_TOP <= USER_STACK_TOP - USER_STACK_SIZE);
    assert!(USER_HEAP_TOP <= USER_PAYLOAD_ADDR);
    assert!(USER_PAYLOAD_ADDR + USER_PAYLOAD_MAX <= crate::streams::USER_PIPES_ADDR);
    assert!(KERNEL_IMAGE_TOP + PAGE_SIZE <= KERNEL_STACK_TOP - KERNEL_STACK_SIZE);
    assert!(KERNEL_STACK_TOP + PAGE_SIZE <= FAULT_STACK_TOP - FAULT_STACK_SIZE);
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_range_rejects_overflow_and_kernel_half() {
        assert!(is_user_range(USER_BASE, 10));
        assert!(!is_user_range(0, 10));
        assert!(!is_user_range(USER_TOP - 4, 8));
        assert!(!is_user_range(u64::MAX - 2, 8));
        assert!(is_user_range(USER_TOP - 8, 8));
    }
}
