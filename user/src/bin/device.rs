//! `device`: the resident agent of a device guest (PROTOCOL.md §15), the
//! first program of the guest a `weft daemon` runs its apps in.
//!
//! It opens one `DEVICE` stream and serves the monitor's requests on it, in
//! order, one reply each: it spawns processes (a bundled program, or an ELF
//! or Wasm image the monitor hands over in chunks) and kills them. It keeps
//! the pids it spawned and, once one of them ends, collects its status and
//! sends `EXITED`: the monitor sends `REAP` whenever a process of the guest
//! ends, and the agent then looks for ended children in one process-table
//! read. Between requests it sleeps on its stream, with no timer: an idle
//! device costs no guest time. (The monitor lists processes and reads their
//! figures itself, from the kernel's status page.)
//!
//! `SHUTDOWN` kills every child it spawned, reports each, answers `DONE` and
//! exits 0, which ends the guest. It exits 1 (with a line on standard error)
//! if its stream cannot be opened or ends, or if the monitor breaks the
//! protocol.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::string::String;
use alloc::vec::Vec;
use core::convert::Infallible;
use core::fmt;
use weft_control::device_proto::{
    ArgList, Exited, MAX_IMAGE, MAX_NAME, MAX_REPLY, Reply, Request, SpawnHead, Target, kind,
    source,
};
use weft_control::frame;
use weft_control::process::{state, tier};
use weft_user::process::{self, Image, Pid};
use weft_user::stream::{Interest, Stream, poll};
use weft_user::{Args, Code, Error, ErrorCode, eprintln};

weft_user::entry!(main);

fn main(_: Args) -> i32 {
    let Err(e) = serve();
    eprintln!("device: {e}");
    1
}

/// Why the agent stops serving.
enum Failure {
    /// Its stream failed or ended.
    Stream(Error),
    /// The monitor sent something §15 does not allow.
    Protocol(String),
    /// A process call the agent relies on failed.
    Kernel(&'static str, ErrorCode),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Self::Stream(e)
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Stream(e) => write!(f, "device stream: {e}"),
            Self::Protocol(what) => write!(f, "the monitor broke the device protocol: {what}"),
            Self::Kernel(call, code) => write!(f, "{call}: {code}"),
        }
    }
}

fn protocol(what: impl fmt::Display) -> Failure {
    Failure::Protocol(alloc::format!("{what}"))
}

/// Whether to go on serving after a request.
#[derive(PartialEq, Eq)]
enum Flow {
    Serve,
    Stop,
}

/// Serves the monitor until `SHUTDOWN`, then exits 0; returns only why it
/// could not.
fn serve() -> Result<Infallible, Failure> {
    let mut reply = Vec::new();
    let (stream, k) = Stream::connect(frame::kind::DEVICE, &[], &mut reply)?;
    if k != kind::ATTACHED || !reply.is_empty() {
        return Err(protocol(format_args!(
            "DEVICE answered with kind {k:#06x} and {} bytes",
            reply.len()
        )));
    }
    let mut agent = Agent {
        stream,
        children: Vec::new(),
        body: Vec::new(),
        chunk: Vec::new(),
    };
    loop {
        poll(&mut [(&mut agent.stream, Interest::Read)], None);
        while agent.stream.ready(Interest::Read) {
            if agent.serve_one()? == Flow::Stop {
                // At once, its stream still open: what it wrote is
                // delivered as the process ends (§8.5), whereas closing the
                // stream first (a `CLOSE`) would stop the monitor's reading.
                weft_user::exit(0);
            }
        }
    }
}

/// The agent's state between requests.
struct Agent {
    stream: Stream,
    /// Pids it spawned whose end it has not reported yet.
    children: Vec<Pid>,
    /// The body of the request being served.
    body: Vec<u8>,
    /// The body of an `IMAGE` frame.
    chunk: Vec<u8>,
}

impl Agent {
    /// Reads one request and answers it.
    fn serve_one(&mut self) -> Result<Flow, Failure> {
        let mut body = core::mem::take(&mut self.body);
        let k = self.stream.recv(&mut body)?;
        let served = self.answer(k, &body);
        self.body = body;
        served
    }

