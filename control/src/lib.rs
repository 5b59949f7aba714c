//! `weft-control`: every byte layout that crosses the guest/monitor boundary,
//! except the data-pipe ring itself (that is `weft-data-pipe`).
//!
//! What this crate owns: the guest memory layout constants (PROTOCOL.md §1), the
//! boot-info block and the kernel manifest (§2), the hypercall port, numbers and
//! mailbox (§3), the program arguments block (§4), the error codes (§6) and the
//! pipe region's stream slots and doorbell (§8), the frames of the control
//! pipe and of every stream protocol (§9–§12), and the process records
//! (§14).
//!
//! What it does not own: any I/O, any `unsafe`, the syscall ABI between the kernel
//! and user programs (`weft-abi`), or how either side reaches guest memory.
//!
//! Invariants: every `#[repr(C)]` type here has only unsigned-integer fields (no
//! `bool`, no data-carrying enum, no implicit padding) and carries compile-time
//! size and offset asserts naming the PROTOCOL.md section it implements. All
//! multi-byte values are little-endian (the only architecture is x86_64).
//!
//! The interface version ([`INTERFACE_VERSION`]) is independent of the crate's
//! semver: it changes whenever a layout or meaning here changes, and the monitor
//! refuses a kernel whose manifest states another version.
#![no_std]
#![forbid(unsafe_code)]

pub mod app;
pub mod args;
pub mod boot;
mod codec;
pub mod control_pipe;
pub mod error;
pub mod frame;
pub mod fs_proto;
pub mod hypercall;
pub mod layout;
pub mod net_proto;
pub mod process;
pub mod streams;
pub mod system;

/// The version of the guest/monitor interface described by PROTOCOL.md.
pub const INTERFACE_VERSION: u32 = 7;

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
