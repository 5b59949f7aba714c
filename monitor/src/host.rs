//! The host calls the monitor makes through `libc` (and signal
//! installation), each behind a wrapper that states what the call needs and
//! checks what it returns: random bytes, thread placement and byte locks, signal handlers
//! and kicks, page residency and discarding, the relay's scatter/gather I/O,
//! the writes to `weft`'s own output and its path calls beneath a directory.
//!
//! Invariant: the monitor's calls into `libc` are made here, except that
//! `process_memory` discards a finished process's pages itself. Mapping
//! guest memory and registering it with KVM stay with their concepts
//! (`guest_memory`, `vm`), and the relay's shared-memory accessors
//! (`streams::bells`, `streams::region`) hold the `unsafe` of reaching guest
//! memory. Wrappers that take raw addresses are `unsafe fn`s whose
//! `# Safety` names what the caller must have established; the others are
//! safe.

use std::ffi::{CStr, CString};
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::ptr::NonNull;
use std::time::Duration;

/// A `-1`-on-error return as `io::Result`.
fn check(ret: libc::c_long) -> io::Result<libc::c_long> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Fills `buf` from the host's random source; fails unless every byte was
/// filled.
pub fn fill_random(buf: &mut [u8]) -> io::Result<()> {
    // SAFETY: `buf` is a valid, writable buffer of the length passed.
    let got = unsafe { libc::getrandom(buf.as_mut_ptr().cast(), buf.len(), 0) };
    if got == buf.len() as isize {
        Ok(())
    } else if got < 0 {
        Err(io::Error::last_os_error())
    } else {
        Err(io::ErrorKind::UnexpectedEof.into())
    }
}

/// The CPUs this process may run on, in order (empty if the host does not
/// say).
pub fn allowed_cpus() -> Vec<usize> {
    // SAFETY: `cpu_set_t` is plain data for which all-zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid, writable cpu_set_t of the size passed.
    let r = unsafe { libc::sched_getaffinity(0, std::mem::size_of_val(&set), &mut set) };
    if r != 0 {
        return Vec::new();
    }
    (0..libc::CPU_SETSIZE as usize)
        // SAFETY: `cpu` is below CPU_SETSIZE, the set's capacity.
        .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
        .collect()
}

/// Restricts the calling thread to `cpus` (the threads it starts later
/// inherit them). An empty set, out-of-range CPUs and host refusals are
/// errors.
pub fn pin_current_thread(cpus: &[usize]) -> io::Result<()> {
    if cpus.is_empty() || cpus.iter().any(|&c| c >= libc::CPU_SETSIZE as usize) {
        return Err(io::ErrorKind::InvalidInput.into());
    }
    // SAFETY: as in `allowed_cpus`.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &cpu in cpus {
        // SAFETY: `cpu` is below CPU_SETSIZE (checked above).
        unsafe { libc::CPU_SET(cpu, &mut set) };
    }
    // SAFETY: `set` is a valid cpu_set_t of the size passed; 0 is this thread.
    let r = unsafe { libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set) };
    check(r.into()).map(drop)
}

/// Takes an exclusive lock on byte `at` of `file` (an open file
/// description's lock, `F_OFD_SETLK`), without waiting: held until the
/// last descriptor of that description is closed, so also released when
/// the process dies. `WouldBlock` if another description holds it.
pub fn lock_byte(file: &File, at: u64) -> io::Result<()> {
    // SAFETY: `flock` is plain data for which all-zero is valid.
    let mut lock: libc::flock = unsafe { std::mem::zeroed() };
    lock.l_type = libc::F_WRLCK as libc::c_short;
    lock.l_whence = libc::SEEK_SET as libc::c_short;
    lock.l_start = libc::off_t::try_from(at).map_err(|_| io::ErrorKind::InvalidInput)?;
    lock.l_len = 1;
    // SAFETY: `file` is an open descriptor and `lock` a valid `flock` that
    // outlives the call; OFD locks require `l_pid` 0 (zeroed above).
    let r = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_SETLK, &lock) };
    match check(r.into()) {
        Err(e) if matches!(e.raw_os_error(), Some(libc::EAGAIN | libc::EACCES)) => {
            Err(io::ErrorKind::WouldBlock.into())
        }
        other => other.map(drop),
    }
}

/// A signal handler as `sigaction(2)` takes it with `SA_SIGINFO`.
pub type SignalHandler = extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void);

