//! One open stream as its handler task sees it (PROTOCOL.md §9): the two
//! ring ends as tokio reader and writer, whole frames in and out, the status
//! word, and how a failure becomes an error frame and a status code.

use super::RegionIrq;
use super::bells::SlotWake;
use super::region::Shared;
use std::io;
use std::sync::atomic::Ordering;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use weft_control::frame::{Code, ErrorBody, HEADER, Header, MAX_MESSAGE, WireError};
use weft_control::streams::{RING_CAPACITY, RING_HEADER, SlotRings};
use weft_data_pipe::{
    AsyncReader, AsyncWriter, Consumer, Error as RingError, Memory, Producer, RawRegion,
};

/// How long a relay task keeps polling a ring (yielding to the other tasks)
/// after its last progress before it announces sleep. While it polls, the
/// guest rings no doorbell for it: a doorbell is a VM exit, 10–40 µs of the
/// guest's time here, and waking the relay's thread costs as much again.
/// Measured reading a 256 MiB file: without polling, ~24 doorbells per MiB.
pub const RELAY_SPIN: std::time::Duration = std::time::Duration::from_micros(50);
/// How long a relay task keeps polling the ring the guest writes after it
/// wrote the program a frame the program is likely to answer soon (an IPC
/// request, the answer to its send): the answer then needs no doorbell and
/// wakes no thread. It covers a program parked in the monitor resuming
/// and answering (measured: ~40 µs from the raise to its reply on an
/// idle Xeon host); with 50 µs a cross-device IPC round trip took ~455 µs,
/// with 100 µs ~350 µs there. On a 2-CPU AMD host with two daemons the
/// answer comes later: 100 µs gave 434–448 µs, 300 µs 380–449 µs, 600 µs
/// 410–442 µs.
pub const CUE_SPIN: std::time::Duration = std::time::Duration::from_micros(300);

/// Reads the ring the guest writes.
pub type Reader = AsyncReader<RawRegion, RegionIrq>;
/// Writes the ring the guest reads.
pub type Writer = AsyncWriter<RawRegion, RegionIrq>;

/// Why a stream ends: the code its status word gets and what to tell.
#[derive(Debug)]
pub struct Failure {
    pub code: Code,
    pub message: String,
}

impl Failure {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// A frame that broke the protocol.
    pub fn protocol(e: impl std::fmt::Display) -> Self {
        Self::new(Code::Protocol, e.to_string())
    }

    /// A host I/O error, with what was being done.
    pub fn io(what: &str, e: &io::Error) -> Self {
        Self::new(code_of(e), format!("{what}: {e}"))
    }

    /// Reading the `to_monitor` ring failed: the guest corrupted it
    /// (§7.7), which breaks the protocol.
    pub fn to_monitor(e: &io::Error) -> Self {
        Self::protocol(format!("to_monitor ring: {e}"))
    }

    /// Writing the `to_guest` ring failed: the guest corrupted it (an index
    /// out of range, a close flag other than 0 or 1: `Protocol`, §7.7), or
    /// it closed its reading end (`Closed`).
    pub fn to_guest(e: &io::Error) -> Self {
        match ring_error(e) {
            Some(RingError::Corrupt) => Self::protocol(format!("to_guest ring: {e}")),
            _ => Self::new(Code::Closed, format!("guest stopped reading: {e}")),
        }
    }

    /// Whether the guest broke the protocol.
    pub fn is_protocol(&self) -> bool {
        self.code == Code::Protocol
    }
}

/// The ring's own error inside an I/O error from a [`Reader`] or a
/// [`Writer`]; `None` for a host error.
fn ring_error(e: &io::Error) -> Option<RingError> {
    e.get_ref()?.downcast_ref::<RingError>().copied()
}

/// Tells `weft`'s standard error that the guest broke the protocol of the
/// stream in `slot` (§9.3); other failures are the guest's to report.
pub fn report(slot: u64, f: &Failure) {
    if f.is_protocol() {
        super::host_output::stderr().notice(&format!(
            "weft: stream {slot} closed: protocol violation: {}\n",
            f.message
        ));
    }
}

