//! The FABRIC protocol (PROTOCOL.md §17): the stream over which a program
//! in a device guest makes fabric calls — list the devices and processes of
//! the fabric, read one process's figures, kill, spawn, and wait for a
//! process's end — answered by the device's `weft daemon`.
//!
//! A program opens the stream with the first frame `frame::kind::FABRIC`
//! (its `version` only) and the monitor answers [`kind::READY`]. Then the
//! program sends requests, each with a `request` id it chooses, and the
//! monitor answers each with exactly one reply carrying the id, in any
//! order (several requests may be in flight). A `SPAWN` frame states the
//! image's length; the image (a program's name, or a Wasm module's bytes)
//! follows at once in [`kind::IMAGE`] frames of the same request, in order,
//! each at most [`MAX_CHUNK`] bytes, nothing else in between.
//!
//! A `WATCH` request turns the stream into a watch as well: once it is
//! answered [`kind::WATCHING`], the monitor sends [`kind::EVENT`] frames of
//! its own ([`event`]) as devices come and go and processes start and end.
//!
//! Strings ("text") are a `u16` length and that many bytes of UTF-8, at
//! most [`MAX_TEXT`]; lists are a `u16` count and that many entries.
//!
//! Invariants: decoding never panics and refuses trailing bytes, like every
//! frame (§9.3); each value has exactly one encoding (flags have no unknown
//! bits, figures absent are zero, lists are validated whole); everything a
//! decoder returns borrows the body. With the `alloc` feature, [`client`]
//! builds the frames of a call and reads its answer into owned values, for
//! the native and Wasm client libraries alike.

use crate::device_proto::ArgList;
use crate::frame::{Decoder, Encoder, HEADER, MAX_BODY, WireError};

#[cfg(feature = "alloc")]
pub mod client;
pub mod event;

pub use event::{Event, EventHead};

/// Frame kinds of the FABRIC protocol (the first frame itself is
/// `frame::kind::FABRIC`).
pub mod kind {
    /// Request: the devices of the fabric.
    pub const DEVICES: u16 = 0x0501;
    /// Request: the processes of every available device, or of one.
    pub const PROCESSES: u16 = 0x0502;
    /// Request: one process's figures.
    pub const STATS: u16 = 0x0503;
    /// Request: end a process (it exits with status 137).
    pub const KILL: u16 = 0x0504;
    /// Request: start a program on a device; its image follows.
    pub const SPAWN: u16 = 0x0505;
    /// Part of a `SPAWN`'s image.
    pub const IMAGE: u16 = 0x0506;
    /// Request: wait for a process to end, for at most some seconds.
    pub const WAIT: u16 = 0x0507;
    /// Request: send events from now on (devices, processes).
    pub const WATCH: u16 = 0x0508;
    /// Request: move a Wasm event app to another device (§19.4).
    pub const MOVE: u16 = 0x0509;

    /// Reply to the first frame: the stream serves fabric calls.
    pub const READY: u16 = 0x8500;
    /// Reply to `DEVICES`.
    pub const DEVICE_LIST: u16 = 0x8501;
    /// Reply to `PROCESSES`.
    pub const PROCESS_LIST: u16 = 0x8502;
    /// Reply to `STATS`.
    pub const PROCESS: u16 = 0x8503;
    /// Reply to `SPAWN`: the new process's pid.
    pub const SPAWNED: u16 = 0x8504;
    /// Reply to `WAIT`: the process ended.
    pub const EXITED: u16 = 0x8505;
    /// Reply to `WAIT`: the time ran out with the process still running.
    pub const RUNNING: u16 = 0x8506;
    /// Reply to `KILL` and `MOVE`.
    pub const DONE: u16 = 0x8507;
    /// Reply to any request the fabric could not carry out: why.
    pub const FAILED: u16 = 0x8508;
    /// Reply to `WATCH`: events follow.
    pub const WATCHING: u16 = 0x8509;
    /// Sent by the monitor on a watching stream, unasked: one event.
    pub const EVENT: u16 = 0x850A;
}

