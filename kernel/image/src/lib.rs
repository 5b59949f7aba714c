//! `weft-image`: turn an executable into an address space — validate a static
//! x86_64 ELF file into a load plan ([`elf`]) and build or walk 4-level page
//! tables ([`paging`]).
//!
//! The monitor uses this crate to prepare the kernel's and the first program's
//! address spaces before the guest starts; the kernel uses the same code to spawn
//! programs later. It is therefore `no_std`, needs no allocator, has no `unsafe`,
//! and is tested on the host.
//!
//! What this crate owns: the rules an executable must satisfy to be loaded (see
//! [`elf`]'s invariants) and the page-table entry format this project writes and
//! reads (see [`paging`]'s invariants).
//!
//! What it does not own: where images or frames live, how physical memory is
//! reached ([`paging::PhysMemory`] and [`paging::FrameAllocator`] are supplied by
//! the caller), copying segment bytes, or the guest address-space layout (that is
//! `weft_control::layout`).
//!
//! Both ELF files and page tables may come from the other side of a trust
//! boundary: no input makes any function here panic, index out of bounds,
//! overflow or loop without bound.
//!
//! ```
//! use weft_image::elf;
//! let err = elf::parse(b"MZ\x90\x00", 0x1_0000..0x8000_0000).unwrap_err();
//! assert_eq!(err.to_string(), "not an ELF file");
//! ```
#![no_std]
#![forbid(unsafe_code)]

#[cfg(test)]
extern crate std;

pub mod elf;
pub mod paging;
