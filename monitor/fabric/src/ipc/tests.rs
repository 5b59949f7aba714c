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
    let raw = m.encode((0x0102_0304_0506_0708, 9));
    let mut want = vec![1, 1, 3, 0, 3, 0, 0, 0, 0xE8, 3, 0, 0];
    want.extend_from_slice(&[8, 7, 6, 5, 4, 3, 2, 1, 9, 0, 0, 0, 0, 0, 0, 0]);
    want.extend_from_slice(b"a:2hi");
    assert_eq!(raw, want);
    assert_eq!(Message::decode(&raw), Ok(((0x0102_0304_0506_0708, 9), m)));
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
    .encode((1, 2));
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
        Message::decode(&with(28, 0xFF)),
        Err(PayloadError::Field("sender"))
    );
    assert_eq!(Message::decode(&good[..27]), Err(PayloadError::Truncated));
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

#[test]
fn a_message_seen_again_gets_the_first_answer_and_is_not_delivered_again() {
    let recent = recent::Recent::default();
    let Seen::New(tx) = recent.check((1, 1)) else {
        panic!("a new stamp was seen")
    };
    let Seen::Again(rx) = recent.check((1, 1)) else {
        panic!("a stamp seen is new again")
    };
    assert!(rx.borrow().is_none());
    assert!(matches!(recent.check((2, 1)), Seen::New(_)));
    recent.answered((1, 1), &tx, &Ok(b"v".to_vec()));
    assert_eq!(*rx.borrow(), Some(Ok(b"v".to_vec())));
    let Seen::Again(later) = recent.check((1, 1)) else {
        panic!("forgotten at once")
    };
    assert_eq!(*later.borrow(), Some(Ok(b"v".to_vec())));
}

#[test]
fn recent_stamps_are_bounded() {
    let recent = recent::Recent::default();
    for i in 0..(recent::MAX as u64 + 100) {
        let Seen::New(tx) = recent.check((7, i)) else {
            panic!("{i} seen")
        };
        recent.answered((7, i), &tx, &Ok(vec![0; 2048]));
    }
    assert!(recent.len() <= recent::MAX);
    // 2 KiB answers: the byte budget holds fewer than MAX.
    assert!(
        recent.len() <= recent::BUDGET / 2048 + 1,
        "{}",
        recent.len()
    );
    // The oldest are the ones forgotten.
    assert!(matches!(recent.check((7, 0)), Seen::New(_)));
}

#[test]
fn arrivals_are_handed_back_in_lane_order() {
    let mut o = order::Order::default();
    let t0 = std::time::Instant::now();
    assert_eq!(o.arrive(9, 0, "m0", t0), ["m0"]);
    // 2 and 3 wait for 1; 1 releases them in order.
    assert!(o.arrive(9, 2, "m2", t0).is_empty());
    assert!(o.arrive(9, 3, "m3", t0).is_empty());
    assert_eq!(o.deadline(), Some(t0 + order::GAP_WAIT));
    assert_eq!(o.arrive(9, 1, "m1", t0), ["m1", "m2", "m3"]);
    assert_eq!(o.deadline(), None);
    // Another lane is independent.
    assert_eq!(o.arrive(4, 0, "x0", t0), ["x0"]);
    // A gap given up on: the held go in order, the missing one comes late.
    assert!(o.arrive(9, 5, "m5", t0).is_empty());
    assert!(o.expire(t0).is_empty());
    assert_eq!(o.expire(t0 + order::GAP_WAIT), ["m5"]);
    assert_eq!(o.arrive(9, 4, "m4", t0), ["m4"]);
    assert_eq!(o.arrive(9, 6, "m6", t0), ["m6"]);
    // A lane first seen past 0 (forgotten, or its first message lost)
    // waits, then goes on.
    assert!(o.arrive(5, 7, "y7", t0).is_empty());
    assert_eq!(o.expire(t0 + order::GAP_WAIT), ["y7"]);
    assert_eq!(o.arrive(5, 8, "y8", t0), ["y8"]);
}

#[test]
fn a_lane_holds_a_bounded_number() {
    let mut o = order::Order::default();
    let t0 = std::time::Instant::now();
    let mut out = Vec::new();
    for i in 1..=(order::MAX_HELD as u64 + 1) {
        out.extend(o.arrive(1, i, i, t0));
    }
    assert_eq!(out, (1..=(order::MAX_HELD as u64 + 1)).collect::<Vec<_>>());
    assert_eq!(o.deadline(), None);
}