/// The longest string a frame carries (a name, a pid, an address, a
/// state, a message).
pub const MAX_TEXT: usize = 1024;
/// The longest program name a `SPAWN` names.
pub const MAX_NAME: usize = 256;
/// The largest Wasm module a `SPAWN` hands over.
pub const MAX_MODULE: usize = 16 << 20;
/// The most image bytes one `IMAGE` frame carries.
pub const MAX_CHUNK: usize = MAX_BODY - 4;
/// A [`ProcessHead::status`] for a process that has not ended.
pub const NO_STATUS: u32 = u32::MAX;

/// `SPAWN`'s [`SpawnHead::source`] values.
pub mod source {
    /// The image is a program's name on the target device (UTF-8, 1 to
    /// [`super::MAX_NAME`] bytes).
    pub const NAME: u32 = 1;
    /// The image is a Wasm module's bytes (1 to [`super::MAX_MODULE`]).
    pub const MODULE: u32 = 2;
}

/// [`DeviceHead::flags`] bits.
pub mod device_flags {
    /// The device is online now.
    pub const AVAILABLE: u32 = 1;
    /// `processes` and `memory` hold its figures.
    pub const FIGURES: u32 = 2;
    /// Every bit that means something.
    pub const ALL: u32 = AVAILABLE | FIGURES;
}

/// The fixed start of a `SPAWN` body (§17.2): the DEVICE stream's layout,
/// with [`source`]'s values.
pub use crate::device_proto::SpawnHead;

crate::wire_layout! {
    /// The fixed start of a device entry: 16 bytes (§17.3).
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct DeviceHead: 16 {
        /// [`device_flags`].
        [0] pub flags: u32,
        /// Processes running in its guest (0 without `FIGURES`).
        [4] pub processes: u32,
        /// Bytes of memory its processes hold (0 without `FIGURES`).
        [8] pub memory: u64,
    }
}

crate::wire_layout! {
    /// The fixed start of a process entry: 24 bytes (§17.3).
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct ProcessHead: 24 {
        /// CPU time it used, nanoseconds.
        [0] pub cpu_ns: u64,
        /// Bytes of memory it holds.
        [8] pub memory: u64,
        /// Streams it has open.
        [16] pub streams: u32,
        /// Its exit status once ended, else [`NO_STATUS`].
        [20] pub status: u32,
    }
}

impl DeviceHead {
    /// The head of a device that is `available` or not, with its figures
    /// (processes, memory bytes) if known.
    pub fn new(available: bool, figures: Option<(u32, u64)>) -> Self {
        let (processes, memory) = figures.unwrap_or_default();
        let flags = if available {
            device_flags::AVAILABLE
        } else {
            0
        } | if figures.is_some() {
            device_flags::FIGURES
        } else {
            0
        };
        Self {
            flags,
            processes,
            memory,
        }
    }
}

impl ProcessHead {
    /// The head of a process with these figures and, once ended, `status`.
    pub fn new(cpu_ns: u64, memory: u64, streams: u32, status: Option<u32>) -> Self {
        Self {
            cpu_ns,
            memory,
            streams,
            status: status.unwrap_or(NO_STATUS),
        }
    }
}

/// Reads a text field.
fn text<'a>(d: &mut Decoder<'a>, field: &'static str) -> Result<&'a str, WireError> {
    let raw = d.short_bytes()?;
    if raw.len() > MAX_TEXT {
        return Err(WireError::TooLong(raw.len() as u32));
    }
    core::str::from_utf8(raw).map_err(|_| WireError::Field(field))
}

/// Reads a text field that may not be empty.
fn some_text<'a>(d: &mut Decoder<'a>, field: &'static str) -> Result<&'a str, WireError> {
    match text(d, field)? {
        "" => Err(WireError::Field(field)),
        t => Ok(t),
    }
}

/// Appends a text field; `None` if it is longer than [`MAX_TEXT`].
fn put_text(e: &mut Encoder<'_>, s: &str) -> Option<()> {
    (s.len() <= MAX_TEXT).then(|| {
        e.short_bytes(s.as_bytes());
    })
}

