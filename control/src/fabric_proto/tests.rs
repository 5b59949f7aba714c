extern crate std;

use super::*;
use crate::frame::tests::whole;
use std::vec::Vec;

fn round_trip_request(r: Request<'_>) {
    let mut buf = [0u8; 512];
    let n = r.encode(&mut buf).unwrap();
    let (h, body) = whole(&buf[..n]);
    assert_eq!(Request::decode(h.kind, body), Ok(r));
    assert_eq!(r.id(), Request::decode(h.kind, body).unwrap().id());
}

#[test]
fn requests_round_trip() {
    let mut raw = [0u8; 64];
    let args = ArgList::new(&["fabric-ls", "-v"], &mut raw).unwrap();
    round_trip_request(Request::Devices {
        request: 1,
        available: true,
    });
    round_trip_request(Request::Processes {
        request: 2,
        device: None,
    });
    round_trip_request(Request::Processes {
        request: 3,
        device: Some("beta"),
    });
    round_trip_request(Request::Stats {
        request: 4,
        pid: "a:2",
    });
    round_trip_request(Request::Kill {
        request: 5,
        pid: "a:2",
    });
    round_trip_request(Request::Move {
        request: 9,
        wait_ms: 5000,
        pid: "a:2",
        device: "c",
    });
    let head = SpawnHead {
        request: 6,
        source: source::MODULE,
        image_len: 100,
        tier: 0,
    };
    round_trip_request(Request::Spawn {
        head,
        device: Some("b"),
        args,
    });
    round_trip_request(Request::Image {
        request: 6,
        chunk: b"\0asm",
    });
    round_trip_request(Request::Wait {
        request: 7,
        limit_secs: 30,
        pid: "b:7",
    });
    round_trip_request(Request::Watch { request: 8 });
    assert_eq!(
        Request::decode(kind::WATCH, &[1, 0, 0, 0, 0]),
        Err(WireError::Trailing)
    );
}

#[test]
fn malformed_requests_are_refused() {
    assert_eq!(
        Request::decode(kind::DEVICES, &[1, 0, 0, 0, 2, 0, 0, 0]),
        Err(WireError::Field("available"))
    );
    assert_eq!(
        Request::decode(kind::STATS, &[1, 0, 0, 0, 0, 0]),
        Err(WireError::Field("pid"))
    );
    assert_eq!(
        Request::decode(kind::KILL, &[1, 0, 0, 0, 2, 0, 0xff, 0xfe]),
        Err(WireError::Field("pid"))
    );
    let long = [&[1, 0, 0, 0, 0x01, 0x04][..], &[b'a'; 1025]].concat();
    assert_eq!(
        Request::decode(kind::KILL, &long),
        Err(WireError::TooLong(1025))
    );
    let mut spawn = SpawnHead {
        request: 1,
        source: 9,
        image_len: 5,
        tier: 0,
    }
    .encode()
    .to_vec();
    spawn.extend_from_slice(&[0, 0, 0, 0]);
    assert_eq!(
        Request::decode(kind::SPAWN, &spawn),
        Err(WireError::Field("source"))
    );
    spawn[4] = source::NAME as u8;
    spawn[8..12].copy_from_slice(&(MAX_NAME as u32 + 1).to_le_bytes());
    assert_eq!(
        Request::decode(kind::SPAWN, &spawn),
        Err(WireError::Field("image_len"))
    );
    spawn[8..12].copy_from_slice(&5u32.to_le_bytes());
    assert!(Request::decode(kind::SPAWN, &spawn).is_ok());
    // A tier only for a module, and only one that exists.
    for (source, tier, fits) in [
        (source::NAME, 2, false),
        (source::MODULE, 2, true),
        (source::MODULE, 3, false),
        (source::NAME, 0, true),
    ] {
        spawn[4] = source as u8;
        spawn[12] = tier;
        let decoded = Request::decode(kind::SPAWN, &spawn);
        match fits {
            true => assert!(decoded.is_ok(), "{source} {tier}: {decoded:?}"),
            false => assert_eq!(decoded, Err(WireError::Field("tier")), "{source} {tier}"),
        }
    }
    // An argument that is not UTF-8.
    spawn.truncate(18);
    spawn.extend_from_slice(&[1, 0, 1, 0, 0xff]);
    assert_eq!(
        Request::decode(kind::SPAWN, &spawn),
        Err(WireError::Field("args"))
    );
    assert_eq!(
        Request::decode(kind::WAIT, &[1, 0, 0, 0, 5, 0, 0, 0, 1, 0, b'x', 0]),
        Err(WireError::Trailing)
    );
    assert_eq!(
        Request::decode(kind::DONE, &[0; 4]),
        Err(WireError::Kind(kind::DONE))
    );
}

