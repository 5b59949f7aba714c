//! `httpd PORT`: serves the files under the file-system root over HTTP/1.1,
//! one connection at a time: `GET` and `HEAD`, 404 for a missing file, 403 for
//! a path that climbs out of the root (refused here and, independently, by
//! the monitor), a directory's `index.html` or else a plain listing of it. Each response carries
//! `Content-Length` and `Connection: close`.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use embedded_io::{Read, Write};
use weft_user::fs::{self, File, FileKind};
use weft_user::net::TcpListener;
use weft_user::{Args, Code, Error, eprintln};

weft_user::entry!(main);

/// The longest request head read.
const MAX_HEAD: usize = 8192;

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
    loop {
        match listener.accept() {
            Ok((mut conn, _peer)) => {
                if let Err(e) = serve(&mut conn) {
                    eprintln!("httpd: {e}");
                }
            }
            Err(e) => {
                eprintln!("httpd: accept: {e}");
                return 1;
            }
        }
    }
}

/// A parsed request line.
struct Request {
    head_only: bool,
    path: String,
}

fn serve<S: Read<Error = Error> + Write<Error = Error>>(conn: &mut S) -> Result<(), Error> {
    let Some(head) = read_head(conn)? else {
        return Ok(());
    };
    let request = match parse(&head) {
        Ok(r) => r,
        Err(status) => return respond(conn, status, "text/plain", b"", false),
    };
    if climbs_out(&request.path) {
        return respond(conn, 403, "text/plain", b"forbidden\n", request.head_only);
    }
    match fs::metadata(&request.path) {
        Ok(m) if m.kind == FileKind::Dir => {
            let index = format!("{}/index.html", request.path.trim_end_matches('/'));
            if let Ok(i) = fs::metadata(&index)
                && i.kind == FileKind::File
            {
                let request = Request {
                    head_only: request.head_only,
                    path: index,
                };
                return send_file(conn, &request, i.size);
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
            respond(conn, 200, "text/plain", body.as_bytes(), request.head_only)
        }
        Ok(m) => send_file(conn, &request, m.size),
        Err(e) => {
            let status = status_of(&e);
            respond(
                conn,
                status,
                "text/plain",
                reason(status).as_bytes(),
                request.head_only,
            )
        }
    }
}

/// Streams a file after its header.
fn send_file<S: Write<Error = Error>>(
    conn: &mut S,
    request: &Request,
    len: u64,
) -> Result<(), Error> {
    let mut file = match File::open(&request.path) {
        Ok(f) => f,
        Err(e) => {
            let status = status_of(&e);
            return respond(
                conn,
                status,
                "text/plain",
                reason(status).as_bytes(),
                request.head_only,
            );
        }
    };
    header(conn, 200, content_type(&request.path), len)?;
    if request.head_only {
        return Ok(());
    }
    let mut buf = alloc::vec![0u8; 32 * 1024];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        conn.write_all(&buf[..n])?;
    }
}

/// Reads up to the blank line ending the request head; `None` if the client
/// closed first.
fn read_head<S: Read<Error = Error>>(conn: &mut S) -> Result<Option<Vec<u8>>, Error> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        if head.len() > MAX_HEAD {
            return Ok(Some(head));
        }
        let n = conn.read(&mut buf)?;
        if n == 0 {
            return Ok(None);
        }
        head.extend_from_slice(&buf[..n]);
    }
    Ok(Some(head))
}

/// Parses the request line; the error is the status to answer.
fn parse(head: &[u8]) -> Result<Request, u16> {
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
    Ok(Request { head_only, path })
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

fn header<S: Write<Error = Error>>(
    conn: &mut S,
    status: u16,
    ty: &str,
    len: u64,
) -> Result<(), Error> {
    let head = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: {ty}\r\nContent-Length: {len}\r\nConnection: close\r\nServer: weft-httpd\r\n\r\n",
        reason(status)
    );
    conn.write_all(head.as_bytes())
}

fn respond<S: Write<Error = Error>>(
    conn: &mut S,
    status: u16,
    ty: &str,
    body: &[u8],
    head_only: bool,
) -> Result<(), Error> {
    let body: &[u8] = if body.is_empty() && status != 200 {
        reason(status).as_bytes()
    } else {
        body
    };
    header(conn, status, ty, body.len() as u64)?;
    if !head_only {
        conn.write_all(body)?;
    }
    Ok(())
}
