//! `http-get IP:PORT PATH`: an HTTP/1.1 GET (with `Host` and
//! `Connection: close`) of `PATH` from the server at `IP:PORT`, which
//! `--connect` must grant. Prints the body (chunked transfer coding decoded)
//! to standard output; exits 0 on a 2xx status, else 1 with the status line
//! on standard error.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::format;
use alloc::string::String;
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

/// Fetches `path` and prints its body; `Ok(true)` on a 2xx status.
fn get(target: &str, path: &str) -> Result<bool, String> {
    let addr = parse_addr(target).map_err(|e| format!("{e}"))?;
    let mut conn = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {target}\r\nConnection: close\r\nUser-Agent: weft-http-get\r\n\r\n"
    );
    conn.write_all(request.as_bytes())
        .map_err(|e| format!("send: {e}"))?;
    let mut response = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        match conn.read(&mut buf).map_err(|e| format!("receive: {e}"))? {
            0 => break,
            n => response.extend_from_slice(&buf[..n]),
        }
    }
    let head_end = find(&response, b"\r\n\r\n").ok_or("response ends inside its header")?;
    let head = core::str::from_utf8(&response[..head_end]).map_err(|_| "header is not UTF-8")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| format!("bad status line `{status_line}`"))?;
    let mut chunked = false;
    let mut length = None;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.eq_ignore_ascii_case("chunked");
        } else if name.eq_ignore_ascii_case("content-length") {
            length = value.parse::<usize>().ok();
        }
    }
    let raw = &response[head_end + 4..];
    let body = if chunked {
        dechunk(raw)?
    } else {
        let n = length.unwrap_or(raw.len());
        raw.get(..n)
            .ok_or("body shorter than its Content-Length")?
            .to_vec()
    };
    Stream::Stdout
        .write_all(&body)
        .map_err(|e| format!("stdout: {e:?}"))?;
    let ok = (200..300).contains(&status);
    if !ok {
        eprintln!("http-get: {status_line}");
    }
    Ok(ok)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Decodes the chunked transfer coding (trailers are ignored).
fn dechunk(mut raw: &[u8]) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    loop {
        let line_end = find(raw, b"\r\n").ok_or("chunk size line unterminated")?;
        let line = core::str::from_utf8(&raw[..line_end]).map_err(|_| "bad chunk size")?;
        let hex = line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(hex, 16).map_err(|_| format!("bad chunk size `{hex}`"))?;
        raw = &raw[line_end + 2..];
        if size == 0 {
            return Ok(body);
        }
        let chunk = raw.get(..size).ok_or("chunk shorter than its size")?;
        body.extend_from_slice(chunk);
        raw = raw.get(size + 2..).ok_or("chunk unterminated")?;
    }
}