#[test]
fn replies_round_trip() {
    let addresses = ["10.0.0.1:7447", "[::1]:7447"];
    let entries = [
        DeviceEntry {
            head: DeviceHead::new(true, Some((3, 4096))),
            name: "alpha",
            id: "00aa",
            addresses: &addresses,
        },
        DeviceEntry {
            head: DeviceHead::new(false, None),
            name: "beta",
            id: "00bb",
            addresses: &[],
        },
    ];
    let mut raw = [0u8; 256];
    let devices = List::<Device>::encode(&entries, &mut raw).unwrap();
    let listed: Vec<_> = devices.iter().collect();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].name, "alpha");
    assert!(listed[0].addresses.iter().eq(addresses));
    assert!(listed[1].addresses.is_empty());
    let p = Process {
        head: ProcessHead::new(10, 20, 3, None),
        pid: "alpha:2",
        device: "alpha",
        name: "spin",
        state: "running",
    };
    let mut praw = [0u8; 256];
    let processes = List::<Process>::encode(&[p, p], &mut praw).unwrap();
    assert!(processes.iter().eq([p, p]));
    let mut buf = [0u8; 1024];
    for r in [
        Reply::Devices {
            request: 1,
            devices,
        },
        Reply::Processes {
            request: 2,
            processes,
        },
        Reply::Process {
            request: 3,
            process: p,
        },
        Reply::Spawned {
            request: 4,
            pid: "b:7",
        },
        Reply::Exited {
            request: 5,
            status: 0,
            pid: "b:7",
        },
        Reply::Running {
            request: 6,
            pid: "b:7",
        },
        Reply::Done { request: 7 },
        Reply::Failed {
            request: 8,
            message: "no process a:99",
        },
        Reply::Watching { request: 9 },
    ] {
        let n = r.encode(&mut buf).unwrap();
        let (h, body) = whole(&buf[..n]);
        assert_eq!(Reply::decode(h.kind, body), Ok(r));
    }
}

#[test]
fn malformed_replies_are_refused() {
    // Unknown device flags; figures without the FIGURES flag.
    let mut body = [1u8, 0, 0, 0, 1, 0].to_vec();
    body.extend_from_slice(
        &DeviceHead {
            flags: 4,
            ..DeviceHead::default()
        }
        .encode(),
    );
    body.extend_from_slice(&[1, 0, b'a', 0, 0, 0, 0]);
    assert_eq!(
        Reply::decode(kind::DEVICE_LIST, &body),
        Err(WireError::Field("device flags"))
    );
    body[6..22].copy_from_slice(
        &DeviceHead {
            flags: device_flags::AVAILABLE,
            processes: 1,
            memory: 0,
        }
        .encode(),
    );
    assert_eq!(
        Reply::decode(kind::DEVICE_LIST, &body),
        Err(WireError::Field("device flags"))
    );
    body[6..22].copy_from_slice(&DeviceHead::new(true, None).encode());
    assert!(Reply::decode(kind::DEVICE_LIST, &body).is_ok());
    // A list that says two devices but holds one.
    body[4] = 2;
    assert_eq!(
        Reply::decode(kind::DEVICE_LIST, &body),
        Err(WireError::Truncated)
    );
    assert_eq!(
        Reply::decode(kind::SPAWNED, &[1, 0, 0, 0, 0, 0]),
        Err(WireError::Field("pid"))
    );
    assert_eq!(
        Reply::decode(kind::DONE, &[1, 0, 0, 0, 0]),
        Err(WireError::Trailing)
    );
    assert_eq!(
        Reply::decode(kind::KILL, &[1, 0, 0, 0]),
        Err(WireError::Kind(kind::KILL))
    );
}

#[test]
fn events_round_trip_byte_by_byte() {
    let mut buf = [0u8; Event::MAX_FRAME];
    let n = Event::Ended {
        pid: "b:7",
        status: 137,
    }
    .encode(&mut buf)
    .unwrap();
    assert_eq!(
        &buf[..n],
        &[
            13, 0, 0, 0, 0x0A, 0x85, 0, 0, // header: 13 bytes, EVENT
            4, 0, 0, 0, 137, 0, 0, 0, // ENDED, status 137
            3, 0, b'b', b':', b'7',
        ]
    );
    for e in [
        Event::DeviceUp("c"),
        Event::DeviceDown("c"),
        Event::Started("a:4"),
        Event::Ended {
            pid: "a:4",
            status: 0,
        },
        Event::Lost(3),
    ] {
        let n = e.encode(&mut buf).unwrap();
        let (h, body) = whole(&buf[..n]);
        assert_eq!(h.kind, kind::EVENT);
        assert_eq!(Event::decode(body), Ok(e));
    }
}

