//! App snapshots (PROTOCOL.md §19.1) under proptest: what the writer
//! writes reads back as it was (memories with random zero runs, globals of
//! every type with NaN payloads, tables with nulls, segment bit sets, every
//! host record), and the reader never panics — on arbitrary bytes, on
//! arbitrary bodies behind a valid header and checksum, and on valid
//! snapshots with random changes and a recomputed checksum.

use proptest::prelude::*;
use weft_control::ipc_proto::Guid;
use weft_control::snapshot::{
    self, ByteStrings, CHUNK, Contents, Descriptor, Global, HEADER, Header, HostRecord, PAGE, Plan,
    Reader, Segments, TRAILER, Table, ValType, Writer, restore_memory,
};

/// A descriptor, owned.
#[derive(Clone, Debug)]
enum Desc {
    Udp([u8; 16], u16),
    Service([u8; 16], String),
    Sender,
    Closed(u16),
}

/// An app's state, owned: what a snapshot is written from.
#[derive(Clone, Debug)]
struct Model {
    module: [u8; 32],
    memory: Option<(Vec<u8>, Option<u32>)>,
    globals: Vec<Global>,
    tables: Vec<(u32, Vec<Option<u32>>)>,
    data: Vec<bool>,
    elements: Vec<bool>,
    pid: u32,
    args: Option<Vec<Vec<u8>>>,
    env: Option<Vec<Vec<u8>>>,
    memory_limit: Option<u64>,
    fds: Vec<(u32, Desc)>,
    event_buffer: Option<(u32, u32)>,
    interests: Vec<(u32, u32)>,
    timers: Vec<(u64, u64)>,
    exits: Vec<(u32, i32)>,
}