/// The signal that only interrupts a blocking call of the thread it is sent
/// to (`KVM_RUN`): the first real-time signal.
pub fn kick_signal() -> i32 {
    vmm_sys_util::signal::SIGRTMIN()
}

/// Installs `handler` for `sig`, for the whole process. The handler must
/// be async-signal-safe.
pub fn on_signal(sig: i32, handler: SignalHandler) -> io::Result<()> {
    vmm_sys_util::signal::register_signal_handler(sig, handler)
        .map_err(|e| io::Error::from_raw_os_error(e.errno()))
}

/// A thread of this process that signals can be sent to.
#[derive(Clone, Copy, Debug)]
pub struct Thread(libc::pthread_t);

impl Thread {
    /// The calling thread.
    pub fn current() -> Self {
        // SAFETY: pthread_self has no preconditions.
        Self(unsafe { libc::pthread_self() })
    }

    /// Sends `sig` to the thread, which must still be running: the caller
    /// keeps the handle only while the thread lives (for the vCPU thread,
    /// the main thread, that is until the process exits).
    pub fn kick(self, sig: i32) {
        // SAFETY: the handle names a live thread of this process (the
        // caller's contract above); an unknown signal is an error return.
        unsafe { libc::pthread_kill(self.0, sig) };
    }
}

/// Writes one to the eventfd `fd` from a signal handler (`write` is
/// async-signal-safe). A failure is ignored: there is nothing a handler
/// can do about it.
pub fn signal_eventfd(fd: RawFd) {
    let one = 1u64.to_ne_bytes();
    // SAFETY: `one` is a valid 8-byte buffer; a closed or foreign `fd` is an
    // error return, not undefined behaviour.
    unsafe { libc::write(fd, one.as_ptr().cast(), one.len()) };
}

/// Waits until `fd` is readable (`true`) or `timeout` passed (`false`;
/// `None` waits for ever). Interrupted waits are errors (`Interrupted`).
pub fn wait_readable(fd: RawFd, timeout: Option<Duration>) -> io::Result<bool> {
    poll_one(fd, libc::POLLIN, timeout)
}

/// Waits until a write to `fd` would not block (or would fail at once: a
/// hang-up or an error). Interrupted waits are retried.
pub fn wait_writable(fd: BorrowedFd<'_>) -> io::Result<()> {
    loop {
        match poll_one(fd.as_raw_fd(), libc::POLLOUT, None) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            other => return other.map(drop),
        }
    }
}

/// `poll` on one descriptor for `events`: `true` once ready, `false` when
/// `timeout` passed (`None` waits for ever).
fn poll_one(fd: RawFd, events: libc::c_short, timeout: Option<Duration>) -> io::Result<bool> {
    let mut pfd = libc::pollfd {
        fd,
        events,
        revents: 0,
    };
    let ms = timeout.map_or(-1, |t| t.as_millis().min(i32::MAX as u128) as i32);
    // SAFETY: `pfd` is one valid pollfd for the duration of the call.
    let r = unsafe { libc::poll(&mut pfd, 1, ms) };
    check(r.into()).map(|n| n > 0)
}

/// Writes bytes of `buf` to `fd` (a blocking descriptor waits for room);
/// returns how many. Interrupted writes are retried.
pub fn write(fd: BorrowedFd<'_>, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: `buf` is a live slice, valid for reads of the length passed;
    // the borrow keeps `fd` open for the call.
    retry(|| unsafe { libc::write(fd.as_raw_fd(), buf.as_ptr().cast(), buf.len()) })
}

/// Makes closing the TCP socket `fd` reset the connection (`SO_LINGER`
/// with a zero time) instead of ending it in order, so that a peer can
/// tell bytes were lost.
pub fn reset_on_close(fd: BorrowedFd<'_>) -> io::Result<()> {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: `linger` is a valid option value of the size passed; the
    // borrow keeps `fd` open for the call.
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&raw const linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    check(r.into()).map(drop)
}

/// Which of the pages of `[base, base + len)` are resident in host memory:
/// one byte per page, bit 0 set if resident. An unmapped range is an error.
pub fn resident_pages(base: NonNull<u8>, len: usize, page: usize) -> io::Result<Vec<u8>> {
    let mut vec = vec![0u8; len.div_ceil(page)];
    // SAFETY: `vec` has one writable byte per page of the range, as mincore
    // requires; mincore only reads the page tables of the range (an
    // unmapped or unaligned range is an error return).
    let rc = unsafe { libc::mincore(base.as_ptr().cast(), len, vec.as_mut_ptr()) };
    check(rc.into()).map(|_| vec)
}

