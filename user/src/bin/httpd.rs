//! `httpd PORT`: serves the files under the file-system root over HTTP/1.1:
//! `GET` and `HEAD`, 404 for a missing file, 403 for a path that climbs out
//! of the root (refused here and, independently, by the monitor), a
//! directory's `index.html` or else a plain listing of it. Each response
//! carries `Content-Length`.
//!
//! Up to [`MAX_CONNS`] connections are served at once, one event loop
//! polling them and the listener; a connection stays open for further
//! requests (HTTP/1.1 keep-alive, pipelined requests answered in order)
//! unless the client asks to close it, speaks HTTP/1.0 without asking to
//! keep it, stays idle for [`IDLE_NS`], or places are short: all
//! [`MAX_CONNS`] are taken, or a connection waits that the process has no
//! stream left for (its budget); then each answer closes its connection,
//! so waiting clients get their turn. A response is written whole before
//! the loop goes on: a client that does not read a large file holds the
//! others up. Small files are served from memory while their metadata says
//! they are unchanged, looked at again at most once per [`FRESH_NS`]
//! ([`Cache`]).
#![no_std]
#![no_main]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use embedded_io::{Read, Write};
use weft_user::fs::{self, File, FileKind, Metadata};
use weft_user::net::{TcpListener, TcpStream};
use weft_user::stream::{Interest, Stream, poll};
use weft_user::{Args, Code, Error, eprintln, time};

weft_user::entry!(main);

/// The longest request head read.
const MAX_HEAD: usize = 8192;
/// Connections served at once at most: with the listener, the file-system
/// session and a file, within the slots a process has. The process's
/// stream budget (PROTOCOL.md §20.1) may allow fewer: a connection that
/// could not be taken for it lowers the number served to one less than
/// those open then (one stream left for a file), for [`CAP_NS`].
const MAX_CONNS: usize = 110;
/// How long a lowered number of connections holds.
const CAP_NS: u64 = 10_000_000_000;
/// How long a kept connection may stay idle.
const IDLE_NS: u64 = 10_000_000_000;
/// How long the loop waits at most, to close idle connections.
const TICK_NS: u64 = 1_000_000_000;

/// One client's connection and what it sent that is not answered yet.
struct Conn {
    tcp: TcpStream,
    pending: Vec<u8>,
    last_ns: u64,
}

fn main(args: Args) -> i32 {
    let Some(port) = args.get(1).and_then(|p| p.parse::<u16>().ok()) else {
        eprintln!("usage: httpd PORT");
        return 2;
    };
    let addr = core::net::SocketAddr::from(([0, 0, 0, 0], port));
    let mut listener = match TcpListener::bind(addr) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("httpd: cannot listen on port {port}: {e}");
            return 1;
        }
    };
    let mut conns: Vec<Conn> = Vec::new();
    let mut cache = Cache::default();
    let (mut cap, mut capped_ns) = (MAX_CONNS, 0);
    loop {
        let room = conns.len() < cap;
        let ready = {
            let mut set: Vec<(&mut Stream, Interest)> = Vec::with_capacity(MAX_CONNS + 1);
            for c in conns.iter_mut() {
                set.push((c.tcp.as_stream_mut(), Interest::Read));
            }
            if room {
                set.push((listener.as_stream_mut(), Interest::Read));
            }
            poll(&mut set, Some(TICK_NS))
        };
        let now = time::monotonic_ns();
        // Places are short: answers close their connections.
        let full = !room || listener.has_untaken();
        let mut i = 0;
        conns.retain_mut(|c| {
            let bit = ready & (1u128 << i) != 0;
            i += 1;
            if !bit {
                return now.saturating_sub(c.last_ns) < IDLE_NS;
            }
            c.last_ns = now;
            match take_requests(c, !full, &mut cache) {
                Ok(open) => open,
                Err(e) => {
                    eprintln!("httpd: {e}");
                    false
                }
            }
        });
        if let Err(e) = accept(&mut listener, &mut conns, cap, now) {
            eprintln!("httpd: accept: {e}");
            return 1;
        }
        if listener.has_untaken() && cap > conns.len().saturating_sub(1).max(1) {
            (cap, capped_ns) = (conns.len().saturating_sub(1).max(1), now);
        } else if now.saturating_sub(capped_ns) > CAP_NS {
            cap = MAX_CONNS;
        }
    }
}

