//! Program entry, exit and the panic handler.

#[cfg(not(test))]
use crate::args::Args;
use crate::syscall::syscall;
use core::arch::global_asm;
use weft_abi::nr;
use weft_control::status;

// The kernel enters here with rdi = arguments block, rsi = its length and a
// 16-byte aligned stack (PROTOCOL.md §5.1). Host unit tests have their own.
#[cfg(not(test))]
global_asm!(
    ".pushsection .text._start, \"ax\"",
    ".global _start",
    "_start:",
    "    xor ebp, ebp",
    "    call {start}",
    "    ud2",
    ".popsection",
    start = sym weft_user_start,
);

// The program manifest (PROTOCOL.md §2.1): the interface version this
// program was built for, which the monitor checks before running it. "R"
// (SHF_GNU_RETAIN) keeps the unreferenced section through the linker's
// section garbage collection.
global_asm!(
    ".pushsection .weft_program, \"aR\"",
    ".balign 8",
    "    .quad {magic}",
    "    .long {version}",
    "    .long 0",
    ".popsection",
    magic = const weft_control::boot::PROGRAM_MAGIC,
    version = const weft_control::INTERFACE_VERSION,
);

#[cfg(not(test))]
unsafe extern "Rust" {
    /// Defined by the program with [`crate::entry!`].
    fn weft_program_main(args: Args<'static>) -> i32;
}

#[cfg(not(test))]
extern "C" fn weft_user_start(args_addr: u64, args_len: u64) -> ! {
    let args = Args::from_block(args_addr, args_len);
    // SAFETY: `entry!` defines this function with exactly this signature.
    let status = unsafe { weft_program_main(args) };
    exit(status)
}

/// Ends the program with `status` (0..=125; anything else exits with
/// [`status::CRASHED`], 125).
pub fn exit(status: i32) -> ! {
    let status = u64::try_from(status)
        .ok()
        .filter(|s| *s <= weft_abi::MAX_EXIT_STATUS)
        .unwrap_or(status::CRASHED.into());
    // SAFETY: no pointer arguments; `exit` does not return on success.
    let _ = unsafe { syscall(nr::EXIT, status, 0, 0, 0) };
    loop {
        core::hint::spin_loop();
    }
}

/// Blocks for at least `duration`.
pub fn sleep(duration: core::time::Duration) {
    let ns = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
    // SAFETY: no pointer arguments.
    let _ = unsafe { syscall(nr::SLEEP, ns, 0, 0, 0) };
}

#[cfg(not(test))]
#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    crate::eprintln!("program panicked: {info}");
    exit(status::PANICKED.into())
}
