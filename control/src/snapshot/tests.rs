//! The snapshot's rules, case by case: hand-made bytes (resealed with a
//! right checksum, so the structure is what is refused), the writer's
//! order, and how it streams. Round trips and arbitrary input are
//! `control/tests/snapshot.rs`'s.

extern crate std;

use super::*;
use crate::ipc_proto::Guid;
use std::string::ToString;
use std::vec;
use std::vec::Vec;

const MODULE: [u8; 32] = [7; 32];
const G: Guid = Guid([
    0x6f, 0x1c, 0x2a, 0x4e, 0x8b, 0x3d, 0x4f, 0x0a, 0x9c, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77,
]);

/// The bytes of one host record.
fn record_bytes(r: HostRecord<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    r.encode(&mut |b: &[u8]| out.extend_from_slice(b))
        .expect("a valid record");
    out
}

/// A host section body holding only a pid.
fn pid_only() -> Vec<u8> {
    record_bytes(HostRecord::Pid(1))
}

/// A snapshot of `sections` (kind, body), with a right length and checksum.
fn assemble(sections: &[(u16, Vec<u8>)]) -> Vec<u8> {
    let mut body = Vec::new();
    for (kind, b) in sections {
        body.extend_from_slice(&kind.to_le_bytes());
        body.extend_from_slice(&[0, 0]);
        body.extend_from_slice(&(b.len() as u64).to_le_bytes());
        body.extend_from_slice(b);
    }
    let header = Header {
        module: MODULE,
        body_len: body.len() as u64,
    };
    let mut out = header.encode().to_vec();
    out.extend_from_slice(&body);
    out.extend_from_slice(&crc32fast::hash(&out).to_le_bytes());
    out
}

/// Recomputes the checksum of a snapshot whose bytes were changed.
fn reseal(bytes: &mut [u8]) {
    let n = bytes.len() - TRAILER;
    let crc = crc32fast::hash(&bytes[..n]);
    bytes[n..].copy_from_slice(&crc.to_le_bytes());
}

/// A memory section's body of `pages`, with runs (first chunk, count) of
/// 0xAB bytes.
fn memory_body(pages: u32, runs: &[(u32, u32)]) -> Vec<u8> {
    let mut b = Vec::new();
    for v in [0, pages, u32::MAX] {
        b.extend_from_slice(&v.to_le_bytes());
    }
    for &(first, count) in runs {
        b.extend_from_slice(&first.to_le_bytes());
        b.extend_from_slice(&count.to_le_bytes());
        b.resize(b.len() + count as usize * CHUNK, 0xAB);
    }
    b
}

fn memory_error(pages: u32, runs: &[(u32, u32)]) -> SnapshotError {
    let snap = assemble(&[(1, memory_body(pages, runs)), (5, pid_only())]);
    read(&snap).expect_err("refused")
}

const ARGS: [&[u8]; 2] = [b"kv", b"--port=7"];

/// Host records with one of each kind.
fn every_record() -> [HostRecord<'static>; 12] {
    [
        HostRecord::Pid(3),
        HostRecord::Args(ByteStrings::new(&ARGS)),
        HostRecord::Env(ByteStrings::new(&[b"A=1"])),
        HostRecord::MemoryLimit(256 << 20),
        HostRecord::Descriptor {
            fd: 4,
            kind: Descriptor::udp("10.0.0.9:5353".parse().unwrap()),
        },
        HostRecord::Descriptor {
            fd: 6,
            kind: Descriptor::IpcService {
                guid: G,
                name: "kv",
            },
        },
        HostRecord::Descriptor {
            fd: 7,
            kind: Descriptor::IpcSender,
        },
        HostRecord::Descriptor {
            fd: 9,
            kind: Descriptor::Closed {
                what: crate::app::moved::TCP_CONNECTION,
            },
        },
        HostRecord::EventBuffer {
            at: 1024,
            capacity: 32,
        },
        HostRecord::Interest { fd: 6, bits: 1 },
        HostRecord::Timer {
            remaining_ns: 5_000_000,
            token: 9,
        },
        HostRecord::Exit { pid: 4, status: -1 },
    ]
}

