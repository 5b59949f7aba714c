//! Ring throughput, message rate and round-trip latency, each measured side
//! by side with its baseline in the same run and recorded with
//! `weft-benchkit` (`target/bench/results.json`).
//!
//! The two sides run on different cores (core 0 and core 1, pinned).
//!
//! | figure | value | baseline |
//! |---|---|---|
//! | `ring_throughput_64k`, `_4k`, `_64b` | GB/s through one ring, writes and reads of that size, both sides polling | single-core memcpy of blocks of that size |
//! | `ring_msgs_64b` | 64-byte messages/s, consumer drains batches in place (`peek`/`consume`) | single-core memcpy of 64-byte messages |
//! | `ring_vs_socketpair_4k` | ring GB/s at 4 KiB | Unix socketpair GB/s at 4 KiB |
//! | `ring_rtt_polling_ns` | 64-byte round trip over a pipe, both sides spinning | round trip of a pair of atomics on two cache lines (the hardware floor) |
//! | `ring_rtt_eventfd_us` | 64-byte round trip, each receiver asleep on an eventfd | 64-byte round trip over a Unix socketpair (blocking reads) |

use std::hint::black_box;
use std::io::{Read as _, Write as _};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use embedded_io::{Read, Write};
use vmm_sys_util::eventfd::EventFd;
use weft_benchkit::{Record, median, record};
use weft_data_pipe::{
    Blocking, Consumer, Error, HeapRegion, NoNotify, Pipe, Producer, Side, pipe_size, ring_size,
};

const SAMPLES: usize = 5;
const GB: f64 = 1e9;

/// Pins the calling thread to `core`.
fn pin(core: usize) {
    // SAFETY: `set` is a plain bitmask owned by this frame, passed with its
    // size; sched_setaffinity only reads it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(core, &mut set);
        libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set);
    }
}

/// Runs `a` on core 1 and `b` on core 0 (this thread), returning seconds
/// from both being ready until both finish.
fn on_two_cores(a: impl FnOnce() + Send, b: impl FnOnce()) -> f64 {
    let ready = AtomicU64::new(0);
    let ready = &ready;
    pin(0);
    std::thread::scope(|s| {
        s.spawn(move || {
            pin(1);
            ready.fetch_add(1, Ordering::SeqCst);
            while ready.load(Ordering::SeqCst) < 2 {}
            a();
        });
        ready.fetch_add(1, Ordering::SeqCst);
        while ready.load(Ordering::SeqCst) < 2 {}
        let start = Instant::now();
        b();
        start.elapsed().as_secs_f64()
    })
}

fn samples(mut f: impl FnMut() -> f64) -> Vec<f64> {
    f(); // warm-up
    (0..SAMPLES).map(|_| f()).collect()
}

/// GB/s of `total` bytes through a ring of `capacity`, `size`-byte writes and reads.
fn ring_stream(size: usize, capacity: usize, total: usize) -> f64 {
    let region = HeapRegion::new(ring_size(capacity));
    let mut tx = Producer::new(&region, 0, capacity, NoNotify).unwrap();
    let mut rx = Consumer::new(&region, 0, capacity, NoNotify).unwrap();
    let secs = on_two_cores(
        move || {
            let buf = vec![7u8; size];
            let mut sent = 0;
            while sent < total {
                match tx.write(&buf) {
                    Ok(n) => sent += n,
                    Err(Error::WouldBlock) => std::hint::spin_loop(),
                    Err(e) => panic!("{e}"),
                }
            }
        },
        || {
            let mut buf = vec![0u8; size];
            let mut got = 0;
            while got < total {
                match rx.read(&mut buf) {
                    Ok(n) => got += n,
                    Err(Error::WouldBlock) => std::hint::spin_loop(),
                    Err(e) => panic!("{e}"),
                }
            }
            black_box(&buf);
        },
    );
    total as f64 / secs / GB
}

/// GB/s of single-core memcpy of `size`-byte blocks walking a `span`-byte buffer.
fn memcpy(size: usize, span: usize, total: usize) -> f64 {
    pin(0);
    let src = vec![7u8; span];
    let mut dst = vec![0u8; span];
    let start = Instant::now();
    let mut at = 0;
    for _ in 0..total / size {
        dst[at..at + size].copy_from_slice(black_box(&src[at..at + size]));
        at = (at + size) % span;
        black_box(&mut dst);
    }
    total as f64 / start.elapsed().as_secs_f64() / GB
}

