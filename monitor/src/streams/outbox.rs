//! A stream's frames for its program, handed over from any thread: one
//! that has a frame (a Zenoh thread with a reply, the relay with a
//! message) writes it into the ring itself when nothing waits before it
//! and the ring has room, so no thread is woken in between; otherwise the
//! frame is queued and the stream's writer ([`Outbox::run`]) writes it,
//! waiting for room as long as the program takes.
//!
//! Invariants: frames reach the ring whole and in the order they were
//! pushed; nothing is written after [`Outbox::close`] (the slot may be
//! another stream's by then); a push never waits (a program that does
//! not read holds its writer, never the pusher); what a frame holds (a
//! send's slot, [`Frame::hold`]) is released once it is in the ring, or
//! dropped with the outbox.

use super::framed::{Failure, Writer, write_frame};
use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};
use tokio::sync::{Notify, OwnedSemaphorePermit};
use weft_data_pipe::Cue;

/// A frame for the program.
pub struct Frame {
    pub bytes: Vec<u8>,
    /// The program is likely to write soon after reading it (a request
    /// delivered, the answer to its send): the stream's reader spins for
    /// it.
    pub cues: bool,
    /// Released once the frame is in the ring.
    pub hold: Option<OwnedSemaphorePermit>,
}

impl Frame {
    /// A frame the program need not answer, holding nothing.
    pub fn quiet(bytes: Vec<u8>) -> Frame {
        Frame {
            bytes,
            cues: false,
            hold: None,
        }
    }
}

struct State {
    /// The ring's writing end; taken by the writer while it waits for
    /// room, and for good by [`Outbox::close`].
    tx: Option<Writer>,
    queue: VecDeque<Frame>,
    closed: bool,
}

/// One stream's way to its program.
pub struct Outbox {
    state: Mutex<State>,
    /// Told when a frame is queued.
    queued: Notify,
    /// Told when the writer wrote a queued frame, and at the close.
    drained: Notify,
    cue: Cue,
}

impl Outbox {
    /// The outbox writing to `tx`, raising `cue` after a frame that cues.
    pub fn new(tx: Writer, cue: Cue) -> Outbox {
        Outbox {
            state: Mutex::new(State {
                tx: Some(tx),
                queue: VecDeque::new(),
                closed: false,
            }),
            queued: Notify::new(),
            drained: Notify::new(),
            cue,
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Every change under the lock is a push, a pop or a take: never
        // left half done.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes `frame` into the ring now if nothing is queued before it
    /// and it fits, else queues it for the writer. Never waits.
    pub fn push(&self, frame: Frame) {
        let mut s = self.state();
        match write_now(&mut s, frame) {
            Ok(Some(frame)) => {
                drop(s);
                self.written(frame);
            }
            Ok(None) => {}
            Err(frame) => {
                s.queue.push_back(frame);
                drop(s);
                self.queued.notify_one();
            }
        }
    }

    /// Writes `frame` into the ring now if nothing is queued before it
    /// and it fits; gives it back otherwise, and once closed.
    pub fn try_write(&self, frame: Frame) -> Result<(), Frame> {
        let mut s = self.state();
        if s.closed {
            return Err(frame);
        }
        let written = write_now(&mut s, frame)?;
        drop(s);
        if let Some(frame) = written {
            self.written(frame);
        }
        Ok(())
    }

    fn written(&self, frame: Frame) {
        if frame.cues {
            self.cue.raise();
        }
        drop(frame.hold);
    }

    /// Waits until fewer than `below` frames are queued (a pusher that
    /// must not outrun a program that does not read).
    pub async fn room(&self, below: usize) {
        loop {
            let drained = self.drained.notified();
            tokio::pin!(drained);
            drained.as_mut().enable();
            if self.state().queue.len() < below {
                return;
            }
            drained.await;
        }
    }

    /// Writes the queued frames in order, waiting for them, until `done`
    /// ends; a ring write that fails ends it with the failure.
    pub async fn run(&self, done: impl Future<Output = ()>) -> Result<(), Failure> {
        tokio::pin!(done);
        loop {
            let next = {
                let mut s = self.state();
                match s.queue.front() {
                    Some(_) if s.tx.is_some() => s.queue.pop_front().zip(s.tx.take()),
                    _ => None,
                }
            };
            let Some((frame, tx)) = next else {
                tokio::select! {
                    () = self.queued.notified() => continue,
                    () = &mut done => return Ok(()),
                }
            };
            let mut lent = Lent {
                outbox: self,
                tx: Some(tx),
            };
            if let Some(tx) = lent.tx.as_mut() {
                write_frame(tx, &frame.bytes).await?;
            }
            drop(lent);
            self.written(frame);
            self.drained.notify_waiters();
        }
    }

    /// Ends the outbox: what is queued is dropped, nothing more is
    /// written; the ring's writer, to end the stream with.
    pub fn close(&self) -> Option<Writer> {
        let mut s = self.state();
        s.closed = true;
        s.queue.clear();
        let tx = s.tx.take();
        drop(s);
        self.drained.notify_waiters();
        tx
    }
}

/// Writes `frame` into the ring if nothing is queued before it and it
/// fits: the frame, written (`None` once closed: dropped); else gives it
/// back.
fn write_now(s: &mut State, frame: Frame) -> Result<Option<Frame>, Frame> {
    if s.closed {
        return Ok(None);
    }
    if !s.queue.is_empty() {
        return Err(frame);
    }
    let Some(tx) = s.tx.as_mut() else {
        return Err(frame);
    };
    let tx = tx.producer();
    // A ring the guest broke is the writer's to report: the frame waits
    // for it there.
    match tx.writable_len() {
        Ok(room) if room >= frame.bytes.len() => {}
        _ => return Err(frame),
    }
    match tx.write(&frame.bytes) {
        Ok(n) if n == frame.bytes.len() => Ok(Some(frame)),
        // Cannot happen with the room checked under the lock.
        _ => Err(frame),
    }
}

/// The writer lent to [`Outbox::run`] while it waits for room: given back
/// when the write ends, or when the wait is dropped.
struct Lent<'a> {
    outbox: &'a Outbox,
    tx: Option<Writer>,
}

impl Drop for Lent<'_> {
    fn drop(&mut self) {
        let mut s = self.outbox.state();
        if !s.closed {
            s.tx = self.tx.take();
        }
    }
}