/// A small snapshot with every section.
fn small() -> Vec<u8> {
    let mut memory = vec![0u8; PAGE];
    memory[100] = 1;
    memory[PAGE - 1] = 2;
    let globals = [
        Global {
            index: 0,
            ty: ValType::I32,
            bits: 0xFFFF_FFFF,
        },
        Global {
            index: 2,
            ty: ValType::F64,
            bits: 0x7FF0_0000_0000_0001,
        },
    ];
    let entries = [Some(3), None, Some(0)];
    let tables = [Table {
        index: 0,
        entries: &entries,
    }];
    let segments = Segments {
        data: &[true, false, true],
        elements: &[false; 9],
    };
    let host = every_record();
    let plan = Plan::new()
        .memory(&memory)
        .globals(&globals)
        .tables(&tables)
        .segments(&segments)
        .host(&host);
    let mut out = Vec::new();
    let mut w = Writer::new(|b: &[u8]| out.extend_from_slice(b));
    w.header(MODULE, &plan).unwrap();
    w.memory(&memory, Some(4)).unwrap();
    w.globals(&globals).unwrap();
    w.tables(&tables).unwrap();
    w.segments(&segments).unwrap();
    w.host(&host).unwrap();
    let n = w.finish().unwrap();
    assert_eq!(n as usize, out.len());
    out
}

#[test]
fn a_small_snapshot_reads_back() {
    let snap = small();
    let c = read(&snap).unwrap();
    assert_eq!(c.header.module, MODULE);
    assert_eq!(c.header.total_len(), Some(snap.len() as u64));
    let m = c.memory.unwrap();
    assert_eq!((m.index(), m.pages(), m.max_pages()), (0, 1, Some(4)));
    let runs: Vec<_> = m.runs().map(|(at, b)| (at, b.len())).collect();
    assert_eq!(runs, [(0, CHUNK), ((PAGE - CHUNK) as u64, CHUNK)]);
    let mut restored = vec![9u8; PAGE];
    restore_memory(&m, &mut restored).unwrap();
    assert_eq!(
        (restored[100], restored[PAGE - 1], restored[5000]),
        (1, 2, 0)
    );
    assert_eq!(c.globals.len(), 2);
    assert_eq!(
        c.globals.iter().nth(1).map(|g| g.bits),
        Some(0x7FF0_0000_0000_0001)
    );
    let t = c.tables.iter().next().unwrap();
    assert_eq!(t.entries().collect::<Vec<_>>(), [Some(3), None, Some(0)]);
    assert_eq!(
        c.segments.data.iter().collect::<Vec<_>>(),
        [true, false, true]
    );
    assert_eq!(c.segments.elements.len(), 9);
    assert_eq!(c.host.iter().collect::<Vec<_>>(), every_record());
    let kinds: Vec<_> = Reader::new(&snap)
        .unwrap()
        .map(|s| s.unwrap().kind())
        .collect();
    assert_eq!(kinds, SectionKind::ALL);
}

#[test]
fn every_flipped_byte_is_refused() {
    let snap = small();
    for i in 0..snap.len() {
        for flip in [0x01, 0x80, 0xFF] {
            let mut bad = snap.clone();
            bad[i] ^= flip;
            assert!(read(&bad).is_err(), "byte {i} ^ {flip:#x} was accepted");
        }
    }
}

#[test]
fn every_truncation_and_trailing_bytes_are_refused() {
    let snap = small();
    for n in 0..snap.len() {
        assert_eq!(
            check(&snap[..n]),
            Err(SnapshotError::Truncated { at: n as u64 })
        );
        assert!(read(&snap[..n]).is_err());
    }
    let mut long = snap.clone();
    long.push(0);
    assert_eq!(
        check(&long),
        Err(SnapshotError::Trailing {
            at: snap.len() as u64
        })
    );
}

#[test]
fn a_snapshot_checked_in_parts_is_checked_as_a_whole() {
    let snap = small();
    let mut flipped = snap.clone();
    flipped[HEADER + 20] ^= 1;
    let mut long = snap.clone();
    long.push(0);
    let cases = [
        snap.clone(),
        flipped,
        long,
        snap[..snap.len() - 1].to_vec(),
        snap[..3].to_vec(),
    ];
    for bytes in &cases {
        // Cut in every way into two parts, and into parts of 1 to 7 bytes.
        for cut in 0..=bytes.len() {
            let mut c = Checker::new();
            c.update(&bytes[..cut]);
            c.update(&bytes[cut..]);
            assert_eq!(c.finish(), check(bytes), "cut at {cut}");
        }
        for size in 1..8 {
            let mut c = Checker::new();
            for part in bytes.chunks(size) {
                c.update(part);
            }
            assert_eq!(c.finish(), check(bytes), "parts of {size}");
        }
    }
    assert!(check(&snap).is_ok());
}

