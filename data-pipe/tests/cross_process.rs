//! 1 GiB through a memfd-shared ring between two processes (a forked child
//! writes, the parent reads), with eventfd wake-ups both ways and a checksum
//! the child appends to the stream.
#![cfg(not(loom))]

use embedded_io::{Read, Write};
use vmm_sys_util::eventfd::EventFd;
use weft_data_pipe::{Blocking, Consumer, MemfdRegion, Producer, ring_size};

const TOTAL: usize = 1 << 30;
const BLOCK: usize = 1 << 20;
const CAPACITY: usize = 1 << 18;

/// Order-sensitive checksum over 8-byte words (FNV-1a style).
fn checksum(mut h: u64, block: &[u8]) -> u64 {
    for word in block.chunks_exact(8) {
        let w = u64::from_le_bytes(word.try_into().unwrap_or_default());
        h = (h ^ w).wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Block `i` of the stream: a fixed pseudo-random block stamped with `i`.
fn stamp(block: &mut [u8], i: usize) {
    block[..8].copy_from_slice(&(i as u64).to_le_bytes());
}

/// The child: writes the stream and its checksum, returns whether it could.
fn produce(tx: Producer<&MemfdRegion, EventFd>, space: EventFd, block: &mut [u8]) -> bool {
    let mut tx = Blocking::new(tx, space, 256);
    let mut h = 0xcbf2_9ce4_8422_2325;
    for i in 0..TOTAL / BLOCK {
        stamp(block, i);
        h = checksum(h, block);
        if tx.write_all(block).is_err() {
            return false;
        }
    }
    tx.write_all(&h.to_le_bytes()).is_ok()
}

#[test]
fn one_gib_between_processes_with_checksum() {
    let region = MemfdRegion::new(ring_size(CAPACITY)).unwrap();
    let data_ready = EventFd::new(0).unwrap();
    let space_ready = EventFd::new(0).unwrap();
    let mut block: Vec<u8> = {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        (0..BLOCK)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    };
    let notify_data = data_ready.try_clone().unwrap();
    let notify_space = space_ready.try_clone().unwrap();

    // SAFETY: the child only runs allocation-free ring code on memory and
    // descriptors created before the fork, then `_exit`s, so it never touches
    // state another thread of the test harness might have held at the fork.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let tx = Producer::new(&region, 0, CAPACITY, notify_data).unwrap();
            produce(tx, space_ready, &mut block)
        }));
        // SAFETY: ends the child without running the parent's test harness.
        unsafe { libc::_exit(if matches!(ok, Ok(true)) { 0 } else { 1 }) };
    }
    drop(notify_data);
    drop(space_ready);

    let rx = Consumer::new(&region, 0, CAPACITY, notify_space).unwrap();
    let mut rx = Blocking::new(rx, data_ready, 256);
    let mut got = vec![0u8; BLOCK];
    let mut h = 0xcbf2_9ce4_8422_2325;
    for i in 0..TOTAL / BLOCK {
        rx.read_exact(&mut got).unwrap();
        stamp(&mut block, i);
        assert_eq!(got[..8], block[..8], "block {i} out of order");
        h = checksum(h, &got);
    }
    let mut sent = [0u8; 8];
    rx.read_exact(&mut sent).unwrap();
    assert_eq!(u64::from_le_bytes(sent), h, "checksum mismatch");
    assert_eq!(
        rx.read(&mut sent),
        Ok(0),
        "stream must end after the checksum"
    );

    let mut status = 0;
    // SAFETY: waits for our own child.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "child failed: {status:#x}"
    );
}
