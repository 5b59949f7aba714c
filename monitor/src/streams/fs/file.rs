//! A `FILE_OPEN` stream (PROTOCOL.md §10.2): one open regular file, read,
//! written, sought, stat'ed, synced, resized and given new times at the
//! guest's request.

use super::beneath::{self, PathError, shown};
use super::{Fault, Quota, Root, broken, metadata, send, serve_requests, time_spec};
use crate::host as raw;
use crate::streams::framed::{Failure, StreamIo};
use crate::streams::zero_copy;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use weft_control::frame::{Code, HEADER, Header};
use weft_control::fs_proto::{
    FileKind, FileOpen, FileRequest, MAX_FILE_SIZE, METADATA_LEN, OpenFlags, Reply, Whence, kind,
};

/// The smallest `DATA` body worth reading straight into the ring.
const MIN_DIRECT: usize = 4096;

/// An open file and what the guest may do with it.
struct OpenFile<'a> {
    file: File,
    flags: OpenFlags,
    /// The root is read-only: the file's times stay too.
    read_only: bool,
    /// The guest's file-system quota, if it has one.
    quota: Option<&'a Quota>,
    /// Room for the `DATA` frames copied out of the file, as long as the
    /// longest read asked for yet, reused.
    buf: Vec<u8>,
}

/// Opens the file `params` names and serves its requests.
pub async fn serve(mut io: StreamIo, params: &[u8], root: Root<'_>) {
    let open = match FileOpen::decode(params) {
        Ok(o) => o,
        Err(e) => return io.fail(Failure::protocol(e)).await,
    };
    let mut file = match open_file(root, open) {
        Ok(f) => f,
        Err(f) => return io.fail(f).await,
    };
    let opened = match file.file.metadata() {
        Ok(m) => Reply::FileOpened(metadata(&m)),
        Err(e) => {
            return io
                .fail(PathError::Io(e).failure("open", &shown(open.at)))
                .await;
        }
    };
    let mut frame = [0u8; HEADER + METADATA_LEN];
    let n = opened.encode(&mut frame).unwrap_or(0);
    if let Err(f) = io.write_frame(&frame[..n]).await {
        return io.fail(f).await;
    }
    serve_requests(io, &mut file, answer).await
}

/// Opens `open.path` beneath the root: only regular files, and nothing
/// that modifies under `--read-only`.
fn open_file<'a>(root: Root<'a>, open: FileOpen<'_>) -> Result<OpenFile<'a>, Failure> {
    let path = &shown(open.at);
    let flags = OpenFlags::from_bits(open.flags)
        .map_err(|why| Failure::new(Code::Invalid, format!("open {path}: {why}")))?;
    if flags.modifies() {
        root.check_writable("open for writing", path)?;
    }
    let mut oflags = match (flags.contains(OpenFlags::READ), flags.writes()) {
        (true, true) => libc::O_RDWR,
        (false, true) => libc::O_WRONLY,
        _ => libc::O_RDONLY,
    };
    // Under a quota the file is cut after the open, so that the size it
    // had is known and given back.
    let truncate = flags.contains(OpenFlags::TRUNCATE);
    for (flag, bits) in [
        (OpenFlags::CREATE, libc::O_CREAT),
        (
            OpenFlags::TRUNCATE,
            if root.quota.is_some() {
                0
            } else {
                libc::O_TRUNC
            },
        ),
        (OpenFlags::APPEND, libc::O_APPEND),
        (OpenFlags::EXCLUSIVE, libc::O_CREAT | libc::O_EXCL),
        (OpenFlags::NO_FOLLOW, libc::O_NOFOLLOW),
    ] {
        if flags.contains(flag) {
            oflags |= bits;
        }
    }
    // O_NONBLOCK: opening a FIFO or device must not stall the relay; it
    // changes nothing for the regular files that are accepted.
    oflags |= libc::O_NOCTTY | libc::O_NONBLOCK;
    let file =
        beneath::open_at(root.dir, open.at, oflags, 0o666).map_err(|e| e.failure("open", path))?;
    let kind = file
        .metadata()
        .map(|m| super::file_kind(m.file_type()))
        .map_err(|e| PathError::Io(e).failure("open", path))?;
    match kind {
        FileKind::File => {
            if let (Some(quota), true) = (root.quota, truncate) {
                let cut = file
                    .metadata()
                    .and_then(|m| file.set_len(0).map(|()| m.len()));
                quota.credit(cut.map_err(|e| PathError::Io(e).failure("open", path))?);
            }
            Ok(OpenFile {
                file,
                flags,
                read_only: root.read_only,
                quota: root.quota,
                buf: Vec::new(),
            })
        }
        FileKind::Dir => Err(Failure::new(Code::IsDirectory, format!("open {path}"))),
        _ => Err(Failure::new(
            Code::Invalid,
            format!("open {path}: not a regular file"),
        )),
    }
}

