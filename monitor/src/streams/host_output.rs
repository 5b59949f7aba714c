//! `weft`'s own standard output and error (descriptors 1 and 2), where the
//! guest's standard streams end up (PROTOCOL.md §8.1, §8.5): each is written
//! by a thread of its own from a bounded queue, so that nothing that hands
//! it bytes (the relay's runtime, the vCPU thread's console writes, the end
//! of the run) ever waits on whoever reads `weft`'s output.
//!
//! Why a thread: descriptors 1 and 2 are shared open file descriptions (the
//! user's terminal, a pipe other processes write too), so `O_NONBLOCK` must
//! not be set on them, and a blocking write waits for as long as the reader
//! does not read. Only the writer thread makes that write; the others queue
//! a copy of the bytes (one `memcpy` out of the ring, small beside the
//! write) and wait, if at all, for room in the queue, in ways a stop ends.
//! A private non-blocking description (reopening `/proc/self/fd/1`) would
//! spare the copy and the hand-over, but only for pipes and terminals: a
//! socket cannot be reopened so, and a regular file's would have an offset
//! of its own. One mechanism serves every kind of descriptor instead.
//!
//! Invariants:
//! - one writer per descriptor per process ([`stdout`], [`stderr`]); its
//!   thread writes the queued bytes in the order they were queued, each
//!   exactly once, and lives as long as the process;
//! - at most [`QUEUE_LIMIT`] bytes are queued per descriptor: a producer
//!   that finds no room waits, so a slow reader slows the guest's stream
//!   (its ring fills and the guest waits) and nothing is lost;
//! - nothing waits for the writer past a stop: the relay's tasks are
//!   aborted at the drain limit, the vCPU's console writes give up once a
//!   stop is requested ([`HostOutput::until`]), and the end of the run
//!   ([`settle`]) waits for the queues only until its deadline. What is
//!   still queued then is abandoned (said so on standard error if that one
//!   is still written), and the thread, blocked in its write, ends with the
//!   process;
//! - a failing descriptor (the reader gone: `EPIPE`) drops what is queued
//!   for it, as a closed pipe would, and never holds up the guest; one that
//!   somebody else made non-blocking is waited on with `poll`.

use crate::host;
use std::io;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError, mpsc, oneshot};
use weft_control::streams::RING_CAPACITY;

/// Bytes one queued write holds at most: a whole ring, so that the relay
/// hands a full ring over at once (each hand-over may wake the writer
/// thread, which costs more than the copy).
pub const CHUNK: usize = RING_CAPACITY as usize;
/// Bytes queued for one descriptor at most, beyond the guest's rings: one
/// being written while the next is copied.
pub const QUEUE_LIMIT: usize = 2 * CHUNK;
/// How often a synchronous writer that found no room looks again (and asks
/// whether to give up).
const ROOM_POLL: Duration = Duration::from_millis(1);
/// How long `weft`'s last words (its report, the notice that output was
/// dropped) may take to be written at least, even past the drain limit: a
/// standard error that is read takes microseconds.
const LAST_WORDS: Duration = Duration::from_millis(200);

/// `weft`'s standard output, started on first use.
pub fn stdout() -> &'static HostOutput {
    static OUT: OnceLock<HostOutput> = OnceLock::new();
    OUT.get_or_init(|| HostOutput::start("standard output", "weft-stdout", io::stdout()))
}

/// `weft`'s standard error, started on first use.
pub fn stderr() -> &'static HostOutput {
    static ERR: OnceLock<HostOutput> = OnceLock::new();
    ERR.get_or_init(|| HostOutput::start("standard error", "weft-stderr", io::stderr()))
}

/// Whole-chunk buffers the writer thread hands back for reuse, at most:
/// one being filled while one is written, so the relay neither allocates
/// nor zeroes a fresh chunk (page faults on fresh memory) per hand-over.
const SPARE_CHUNKS: usize = 2;

