//! Random operation sequences on one ring compared with a `VecDeque` model:
//! wrap-around, partial reads and writes, zero lengths, zero-copy paths,
//! half-close both ways.
#![cfg(not(loom))]

use std::collections::VecDeque;

use proptest::prelude::*;
use weft_data_pipe::{Consumer, Error, HeapRegion, NoNotify, Producer, ring_size};

#[derive(Clone, Debug)]
enum Op {
    Write(usize),
    Read(usize),
    /// Reserve `max`, fill, commit `commit` (possibly more than reserved).
    ReserveCommit {
        max: usize,
        commit: usize,
    },
    /// Peek, then consume `n` (possibly more than peeked).
    PeekConsume(usize),
    ReadableLen,
    WritableLen,
    CloseWriter,
    CloseReader,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0usize..200).prop_map(Op::Write),
        6 => (0usize..200).prop_map(Op::Read),
        3 => (0usize..200, 0usize..210).prop_map(|(max, commit)| Op::ReserveCommit { max, commit }),
        3 => (0usize..210).prop_map(Op::PeekConsume),
        1 => Just(Op::ReadableLen),
        1 => Just(Op::WritableLen),
        1 => Just(Op::CloseWriter),
        1 => Just(Op::CloseReader),
    ]
}

/// What the ring should do, in the terms of its API.
struct Model {
    queue: VecDeque<u8>,
    capacity: usize,
    writer_closed: bool,
    reader_closed: bool,
    next_byte: u8,
}

impl Model {
    fn writer_error(&self) -> Option<Error> {
        if self.writer_closed {
            Some(Error::Closed)
        } else if self.reader_closed {
            Some(Error::BrokenPipe)
        } else {
            None
        }
    }

    fn free(&self) -> usize {
        self.capacity - self.queue.len()
    }

    /// Bytes a write of `len` (or reserve of `max`) would move.
    fn writable(&self, len: usize) -> Result<usize, Error> {
        if let Some(e) = self.writer_error() {
            return Err(e);
        }
        match self.free().min(len) {
            0 if len > 0 => Err(Error::WouldBlock),
            n => Ok(n),
        }
    }

    /// Bytes a read of `len` would move (`Ok(0)` at end of stream).
    fn readable(&self, len: usize) -> Result<usize, Error> {
        if self.reader_closed {
            return Err(Error::Closed);
        }
        match self.queue.len().min(len) {
            0 if len > 0 && !self.writer_closed => Err(Error::WouldBlock),
            n => Ok(n),
        }
    }

    fn fresh(&mut self, n: usize) -> Vec<u8> {
        (0..n)
            .map(|_| {
                self.next_byte = self.next_byte.wrapping_add(1);
                self.next_byte
            })
            .collect()
    }

    fn take(&mut self, n: usize) -> Vec<u8> {
        self.queue.drain(..n).collect()
    }
}

fn run(capacity: usize, ops: &[Op]) -> Result<(), TestCaseError> {
    let region = HeapRegion::new(ring_size(capacity));
    let mut tx = Producer::new(&region, 0, capacity, NoNotify).unwrap();
    let mut rx = Consumer::new(&region, 0, capacity, NoNotify).unwrap();
    let mut m = Model {
        queue: VecDeque::new(),
        capacity,
        writer_closed: false,
        reader_closed: false,
        next_byte: 0,
    };
    for op in ops {
        match *op {
            Op::Write(len) => {
                let data = m.fresh(len);
                let expected = m.writable(len);
                prop_assert_eq!(tx.write(&data), expected);
                if let Ok(n) = expected {
                    m.queue.extend(&data[..n]);
                }
            }
            Op::Read(len) => {
                let mut buf = vec![0; len];
                let expected = m.readable(len);
                prop_assert_eq!(rx.read(&mut buf), expected);
                if let Ok(n) = expected {
                    prop_assert_eq!(&buf[..n], &m.take(n)[..]);
                }
            }
            Op::ReserveCommit { max, commit } => {
                let expected = m.writable(max);
                let data = m.fresh(max);
                match tx.reserve(max) {
                    Ok(chunks) => {
                        prop_assert_eq!(Ok(chunks.len()), expected);
                        prop_assert_eq!(chunks.write(&data), chunks.len());
                        let n = chunks.len();
                        if commit <= n {
                            prop_assert_eq!(tx.commit(commit), Ok(()));
                            m.queue.extend(&data[..commit]);
                        } else {
                            prop_assert_eq!(tx.commit(commit), Err(Error::Overrun));
                        }
                    }
                    Err(e) => prop_assert_eq!(Err(e), expected),
                }
            }
            Op::PeekConsume(n) => {
                let expected = m.readable(usize::MAX);
                match rx.peek() {
                    Ok(chunks) => {
                        prop_assert_eq!(Ok(chunks.len()), expected);
                        let mut buf = vec![0; chunks.len()];
                        prop_assert_eq!(chunks.read(&mut buf), buf.len());
                        prop_assert!(
                            m.queue
                                .iter()
                                .copied()
                                .take(buf.len())
                                .eq(buf.iter().copied())
                        );
                        if n <= buf.len() {
                            prop_assert_eq!(rx.consume(n), Ok(()));
                            m.take(n);
                        } else {
                            prop_assert_eq!(rx.consume(n), Err(Error::Overrun));
                        }
                    }
                    Err(e) => prop_assert_eq!(Err(e), expected),
                }
            }
            Op::ReadableLen => {
                let expected = if m.reader_closed {
                    Err(Error::Closed)
                } else {
                    Ok(m.queue.len())
                };
                prop_assert_eq!(rx.readable_len(), expected);
            }
            Op::WritableLen => {
                let expected = m.writer_error().map_or(Ok(m.free()), Err);
                prop_assert_eq!(tx.writable_len(), expected);
            }
            Op::CloseWriter => {
                tx.close();
                m.writer_closed = true;
            }
            Op::CloseReader => {
                rx.close();
                m.reader_closed = true;
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn ring_matches_vecdeque(shift in 0u32..9, ops in prop::collection::vec(op(), 1..120)) {
        run(1 << shift, &ops)?;
    }
}

#[test]
fn wraps_many_times_with_odd_sizes() {
    let ops: Vec<Op> = (0..2000)
        .flat_map(|i| [Op::Write(i % 37), Op::Read(i % 23), Op::PeekConsume(i % 5)])
        .collect();
    run(16, &ops).unwrap();
}