    /// Carries out the request of kind `k` and answers it (`REAP` has no
    /// answer but the `EXITED`s it finds).
    fn answer(&mut self, k: u16, body: &[u8]) -> Result<Flow, Failure> {
        let mut flow = Flow::Serve;
        let reply = match Request::decode(k, body).map_err(protocol)? {
            Request::Spawn { head, args } => self.spawn(head, args)?,
            Request::Image { request, .. } => {
                return Err(protocol(format_args!(
                    "IMAGE of request {request} follows no SPAWN"
                )));
            }
            Request::Kill(Target { request, pid }) => match process::kill(pid) {
                Ok(()) => Reply::Done { request },
                Err(code) => Reply::Failed { request, code },
            },
            Request::Reap => {
                self.reap()?;
                return Ok(flow);
            }
            Request::Shutdown { request } => {
                self.end_children()?;
                flow = Flow::Stop;
                Reply::Done { request }
            }
        };
        self.send(&reply)?;
        Ok(flow)
    }

    /// Receives the image of `head`'s request and starts it.
    fn spawn(&mut self, head: SpawnHead, args: ArgList<'_>) -> Result<Reply, Failure> {
        let len = head.image_len as usize;
        let limit = match head.source {
            source::BUNDLED => MAX_NAME,
            source::BYTES => MAX_IMAGE,
            other => return Err(protocol(format_args!("SPAWN source {other}"))),
        };
        if !tier::is_valid(head.tier) || (head.source == source::BUNDLED && head.tier != 0) {
            return Err(protocol(format_args!(
                "SPAWN tier {} with source {}",
                head.tier, head.source
            )));
        }
        if len == 0 || len > limit {
            return Err(protocol(format_args!(
                "SPAWN image of {len} bytes (1..={limit})"
            )));
        }
        // Without room for the image the chunks are still read, and dropped.
        let mut image = Vec::new();
        let room = image.try_reserve_exact(len).is_ok();
        let mut got = 0;
        while got < len {
            let k = self.stream.recv(&mut self.chunk)?;
            match Request::decode(k, &self.chunk) {
                Ok(Request::Image { request, chunk })
                    if request == head.request && chunk.len() <= len - got =>
                {
                    got += chunk.len();
                    if room {
                        image.extend_from_slice(chunk);
                    }
                }
                _ => {
                    return Err(protocol(format_args!(
                        "kind {k:#06x} where IMAGE of request {} ({} of {len} bytes left) belongs",
                        head.request,
                        len - got
                    )));
                }
            }
        }
        let request = head.request;
        if !room {
            return Ok(Reply::Failed {
                request,
                code: ErrorCode::OutOfMemory,
            });
        }
        let args: Vec<&[u8]> = args.iter().collect();
        let started = match head.source {
            source::BUNDLED => match core::str::from_utf8(&image) {
                Ok(name) => process::spawn(Image::Bundled(name), &args),
                Err(_) => Err(ErrorCode::NotFound),
            },
            _ => process::spawn(Image::Tiered(&image, head.tier), &args),
        };
        Ok(match started {
            Ok(pid) => {
                self.children.push(pid);
                Reply::Spawned(Target { request, pid })
            }
            Err(code) => Reply::Failed { request, code },
        })
    }

    /// Reports every child that ended.
    fn reap(&mut self) -> Result<(), Failure> {
        if self.children.is_empty() {
            return Ok(());
        }
        let table = process::list().map_err(|c| Failure::Kernel("list", c))?;
        for r in table {
            if r.state == state::ENDED && self.children.contains(&r.pid) {
                self.collect(r.pid)?;
            }
        }
        Ok(())
    }

    /// Kills every child (one that already ended is just collected) and
    /// reports each.
    fn end_children(&mut self) -> Result<(), Failure> {
        while let Some(&pid) = self.children.first() {
            // It may have ended by itself: its status is collected all the same.
            let _ = process::kill(pid);
            self.collect(pid)?;
        }
        Ok(())
    }

    /// Collects ended (or ending) child `pid`'s status and sends `EXITED`.
    fn collect(&mut self, pid: Pid) -> Result<(), Failure> {
        let status = process::wait(pid).map_err(|c| Failure::Kernel("wait", c))?;
        self.children.retain(|p| *p != pid);
        self.send(&Reply::Exited(Exited { pid, status }))
    }

    fn send(&mut self, reply: &Reply) -> Result<(), Failure> {
        let mut buf = [0u8; MAX_REPLY];
        let n = reply
            .encode(&mut buf)
            .ok_or_else(|| Error::new(Code::TooLarge, "a reply outgrew its buffer"))?;
        self.stream.send(&buf[..n])?;
        Ok(())
    }
}