/// The next `N` bytes of `d` as an array (a fixed layout's bytes).
fn fixed<'a, const N: usize>(d: &mut Decoder<'a>) -> Result<&'a [u8; N], WireError> {
    d.bytes(N)?.try_into().map_err(|_| WireError::Truncated)
}

/// A frame a program sends after `READY`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request<'a> {
    /// The known devices, or only the available ones.
    Devices { request: u32, available: bool },
    /// The processes of `device`, or of every available device.
    Processes {
        request: u32,
        device: Option<&'a str>,
    },
    /// Process `pid`'s figures (`DEVICE:N`).
    Stats { request: u32, pid: &'a str },
    /// End process `pid`.
    Kill { request: u32, pid: &'a str },
    /// Start a program on `device` (this one if `None`) with `args` (UTF-8,
    /// the program's name first); its image follows in `Image` frames.
    Spawn {
        head: SpawnHead,
        device: Option<&'a str>,
        args: ArgList<'a>,
    },
    /// The next bytes of request `request`'s image.
    Image { request: u32, chunk: &'a [u8] },
    /// Wait at most `limit_secs` for process `pid` to end.
    Wait {
        request: u32,
        limit_secs: u32,
        pid: &'a str,
    },
    /// Send events from now on.
    Watch { request: u32 },
    /// Move process `pid` to `device`, waiting at most `wait_ms` (at most
    /// [`MAX_MOVE_WAIT_MS`]) for its event batch to end.
    Move {
        request: u32,
        wait_ms: u32,
        pid: &'a str,
        device: &'a str,
    },
}

/// The longest a `MOVE` may wait for the app's batch to end, in
/// milliseconds.
pub const MAX_MOVE_WAIT_MS: u32 = crate::move_proto::MAX_WAIT_MS;

impl<'a> Request<'a> {
    /// The request id.
    pub fn id(&self) -> u32 {
        match *self {
            Self::Spawn { head, .. } => head.request,
            Self::Devices { request, .. }
            | Self::Processes { request, .. }
            | Self::Stats { request, .. }
            | Self::Kill { request, .. }
            | Self::Image { request, .. }
            | Self::Wait { request, .. }
            | Self::Move { request, .. }
            | Self::Watch { request } => request,
        }
    }

    /// The frame's kind.
    pub fn kind(&self) -> u16 {
        match self {
            Self::Devices { .. } => kind::DEVICES,
            Self::Processes { .. } => kind::PROCESSES,
            Self::Stats { .. } => kind::STATS,
            Self::Kill { .. } => kind::KILL,
            Self::Spawn { .. } => kind::SPAWN,
            Self::Image { .. } => kind::IMAGE,
            Self::Wait { .. } => kind::WAIT,
            Self::Watch { .. } => kind::WATCH,
            Self::Move { .. } => kind::MOVE,
        }
    }

    /// Encodes the frame into `buf`; its length, or `None` if it does not
    /// fit `buf` or [`MAX_BODY`], or a text is longer than [`MAX_TEXT`].
    pub fn encode(&self, buf: &mut [u8]) -> Option<usize> {
        let mut e = Encoder::new(buf, self.kind());
        match *self {
            Self::Devices { request, available } => {
                e.u32(request).u32(available.into());
            }
            Self::Processes { request, device } => {
                e.u32(request);
                put_text(&mut e, device.unwrap_or_default())?;
            }
            Self::Stats { request, pid } | Self::Kill { request, pid } => {
                e.u32(request);
                put_text(&mut e, pid)?;
            }
            Self::Spawn { head, device, args } => {
                e.bytes(&head.encode());
                put_text(&mut e, device.unwrap_or_default())?;
                args.encode(&mut e);
            }
            Self::Image { request, chunk } => {
                e.u32(request).bytes(chunk);
            }
            Self::Wait {
                request,
                limit_secs,
                pid,
            } => {
                e.u32(request).u32(limit_secs);
                put_text(&mut e, pid)?;
            }
            Self::Watch { request } => {
                e.u32(request);
            }
            Self::Move {
                request,
                wait_ms,
                pid,
                device,
            } => {
                if wait_ms > MAX_MOVE_WAIT_MS {
                    return None;
                }
                e.u32(request).u32(wait_ms);
                put_text(&mut e, pid)?;
                put_text(&mut e, device)?;
            }
        }
        e.finish()
    }

    /// Decodes a frame of `kind` with `body`.
    pub fn decode(kind: u16, body: &'a [u8]) -> Result<Self, WireError> {
        let mut d = Decoder::new(body);
        let device =
            |d: &mut Decoder<'a>| text(d, "device").map(|t| Some(t).filter(|t| !t.is_empty()));
        let r = match kind {
            kind::DEVICES => Self::Devices {
                request: d.u32()?,
                available: match d.u32()? {
                    0 => false,
                    1 => true,
                    _ => return Err(WireError::Field("available")),
                },
            },
            kind::PROCESSES => Self::Processes {
                request: d.u32()?,
                device: device(&mut d)?,
            },
            kind::STATS => Self::Stats {
                request: d.u32()?,
                pid: some_text(&mut d, "pid")?,
            },
            kind::KILL => Self::Kill {
                request: d.u32()?,
                pid: some_text(&mut d, "pid")?,
            },
            kind::SPAWN => {
                let head = SpawnHead::decode(fixed(&mut d)?);
                let limit = match head.source {
                    source::NAME => MAX_NAME,
                    source::MODULE => MAX_MODULE,
                    _ => return Err(WireError::Field("source")),
                };
                if !(1..=limit).contains(&(head.image_len as usize)) {
                    return Err(WireError::Field("image_len"));
                }
                let tier_fits = match head.source {
                    source::MODULE => crate::process::tier::is_valid(head.tier),
                    _ => head.tier == crate::process::tier::DEFAULT,
                };
                if !tier_fits {
                    return Err(WireError::Field("tier"));
                }
                let device = device(&mut d)?;
                let args = ArgList::decode(&mut d)?;
                if args.iter().any(|a| core::str::from_utf8(a).is_err()) {
                    return Err(WireError::Field("args"));
                }
                Self::Spawn { head, device, args }
            }
            kind::IMAGE => {
                let request = d.u32()?;
                let chunk = d.rest();
                if chunk.is_empty() {
                    return Err(WireError::Field("image chunk"));
                }
                Self::Image { request, chunk }
            }
            kind::WAIT => Self::Wait {
                request: d.u32()?,
                limit_secs: d.u32()?,
                pid: some_text(&mut d, "pid")?,
            },
            kind::WATCH => Self::Watch { request: d.u32()? },
            kind::MOVE => {
                let request = d.u32()?;
                let wait_ms = d.u32()?;
                if wait_ms > MAX_MOVE_WAIT_MS {
                    return Err(WireError::Field("wait_ms"));
                }
                Self::Move {
                    request,
                    wait_ms,
                    pid: some_text(&mut d, "pid")?,
                    device: some_text(&mut d, "device")?,
                }
            }
            other => return Err(WireError::Kind(other)),
        };
        d.finish()?;
        Ok(r)
    }
}

/// Checks that `frames` are exactly one call's request frames: one request
/// other than `IMAGE`, and after a `SPAWN` exactly its image in `IMAGE`
/// frames of its request (how a Wasm app hands a call to the runtime,
/// §13.3).
pub fn check_call(frames: &[u8]) -> Result<(), WireError> {
    let (header, body) = crate::frame::split(frames)?;
    let mut rest = &frames[HEADER + body.len()..];
    let (request, mut image_left) = match Request::decode(header.kind, body)? {
        Request::Image { .. } => return Err(WireError::Kind(kind::IMAGE)),
        Request::Spawn { head, .. } => (head.request, head.image_len as usize),
        _ => (0, 0),
    };
    while image_left > 0 {
        let (header, body) = crate::frame::split(rest)?;
        match Request::decode(header.kind, body)? {
            Request::Image { request: r, chunk } if r == request && chunk.len() <= image_left => {
                image_left -= chunk.len();
            }
            _ => return Err(WireError::Field("image")),
        }
        rest = &rest[HEADER + body.len()..];
    }
    if rest.is_empty() {
        Ok(())
    } else {
        Err(WireError::Trailing)
    }
}

/// A validated list of text entries: `count: u16`, then `count` texts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TextList<'a> {
    count: u16,
    raw: &'a [u8],
}

impl<'a> TextList<'a> {
    fn decode(d: &mut Decoder<'a>, field: &'static str) -> Result<Self, WireError> {
        let count = d.u16()?;
        let start = d.clone().rest();
        for _ in 0..count {
            text(d, field)?;
        }
        let used = start.len() - d.clone().rest().len();
        Ok(Self {
            count,
            raw: &start[..used],
        })
    }

    /// How many texts.
    pub fn len(&self) -> usize {
        self.count.into()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The texts in order.
    pub fn iter(&self) -> impl Iterator<Item = &'a str> + use<'a> {
        let mut d = Decoder::new(self.raw);
        // Validated whole when the list was made: every entry is there.
        (0..self.count).map_while(move |_| text(&mut d, "text").ok())
    }
}

/// One device of a `DEVICE_LIST` reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Device<'a> {
    pub head: DeviceHead,
    pub name: &'a str,
    /// Hex of the first 8 bytes of SHA-256 of its public key.
    pub id: &'a str,
    /// Where its daemon listens (`ADDR:PORT`).
    pub addresses: TextList<'a>,
}

impl<'a> Device<'a> {
    fn decode(d: &mut Decoder<'a>) -> Result<Self, WireError> {
        let head = DeviceHead::decode(fixed(d)?);
        if head.flags & !device_flags::ALL != 0
            || (head.flags & device_flags::FIGURES == 0 && (head.processes, head.memory) != (0, 0))
        {
            return Err(WireError::Field("device flags"));
        }
        Ok(Self {
            head,
            name: some_text(d, "device name")?,
            id: text(d, "device id")?,
            addresses: TextList::decode(d, "address")?,
        })
    }
}

/// One process of a `PROCESS_LIST` or `PROCESS` reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Process<'a> {
    pub head: ProcessHead,
    /// `DEVICE:N`.
    pub pid: &'a str,
    pub device: &'a str,
    pub name: &'a str,
    /// `running`, `waiting` or `ended`.
    pub state: &'a str,
}