#[test]
fn wrong_magic_version_and_flags_say_so() {
    let mut snap = small();
    snap[..4].copy_from_slice(b"ELF\x7f");
    let e = check(&snap).unwrap_err();
    assert_eq!(e, SnapshotError::BadMagic(u32::from_le_bytes(*b"ELF\x7f")));
    assert!(e.to_string().contains("not a snapshot"), "{e}");

    let mut snap = small();
    snap[4..6].copy_from_slice(&2u16.to_le_bytes());
    reseal(&mut snap);
    let e = read(&snap).unwrap_err();
    assert_eq!(e, SnapshotError::Version(2));
    assert!(e.to_string().contains("version 2 is not supported"), "{e}");

    let mut snap = small();
    snap[6] = 1;
    reseal(&mut snap);
    assert_eq!(read(&snap), Err(SnapshotError::Flags(1)));
}

#[test]
fn a_flipped_byte_is_a_checksum_mismatch() {
    let mut snap = small();
    let good = crc32fast::hash(&snap[..snap.len() - TRAILER]);
    snap[HEADER + 20] ^= 1;
    let bad = crc32fast::hash(&snap[..snap.len() - TRAILER]);
    assert_eq!(
        check(&snap),
        Err(SnapshotError::Checksum {
            expected: bad,
            found: good
        })
    );
}

#[test]
fn a_summed_read_skips_only_the_checksum() {
    let mut snap = small();
    assert_eq!(read_summed(&snap), read(&snap));
    // A trailer that is wrong is not looked at; a short snapshot still is.
    let end = snap.len() - 1;
    snap[end] ^= 1;
    assert!(matches!(read(&snap), Err(SnapshotError::Checksum { .. })));
    assert!(read_summed(&snap).is_ok());
    assert_eq!(
        read_summed(&snap[..end]),
        Err(SnapshotError::Truncated { at: end as u64 })
    );
}

#[test]
fn bad_chunk_runs_are_refused_with_a_right_checksum() {
    assert_eq!(
        memory_error(1, &[(5, 1), (2, 1)]),
        SnapshotError::ChunkOrder {
            first: 2,
            previous_end: 6
        }
    );
    assert_eq!(
        memory_error(1, &[(0, 3), (2, 1)]),
        SnapshotError::ChunkOrder {
            first: 2,
            previous_end: 3
        }
    );
    assert_eq!(
        memory_error(1, &[(15, 2)]),
        SnapshotError::ChunkPastEnd {
            first: 15,
            count: 2,
            chunks: 16
        }
    );
    assert_eq!(
        memory_error(0, &[(0, 1)]),
        SnapshotError::ChunkPastEnd {
            first: 0,
            count: 1,
            chunks: 0
        }
    );
    assert!(matches!(
        memory_error(1, &[(1, 0)]),
        SnapshotError::OutOfRange {
            what: "memory run chunk count",
            ..
        }
    ));
    assert!(matches!(
        memory_error(MAX_PAGES + 1, &[]),
        SnapshotError::OutOfRange {
            what: "memory pages",
            ..
        }
    ));
    // Adjacent runs say what one run would: allowed.
    let snap = assemble(&[(1, memory_body(1, &[(0, 1), (1, 1)])), (5, pid_only())]);
    let m = read(&snap).unwrap().memory.unwrap();
    assert_eq!(m.runs().count(), 2);
}

#[test]
fn a_run_cut_short_is_an_overrun() {
    let mut body = memory_body(1, &[(0, 2)]);
    body.truncate(body.len() - 1);
    let snap = assemble(&[(1, body), (5, pid_only())]);
    assert!(matches!(
        read(&snap),
        Err(SnapshotError::Overrun {
            what: "memory run",
            ..
        })
    ));
}

#[test]
fn sections_come_once_in_order_and_the_host_section_is_there() {
    let globals = {
        let mut b = 1u32.to_le_bytes().to_vec();
        b.extend_from_slice(&[0, 0, 0, 0, 0x7F, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0]);
        b
    };
    assert_eq!(
        read(&assemble(&[
            (2, globals.clone()),
            (1, memory_body(0, &[])),
            (5, pid_only())
        ])),
        Err(SnapshotError::SectionOrder {
            kind: SectionKind::Memory,
            after: SectionKind::Globals
        })
    );
    assert_eq!(
        read(&assemble(&[(5, pid_only()), (5, pid_only())])),
        Err(SnapshotError::SectionOrder {
            kind: SectionKind::Host,
            after: SectionKind::Host
        })
    );
    assert_eq!(
        read(&assemble(&[(2, globals.clone())])),
        Err(SnapshotError::MissingSection(SectionKind::Host))
    );
    assert_eq!(
        read(&assemble(&[(9, vec![]), (5, pid_only())])),
        Err(SnapshotError::UnknownSection {
            kind: 9,
            at: HEADER as u64
        })
    );
    let mut snap = assemble(&[(2, globals), (5, pid_only())]);
    snap[HEADER + 2] = 1;
    reseal(&mut snap);
    assert_eq!(
        read(&snap),
        Err(SnapshotError::Reserved {
            what: "section header",
            at: HEADER as u64
        })
    );
    let mut snap = assemble(&[(5, pid_only())]);
    snap[HEADER + 4..HEADER + 12].copy_from_slice(&(MAX_SECTION + 1).to_le_bytes());
    reseal(&mut snap);
    assert_eq!(
        read(&snap),
        Err(SnapshotError::SectionTooLong {
            kind: SectionKind::Host,
            len: MAX_SECTION + 1
        })
    );
}