/// The stream code for a host I/O error.
pub fn code_of(e: &io::Error) -> Code {
    use io::ErrorKind as K;
    match e.raw_os_error() {
        Some(libc::ELOOP) => return Code::Loop,
        Some(libc::ENAMETOOLONG) => return Code::NameTooLong,
        Some(libc::EPERM) => return Code::NotPermitted,
        _ => {}
    }
    match e.kind() {
        K::NotFound => Code::NotFound,
        K::PermissionDenied => Code::PermissionDenied,
        K::AlreadyExists => Code::Exists,
        K::NotADirectory => Code::NotDirectory,
        K::IsADirectory => Code::IsDirectory,
        K::DirectoryNotEmpty => Code::NotEmpty,
        K::ReadOnlyFilesystem => Code::ReadOnly,
        K::ConnectionRefused => Code::ConnectionRefused,
        K::ConnectionReset | K::ConnectionAborted => Code::ConnectionReset,
        K::HostUnreachable | K::NetworkUnreachable | K::NetworkDown => Code::Unreachable,
        K::AddrInUse => Code::AddressInUse,
        K::AddrNotAvailable => Code::NotAllowed,
        K::TimedOut => Code::TimedOut,
        K::InvalidInput | K::InvalidFilename => Code::Invalid,
        K::BrokenPipe | K::UnexpectedEof => Code::Closed,
        K::FileTooLarge => Code::TooLarge,
        _ => Code::Io,
    }
}

/// A slot's status word (§8.3): 0 while the stream is healthy, else the
/// [`Code`] it ended with. Written before the rings are closed, so a guest
/// that sees end-of-stream and then reads it finds the reason.
#[derive(Clone, Copy, Debug)]
pub struct Status {
    region: RawRegion,
    offset: usize,
}

impl Status {
    /// Slot `rings`' status word.
    pub fn of(region: RawRegion, rings: SlotRings) -> Self {
        Self {
            region,
            offset: rings.status as usize,
        }
    }

    pub fn set(&self, code: Code) {
        self.region
            .store_u32(self.offset, code as u32, Ordering::Release);
    }

    pub fn get(&self) -> u32 {
        self.region.load_u32(self.offset, Ordering::Acquire)
    }
}

/// Zeroes a slot's ring headers and status word (§8.1) before it is handed
/// out: whatever the guest left there is gone.
pub fn reset_slot(region: &RawRegion, rings: SlotRings) {
    for base in [rings.to_monitor, rings.to_guest] {
        for off in (0..RING_HEADER).step_by(8) {
            region.store_u64((base + off) as usize, 0, Ordering::Relaxed);
        }
    }
    region.store_u32(rings.status as usize, 0, Ordering::Release);
}

/// An open stream: its slot, reader, writer and status word.
pub struct StreamIo {
    pub slot: u64,
    pub rx: Reader,
    pub tx: Writer,
    pub status: Status,
    /// The pipe region the rings are in (for zero-copy transfers).
    pub region: RawRegion,
}

impl StreamIo {
    /// Attaches to `slot`'s rings, sleeping on `wake`. Must run inside the
    /// relay's runtime.
    pub fn attach(shared: &Shared, slot: u64, wake: &SlotWake) -> io::Result<Self> {
        let rings = weft_control::streams::rings(slot).ok_or(io::ErrorKind::InvalidInput)?;
        let layout = |_| io::Error::from(io::ErrorKind::InvalidInput);
        let cap = RING_CAPACITY as usize;
        let rx = Consumer::new(
            shared.region,
            rings.to_monitor as usize,
            cap,
            shared.irq.clone(),
        )
        .map_err(layout)?;
        let tx = Producer::new(
            shared.region,
            rings.to_guest as usize,
            cap,
            shared.irq.clone(),
        )
        .map_err(layout)?;
        Ok(Self {
            slot,
            rx: AsyncReader::new(rx, wake.data.try_clone()?)?.spin_for(RELAY_SPIN),
            tx: AsyncWriter::new(tx, wake.space.try_clone()?)?.spin_for(RELAY_SPIN),
            status: Status::of(shared.region, rings),
            region: shared.region,
        })
    }

