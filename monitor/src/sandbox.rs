//! The sandbox the monitor puts itself in once the VM is built (PROTOCOL.md
//! §20.2): a second line behind the relay's own checks, for a monitor bug
//! that a guest might find. Two layers, each given up for good:
//!
//! 1. **Files and ports** (Landlock, [`restrict_files`]), applied right
//!    after `/dev/kvm` is opened and before any other thread starts: the
//!    process may open files only beneath `--fs-root` (read only with
//!    `--read-only`) and read `/proc/self` (`--stats`); where the kernel's
//!    Landlock knows TCP (ABI 4), it may bind only the `--listen` ports and
//!    connect only to the `--connect` ports. A kernel without Landlock
//!    leaves this layer out (`--stats` says which layers hold).
//! 2. **System calls** (seccomp, [`restrict_calls`]), installed on every
//!    thread once the guest is about to run: only the calls in
//!    [`ALLOWED`] (and those in [`checked`] with the arguments it allows).
//!    Any other call is refused: the process writes
//!    `weft: the sandbox refused system call NAME (N); stopping` on its
//!    standard error and is killed by `SIGSYS` (no core dump). A call made
//!    while `SIGSYS` is blocked (inside `posix_spawn`, say) kills it without
//!    the line.
//!
//! What the list leaves out: starting programs (`execve`, `fork`), any
//! other process's memory (`ptrace`, `process_vm_*`), mounting, changing
//! identity, kernel modules, BPF, `perf_event_open`, `userfaultfd`, keys,
//! sockets other than IPv4 and IPv6 TCP and UDP ones (raw sockets among
//! them), and executable memory.
//!
//! `weft daemon` enters the first layer at its start, before its fabric's
//! threads run ([`restrict_daemon_files`]: also its state directory and
//! `/dev/kvm`, and no port rules), and the second at the same point as
//! `weft run` ([`Profile::Daemon`]): its state directory, its Zenoh node
//! and its local socket need a few calls more ([`DAEMON_ALLOWED`], and
//! Unix and netlink sockets and interface queries in [`checked`]).
//!
//! Invariants: the file rules run while the process has one thread
//! (Landlock binds only the calling thread and the threads it starts;
//! with more it refuses); [`restrict_calls`] runs after every setup call
//! (opening `/dev/kvm`, creating the VM) is made.

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen as Len, SeccompCmpOp as Op, SeccompCondition,
    SeccompFilter, SeccompRule, TargetArch,
};
use std::collections::BTreeMap;
use std::fs::File;
use std::net::SocketAddr;
use syscalls::Sysno;
use thiserror::Error;