/// A globals section's body of (index, type byte, bits).
fn globals_body(globals: &[(u32, u8, u64)]) -> Vec<u8> {
    let mut b = (globals.len() as u32).to_le_bytes().to_vec();
    for &(index, ty, bits) in globals {
        b.extend_from_slice(&index.to_le_bytes());
        b.extend_from_slice(&[ty, 0, 0, 0]);
        b.extend_from_slice(&bits.to_le_bytes());
    }
    b
}

fn globals_error(globals: &[(u32, u8, u64)]) -> SnapshotError {
    read(&assemble(&[(2, globals_body(globals)), (5, pid_only())])).unwrap_err()
}

#[test]
fn bad_globals_are_refused() {
    let body_at = (HEADER + SECTION_HEADER) as u64;
    assert_eq!(
        globals_error(&[(0, 0x7B, 0)]),
        SnapshotError::GlobalType {
            ty: 0x7B,
            at: body_at + 8
        }
    );
    assert!(matches!(
        globals_error(&[(0, 0x7D, 1 << 32)]),
        SnapshotError::OutOfRange {
            what: "32-bit global's bits",
            ..
        }
    ));
    assert_eq!(
        globals_error(&[(3, 0x7E, 0), (3, 0x7E, 0)]),
        SnapshotError::NotAscending {
            what: "global index",
            value: 3,
            at: body_at + 20
        }
    );
    assert!(matches!(
        globals_error(&[]),
        SnapshotError::OutOfRange {
            what: "globals count",
            value: 0,
            ..
        }
    ));
    let mut body = globals_body(&[(0, 0x7F, 0)]);
    body[9] = 1;
    assert_eq!(
        read(&assemble(&[(2, body), (5, pid_only())])),
        Err(SnapshotError::Reserved {
            what: "global",
            at: body_at + 4
        })
    );
    let mut body = globals_body(&[(0, 0x7F, 0)]);
    body.push(0);
    assert_eq!(
        read(&assemble(&[(2, body), (5, pid_only())])),
        Err(SnapshotError::Trailing { at: body_at + 20 })
    );
}

#[test]
fn tables_and_segments_are_checked() {
    let mut tables = 1u32.to_le_bytes().to_vec();
    tables.extend_from_slice(&0u32.to_le_bytes());
    tables.extend_from_slice(&(MAX_TABLE_SIZE + 1).to_le_bytes());
    assert!(matches!(
        read(&assemble(&[(3, tables), (5, pid_only())])),
        Err(SnapshotError::OutOfRange {
            what: "table size",
            ..
        })
    ));
    // 3 data segments, a bit set past them; no element segments.
    let segments = [3, 0, 0, 0, 0b1000_0001, 0, 0, 0, 0].to_vec();
    assert_eq!(
        read(&assemble(&[(4, segments), (5, pid_only())])),
        Err(SnapshotError::StrayBits {
            what: "data segments",
            at: (HEADER + SECTION_HEADER + 4) as u64
        })
    );
    let none = [0u8; 8].to_vec();
    assert!(matches!(
        read(&assemble(&[(4, none), (5, pid_only())])),
        Err(SnapshotError::OutOfRange {
            what: "segments count",
            ..
        })
    ));
}

/// The error of a host section of `records`' bytes.
fn host_error(records: &[Vec<u8>]) -> SnapshotError {
    read(&assemble(&[(5, records.concat())])).unwrap_err()
}

/// A record's bytes from its kind and body.
fn raw_record(kind: u16, body: &[u8]) -> Vec<u8> {
    let mut b = kind.to_le_bytes().to_vec();
    b.extend_from_slice(&(body.len() as u32).to_le_bytes());
    b.extend_from_slice(body);
    b
}

