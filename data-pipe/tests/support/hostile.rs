//! The hostile-header driver shared by `tests/hostile.rs` (proptest) and
//! the cargo-fuzz target (`fuzz/fuzz_targets/hostile_header.rs`): an honest
//! producer and consumer work on one ring while a "peer" rewrites header
//! fields arbitrarily between operations. Checked: no panic, no length beyond
//! the buffer or the capacity, `Corrupt` sticky, no `Corrupt` without a
//! rewrite.

use std::sync::atomic::Ordering;

use weft_data_pipe::{
    CONSUMED, CONSUMER_CLOSED, CONSUMER_WAIT, Consumer, Error, HeapRegion, Memory, NoNotify,
    PRODUCED, PRODUCER_CLOSED, PRODUCER_WAIT, Producer, WaitDecision, Waitable, ring_size,
};

const U64_FIELDS: [usize; 4] = [PRODUCED, CONSUMED, CONSUMER_WAIT, PRODUCER_WAIT];
const U32_FIELDS: [usize; 2] = [CONSUMER_CLOSED, PRODUCER_CLOSED];

/// One step of a hostile run.
#[derive(Clone, Debug)]
pub enum Op {
    /// Overwrite a u64 field.
    Set64(usize, u64),
    /// Overwrite a u32 field.
    Set32(usize, u32),
    /// Add a small signed delta to a u64 field (near-plausible indices).
    Nudge(usize, i8),
    Write(usize),
    Read(usize),
    ReserveCommit(usize, usize),
    PeekConsume(usize),
    Lens,
    WaitTx,
    WaitRx,
    CloseTx,
    CloseRx,
}

/// Decodes ops from arbitrary bytes (each op takes a tag byte and up to
/// eight argument bytes; missing bytes read as zero).
pub fn decode(bytes: &[u8]) -> Vec<Op> {
    let mut ops = Vec::new();
    let mut rest = bytes;
    while let Some((&tag, tail)) = rest.split_first() {
        let mut arg = [0u8; 8];
        let n = tail.len().min(8);
        arg[..n].copy_from_slice(&tail[..n]);
        let word = u64::from_le_bytes(arg);
        let small = usize::from(arg[0]) | usize::from(arg[1] & 1) << 8;
        let (op, used) = match tag % 12 {
            0 => (
                Op::Set64(U64_FIELDS[usize::from(arg[0]) % 4], u64::from_le_bytes(arg)),
                8,
            ),
            1 => (
                Op::Set32(U32_FIELDS[usize::from(arg[0]) % 2], (word >> 8) as u32 % 4),
                5,
            ),
            2 => (
                Op::Nudge(U64_FIELDS[usize::from(arg[0]) % 4], arg[1] as i8),
                2,
            ),
            3 => (Op::Write(small), 2),
            4 => (Op::Read(small), 2),
            5 => (Op::ReserveCommit(small, usize::from(arg[2])), 3),
            6 => (Op::PeekConsume(usize::from(arg[0])), 1),
            7 => (Op::Lens, 0),
            8 => (Op::WaitTx, 0),
            9 => (Op::WaitRx, 0),
            10 => (Op::CloseTx, 0),
            _ => (Op::CloseRx, 0),
        };
        ops.push(op);
        rest = &tail[used.min(tail.len())..];
    }
    ops
}

/// Tracks one end's results: lengths stay bounded, `Corrupt` is sticky and
/// appears only after a rewrite.
struct Watch {
    corrupt: bool,
    closed: bool,
}

impl Watch {
    fn see<T>(&mut self, r: &Result<T, Error>, tampered: bool) {
        match r {
            Err(Error::Corrupt) => {
                assert!(tampered, "Corrupt without any header rewrite");
                assert!(!self.closed, "Corrupt after close");
                self.corrupt = true;
            }
            Err(Error::Closed) => assert!(self.closed, "Closed before close"),
            _ => assert!(
                !self.corrupt || self.closed,
                "Corrupt was not sticky: {:?}",
                r.as_ref().err()
            ),
        }
    }
}

/// Runs `ops` on a ring of `1 << (shift % 10)` bytes.
pub fn run(shift: u8, ops: &[Op]) {
    let capacity = 1usize << (shift % 10);
    let region = HeapRegion::new(ring_size(capacity));
    let mut tx = Producer::new(&region, 0, capacity, NoNotify).expect("layout");
    let mut rx = Consumer::new(&region, 0, capacity, NoNotify).expect("layout");
    let (mut wtx, mut wrx) = (
        Watch {
            corrupt: false,
            closed: false,
        },
        Watch {
            corrupt: false,
            closed: false,
        },
    );
    let mut tampered = false;
    let mut buf = vec![0u8; 512];
    for op in ops {
        match *op {
            Op::Set64(field, value) => {
                tampered = true;
                region.store_u64(field, value, Ordering::Relaxed);
            }
            Op::Set32(field, value) => {
                tampered = true;
                region.store_u32(field, value, Ordering::Relaxed);
            }
            Op::Nudge(field, delta) => {
                tampered = true;
                let value = region
                    .load_u64(field, Ordering::Relaxed)
                    .wrapping_add_signed(i64::from(delta));
                region.store_u64(field, value, Ordering::Relaxed);
            }
            Op::Write(len) => {
                let r = tx.write(&buf[..len]);
                if let Ok(n) = r {
                    assert!(n <= len);
                }
                wtx.see(&r, tampered);
            }
            Op::Read(len) => {
                let r = rx.read(&mut buf[..len]);
                if let Ok(n) = r {
                    assert!(n <= len);
                }
                wrx.see(&r, tampered);
            }
            Op::ReserveCommit(max, commit) => {
                let r = tx.reserve(max).map(|c| {
                    assert!(c.len() <= max.min(capacity));
                    c.write(&buf[..max]);
                    c.len()
                });
                wtx.see(&r, tampered);
                let r = tx.commit(commit);
                wtx.see(&r, tampered);
            }
            Op::PeekConsume(n) => {
                let r = rx.peek().map(|c| {
                    assert!(c.len() <= capacity);
                    c.read(&mut buf[..c.len()]);
                });
                wrx.see(&r, tampered);
                let r = rx.consume(n);
                wrx.see(&r, tampered);
            }
            Op::Lens => {
                let r = rx.readable_len();
                assert!(r.unwrap_or(0) <= capacity);
                wrx.see(&r, tampered);
                let r = tx.writable_len();
                assert!(r.unwrap_or(0) <= capacity);
                wtx.see(&r, tampered);
            }
            Op::WaitTx => wait(&mut tx, &mut wtx, tampered),
            Op::WaitRx => wait(&mut rx, &mut wrx, tampered),
            Op::CloseTx => {
                tx.close();
                wtx.closed = true;
            }
            Op::CloseRx => {
                rx.close();
                wrx.closed = true;
            }
        }
    }
}

fn wait(end: &mut impl Waitable, watch: &mut Watch, tampered: bool) {
    let r = end.prepare_wait();
    watch.see(&r, tampered);
    if r == Ok(WaitDecision::Sleep) {
        end.end_wait();
    }
}
