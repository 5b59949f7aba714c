//! `weft-kernel-core`: the Weft kernel's decisions, as pure data and
//! functions that run (and are tested) on the host.
//!
//! What this crate owns (PROTOCOL.md §14, §1.1):
//! - [`table`]: the process table: slots, pids, parents, states, CPU time,
//!   and the spawn, `map` and switch bookkeeping.
//! - [`end`]: how processes end and who learns their status: exit, kill and
//!   fault statuses, orphans, `await`.
//! - [`pick`]: the wait conditions and the scheduling decision (round-robin
//!   over runnable slots) with the timer deadline it needs.
//! - [`clock`]: TSC and timer arithmetic: deadlines, slices, the one-shot
//!   timer's count and when writing it can be skipped.
//! - [`memory`]: frame allocation from the boot memory map's `USABLE`
//!   regions, the kernel heap and kernel stacks carved from them, and the
//!   bounds checks of guest-RAM ranges.
//!
//! What it does not own: anything that touches hardware or memory by
//! address. The kernel (`weft-kernel`) reads the TSC, the stream-interrupt
//! count and the boot info, passes them in, and acts on the answers:
//! switching stacks and page tables, writing the timer, halting, making
//! hypercalls, walking page tables through the direct map. This crate has
//! no `unsafe`, no `asm!`, no allocation and no dynamic dispatch; the
//! callbacks it takes are generic, so the kernel's calls compile as if the
//! code were its own.
//!
//! Invariant for callers: the kernel runs on one CPU with interrupts masked
//! whenever it touches a [`table::Table`], so each method here sees and
//! leaves a consistent table.
//!
//! ```
//! use weft_kernel_core::pick::Next;
//! use weft_kernel_core::table::{Admitted, Table};
//!
//! let mut t = Table::new();
//! t.start(0x1000, 0x4000_0080_0000, 0xFFFF_FFFF_C000_0000, 0);
//! let pid = t.spawn(|_| Ok(Admitted { root: 0x2000, heap_base: 0x4000_0080_0000, kernel_stack: 0xFFFF_8000_0010_4000 }));
//! assert_eq!(pid, Ok(2));
//! // The first program (slot 0) runs; the new process (slot 1) is next.
//! assert_eq!(t.pick(0, 0, 10).next, Next::Run(1));
//! ```
#![no_std]
#![forbid(unsafe_code)]

pub mod clock;
pub mod end;
pub mod memory;
pub mod pick;
pub mod table;
