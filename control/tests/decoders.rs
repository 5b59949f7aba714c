//! Every decoder of bytes the other side writes, run on the stable
//! toolchain (`make test`): over seeds of valid encodings, every truncation
//! and every single-bit flip of them, and pseudo-random bytes, a bounded
//! number each. The drivers (`support/decoders.rs`) are the cargo-fuzz
//! targets' too (`make fuzz` runs those unbounded, from these seeds).

#[path = "support/decoders.rs"]
mod decoders;

use core::net::SocketAddr;
use decoders::DRIVERS;
use weft_control::app::EventRecord;
use weft_control::args;
use weft_control::control_pipe::{MAX_FRAME, Request};
use weft_control::device_proto::{self, ArgList, Exited, SpawnHead, Target};
use weft_control::error::ErrorCode;
use weft_control::fabric_proto;
use weft_control::frame::{Code, ErrorBody};
use weft_control::fs_proto::{
    At, DirEntry, FileKind, FileOpen, FileRequest, Metadata, OpenFlags, Reply, SessionRequest,
    SetTime, Times, Whence, encode_entries,
};
use weft_control::net_proto::{
    self, Datagram, MAX_TCP_FIRST, MAX_TCP_FRAME, TcpReply, TcpRequest, net_kind,
};
use weft_control::process::{ProcessRecord, SpawnRequest, name_of, source};
use weft_control::system::SystemInfo;

/// Pseudo-random inputs per driver.
const RANDOM_INPUTS: usize = 50_000;

fn encoded(f: impl FnOnce(&mut [u8]) -> Option<usize>) -> Vec<u8> {
    let mut buf = vec![0u8; 1 << 16];
    let n = f(&mut buf).expect("a seed encodes");
    buf.truncate(n);
    buf
}

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("a seed address")
}