#[test]
fn host_records_follow_the_section_rules() {
    let at = (HEADER + SECTION_HEADER) as u64;
    let pid = pid_only();
    let timer = record_bytes(HostRecord::Timer {
        remaining_ns: 1,
        token: 2,
    });
    let exit = record_bytes(HostRecord::Exit { pid: 2, status: 0 });
    let sender = |fd| {
        record_bytes(HostRecord::Descriptor {
            fd,
            kind: Descriptor::IpcSender,
        })
    };
    assert_eq!(
        host_error(&[raw_record(77, &[]), pid.clone()]),
        SnapshotError::UnknownHostRecord { kind: 77, at }
    );
    assert_eq!(
        host_error(&[pid.clone(), raw_record(77, &[])]),
        SnapshotError::UnknownHostRecord {
            kind: 77,
            at: at + pid.len() as u64
        }
    );
    assert_eq!(
        host_error(core::slice::from_ref(&timer)),
        SnapshotError::MissingHostRecord(record::PID)
    );
    assert_eq!(
        host_error(&[]),
        SnapshotError::MissingHostRecord(record::PID)
    );
    assert!(matches!(
        host_error(&[pid.clone(), exit.clone(), timer.clone()]),
        SnapshotError::HostRecordOrder {
            kind: record::TIMER,
            after: record::EXIT,
            ..
        }
    ));
    assert!(matches!(
        host_error(&[pid.clone(), pid.clone()]),
        SnapshotError::HostRecordOrder {
            kind: record::PID,
            after: record::PID,
            ..
        }
    ));
    assert!(matches!(
        host_error(&[pid.clone(), sender(9), sender(9)]),
        SnapshotError::NotAscending {
            what: "descriptor",
            value: 9,
            ..
        }
    ));
    // Records that may repeat do, in the runtime's order.
    let ok = [pid.clone(), sender(4), sender(5), exit.clone(), exit];
    assert!(read(&assemble(&[(5, ok.concat())])).is_ok());
    assert!(matches!(
        host_error(&[
            pid.clone(),
            raw_record(record::INTEREST, &[4, 0, 0, 0, 4, 0, 0, 0])
        ]),
        SnapshotError::OutOfRange {
            what: "interest bits",
            value: 4,
            ..
        }
    ));
    assert!(matches!(
        host_error(&[
            pid.clone(),
            raw_record(record::DESCRIPTOR, &[3, 0, 0, 0, 3, 0, 0, 0])
        ]),
        SnapshotError::OutOfRange {
            what: "descriptor",
            value: 3,
            ..
        }
    ));
    assert!(matches!(
        host_error(&[
            pid.clone(),
            raw_record(record::DESCRIPTOR, &[4, 0, 0, 0, 9, 0, 0, 0])
        ]),
        SnapshotError::UnknownDescriptor { kind: 9, .. }
    ));
    let mut service = vec![4, 0, 0, 0, 2, 0, 0, 0];
    service.extend_from_slice(&[0; 16]);
    service.extend_from_slice(&[1, 0, b'x']);
    assert!(matches!(
        host_error(&[pid.clone(), raw_record(record::DESCRIPTOR, &service)]),
        SnapshotError::NilGuid { .. }
    ));
    service[8..24].copy_from_slice(&G.0);
    *service.last_mut().unwrap() = 0xFF;
    assert!(matches!(
        host_error(&[pid.clone(), raw_record(record::DESCRIPTOR, &service)]),
        SnapshotError::NotUtf8 {
            what: "service name",
            ..
        }
    ));
    assert!(matches!(
        host_error(&[raw_record(record::PID, &[1, 0, 0, 0, 0])]),
        SnapshotError::Trailing { .. }
    ));
    assert!(matches!(
        host_error(&[raw_record(record::PID, &[0, 0, 0, 0])]),
        SnapshotError::OutOfRange { what: "pid", .. }
    ));
}

#[test]
fn host_records_round_trip_alone() {
    for r in every_record() {
        let bytes = record_bytes(r);
        assert_eq!(r.encoded_len(), bytes.len() as u64);
        assert_eq!(HostRecord::decode(&bytes), Ok((r, bytes.len())));
        let mut more = bytes.clone();
        more.extend_from_slice(b"next");
        assert_eq!(HostRecord::decode(&more), Ok((r, bytes.len())));
        for n in 0..bytes.len() {
            assert!(HostRecord::decode(&bytes[..n]).is_err());
        }
    }
    let bad = HostRecord::Interest { fd: 2, bits: 1 };
    assert!(bad.encode(&mut |_: &[u8]| {}).is_err());
    let name = "n".repeat(65);
    let long = HostRecord::Descriptor {
        fd: 4,
        kind: Descriptor::IpcService {
            guid: G,
            name: &name,
        },
    };
    assert!(long.encode(&mut |_: &[u8]| {}).is_err());
}