/// Takes the connections announced, up to `cap` in all. A stream budget
/// used up is waited out: the listener keeps the connection for the next
/// try, once one of ours closed.
fn accept(
    listener: &mut TcpListener,
    conns: &mut Vec<Conn>,
    cap: usize,
    now: u64,
) -> Result<(), Error> {
    while conns.len() < cap {
        match listener.try_accept() {
            Ok(Some((tcp, _peer))) => conns.push(Conn {
                tcp,
                pending: Vec::new(),
                last_ns: now,
            }),
            Ok(None) => return Ok(()),
            // Taken later, once a connection closes.
            Err(e) if matches!(e.code(), Code::OverBudget | Code::NoSlots) => return Ok(()),
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Reads what `c` sent and answers every whole request in it; whether the
/// connection stays open (`keep`: whether it may).
fn take_requests(c: &mut Conn, keep: bool, cache: &mut Cache) -> Result<bool, Error> {
    let mut buf = [0u8; 4096];
    loop {
        match c.tcp.try_read(&mut buf)? {
            None => break,
            Some(0) => return Ok(false),
            Some(n) => c.pending.extend_from_slice(&buf[..n]),
        }
        if c.pending.len() > MAX_HEAD {
            break;
        }
    }
    while let Some(end) = head_end(&c.pending) {
        let head: Vec<u8> = c.pending.drain(..end).collect();
        if !serve(&mut c.tcp, &head, keep, cache)? {
            return Ok(false);
        }
    }
    if c.pending.len() > MAX_HEAD {
        respond(&mut c.tcp, 431, "text/plain", b"", false, false)?;
        return Ok(false);
    }
    Ok(true)
}

/// Where the first request head in `bytes` ends (after its blank line).
fn head_end(bytes: &[u8]) -> Option<usize> {
    bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|at| at + 4)
}

/// A parsed request line.
struct Request {
    head_only: bool,
    path: String,
    /// Whether the connection stays open after the answer.
    keep: bool,
}

/// Answers the request `head`; whether the connection stays open (`keep`:
/// whether it may).
fn serve(conn: &mut TcpStream, head: &[u8], keep: bool, cache: &mut Cache) -> Result<bool, Error> {
    let request = match parse(head, keep) {
        Ok(r) => r,
        Err(status) => {
            respond(conn, status, "text/plain", b"", false, false)?;
            return Ok(false);
        }
    };
    answer(conn, &request, cache)
}

/// Answers `request`; whether the connection stays open.
fn answer(conn: &mut TcpStream, request: &Request, cache: &mut Cache) -> Result<bool, Error> {
    let (head_only, keep) = (request.head_only, request.keep);
    if climbs_out(&request.path) {
        respond(conn, 403, "text/plain", b"forbidden\n", head_only, keep)?;
        return Ok(keep);
    }
    let now = time::monotonic_ns();
    if let Some((m, body)) = cache.fresh(&request.path, now) {
        return cached(conn, request, m, body);
    }
    match fs::metadata(&request.path) {
        Ok(m) if m.kind == FileKind::Dir => {
            let index = format!("{}/index.html", request.path.trim_end_matches('/'));
            if let Ok(i) = fs::metadata(&index)
                && i.kind == FileKind::File
            {
                let request = Request {
                    head_only,
                    path: index,
                    keep,
                };
                return send_file(conn, &request, &i, cache, now);
            }
            let mut names: Vec<String> = fs::read_dir(&request.path)?
                .into_iter()
                .map(|e| {
                    let slash = if e.file_type() == FileKind::Dir {
                        "/"
                    } else {
                        ""
                    };
                    format!("{}{slash}\n", e.name())
                })
                .collect();
            names.sort();
            let body = names.concat();
            respond(conn, 200, "text/plain", body.as_bytes(), head_only, keep)?;
            Ok(keep)
        }
        Ok(m) => send_file(conn, request, &m, cache, now),
        Err(e) => refuse(conn, &e, request),
    }
}

/// Answers `request` with the status for error `e`; whether the connection
/// stays open (not after a 503: closing it makes room).
fn refuse(conn: &mut TcpStream, e: &Error, request: &Request) -> Result<bool, Error> {
    let status = status_of(e);
    let keep = request.keep && status != 503;
    let body = reason(status).as_bytes();
    respond(conn, status, "text/plain", body, request.head_only, keep)?;
    Ok(keep)
}

/// Files of at most this many bytes are kept in [`Cache`].
const CACHE_MAX: u64 = 64 << 10;
/// Files [`Cache`] keeps at most.
const CACHE_FILES: usize = 64;

/// How long a cached file's metadata is taken as current: a file changed
/// on the host is served as it is now within this long (as lighttpd's
/// stat cache does), and a busy server asks the monitor for a file's
/// metadata once per this long rather than once per request.
const FRESH_NS: u64 = 1_000_000_000;

/// Small files' contents, each served again only while the file's size and
/// modification time are those it was read with, as last looked at (at
/// most [`FRESH_NS`] ago). As with any such cache, a file rewritten with
/// the same size within one tick of the host's file clock may be served
/// as it was.
#[derive(Default)]
struct Cache {
    /// Oldest first.
    files: Vec<Cached>,
}

/// One file in [`Cache`].
struct Cached {
    path: String,
    /// The metadata the body was read with.
    meta: Metadata,
    body: Vec<u8>,
    /// When the file's metadata was last found to be `meta`.
    checked_ns: u64,
}

impl Cache {
    /// The metadata and body of `path` if it is cached and was looked at
    /// less than [`FRESH_NS`] before `now` (never with no clock: it reads 0
    /// when the monitor could not tell the TSC's rate).
    fn fresh(&self, path: &str, now: u64) -> Option<(&Metadata, &[u8])> {
        if now == 0 {
            return None;
        }
        self.files
            .iter()
            .find(|f| f.path == path && now.saturating_sub(f.checked_ns) < FRESH_NS)
            .map(|f| (&f.meta, f.body.as_slice()))
    }

    /// The body of `path` if it was read with the metadata `m`, which was
    /// found current at `now`.
    fn confirm(&mut self, path: &str, m: &Metadata, now: u64) -> Option<&[u8]> {
        let f = self.files.iter_mut().find(|f| {
            f.path == path && f.meta.size == m.size && f.meta.modified_ns == m.modified_ns
        })?;
        f.checked_ns = now;
        Some(f.body.as_slice())
    }

    /// Keeps `body`, read with the metadata `m` found current at `now`.
    fn put(&mut self, path: &str, m: &Metadata, body: Vec<u8>, now: u64) {
        self.files.retain(|f| f.path != path);
        if self.files.len() >= CACHE_FILES {
            self.files.remove(0);
        }
        self.files.push(Cached {
            path: path.into(),
            meta: *m,
            body,
            checked_ns: now,
        });
    }
}

/// Sends the file `m` describes after its header: exactly `m.size` bytes,
/// so that a kept connection stays in step (a file that shrank meanwhile
/// ends the connection with an error). A small file comes from `cache`
/// while it is unchanged (`m` was read at `now`). Whether the connection
/// stays open.
fn send_file(
    conn: &mut TcpStream,
    request: &Request,
    m: &Metadata,
    cache: &mut Cache,
    now: u64,
) -> Result<bool, Error> {
    let (head_only, keep) = (request.head_only, request.keep);
    let ty = content_type(&request.path);
    if let Some(body) = cache.confirm(&request.path, m, now) {
        return cached(conn, request, m, body);
    }
    let mut file = match File::open(&request.path) {
        Ok(f) => f,
        Err(e) => return refuse(conn, &e, request),
    };
    conn.write_all(head(200, ty, m.size, keep).as_bytes())?;
    if head_only {
        return Ok(keep);
    }
    let small = m.size <= CACHE_MAX;
    let mut kept = Vec::new();
    let mut buf = alloc::vec![0u8; (m.size as usize).clamp(1, 32 * 1024)];
    let mut left = m.size;
    while left > 0 {
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = file.read(&mut buf[..want])?;
        if n == 0 {
            return Err(Error::new(
                Code::Closed,
                format!("{} shrank while it was sent", request.path),
            ));
        }
        conn.write_all(&buf[..n])?;
        if small {
            kept.extend_from_slice(&buf[..n]);
        }
        left -= n as u64;
    }
    if small {
        cache.put(&request.path, m, kept, now);
    }
    Ok(keep)
}

/// Answers `request` with a cached file's `body` (`m` its metadata), head
/// and body in one write; whether the connection stays open.
fn cached(
    conn: &mut TcpStream,
    request: &Request,
    m: &Metadata,
    body: &[u8],
) -> Result<bool, Error> {
    let body = if request.head_only { &[][..] } else { body };
    let ty = content_type(&request.path);
    conn.write_all(&whole(head(200, ty, m.size, request.keep), body))?;
    Ok(request.keep)
}

/// Parses the request line and the `Connection` header (`keep`: whether the
/// connection may stay open); the error is the status to answer.
fn parse(head: &[u8], keep: bool) -> Result<Request, u16> {
    if head.len() > MAX_HEAD {
        return Err(431);
    }
    let line = head.split(|&b| b == b'\r').next().ok_or(400u16)?;
    let line = core::str::from_utf8(line).map_err(|_| 400u16)?;
    let mut parts = line.split(' ');
    let (method, target, version) = (parts.next(), parts.next(), parts.next());
    let (Some(method), Some(target), Some(version)) = (method, target, version) else {
        return Err(400);
    };
    if !version.starts_with("HTTP/1.") {
        return Err(505);
    }
    let head_only = match method {
        "GET" => false,
        "HEAD" => true,
        _ => return Err(405),
    };
    let raw = target.split(['?', '#']).next().unwrap_or("/");
    let path = percent_decode(raw).ok_or(400u16)?;
    if !path.starts_with('/') {
        return Err(400);
    }
    let asked = connection_header(head);
    let keep = keep
        && match version {
            "HTTP/1.0" => asked.as_deref() == Some("keep-alive"),
            _ => asked.as_deref() != Some("close"),
        };
    Ok(Request {
        head_only,
        path,
        keep,
    })
}

/// The value of the head's `Connection` header, lower-cased.
fn connection_header(head: &[u8]) -> Option<String> {
    let text = core::str::from_utf8(head).ok()?;
    text.split("\r\n").skip(1).find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("connection")
            .then(|| value.trim().to_ascii_lowercase())
    })
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = core::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok().filter(|p| !p.contains('\0'))
}