/// A host error on the open file.
fn host(op: &str, e: io::Error) -> Fault {
    Fault::Request(Failure::io(op, &e))
}

/// Answers one request.
async fn answer(
    f: &mut OpenFile<'_>,
    io: &mut StreamIo,
    kind: u16,
    body: &[u8],
) -> Result<(), Fault> {
    let header = Header::new(kind, body.len());
    let reply = match FileRequest::decode(header, body).map_err(broken)? {
        FileRequest::Read { max } => {
            if !f.flags.contains(OpenFlags::READ) {
                return Err(Failure::new(Code::Invalid, "read: file not open for reading").into());
            }
            // Straight from the file into the ring when there is room for a
            // sizeable frame; otherwise by copying, which waits for space.
            let fd = f.file.as_raw_fd();
            let region = io.region;
            let direct = zero_copy::file_into_frame(
                fd,
                &mut io.tx,
                &region,
                kind::DATA,
                max as usize,
                MIN_DIRECT,
            )
            .await
            .map_err(|e| match e.raw_os_error() {
                Some(_) => host("read", e),
                None => Fault::Stream(Failure::to_guest(&e)),
            })?;
            if direct.is_some() {
                return Ok(());
            }
            // Grown to the largest read asked for yet, never zeroed again:
            // opening a file costs no ring-sized buffer.
            let want = HEADER + max as usize;
            if f.buf.len() < want {
                f.buf.resize(want, 0);
            }
            let data = &mut f.buf[HEADER..want];
            let n = retry(|| f.file.read(data)).map_err(|e| host("read", e))?;
            f.buf[..HEADER].copy_from_slice(&Header::new(kind::DATA, n).encode());
            return send(io, &f.buf[..HEADER + n]).await;
        }
        FileRequest::Write(bytes) => {
            if !f.flags.writes() {
                return Err(Failure::new(Code::Invalid, "write: file not open for writing").into());
            }
            let charged = check_growth(f, bytes.len())?;
            let written = write_some(&mut f.file, bytes);
            if let Some(c) = charged {
                c.settle(&f.file);
            }
            Reply::Written(written? as u32)
        }
        FileRequest::Seek { whence, offset } => {
            let to = match whence {
                Whence::Start => SeekFrom::Start(
                    u64::try_from(offset)
                        .map_err(|_| Failure::new(Code::Invalid, "seek: negative position"))?,
                ),
                Whence::Current => SeekFrom::Current(offset),
                Whence::End => SeekFrom::End(offset),
            };
            Reply::Position(f.file.seek(to).map_err(|e| host("seek", e))?)
        }
        FileRequest::Fstat => {
            Reply::Metadata(metadata(&f.file.metadata().map_err(|e| host("stat", e))?))
        }
        FileRequest::Sync => {
            f.file.sync_all().map_err(|e| host("sync", e))?;
            Reply::Done
        }
        FileRequest::SetSize(size) => {
            if !f.flags.writes() {
                let why = "set size: file not open for writing";
                return Err(Failure::new(Code::Invalid, why).into());
            }
            let now = f.file.metadata().map_err(|e| host("set size", e))?.len();
            if size > MAX_FILE_SIZE && size > now {
                let why = format!("set size {size}: past {}", largest());
                return Err(Failure::new(Code::TooLarge, why).into());
            }
            if let Some(quota) = f.quota {
                quota.resize(now, size, || format!("set size {size}"))?;
            }
            if let Err(e) = f.file.set_len(size) {
                if let Some(quota) = f.quota {
                    let _ = quota.resize(size, now, String::new);
                }
                return Err(host("set size", e));
            }
            Reply::Done
        }
        FileRequest::SetTimes(times) => {
            if f.read_only {
                return Err(Failure::new(Code::ReadOnly, "set times").into());
            }
            let (accessed, modified) = (time_spec(times.accessed), time_spec(times.modified));
            raw::set_times(&f.file, accessed, modified).map_err(|e| host("set times", e))?;
            Reply::Done
        }
    };
    let mut out = [0u8; HEADER + METADATA_LEN];
    let n = reply.encode(&mut out).unwrap_or(0);
    send(io, &out[..n]).await
}