#[test]
fn a_closed_descriptor_is_twelve_bytes_and_names_a_known_kind() {
    use crate::app::moved;
    // fd 5, kind 4 CLOSED, reserved, what 4 (a TCP connection), reserved.
    let bytes = record_bytes(HostRecord::Descriptor {
        fd: 5,
        kind: Descriptor::Closed {
            what: moved::TCP_CONNECTION,
        },
    });
    assert_eq!(
        bytes,
        [5, 0, 12, 0, 0, 0, 5, 0, 0, 0, 4, 0, 0, 0, 4, 0, 0, 0]
    );
    for what in [moved::FILE, moved::FABRIC_WATCH] {
        let r = HostRecord::Descriptor {
            fd: 4,
            kind: Descriptor::Closed { what },
        };
        assert_eq!(HostRecord::decode(&record_bytes(r)), Ok((r, 18)));
    }
    let pid = pid_only();
    let closed = |what: u16, reserved: u16| {
        let mut body = vec![4, 0, 0, 0, 4, 0, 0, 0];
        body.extend_from_slice(&what.to_le_bytes());
        body.extend_from_slice(&reserved.to_le_bytes());
        raw_record(record::DESCRIPTOR, &body)
    };
    assert!(read(&assemble(&[(5, [pid.clone(), closed(1, 0)].concat())])).is_ok());
    for what in [0, 7, 0xFFFF] {
        assert!(
            matches!(
                host_error(&[pid.clone(), closed(what, 0)]),
                SnapshotError::OutOfRange {
                    what: "closed descriptor's kind",
                    value,
                    ..
                } if value == u64::from(what)
            ),
            "{what}"
        );
        let r = HostRecord::Descriptor {
            fd: 4,
            kind: Descriptor::Closed { what },
        };
        assert!(r.encode(&mut |_: &[u8]| {}).is_err(), "{what}");
    }
    assert!(matches!(
        host_error(&[pid.clone(), closed(1, 1)]),
        SnapshotError::Reserved {
            what: "closed descriptor",
            ..
        }
    ));
    // Nothing after `what` and its reserved bytes.
    let mut long = vec![4, 0, 0, 0, 4, 0, 0, 0, 1, 0, 0, 0, 0];
    assert!(matches!(
        host_error(&[pid.clone(), raw_record(record::DESCRIPTOR, &long)]),
        SnapshotError::Trailing { .. }
    ));
    long.truncate(10);
    assert!(
        read(&assemble(&[(
            5,
            [pid, raw_record(record::DESCRIPTOR, &long)].concat()
        )]))
        .is_err()
    );
}

#[test]
fn udp_addresses_keep_their_family() {
    for text in ["10.0.0.9:5353", "[fd00::1]:80", "[::ffff:1.2.3.4]:9"] {
        let addr: core::net::SocketAddr = text.parse().unwrap();
        let d = Descriptor::udp(addr);
        let back = d.socket_addr().unwrap();
        // A v4-mapped IPv6 address comes back as IPv4: the same socket.
        assert_eq!(back.port(), addr.port());
        assert_eq!(Descriptor::udp(back), d);
    }
    assert_eq!(Descriptor::IpcSender.socket_addr(), None);
}

#[test]
fn sixteen_mib_with_three_bytes_encodes_in_under_16_kib() {
    let mut memory = vec![0u8; 16 << 20];
    for at in [0, 8 << 20 | 5, (16 << 20) - 1] {
        memory[at] = 0x5A;
    }
    let host = [HostRecord::Pid(1)];
    let plan = Plan::new().memory(&memory).host(&host);
    let mut out = Vec::new();
    let mut w = Writer::new(|b: &[u8]| out.extend_from_slice(b));
    w.header(MODULE, &plan).unwrap();
    w.memory(&memory, None).unwrap();
    w.host(&host).unwrap();
    w.finish().unwrap();
    assert!(out.len() < 16 << 10, "{} bytes", out.len());
    // §19.1: three runs, a memory section of 12 336 bytes.
    let pid = SECTION_HEADER + 10;
    assert_eq!(out.len(), HEADER + 12_336 + pid + TRAILER);
    let m = read(&out).unwrap().memory.unwrap();
    assert_eq!(m.runs().count(), 3);
    let mut restored = vec![1u8; 16 << 20];
    restore_memory(&m, &mut restored).unwrap();
    assert!(restored == memory);
    assert_eq!(
        restore_memory(&m, &mut restored[1..]),
        Err(SnapshotError::DestinationSize {
            expected: 16 << 20,
            found: (16 << 20) - 1
        })
    );
}