impl<'a> Process<'a> {
    fn decode(d: &mut Decoder<'a>) -> Result<Self, WireError> {
        Ok(Self {
            head: ProcessHead::decode(fixed(d)?),
            pid: some_text(d, "pid")?,
            device: text(d, "process device")?,
            name: text(d, "process name")?,
            state: text(d, "process state")?,
        })
    }

    fn encode_into(&self, e: &mut Encoder<'_>) -> Option<()> {
        e.bytes(&self.head.encode());
        for t in [self.pid, self.device, self.name, self.state] {
            put_text(e, t)?;
        }
        Some(())
    }
}

/// A validated list of entries of type `T` ([`Device`] or [`Process`]):
/// `count: u16`, then `count` entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct List<'a, T> {
    count: u16,
    raw: &'a [u8],
    entry: core::marker::PhantomData<T>,
}

/// An entry of a [`List`]: [`Device`] or [`Process`].
pub trait Entry<'a>: entry::Codec<'a> {}

mod entry {
    use crate::frame::{Decoder, Encoder, WireError};

    /// What a list needs of its entries (private: only [`super::Device`]
    /// and [`super::Process`] are entries).
    pub trait Codec<'a>: Sized {
        fn decode(d: &mut Decoder<'a>) -> Result<Self, WireError>;
    }