/// Why the sandbox could not be entered.
#[derive(Debug, Error)]
pub enum SandboxError {
    #[error("the sandbox: {0} threads run already; the file rules would bind only one")]
    Threads(usize),
    #[error("the sandbox's file rules: {0}")]
    Landlock(#[from] landlock::RulesetError),
    #[error("the sandbox's system-call filter: {0}")]
    Filter(#[from] seccompiler::BackendError),
    #[error("the sandbox's system-call filter: {0}")]
    Install(#[from] seccompiler::Error),
    #[error("the sandbox: cannot catch refused system calls: {0}")]
    Signal(std::io::Error),
}

/// Which of the file rules the kernel enforces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileRules {
    /// Files and TCP ports.
    Full,
    /// Files only (a kernel whose Landlock predates TCP rules), or only
    /// some of the file rights.
    Partial,
    /// None: the kernel has no Landlock.
    Absent,
}

/// What the guest was granted, which the file rules allow the monitor.
pub struct Grants<'a> {
    pub fs_root: Option<&'a File>,
    pub read_only: bool,
    pub listen: &'a [SocketAddr],
    pub connect: &'a [SocketAddr],
}

/// Layer 1: limits file access to the grants and `/proc/self`, and TCP to
/// the granted ports. Must run while the calling thread is the process's
/// only one.
pub fn restrict_files(grants: &Grants<'_>) -> Result<FileRules, SandboxError> {
    enforce(grants, None)
}

/// Layer 1 for `weft daemon`, at its start: files as [`restrict_files`]
/// allows them, and also every right beneath the state directory `state`
/// (its identity, certificates, registry, local socket and modules) and
/// `/dev/kvm` (its device guest is built later). Its ports are not
/// limited: its Zenoh node connects to whatever its peers are. Must run
/// while the calling thread is the process's only one.
pub fn restrict_daemon_files(state: &File, grants: &Grants<'_>) -> Result<FileRules, SandboxError> {
    enforce(grants, Some(state))
}

/// The rule set of [`restrict_files`] (`state: None`) or of
/// [`restrict_daemon_files`].
fn enforce(grants: &Grants<'_>, state: Option<&File>) -> Result<FileRules, SandboxError> {
    use landlock::{
        ABI, Access, AccessFs, AccessNet, CompatLevel, Compatible, NetPort, PathBeneath, Ruleset,
        RulesetAttr, RulesetCreatedAttr, RulesetStatus,
    };
    let threads = thread_count();
    if threads != 1 {
        return Err(SandboxError::Threads(threads));
    }
    let abi = ABI::V5;
    let ruleset = Ruleset::default()
        .set_compatibility(CompatLevel::BestEffort)
        .handle_access(AccessFs::from_all(abi))?;
    let ruleset = if state.is_none() {
        ruleset.handle_access(AccessNet::from_all(abi))?
    } else {
        ruleset
    };
    let mut ruleset = ruleset.create()?;
    if let Some(root) = grants.fs_root {
        let rights = if grants.read_only {
            AccessFs::from_read(abi)
        } else {
            AccessFs::from_all(abi)
        };
        ruleset = ruleset.add_rule(PathBeneath::new(root, rights))?;
    }
    // `--stats` reads this process's status at the end.
    if let Ok(own) = File::open("/proc/self") {
        ruleset = ruleset.add_rule(PathBeneath::new(&own, AccessFs::ReadFile))?;
    }
    if let Some(state) = state {
        ruleset = ruleset.add_rule(PathBeneath::new(state, AccessFs::from_all(abi)))?;
        if let Ok(kvm) = File::open(KVM) {
            let rights = AccessFs::ReadFile | AccessFs::WriteFile | AccessFs::IoctlDev;
            ruleset = ruleset.add_rule(PathBeneath::new(&kvm, rights))?;
        }
    } else {
        for a in grants.listen {
            ruleset = ruleset.add_rule(NetPort::new(a.port(), AccessNet::BindTcp))?;
        }
        for a in grants.connect {
            ruleset = ruleset.add_rule(NetPort::new(a.port(), AccessNet::ConnectTcp))?;
        }
    }
    let status = ruleset.restrict_self()?;
    Ok(match status.ruleset {
        RulesetStatus::FullyEnforced => FileRules::Full,
        RulesetStatus::PartiallyEnforced => FileRules::Partial,
        RulesetStatus::NotEnforced => FileRules::Absent,
    })
}

/// The device the daemon's guest is built with.
const KVM: &str = "/dev/kvm";

/// The threads of this process, from `/proc/self/status` (0 if unknown).
fn thread_count() -> usize {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Threads:"))
                .and_then(|n| n.trim().parse().ok())
        })
        .unwrap_or(0)
}