impl Model {
    /// Its host records, borrowing `args` and `env` (its lists as slices).
    fn records<'a>(&'a self, args: &'a [&'a [u8]], env: &'a [&'a [u8]]) -> Vec<HostRecord<'a>> {
        let mut r = vec![HostRecord::Pid(self.pid)];
        if self.args.is_some() {
            r.push(HostRecord::Args(ByteStrings::new(args)));
        }
        if self.env.is_some() {
            r.push(HostRecord::Env(ByteStrings::new(env)));
        }
        r.extend(self.memory_limit.map(HostRecord::MemoryLimit));
        for (fd, d) in &self.fds {
            let kind = match d {
                Desc::Udp(ip, port) => Descriptor::Udp {
                    ip: (*ip).into(),
                    port: *port,
                },
                Desc::Service(guid, name) => Descriptor::IpcService {
                    guid: Guid(*guid),
                    name,
                },
                Desc::Sender => Descriptor::IpcSender,
                Desc::Closed(what) => Descriptor::Closed { what: *what },
            };
            r.push(HostRecord::Descriptor { fd: *fd, kind });
        }
        r.extend(
            self.event_buffer
                .map(|(at, capacity)| HostRecord::EventBuffer { at, capacity }),
        );
        r.extend(
            self.interests
                .iter()
                .map(|&(fd, bits)| HostRecord::Interest { fd, bits }),
        );
        r.extend(
            self.timers
                .iter()
                .map(|&(remaining_ns, token)| HostRecord::Timer {
                    remaining_ns,
                    token,
                }),
        );
        r.extend(
            self.exits
                .iter()
                .map(|&(pid, status)| HostRecord::Exit { pid, status }),
        );
        r
    }

    /// Calls `f` with its host records.
    fn with_records<T>(&self, f: impl FnOnce(&[HostRecord<'_>]) -> T) -> T {
        let (args, env) = (slices(&self.args), slices(&self.env));
        f(&self.records(&args, &env))
    }

    fn tables(&self) -> Vec<Table<'_>> {
        self.tables
            .iter()
            .map(|(index, entries)| Table {
                index: *index,
                entries,
            })
            .collect()
    }

    fn segments(&self) -> Segments<'_> {
        Segments {
            data: &self.data,
            elements: &self.elements,
        }
    }

    /// Writes its snapshot.
    fn encode(&self) -> Vec<u8> {
        let tables = self.tables();
        self.with_records(|host| {
            let mut plan = Plan::new();
            if let Some((bytes, _)) = &self.memory {
                plan = plan.memory(bytes);
            }
            let plan = plan
                .globals(&self.globals)
                .tables(&tables)
                .segments(&self.segments())
                .host(host);
            let mut out = Vec::new();
            let mut w = Writer::new(|b: &[u8]| out.extend_from_slice(b));
            w.header(self.module, &plan).expect("header");
            if let Some((bytes, max)) = &self.memory {
                w.memory(bytes, *max).expect("memory");
            }
            w.globals(&self.globals).expect("globals");
            w.tables(&tables).expect("tables");
            w.segments(&self.segments()).expect("segments");
            w.host(host).expect("host");
            let len = w.finish().expect("finish");
            assert_eq!(len as usize, out.len());
            out
        })
    }

    /// Asserts that `c` holds exactly this state.
    fn assert_read_as(&self, c: &Contents<'_>) {
        assert_eq!(c.header.module, self.module);
        match (&self.memory, c.memory) {
            (None, None) => {}
            (Some((bytes, max)), Some(m)) => {
                assert_eq!(m.pages() as usize * PAGE, bytes.len());
                assert_eq!(m.max_pages(), *max);
                for (_, run) in m.runs() {
                    assert!(run.chunks(CHUNK).all(|c| c.iter().any(|b| *b != 0)));
                }
                let mut restored = vec![0xEE; bytes.len()];
                restore_memory(&m, &mut restored).expect("restore");
                assert!(restored == *bytes, "memory differs");
            }
            (m, v) => panic!("memory {:?} read as {v:?}", m.as_ref().map(|m| m.0.len())),
        }
        assert_eq!(c.globals.iter().collect::<Vec<_>>(), self.globals);
        let tables: Vec<_> = c
            .tables
            .iter()
            .map(|t| (t.index(), t.entries().collect::<Vec<_>>()))
            .collect();
        assert_eq!(tables, self.tables);
        assert_eq!(c.segments.data.iter().collect::<Vec<_>>(), self.data);
        assert_eq!(
            c.segments.elements.iter().collect::<Vec<_>>(),
            self.elements
        );
        self.with_records(|host| assert_eq!(c.host.iter().collect::<Vec<_>>(), host));
    }
}

/// A list of strings as slices.
fn slices(list: &Option<Vec<Vec<u8>>>) -> Vec<&[u8]> {
    list.iter().flatten().map(Vec::as_slice).collect()
}

/// Ascending indices from `gaps`.
fn ascending(start: u32, gaps: &[u32]) -> Vec<u32> {
    gaps.iter()
        .scan(start, |at, gap| {
            let i = *at;
            *at = at.saturating_add(*gap);
            Some(i)
        })
        .collect()
}

/// A memory of up to `max_pages` pages, zero but for a few random runs of
/// bytes (some across chunks and pages), and maybe a maximum.
fn memory(max_pages: usize) -> impl Strategy<Value = (Vec<u8>, Option<u32>)> {
    (
        0..=max_pages,
        prop::collection::vec((any::<usize>(), 1..9000usize, 1..=255u8), 0..6),
        prop::option::of(0..3u32),
    )
        .prop_map(|(pages, writes, extra)| {
            let mut bytes = vec![0u8; pages * PAGE];
            if !bytes.is_empty() {
                for (at, len, v) in writes {
                    let at = at % bytes.len();
                    let end = (at + len).min(bytes.len());
                    bytes[at..end].fill(v);
                }
            }
            (bytes, extra.map(|e| pages as u32 + e))
        })
}