    /// Writes an entry.
    pub trait Put {
        fn put(&self, e: &mut Encoder<'_>) -> Option<()>;
    }
}

use entry::{Codec, Put};

impl<'a> Entry<'a> for Device<'a> {}
impl<'a> Entry<'a> for Process<'a> {}

impl<'a> Codec<'a> for Device<'a> {
    fn decode(d: &mut Decoder<'a>) -> Result<Self, WireError> {
        Device::decode(d)
    }
}

impl<'a> Codec<'a> for Process<'a> {
    fn decode(d: &mut Decoder<'a>) -> Result<Self, WireError> {
        Process::decode(d)
    }
}

impl Put for DeviceEntry<'_> {
    fn put(&self, e: &mut Encoder<'_>) -> Option<()> {
        e.bytes(&self.head.encode());
        put_text(e, self.name)?;
        put_text(e, self.id)?;
        let count = u16::try_from(self.addresses.len()).ok()?;
        e.u16(count);
        for a in self.addresses {
            put_text(e, a)?;
        }
        Some(())
    }
}

impl Put for Process<'_> {
    fn put(&self, e: &mut Encoder<'_>) -> Option<()> {
        self.encode_into(e)
    }
}

/// A device as a list is built from (the addresses as plain strings).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceEntry<'a> {
    pub head: DeviceHead,
    pub name: &'a str,
    pub id: &'a str,
    pub addresses: &'a [&'a str],
}

