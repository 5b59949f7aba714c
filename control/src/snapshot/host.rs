//! The host section: what the Wasm runtime holds for an app besides its
//! instance (`user/wasm-run`'s `Ctx` and `EventState`), as a sequence of
//! records `kind: u16, length: u32, body`.
//!
//! Records come in ascending kind order ([`record`]); the kinds that hold
//! one value (pid, arguments, environment, memory limit, event buffer) come
//! at most once, the pid always. Within a kind the order is the runtime's:
//! interests in the order they were registered (a batch reports sockets in
//! that order), timers and children's ends in the order they came.
//! Descriptors come by ascending number, each once. A record of a kind this
//! version does not know is refused, so a reader never drops state it was
//! sent.

use super::cursor::Cursor;
use super::out::{Out, measure};
use super::{MAX_HOST_RECORD, SnapshotError};
use crate::app::{interest, moved};
use crate::ipc_proto::{Guid, MAX_NAME};
use core::net::{IpAddr, Ipv6Addr, SocketAddr};

/// Host record kinds, in the order they come.
pub mod record {
    /// The app's process id on the source device: `pid: u32`, not 0.
    pub const PID: u16 = 1;
    /// Its arguments, its name first: a list of byte strings.
    pub const ARGS: u16 = 2;
    /// Its environment, `NAME=VALUE` each: a list of byte strings.
    pub const ENV: u16 = 3;
    /// The cap on its linear memory: `bytes: u64`.
    pub const MEMORY_LIMIT: u16 = 4;
    /// A descriptor that follows the app: `fd: u32` (4 or more), then the
    /// descriptor's kind and what it needs ([`super::descriptor`]).
    pub const DESCRIPTOR: u16 = 5;
    /// Where its events go: `at: u32`, `capacity: u32` (records, not 0).
    pub const EVENT_BUFFER: u16 = 6;
    /// An interest: `fd: u32`, `bits: u32` (`app::interest`, not 0).
    pub const INTEREST: u16 = 7;
    /// A pending timer: `remaining_ns: u64` (0: due), `token: u64`.
    pub const TIMER: u16 = 8;
    /// A child's end not delivered yet: `pid: u32` (not 0), `status: i32`.
    pub const EXIT: u16 = 9;

    /// Whether a section holds at most one record of `kind`.
    pub(super) const fn once(kind: u16) -> bool {
        matches!(kind, PID | ARGS | ENV | MEMORY_LIMIT | EVENT_BUFFER)
    }
}

/// Kinds of descriptor that follow an app.
pub mod descriptor {
    /// A UDP socket bound on a fabric address (§12.4): `ip: [u8; 16]`
    /// (IPv6, or an IPv4 address mapped), `port: u16`, 2 reserved bytes.
    pub const UDP: u16 = 1;
    /// A service the app provides (§13.7): `guid: [u8; 16]` (not nil),
    /// `name_len: u16` (1 to 64), the name in UTF-8.
    pub const IPC_SERVICE: u16 = 2;
    /// An IPC sending descriptor (§13.7): nothing more.
    pub const IPC_SENDER: u16 = 3;
    /// A descriptor that cannot follow the app: it is closed at the
    /// destination, and the app told (a `MOVED` event, §13.4). `what: u16`
    /// (`app::moved`, 1 to 6), 2 reserved bytes.
    pub const CLOSED: u16 = 4;
}

/// The lowest descriptor a record names: 0–3 are the runtime's own
/// (§13.1), there at the destination already.
pub const FIRST_FD: u32 = 4;

crate::wire_layout! {
    /// A host record's header (§19.1).
    #[derive(Clone, Copy, Debug)]
    struct RecordHead: 6 {
        [0] kind: u16,
        [2] len: u32,
    }
}

/// A list of byte strings (arguments, environment entries): a `u32`
/// count, then each as a `u32` length and its bytes.
#[derive(Clone, Copy)]
pub struct ByteStrings<'a>(Strings<'a>);

#[derive(Clone, Copy)]
enum Strings<'a> {
    /// The writer's list.
    Items(&'a [&'a [u8]]),
    /// A checked encoding, its count and its strings.
    Encoded { count: u32, raw: &'a [u8] },
}

