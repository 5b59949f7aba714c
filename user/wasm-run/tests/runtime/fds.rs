//! The descriptor table: allocation, close, reuse, bad descriptors.

use crate::Fake;
use std::net::SocketAddr;
use weft_control::app::errno;
use weft_wasm_run::fds::{Fd, Fds, Open, ROOT_FD};
use weft_wasm_run::host::Output::{Stderr, Stdout};
use weft_wasm_run::lines::HELD_MAX;

fn dir(path: &str) -> Fd<Fake> {
    Fd::Dir(path.into())
}

#[test]
fn the_table_starts_with_the_standard_streams_and_the_root() {
    let mut fds = Fds::new(Fake::new(), []);
    assert!(matches!(fds.get(0), Ok(Fd::Stdin)));
    assert!(matches!(fds.get(1), Ok(Fd::Stdout)));
    assert!(matches!(fds.get(2), Ok(Fd::Stderr)));
    assert!(matches!(fds.get(ROOT_FD), Ok(Fd::Dir(p)) if p == "/"));
    for bad in [4, -1, i32::MAX, i32::MIN] {
        assert_eq!(fds.get(bad).err(), Some(errno::BADF), "fd {bad}");
    }
}

#[test]
fn closed_descriptors_are_reused_lowest_first() {
    let mut fds = Fds::new(Fake::new(), []);
    assert_eq!(fds.insert(dir("/a")), 4);
    assert_eq!(fds.insert(dir("/b")), 5);
    assert_eq!(fds.insert(dir("/c")), 6);
    fds.close(5).unwrap();
    fds.close(4).unwrap();
    assert_eq!(fds.get(4).err(), Some(errno::BADF));
    assert_eq!(fds.close(4), Err(errno::BADF));
    assert_eq!(fds.insert(dir("/d")), 4);
    assert_eq!(fds.insert(dir("/e")), 5);
    assert_eq!(fds.insert(dir("/f")), 7);
    assert!(matches!(fds.get(6), Ok(Fd::Dir(p)) if p == "/c"));
    assert_eq!(fds.close(-3), Err(errno::BADF));
}

#[test]
fn wrong_kinds_of_descriptor_are_refused() {
    let mut fds = Fds::new(Fake::new(), []);
    let mut buf = [0u8; 4];
    assert_eq!(fds.read(ROOT_FD, &mut buf), Err(errno::BADF));
    assert_eq!(fds.write(ROOT_FD, b"x"), Err(errno::BADF));
    assert_eq!(fds.read(1, &mut buf), Err(errno::BADF));
    assert_eq!(fds.write(0, b"x"), Err(errno::BADF));
    assert_eq!(fds.shutdown(1, 2), Err(errno::NOTSOCK));
    assert_eq!(fds.entries(1).err(), Some(errno::BADF));
    assert_eq!(fds.resolve(1, "a"), Err(errno::BADF));
    assert_eq!(fds.resolve(ROOT_FD, "/etc"), Err(errno::PERM));
    let p = fds.resolve(ROOT_FD, "a/b").unwrap();
    assert_eq!((p.dir.as_str(), p.path.as_str()), ("/", "a/b"));
}

#[test]
fn directories_open_as_descriptors_that_confine_their_paths() {
    let fake = Fake::new();
    fake.0.borrow_mut().dirs.insert("/d".into());
    fake.0.borrow_mut().dirs.insert("/d/e".into());
    let mut fds = Fds::new(fake, []);
    let open = Open {
        read: true,
        follow: true,
        ..Open::default()
    };
    let at_d = fds.resolve(ROOT_FD, "d").unwrap();
    let d = fds.open(&at_d, open).unwrap();
    assert!(matches!(fds.get(d), Ok(Fd::Dir(p)) if p == "/d"));
    let at_e = fds.resolve(d, "./e/").unwrap();
    let e = fds.open(&at_e, open).unwrap();
    assert!(matches!(fds.get(e), Ok(Fd::Dir(p)) if p == "/d/e"));
    let names: Vec<String> = fds.entries(d).unwrap().into_iter().map(|e| e.0).collect();
    assert_eq!(names, [".", "..", "e"]);
    let up = fds.resolve(e, "../x").unwrap();
    assert_eq!(fds.open(&up, open), Err(errno::PERM));
    let write = Open {
        write: true,
        ..open
    };
    assert_eq!(fds.open(&at_d, write), Err(errno::ISDIR));
    let exclusive = Open {
        create: true,
        exclusive: true,
        ..write
    };
    assert_eq!(fds.open(&at_d, exclusive), Err(errno::EXIST));
    fds.renumber(e, d).unwrap();
    assert!(matches!(fds.get(d), Ok(Fd::Dir(p)) if p == "/d/e"));
    assert_eq!(fds.get(e).err(), Some(errno::BADF));
    assert_eq!(fds.renumber(e, d), Err(errno::BADF));
    assert_eq!(fds.renumber(d, 99), Err(errno::BADF));
}

#[test]
fn grants_follow_the_root_and_bind_on_first_use() {
    let addr: SocketAddr = "127.0.0.1:7000".parse().unwrap();
    let fake = Fake::new();
    let mut fds = Fds::new(fake.clone(), [addr]);
    assert!(matches!(fds.get(4), Ok(Fd::Grant(a)) if *a == addr));
    assert_eq!(fds.sockets(), 0);
    assert!(fake.0.borrow().backlogs.is_empty());
    assert!(fds.stream(4).is_some());
    assert!(fake.0.borrow().backlogs.contains_key(&addr));
    assert!(matches!(fds.get(4), Ok(Fd::Listener { .. })));
    assert_eq!(fds.sockets(), 1);
    assert_eq!(fds.accept(4).map(|c| c.is_none()).ok(), Some(true));
    assert_eq!(fds.insert(dir("/a")), 5);
}

/// An app's writes to standard output and error reach the host in whole
/// lines, in the order written: a line written in pieces goes out at its
/// newline; a partial one when the app writes to its other output, when
/// too much is held, at the end of its turn, and when it ends.
#[test]
fn standard_output_and_error_go_out_in_whole_lines_in_the_order_written() {
    let fake = Fake::new();
    let mut fds = Fds::new(fake.clone(), []);
    let written = || core::mem::take(&mut fake.0.borrow_mut().writes);
    let write = |fds: &mut Fds<Fake>, fd: i32, bytes: &[u8]| {
        assert_eq!(fds.write(fd, bytes), Ok(Some(bytes.len())));
    };
    for piece in ["beside ended ", "0", "\n", "two ", "lines\nand a", " half"] {
        write(&mut fds, 1, piece.as_bytes());
    }
    assert_eq!(
        written(),
        [
            (Stdout, b"beside ended 0\n".to_vec()),
            (Stdout, b"two lines\n".to_vec())
        ]
    );
    write(&mut fds, 2, b"oops");
    write(&mut fds, 2, b"!\n");
    assert_eq!(
        written(),
        [
            (Stdout, b"and a half".to_vec()),
            (Stderr, b"oops!\n".to_vec())
        ]
    );
    let long = vec![b'x'; HELD_MAX + 1];
    write(&mut fds, 1, &long);
    assert_eq!(written(), [(Stdout, long)]);
    write(&mut fds, 1, b"tail");
    assert_eq!(written(), []);
    fds.flush_output();
    assert_eq!(written(), [(Stdout, b"tail".to_vec())]);
    fds.flush_output();
    write(&mut fds, 2, b"last words");
    drop(fds);
    assert_eq!(written(), [(Stderr, b"last words".to_vec())]);
}