/// What the writer thread is asked to do, in order.
enum Job {
    /// Write the first `len` bytes; the room they take is free again once
    /// they are.
    Write(Vec<u8>, usize, Room),
    /// Call this once everything queued before it is written (or dropped).
    Then(Box<dyn FnOnce() + Send>),
}

/// Room for bytes in a descriptor's queue, held until they are written.
pub struct Room(OwnedSemaphorePermit);

impl Room {
    /// Bytes it holds room for.
    pub fn bytes(&self) -> usize {
        self.0.num_permits()
    }
}

/// One of `weft`'s output descriptors and its writer thread.
pub struct HostOutput {
    /// "standard output" or "standard error", for messages.
    name: &'static str,
    jobs: mpsc::UnboundedSender<Job>,
    /// Free room in the queue, in bytes; closed if the writer never started
    /// (then everything sent to it is dropped).
    room: Arc<Semaphore>,
    /// Bytes queued and not yet written or dropped.
    queued: Arc<AtomicUsize>,
    /// Written [`CHUNK`]-long buffers, for [`HostOutput::chunk`].
    spare: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl HostOutput {
    /// Starts the writer thread of `fd`, which it keeps for as long as it
    /// runs. If the thread cannot start, says so, and the output is dropped.
    fn start(name: &'static str, thread: &str, fd: impl AsFd + Send + 'static) -> Self {
        let (jobs, queue) = mpsc::unbounded_channel();
        let room = Arc::new(Semaphore::new(QUEUE_LIMIT));
        let queued = Arc::new(AtomicUsize::new(0));
        let written = queued.clone();
        let spare = Arc::new(Mutex::new(Vec::new()));
        let returned = spare.clone();
        let started = std::thread::Builder::new()
            .name(thread.into())
            .spawn(move || write_out(fd, queue, &written, &returned));
        if let Err(e) = started {
            eprintln!("weft: cannot start the writer of {name}: {e}; the guest's is dropped");
            room.close();
        }
        Self {
            name,
            jobs,
            room,
            queued,
            spare,
        }
    }

    /// A [`CHUNK`]-long buffer to fill and [`send_chunk`](Self::send_chunk):
    /// one the writer has finished with, or a new one.
    pub fn chunk(&self) -> Vec<u8> {
        let reused = self.spare.lock().ok().and_then(|mut s| s.pop());
        reused.unwrap_or_else(|| vec![0u8; CHUNK])
    }

    /// Queues the first `len` bytes of `chunk` (from [`chunk`](Self::chunk);
    /// at most `room.bytes()` of them); the writer hands the buffer back.
    pub fn send_chunk(&self, room: Room, chunk: Vec<u8>, len: usize) {
        self.queue(room, chunk, len);
    }

    /// "standard output" or "standard error".
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Waits for room for `len` bytes, at most [`CHUNK`] (at least one);
    /// `None` if the writer never started.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a cancelled wait only loses its place in line.
    pub async fn room(&self, len: usize) -> Option<Room> {
        let n = len.clamp(1, CHUNK) as u32;
        self.room.clone().acquire_many_owned(n).await.ok().map(Room)
    }

    /// Queues `bytes` (at most `room.bytes()` of them) behind everything
    /// queued before.
    pub fn send(&self, room: Room, bytes: Vec<u8>) {
        let n = bytes.len();
        self.queue(room, bytes, n);
    }

    fn queue(&self, room: Room, bytes: Vec<u8>, len: usize) {
        let len = len.min(bytes.len());
        self.queued.fetch_add(len, Ordering::SeqCst);
        if self.jobs.send(Job::Write(bytes, len, room)).is_err() {
            self.queued.fetch_sub(len, Ordering::SeqCst);
        }
    }

    /// Queues up to [`CHUNK`] bytes of `buf`, waiting for room until
    /// `give_up` says to stop (then `TimedOut`); returns how many it took.
    /// If the writer never started, the bytes are taken and dropped.
    pub fn send_until(&self, buf: &[u8], give_up: &dyn Fn() -> bool) -> io::Result<usize> {
        let n = buf.len().min(CHUNK);
        if n == 0 {
            return Ok(0);
        }
        loop {
            match self.room.clone().try_acquire_many_owned(n as u32) {
                Ok(room) => {
                    self.send(Room(room), buf[..n].to_vec());
                    return Ok(n);
                }
                Err(TryAcquireError::Closed) => return Ok(n),
                Err(TryAcquireError::NoPermits) if give_up() => {
                    return Err(io::ErrorKind::TimedOut.into());
                }
                Err(TryAcquireError::NoPermits) => std::thread::sleep(ROOM_POLL),
            }
        }
    }

    /// A synchronous writer into the queue that waits for room until
    /// `give_up` says to stop. Its `flush` does not wait for the reader: what
    /// it queued is written in order, and [`settle`] waits for it at the end.
    pub fn until<F: Fn() -> bool>(&'static self, give_up: F) -> Until<F> {
        Until { out: self, give_up }
    }

    /// Queues `text` if there is room for it now, and drops it otherwise:
    /// `weft`'s own messages from the relay never wait.
    pub fn notice(&self, text: &str) {
        let room = u32::try_from(text.len())
            .ok()
            .and_then(|n| self.room.clone().try_acquire_many_owned(n).ok());
        if let Some(room) = room {
            self.send(Room(room), text.as_bytes().to_vec());
        }
    }

    /// Returns once everything queued before the call is written (or
    /// dropped).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only waits.
    pub async fn flushed(&self) {
        let (done, written) = oneshot::channel();
        if self.then(move || {
            let _ = done.send(());
        }) {
            let _ = written.await;
        }
    }

    /// Whether everything queued before the call is written (or dropped) by
    /// `deadline`, waiting for it until then.
    fn flushed_by(&self, deadline: Instant) -> bool {
        let (done, written) = std::sync::mpsc::sync_channel(1);
        if !self.then(move || {
            let _ = done.send(());
        }) {
            return true;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        // A writer gone (`Disconnected`) will write nothing more either.
        let flushed = !matches!(
            written.recv_timeout(left),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout)
        );
        // The marker itself may still be in line behind nothing.
        flushed || self.queued() == 0
    }

    /// Bytes queued and not yet written.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::SeqCst)
    }