/// Refuses a write of `len` bytes at the file position (at the end with
/// `APPEND`) that would make the file longer than [`MAX_FILE_SIZE`]
/// (§10.2): a guest must not make huge sparse files on the host. A write
/// that does not move the end (of a file the host made longer) is allowed.
/// Under a quota (§10.4), charges the growth the write would make.
fn check_growth<'a>(f: &mut OpenFile<'a>, len: usize) -> Result<Option<Charged<'a>>, Fault> {
    let size = |file: &File| file.metadata().map(|m| m.len());
    let at = if f.flags.contains(OpenFlags::APPEND) {
        size(&f.file)
    } else {
        f.file.stream_position()
    }
    .map_err(|e| host("write", e))?;
    let end = at.saturating_add(len as u64);
    if end <= MAX_FILE_SIZE && f.quota.is_none() {
        return Ok(None);
    }
    let now = size(&f.file).map_err(|e| host("write", e))?;
    if end > MAX_FILE_SIZE && end > now {
        return Err(Failure::new(Code::TooLarge, too_large(at, end)).into());
    }
    let bytes = end.saturating_sub(now);
    let Some(quota) = f.quota.filter(|_| bytes > 0) else {
        return Ok(None);
    };
    quota.charge(bytes, || format!("write at offset {at}"))?;
    Ok(Some(Charged {
        quota,
        size: now,
        bytes,
    }))
}

/// Growth a write was charged for, before it was made.
struct Charged<'a> {
    quota: &'a Quota,
    /// The file's size before the write.
    size: u64,
    bytes: u64,
}

impl Charged<'_> {
    /// Gives back what the write did not grow the file by (all of it if
    /// it failed).
    fn settle(self, file: &File) {
        let grown = file
            .metadata()
            .map_or(0, |m| m.len().saturating_sub(self.size));
        self.quota.credit(self.bytes.saturating_sub(grown));
    }
}

/// The message of a write refused by [`check_growth`].
fn too_large(at: u64, end: u64) -> String {
    format!(
        "write at offset {at}: the file would grow to {end} bytes, past {}",
        largest()
    )
}

/// The limit on a file's size, in words.
fn largest() -> String {
    format!(
        "the largest a guest may make ({MAX_FILE_SIZE} bytes, {} GiB)",
        MAX_FILE_SIZE >> 30
    )
}

/// Writes as much of `bytes` as the host takes: all of it, or what was
/// written before an error (the error itself if nothing was).
fn write_some(file: &mut File, bytes: &[u8]) -> Result<usize, Fault> {
    let mut done = 0;
    while done < bytes.len() {
        match retry(|| file.write(&bytes[done..])) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if done == 0 => return Err(host("write", e)),
            Err(_) => break,
        }
    }
    Ok(done)
}

/// Runs `op` again while a signal interrupts it.
fn retry<T>(mut op: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    loop {
        match op() {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            r => return r,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An open scratch file named after `test` (removed at once: the
    /// descriptor keeps it).
    fn scratch(test: &str, flags: OpenFlags) -> OpenFile<'static> {
        let name = format!("weft-growth-{test}-{}", std::process::id());
        let path = std::env::temp_dir().join(name);
        let file = File::options()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        std::fs::remove_file(&path).unwrap();
        OpenFile {
            file,
            flags,
            read_only: false,
            quota: None,
            buf: Vec::new(),
        }
    }

    fn refused(f: &mut OpenFile<'_>, len: usize) -> Option<Failure> {
        match check_growth(f, len) {
            Ok(_) => None,
            Err(Fault::Request(f)) | Err(Fault::Stream(f)) => Some(f),
        }
    }

    #[test]
    fn writes_may_end_at_the_limit_and_not_past_it() {
        let mut f = scratch("limit", OpenFlags::WRITE);
        f.file.seek(SeekFrom::Start(MAX_FILE_SIZE - 4)).unwrap();
        assert!(refused(&mut f, 4).is_none());
        let past = refused(&mut f, 5).expect("a write past the limit");
        assert_eq!(past.code, Code::TooLarge);
        assert_eq!(
            past.message,
            too_large(MAX_FILE_SIZE - 4, MAX_FILE_SIZE + 1)
        );
        f.file.seek(SeekFrom::Start(1 << 40)).unwrap();
        let far = refused(&mut f, usize::MAX).expect("a write far past the limit");
        assert_eq!(far.message, too_large(1 << 40, u64::MAX));
    }

    #[test]
    fn appends_count_from_the_end_of_the_file() {
        let mut f = scratch("append", OpenFlags::APPEND);
        f.file.write_all(b"abc").unwrap();
        assert!(refused(&mut f, MAX_FILE_SIZE as usize - 3).is_none());
        let past = refused(&mut f, MAX_FILE_SIZE as usize - 2).expect("past the limit");
        assert_eq!(past.message, too_large(3, MAX_FILE_SIZE + 1));
    }
}