/// Valid encodings for `driver`.
fn seeds(driver: &str) -> Vec<Vec<u8>> {
    let meta = Metadata {
        kind: FileKind::File,
        mode: 0o644,
        size: 12,
        modified_ns: -5,
        accessed_ns: 3,
        changed_ns: 1 << 60,
        device: 0x803,
        inode: 77,
        links: 1,
    };
    match driver {
        "control_pipe" => [
            Request::Open { request: 7 },
            Request::Close {
                request: 8,
                slot: 3,
            },
        ]
        .iter()
        .map(|r| {
            let mut buf = [0u8; MAX_FRAME];
            let n = r.encode(&mut buf);
            buf[..n].to_vec()
        })
        .collect(),
        "file_frames" => [
            FileRequest::Read { max: 4096 },
            FileRequest::Write(b"bytes"),
            FileRequest::Seek {
                whence: Whence::End,
                offset: -3,
            },
            FileRequest::Fstat,
            FileRequest::Sync,
            FileRequest::SetSize(4096),
        ]
        .iter()
        .map(|r| encoded(|b| r.encode(b)))
        .collect(),
        "session_frames" => [
            SessionRequest::Stat {
                at: "/a".into(),
                follow: true,
            },
            SessionRequest::ReadDir("/".into()),
            SessionRequest::Rename {
                from: "/x".into(),
                to: At {
                    dir: "/y",
                    path: "z",
                },
            },
            SessionRequest::Symlink {
                target: "../t",
                at: "l".into(),
            },
            SessionRequest::SetTimes {
                at: "f".into(),
                follow: false,
                times: Times {
                    accessed: SetTime::Now,
                    modified: SetTime::To(1_000_000_000),
                },
            },
        ]
        .iter()
        .map(|r| encoded(|b| r.encode(b)))
        .collect(),
        "fs_replies" => {
            let entries = [
                DirEntry {
                    kind: FileKind::Dir,
                    inode: 2,
                    name: "sub",
                },
                DirEntry {
                    kind: FileKind::File,
                    inode: 3,
                    name: "notes.txt",
                },
            ];
            let mut listing = vec![0u8; 256];
            let (n, _) = encode_entries(&entries, &mut listing);
            listing.truncate(n);
            let mut replies: Vec<Vec<u8>> = [
                Reply::FileOpened(meta),
                Reply::Data(b"abc"),
                Reply::Written(3),
                Reply::Position(1 << 40),
                Reply::Done,
                Reply::LinkTarget("../a"),
            ]
            .iter()
            .map(|r| encoded(|b| r.encode(b)))
            .collect();
            replies.push(listing);
            replies
        }
        "first_frames" => {
            let open = FileOpen {
                flags: OpenFlags::READ.bits(),
                at: "/etc/notes".into(),
            };
            let frame = encoded(|b| open.encode(b));
            let mut out = vec![frame[8 + 4..].to_vec()];
            for (k, r) in [
                (
                    0u16,
                    TcpRequest::Listen {
                        addr: addr("127.0.0.1:80"),
                    },
                ),
                (
                    1,
                    TcpRequest::Connect {
                        addr: addr("[::1]:443"),
                    },
                ),
                (2, TcpRequest::Accept { listener: 2, id: 9 }),
            ] {
                let mut buf = [0u8; MAX_TCP_FIRST];
                let mut seed = k.to_le_bytes().to_vec();
                seed.extend_from_slice(r.encode_params(&mut buf));
                out.push(seed);
            }
            let mut buf = [0u8; 8 + net_proto::ADDR];
            out.push(net_proto::encode_bind(addr("10.0.0.1:53"), &mut buf).to_vec());
            out
        }
        "net_frames" => {
            let mut out: Vec<Vec<u8>> = [
                TcpReply::Listening {
                    local: addr("127.0.0.1:7000"),
                },
                TcpReply::Connection {
                    id: 4,
                    peer: addr("[::1]:9"),
                },
            ]
            .iter()
            .map(|r| {
                let mut buf = [0u8; MAX_TCP_FRAME];
                let n = r.encode(&mut buf);
                buf[..n].to_vec()
            })
            .collect();
            let d = Datagram {
                addr: addr("127.0.0.1:5353"),
                payload: b"ping",
            };
            out.push(encoded(|b| d.encode(net_kind::SEND_TO, b)));
            out
        }
        "error_frames" => vec![encoded(|b| {
            ErrorBody {
                code: Code::NotFound,
                message: "open /x: no such file",
            }
            .encode(b)
        })],
        "fixed_layouts" => {
            let spawn = SpawnRequest {
                source: source::ELF,
                tier: 0,
                image_addr: 0x10000,
                image_len: 4096,
                args_addr: 0x20000,
                args_len: 16,
                heap_bytes: 2 << 20,
            };
            let record = ProcessRecord {
                pid: 2,
                parent: 1,
                state: 1,
                status: 0,
                cpu_ns: 5,
                memory: 6,
                streams: 3,
                name: name_of(b"hello"),
            };
            let system = SystemInfo {
                tsc_hz: 3_000_000_000,
                heap_mapped: 8 << 20,
                ..SystemInfo::default()
            }
            .with_listen(&[addr("127.0.0.1:8080")]);
            let mut page = system.encode().to_vec();
            page[..48].copy_from_slice(&spawn.encode());
            vec![
                spawn.encode().to_vec(),
                record.encode().to_vec(),
                EventRecord::exited(3, -1).encode().to_vec(),
                page,
            ]
        }
        "args_block" => {
            let mut buf = vec![0u8; 256];
            let n = args::encode(&[&b"prog"[..], b"two words", b""], &mut buf).expect("seed args");
            let plain = buf[..n].to_vec();
            let env = [("HOME", "/"), ("EMPTY", "")];
            let n = args::encode_with_env(&["prog"], &env, &mut buf).expect("seed env");
            vec![plain, buf[..n].to_vec()]
        }
        "device_frames" => {
            let mut raw = [0u8; 64];
            let args = ArgList::new(&["hello", "", "two words"], &mut raw).expect("seed args");
            let head = SpawnHead {
                request: 1,
                source: device_proto::source::BYTES,
                image_len: 4,
                tier: 0,
            };
            let target = Target { request: 2, pid: 3 };
            let mut out: Vec<Vec<u8>> = [
                device_proto::Request::Spawn { head, args },
                device_proto::Request::Image {
                    request: 1,
                    chunk: b"\0asm",
                },
                device_proto::Request::Kill(target),
                device_proto::Request::Shutdown { request: 5 },
                device_proto::Request::Reap,
            ]
            .iter()
            .map(|r| encoded(|b| r.encode(b)))
            .collect();
            out.extend(
                [
                    device_proto::Reply::Spawned(target),
                    device_proto::Reply::Done { request: 6 },
                    device_proto::Reply::Failed {
                        request: 8,
                        code: ErrorCode::BadImage,
                    },
                    device_proto::Reply::Exited(Exited {
                        pid: 3,
                        status: 137,
                    }),
                ]
                .iter()
                .map(|r| encoded(|b| r.encode(b))),
            );
            out
        }
        "fabric_frames" => {
            use fabric_proto::{DeviceEntry, DeviceHead, List, ProcessHead};
            let mut raw = [0u8; 64];
            let args = ArgList::new(&["fabric-ls", "x"], &mut raw).expect("seed args");
            let head = fabric_proto::SpawnHead {
                request: 1,
                source: fabric_proto::source::MODULE,
                image_len: 4,
                tier: 0,
            };
            let spawn = fabric_proto::Request::Spawn {
                head,
                device: Some("b"),
                args,
            };
            let image = fabric_proto::Request::Image {
                request: 1,
                chunk: b"\0asm",
            };
            let mut call = encoded(|b| spawn.encode(b));
            call.extend(encoded(|b| image.encode(b)));
            let mut out: Vec<Vec<u8>> = [
                spawn,
                image,
                fabric_proto::Request::Devices {
                    request: 2,
                    available: true,
                },
                fabric_proto::Request::Processes {
                    request: 3,
                    device: Some("alpha"),
                },
                fabric_proto::Request::Stats {
                    request: 4,
                    pid: "alpha:2",
                },
                fabric_proto::Request::Kill {
                    request: 5,
                    pid: "alpha:2",
                },
                fabric_proto::Request::Wait {
                    request: 6,
                    limit_secs: 9,
                    pid: "b:7",
                },
            ]
            .iter()
            .map(|r| encoded(|b| r.encode(b)))
            .collect();
            out.push(call);
            let mut draw = [0u8; 256];
            let devices = List::<fabric_proto::Device>::encode(
                &[DeviceEntry {
                    head: DeviceHead::new(true, Some((2, 4096))),
                    name: "alpha",
                    id: "00aa",
                    addresses: &["10.0.0.1:7447"],
                }],
                &mut draw,
            )
            .expect("seed devices");
            let process = fabric_proto::Process {
                head: ProcessHead::new(5, 6, 7, Some(0)),
                pid: "b:7",
                device: "b",
                name: "hello",
                state: "ended",
            };
            let mut praw = [0u8; 256];
            let processes = List::<fabric_proto::Process>::encode(&[process], &mut praw)
                .expect("seed processes");
            out.extend(
                [
                    fabric_proto::Reply::Devices {
                        request: 2,
                        devices,
                    },
                    fabric_proto::Reply::Processes {
                        request: 3,
                        processes,
                    },
                    fabric_proto::Reply::Process {
                        request: 4,
                        process,
                    },
                    fabric_proto::Reply::Spawned {
                        request: 1,
                        pid: "b:7",
                    },
                    fabric_proto::Reply::Exited {
                        request: 6,
                        status: 0,
                        pid: "b:7",
                    },
                    fabric_proto::Reply::Running {
                        request: 6,
                        pid: "b:7",
                    },
                    fabric_proto::Reply::Done { request: 5 },
                    fabric_proto::Reply::Failed {
                        request: 5,
                        message: "no process alpha:2",
                    },
                ]
                .iter()
                .map(|r| encoded(|b| r.encode(b))),
            );
            out
        }
        other => panic!("no seeds for driver {other}"),
    }
}