/// Bits of a value of `ty`: arbitrary, or a NaN with a payload.
fn bits_of(ty: ValType) -> impl Strategy<Value = u64> {
    let nan = if ty.is_32_bit() {
        prop_oneof![Just(0x7FC0_0001u64), Just(0xFFA0_0000), Just(0x7F80_0001)].boxed()
    } else {
        prop_oneof![
            Just(0x7FF0_0000_0000_0001u64),
            Just(0xFFF8_0000_DEAD_BEEF),
            Just(0x7FF4_0000_0000_0000)
        ]
        .boxed()
    };
    let mask = if ty.is_32_bit() {
        u32::MAX as u64
    } else {
        u64::MAX
    };
    prop_oneof![any::<u64>().prop_map(move |b| b & mask), nan]
}

fn globals() -> impl Strategy<Value = Vec<Global>> {
    let global = prop::sample::select(ValType::ALL.to_vec())
        .prop_flat_map(|ty| (Just(ty), bits_of(ty), 1..4u32));
    (any::<u16>(), prop::collection::vec(global, 0..8)).prop_map(|(start, gs)| {
        let gaps: Vec<u32> = gs.iter().map(|g| g.2).collect();
        ascending(start.into(), &gaps)
            .into_iter()
            .zip(gs)
            .map(|(index, (ty, bits, _))| Global { index, ty, bits })
            .collect()
    })
}

fn tables() -> impl Strategy<Value = Vec<(u32, Vec<Option<u32>>)>> {
    let entries = prop::collection::vec(prop::option::of(0..u32::MAX), 0..24);
    prop::collection::vec((1..3u32, entries), 0..3).prop_map(|ts| {
        let gaps: Vec<u32> = ts.iter().map(|t| t.0).collect();
        ascending(0, &gaps)
            .into_iter()
            .zip(ts)
            .map(|(i, (_, e))| (i, e))
            .collect()
    })
}

fn strings() -> impl Strategy<Value = Option<Vec<Vec<u8>>>> {
    prop::option::of(prop::collection::vec(
        prop::collection::vec(any::<u8>(), 0..12),
        0..4,
    ))
}

fn desc() -> impl Strategy<Value = Desc> {
    prop_oneof![
        (any::<[u8; 16]>(), any::<u16>()).prop_map(|(ip, port)| Desc::Udp(ip, port)),
        (any::<[u8; 16]>(), "[a-z0-9 é-]{1,21}").prop_map(|(mut guid, name)| {
            guid[0] |= 1;
            Desc::Service(guid, name)
        }),
        Just(Desc::Sender),
        (1..=6u16).prop_map(Desc::Closed),
    ]
}

const FD_MAX: u32 = i32::MAX as u32;

prop_compose! {
    fn model()(
        module in any::<[u8; 32]>(),
        memory in prop::option::of(memory(3)),
        globals in globals(),
        tables in tables(),
        data in prop::collection::vec(any::<bool>(), 0..20),
        elements in prop::collection::vec(any::<bool>(), 0..20),
        pid in 1..u32::MAX,
        args in strings(),
        env in strings(),
        memory_limit in prop::option::of(any::<u64>()),
        fds in prop::collection::vec((1..5u32, desc()), 0..4),
        event_buffer in prop::option::of((any::<u32>(), 1..=FD_MAX)),
        interests in prop::collection::vec((4..=FD_MAX, 1..=3u32), 0..4),
        timers in prop::collection::vec(any::<(u64, u64)>(), 0..4),
        exits in prop::collection::vec((1..=u32::MAX, any::<i32>()), 0..4),
    ) -> Model {
        let gaps: Vec<u32> = fds.iter().map(|f| f.0).collect();
        let fds = ascending(4, &gaps).into_iter().zip(fds).map(|(fd, (_, d))| (fd, d)).collect();
        Model {
            module, memory, globals, tables, data, elements, pid, args, env, memory_limit,
            fds, event_buffer, interests, timers, exits,
        }
    }
}