/// 64-byte messages per second; the consumer drains everything available
/// with one `peek` and reads each message out in place.
fn ring_msgs(count: usize) -> f64 {
    const CAP: usize = 1 << 16;
    let region = HeapRegion::new(ring_size(CAP));
    let mut tx = Producer::new(&region, 0, CAP, NoNotify).unwrap();
    let mut rx = Consumer::new(&region, 0, CAP, NoNotify).unwrap();
    let secs = on_two_cores(
        move || {
            let mut msg = [0u8; 64];
            for i in 0..count {
                msg[..8].copy_from_slice(&(i as u64).to_le_bytes());
                while tx.write(&msg) == Err(Error::WouldBlock) {
                    std::hint::spin_loop();
                }
            }
        },
        || {
            let mut msg = [0u8; 64];
            let mut got = 0;
            while got < count {
                let n = match rx.peek() {
                    Ok(chunks) => {
                        let whole = chunks.len() / 64 * 64;
                        let mut at = 0;
                        while at < whole {
                            // Messages never straddle the wrap: 64 divides the capacity.
                            let chunk = if at < chunks.first.len() {
                                chunks.first
                            } else {
                                chunks.second
                            };
                            let base = if at < chunks.first.len() {
                                at
                            } else {
                                at - chunks.first.len()
                            };
                            chunk.read(base, &mut msg);
                            black_box(&msg);
                            at += 64;
                        }
                        whole
                    }
                    Err(Error::WouldBlock) => 0,
                    Err(e) => panic!("{e}"),
                };
                rx.consume(n).unwrap();
                got += n / 64;
            }
        },
    );
    count as f64 / secs
}

/// Messages per second of single-core memcpy of 64-byte messages.
fn memcpy_msgs(count: usize) -> f64 {
    memcpy(64, 1 << 16, count * 64) * GB / 64.0
}

/// GB/s through a Unix socketpair with `size`-byte writes and reads.
fn socketpair_stream(size: usize, total: usize) -> f64 {
    let (mut a, mut b) = UnixStream::pair().unwrap();
    let secs = on_two_cores(
        move || {
            let buf = vec![7u8; size];
            let mut sent = 0;
            while sent < total {
                sent += a.write(&buf).unwrap();
            }
        },
        || {
            let mut buf = vec![0u8; size];
            let mut got = 0;
            while got < total {
                got += b.read(&mut buf).unwrap();
            }
        },
    );
    total as f64 / secs / GB
}

/// Nanoseconds per 64-byte round trip over a pipe, both sides spinning.
fn ring_rtt_polling(rounds: usize) -> f64 {
    let region = HeapRegion::new(pipe_size(4096));
    let mut ping = Pipe::new(&region, 0, 4096, Side::A, NoNotify, NoNotify).unwrap();
    let mut pong = Pipe::new(&region, 0, 4096, Side::B, NoNotify, NoNotify).unwrap();
    let secs = on_two_cores(
        move || {
            let mut msg = [0u8; 64];
            for _ in 0..rounds {
                while pong.rx.read(&mut msg) == Err(Error::WouldBlock) {}
                pong.tx.write(&msg).unwrap();
            }
        },
        || {
            let mut msg = [1u8; 64];
            for _ in 0..rounds {
                ping.tx.write(&msg).unwrap();
                while ping.rx.read(&mut msg) == Err(Error::WouldBlock) {}
            }
        },
    );
    secs / rounds as f64 * 1e9
}

/// Nanoseconds per round trip of two atomics on separate cache lines.
fn atomics_rtt(rounds: usize) -> f64 {
    #[repr(align(64))]
    struct Line(AtomicU64);
    let (there, back) = (Line(AtomicU64::new(0)), Line(AtomicU64::new(0)));
    let (there, back) = (&there, &back);
    let secs = on_two_cores(
        move || {
            for i in 1..=rounds as u64 {
                while there.0.load(Ordering::Acquire) != i {}
                back.0.store(i, Ordering::Release);
            }
        },
        || {
            for i in 1..=rounds as u64 {
                there.0.store(i, Ordering::Release);
                while back.0.load(Ordering::Acquire) != i {}
            }
        },
    );
    secs / rounds as f64 * 1e9
}