/// A small deterministic generator (xorshift64*), so every run checks the
/// same inputs.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

#[test]
fn decoders_survive_seeds_their_mutations_and_random_bytes() {
    for &(name, driver) in DRIVERS {
        let seeds = seeds(name);
        assert!(!seeds.is_empty(), "{name}");
        // Mutants the decoders accept: each was checked for a round trip.
        let mut accepted = 0;
        for seed in &seeds {
            driver(seed);
            for len in 0..seed.len() {
                accepted += driver(&seed[..len]);
            }
            let mut flipped = seed.clone();
            for bit in 0..seed.len() * 8 {
                flipped[bit / 8] ^= 1 << (bit % 8);
                accepted += driver(&flipped);
                flipped[bit / 8] ^= 1 << (bit % 8);
            }
        }
        assert!(accepted > 0, "{name}: no mutant was accepted");
        let mut rng = Rng(0x5EED_0000 ^ name.len() as u64);
        for i in 0..RANDOM_INPUTS {
            // Half the inputs start as a seed with random bytes spliced in,
            // so they get past the header checks.
            let mut input = if i % 2 == 0 {
                seeds[i / 2 % seeds.len()].clone()
            } else {
                vec![0u8; (rng.next() % 300) as usize]
            };
            let n = input.len();
            for _ in 0..(rng.next() % 4) {
                if n > 0 {
                    let at = (rng.next() as usize) % n;
                    input[at] = rng.next() as u8;
                }
            }
            if i % 2 == 1 {
                input.iter_mut().for_each(|b| *b = rng.next() as u8);
            }
            driver(&input);
        }
    }
}

#[test]
fn seeds_are_accepted_by_their_decoders() {
    // A seed that no longer decodes would leave its driver checking only
    // refusals: each is accepted, and round-trips.
    for &(name, driver) in DRIVERS {
        for (i, seed) in seeds(name).iter().enumerate() {
            assert!(driver(seed) > 0, "{name}: seed {i} is refused");
        }
    }
}
