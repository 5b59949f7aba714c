//! `listeners FD...`: a WASI command that takes the TCP listeners the
//! runtime preopened for `--listen` (descriptors 4, 5, …) and, for each FD
//! in the order given, accepts one connection, reads one line and answers
//! `FD: LINE`. It blocks on each listener in turn, so a peer of a later
//! one waits while an earlier one is served.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::os::fd::FromRawFd;

fn main() {
    for fd in std::env::args().skip(1) {
        let Ok(n) = fd.parse::<i32>() else {
            eprintln!("listeners: {fd:?} is not a descriptor");
            std::process::exit(2);
        };
        // SAFETY: the runtime preopens the granted listeners at these
        // descriptors; each is taken once and owned here from then on.
        let listener = unsafe { TcpListener::from_raw_fd(n) };
        if let Err(e) = serve_one(&listener, n) {
            eprintln!("listeners: descriptor {n}: {e}");
            std::process::exit(1);
        }
    }
}

/// Accepts one connection on `listener` and answers its first line.
fn serve_one(listener: &TcpListener, fd: i32) -> std::io::Result<()> {
    let (conn, _) = listener.accept()?;
    let mut line = String::new();
    BufReader::new(&conn).read_line(&mut line)?;
    (&conn).write_all(format!("{fd}: {line}").as_bytes())?;
    println!("listeners: served descriptor {fd}");
    Ok(())
}