/// The next string of a checked encoding.
fn next_string<'a>(raw: &mut &'a [u8]) -> Option<&'a [u8]> {
    let (len, rest) = raw.split_first_chunk::<4>()?;
    let (item, rest) = rest.split_at_checked(u32::from_le_bytes(*len) as usize)?;
    *raw = rest;
    Some(item)
}

impl<'a> ByteStrings<'a> {
    /// The list of `items`.
    pub const fn new(items: &'a [&'a [u8]]) -> Self {
        Self(Strings::Items(items))
    }

    /// How many strings it has.
    pub fn len(&self) -> usize {
        match self.0 {
            Strings::Items(items) => items.len(),
            Strings::Encoded { count, .. } => count as usize,
        }
    }

    /// Whether it has none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The strings, in order.
    pub fn iter(&self) -> impl Iterator<Item = &'a [u8]> + 'a {
        let mut state = self.0;
        core::iter::from_fn(move || match &mut state {
            Strings::Items(items) => {
                let (first, rest) = items.split_first()?;
                *items = rest;
                Some(*first)
            }
            Strings::Encoded { raw, .. } => next_string(raw),
        })
    }

    fn parse(c: &mut Cursor<'a>, what: &'static str) -> Result<Self, SnapshotError> {
        let count = c.u32(what)?;
        let mut whole = *c;
        for _ in 0..count {
            let len = c.u32(what)?;
            c.take(len.into(), what)?;
        }
        let raw = whole.take((whole.remaining() - c.remaining()) as u64, what)?;
        Ok(Self(Strings::Encoded { count, raw }))
    }

    fn put(&self, out: &mut Out<'_>) {
        out(&(self.len() as u32).to_le_bytes());
        for s in self.iter() {
            out(&(s.len() as u32).to_le_bytes());
            out(s);
        }
    }
}

impl PartialEq for ByteStrings<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Eq for ByteStrings<'_> {}

impl core::fmt::Debug for ByteStrings<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// What a descriptor that follows the app is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Descriptor<'a> {
    /// A UDP socket bound on a fabric address.
    Udp { ip: Ipv6Addr, port: u16 },
    /// A service the app provides, by GUID, shown as `name`.
    IpcService { guid: Guid, name: &'a str },
    /// An IPC sending descriptor.
    IpcSender,
    /// A descriptor that cannot follow the app, which was `what`
    /// (`app::moved`): closed at the destination, the app told.
    Closed { what: u16 },
}

impl Descriptor<'_> {
    /// A UDP socket bound on `addr` (an IPv4 address is stored mapped).
    pub fn udp(addr: SocketAddr) -> Self {
        let ip = match addr.ip() {
            IpAddr::V4(v4) => v4.to_ipv6_mapped(),
            IpAddr::V6(v6) => v6,
        };
        Self::Udp {
            ip,
            port: addr.port(),
        }
    }

    /// A UDP socket's address (a mapped IPv4 address as IPv4).
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        match *self {
            Self::Udp { ip, port } => {
                let ip = ip.to_ipv4_mapped().map_or(IpAddr::V6(ip), IpAddr::V4);
                Some(SocketAddr::new(ip, port))
            }
            _ => None,
        }
    }

    fn kind(&self) -> u16 {
        match self {
            Self::Udp { .. } => descriptor::UDP,
            Self::IpcService { .. } => descriptor::IPC_SERVICE,
            Self::IpcSender => descriptor::IPC_SENDER,
            Self::Closed { .. } => descriptor::CLOSED,
        }
    }

    fn put(&self, out: &mut Out<'_>) {
        out(&self.kind().to_le_bytes());
        out(&[0; 2]);
        match *self {
            Self::Udp { ip, port } => {
                out(&ip.octets());
                out(&port.to_le_bytes());
                out(&[0; 2]);
            }
            Self::IpcService { guid, name } => {
                out(&guid.0);
                out(&(name.len() as u16).to_le_bytes());
                out(name.as_bytes());
            }
            Self::IpcSender => {}
            Self::Closed { what } => {
                out(&what.to_le_bytes());
                out(&[0; 2]);
            }
        }
    }
}