/// Writes `entries` into `buf` as a list's entries: their count and bytes,
/// or `None` if they do not fit or are more than 65 535.
fn put_list<'b, E: Put>(entries: &[E], buf: &'b mut [u8]) -> Option<(u16, &'b [u8])> {
    let count = u16::try_from(entries.len()).ok()?;
    let mut e = Encoder::new(&mut *buf, 0);
    for entry in entries {
        entry.put(&mut e)?;
    }
    let n = e.finish()?;
    let buf: &'b [u8] = buf;
    Some((count, &buf[HEADER..n]))
}

impl<'b> List<'b, Device<'b>> {
    /// The list of `entries`, encoded into `buf`; `None` if they do not fit
    /// it or one frame, or a text is longer than [`MAX_TEXT`].
    pub fn encode(entries: &[DeviceEntry<'_>], buf: &'b mut [u8]) -> Option<Self> {
        let (count, raw) = put_list(entries, buf)?;
        Some(Self::new(count, raw))
    }
}

impl<'b> List<'b, Process<'b>> {
    /// The list of `entries`, encoded into `buf`; `None` if they do not fit
    /// it or one frame, or a text is longer than [`MAX_TEXT`].
    pub fn encode(entries: &[Process<'_>], buf: &'b mut [u8]) -> Option<Self> {
        let (count, raw) = put_list(entries, buf)?;
        Some(Self::new(count, raw))
    }
}

impl<'a, T> List<'a, T> {
    fn new(count: u16, raw: &'a [u8]) -> Self {
        Self {
            count,
            raw,
            entry: core::marker::PhantomData,
        }
    }
}

impl<'a, T: Entry<'a>> List<'a, T> {
    /// The entries in order.
    pub fn iter(&self) -> impl Iterator<Item = T> + use<'a, T> {
        let mut d = Decoder::new(self.raw);
        // Validated whole when the list was made: every entry is there.
        (0..self.count).map_while(move |_| T::decode(&mut d).ok())
    }

    /// How many entries.
    pub fn len(&self) -> usize {
        self.count.into()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    fn decode(d: &mut Decoder<'a>) -> Result<Self, WireError> {
        let count = d.u16()?;
        let start = d.clone().rest();
        for _ in 0..count {
            T::decode(d)?;
        }
        let used = start.len() - d.clone().rest().len();
        Ok(Self::new(count, &start[..used]))
    }
}

