//! Integration tests of the control pipe and first frames (PROTOCOL.md §9):
//! real KVM guests that open, misuse and close streams.

mod common;

use common::{TempDir, guest_program, run};

#[test]
fn control_pipe_opens_closes_and_refuses_cleanly() {
    let (code, out, err) = run(&[
        "run",
        "--timeout",
        "60",
        "--stats",
        // Budgets above the slots: the slots are what runs out here.
        "--max-streams",
        "200",
        "--max-process-streams",
        "200",
        &guest_program("stream-check"),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("unknown kind: Some(Protocol)\n"), "{out}");
    assert!(
        out.contains("bad version: Some(Version) status Some(Version)\n"),
        "{out}"
    );
    assert!(
        out.contains("file without root: Some(Unsupported)\n"),
        "{out}"
    );
    // Slots 4..126 are handed out; one more is refused.
    assert!(
        out.contains("opened 122 then: no free stream slot"),
        "{out}"
    );
    assert!(
        out.contains("reopened slot Some(4) (first was Some(4))"),
        "{out}"
    );
    assert!(
        err.contains("protocol violation: first frame kind 0x0777 names no protocol"),
        "{err}"
    );
    assert!(err.contains("streams: opened=126 "), "{err}");
}

#[test]
fn hostile_frames_and_indices_end_only_their_stream() {
    let root = TempDir::new("hostile");
    std::fs::write(root.join("data"), vec![7u8; 100_000]).unwrap();
    let (code, out, err) = run(&[
        "run",
        "--timeout",
        "60",
        "--fs-root",
        &root.display().to_string(),
        &guest_program("stream-hostile"),
        "/data",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    for attack in ["flags", "oversized", "noise", "truncated"] {
        assert!(
            out.contains(&format!(
                "{attack}: sent true, answer Some(Protocol), status Some(Protocol)\n"
            )),
            "{attack}: {out}"
        );
    }
    assert!(
        out.contains("corrupt index: answer Some(Protocol), status Some(Protocol)\n"),
        "{out}"
    );
    // The ring the monitor writes, corrupted by the guest: `Protocol` in the
    // status word (no frame can travel in that ring any more) and a line on
    // weft's standard error naming the stream and the ring.
    for attack in ["to_guest index", "to_guest close flag"] {
        assert!(
            out.contains(&format!(
                "{attack}: answer Some(Protocol) (the monitor ended the stream), \
                 status Some(Protocol)\n"
            )),
            "{attack}: {out}"
        );
    }
    assert_eq!(
        err.matches("closed: protocol violation: to_guest ring: ring peer violated the protocol")
            .count(),
        2,
        "{err}"
    );
    assert!(out.contains("control pipe still opens: 3\n"), "{out}");
    assert!(
        out.contains("file stream still reads: 100000 bytes\n"),
        "{out}"
    );
    assert!(
        err.contains("frame body of 4294967295 bytes is too long"),
        "{err}"
    );
    assert!(err.contains("ring peer violated the protocol"), "{err}");
}
