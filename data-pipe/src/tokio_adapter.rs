//! The monitor's async view of a pipe (feature `tokio`): [`AsyncReader`]
//! and [`AsyncWriter`] implement tokio's `AsyncRead`/`AsyncWrite`, sleeping
//! on an `EventFd` (the guest's ioeventfd doorbell) registered with the
//! reactor through `AsyncFd`.
//!
//! Each half owns its own eventfd: a single `AsyncFd` keeps one waker per
//! interest, so a reader and a writer in different tasks could not share one.
//!
//! # Cancel safety
//!
//! `poll_read`, `poll_write` and `poll_shutdown` either move bytes and
//! return `Ready`, or return `Pending` having moved nothing; dropping the
//! future between polls loses no data. A pending wait leaves this side's wait
//! word set, which costs the peer at most one spurious notification.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use vmm_sys_util::eventfd::EventFd;

use crate::access::Memory;
use crate::consumer::Consumer;
use crate::error::Error;
use crate::producer::Producer;
use crate::wake::{Notify, WaitDecision, Waitable};

/// Runs `op` on `end` until it moves bytes or fails for good, sleeping on
/// `wake` (§7.6) while it would block.
fn poll_ring<E: Waitable, T>(
    end: &mut E,
    wake: &AsyncFd<EventFd>,
    cx: &mut Context<'_>,
    mut op: impl FnMut(&mut E) -> Result<T, Error>,
) -> Poll<io::Result<T>> {
    loop {
        match op(end) {
            Err(Error::WouldBlock) => {}
            done => {
                end.end_wait();
                return Poll::Ready(done.map_err(io::Error::from));
            }
        }
        if end.prepare_wait()? == WaitDecision::Ready {
            continue;
        }
        let mut guard = ready!(wake.poll_read_ready(cx))?;
        // Drain the counter; if it was already empty, `try_io` clears the
        // readiness so that the next poll registers the waker.
        let _ = guard.try_io(|fd| fd.get_ref().read());
        end.end_wait();
    }
}

fn register(wake: EventFd) -> io::Result<AsyncFd<EventFd>> {
    // SAFETY: `EventFd` owns its descriptor (it closes it on drop) and its
    // `as_raw_fd` always returns that same descriptor, which therefore stays
    // open and unchanged for as long as the `AsyncFd` owns the `EventFd`.
    Ok(unsafe { AsyncFd::register_with_interest(wake, Interest::READABLE) }?)
}

/// The reading half: a [`Consumer`] whose peer notifies `wake`.
pub struct AsyncReader<M: Memory, N: Notify> {
    rx: Consumer<M, N>,
    wake: AsyncFd<EventFd>,
}

impl<M: Memory, N: Notify> AsyncReader<M, N> {
    /// `wake` must be non-blocking (`EFD_NONBLOCK`); the producer signals it
    /// when data arrives. Must be called inside a tokio runtime.
    pub fn new(rx: Consumer<M, N>, wake: EventFd) -> io::Result<Self> {
        Ok(Self {
            rx,
            wake: register(wake)?,
        })
    }
}

impl<M: Memory + Unpin, N: Notify + Unpin> AsyncRead for AsyncReader<M, N> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let n = ready!(poll_ring(&mut this.rx, &this.wake, cx, |rx| rx
            .read(buf.initialize_unfilled())))?;
        buf.advance(n);
        Poll::Ready(Ok(()))
    }
}

/// The writing half: a [`Producer`] whose peer notifies `wake` when it
/// frees space.
pub struct AsyncWriter<M: Memory, N: Notify> {
    tx: Producer<M, N>,
    wake: AsyncFd<EventFd>,
}

impl<M: Memory, N: Notify> AsyncWriter<M, N> {
    /// `wake` must be non-blocking (`EFD_NONBLOCK`); the consumer signals it
    /// when it frees space. Must be called inside a tokio runtime.
    pub fn new(tx: Producer<M, N>, wake: EventFd) -> io::Result<Self> {
        Ok(Self {
            tx,
            wake: register(wake)?,
        })
    }
}

impl<M: Memory + Unpin, N: Notify + Unpin> AsyncWrite for AsyncWriter<M, N> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        poll_ring(&mut this.tx, &this.wake, cx, |tx| tx.write(buf))
    }

    /// Written bytes are visible to the consumer at once.
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    /// Closes the ring: the consumer reads end-of-stream after the data.
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().tx.close();
        Poll::Ready(Ok(()))
    }
}