/// Reads everything `bytes` hold, if they read: every section, every item
/// of every view, the memory restored (the reader must not panic).
fn exercise(bytes: &[u8]) {
    let Ok(c) = snapshot::read(bytes) else {
        return;
    };
    if let Some(m) = c.memory {
        let n: usize = m.runs().map(|(_, b)| b.len()).sum();
        assert!(n as u64 <= m.byte_len());
        if m.byte_len() <= 4 * PAGE as u64 {
            let mut dst = vec![0; m.byte_len() as usize];
            restore_memory(&m, &mut dst).expect("a checked memory restores");
        }
    }
    let _ = c.globals.iter().count();
    for t in c.tables.iter() {
        assert_eq!(t.entries().count(), t.size() as usize);
    }
    assert_eq!(c.segments.data.iter().count(), c.segments.data.len());
    for r in c.host.iter() {
        if let HostRecord::Args(s) | HostRecord::Env(s) = r {
            assert_eq!(s.iter().count(), s.len());
        }
    }
    assert!(Reader::new(bytes).expect("read").all(|s| s.is_ok()));
}

/// Recomputes the checksum after the bytes were changed.
fn reseal(bytes: &mut [u8]) {
    let n = bytes.len() - TRAILER;
    let crc = crc32fast::hash(&bytes[..n]);
    bytes[n..].copy_from_slice(&crc.to_le_bytes());
}

/// A snapshot of any `body`, with a valid header and checksum.
fn sealed(body: &[u8]) -> Vec<u8> {
    let header = Header {
        module: [0; 32],
        body_len: body.len() as u64,
    };
    let mut out = header.encode().to_vec();
    out.extend_from_slice(body);
    out.extend_from_slice(&[0; TRAILER]);
    reseal(&mut out);
    out
}

proptest! {
    #[test]
    fn snapshots_read_back_as_written(m in model()) {
        let bytes = m.encode();
        let c = snapshot::read(&bytes).expect("reads");
        m.assert_read_as(&c);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        exercise(&bytes);
        let mut magic = snapshot::MAGIC.to_le_bytes().to_vec();
        magic.extend_from_slice(&bytes);
        exercise(&magic);
    }

    #[test]
    fn arbitrary_bodies_with_a_right_checksum_never_panic(
        body in prop::collection::vec(any::<u8>(), 0..512),
        kinds in prop::collection::vec((1..=6u16, 0..64u64), 0..4),
    ) {
        exercise(&sealed(&body));
        // Section headers with plausible kinds and lengths, then the bytes.
        let mut framed = Vec::new();
        let mut rest = &body[..];
        for (kind, len) in kinds {
            let len = (len as usize).min(rest.len());
            framed.extend_from_slice(&kind.to_le_bytes());
            framed.extend_from_slice(&[0, 0]);
            framed.extend_from_slice(&(len as u64).to_le_bytes());
            framed.extend_from_slice(&rest[..len]);
            rest = &rest[len..];
        }
        exercise(&sealed(&framed));
    }

    #[test]
    fn changed_snapshots_with_a_right_checksum_never_panic(
        m in model(),
        changes in prop::collection::vec((any::<usize>(), any::<u8>()), 1..6),
        cut in prop::option::of(any::<usize>()),
    ) {
        let mut bytes = m.encode();
        let covered = bytes.len() - TRAILER;
        for (at, v) in changes {
            bytes[HEADER + at % (covered - HEADER)] ^= v | 1;
        }
        reseal(&mut bytes);
        exercise(&bytes);
        if let Some(cut) = cut {
            // A body cut short, its length and checksum made right.
            let body = &bytes[HEADER..covered];
            exercise(&sealed(&body[..cut % (body.len() + 1)]));
        }
    }

    #[test]
    fn single_byte_changes_are_refused(m in model(), at in any::<usize>(), v in 1..=255u8) {
        let mut bytes = m.encode();
        let at = at % bytes.len();
        bytes[at] ^= v;
        prop_assert!(snapshot::read(&bytes).is_err());
    }
}