/// Hands the pages of `[base, base + len)` back to the host
/// (`MADV_DONTNEED`): the next access reads fresh zero pages.
///
/// # Safety
///
/// The range must be page-aligned and lie in a private anonymous mapping
/// the caller owns, and no Rust reference may point into it (its bytes
/// change underneath).
pub unsafe fn discard_pages(base: NonNull<u8>, len: usize) -> io::Result<()> {
    // SAFETY: the caller's contract: an owned, private anonymous range, so
    // `MADV_DONTNEED` only replaces its contents with zeroes, which no
    // reference observes.
    let rc = unsafe { libc::madvise(base.as_ptr().cast(), len, libc::MADV_DONTNEED) };
    check(rc.into()).map(drop)
}

/// A memory file (`memfd`) of `len` zero bytes, closed on `exec` unless
/// handed on ([`keep_on_exec`]).
pub fn memory_file(name: &str, len: u64) -> io::Result<File> {
    let name = CString::new(name).map_err(|_| io::ErrorKind::InvalidInput)?;
    // SAFETY: `name` is a NUL-terminated string that outlives the call.
    let fd = check(unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) }.into())?;
    // SAFETY: `memfd_create` returned a new descriptor that nothing else
    // owns.
    let file = unsafe { File::from_raw_fd(fd as RawFd) };
    file.set_len(len)?;
    Ok(file)
}

/// Zeroes `[offset, offset + len)` of `file` by punching a hole in it:
/// every mapping of those bytes, in any process, reads zeroes after.
pub fn punch_hole(file: &File, offset: u64, len: u64) -> io::Result<()> {
    let to_off = |v: u64| libc::off_t::try_from(v).map_err(|_| io::ErrorKind::InvalidInput);
    // SAFETY: `fallocate` on an open descriptor this process owns; it only
    // changes the file's contents.
    let rc = unsafe {
        libc::fallocate(
            file.as_raw_fd(),
            libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
            to_off(offset)?,
            to_off(len)?,
        )
    };
    check(rc.into()).map(drop)
}

/// Clears `fd`'s close-on-exec flag, so a child `exec`ed next inherits
/// it. Called between `fork` and `exec` (async-signal-safe).
pub fn keep_on_exec(fd: RawFd) -> io::Result<()> {
    // SAFETY: `fcntl(F_SETFD)` only changes the descriptor's flags.
    check(unsafe { libc::fcntl(fd, libc::F_SETFD, 0) }.into()).map(drop)
}

/// Makes the kernel kill this process when the thread that created it
/// ends: a child that must not outlive `weft` (QEMU). Called between
/// `fork` and `exec` (async-signal-safe).
pub fn die_with_parent() -> io::Result<()> {
    // SAFETY: `PR_SET_PDEATHSIG` only sets this process's parent-death
    // signal.
    let rc = unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) };
    check(rc.into()).map(drop)
}

/// Asks the host to back `[base, base + len)` with transparent huge pages
/// (`MADV_HUGEPAGE`). Changes no contents.
pub fn advise_huge_pages(base: NonNull<u8>, len: usize) -> io::Result<()> {
    // SAFETY: `MADV_HUGEPAGE` only changes how the host backs the range,
    // never its contents; an unmapped or unaligned range is an error return.
    let rc = unsafe { libc::madvise(base.as_ptr().cast(), len, libc::MADV_HUGEPAGE) };
    check(rc.into()).map(drop)
}

/// Scatter/gather addresses for [`readv`] and [`writev`].
pub type IoVec = libc::iovec;

/// An empty [`IoVec`].
pub const EMPTY_IOVEC: IoVec = libc::iovec {
    iov_base: std::ptr::null_mut(),
    iov_len: 0,
};

