//! A message whose query vanishes on the way (a link that broke takes it
//! without a trace) is sent again with the same stamp (PROTOCOL.md §18.5):
//! a paired device `g`, speaking Zenoh directly, provides a service and
//! keeps the first query it gets unanswered.

use super::{Daemon, Scratch, cli, ok, pair, raw_session, serial, zenoh_runtime};
use crate::common::{self, weft};
use std::time::{Duration, Instant};

const LOST: &str = "3c4d5e6f-7a8b-4c9d-8e0f-1a2b3c4d5e6f";

#[test]
fn a_message_met_with_silence_is_sent_again_with_its_stamp() {
    let _serial = serial();
    let scratch = Scratch::new("resend");
    let (a, g) = (scratch.state("a"), scratch.state("g"));
    let addr_a = format!("127.0.0.1:{}", common::free_port());
    ok(&a, &["fabric", "create", "--name", "a"]);
    let _da = Daemon::start(weft(), &a, &addr_a, &[]);
    pair(&a, &g, "g", weft());

    let runtime = zenoh_runtime();
    let (session, queryable, _token) = runtime.block_on(async {
        let session = raw_session(&g, &addr_a).await;
        let queryable = session
            .declare_queryable(format!("weft/ipc/{LOST}/g"))
            .complete(true)
            .await
            .unwrap();
        let token = session
            .liveliness()
            .declare_token(format!("weft/ipc/{LOST}/g/1"))
            .await
            .unwrap();
        (session, queryable, token)
    });
    // The first query is held and never answered; the next one is.
    let provider = runtime.spawn(async move {
        let first = queryable.recv_async().await.unwrap();
        let again = queryable.recv_async().await.unwrap();
        let stamp =
            |q: &zenoh::query::Query| q.payload().map(|p| p.to_bytes()[12..28].to_vec()).unwrap();
        let same = stamp(&first) == stamp(&again);
        again
            .reply(again.key_expr().clone(), b"\x01\x00late".to_vec())
            .await
            .unwrap();
        (same, first)
    });
    // Until a knows g's token, a call finds no instance (and sends nothing).
    let since = Instant::now();
    let (code, out, err) = loop {
        let (code, out, err) = cli(&a, &["ipc", "call", LOST, "hello"]);
        if code == 0 || !err.contains("no instance") {
            break (code, out, err);
        }
        assert!(since.elapsed() < Duration::from_secs(20), "{err}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!((code, out.as_str()), (0, "late"), "{err}");
    let (same, _first) = runtime.block_on(provider).unwrap();
    assert!(same, "the message was sent again under another stamp");
    runtime.block_on(async { session.close().await.unwrap() });
}