#[test]
fn the_writer_hands_memory_runs_over_as_slices_of_the_memory() {
    let mut memory = vec![0u8; 3 * PAGE];
    memory[..3 * CHUNK].fill(1);
    memory[PAGE + 7] = 2;
    memory[3 * PAGE - 1] = 3;
    let range = memory.as_ptr_range();
    let host = [HostRecord::Pid(1)];
    let plan = Plan::new().memory(&memory).host(&host);
    let mut calls: Vec<(bool, usize)> = Vec::new();
    let mut total = 0;
    let mut w = Writer::new(|b: &[u8]| {
        calls.push((range.contains(&b.as_ptr()), b.len()));
        total += b.len();
    });
    w.header(MODULE, &plan).unwrap();
    w.memory(&memory, None).unwrap();
    w.host(&host).unwrap();
    let len = w.finish().unwrap();
    assert_eq!(len, total as u64);
    let runs: Vec<usize> = calls.iter().filter(|c| c.0).map(|c| c.1).collect();
    assert_eq!(runs, [3 * CHUNK, CHUNK, CHUNK]);
    // Everything else is a field: the header at most.
    assert!(calls.iter().all(|&(run, n)| run || n <= HEADER));
    // And the writer holds no buffer.
    assert!(core::mem::size_of::<Writer<fn(&[u8])>>() <= 160);
}

#[test]
fn the_writer_refuses_steps_out_of_order_and_writes_nothing_then() {
    let memory = vec![0u8; PAGE];
    let globals = [Global {
        index: 0,
        ty: ValType::I64,
        bits: 1,
    }];
    let host = [HostRecord::Pid(1)];
    let plan = Plan::new().memory(&memory).host(&host);
    let mut n = 0;
    let mut w = Writer::new(|b: &[u8]| n += b.len());
    assert_eq!(
        w.memory(&memory, None),
        Err(SnapshotError::WriteOrder {
            step: "memory",
            after: "new"
        })
    );
    assert_eq!(
        w.finish(),
        Err(SnapshotError::WriteOrder {
            step: "finish",
            after: "new"
        })
    );
    assert_eq!(
        w.header(MODULE, &Plan::new()),
        Err(SnapshotError::MissingSection(SectionKind::Host))
    );
    w.header(MODULE, &plan).unwrap();
    assert_eq!(
        w.header(MODULE, &plan),
        Err(SnapshotError::WriteOrder {
            step: "header",
            after: "header"
        })
    );
    assert!(matches!(
        w.memory(&memory[1..], None),
        Err(SnapshotError::OutOfRange {
            what: "memory length",
            ..
        })
    ));
    assert!(matches!(
        w.memory(&memory, Some(0)),
        Err(SnapshotError::OutOfRange {
            what: "memory maximum pages",
            ..
        })
    ));
    assert_eq!(
        w.globals(&globals),
        Err(SnapshotError::Unplanned {
            kind: SectionKind::Globals,
            planned: None,
            actual: Some(20)
        })
    );
    assert_eq!(
        w.finish(),
        Err(SnapshotError::MissingSection(SectionKind::Memory))
    );
    w.memory(&memory, None).unwrap();
    // Skipping a section that is not planned is fine; going back is not.
    w.globals(&[]).unwrap();
    assert_eq!(
        w.memory(&memory, None),
        Err(SnapshotError::WriteOrder {
            step: "memory",
            after: "globals"
        })
    );
    assert!(matches!(
        w.host(&[HostRecord::Pid(1), HostRecord::Pid(2)]),
        Err(SnapshotError::HostRecordOrder { .. })
    ));
    assert!(matches!(
        w.host(&[HostRecord::Pid(1), HostRecord::MemoryLimit(1)]),
        Err(SnapshotError::Unplanned { .. })
    ));
    w.host(&host).unwrap();
    assert_eq!(
        w.tables(&[]),
        Err(SnapshotError::WriteOrder {
            step: "tables",
            after: "host"
        })
    );
    let len = w.finish().unwrap();
    assert_eq!(
        w.finish(),
        Err(SnapshotError::WriteOrder {
            step: "finish",
            after: "finish"
        })
    );
    assert_eq!(len, n as u64);
}

