//! The monitor's tokio adapter against a "guest" using the blocking adapter
//! in two threads: an echo over a pipe, with eventfd wake-ups in every
//! direction.
#![cfg(not(loom))]

use embedded_io::{Read, Write};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use vmm_sys_util::eventfd::{EFD_NONBLOCK, EventFd};
use weft_data_pipe::{AsyncReader, AsyncWriter, Blocking, HeapRegion, Pipe, Side, pipe_size};

const CAPACITY: usize = 4096;
const LEN: usize = 1 << 20;

fn clone(fd: &EventFd) -> EventFd {
    fd.try_clone().unwrap()
}

#[test]
fn monitor_echoes_a_guest_stream() {
    let region = HeapRegion::new(pipe_size(CAPACITY));
    // The monitor sleeps in the reactor (non-blocking eventfds, one per
    // half); the guest threads sleep in blocking reads.
    let monitor_data = EventFd::new(EFD_NONBLOCK).unwrap();
    let monitor_space = EventFd::new(EFD_NONBLOCK).unwrap();
    let guest_data = EventFd::new(0).unwrap();
    let guest_space = EventFd::new(0).unwrap();
    let guest = Pipe::new(
        &region,
        0,
        CAPACITY,
        Side::A,
        clone(&monitor_data),
        clone(&monitor_space),
    )
    .unwrap();
    let monitor = Pipe::new(
        &region,
        0,
        CAPACITY,
        Side::B,
        clone(&guest_data),
        clone(&guest_space),
    )
    .unwrap();

    let data: Vec<u8> = (0..LEN).map(|i| (i * 7 % 253) as u8).collect();
    std::thread::scope(|s| {
        let (gtx, grx) = (guest.tx, guest.rx);
        let data = &data;
        s.spawn(move || {
            let mut tx = Blocking::new(gtx, guest_space, 64);
            tx.write_all(data).unwrap();
        });
        s.spawn(move || {
            let mut rx = Blocking::new(grx, guest_data, 64);
            let mut got = vec![0u8; LEN];
            rx.read_exact(&mut got).unwrap();
            assert!(got == *data, "echo differs");
            assert_eq!(rx.read(&mut [0; 1]), Ok(0));
        });

        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut reader = AsyncReader::new(monitor.rx, monitor_data).unwrap();
            let mut writer = AsyncWriter::new(monitor.tx, monitor_space).unwrap();
            let mut buf = vec![0u8; 3000];
            loop {
                let n = reader.read(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                writer.write_all(&buf[..n]).await.unwrap();
            }
            writer.shutdown().await.unwrap();
        });
    });
}

/// A reader that polls (`spin_for`) finds data its producer published
/// without notifying, while one that sleeps at once would need the
/// notification; after the spin it sleeps and the notification wakes it.
#[test]
fn a_spinning_reader_needs_no_notification_within_its_spin() {
    use std::time::Duration;
    use weft_data_pipe::{Consumer, NoNotify, Producer, ring_size};

    let region = HeapRegion::new(ring_size(CAPACITY));
    let wake = EventFd::new(EFD_NONBLOCK).unwrap();
    let late = clone(&wake);
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut tx = Producer::new(&region, 0, CAPACITY, NoNotify).unwrap();
            std::thread::sleep(Duration::from_millis(20));
            tx.write(b"quiet").unwrap();
            // Long after the reader's spin: this one needs the wake-up.
            std::thread::sleep(Duration::from_millis(300));
            tx.write(b"loud").unwrap();
            late.write(1).unwrap();
        });
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .unwrap();
        rt.block_on(async {
            let rx = Consumer::new(&region, 0, CAPACITY, NoNotify).unwrap();
            let mut reader = AsyncReader::new(rx, wake)
                .unwrap()
                .spin_for(Duration::from_millis(200));
            let mut buf = [0u8; 16];
            let n = reader.read(&mut buf).await.unwrap();
            assert_eq!(&buf[..n], b"quiet");
            let n = reader.read(&mut buf).await.unwrap();
            assert_eq!(&buf[..n], b"loud");
        });
    });
}

/// A raised cue makes its reader, asleep since its own spin ended, spin
/// again and find data that its producer published without notifying
/// (which it would otherwise sleep through for ever).
#[test]
fn a_cued_reader_spins_again() {
    cued_reader_finds_the_answer(std::time::Duration::from_millis(10));
}

/// A reader with no spin of its own spins after a cue all the same.
#[test]
fn a_reader_that_never_spins_spins_after_a_cue() {
    cued_reader_finds_the_answer(std::time::Duration::ZERO);
}

/// Counts the notifications a producer sends.
#[derive(Clone, Default)]
struct Counted(std::sync::Arc<std::sync::atomic::AtomicUsize>);

impl weft_data_pipe::Notify for Counted {
    fn notify(&self) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// A reader that spins `own` after its progress, cued at 50 ms for a spin
/// of 500 ms, reads what its producer publishes at 300 ms (well inside
/// that spin, on a loaded machine too), and the producer, seeing the
/// spinning reader's wait word clear (the sleep before the cue had
/// published it), does not notify.
fn cued_reader_finds_the_answer(own: std::time::Duration) {
    use std::time::Duration;
    use weft_data_pipe::{Consumer, NoNotify, Producer, ring_size};

    let told = Counted::default();

    // The reader's task must own what it reads ('static).
    let region: &'static HeapRegion = Box::leak(Box::new(HeapRegion::new(ring_size(CAPACITY))));
    std::thread::scope(|s| {
        let told = told.clone();
        s.spawn(move || {
            let mut tx = Producer::new(region, 0, CAPACITY, told).unwrap();
            // The reader's own spin (at most 10 ms) is long over; the cue
            // came at 50 ms, for a spin of 500 ms.
            std::thread::sleep(Duration::from_millis(300));
            tx.write(b"answer").unwrap();
        });
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .unwrap();
        rt.block_on(async {
            let rx = Consumer::new(region, 0, CAPACITY, NoNotify).unwrap();
            let mut reader = AsyncReader::new(rx, EventFd::new(EFD_NONBLOCK).unwrap())
                .unwrap()
                .spin_for(own);
            let cue = reader.cue(Duration::from_millis(500));
            // The reader is a task of its own: only its eventfd, its spin
            // or the cue wakes it.
            let reading = tokio::spawn(async move {
                let mut buf = [0u8; 16];
                let n = reader.read(&mut buf).await.unwrap();
                buf[..n].to_vec()
            });
            tokio::time::sleep(Duration::from_millis(50)).await;
            cue.raise();
            let got = tokio::time::timeout(Duration::from_secs(5), reading)
                .await
                .expect("the cued reader slept through the answer")
                .unwrap();
            assert_eq!(got, b"answer");
        });
    });
    assert_eq!(
        told.0.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "the producer notified a spinning reader"
    );
}