/// Retries `op` while it fails with EINTR; a negative result becomes the
/// OS error (EAGAIN included: the caller's readiness loop handles it).
fn retry(mut op: impl FnMut() -> isize) -> io::Result<usize> {
    loop {
        let n = op();
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Reads from `fd` into the buffers `iov` names; returns the bytes read.
///
/// # Safety
///
/// Every entry of `iov` must address memory valid for writes of its length
/// for the duration of the call, to which no Rust reference exists.
pub unsafe fn readv(fd: RawFd, iov: &[IoVec]) -> io::Result<usize> {
    // SAFETY: the caller's contract; `iov` itself is a live slice of the
    // length passed.
    retry(|| unsafe { libc::readv(fd, iov.as_ptr(), iov.len() as i32) })
}

/// Writes the buffers `iov` names to `fd`; returns the bytes written.
///
/// # Safety
///
/// Every entry of `iov` must address memory valid for reads of its length
/// for the duration of the call.
pub unsafe fn writev(fd: RawFd, iov: &[IoVec]) -> io::Result<usize> {
    // SAFETY: the caller's contract; `iov` itself is a live slice of the
    // length passed.
    retry(|| unsafe { libc::writev(fd, iov.as_ptr(), iov.len() as i32) })
}

/// `struct open_how` of `openat2(2)` (libc's is `non_exhaustive`).
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

/// `openat2(dir, path, {flags, mode, resolve})`: a new descriptor.
pub fn openat2(dir: &File, path: &CStr, flags: i32, mode: u32, resolve: u64) -> io::Result<File> {
    let how = OpenHow {
        flags: flags as u64,
        mode: mode.into(),
        resolve,
    };
    // SAFETY: `path` is NUL-terminated and `how` a live `open_how` whose
    // size is passed; both outlive the call, which only reads them. `dir`
    // keeps its descriptor open for the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dir.as_raw_fd(),
            path.as_ptr(),
            &how as *const OpenHow,
            size_of::<OpenHow>(),
        )
    };
    let fd = check(ret)?;
    // SAFETY: a successful openat2 returns a new descriptor that nothing
    // else owns.
    Ok(File::from(unsafe { OwnedFd::from_raw_fd(fd as i32) }))
}

/// `mkdirat(dir, name, mode)`.
pub fn mkdirat(dir: &File, name: &CStr, mode: u32) -> io::Result<()> {
    // SAFETY: `name` is NUL-terminated and outlives the call; `dir` keeps its
    // descriptor open.
    check(unsafe { libc::mkdirat(dir.as_raw_fd(), name.as_ptr(), mode) }.into()).map(drop)
}

/// `unlinkat(dir, name, flags)`.
pub fn unlinkat(dir: &File, name: &CStr, flags: i32) -> io::Result<()> {
    // SAFETY: as in `mkdirat`.
    check(unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), flags) }.into()).map(drop)
}

/// `renameat(from_dir, from, to_dir, to)`.
pub fn renameat(from_dir: &File, from: &CStr, to_dir: &File, to: &CStr) -> io::Result<()> {
    // SAFETY: both names are NUL-terminated and outlive the call; both
    // directories keep their descriptors open.
    let ret = unsafe {
        libc::renameat(
            from_dir.as_raw_fd(),
            from.as_ptr(),
            to_dir.as_raw_fd(),
            to.as_ptr(),
        )
    };
    check(ret.into()).map(drop)
}

