//! One driver per decoder of bytes the other side writes (PROTOCOL.md
//! §2–§14), shared by the stable test `tests/decoders.rs` (seeds, their
//! mutations and random bytes) and the cargo-fuzz targets in `control/fuzz`.
//!
//! Each driver decodes its input and must never panic. Where the decoder
//! accepts the input, the value re-encodes to exactly the bytes it came
//! from (the wire form is canonical: nothing is ignored, so two different
//! byte strings never mean the same thing), or, for the few decoders that
//! map unknown values to a known one, re-encodes to bytes that decode to
//! the same value.
#![allow(dead_code)]

use weft_control::app::{EventRecord, ProcessRecord as AppRecord};
use weft_control::args::Args;
use weft_control::control_pipe::{self, MAX_FRAME};
use weft_control::device_proto;
use weft_control::fabric_proto;
use weft_control::frame::{self, ErrorBody, HEADER, Header};
use weft_control::fs_proto::{self, Entries, FileOpen, FileRequest, SessionRequest};
use weft_control::net_proto::{self, Datagram, MAX_TCP_FIRST, MAX_TCP_FRAME, TcpReply, TcpRequest};
use weft_control::process::{ProcessRecord, SpawnRequest};
use weft_control::system::{self, SystemInfo};

/// A driver: decodes its input, checks what it accepts, and returns how
/// many of its decoders accepted it.
pub type Driver = fn(&[u8]) -> usize;

/// Every driver, by name (the cargo-fuzz target of the same name runs it).
pub const DRIVERS: &[(&str, Driver)] = &[
    ("control_pipe", control_pipe_frames),
    ("file_frames", file_frames),
    ("session_frames", session_frames),
    ("fs_replies", fs_replies),
    ("first_frames", first_frames),
    ("net_frames", net_frames),
    ("error_frames", error_frames),
    ("fixed_layouts", fixed_layouts),
    ("args_block", args_block),
    ("device_frames", device_frames),
    ("fabric_frames", fabric_frames),
];

/// The frame at the start of `data`, and the frame's own bytes.
fn frame(data: &[u8]) -> Option<(Header, &[u8], &[u8])> {
    let (h, body) = frame::split(data).ok()?;
    Some((h, body, &data[..HEADER + body.len()]))
}

/// Asserts that `encoded` are exactly the bytes `original` decoded from.
fn same(what: &str, original: &[u8], encoded: Option<&[u8]>) {
    assert_eq!(encoded, Some(original), "{what}: not re-encoded as decoded");
}

/// Control-pipe requests (guest → monitor) and replies (§9.1).
pub fn control_pipe_frames(data: &[u8]) -> usize {
    let mut accepted = 0;
    let Some((h, body, whole)) = frame(data) else {
        return 0;
    };
    let mut buf = [0u8; MAX_FRAME];
    if let Ok(r) = control_pipe::Request::decode(h, body) {
        accepted += 1;
        let n = r.encode(&mut buf);
        same("control-pipe request", whole, buf.get(..n));
    }
    if let Ok(r) = control_pipe::Reply::decode(h, body) {
        accepted += 1;
        let n = r.encode(&mut buf);
        same("control-pipe reply", whole, buf.get(..n));
    }
    accepted
}

/// Requests on a file stream (§10.2).
pub fn file_frames(data: &[u8]) -> usize {
    let mut accepted = 0;
    let Some((h, body, whole)) = frame(data) else {
        return 0;
    };
    if let Ok(r) = FileRequest::decode(h, body) {
        accepted += 1;
        let mut buf = vec![0u8; whole.len()];
        let n = r.encode(&mut buf);
        same("file request", whole, n.and_then(|n| buf.get(..n)));
    }
    accepted
}

/// Requests on a file-system session stream (§10.3).
pub fn session_frames(data: &[u8]) -> usize {
    let mut accepted = 0;
    let Some((h, body, whole)) = frame(data) else {
        return 0;
    };
    if let Ok(r) = SessionRequest::decode(h, body) {
        accepted += 1;
        let mut buf = vec![0u8; whole.len()];
        let n = r.encode(&mut buf);
        same("session request", whole, n.and_then(|n| buf.get(..n)));
    }
    accepted
}