/// Microseconds per 64-byte round trip over a pipe whose receivers sleep on
/// eventfds (no spinning).
fn ring_rtt_eventfd(rounds: usize) -> f64 {
    let region = HeapRegion::new(pipe_size(4096));
    let efd = || EventFd::new(0).unwrap();
    let (to_pong, to_ping, pong_space, ping_space) = (efd(), efd(), efd(), efd());
    let clone = |e: &EventFd| e.try_clone().unwrap();
    let ping = Pipe::new(
        &region,
        0,
        4096,
        Side::A,
        clone(&to_pong),
        clone(&pong_space),
    )
    .unwrap();
    let pong = Pipe::new(
        &region,
        0,
        4096,
        Side::B,
        clone(&to_ping),
        clone(&ping_space),
    )
    .unwrap();
    let (mut ping_tx, mut ping_rx) = (
        Blocking::new(ping.tx, ping_space, 0),
        Blocking::new(ping.rx, to_ping, 0),
    );
    let (mut pong_tx, mut pong_rx) = (
        Blocking::new(pong.tx, pong_space, 0),
        Blocking::new(pong.rx, to_pong, 0),
    );
    let secs = on_two_cores(
        move || {
            let mut msg = [0u8; 64];
            for _ in 0..rounds {
                pong_rx.read_exact(&mut msg).unwrap();
                pong_tx.write_all(&msg).unwrap();
            }
        },
        || {
            let mut msg = [1u8; 64];
            for _ in 0..rounds {
                ping_tx.write_all(&msg).unwrap();
                ping_rx.read_exact(&mut msg).unwrap();
            }
        },
    );
    secs / rounds as f64 * 1e6
}

/// Microseconds per 64-byte round trip over a Unix socketpair.
fn socketpair_rtt(rounds: usize) -> f64 {
    let (mut a, mut b) = UnixStream::pair().unwrap();
    let secs = on_two_cores(
        move || {
            let mut msg = [0u8; 64];
            for _ in 0..rounds {
                b.read_exact(&mut msg).unwrap();
                b.write_all(&msg).unwrap();
            }
        },
        || {
            let mut msg = [1u8; 64];
            for _ in 0..rounds {
                a.write_all(&msg).unwrap();
                a.read_exact(&mut msg).unwrap();
            }
        },
    );
    secs / rounds as f64 * 1e6
}

struct Figure {
    record: Record,
    value_samples: Vec<f64>,
    baseline_samples: Vec<f64>,
}

fn figure(name: &str, unit: &str, baseline: &str, value: Vec<f64>, base: Vec<f64>) -> Figure {
    let record = Record::new(name, median(&value), unit, baseline, median(&base));
    println!(
        "{name:24} {:>12.3} {unit:8} baseline ({baseline}) {:>12.3}  ratio {:.3}",
        record.value, record.baseline_value, record.ratio
    );
    Figure {
        record,
        value_samples: value,
        baseline_samples: base,
    }
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument is not supported.
    let mut figures = Vec::new();
    let throughput = [
        ("64k", 64 << 10, 1 << 20, 2 << 30),
        ("4k", 4 << 10, 1 << 18, 1 << 30),
        ("64b", 64, 1 << 16, 1 << 27),
    ];
    let mut ring_4k = Vec::new();
    for (label, size, capacity, total) in throughput {
        let ring = samples(|| ring_stream(size, capacity, total));
        let copy = samples(|| memcpy(size, capacity, total));
        if label == "4k" {
            ring_4k = ring.clone();
        }
        let baseline = format!("single-core memcpy, {label} blocks");
        figures.push(figure(
            &format!("ring_throughput_{label}"),
            "GB/s",
            &baseline,
            ring,
            copy,
        ));
    }
    let msgs = samples(|| ring_msgs(4_000_000));
    let copy = samples(|| memcpy_msgs(4_000_000));
    figures.push(figure(
        "ring_msgs_64b",
        "msg/s",
        "single-core memcpy of 64-byte messages",
        msgs,
        copy,
    ));
    let sock = samples(|| socketpair_stream(4 << 10, 1 << 28));
    figures.push(figure(
        "ring_vs_socketpair_4k",
        "GB/s",
        "Unix socketpair, 4 KiB writes",
        ring_4k,
        sock,
    ));
    let rtt = samples(|| ring_rtt_polling(200_000));
    let floor = samples(|| atomics_rtt(200_000));
    figures.push(figure(
        "ring_rtt_polling_ns",
        "ns",
        "atomics ping-pong on two cache lines",
        rtt,
        floor,
    ));
    let rtt = samples(|| ring_rtt_eventfd(20_000));
    let sock = samples(|| socketpair_rtt(20_000));
    figures.push(figure(
        "ring_rtt_eventfd_us",
        "us",
        "Unix socketpair round trip, 64 bytes",
        rtt,
        sock,
    ));

    let records: Vec<Record> = figures.iter().map(|f| f.record.clone()).collect();
    let names: Vec<(String, String)> = figures
        .iter()
        .map(|f| (f.record.name.clone(), format!("{}_baseline", f.record.name)))
        .collect();
    let mut raw: Vec<(&str, &[f64])> = Vec::new();
    for (f, (name, base)) in figures.iter().zip(&names) {
        raw.push((name, &f.value_samples));
        raw.push((base, &f.baseline_samples));
    }
    record(&records, &raw).expect("write bench results");
}