#[test]
fn malformed_events_are_refused() {
    let event = |what: u32, status: u32, subject: &[u8]| {
        let mut body = EventHead { what, status }.encode().to_vec();
        body.extend_from_slice(&(subject.len() as u16).to_le_bytes());
        body.extend_from_slice(subject);
        body
    };
    let field = |f| Err(WireError::Field(f));
    assert_eq!(Event::decode(&event(1, 0, b"")), field("event subject"));
    assert_eq!(Event::decode(&event(1, 5, b"c")), field("event status"));
    assert_eq!(Event::decode(&event(3, 1, b"a:1")), field("event status"));
    assert_eq!(Event::decode(&event(5, 0, b"")), field("lost event"));
    assert_eq!(Event::decode(&event(5, 2, b"c")), field("lost event"));
    assert_eq!(Event::decode(&event(6, 0, b"c")), field("event what"));
    assert_eq!(Event::decode(&event(0, 0, b"c")), field("event what"));
    assert_eq!(Event::decode(&event(1, 0, b"\xff")), field("event subject"));
    let mut trailing = event(2, 0, b"c");
    trailing.push(0);
    assert_eq!(Event::decode(&trailing), Err(WireError::Trailing));
    assert_eq!(Event::decode(&[2, 0, 0]), Err(WireError::Truncated));
}

#[cfg(feature = "alloc")]
mod client {
    use super::super::client::{CallError, Client, Engine, Image, Transport};
    use super::*;
    use std::string::ToString;
    use std::vec;

    /// Answers each call with the next canned reply frame, and keeps what
    /// was sent.
    struct Canned {
        replies: Vec<Vec<u8>>,
        sent: Vec<Vec<u8>>,
    }

    impl Transport for Canned {
        type Error = CallError;
        fn call(&mut self, frames: &[u8], _: u32) -> Result<Vec<u8>, CallError> {
            self.sent.push(frames.to_vec());
            Ok(self.replies.remove(0))
        }
    }

    fn reply(r: Reply<'_>) -> Vec<u8> {
        let mut buf = vec![0u8; 512];
        let n = r.encode(&mut buf).unwrap();
        buf.truncate(n);
        buf
    }

    #[test]
    fn calls_are_matched_to_their_replies_by_id_and_kind() {
        let p = Process {
            head: ProcessHead::new(1, 2, 3, Some(0)),
            pid: "b:7",
            device: "b",
            name: "hello",
            state: "ended",
        };
        let mut c = Client::new(Canned {
            replies: vec![
                reply(Reply::Spawned {
                    request: 1,
                    pid: "b:7",
                }),
                reply(Reply::Process {
                    request: 2,
                    process: p,
                }),
                reply(Reply::Failed {
                    request: 3,
                    message: "no process a:99",
                }),
                // The wrong kind, then the wrong id.
                reply(Reply::Done { request: 4 }),
                reply(Reply::Running {
                    request: 9,
                    pid: "b:7",
                }),
            ],
            sent: Vec::new(),
        });
        let module = vec![1u8; MAX_CHUNK + 1];
        assert_eq!(
            c.spawn(
                Some("b"),
                Image::ModuleWith(&module, Engine::Aot),
                &["app.wasm"]
            ),
            Ok("b:7".to_string())
        );
        let stats = c.stats("b:7").unwrap();
        assert_eq!((stats.status, stats.streams), (Some(0), 3));
        assert_eq!(
            c.kill("a:99"),
            Err(CallError::Failed("no process a:99".to_string()))
        );
        assert_eq!(
            c.wait("b:7", 1),
            Err(CallError::Unexpected {
                call: "wait",
                kind: kind::DONE
            })
        );
        assert_eq!(
            c.wait("b:7", 1),
            Err(CallError::Unexpected {
                call: "wait",
                kind: kind::RUNNING
            })
        );
        // The spawn went as one call: its frames, checked whole.
        let sent = &c.transport().sent;
        assert_eq!(check_call(&sent[0]), Ok(()));
        assert_eq!(
            sent[0].len(),
            3 * HEADER + SpawnHead::SIZE + 2 + 1 + 2 + 2 + 8 + 2 * 4 + module.len()
        );
        let head = &sent[0][HEADER..HEADER + SpawnHead::SIZE];
        assert_eq!(
            SpawnHead::decode(head.try_into().unwrap()).tier,
            crate::process::tier::COMPILED
        );
        assert_eq!(
            c.spawn(None, Image::Name(""), &["x"]),
            Err(CallError::Argument("the spawn image's size"))
        );
    }
}