    /// Reads one whole frame into `body`: `None` at a clean end of stream
    /// (the guest closed between frames).
    pub async fn read_frame(&mut self, body: &mut Vec<u8>) -> Result<Option<Header>, Failure> {
        read_frame(&mut self.rx, body).await
    }

    /// Writes one whole frame.
    pub async fn write_frame(&mut self, frame: &[u8]) -> Result<(), Failure> {
        write_frame(&mut self.tx, frame).await
    }

    /// Sends an error frame naming `code` and `message`.
    pub async fn write_error(&mut self, code: Code, message: &str) -> Result<(), Failure> {
        let mut buf = [0u8; HEADER + 4 + MAX_MESSAGE];
        let n = ErrorBody { code, message }.encode(&mut buf).unwrap_or(0);
        self.write_frame(&buf[..n]).await
    }

    /// Ends the stream after `f`: an error frame (one attempt, whatever the
    /// code: it fails at once if the guest closed or corrupted its reading
    /// end), the status word, both rings closed; a protocol violation is
    /// [`report`]ed.
    pub async fn fail(mut self, f: Failure) {
        report(self.slot, &f);
        self.status.set(f.code);
        // One attempt: a guest that does not read must not hold the task.
        let _ = tokio::time::timeout(
            std::time::Duration::ZERO,
            self.write_error(f.code, &f.message),
        )
        .await;
        let _ = self.tx.shutdown().await;
    }
}

/// Reads one whole frame from `rx` into `body` (see [`StreamIo::read_frame`]).
pub async fn read_frame(rx: &mut Reader, body: &mut Vec<u8>) -> Result<Option<Header>, Failure> {
    let mut raw = [0u8; HEADER];
    let mut got = 0;
    while got < HEADER {
        match rx.read(&mut raw[got..]).await {
            Ok(0) if got == 0 => return Ok(None),
            Ok(0) => return Err(Failure::protocol("stream ended inside a frame header")),
            Ok(n) => got += n,
            Err(e) => return Err(Failure::to_monitor(&e)),
        }
    }
    let header = Header::decode(&raw).map_err(Failure::protocol)?;
    body.resize(header.len as usize, 0);
    match rx.read_exact(body).await {
        Ok(_) => Ok(Some(header)),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Err(Failure::protocol(
            WireError::Truncated.to_string() + " (stream ended)",
        )),
        Err(e) => Err(Failure::to_monitor(&e)),
    }
}

/// Writes one whole frame to `tx`.
pub async fn write_frame(tx: &mut Writer, frame: &[u8]) -> Result<(), Failure> {
    tx.write_all(frame).await.map_err(|e| Failure::to_guest(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_corrupt_ring_is_a_protocol_violation_and_a_closed_one_is_not() {
        let corrupt = io::Error::from(RingError::Corrupt);
        let f = Failure::to_guest(&corrupt);
        assert_eq!(f.code, Code::Protocol);
        assert_eq!(f.message, "to_guest ring: ring peer violated the protocol");
        let f = Failure::to_monitor(&corrupt);
        assert_eq!(f.code, Code::Protocol);
        assert_eq!(
            f.message,
            "to_monitor ring: ring peer violated the protocol"
        );
        for gone in [
            io::Error::from(RingError::BrokenPipe),
            io::Error::from(RingError::Closed),
            io::Error::from(io::ErrorKind::BrokenPipe),
        ] {
            let f = Failure::to_guest(&gone);
            assert_eq!(f.code, Code::Closed, "{gone}");
            assert!(!f.is_protocol());
        }
    }
}