#[test]
fn the_writer_refuses_what_the_reader_would() {
    let host = [HostRecord::Pid(1)];
    let plan = Plan::new().host(&host);
    let mut w = Writer::new(|_: &[u8]| {});
    w.header(MODULE, &plan).unwrap();
    let unsorted = [
        Global {
            index: 1,
            ty: ValType::I32,
            bits: 0,
        },
        Global {
            index: 0,
            ty: ValType::I32,
            bits: 0,
        },
    ];
    assert!(matches!(
        w.globals(&unsorted),
        Err(SnapshotError::NotAscending { .. })
    ));
    let wide = [Global {
        index: 0,
        ty: ValType::F32,
        bits: 1 << 40,
    }];
    assert!(matches!(
        w.globals(&wide),
        Err(SnapshotError::OutOfRange { .. })
    ));
    let null_lookalike = [Some(u32::MAX)];
    assert!(matches!(
        w.tables(&[Table {
            index: 0,
            entries: &null_lookalike
        }]),
        Err(SnapshotError::OutOfRange { .. })
    ));
    let many = vec![false; MAX_SEGMENTS as usize + 1];
    assert!(matches!(
        w.segments(&Segments {
            data: &many,
            elements: &[]
        }),
        Err(SnapshotError::OutOfRange { .. })
    ));
    assert!(matches!(
        w.host(&[HostRecord::Timer {
            remaining_ns: 0,
            token: 0
        }]),
        Err(SnapshotError::MissingHostRecord(record::PID))
    ));
}

#[test]
fn the_smallest_snapshot_is_protocol_md_s_example() {
    let mut expected = vec![0x57, 0x53, 0x4E, 0x50, 1, 0, 0, 0];
    expected.extend_from_slice(&[0; 32]);
    expected.extend_from_slice(&[0x16, 0, 0, 0, 0, 0, 0, 0]);
    expected.extend_from_slice(&[5, 0, 0, 0, 0x0A, 0, 0, 0, 0, 0, 0, 0]);
    expected.extend_from_slice(&[1, 0, 4, 0, 0, 0, 1, 0, 0, 0]);
    expected.extend_from_slice(&[0xBC, 0xBF, 0x18, 0x58]);
    let host = [HostRecord::Pid(1)];
    let mut out = Vec::new();
    let mut w = Writer::new(|b: &[u8]| out.extend_from_slice(b));
    w.header([0; 32], &Plan::new().host(&host)).unwrap();
    w.host(&host).unwrap();
    assert_eq!(w.finish(), Ok(74));
    assert_eq!(out, expected);
    assert_eq!(MAGIC.to_le_bytes(), *b"WSNP");
}

#[test]
fn headers_round_trip() {
    let h = Header {
        module: MODULE,
        body_len: 99,
    };
    assert_eq!(Header::decode(&h.encode()), Ok(h));
    assert_eq!(h.total_len(), Some(99 + 52));
    let huge = Header {
        module: MODULE,
        body_len: u64::MAX,
    };
    assert_eq!(huge.total_len(), None);
    let mut snap = huge.encode().to_vec();
    snap.extend_from_slice(&[0; 4]);
    assert_eq!(check(&snap), Err(SnapshotError::Truncated { at: 52 }));
    for kind in SectionKind::ALL {
        assert_eq!(SectionKind::from_u16(kind as u16), Some(kind));
    }
    assert_eq!(SectionKind::from_u16(0), None);
}

#[test]
fn errors_say_what_was_wrong() {
    let cases = [
        (
            SnapshotError::Checksum {
                expected: 1,
                found: 2,
            },
            "checksum mismatch",
        ),
        (
            SnapshotError::Truncated { at: 12 },
            "truncated at offset 12",
        ),
        (
            SnapshotError::SectionOrder {
                kind: SectionKind::Memory,
                after: SectionKind::Host,
            },
            "section memory is out of order",
        ),
        (
            SnapshotError::ChunkPastEnd {
                first: 1,
                count: 2,
                chunks: 2,
            },
            "goes past the memory's 2 chunks",
        ),
        (
            SnapshotError::ChunkOrder {
                first: 1,
                previous_end: 3,
            },
            "overlaps or precedes",
        ),
        (
            SnapshotError::GlobalType { ty: 0x70, at: 9 },
            "global type 0x70",
        ),
        (SnapshotError::Trailing { at: 4 }, "bytes after its end"),
        (
            SnapshotError::UnknownHostRecord { kind: 40, at: 1 },
            "host record kind 40",
        ),
        (
            SnapshotError::Unplanned {
                kind: SectionKind::Tables,
                planned: None,
                actual: Some(8),
            },
            "tables section is 8 bytes, its plan said absent",
        ),
    ];
    for (e, text) in cases {
        assert!(e.to_string().contains(text), "{e}");
    }
}
