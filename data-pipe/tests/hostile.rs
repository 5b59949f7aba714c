//! A peer that rewrites the ring header arbitrarily between operations
//! (PROTOCOL.md §7.7): the honest ends report `Corrupt` or carry on, never
//! panic, never hand out lengths beyond their buffers or the capacity.
#![cfg(not(loom))]

#[path = "support/hostile.rs"]
mod hostile;

use std::sync::atomic::Ordering;

use proptest::prelude::*;
use weft_data_pipe::{
    CONSUMED, Consumer, Error, HeapRegion, Memory, NoNotify, PRODUCED, PRODUCER_CLOSED, Producer,
    ring_size, unconsumed,
};

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn hostile_header_never_breaks_the_ring(shift: u8, bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        hostile::run(shift, &hostile::decode(&bytes));
    }
}

fn ring(capacity: usize) -> HeapRegion {
    HeapRegion::new(ring_size(capacity))
}

#[test]
fn producer_index_beyond_capacity_is_corrupt_and_sticky() {
    let mem = ring(64);
    let mut rx = Consumer::new(&mem, 0, 64, NoNotify).unwrap();
    mem.store_u64(PRODUCED, 65, Ordering::Release);
    assert_eq!(rx.read(&mut [0; 8]), Err(Error::Corrupt));
    mem.store_u64(PRODUCED, 1, Ordering::Release);
    assert_eq!(rx.read(&mut [0; 8]), Err(Error::Corrupt));
    assert_eq!(rx.readable_len(), Err(Error::Corrupt));
}

#[test]
fn producer_index_going_backwards_is_corrupt() {
    let mem = ring(64);
    let mut rx = Consumer::new(&mem, 0, 64, NoNotify).unwrap();
    mem.store_u64(PRODUCED, 10, Ordering::Release);
    assert_eq!(rx.read(&mut [0; 4]), Ok(4));
    mem.store_u64(PRODUCED, 9, Ordering::Release);
    assert_eq!(rx.read(&mut [0; 16]), Err(Error::Corrupt));
}

#[test]
fn consumer_index_beyond_produced_is_corrupt() {
    let mem = ring(64);
    let mut tx = Producer::new(&mem, 0, 64, NoNotify).unwrap();
    assert_eq!(tx.write(&[1; 64]), Ok(64));
    mem.store_u64(CONSUMED, 65, Ordering::Release);
    assert_eq!(tx.write(&[1]), Err(Error::Corrupt));
}

#[test]
fn close_flag_other_than_zero_or_one_is_corrupt() {
    let mem = ring(64);
    let mut rx = Consumer::new(&mem, 0, 64, NoNotify).unwrap();
    mem.store_u32(PRODUCER_CLOSED, 2, Ordering::Release);
    assert_eq!(rx.read(&mut [0; 4]), Err(Error::Corrupt));
}

#[test]
fn index_changes_after_close_are_ignored() {
    let mem = ring(64);
    let mut rx = Consumer::new(&mem, 0, 64, NoNotify).unwrap();
    mem.store_u64(PRODUCED, 3, Ordering::Release);
    mem.store_u32(PRODUCER_CLOSED, 1, Ordering::Release);
    assert_eq!(rx.read(&mut [0; 1]), Ok(1));
    assert_eq!(rx.read(&mut [0; 8]), Ok(2));
    assert_eq!(rx.read(&mut [0; 8]), Ok(0));
    mem.store_u64(PRODUCED, 40, Ordering::Release);
    assert_eq!(rx.read(&mut [0; 8]), Ok(0));
}

#[test]
fn unconsumed_counts_what_the_consumer_has_not_released_whatever_the_header() {
    let mem = ring(64);
    let mut tx = Producer::new(&mem, 0, 64, NoNotify).unwrap();
    let mut rx = Consumer::new(&mem, 0, 64, NoNotify).unwrap();
    assert_eq!(unconsumed(&mem, 0), 0);
    assert_eq!(tx.write(b"hello"), Ok(5));
    assert_eq!(unconsumed(&mem, 0), 5);
    assert_eq!(rx.read(&mut [0; 3]), Ok(3));
    assert_eq!(unconsumed(&mem, 0), 2);
    // A header rewritten backwards: a count, not a panic.
    mem.store_u64(CONSUMED, 9, Ordering::Release);
    assert_eq!(unconsumed(&mem, 0), 5u64.wrapping_sub(9));
}
