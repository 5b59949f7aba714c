//! Processes (PROTOCOL.md §14): start programs in address spaces of their
//! own, wait for them, end them, and read what they use.
//!
//! ```ignore
//! use weft_user::process::{self, Image};
//! let pid = process::spawn(Image::Bundled("hello"), &["hello", "you"])?;
//! let status = process::wait(pid)?;
//! ```
//!
//! A spawned program gets its own streams: its standard output and error go
//! to `weft`'s, its standard input is at end-of-file, and it may open files
//! and sockets under the same grants as the first program. When the first
//! program exits, the guest ends, whatever else still runs.

use crate::syscall::syscall;
use alloc::vec;
use alloc::vec::Vec;
use core::time::Duration;
use weft_abi::{ErrorCode, nr};
use weft_control::args;
use weft_control::layout::USER_ARGS_MAX;
pub use weft_control::process::ProcessRecord;
use weft_control::process::{MAX_PROCESSES, SpawnRequest, source, tier};

/// A process id.
pub type Pid = u32;

/// The program a new process runs.
#[derive(Clone, Copy, Debug)]
pub enum Image<'a> {
    /// A program bundled with `weft`, by name (`"hello"`).
    Bundled(&'a str),
    /// An ELF executable (or a Wasm module, which runs in the bundled Wasm
    /// runtime), for example read with [`crate::fs::read`].
    Bytes(&'a [u8]),
    /// A Wasm module run in a tier: a `weft_control::process::tier` value
    /// (0, the guest's default, for an ELF).
    Tiered(&'a [u8], u32),
}

/// Starts `image` in a new process with `args` (its name first) and the
/// default amount of memory mapped at entry; returns its pid.
pub fn spawn<A: AsRef<[u8]>>(image: Image<'_>, args: &[A]) -> Result<Pid, ErrorCode> {
    spawn_with_heap(image, args, 0)
}

/// As [`spawn`], with `heap_bytes` of memory mapped at entry (more is
/// mapped on demand; 0: the default, 8 MiB).
pub fn spawn_with_heap<A: AsRef<[u8]>>(
    image: Image<'_>,
    args: &[A],
    heap_bytes: u64,
) -> Result<Pid, ErrorCode> {
    // The block's exact size (§4); the spawned program's environment is empty.
    let need = args::block_len::<_, &[u8], &[u8]>(args, &[]).ok_or(ErrorCode::BadLength)?;
    let mut block = vec![0u8; need.min(USER_ARGS_MAX as usize)];
    let len = args::encode(args, &mut block).map_err(|_| ErrorCode::BadLength)?;
    let (kind, bytes, tier) = match image {
        Image::Bundled(name) => (source::BUNDLED, name.as_bytes(), tier::DEFAULT),
        Image::Bytes(b) => (source::ELF, b, tier::DEFAULT),
        Image::Tiered(b, t) => (source::ELF, b, t),
    };
    let request = SpawnRequest {
        source: kind,
        tier,
        image_addr: bytes.as_ptr() as u64,
        image_len: bytes.len() as u64,
        args_addr: block.as_ptr() as u64,
        args_len: len as u64,
        heap_bytes,
    }
    .encode();
    // SAFETY: the request and everything it points to are live for the
    // call; the monitor only reads them.
    let pid = unsafe { syscall(nr::SPAWN, request.as_ptr() as u64, 0, 0, 0) }?;
    Pid::try_from(pid).map_err(|_| ErrorCode::BadArgument)
}

/// Ends process `pid` (it exits with status 137). The first program cannot
/// be killed.
pub fn kill(pid: Pid) -> Result<(), ErrorCode> {
    // SAFETY: no pointer arguments.
    unsafe { syscall(nr::KILL, pid.into(), 0, 0, 0) }.map(|_| ())
}

/// Waits until the caller's child `pid` ends and returns its exit status
/// (125 if it faulted, 137 if it was killed). A child's status can be
/// collected once.
pub fn wait(pid: Pid) -> Result<u32, ErrorCode> {
    wait_raw(pid, u64::MAX)
}

/// As [`wait`], for at most `limit`: `Ok(None)` if the child still runs.
pub fn wait_timeout(pid: Pid, limit: Duration) -> Result<Option<u32>, ErrorCode> {
    let ns = u64::try_from(limit.as_nanos())
        .unwrap_or(u64::MAX - 1)
        .min(u64::MAX - 1);
    match wait_raw(pid, ns) {
        Err(ErrorCode::TimedOut) => Ok(None),
        r => r.map(Some),
    }
}

fn wait_raw(pid: Pid, timeout_ns: u64) -> Result<u32, ErrorCode> {
    // SAFETY: no pointer arguments.
    let status = unsafe { syscall(nr::AWAIT, pid.into(), timeout_ns, 0, 0) }?;
    u32::try_from(status).map_err(|_| ErrorCode::BadArgument)
}

/// Every process: pid, parent, state, exit status (once ended), CPU time,
/// memory, open streams and name.
pub fn list() -> Result<Vec<ProcessRecord>, ErrorCode> {
    let mut buf = [0u8; MAX_PROCESSES * ProcessRecord::SIZE];
    // SAFETY: `buf` has room for `MAX_PROCESSES` records, as passed.
    let n = unsafe {
        syscall(
            nr::PROCESSES,
            buf.as_mut_ptr() as u64,
            MAX_PROCESSES as u64,
            0,
            0,
        )
    }?;
    let shown = usize::try_from(n).map_or(MAX_PROCESSES, |n| n.min(MAX_PROCESSES));
    Ok(buf
        .chunks_exact(ProcessRecord::SIZE)
        .take(shown)
        .map(record)
        .collect())
}

/// Process `pid`'s record.
pub fn stats(pid: Pid) -> Result<ProcessRecord, ErrorCode> {
    let mut buf = [0u8; ProcessRecord::SIZE];
    // SAFETY: `buf` holds one record, as the call writes.
    unsafe { syscall(nr::PROCESS, pid.into(), buf.as_mut_ptr() as u64, 0, 0) }?;
    Ok(record(&buf))
}

fn record(chunk: &[u8]) -> ProcessRecord {
    let mut b = [0u8; ProcessRecord::SIZE];
    b.copy_from_slice(chunk);
    ProcessRecord::decode(&b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_control::process::{name_of, state};

    #[test]
    fn records_decode_from_the_kernels_bytes() {
        let rec = ProcessRecord {
            pid: 9,
            parent: 1,
            state: state::BLOCKED,
            status: 0,
            cpu_ns: 1234,
            memory: 2 << 20,
            streams: 3,
            name: name_of(b"/apps/echo"),
        };
        let got = record(&rec.encode());
        assert_eq!(got, rec);
        assert_eq!(got.name(), b"echo");
    }
}
