//! The monitor's async view of a pipe (feature `tokio`): [`AsyncReader`]
//! and [`AsyncWriter`] implement tokio's `AsyncRead`/`AsyncWrite`, sleeping
//! on an `EventFd` (the guest's ioeventfd doorbell) registered with the
//! reactor through `AsyncFd`.
//!
//! Each half owns its own eventfd: a single `AsyncFd` keeps one waker per
//! interest, so a reader and a writer in different tasks could not share one.
//!
//! A half that would block polls for a while before it sleeps
//! ([`AsyncReader::spin_for`]); a reader's [`Cue`] makes it poll again
//! when its peer is likely to write soon.
//!
//! # Cancel safety
//!
//! `poll_read`, `poll_write` and `poll_shutdown` either move bytes and
//! return `Ready`, or return `Pending` having moved nothing; dropping the
//! future between polls loses no data. A pending wait leaves this side's wait
//! word set, which costs the peer at most one spurious notification.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker, ready};
use std::time::{Duration, Instant};

use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use vmm_sys_util::eventfd::EventFd;

use crate::access::Memory;
use crate::consumer::Consumer;
use crate::error::Error;
use crate::producer::Producer;
use crate::wake::{Notify, WaitDecision, Waitable};

/// How a half waits when its ring would block: first by yielding to the
/// runtime, for at most `spin` after its last progress, without announcing
/// sleep (the peer then needs no notification, and an answer that comes
/// within that time costs no wake-up); then by announcing sleep (§7.6) and
/// sleeping on its eventfd.
struct Waiter {
    fd: AsyncFd<EventFd>,
    spin: Duration,
    /// Until when it spins, once the ring would block (set then, from
    /// `spin`, or by a cue; cleared by progress).
    spin_until: Option<Instant>,
    /// A reader's cue ([`AsyncReader::cue`]), and how long it spins after
    /// one.
    cued: Option<(Arc<CueState>, Duration)>,
}

/// A hint to a reader that its peer is likely to write soon (it was just
/// sent something it answers): [`raise`](Cue::raise) makes the reader spin
/// again for the cue's spin, waking it if it sleeps. An answer that comes
/// within that spin then costs the peer no notification and the reader no
/// wake-up. A hint only: a cue missed costs one wake-up, no more.
pub struct Cue {
    state: Arc<CueState>,
}

struct CueState {
    /// Raised and not yet seen by the reader.
    fresh: AtomicBool,
    /// The reader's task while it sleeps on its eventfd.
    sleeper: Mutex<Option<Waker>>,
}

impl CueState {
    fn sleeper(&self) -> MutexGuard<'_, Option<Waker>> {
        self.sleeper.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Cue {
    /// Makes the reader spin again from now on.
    pub fn raise(&self) {
        let s = &self.state;
        // Stored before the lock is taken: a reader that registers itself
        // under the lock after this sees it (`Waiter::cued_before_sleep`).
        s.fresh.store(true, Ordering::SeqCst);
        let sleeper = s.sleeper().take();
        if let Some(waker) = sleeper {
            waker.wake();
        }
    }
}

impl Waiter {
    fn new(wake: EventFd) -> io::Result<Self> {
        // SAFETY: `EventFd` owns its descriptor (it closes it on drop) and its
        // `as_raw_fd` always returns that same descriptor, which therefore
        // stays open and unchanged for as long as the `AsyncFd` owns the
        // `EventFd`.
        let fd = unsafe { AsyncFd::register_with_interest(wake, Interest::READABLE) }?;
        Ok(Self {
            fd,
            spin: Duration::ZERO,
            spin_until: None,
            cued: None,
        })
    }

    /// Whether to keep yielding instead of sleeping: for `spin` after the
    /// last progress, and for the cue's spin after the last cue (also when
    /// `spin` is zero).
    fn keep_spinning(&mut self) -> bool {
        let cued = self
            .cued
            .as_ref()
            .filter(|(cue, _)| cue.fresh.swap(false, Ordering::SeqCst))
            .map(|(_, spin)| *spin);
        if self.spin.is_zero() && cued.is_none() && self.spin_until.is_none() {
            return false;
        }
        let now = Instant::now();
        let until = *self.spin_until.get_or_insert(now + self.spin);
        if let Some(spin) = cued {
            self.spin_until = Some(until.max(now + spin));
        }
        self.spin_until.is_some_and(|u| now < u)
    }