/// The system calls the monitor makes after setup, allowed with any
/// arguments; [`checked`] lists those allowed only with some.
pub const ALLOWED: &[Sysno] = &[
    // Memory (see `checked` for mmap and mprotect).
    Sysno::brk,
    Sysno::munmap,
    Sysno::mremap,
    Sysno::madvise,
    Sysno::mincore,
    // Descriptors, files beneath the root, eventfds, epoll.
    Sysno::read,
    Sysno::readv,
    Sysno::pread64,
    Sysno::preadv,
    Sysno::write,
    Sysno::writev,
    Sysno::pwrite64,
    Sysno::pwritev,
    Sysno::lseek,
    Sysno::close,
    Sysno::dup,
    Sysno::fcntl,
    Sysno::openat,
    Sysno::openat2,
    Sysno::newfstatat,
    Sysno::fstat,
    Sysno::statx,
    Sysno::getdents64,
    Sysno::mkdirat,
    Sysno::unlinkat,
    Sysno::renameat,
    Sysno::renameat2,
    Sysno::readlinkat,
    Sysno::symlinkat,
    Sysno::linkat,
    Sysno::utimensat,
    Sysno::ftruncate,
    Sysno::fallocate,
    Sysno::fsync,
    Sysno::fdatasync,
    Sysno::eventfd2,
    Sysno::epoll_create1,
    Sysno::epoll_ctl,
    Sysno::epoll_wait,
    Sysno::epoll_pwait,
    Sysno::poll,
    Sysno::ppoll,
    // Sockets (see `checked` for socket).
    Sysno::bind,
    Sysno::listen,
    Sysno::accept4,
    Sysno::connect,
    Sysno::shutdown,
    Sysno::setsockopt,
    Sysno::getsockopt,
    Sysno::getsockname,
    Sysno::getpeername,
    Sysno::sendto,
    Sysno::recvfrom,
    Sysno::sendmsg,
    Sysno::recvmsg,
    Sysno::sendmmsg,
    Sysno::recvmmsg,
    // Threads, time, signals, the end.
    Sysno::futex,
    Sysno::sched_yield,
    Sysno::sched_getaffinity,
    Sysno::sched_setaffinity,
    Sysno::set_robust_list,
    Sysno::rseq,
    Sysno::sigaltstack,
    Sysno::gettid,
    Sysno::getpid,
    Sysno::tgkill,
    Sysno::rt_sigaction,
    Sysno::rt_sigprocmask,
    Sysno::rt_sigreturn,
    Sysno::nanosleep,
    Sysno::clock_nanosleep,
    Sysno::clock_gettime,
    Sysno::getrandom,
    Sysno::exit,
    Sysno::exit_group,
];

/// The calls a daemon makes beyond [`ALLOWED`], with any arguments: its
/// state directory's files are replaced by renaming and removed by
/// unlinking, and its Zenoh node asks the kernel's name and the host's
/// memory (measured over the fabric tests with `perf trace`); a path made
/// absolute asks the working directory (seen once, renewing a
/// certificate). The rest only read what path resolution and the
/// process's identity are (a rare path of a library is not worth the
/// daemon's life).
pub const DAEMON_ALLOWED: &[Sysno] = &[
    Sysno::rename,
    Sysno::unlink,
    Sysno::uname,
    Sysno::sysinfo,
    Sysno::getcwd,
    Sysno::readlink,
    Sysno::access,
    Sysno::faccessat,
    Sysno::faccessat2,
    Sysno::stat,
    Sysno::lstat,
    Sysno::getuid,
    Sysno::geteuid,
    Sysno::getgid,
    Sysno::getegid,
];

/// The network interface queries (`ioctl`s of type 0x89) a daemon's Zenoh
/// node may make, all of them reads: an interface's name, the list,
/// flags, address, netmask, MTU and index (`if_nametoindex` asks that
/// one).
const INTERFACE_QUERIES: [u64; 7] = [0x8910, 0x8912, 0x8913, 0x8915, 0x891b, 0x8921, 0x8933];

/// The bits of `socket`'s second argument that give the socket's type
/// (the rest are `SOCK_NONBLOCK` and `SOCK_CLOEXEC`).
const SOCKET_TYPE: u64 = 0xf;

/// The type of KVM's `ioctl` requests (the VM, its vCPU, the guest's
/// ioeventfds and irqfds, memory slots).
const KVMIO: u64 = 0xae;

