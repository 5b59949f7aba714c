//! `weft-control`: every byte layout that crosses the guest/monitor boundary,
//! except the data-pipe ring itself (that is `weft-data-pipe`).
//!
//! What this crate owns: the guest memory layout constants (PROTOCOL.md §1), the
//! boot-info block and the kernel manifest (§2), the hypercall port, numbers and
//! mailbox (§3), the program arguments block (§4), the error codes (§6) and the
//! pipe region's stream slots and doorbell (§8), the frames of the control
//! pipe and of every stream protocol (§9–§12, §15, §17, §18), the process records (§14),
//! the exit statuses with a fixed meaning, and the snapshot of a Wasm app that
//! moves between devices (§19.1, [`snapshot`]).
//!
//! What it does not own: any I/O, any `unsafe`, the syscall ABI between the kernel
//! and user programs (`weft-abi`), or how either side reaches guest memory.
//!
//! Invariants: every fixed-size layout is declared once, with
//! [`wire_layout!`](crate::wire_layout): its field list with their offsets yields the struct, the
//! compile-time checks (fields in order, no overlap, within the size; for a
//! block read in place, the `#[repr(C)]` struct's size and offsets) and the
//! codec, so a layout cannot be written three ways. Fields are unsigned
//! integers, arrays of them or other layouts (no `bool`, no data-carrying
//! enum); each names the PROTOCOL.md section it implements. All multi-byte
//! values are little-endian (the only architecture is x86_64). Variable-length
//! frames are built and read with [`frame::Encoder`] and [`frame::Decoder`],
//! which report overflow and truncation instead of dropping bytes.
//!
//! The interface version ([`INTERFACE_VERSION`]) is independent of the crate's
//! semver: it changes whenever a layout or meaning here changes. The kernel
//! states it in its manifest and every program in its own (§2.1); the monitor
//! refuses either when it states another version. Exit statuses with a fixed
//! meaning are in [`status`].
#![no_std]
#![forbid(unsafe_code)]

#[cfg(feature = "alloc")]
extern crate alloc;

pub mod aot;
pub mod app;
pub mod args;
pub mod boot;
pub mod control_pipe;
pub mod device_proto;
pub mod error;
pub mod fabric_proto;
pub mod firmware;
pub mod frame;
pub mod fs_proto;
pub mod hypercall;
pub mod ipc_proto;
pub mod layout;
pub mod move_proto;
pub mod net_proto;
pub mod process;
pub mod snapshot;
pub mod status;
pub mod streams;
pub mod system;
pub mod wire;

/// The version of the guest/monitor interface described by PROTOCOL.md.
pub const INTERFACE_VERSION: u32 = 20;

/// Asserts at compile time that `$ty` is `$size` bytes and each named field sits at
/// the given offset.
#[macro_export]
macro_rules! assert_layout {
    ($ty:ty, size = $size:expr $(, $field:ident = $off:expr)* $(,)?) => {
        const _: () = {
            assert!(::core::mem::size_of::<$ty>() == $size);
            $( assert!(::core::mem::offset_of!($ty, $field) == $off); )*
        };
    };
}
