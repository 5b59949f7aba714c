//! `weft-data-pipe`: the hardened, exit-free shared-memory byte pipe every
//! Weft stream rides on.
//!
//! A [`Producer`] and a [`Consumer`] share one single-producer
//! single-consumer byte ring in a caller-provided region (PROTOCOL.md §7); a
//! [`Pipe`] is two rings, one per direction. The same code runs in the guest
//! kernel, in user programs and in the monitor, generic over how memory is
//! reached ([`Memory`]).
//!
//! This crate owns the ring's byte layout, its index and close protocol, and
//! wake-up suppression. It does not own where regions live, how they are
//! mapped, or how a doorbell or interrupt is raised: callers provide a
//! [`Memory`], a [`Notify`] and, for blocking use, a [`Wait`].
//!
//! # Invariants
//!
//! - **No references into shared memory.** Header fields are accessed with
//!   atomics by offset, data with copies ([`Memory`]); zero-copy access goes
//!   through [`Chunk`] views that copy, never through `&[u8]`.
//! - **Every value read from shared memory is an allegation.** Each side
//!   keeps its own index privately and never reads it back; the peer's index
//!   is accepted only if it moved forward and keeps
//!   `0 <= produced - consumed <= capacity`; close flags must be 0 or 1.
//!   Anything else yields [`Error::Corrupt`], sticky, with no out-of-region
//!   access and no panic. The capacity comes from the caller, never from the
//!   region.
//! - **One writer per cache line.** Producer and consumer fields sit on
//!   separate 64-byte lines; each side re-reads the peer's index only when
//!   its cached copy shows too little data or space.
//! - **No lost wake-ups, no needless notifications** (§7.6): a side about to
//!   sleep publishes a sleep epoch, fences, re-checks; a side that published
//!   fences, reads the peer's epoch and notifies once per epoch.
//!
//! Unsafe code lives only in the [`Memory`] implementations ([`RawRegion`],
//! and with `std`, [`HeapRegion`] and [`MemfdRegion`]).
//!
//! # Example
//!
//! ```
//! use weft_data_pipe::{Consumer, Error, HeapRegion, NoNotify, Producer, ring_size};
//!
//! let region = HeapRegion::new(ring_size(64));
//! let mut tx = Producer::new(&region, 0, 64, NoNotify)?;
//! let mut rx = Consumer::new(&region, 0, 64, NoNotify)?;
//! assert_eq!(tx.write(b"hello"), Ok(5));
//! let mut buf = [0; 16];
//! assert_eq!(rx.read(&mut buf), Ok(5));
//! assert_eq!(rx.read(&mut buf), Err(Error::WouldBlock));
//! tx.close();
//! assert_eq!(rx.read(&mut buf), Ok(0)); // end of stream
//! # Ok::<(), weft_data_pipe::LayoutError>(())
//! ```
//!
//! # Features
//!
//! - `std`: [`HeapRegion`], [`MemfdRegion`], [`Yield`], and [`Notify`]/[`Wait`]
//!   for `vmm_sys_util::eventfd::EventFd`.
//! - `tokio`: [`AsyncReader`]/[`AsyncWriter`] for the monitor.
#![no_std]

#[cfg(feature = "std")]
extern crate std;

mod access;
mod blocking;
mod chunk;
mod consumer;
mod error;
mod layout;
mod pipe;
mod producer;
#[cfg(feature = "std")]
mod region;
mod ring;
#[cfg(feature = "tokio")]
mod tokio_adapter;
mod wake;

pub use access::{Memory, RawRegion};
pub use blocking::Blocking;
pub use chunk::{Chunk, Chunks};
pub use consumer::Consumer;
pub use error::Error;
pub use layout::{
    CACHE_LINE, CONSUMED, CONSUMER_CLOSED, CONSUMER_WAIT, Geometry, HEADER, Header, LayoutError,
    MAX_CAPACITY, PRODUCED, PRODUCER_CLOSED, PRODUCER_WAIT, ring_size, unconsumed,
};
pub use pipe::{Pipe, Side, pipe_size};
pub use producer::Producer;
#[cfg(feature = "std")]
pub use region::{HeapRegion, MemfdRegion};
#[cfg(feature = "tokio")]
pub use tokio_adapter::{AsyncReader, AsyncWriter, Cue};
#[cfg(feature = "std")]
pub use wake::Yield;
pub use wake::{NoNotify, Notify, Spin, Wait, WaitDecision, Waitable};