/// The calls allowed only with some arguments: threads (`clone` of a
/// thread; `clone3`, whose flags a filter cannot read, fails with
/// `ENOSYS` and the C library falls back to `clone`), memory that is never
/// executable, IPv4 and IPv6 sockets of TCP and UDP, KVM's `ioctl`s and `FIONBIO`, and
/// naming threads (and making the process not dumpable as it dies); with
/// a `child` (QEMU, PROTOCOL.md §22.5), killing and reaping that process
/// alone; for a daemon, Unix sockets (the CLI's) and netlink ones and
/// [`INTERFACE_QUERIES`] (Zenoh reads the host's interfaces) too.
fn checked(profile: Profile) -> Result<BTreeMap<i64, Vec<SeccompRule>>, seccompiler::BackendError> {
    let arg = |index, op, value| SeccompCondition::new(index, Len::Qword, op, value);
    let exec = libc::PROT_EXEC as u64;
    let one = |c: SeccompCondition| SeccompRule::new(vec![c]);
    let mut rules = BTreeMap::new();
    rules.insert(
        Sysno::clone.id().into(),
        vec![one(arg(
            0,
            Op::MaskedEq(libc::CLONE_THREAD as u64),
            libc::CLONE_THREAD as u64,
        )?)?],
    );
    for call in [Sysno::mmap, Sysno::mprotect] {
        rules.insert(call.id().into(), vec![one(arg(2, Op::MaskedEq(exec), 0)?)?]);
    }
    // IP sockets of TCP and UDP only: a raw socket (which root may open)
    // is a privilege the monitor does not use.
    let (stream, datagram) = (libc::SOCK_STREAM as u64, libc::SOCK_DGRAM as u64);
    let mut sockets = Vec::new();
    for family in [libc::AF_INET, libc::AF_INET6] {
        for kind in [stream, datagram] {
            sockets.push(SeccompRule::new(vec![
                arg(0, Op::Eq, family as u64)?,
                arg(1, Op::MaskedEq(SOCKET_TYPE), kind)?,
            ])?);
        }
    }
    if profile == Profile::Daemon {
        for family in [libc::AF_UNIX, libc::AF_NETLINK] {
            sockets.push(one(arg(0, Op::Eq, family as u64)?)?);
        }
    }
    rules.insert(Sysno::socket.id().into(), sockets);
    let mut ioctls = vec![one(arg(1, Op::MaskedEq(0xff00), KVMIO << 8)?)?];
    // `std`'s `set_nonblocking` on a socket.
    ioctls.push(one(arg(1, Op::Eq, libc::FIONBIO)?)?);
    if profile == Profile::Daemon {
        for query in INTERFACE_QUERIES {
            ioctls.push(one(arg(1, Op::Eq, query)?)?);
        }
    }
    rules.insert(Sysno::ioctl.id().into(), ioctls);
    if let Profile::Run { child: Some(pid) } = profile {
        let pid = u64::from(pid.unsigned_abs());
        rules.insert(
            Sysno::kill.id().into(),
            vec![SeccompRule::new(vec![
                arg(0, Op::Eq, pid)?,
                arg(1, Op::Eq, libc::SIGKILL as u64)?,
            ])?],
        );
        rules.insert(Sysno::wait4.id().into(), vec![one(arg(0, Op::Eq, pid)?)?]);
    }
    rules.insert(
        Sysno::prctl.id().into(),
        vec![
            one(arg(0, Op::Eq, libc::PR_SET_NAME as u64)?)?,
            one(arg(0, Op::Eq, libc::PR_SET_DUMPABLE as u64)?)?,
        ],
    );
    Ok(rules)
}

/// The filters, in the order they are installed: `clone3` fails with
/// `ENOSYS`; [`ALLOWED`] and [`checked`] pass and everything else traps
/// (the kernel takes the strictest answer of all filters: `ENOSYS` over
/// the second's "allow"). Installing the second takes calls the first
/// allows (`prctl`, `seccomp`) but the second would not.
fn filters(profile: Profile) -> Result<[BpfProgram; 2], SandboxError> {
    let mut rules = checked(profile)?;
    let daemon: &[Sysno] = match profile {
        Profile::Daemon => DAEMON_ALLOWED,
        Profile::Run { .. } => &[],
    };
    for call in ALLOWED.iter().chain(daemon).chain([&Sysno::clone3]) {
        rules.insert(call.id().into(), Vec::new());
    }
    let allowed = SeccompFilter::new(
        rules,
        SeccompAction::Trap,
        SeccompAction::Allow,
        TargetArch::x86_64,
    )?;
    let mut clone3 = BTreeMap::new();
    clone3.insert(Sysno::clone3.id().into(), Vec::new());
    let enosys = SeccompFilter::new(
        clone3,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::ENOSYS as u32),
        TargetArch::x86_64,
    )?;
    Ok([enosys.try_into()?, allowed.try_into()?])
}