/// Replies on file and session streams (monitor → guest), directory
/// entries included.
pub fn fs_replies(data: &[u8]) -> usize {
    let mut accepted = 0;
    let Some((h, body, whole)) = frame(data) else {
        return 0;
    };
    if let Ok(r) = fs_proto::Reply::decode(h, body) {
        accepted += 1;
        let mut buf = vec![0u8; whole.len()];
        let n = r.encode(&mut buf);
        same("file-system reply", whole, n.and_then(|n| buf.get(..n)));
    }
    if let Ok(entries) = Entries::decode(body) {
        accepted += 1;
        let listed: Vec<_> = entries.iter().collect();
        let mut buf = vec![0u8; HEADER + body.len()];
        let (n, taken) = fs_proto::encode_entries(&listed, &mut buf);
        assert_eq!(taken, listed.len(), "every decoded entry fits again");
        assert_eq!(
            buf.get(HEADER..n),
            Some(body),
            "entries: not re-encoded as decoded"
        );
    }
    accepted
}

/// First frames' parameters: `FILE_OPEN`, the TCP kinds, `UDP_BIND` (§9.2,
/// §10.2, §11.3, §12.1). The first two bytes choose the TCP kind.
pub fn first_frames(data: &[u8]) -> usize {
    let mut accepted = 0;
    if let Ok(open) = FileOpen::decode(data) {
        accepted += 1;
        let mut buf = vec![0u8; open.frame_len()];
        let n = open.encode(&mut buf);
        // The frame is the header, `version`, then the parameters.
        same("FILE_OPEN", data, n.and_then(|n| buf.get(HEADER + 4..n)));
    }
    if let Some((kind, params)) = data.split_first_chunk::<2>() {
        let kind = frame::kind::TCP_LISTEN + u16::from_le_bytes(*kind) % 3;
        if let Ok(r) = TcpRequest::decode_params(kind, params) {
            accepted += 1;
            let mut buf = [0u8; MAX_TCP_FIRST];
            same("TCP first frame", params, Some(r.encode_params(&mut buf)));
        }
    }
    if let Ok(addr) = net_proto::decode_lone_addr(data) {
        accepted += 1;
        let mut buf = [0u8; HEADER + net_proto::ADDR];
        same(
            "UDP_BIND",
            data,
            Some(net_proto::encode_bind(addr, &mut buf)),
        );
    }
    accepted
}

/// TCP replies (monitor → guest) and UDP datagrams (both ways).
pub fn net_frames(data: &[u8]) -> usize {
    let mut accepted = 0;
    let Some((h, body, whole)) = frame(data) else {
        return 0;
    };
    if let Ok(r) = TcpReply::decode(h.kind, body) {
        accepted += 1;
        let mut buf = [0u8; MAX_TCP_FRAME];
        let n = r.encode(&mut buf);
        same("TCP reply", whole, buf.get(..n));
    }
    if let Ok(d) = Datagram::decode(body) {
        accepted += 1;
        let mut buf = vec![0u8; whole.len()];
        let n = d.encode(h.kind, &mut buf);
        same("datagram", whole, n.and_then(|n| buf.get(..n)));
    }
    accepted
}

/// `ERROR` frames: an unknown code reads as `Io`, so the check is that the
/// decoded value survives a round trip.
pub fn error_frames(data: &[u8]) -> usize {
    let mut accepted = 0;
    let Some((_, body, _)) = frame(data) else {
        return 0;
    };
    if let Ok(e) = ErrorBody::decode(body) {
        accepted += 1;
        let mut buf = vec![0u8; HEADER + body.len()];
        let n = e
            .encode(&mut buf)
            .expect("a decoded error fits its own size");
        let (_, again) = frame::split(&buf[..n]).expect("an encoded error frame splits");
        assert_eq!(ErrorBody::decode(again), Ok(e));
    }
    accepted
}

/// The fixed layouts the monitor reads from guest memory or programs read
/// from the monitor: spawn requests, process records, event records, the
/// system page. Each reads the prefix of `data` it needs.
pub fn fixed_layouts(data: &[u8]) -> usize {
    let mut accepted = 0;
    if let Some(b) = data.first_chunk::<{ SpawnRequest::SIZE }>()
        && let Some(r) = SpawnRequest::decode(b)
    {
        accepted += 1;
        assert_eq!(&r.encode(), b, "spawn request: not re-encoded as decoded");
    }
    if let Some(b) = data.first_chunk::<{ EventRecord::SIZE }>() {
        accepted += 1;
        assert_eq!(&EventRecord::decode(b).encode(), b);
    }
    if let Some(b) = data.first_chunk::<{ AppRecord::SIZE }>() {
        accepted += 1;
        assert_eq!(&AppRecord::decode(b).encode(), b);
    }
    if let Some(b) = data.first_chunk::<{ ProcessRecord::SIZE }>() {
        accepted += 1;
        // Bytes 36..40 are reserved: they read as nothing and encode as 0.
        let r = ProcessRecord::decode(b);
        assert_eq!(ProcessRecord::decode(&r.encode()), r);
    }
    if let Some(b) = data.first_chunk::<{ system::SIZE }>() {
        accepted += 1;
        // A malformed listen entry reads as absent; what is read survives.
        let s = SystemInfo::decode(b);
        assert_eq!(SystemInfo::decode(&s.encode()), s);
    }
    accepted
}

