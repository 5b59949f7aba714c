use super::*;

const G: &str = "6f1c2a4e-8b3d-4f0a-9c11-223344556677";

fn guid() -> Guid {
    Guid::parse(G).unwrap()
}

#[test]
fn keys_name_their_instance() {
    let g = guid();
    assert_eq!(service_key(&g, "beta"), format!("weft/ipc/{G}/beta"));
    let key = instance_key(&g, "beta", 7);
    assert_eq!(instance_of(&key), Some((g, "beta".to_string(), 7)));
    for bad in [
        format!("weft/ipc/{G}/beta"),
        format!("weft/ipc/{G}/beta/07"),
        format!("weft/ipc/{G}/beta/7/x"),
        format!("weft/ipc/{G}/Beta/7"),
        format!("weft/ipc/{}/beta/7", G.to_uppercase()),
        "weft/ipc/x/beta/7".to_string(),
    ] {
        assert_eq!(instance_of(&bad), None, "{bad}");
    }
}

#[test]
fn messages_round_trip_and_are_laid_out_as_specified() {
    let m = Message {
        request: true,
        target: 3,
        timeout_ms: 1000,
        sender: "a:2".into(),
        data: b"hi".to_vec(),
    };
    let raw = m.encode();
    assert_eq!(
        raw,
        [1, 1, 3, 0, 3, 0, 0, 0, 0xE8, 3, 0, 0, b'a', b':', b'2', b'h', b'i']
    );
    assert_eq!(Message::decode(&raw), Ok(m));
}

#[test]
fn bad_messages_are_refused() {
    let good = Message {
        request: false,
        target: ANY,
        timeout_ms: 0,
        sender: "a".into(),
        data: vec![],
    }
    .encode();
    assert!(Message::decode(&good).is_ok());
    let with = |at: usize, v: u8| {
        let mut r = good.clone();
        r[at] = v;
        r
    };
    assert_eq!(Message::decode(&with(0, 2)), Err(PayloadError::Version(2)));
    assert_eq!(
        Message::decode(&with(1, 2)),
        Err(PayloadError::Field("flags"))
    );
    assert_eq!(
        Message::decode(&with(2, 0)),
        Err(PayloadError::Field("sender length"))
    );
    assert_eq!(Message::decode(&with(2, 9)), Err(PayloadError::Truncated));
    assert_eq!(
        Message::decode(&with(12, 0xFF)),
        Err(PayloadError::Field("sender"))
    );
    assert_eq!(Message::decode(&good[..11]), Err(PayloadError::Truncated));
    let mut big = good.clone();
    big.resize(good.len() + MAX_DATA + 1, 0);
    assert_eq!(
        Message::decode(&big),
        Err(PayloadError::Field("data length"))
    );
}

#[test]
fn answers_round_trip() {
    for a in [
        Ok(vec![]),
        Ok(b"v".to_vec()),
        Err((IpcError::Refused, "no such key".to_string())),
        Err((IpcError::Busy, String::new())),
    ] {
        assert_eq!(decode_answer(&encode_answer(&a)), Ok(a));
    }
    assert_eq!(encode_answer(&Ok(b"x".to_vec())), [1, 0, b'x']);
    assert_eq!(decode_answer(&[1]), Err(PayloadError::Truncated));
    assert_eq!(decode_answer(&[2, 0]), Err(PayloadError::Version(2)));
    assert_eq!(decode_answer(&[1, 10]), Err(PayloadError::Field("status")));
    assert_eq!(
        decode_answer(&[1, 5, 0xFF]),
        Err(PayloadError::Field("message"))
    );
    let long = "é".repeat(MAX_TEXT);
    let cut = encode_answer(&Err((IpcError::Refused, long)));
    assert!(cut.len() <= 2 + MAX_TEXT);
    assert!(decode_answer(&cut).is_ok());
}