/// A frame the monitor sends after `READY`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reply<'a> {
    /// The devices `DEVICES` asked for.
    Devices {
        request: u32,
        devices: List<'a, Device<'a>>,
    },
    /// The processes `PROCESSES` asked for.
    Processes {
        request: u32,
        processes: List<'a, Process<'a>>,
    },
    /// The process `STATS` asked for.
    Process { request: u32, process: Process<'a> },
    /// `SPAWN` started process `pid`.
    Spawned { request: u32, pid: &'a str },
    /// `WAIT`'s process ended with `status`.
    Exited {
        request: u32,
        status: u32,
        pid: &'a str,
    },
    /// `WAIT`'s time ran out with process `pid` still running.
    Running { request: u32, pid: &'a str },
    /// `KILL` is done.
    Done { request: u32 },
    /// The request failed: `message` says why.
    Failed { request: u32, message: &'a str },
    /// `WATCH` is in place: events follow.
    Watching { request: u32 },
}

impl<'a> Reply<'a> {
    /// The request the reply answers.
    pub fn id(&self) -> u32 {
        match *self {
            Self::Devices { request, .. }
            | Self::Processes { request, .. }
            | Self::Process { request, .. }
            | Self::Spawned { request, .. }
            | Self::Exited { request, .. }
            | Self::Running { request, .. }
            | Self::Done { request }
            | Self::Watching { request }
            | Self::Failed { request, .. } => request,
        }
    }

    /// The frame's kind.
    pub fn kind(&self) -> u16 {
        match self {
            Self::Devices { .. } => kind::DEVICE_LIST,
            Self::Processes { .. } => kind::PROCESS_LIST,
            Self::Process { .. } => kind::PROCESS,
            Self::Spawned { .. } => kind::SPAWNED,
            Self::Exited { .. } => kind::EXITED,
            Self::Running { .. } => kind::RUNNING,
            Self::Done { .. } => kind::DONE,
            Self::Failed { .. } => kind::FAILED,
            Self::Watching { .. } => kind::WATCHING,
        }
    }

    /// Encodes the frame into `buf`; its length, or `None` if it does not
    /// fit `buf` or [`MAX_BODY`], or a text is longer than [`MAX_TEXT`].
    pub fn encode(&self, buf: &mut [u8]) -> Option<usize> {
        let mut e = Encoder::new(buf, self.kind());
        e.u32(self.id());
        match *self {
            Self::Devices { devices, .. } => {
                e.u16(devices.count).bytes(devices.raw);
            }
            Self::Processes { processes, .. } => {
                e.u16(processes.count).bytes(processes.raw);
            }
            Self::Process { process, .. } => process.encode_into(&mut e)?,
            Self::Spawned { pid, .. } | Self::Running { pid, .. } => put_text(&mut e, pid)?,
            Self::Exited { status, pid, .. } => {
                e.u32(status);
                put_text(&mut e, pid)?;
            }
            Self::Done { .. } | Self::Watching { .. } => {}
            Self::Failed { message, .. } => put_text(&mut e, message)?,
        }
        e.finish()
    }

    /// Decodes a frame of `kind` with `body`.
    pub fn decode(kind: u16, body: &'a [u8]) -> Result<Self, WireError> {
        let mut d = Decoder::new(body);
        let request = d.u32();
        let r = match kind {
            kind::DEVICE_LIST => Self::Devices {
                request: request?,
                devices: List::decode(&mut d)?,
            },
            kind::PROCESS_LIST => Self::Processes {
                request: request?,
                processes: List::decode(&mut d)?,
            },
            kind::PROCESS => Self::Process {
                request: request?,
                process: Process::decode(&mut d)?,
            },
            kind::SPAWNED => Self::Spawned {
                request: request?,
                pid: some_text(&mut d, "pid")?,
            },
            kind::EXITED => Self::Exited {
                request: request?,
                status: d.u32()?,
                pid: some_text(&mut d, "pid")?,
            },
            kind::RUNNING => Self::Running {
                request: request?,
                pid: some_text(&mut d, "pid")?,
            },
            kind::DONE => Self::Done { request: request? },
            kind::WATCHING => Self::Watching { request: request? },
            kind::FAILED => Self::Failed {
                request: request?,
                message: text(&mut d, "message")?,
            },
            other => return Err(WireError::Kind(other)),
        };
        d.finish()?;
        Ok(r)
    }
}

#[cfg(test)]
mod tests;