/// The arguments block (§4): it yields as many arguments as it says, and
/// they survive a round trip. (Entries may share bytes, so the block is
/// not canonical: the re-encoded one may be longer.)
pub fn args_block(data: &[u8]) -> usize {
    let mut accepted = 0;
    if let Ok(args) = Args::parse(data) {
        accepted += 1;
        let listed: Vec<&[u8]> = args.iter().collect();
        assert_eq!(listed.len(), args.len());
        let vars: Vec<(&[u8], &[u8])> = args.vars().collect();
        assert_eq!(vars.len(), args.env().count());
        let size = weft_control::args::block_len(&listed, &vars).expect("decoded arguments fit");
        let mut buf = vec![0u8; size];
        let n = weft_control::args::encode_with_env(&listed, &vars, &mut buf)
            .expect("decoded arguments fit again");
        let again = Args::parse(&buf[..n]).expect("re-encoded arguments parse");
        assert!(again.iter().eq(listed.iter().copied()));
        assert!(again.vars().eq(vars.iter().copied()));
    }
    accepted
}

/// The device stream (§15): requests (monitor → agent), and replies and
/// events (agent → monitor).
pub fn device_frames(data: &[u8]) -> usize {
    let mut accepted = 0;
    let Some((h, body, whole)) = frame(data) else {
        return 0;
    };
    let mut buf = vec![0u8; whole.len()];
    if let Ok(r) = device_proto::Request::decode(h.kind, body) {
        accepted += 1;
        if let device_proto::Request::Spawn { args, .. } = r {
            assert_eq!(args.iter().count(), args.len(), "every argument is there");
        }
        let n = r.encode(&mut buf);
        same("device request", whole, n.and_then(|n| buf.get(..n)));
    }
    if let Ok(r) = device_proto::Reply::decode(h.kind, body) {
        accepted += 1;
        let n = r.encode(&mut buf);
        same("device reply", whole, n.and_then(|n| buf.get(..n)));
    }
    accepted
}

/// The FABRIC stream (§17): requests (guest → monitor), replies (monitor →
/// guest), and whole calls as a Wasm app hands them over (§13.3).
pub fn fabric_frames(data: &[u8]) -> usize {
    let mut accepted = usize::from(fabric_proto::check_call(data).is_ok());
    let Some((h, body, whole)) = frame(data) else {
        return accepted;
    };
    let mut buf = vec![0u8; whole.len()];
    if let Ok(r) = fabric_proto::Request::decode(h.kind, body) {
        accepted += 1;
        if let fabric_proto::Request::Spawn { args, .. } = r {
            assert_eq!(args.iter().count(), args.len(), "every argument is there");
        }
        let n = r.encode(&mut buf);
        same("fabric request", whole, n.and_then(|n| buf.get(..n)));
    }
    if let Ok(r) = fabric_proto::Reply::decode(h.kind, body) {
        accepted += 1;
        // Every entry of a list is there, and rebuilding the list from its
        // entries gives the same bytes.
        let mut raw = vec![0u8; whole.len()];
        let rebuilt = match r {
            fabric_proto::Reply::Devices { request, devices } => {
                let addresses: Vec<Vec<&str>> = devices
                    .iter()
                    .map(|d| d.addresses.iter().collect())
                    .collect();
                assert!(
                    devices
                        .iter()
                        .zip(&addresses)
                        .all(|(d, a)| d.addresses.len() == a.len())
                );
                let entries: Vec<_> = devices
                    .iter()
                    .zip(&addresses)
                    .map(|(d, addresses)| fabric_proto::DeviceEntry {
                        head: d.head,
                        name: d.name,
                        id: d.id,
                        addresses,
                    })
                    .collect();
                assert_eq!(entries.len(), devices.len());
                fabric_proto::List::<fabric_proto::Device>::encode(&entries, &mut raw)
                    .map(|devices| fabric_proto::Reply::Devices { request, devices })
            }
            fabric_proto::Reply::Processes { request, processes } => {
                let entries: Vec<_> = processes.iter().collect();
                assert_eq!(entries.len(), processes.len());
                fabric_proto::List::<fabric_proto::Process>::encode(&entries, &mut raw)
                    .map(|processes| fabric_proto::Reply::Processes { request, processes })
            }
            other => Some(other),
        };
        let n = rebuilt.and_then(|r| r.encode(&mut buf));
        same("fabric reply", whole, n.and_then(|n| buf.get(..n)));
    }
    accepted
}