/// Checks that two reserved bytes are zero.
fn reserved(c: &mut Cursor<'_>, what: &'static str) -> Result<(), SnapshotError> {
    let at = c.at();
    match c.u16(what)? {
        0 => Ok(()),
        _ => Err(SnapshotError::Reserved { what, at }),
    }
}

/// Reads a descriptor's kind and what it needs.
fn parse_descriptor<'a>(c: &mut Cursor<'a>, at: u64) -> Result<Descriptor<'a>, SnapshotError> {
    let kind = c.u16("descriptor kind")?;
    reserved(c, "descriptor")?;
    Ok(match kind {
        descriptor::UDP => {
            let ip = Ipv6Addr::from(*c.array::<16>("UDP address")?);
            let port = c.u16("UDP port")?;
            reserved(c, "UDP address")?;
            Descriptor::Udp { ip, port }
        }
        descriptor::IPC_SERVICE => {
            let guid = Guid(*c.array::<16>("service GUID")?);
            let len = c.u16("service name")?;
            let name_at = c.at();
            let raw = c.take(len.into(), "service name")?;
            let name = core::str::from_utf8(raw).map_err(|_| SnapshotError::NotUtf8 {
                what: "service name",
                at: name_at,
            })?;
            Descriptor::IpcService { guid, name }
        }
        descriptor::IPC_SENDER => Descriptor::IpcSender,
        descriptor::CLOSED => {
            let what = c.u16("closed descriptor's kind")?;
            reserved(c, "closed descriptor")?;
            Descriptor::Closed { what }
        }
        other => return Err(SnapshotError::UnknownDescriptor { kind: other, at }),
    })
}

