//! A granted listener through std::net (fd 4): local_addr, accepting (the
//! peer address WASI gives), try_clone, nonblocking accept, reading to the
//! end and answering. The test's client sends "ping 0\n" and closes its
//! side.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener};
use std::os::fd::FromRawFd;
use wasi_conformance::{describe, outcome, show};

fn main() {
    // SAFETY: fd 4 is the listener weft grants first (PROTOCOL.md §13.1),
    // owned by nothing else in this program.
    let listener = unsafe { TcpListener::from_raw_fd(4) };
    show("local_addr", listener.local_addr());
    outcome("try_clone", listener.try_clone());
    outcome("set_nonblocking true", listener.set_nonblocking(true));
    match listener.accept() {
        Err(e) if e.kind() == ErrorKind::WouldBlock => println!("accept nonblocking: WouldBlock"),
        Err(e) => println!("accept nonblocking: {}", describe(&e)),
        Ok(_) => println!("accept nonblocking: a connection"),
    }
    outcome("set_nonblocking false", listener.set_nonblocking(false));
    println!("waiting for a client on listener 0");
    let Some((mut conn, peer)) = outcome("accept", listener.accept()) else {
        return;
    };
    println!("peer {peer}");
    show("peer_addr", conn.peer_addr());
    show("local_addr of the connection", conn.local_addr());
    outcome("try_clone the connection", conn.try_clone());
    outcome("set_nodelay", conn.set_nodelay(true));
    let mut got = String::new();
    show("read_to_string", conn.read_to_string(&mut got));
    println!("received {got:?}");
    outcome(
        "write_all",
        conn.write_all(format!("echo: {got}").as_bytes()),
    );
    outcome("shutdown write", conn.shutdown(Shutdown::Write));
    show("read after the end", conn.read(&mut [0; 8]));
}
