//! `http-get IP:PORT PATH`: an HTTP/1.1 GET (with `Host` and
//! `Connection: close`) of `PATH` from the server at `IP:PORT`, which
//! `--connect` must grant. Prints the body (chunked transfer coding decoded)
//! to standard output as it arrives; exits 0 on a 2xx status, else 1 with the status line
//! on standard error.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use embedded_io::{Read, Write};
use weft_user::net::{TcpStream, parse_addr};
use weft_user::{Args, Stream, eprintln};

weft_user::entry!(main);

fn main(args: Args) -> i32 {
    let (Some(target), Some(path)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: http-get IP:PORT PATH");
        return 2;
    };
    match get(target, path) {
        Ok(ok) => i32::from(!ok),
        Err(e) => {
            eprintln!("http-get: {target}{path}: {e}");
            1
        }
    }
}

/// The most header bytes accepted.
const MAX_HEAD: usize = 64 * 1024;

/// Fetches `path` and prints its body; `Ok(true)` on a 2xx status.
fn get(target: &str, path: &str) -> Result<bool, String> {
    let addr = parse_addr(target).map_err(|e| format!("{e}"))?;
    let mut conn = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {target}\r\nConnection: close\r\nUser-Agent: weft-http-get\r\n\r\n"
    );
    conn.write_all(request.as_bytes())
        .map_err(|e| format!("send: {e}"))?;
    let mut buf = vec![0u8; 64 * 1024];
    let mut head = Vec::new();
    let head_end = loop {
        if let Some(at) = find(&head, b"\r\n\r\n") {
            break at;
        }
        if head.len() > MAX_HEAD {
            return Err("response header too long".into());
        }
        match conn.read(&mut buf).map_err(|e| format!("receive: {e}"))? {
            0 => return Err("response ends inside its header".into()),
            n => head.extend_from_slice(&buf[..n]),
        }
    };
    let text = core::str::from_utf8(&head[..head_end]).map_err(|_| "header is not UTF-8")?;
    let mut lines = text.split("\r\n");
    let status_line = String::from(lines.next().unwrap_or(""));
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| format!("bad status line `{status_line}`"))?;
    let mut body = Body::UntilEnd;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("transfer-encoding") && value.eq_ignore_ascii_case("chunked") {
            body = Body::Chunked(Dechunk::default());
        } else if name.eq_ignore_ascii_case("content-length") && matches!(body, Body::UntilEnd) {
            let n = value.parse().map_err(|_| "bad Content-Length")?;
            body = Body::Length(n);
        }
    }
    let mut pending = head.split_off(head_end + 4);
    loop {
        if body.feed(&pending)? {
            break;
        }
        match conn.read(&mut buf).map_err(|e| format!("receive: {e}"))? {
            0 if matches!(body, Body::UntilEnd) => break,
            0 => return Err("the body ended early".into()),
            n => {
                pending.clear();
                pending.extend_from_slice(&buf[..n]);
            }
        }
    }
    let ok = (200..300).contains(&status);
    if !ok {
        eprintln!("http-get: {status_line}");
    }
    Ok(ok)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn print(bytes: &[u8]) -> Result<(), String> {
    if bytes.is_empty() {
        return Ok(());
    }
    Stream::Stdout
        .write_all(bytes)
        .map_err(|e| format!("stdout: {e:?}"))
}

/// How the body is delimited, and how much of it is left.
enum Body {
    /// Until the server closes.
    UntilEnd,
    /// This many bytes are left.
    Length(usize),
    Chunked(Dechunk),
}

impl Body {
    /// Prints the body bytes in `input`; `Ok(true)` once the body is whole.
    fn feed(&mut self, input: &[u8]) -> Result<bool, String> {
        match self {
            Self::UntilEnd => print(input).map(|()| false),
            Self::Length(left) => {
                let n = input.len().min(*left);
                print(&input[..n])?;
                *left -= n;
                Ok(*left == 0)
            }
            Self::Chunked(d) => d.feed(input),
        }
    }
}

/// A streaming decoder of the chunked transfer coding (extensions and
/// trailers are ignored).
#[derive(Default)]
struct Dechunk {
    /// The size line read so far.
    line: Vec<u8>,
    /// Data bytes left in the current chunk.
    left: usize,
    /// The chunk's data was read; its CRLF follows.
    in_data: bool,
}

impl Dechunk {
    fn feed(&mut self, mut input: &[u8]) -> Result<bool, String> {
        while !input.is_empty() {
            if self.in_data && self.left > 0 {
                let n = input.len().min(self.left);
                print(&input[..n])?;
                self.left -= n;
                input = &input[n..];
                continue;
            }
            // A size line, or the CRLF after a chunk's data.
            self.line.push(input[0]);
            input = &input[1..];
            if !self.line.ends_with(b"\r\n") {
                continue;
            }
            let line = core::mem::take(&mut self.line);
            if self.in_data {
                self.in_data = false;
                continue;
            }
            let text = core::str::from_utf8(&line).map_err(|_| "bad chunk size")?;
            let hex = text.split([';', '\r']).next().unwrap_or("").trim();
            let size =
                usize::from_str_radix(hex, 16).map_err(|_| format!("bad chunk size `{hex}`"))?;
            if size == 0 {
                return Ok(true);
            }
            (self.left, self.in_data) = (size, true);
        }
        Ok(false)
    }
}