    /// Queues `f` behind what is queued; false if the writer is gone.
    fn then(&self, f: impl FnOnce() + Send + 'static) -> bool {
        self.jobs.send(Job::Then(Box::new(f))).is_ok()
    }
}

/// A synchronous [`io::Write`] into a [`HostOutput`]'s queue
/// ([`HostOutput::until`]).
pub struct Until<F> {
    out: &'static HostOutput,
    give_up: F,
}

impl<F: Fn() -> bool> io::Write for Until<F> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.out.send_until(buf, &self.give_up)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The end of a run: queues `last` (`weft`'s report) on standard error and
/// waits until both descriptors have written everything queued, or until
/// `deadline` (and at least [`LAST_WORDS`]). If either could not, what it
/// still holds is abandoned, and said so on standard error if that one was
/// written to the end.
pub fn settle(last: &str, deadline: Instant) {
    let (out, err) = (stdout(), stderr());
    let deadline = deadline.max(Instant::now() + LAST_WORDS);
    let passed = || Instant::now() >= deadline;
    let _ = io::Write::write_all(&mut err.until(passed), last.as_bytes());
    let out_done = out.flushed_by(deadline);
    if err.flushed_by(deadline) && !out_done {
        err.notice(&format!(
            "weft: standard output was not read: the last {} bytes of it were dropped\n",
            out.queued()
        ));
        err.flushed_by(Instant::now() + LAST_WORDS);
    }
}

/// The writer thread: writes each queued job to `fd` in order, until every
/// sender is gone.
fn write_out(
    fd: impl AsFd,
    mut queue: mpsc::UnboundedReceiver<Job>,
    queued: &AtomicUsize,
    spare: &Mutex<Vec<Vec<u8>>>,
) {
    while let Some(job) = queue.blocking_recv() {
        match job {
            Job::Write(bytes, len, room) => {
                write_all(&fd, &bytes[..len], queued);
                drop(room);
                if bytes.len() == CHUNK
                    && let Ok(mut spare) = spare.lock()
                    && spare.len() < SPARE_CHUNKS
                {
                    spare.push(bytes);
                }
            }
            Job::Then(f) => f(),
        }
    }
}

/// Writes all of `bytes` to `fd`, counting each byte written (or dropped)
/// off `queued`, and waiting (in `poll`) while a non-blocking description
/// is full. A failing descriptor drops the rest (see the module doc).
fn write_all(fd: &impl AsFd, mut bytes: &[u8], queued: &AtomicUsize) {
    while !bytes.is_empty() {
        let n = match host::write(fd.as_fd(), bytes) {
            Ok(n) if n > 0 => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                match host::wait_writable(fd.as_fd()) {
                    Ok(()) => continue,
                    Err(_) => bytes.len(),
                }
            }
            Ok(_) | Err(_) => bytes.len(),
        };
        queued.fetch_sub(n, Ordering::SeqCst);
        bytes = &bytes[n..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    /// A writer for the write end of a fresh pipe, and its read end.
    fn on_pipe() -> (&'static HostOutput, std::io::PipeReader) {
        let (reader, writer) = std::io::pipe().unwrap();
        let out = Box::leak(Box::new(HostOutput::start("a pipe", "test-writer", writer)));
        (out, reader)
    }

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 % 251) as u8).collect()
    }

    #[test]
    fn a_stalled_reader_fills_the_queue_and_then_gets_every_byte_in_order() {
        let (out, mut reader) = on_pipe();
        let data = pattern(QUEUE_LIMIT * 4);
        let mut sent = 0;
        // Nobody reads: the pipe fills, then the queue, then there is no room.
        while let Ok(n) = out.send_until(&data[sent..], &|| true) {
            sent += n;
        }
        assert!(sent >= QUEUE_LIMIT && sent < data.len(), "{sent}");
        assert!(out.queued() > 0);
        assert!(!out.flushed_by(Instant::now() + Duration::from_millis(50)));
        // The reader comes back: everything queued arrives, in order.
        let rest = data[sent..].to_vec();
        let feeder = std::thread::spawn(move || {
            let mut off = 0;
            while off < rest.len() {
                off += out.send_until(&rest[off..], &|| false).unwrap();
            }
            assert!(out.flushed_by(Instant::now() + Duration::from_secs(60)));
        });
        let mut got = vec![0u8; data.len()];
        reader.read_exact(&mut got).unwrap();
        feeder.join().unwrap();
        assert!(got == data);
        assert_eq!(out.queued(), 0);
    }

    #[test]
    fn a_notice_is_dropped_rather_than_wait_for_room() {
        let (out, _reader) = on_pipe();
        let data = pattern(CHUNK);
        while out.send_until(&data, &|| true).is_ok() {}
        let before = out.queued();
        out.notice("never waits\n");
        assert_eq!(out.queued(), before);
    }

    #[test]
    fn a_closed_reader_drops_the_output_without_holding_the_writer() {
        let (out, reader) = on_pipe();
        drop(reader);
        let data = pattern(QUEUE_LIMIT * 2);
        let mut sent = 0;
        while sent < data.len() {
            sent += out.send_until(&data[sent..], &|| false).unwrap();
        }
        assert!(out.flushed_by(Instant::now() + Duration::from_secs(60)));
        assert_eq!(out.queued(), 0);
    }

    #[tokio::test]
    async fn flushed_returns_once_the_bytes_are_written() {
        let (out, mut reader) = on_pipe();
        let room = out.room(5).await.unwrap();
        assert_eq!(room.bytes(), 5);
        out.send(room, b"hello".to_vec());
        out.flushed().await;
        assert_eq!(out.queued(), 0);
        let mut got = [0u8; 5];
        reader.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"hello");
    }
}
