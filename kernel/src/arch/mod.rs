//! Everything architecture-specific and every `asm!` of the kernel.
//!
//! `entry` holds the assembly entry points (boot, `SYSCALL`, exception and
//! interrupt vectors), the process switch and the kernel manifest; `cpu` the single-instruction
//! wrappers the rest of the kernel calls.

pub mod cpu;
mod entry;
mod firmware;

pub use entry::{FIRST_FRAME_WORDS, enter_user, first_frame, switch};