    /// Before a sleep: registers the task with the cue (if any) and says
    /// whether one came meanwhile (then it must not sleep).
    fn cued_before_sleep(&self, cx: &Context<'_>) -> bool {
        match &self.cued {
            Some((c, _)) => {
                *c.sleeper() = Some(cx.waker().clone());
                c.fresh.load(Ordering::SeqCst)
            }
            None => false,
        }
    }
}

/// Runs `op` on `end` until it moves bytes or fails for good, yielding and
/// then sleeping on `waiter` while it would block.
fn poll_ring<E: Waitable, T>(
    end: &mut E,
    waiter: &mut Waiter,
    cx: &mut Context<'_>,
    mut op: impl FnMut(&mut E) -> Result<T, Error>,
) -> Poll<io::Result<T>> {
    loop {
        match op(end) {
            Err(Error::WouldBlock) => {}
            done => {
                end.end_wait();
                waiter.spin_until = None;
                return Poll::Ready(done.map_err(io::Error::from));
            }
        }
        if waiter.keep_spinning() {
            // A spinning end needs no notification: clear the wait word a
            // sleep left published (a cue ended that sleep), or the peer
            // would ring for what the spin will see anyway.
            end.end_wait();
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        if end.prepare_wait()? == WaitDecision::Ready {
            continue;
        }
        if waiter.cued_before_sleep(cx) {
            end.end_wait();
            continue;
        }
        let mut guard = ready!(waiter.fd.poll_read_ready(cx))?;
        // Drain the counter; if it was already empty, `try_io` clears the
        // readiness so that the next poll registers the waker.
        let _ = guard.try_io(|fd| fd.get_ref().read());
        end.end_wait();
    }
}

/// The reading half: a [`Consumer`] whose peer notifies `wake`.
pub struct AsyncReader<M: Memory, N: Notify> {
    rx: Consumer<M, N>,
    wait: Waiter,
}

impl<M: Memory, N: Notify> AsyncReader<M, N> {
    /// `wake` must be non-blocking (`EFD_NONBLOCK`); the producer signals it
    /// when data arrives. Must be called inside a tokio runtime.
    pub fn new(rx: Consumer<M, N>, wake: EventFd) -> io::Result<Self> {
        Ok(Self {
            rx,
            wait: Waiter::new(wake)?,
        })
    }

    /// Yields to the runtime for up to `spin` after the last progress before
    /// sleeping (default: sleep at once). Worth it when the producer usually
    /// answers sooner than a wake-up costs and the runtime's thread has a CPU
    /// of its own.
    pub fn spin_for(mut self, spin: Duration) -> Self {
        self.set_spin(spin);
        self
    }

    /// Changes the spin of [`spin_for`](Self::spin_for) from now on (a
    /// cue's spin stays).
    pub fn set_spin(&mut self, spin: Duration) {
        self.wait.spin = spin;
    }

    /// The cue that makes this reader spin for `spin` from when it is
    /// raised, whether or not it spins after its own progress
    /// ([`spin_for`](Self::spin_for)).
    pub fn cue(&mut self, spin: Duration) -> Cue {
        let state = Arc::new(CueState {
            fresh: AtomicBool::new(false),
            sleeper: Mutex::new(None),
        });
        self.wait.cued = Some((state.clone(), spin));
        Cue { state }
    }

    /// Waits until there are bytes to read (or the producer closed) and
    /// returns how many (0: end of stream). Then [`consumer`](Self::consumer)
    /// can `peek` and `consume` them in place.
    pub async fn readable(&mut self) -> io::Result<usize> {
        std::future::poll_fn(|cx| {
            poll_ring(&mut self.rx, &mut self.wait, cx, |rx| {
                rx.peek().map(|c| c.len())
            })
        })
        .await
    }

    /// The ring end, for zero-copy access after [`readable`](Self::readable).
    pub fn consumer(&mut self) -> &mut Consumer<M, N> {
        &mut self.rx
    }
}

impl<M: Memory + Unpin, N: Notify + Unpin> AsyncRead for AsyncReader<M, N> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let n = ready!(poll_ring(&mut this.rx, &mut this.wait, cx, |rx| rx
            .read(buf.initialize_unfilled())))?;
        buf.advance(n);
        Poll::Ready(Ok(()))
    }
}

/// The writing half: a [`Producer`] whose peer notifies `wake` when it
/// frees space.
pub struct AsyncWriter<M: Memory, N: Notify> {
    tx: Producer<M, N>,
    wait: Waiter,
}

impl<M: Memory, N: Notify> AsyncWriter<M, N> {
    /// `wake` must be non-blocking (`EFD_NONBLOCK`); the consumer signals it
    /// when it frees space. Must be called inside a tokio runtime.
    pub fn new(tx: Producer<M, N>, wake: EventFd) -> io::Result<Self> {
        Ok(Self {
            tx,
            wait: Waiter::new(wake)?,
        })
    }

    /// As [`AsyncReader::spin_for`], waiting for space.
    pub fn spin_for(mut self, spin: Duration) -> Self {
        self.wait.spin = spin;
        self
    }

    /// Waits until bytes are free (or the consumer closed: then `Err`)
    /// and returns how many are. Then [`producer`](Self::producer) can
    /// `reserve` and `commit` them in place. (Waiting for more than one free
    /// byte is not offered: the wake-up protocol signals any space.)
    pub async fn writable(&mut self) -> io::Result<usize> {
        std::future::poll_fn(|cx| {
            poll_ring(&mut self.tx, &mut self.wait, cx, |tx| {
                match tx.writable_len()? {
                    0 => Err(Error::WouldBlock),
                    n => Ok(n),
                }
            })
        })
        .await
    }

    /// The ring end, for zero-copy access after [`writable`](Self::writable).
    pub fn producer(&mut self) -> &mut Producer<M, N> {
        &mut self.tx
    }
}

impl<M: Memory + Unpin, N: Notify + Unpin> AsyncWrite for AsyncWriter<M, N> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        poll_ring(&mut this.tx, &mut this.wait, cx, |tx| tx.write(buf))
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