/// Whether a `..` component would climb above the root.
fn climbs_out(path: &str) -> bool {
    let mut depth = 0i32;
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                depth -= 1;
                if depth < 0 {
                    return true;
                }
            }
            _ => depth += 1,
        }
    }
    false
}

fn status_of(e: &Error) -> u16 {
    match e.code() {
        Code::NotFound | Code::NotDirectory => 404,
        Code::Escape | Code::PermissionDenied => 403,
        // No stream left for the file: the connection closes to make room.
        Code::OverBudget | Code::NoSlots => 503,
        _ => 500,
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Internal Server Error",
    }
}

fn content_type(path: &str) -> &'static str {
    let ext = path.rsplit('.').next().unwrap_or("");
    match ext {
        "html" | "htm" => "text/html; charset=utf-8",
        "txt" | "md" => "text/plain; charset=utf-8",
        "css" => "text/css",
        "js" => "text/javascript",
        "json" => "application/json",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        _ => "application/octet-stream",
    }
}

/// A response's head: the status line and headers, up to the blank line.
fn head(status: u16, ty: &str, len: u64, keep: bool) -> String {
    let connection = if keep { "keep-alive" } else { "close" };
    format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: {ty}\r\nContent-Length: {len}\r\nConnection: {connection}\r\nServer: weft-httpd\r\n\r\n",
        reason(status)
    )
}

/// A response's head and body as one write: one ring write for the
/// monitor to take and one send on the socket.
fn whole(head: String, body: &[u8]) -> Vec<u8> {
    let mut out = head.into_bytes();
    out.extend_from_slice(body);
    out
}

fn respond<S: Write<Error = Error>>(
    conn: &mut S,
    status: u16,
    ty: &str,
    body: &[u8],
    head_only: bool,
    keep: bool,
) -> Result<(), Error> {
    let body: &[u8] = if body.is_empty() && status != 200 {
        reason(status).as_bytes()
    } else {
        body
    };
    let head = head(status, ty, body.len() as u64, keep);
    conn.write_all(&whole(head, if head_only { &[] } else { body }))
}