/// One record of the host section.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostRecord<'a> {
    /// [`record::PID`].
    Pid(u32),
    /// [`record::ARGS`].
    Args(ByteStrings<'a>),
    /// [`record::ENV`].
    Env(ByteStrings<'a>),
    /// [`record::MEMORY_LIMIT`], in bytes.
    MemoryLimit(u64),
    /// [`record::DESCRIPTOR`].
    Descriptor { fd: u32, kind: Descriptor<'a> },
    /// [`record::EVENT_BUFFER`]: `capacity` records at `at`.
    EventBuffer { at: u32, capacity: u32 },
    /// [`record::INTEREST`].
    Interest { fd: u32, bits: u32 },
    /// [`record::TIMER`]: due in `remaining_ns` (the time left when the
    /// snapshot was taken; the destination counts from when it restores).
    Timer { remaining_ns: u64, token: u64 },
    /// [`record::EXIT`].
    Exit { pid: u32, status: i32 },
}

/// A field's value, out of range, in the record at `at`.
fn out_of_range(what: &'static str, value: u64, at: u64) -> SnapshotError {
    SnapshotError::OutOfRange { what, value, at }
}

/// Checks a descriptor number: [`FIRST_FD`] to `i32::MAX`.
fn check_fd(what: &'static str, fd: u32, at: u64) -> Result<(), SnapshotError> {
    if fd < FIRST_FD || fd > i32::MAX as u32 {
        return Err(out_of_range(what, fd.into(), at));
    }
    Ok(())
}

impl<'a> HostRecord<'a> {
    /// Its kind ([`record`]).
    pub fn kind(&self) -> u16 {
        match self {
            Self::Pid(_) => record::PID,
            Self::Args(_) => record::ARGS,
            Self::Env(_) => record::ENV,
            Self::MemoryLimit(_) => record::MEMORY_LIMIT,
            Self::Descriptor { .. } => record::DESCRIPTOR,
            Self::EventBuffer { .. } => record::EVENT_BUFFER,
            Self::Interest { .. } => record::INTEREST,
            Self::Timer { .. } => record::TIMER,
            Self::Exit { .. } => record::EXIT,
        }
    }

    /// Bytes of the whole record, header included.
    pub fn encoded_len(&self) -> u64 {
        RecordHead::SIZE as u64 + measure(|out| self.put_body(out))
    }

    /// Checks the record's fields and puts out its bytes.
    pub fn encode(&self, out: &mut dyn FnMut(&[u8])) -> Result<(), SnapshotError> {
        self.check(0)?;
        self.put(out);
        Ok(())
    }

    /// Reads and checks the record at the start of `bytes`; it and its
    /// length. (Offsets in errors count from the start of `bytes`.)
    pub fn decode(bytes: &'a [u8]) -> Result<(Self, usize), SnapshotError> {
        let mut c = Cursor::new(bytes, 0);
        let r = next_record(&mut c)?;
        Ok((r, bytes.len() - c.remaining()))
    }

    /// Checks the record's fields (the record is at `at`).
    fn check(&self, at: u64) -> Result<(), SnapshotError> {
        let len = measure(|out| self.put_body(out));
        if len > u64::from(MAX_HOST_RECORD) {
            return Err(out_of_range("host record length", len, at));
        }
        match *self {
            Self::Pid(0) => Err(out_of_range("pid", 0, at)),
            Self::Exit { pid: 0, .. } => Err(out_of_range("exited child's pid", 0, at)),
            Self::EventBuffer { capacity, .. } if capacity == 0 || capacity > i32::MAX as u32 => {
                Err(out_of_range("event buffer capacity", capacity.into(), at))
            }
            Self::Interest { fd, bits } => {
                check_fd("interest's descriptor", fd, at)?;
                if bits == 0 || bits & !interest::ALL != 0 {
                    return Err(out_of_range("interest bits", bits.into(), at));
                }
                Ok(())
            }
            Self::Descriptor { fd, kind } => {
                check_fd("descriptor", fd, at)?;
                match kind {
                    Descriptor::IpcService { guid, .. } if guid.0 == [0; 16] => {
                        Err(SnapshotError::NilGuid { at })
                    }
                    Descriptor::IpcService { name, .. }
                        if name.is_empty() || name.len() > MAX_NAME =>
                    {
                        Err(out_of_range("service name length", name.len() as u64, at))
                    }
                    Descriptor::Closed { what } if !moved::known(what) => {
                        Err(out_of_range("closed descriptor's kind", what.into(), at))
                    }
                    _ => Ok(()),
                }
            }
            _ => Ok(()),
        }
    }

    /// Puts out the record (checked).
    fn put(&self, out: &mut Out<'_>) {
        let head = RecordHead {
            kind: self.kind(),
            len: measure(|o| self.put_body(o)) as u32,
        };
        out(&head.encode());
        self.put_body(out);
    }

    fn put_body(&self, out: &mut Out<'_>) {
        match *self {
            Self::Pid(pid) => out(&pid.to_le_bytes()),
            Self::Args(s) | Self::Env(s) => s.put(out),
            Self::MemoryLimit(bytes) => out(&bytes.to_le_bytes()),
            Self::Descriptor { fd, kind } => {
                out(&fd.to_le_bytes());
                kind.put(out);
            }
            Self::EventBuffer { at, capacity } => {
                out(&at.to_le_bytes());
                out(&capacity.to_le_bytes());
            }
            Self::Interest { fd, bits } => {
                out(&fd.to_le_bytes());
                out(&bits.to_le_bytes());
            }
            Self::Timer {
                remaining_ns,
                token,
            } => {
                out(&remaining_ns.to_le_bytes());
                out(&token.to_le_bytes());
            }
            Self::Exit { pid, status } => {
                out(&pid.to_le_bytes());
                out(&status.to_le_bytes());
            }
        }
    }
}

/// Reads a record's body of `kind` (the record is at `at`).
fn parse_body<'a>(kind: u16, c: &mut Cursor<'a>, at: u64) -> Result<HostRecord<'a>, SnapshotError> {
    Ok(match kind {
        record::PID => HostRecord::Pid(c.u32("pid")?),
        record::ARGS => HostRecord::Args(ByteStrings::parse(c, "argument")?),
        record::ENV => HostRecord::Env(ByteStrings::parse(c, "environment entry")?),
        record::MEMORY_LIMIT => HostRecord::MemoryLimit(c.u64("memory limit")?),
        record::DESCRIPTOR => HostRecord::Descriptor {
            fd: c.u32("descriptor")?,
            kind: parse_descriptor(c, at)?,
        },
        record::EVENT_BUFFER => HostRecord::EventBuffer {
            at: c.u32("event buffer address")?,
            capacity: c.u32("event buffer capacity")?,
        },
        record::INTEREST => HostRecord::Interest {
            fd: c.u32("interest's descriptor")?,
            bits: c.u32("interest bits")?,
        },
        record::TIMER => HostRecord::Timer {
            remaining_ns: c.u64("timer's remaining time")?,
            token: c.u64("timer token")?,
        },
        record::EXIT => HostRecord::Exit {
            pid: c.u32("exited child's pid")?,
            status: c.u32("exit status")? as i32,
        },
        other => return Err(SnapshotError::UnknownHostRecord { kind: other, at }),
    })
}

