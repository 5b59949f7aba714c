//! Model checks of the wake-up protocol (PROTOCOL.md §7.6) under loom: every
//! interleaving of a producer and a consumer that sleep on an event when they
//! cannot proceed. A lost wake-up shows up as a deadlock, a missing
//! happens-before edge on data bytes as a data race on `UnsafeCell`.
//!
//! Run: `RUSTFLAGS="--cfg loom" cargo test -p weft-data-pipe --release --test loom`
#![cfg(loom)]

use std::sync::atomic::Ordering;

use embedded_io::{Read, Write};
use loom::cell::UnsafeCell;
use loom::sync::atomic::{AtomicU32, AtomicU64, fence};
use loom::sync::{Arc, Condvar, Mutex};
use weft_data_pipe::{
    Blocking, CONSUMED, CONSUMER_CLOSED, CONSUMER_WAIT, Consumer, HEADER, Memory, Notify, PRODUCED,
    PRODUCER_CLOSED, PRODUCER_WAIT, Producer, Wait, ring_size,
};

const CAPACITY: usize = 2;

/// A ring region whose header words are loom atomics and whose data bytes
/// are loom cells (so unsynchronized access is reported), shared by both ends.
#[derive(Clone)]
struct LoomRegion(Arc<Words>);

struct Words {
    words64: [(usize, AtomicU64); 4],
    words32: [(usize, AtomicU32); 2],
    data: Vec<UnsafeCell<u8>>,
}

impl LoomRegion {
    fn new() -> Self {
        Self(Arc::new(Words {
            words64: [PRODUCED, CONSUMED, CONSUMER_WAIT, PRODUCER_WAIT]
                .map(|o| (o, AtomicU64::new(0))),
            words32: [CONSUMER_CLOSED, PRODUCER_CLOSED].map(|o| (o, AtomicU32::new(0))),
            data: (0..CAPACITY).map(|_| UnsafeCell::new(0)).collect(),
        }))
    }

    fn u64_at(&self, offset: usize) -> &AtomicU64 {
        &self
            .0
            .words64
            .iter()
            .find(|(o, _)| *o == offset)
            .expect("u64 header field")
            .1
    }

    fn u32_at(&self, offset: usize) -> &AtomicU32 {
        &self
            .0
            .words32
            .iter()
            .find(|(o, _)| *o == offset)
            .expect("u32 header field")
            .1
    }
}

impl Memory for LoomRegion {
    fn size(&self) -> usize {
        ring_size(CAPACITY)
    }
    fn load_u64(&self, offset: usize, order: Ordering) -> u64 {
        self.u64_at(offset).load(order)
    }
    fn store_u64(&self, offset: usize, value: u64, order: Ordering) {
        self.u64_at(offset).store(value, order)
    }
    fn load_u32(&self, offset: usize, order: Ordering) -> u32 {
        self.u32_at(offset).load(order)
    }
    fn store_u32(&self, offset: usize, value: u32, order: Ordering) {
        self.u32_at(offset).store(value, order)
    }
    fn fence(&self) {
        fence(Ordering::SeqCst);
    }
    fn copy_out(&self, offset: usize, dst: &mut [u8]) {
        for (i, b) in dst.iter_mut().enumerate() {
            // SAFETY: loom checks that no `with_mut` on this cell races with
            // this read; that check is the point of the model.
            *b = self.0.data[offset - HEADER + i].with(|p| unsafe { *p });
        }
    }
    fn copy_in(&self, offset: usize, src: &[u8]) {
        for (i, b) in src.iter().enumerate() {
            // SAFETY: as in `copy_out`, loom reports any racing access.
            self.0.data[offset - HEADER + i].with_mut(|p| unsafe { *p = *b });
        }
    }
}

/// A binary semaphore: what an eventfd, a doorbell or an interrupt does.
#[derive(Clone)]
struct Event(Arc<(Mutex<bool>, Condvar)>);

impl Event {
    fn new() -> Self {
        Self(Arc::new((Mutex::new(false), Condvar::new())))
    }
}

impl Notify for Event {
    fn notify(&self) {
        *self.0.0.lock().unwrap() = true;
        self.0.1.notify_one();
    }
}

impl Wait for Event {
    fn wait(&mut self) {
        let mut set = self.0.0.lock().unwrap();
        while !*set {
            set = self.0.1.wait(set).unwrap();
        }
        *set = false;
    }
}

/// Three bytes through a two-byte ring: both sides must sleep and be woken
/// at least once in some interleavings; then end-of-stream.
#[test]
fn no_lost_wakeup_and_no_data_race() {
    let mut model = loom::model::Builder::new();
    model.preemption_bound = Some(3);
    model.check(|| {
        let region = LoomRegion::new();
        let (data, space) = (Event::new(), Event::new());
        let tx = Producer::new(region.clone(), 0, CAPACITY, data.clone()).unwrap();
        let rx = Consumer::new(region, 0, CAPACITY, space.clone()).unwrap();
        let writer = loom::thread::spawn(move || {
            let mut tx = Blocking::new(tx, space, 0);
            tx.write_all(&[1, 2, 3]).unwrap();
        });
        let mut rx = Blocking::new(rx, data, 0);
        let mut got = [0; 3];
        rx.read_exact(&mut got).unwrap();
        assert_eq!(got, [1, 2, 3]);
        assert_eq!(rx.read(&mut got), Ok(0));
        writer.join().unwrap();
    });
}

/// A consumer asleep on an empty ring is woken by the producer's close.
#[test]
fn close_wakes_a_sleeping_reader() {
    loom::model(|| {
        let region = LoomRegion::new();
        let (data, space) = (Event::new(), Event::new());
        let mut tx = Producer::new(region.clone(), 0, CAPACITY, data.clone()).unwrap();
        let rx = Consumer::new(region, 0, CAPACITY, space).unwrap();
        let writer = loom::thread::spawn(move || tx.close());
        let mut rx = Blocking::new(rx, data, 0);
        assert_eq!(rx.read(&mut [0; 1]), Ok(0));
        writer.join().unwrap();
    });
}