/// Whose calls the filter allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Profile {
    /// `weft run`'s; `child` is a process it started and may still kill
    /// and reap (QEMU).
    Run { child: Option<libc::pid_t> },
    /// `weft daemon`'s: also its Zenoh node's, its local socket's and its
    /// state directory's ([`DAEMON_ALLOWED`], [`checked`]).
    Daemon,
}

impl Profile {
    /// Whether it is `weft run`'s (whose file rules apply too).
    pub fn is_run(self) -> bool {
        matches!(self, Profile::Run { .. })
    }
}

/// Layer 2: from now on, on every thread of the process (and those it
/// starts), only the calls the filters allow for `profile`; any other is
/// reported and ends the process.
pub fn restrict_calls(profile: Profile) -> Result<(), SandboxError> {
    let filters = filters(profile)?;
    crate::host::on_signal(libc::SIGSYS, refused).map_err(SandboxError::Signal)?;
    for f in &filters {
        seccompiler::apply_filter_all_threads(f)?;
    }
    Ok(())
}

/// Where a `SIGSYS` from seccomp keeps the refused call's number: the
/// `_sigsys` member of `siginfo_t`'s union (after `si_signo`, `si_errno`,
/// `si_code` and padding, 16 bytes), after its `_call_addr` pointer.
const SIGSYS_SYSCALL_OFFSET: usize = 24;

/// The `SIGSYS` handler: says which call was refused and ends the process
/// by `SIGSYS`. Async-signal-safe: it formats into a stack buffer and makes
/// only allowed calls (`write`, `prctl`, `rt_sigaction`, `tgkill`).
extern "C" fn refused(_: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid `siginfo_t` to an `SA_SIGINFO`
    // handler (`host::on_signal` installs it so); for a seccomp `SIGSYS`
    // the call's number is an `int` at `SIGSYS_SYSCALL_OFFSET`, inside the
    // 128-byte structure.
    let nr = unsafe {
        info.cast::<u8>()
            .add(SIGSYS_SYSCALL_OFFSET)
            .cast::<i32>()
            .read()
    };
    let name = usize::try_from(nr)
        .ok()
        .and_then(Sysno::new)
        .map_or("unknown", |s| s.name());
    let mut line = Line::default();
    line.push(b"weft: the sandbox refused system call ");
    line.push(name.as_bytes());
    line.push(b" (");
    line.number(nr);
    line.push(b"); stopping\n");
    // SAFETY: `line` is a valid buffer of `len` bytes; the rest are plain
    // calls with constant arguments. With the default action restored, the
    // `SIGSYS` raised here (blocked while the handler runs) kills the
    // process when the handler returns; not dumpable: no core file.
    unsafe {
        libc::write(2, line.buf.as_ptr().cast(), line.len);
        libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
        libc::signal(libc::SIGSYS, libc::SIG_DFL);
        libc::raise(libc::SIGSYS);
    }
}

/// A line built without allocating.
struct Line {
    buf: [u8; 128],
    len: usize,
}

impl Default for Line {
    fn default() -> Self {
        Self {
            buf: [0; 128],
            len: 0,
        }
    }
}

impl Line {
    fn push(&mut self, bytes: &[u8]) {
        let n = bytes.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&bytes[..n]);
        self.len += n;
    }

    fn number(&mut self, n: i32) {
        let mut digits = [0u8; 11];
        let mut at = digits.len();
        let mut v = n.unsigned_abs();
        loop {
            at -= 1;
            digits[at] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        if n < 0 {
            self.push(b"-");
        }
        self.push(&digits[at..]);
    }
}