/// `readlinkat(dir, name)`: the symlink's target, as stored.
pub fn readlinkat(dir: &File, name: &CStr) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; libc::PATH_MAX as usize];
    // SAFETY: `name` is NUL-terminated and `buf` writable for its length;
    // both outlive the call. `dir` keeps its descriptor open.
    let ret = unsafe {
        libc::readlinkat(
            dir.as_raw_fd(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    buf.truncate(check(ret as i64)? as usize);
    Ok(buf)
}

/// `symlinkat(target, dir, name)`.
pub fn symlinkat(target: &CStr, dir: &File, name: &CStr) -> io::Result<()> {
    // SAFETY: as in `mkdirat`; `target` is NUL-terminated too.
    check(unsafe { libc::symlinkat(target.as_ptr(), dir.as_raw_fd(), name.as_ptr()) }.into())
        .map(drop)
}

/// The `/proc` link of `file`'s own descriptor: resolving it reaches that
/// very file, whatever has been renamed since, and no other path.
fn proc_link(file: &File) -> CString {
    // A formatted integer holds no NUL byte.
    CString::new(format!("/proc/self/fd/{}", file.as_raw_fd())).unwrap_or_default()
}

/// `linkat`: a new hard link `to_dir/to` to what `file` (opened with
/// `O_PATH`) is, through its `/proc` link, which needs no capability.
pub fn link_to(file: &File, to_dir: &File, to: &CStr) -> io::Result<()> {
    let from = proc_link(file);
    // SAFETY: both names are NUL-terminated and outlive the call; `file`
    // and `to_dir` keep their descriptors open.
    let ret = unsafe {
        libc::linkat(
            libc::AT_FDCWD,
            from.as_ptr(),
            to_dir.as_raw_fd(),
            to.as_ptr(),
            libc::AT_SYMLINK_FOLLOW,
        )
    };
    check(ret.into()).map(drop)
}

/// `linkat(from_dir, from, to_dir, to, 0)`: a new hard link to `from`
/// itself (a symlink is linked, not followed).
pub fn linkat(from_dir: &File, from: &CStr, to_dir: &File, to: &CStr) -> io::Result<()> {
    // SAFETY: as in `renameat`.
    let ret = unsafe {
        libc::linkat(
            from_dir.as_raw_fd(),
            from.as_ptr(),
            to_dir.as_raw_fd(),
            to.as_ptr(),
            0,
        )
    };
    check(ret.into()).map(drop)
}

/// A time for [`set_times`]: `None` leaves it, `Some(None)` is now,
/// `Some(Some((secs, nanos)))` that time.
pub type TimeSpec = Option<Option<(i64, i64)>>;

fn timespec(t: TimeSpec) -> libc::timespec {
    let (tv_sec, tv_nsec) = match t {
        None => (0, libc::UTIME_OMIT),
        Some(None) => (0, libc::UTIME_NOW),
        Some(Some(at)) => at,
    };
    libc::timespec { tv_sec, tv_nsec }
}

/// Sets the access and modification times of what `file` is: through its
/// `/proc` link, so a file opened with `O_PATH` works too.
pub fn set_times(file: &File, accessed: TimeSpec, modified: TimeSpec) -> io::Result<()> {
    let path = proc_link(file);
    let times = [timespec(accessed), timespec(modified)];
    // SAFETY: `path` is NUL-terminated and `times` two live timespecs; both
    // outlive the call, which only reads them.
    let ret = unsafe { libc::utimensat(libc::AT_FDCWD, path.as_ptr(), times.as_ptr(), 0) };
    check(ret.into()).map(drop)
}

/// Sets the times of `dir/name` itself (a symlink is not followed).
pub fn set_times_at(
    dir: &File,
    name: &CStr,
    accessed: TimeSpec,
    modified: TimeSpec,
) -> io::Result<()> {
    let times = [timespec(accessed), timespec(modified)];
    // SAFETY: as in `set_times`; `dir` keeps its descriptor open.
    let ret = unsafe {
        libc::utimensat(
            dir.as_raw_fd(),
            name.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    check(ret.into()).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_bytes_fill_the_buffer() {
        let mut a = [0u8; 32];
        let mut b = [0u8; 32];
        fill_random(&mut a).unwrap();
        fill_random(&mut b).unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn an_eventfd_signalled_is_readable() {
        let fd = vmm_sys_util::eventfd::EventFd::new(0).unwrap();
        let raw = fd.as_raw_fd();
        assert!(!wait_readable(raw, Some(Duration::ZERO)).unwrap());
        signal_eventfd(raw);
        assert!(wait_readable(raw, Some(Duration::ZERO)).unwrap());
    }

    #[test]
    fn the_allowed_cpus_include_one_the_thread_can_be_pinned_to() {
        let cpus = allowed_cpus();
        assert!(!cpus.is_empty());
        std::thread::spawn(move || {
            pin_current_thread(&cpus[..1]).unwrap();
            assert_eq!(allowed_cpus(), cpus[..1]);
        })
        .join()
        .unwrap();
        assert!(pin_current_thread(&[libc::CPU_SETSIZE as usize]).is_err());
        assert!(pin_current_thread(&[]).is_err());
    }

    #[test]
    fn a_byte_locked_through_one_description_is_refused_through_another() {
        let path = std::env::temp_dir().join(format!("weft-host-lock-{}", std::process::id()));
        let open = || {
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .unwrap()
        };
        let (first, second) = (open(), open());
        std::fs::remove_file(&path).unwrap();
        lock_byte(&first, 3).unwrap();
        let refused = lock_byte(&second, 3).unwrap_err();
        assert_eq!(refused.kind(), io::ErrorKind::WouldBlock);
        lock_byte(&second, 4).unwrap();
        drop(first);
        lock_byte(&second, 3).unwrap();
    }
}
