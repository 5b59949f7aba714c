//! `weft-user`: the runtime for programs that run at ring 3 in a Weft guest.
//!
//! A program is a `#![no_std]`, `#![no_main]` binary for `x86_64-unknown-none`
//! that names its main function with [`entry!`]:
//!
//! ```ignore
//! #![no_std]
//! #![no_main]
//! use weft_user::{println, Args};
//!
//! weft_user::entry!(main);
//!
//! fn main(args: Args) -> i32 {
//!     println!("hello, {}", args.get(1).unwrap_or("world"));
//!     0
//! }
//! ```
//!
//! The runtime provides the entry point, the panic handler (a panic prints to
//! standard error and exits with status 101), a heap (`alloc` works; memory comes
//! from the kernel's `map` syscall), `print!`/`println!`/`eprint!`/`eprintln!`,
//! [`read_stdin`],
//! the program's arguments and [`exit`]/[`sleep`]. Every kernel call goes through
//! the one [`syscall`] function.
//!
//! The library's own logic is unit-tested on the host (`cargo test -p
//! weft-user`): there the standard library provides the allocator and panic
//! handler, and nothing enters a guest kernel.
#![cfg_attr(not(test), no_std)]

extern crate alloc;

mod args;
mod cell;
mod error;
pub mod fabric;
pub mod fs;
#[cfg(not(test))]
mod heap;
mod io;
pub mod ipc;
pub mod net;
pub mod process;
mod rt;
pub mod stream;
pub mod syscall;
pub mod time;

pub use args::Args;
pub use error::Error;
pub use io::{_print, Stream, StreamError, read_stdin};
pub use rt::{exit, sleep};
pub use weft_abi::ErrorCode;
pub use weft_control::frame::Code;

/// Declares the program's main function: `fn(Args) -> i32`, whose return value
/// is the exit status (0..=125).
#[macro_export]
macro_rules! entry {
    ($main:path) => {
        #[unsafe(no_mangle)]
        fn weft_program_main(args: $crate::Args<'static>) -> i32 {
            let main: fn($crate::Args<'static>) -> i32 = $main;
            main(args)
        }
    };
}