/// Reads and checks the next record of `c` (not against the ones before).
fn next_record<'a>(c: &mut Cursor<'a>) -> Result<HostRecord<'a>, SnapshotError> {
    let at = c.at();
    let head = RecordHead::decode(c.array("host record header")?);
    if head.len > MAX_HOST_RECORD {
        return Err(out_of_range("host record length", head.len.into(), at));
    }
    let mut body = c.split(head.len.into(), "host record")?;
    let r = parse_body(head.kind, &mut body, at)?;
    body.finish()?;
    r.check(at)?;
    Ok(r)
}

/// The host section's rules across records: kinds in order, the ones that
/// come once not repeated, descriptors ascending, the pid there.
#[derive(Default)]
struct Order {
    last: Option<u16>,
    last_fd: Option<u32>,
}

impl Order {
    /// Admits the record at `at` after those admitted so far.
    fn admit(&mut self, r: &HostRecord<'_>, at: u64) -> Result<(), SnapshotError> {
        let kind = r.kind();
        if let Some(after) = self.last
            && (kind < after || (kind == after && record::once(kind)))
        {
            return Err(SnapshotError::HostRecordOrder { kind, after, at });
        }
        if self.last.is_none() && kind != record::PID {
            // The pid's kind is the lowest: without it first, it is missing.
            return Err(SnapshotError::MissingHostRecord(record::PID));
        }
        if let HostRecord::Descriptor { fd, .. } = *r {
            if self.last_fd.is_some_and(|p| fd <= p) {
                return Err(SnapshotError::NotAscending {
                    what: "descriptor",
                    value: fd.into(),
                    at,
                });
            }
            self.last_fd = Some(fd);
        }
        self.last = Some(kind);
        Ok(())
    }

    /// Checks that the records admitted make a whole section: the first
    /// was the pid (which [`Order::admit`] saw to).
    fn finish(&self) -> Result<(), SnapshotError> {
        match self.last {
            Some(_) => Ok(()),
            None => Err(SnapshotError::MissingHostRecord(record::PID)),
        }
    }
}

/// Checks the writer's host records as the reader would.
pub(super) fn check_records(records: &[HostRecord<'_>], at: u64) -> Result<(), SnapshotError> {
    let mut order = Order::default();
    for r in records {
        r.check(at)?;
        order.admit(r, at)?;
    }
    order.finish()
}

/// Puts out the host section's body (checked).
pub(super) fn encode_records(records: &[HostRecord<'_>], out: &mut Out<'_>) {
    for r in records {
        r.put(out);
    }
}

/// A checked host section.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HostView<'a> {
    records: Cursor<'a>,
}

impl<'a> HostView<'a> {
    /// Checks a host section's body.
    pub(super) fn parse(body: Cursor<'a>) -> Result<Self, SnapshotError> {
        let mut c = body;
        let mut order = Order::default();
        while !c.is_empty() {
            let at = c.at();
            let r = next_record(&mut c)?;
            order.admit(&r, at)?;
        }
        order.finish()?;
        Ok(Self { records: body })
    }

    /// The records, in order.
    pub fn iter(&self) -> impl Iterator<Item = HostRecord<'a>> + 'a {
        let mut c = self.records;
        core::iter::from_fn(move || next_record(&mut c).ok())
    }
}
