extern crate std;

use super::*;
use crate::frame::{HEADER, split};
use std::string::ToString;
use std::vec;
use std::vec::Vec;

const G: Guid = Guid([
    0x6f, 0x1c, 0x2a, 0x4e, 0x8b, 0x3d, 0x4f, 0x0a, 0x9c, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77,
]);

fn round_request(r: Request<'_>) {
    let mut buf = [0u8; HEADER + 2048];
    let n = r.encode(&mut buf).expect("fits");
    let (h, body) = split(&buf[..n]).expect("frame");
    assert_eq!(h.kind, r.kind());
    assert_eq!(Request::decode(h.kind, body), Ok(r));
}

fn round_response(r: Response<'_>) {
    let mut buf = [0u8; HEADER + 2048];
    let n = r.encode(&mut buf).expect("fits");
    let (h, body) = split(&buf[..n]).expect("frame");
    assert_eq!(Response::decode(h.kind, body), Ok(r));
}

#[test]
fn guids_read_and_print_the_canonical_form() {
    let text = "6f1c2a4e-8b3d-4f0a-9c11-223344556677";
    assert_eq!(Guid::parse(text), Some(G));
    assert_eq!(
        Guid::parse(&std::string::String::from(text).to_uppercase()),
        Some(G)
    );
    assert_eq!(G.to_string(), text);
    for bad in [
        "",
        "6f1c2a4e8b3d4f0a9c11223344556677",
        "6f1c2a4e-8b3d-4f0a-9c11-22334455667",
        "6f1c2a4e-8b3d-4f0a-9c11-2233445566777",
        "6f1c2a4e+8b3d-4f0a-9c11-223344556677",
        "6f1c2a4e-8b3d-4f0a-9c11-22334455667g",
        "00000000-0000-0000-0000-000000000000",
    ] {
        assert_eq!(Guid::parse(bad), None, "{bad}");
    }
}

#[test]
fn requests_round_trip() {
    round_request(Request::Serve {
        request: 1,
        guid: G,
        name: "kv",
    });
    round_request(Request::Send {
        request: 2,
        flags: send_flags::REQUEST,
        timeout_ms: 500,
        guid: G,
        pid: Some("b:7"),
        data: b"get k",
    });
    round_request(Request::Send {
        request: 3,
        flags: 0,
        timeout_ms: 0,
        guid: G,
        pid: None,
        data: b"",
    });
    round_request(Request::Cancel { request: 2 });
    round_request(Request::Reply {
        message: 1 << 40,
        data: b"v",
    });
    round_request(Request::Refuse {
        message: 9,
        reason: "no such key",
    });
}

#[test]
fn responses_round_trip() {
    round_response(Response::Serving { request: 1 });
    round_response(Response::Sent { request: 1 });
    round_response(Response::Answer {
        request: 4,
        data: &[0, 1, 2],
    });
    for error in IpcError::ALL {
        round_response(Response::Failed {
            request: 5,
            error,
            message: "why",
        });
    }
    round_response(Response::Message {
        message: 3,
        flags: send_flags::REQUEST,
        sender: "a:2",
        data: b"x",
    });
    round_response(Response::Paused);
    round_response(Response::Resumed);
}

#[test]
fn a_send_is_laid_out_as_specified() {
    let mut buf = [0u8; 64];
    let n = Request::Send {
        request: 7,
        flags: 1,
        timeout_ms: 1000,
        guid: G,
        pid: Some("b:2"),
        data: b"hi",
    }
    .encode(&mut buf)
    .unwrap();
    let mut want: Vec<u8> = vec![
        35, 0, 0, 0, 0x02, 0x06, 0, 0, // header: 35-byte body, SEND
        7, 0, 0, 0, 1, 0, 0, 0, 0xE8, 0x03, 0, 0,
    ];
    want.extend_from_slice(&G.0);
    want.extend_from_slice(&[3, 0, b'b', b':', b'2', b'h', b'i']);
    assert_eq!(&buf[..n], &want[..]);
}

#[test]
fn bad_frames_are_refused() {
    let send = |flags: u32, timeout: u32, guid: [u8; 16]| {
        let mut body = vec![];
        body.extend_from_slice(&1u32.to_le_bytes());
        body.extend_from_slice(&flags.to_le_bytes());
        body.extend_from_slice(&timeout.to_le_bytes());
        body.extend_from_slice(&guid);
        body.extend_from_slice(&[0, 0]);
        body
    };
    assert!(Request::decode(kind::SEND, &send(0, 0, G.0)).is_ok());
    assert_eq!(
        Request::decode(kind::SEND, &send(2, 0, G.0)),
        Err(WireError::Field("flags"))
    );
    assert_eq!(
        Request::decode(kind::SEND, &send(0, MAX_TIMEOUT_MS + 1, G.0)),
        Err(WireError::Field("timeout_ms"))
    );
    assert_eq!(
        Request::decode(kind::SEND, &send(0, 0, [0; 16])),
        Err(WireError::Field("guid"))
    );
    let mut big = send(0, 0, G.0);
    big.resize(big.len() + MAX_DATA + 1, 0);
    assert!(matches!(
        Request::decode(kind::SEND, &big),
        Err(WireError::TooLong(_))
    ));
    // A SERVE with an empty name, a CANCEL with a trailing byte, an
    // unknown error code, a MESSAGE with no sender, an unknown kind.
    let mut serve = 1u32.to_le_bytes().to_vec();
    serve.extend_from_slice(&G.0);
    serve.extend_from_slice(&[0, 0]);
    assert_eq!(
        Request::decode(kind::SERVE, &serve),
        Err(WireError::Field("name"))
    );
    assert_eq!(
        Request::decode(kind::CANCEL, &[1, 0, 0, 0, 0]),
        Err(WireError::Trailing)
    );
    let failed = [1, 0, 0, 0, 99, 0, 0, 0, 0, 0];
    assert_eq!(
        Response::decode(kind::FAILED, &failed),
        Err(WireError::Field("error"))
    );
    let message = [1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    assert_eq!(
        Response::decode(kind::MESSAGE, &message),
        Err(WireError::Field("sender"))
    );
    assert_eq!(Request::decode(0x06FF, &[]), Err(WireError::Kind(0x06FF)));
    assert_eq!(
        Response::decode(kind::PAUSED, &[0]),
        Err(WireError::Trailing)
    );
}

#[test]
fn encoders_refuse_what_decoders_refuse() {
    let mut buf = [0u8; HEADER + MAX_DATA + 64];
    let big = [0u8; MAX_DATA + 1];
    let serve = Request::Serve {
        request: 1,
        guid: G,
        name: "",
    };
    assert_eq!(serve.encode(&mut buf), None);
    let reply = Request::Reply {
        message: 1,
        data: &big,
    };
    assert_eq!(reply.encode(&mut buf), None);
    let message = Response::Message {
        message: 1,
        flags: 4,
        sender: "a:1",
        data: b"",
    };
    assert_eq!(message.encode(&mut buf), None);
}
