//! The monitor's sandbox (`weft_monitor::sandbox`, PROTOCOL.md §20.2), each
//! case in a child process of its own (a sandbox is for good, and its file
//! rules bind only a process's one thread): this binary (no test harness,
//! so a child is single-threaded) runs itself with [`CHILD`] naming the
//! case, and the parent asserts on how the child ended and what it said.
//! That every other call the monitor makes is allowed is shown by the
//! guest-booting tests, which all run `weft run` in its sandbox.

mod common;

use common::TempDir;
use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Command;
use weft_monitor::sandbox::{self, FileRules, Grants};

/// `weft run`'s filter, with no process of its own to kill.
const RUN: sandbox::Profile = sandbox::Profile::Run { child: None };

/// Set in a child: the case, then its directory.
const CHILD: &str = "WEFT_SANDBOX_CASE";

fn main() {
    if let Ok(case) = std::env::var(CHILD) {
        let (case, dir) = case.split_once(' ').expect("case and directory");
        child(case, Path::new(dir));
        std::process::exit(0);
    }
    common::run_cases(TESTS);
}

const TESTS: &[(&str, fn())] = &[
    ("a_refused_call_ends_the_process_with_a_report", || {
        refused("execve", "execve (59)");
    }),
    ("starting_a_process_is_refused", || {
        refused("fork", "clone (56)")
    }),
    ("executable_memory_is_refused", || {
        refused("exec-memory", "mmap (9)");
    }),
    ("threads_files_and_sockets_work_in_the_sandbox", || {
        passed("allowed");
    }),
    (
        "files_outside_the_root_and_ungranted_ports_are_refused",
        || passed("files"),
    ),
    ("a_read_only_root_is_read_only", || passed("read-only")),
    ("a_unix_socket_is_refused_to_weft_run", || {
        refused("run-unix", "socket (41)");
    }),
    ("a_raw_socket_is_refused", || {
        for case in ["raw-socket", "daemon-raw-socket"] {
            refused(case, "socket (41)");
            // Refused at the raw socket, not before it.
            let out = String::from_utf8_lossy(&run_child(case).stdout).into_owned();
            assert_eq!(out, "tcp and udp: ok\n", "{case}");
        }
    }),
    ("the_daemon_filter_allows_what_a_daemon_does", || {
        passed("daemon-allowed");
    }),
    ("a_panic_in_the_daemon_filter_prints_its_backtrace", || {
        let out = run_child("daemon-panic");
        assert!(out.status.success(), "{out:?}");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "daemon-panic: ok\n");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("a library's bug") && err.contains("stack backtrace"),
            "{err}"
        );
    }),
    (
        "the_daemon_opens_files_only_beneath_its_state_directory_and_root",
        || passed("daemon-files"),
    ),
    ("the_daemon_filter_refuses_starting_a_program", || {
        refused("daemon-execve", "execve (59)");
    }),
    ("weft_run_says_its_sandbox_holds", || {
        let out = Command::new(env!("CARGO_BIN_EXE_weft"))
            .args(["run", "--stats", "hello"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("  sandbox: system_calls files ports\n"),
            "{err}"
        );
        let out = Command::new(env!("CARGO_BIN_EXE_weft"))
            .args(["run", "--stats", "--no-sandbox", "hello"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("  sandbox: off\n"), "{err}");
    }),
];

/// Asserts that case `case` ends by the sandbox's refusal of `call`
/// (`NAME (N)`), reported, without a core file, before it ran on.
fn refused(case: &str, call: &str) {
    let out = run_child(case);
    assert_eq!(out.status.signal(), Some(libc::SIGSYS), "{out:?}");
    assert!(!out.status.core_dumped());
    let err = String::from_utf8_lossy(&out.stderr);
    let report = format!("weft: the sandbox refused system call {call}; stopping");
    assert!(err.contains(&report), "{err}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("ran"));
}

/// Asserts that case `case` ran to its end (`CASE: ok`).
fn passed(case: &str) {
    let out = run_child(case);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("{case}: ok\n")
    );
}

/// Runs `case` in a child with a fresh directory; its output.
fn run_child(case: &str) -> std::process::Output {
    let dir = TempDir::new(&format!("sandbox-{case}"));
    std::fs::create_dir_all(dir.join("root")).unwrap();
    std::fs::write(dir.join("root/inside.txt"), b"inside\n").unwrap();
    std::fs::write(dir.join("outside.txt"), b"outside\n").unwrap();
    Command::new(std::env::current_exe().unwrap())
        .env(CHILD, format!("{case} {}", dir.display()))
        .output()
        .unwrap()
}

/// The filter a case runs under: the daemon's for `daemon-…` cases.
fn profile_of(case: &str) -> sandbox::Profile {
    if case.starts_with("daemon-") {
        sandbox::Profile::Daemon
    } else {
        RUN
    }
}

fn child(case: &str, dir: &Path) {
    match case {
        "execve" | "daemon-execve" => {
            sandbox::restrict_calls(profile_of(case)).unwrap();
            let path = c"/bin/true";
            let argv = [path.as_ptr(), std::ptr::null()];
            // SAFETY: a NUL-terminated path and argument vector.
            unsafe { libc::execv(path.as_ptr(), argv.as_ptr()) };
            println!("ran");
        }
        "fork" => {
            sandbox::restrict_calls(RUN).unwrap();
            // SAFETY: the child, if there were one, would only exit.
            if unsafe { libc::fork() } == 0 {
                std::process::exit(0);
            }
            println!("ran");
        }
        "exec-memory" => {
            sandbox::restrict_calls(RUN).unwrap();
            // SAFETY: an anonymous private mapping, never used.
            unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    4096,
                    libc::PROT_READ | libc::PROT_EXEC,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                    -1,
                    0,
                )
            };
            println!("ran");
        }
        "allowed" => {
            let root = std::fs::File::open(dir.join("root")).unwrap();
            let granted = [SocketAddr::from(([127, 0, 0, 1], free_port()))];
            let rules = sandbox::restrict_files(&grants(&root, false, &granted, &granted)).unwrap();
            assert_eq!(rules, FileRules::Full);
            sandbox::restrict_calls(RUN).unwrap();
            let worker = std::thread::spawn(|| {
                vec![7u8; 1 << 20]
                    .iter()
                    .map(|b| u64::from(*b))
                    .sum::<u64>()
            });
            assert_eq!(worker.join().unwrap(), 7u64 << 20);
            let _listener = TcpListener::bind(granted[0]).unwrap();
            let mut conn = std::net::TcpStream::connect(granted[0]).unwrap();
            conn.write_all(b"x").unwrap();
            let path = dir.join("root/made.txt");
            std::fs::write(&path, b"made").unwrap();
            assert_eq!(std::fs::read(&path).unwrap(), b"made");
            println!("allowed: ok");
        }
        "run-unix" => {
            sandbox::restrict_calls(RUN).unwrap();
            let _ = std::os::unix::net::UnixDatagram::unbound();
            println!("ran");
        }
        "raw-socket" | "daemon-raw-socket" => {
            sandbox::restrict_calls(profile_of(case)).unwrap();
            // TCP and UDP sockets (non-blocking, as tokio makes them) are
            // allowed; a raw one is not.
            // SAFETY: plain calls without pointers.
            unsafe {
                let tcp = libc::socket(
                    libc::AF_INET,
                    libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                    0,
                );
                assert!(tcp >= 0);
                let udp = libc::socket(libc::AF_INET6, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
                assert!(udp >= 0);
                println!("tcp and udp: ok");
                std::io::stdout().flush().unwrap();
                libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_ICMP);
            }
            println!("ran");
        }
        "daemon-allowed" => {
            sandbox::restrict_calls(sandbox::Profile::Daemon).unwrap();
            // The local socket, and what Zenoh asks of the host's
            // interfaces (a netlink socket, an interface's index).
            let socket = dir.join("daemon.sock");
            let _local = std::os::unix::net::UnixListener::bind(&socket).unwrap();
            // SAFETY: plain calls; the name is NUL-terminated.
            unsafe {
                let netlink = libc::socket(libc::AF_NETLINK, libc::SOCK_RAW, 0);
                assert!(netlink >= 0);
                libc::close(netlink);
                assert!(libc::if_nametoindex(c"lo".as_ptr()) > 0);
            }
            // A state file replaced by a rename, then removed.
            let (new, old) = (dir.join("state.new"), dir.join("state"));
            std::fs::write(&new, b"state").unwrap();
            std::fs::rename(&new, &old).unwrap();
            std::fs::remove_file(&old).unwrap();
            let thread = std::thread::spawn(|| 7);
            assert_eq!(thread.join().unwrap(), 7);
            println!("daemon-allowed: ok");
        }
        "daemon-panic" => {
            // A thread of a library (Zenoh's, say) that panics with
            // backtraces on: the report is printed (it asks the working
            // directory, among others) and the daemon goes on.
            // SAFETY: the child has one thread here.
            unsafe { std::env::set_var("RUST_BACKTRACE", "1") };
            sandbox::restrict_calls(sandbox::Profile::Daemon).unwrap();
            let panicked = std::thread::spawn(|| panic!("a library's bug")).join();
            assert!(panicked.is_err());
            println!("daemon-panic: ok");
        }
        "files" => {
            let root = std::fs::File::open(dir.join("root")).unwrap();
            let granted = free_port();
            let other = free_port();
            let listen = [SocketAddr::from(([127, 0, 0, 1], granted))];
            sandbox::restrict_files(&grants(&root, false, &listen, &[])).unwrap();
            assert_eq!(read(&dir.join("root/inside.txt")), Ok(b"inside\n".to_vec()));
            assert_eq!(read(&dir.join("outside.txt")), Err(libc::EACCES));
            assert_eq!(read(Path::new("/etc/hostname")), Err(libc::EACCES));
            assert!(TcpListener::bind(("127.0.0.1", granted)).is_ok());
            let refused = TcpListener::bind(("127.0.0.1", other)).unwrap_err();
            assert_eq!(refused.raw_os_error(), Some(libc::EACCES));
            println!("files: ok");
        }
        "daemon-files" => {
            let state = dir.join("state");
            std::fs::create_dir_all(&state).unwrap();
            let root = std::fs::File::open(dir.join("root")).unwrap();
            let state_dir = std::fs::File::open(&state).unwrap();
            let any = free_port();
            let rules =
                sandbox::restrict_daemon_files(&state_dir, &grants(&root, true, &[], &[])).unwrap();
            assert_eq!(rules, FileRules::Full);
            // Its state directory: every right (files replaced, a socket).
            std::fs::write(state.join("new.json"), b"{}").unwrap();
            std::fs::rename(state.join("new.json"), state.join("services.json")).unwrap();
            assert_eq!(read(&state.join("services.json")), Ok(b"{}".to_vec()));
            std::os::unix::net::UnixListener::bind(state.join("daemon.sock")).unwrap();
            // The guest's root as granted (here read only), and the VM's device.
            assert_eq!(read(&dir.join("root/inside.txt")), Ok(b"inside\n".to_vec()));
            let made = std::fs::write(dir.join("root/made.txt"), b"x").unwrap_err();
            assert_eq!(made.raw_os_error(), Some(libc::EACCES));
            kvm_ioctls::Kvm::new().expect("/dev/kvm opens and answers");
            // Nothing else.
            assert_eq!(read(&dir.join("outside.txt")), Err(libc::EACCES));
            assert_eq!(read(Path::new("/etc/hostname")), Err(libc::EACCES));
            let outside = std::fs::write(dir.join("made.txt"), b"x").unwrap_err();
            assert_eq!(outside.raw_os_error(), Some(libc::EACCES));
            // Its ports are its peers' to choose: not limited.
            assert!(TcpListener::bind(("127.0.0.1", any)).is_ok());
            println!("daemon-files: ok");
        }
        "read-only" => {
            let root = std::fs::File::open(dir.join("root")).unwrap();
            sandbox::restrict_files(&grants(&root, true, &[], &[])).unwrap();
            assert_eq!(read(&dir.join("root/inside.txt")), Ok(b"inside\n".to_vec()));
            let made = std::fs::write(dir.join("root/made.txt"), b"x").unwrap_err();
            assert_eq!(made.raw_os_error(), Some(libc::EACCES));
            println!("read-only: ok");
        }
        other => panic!("no case {other}"),
    }
}

fn grants<'a>(
    root: &'a std::fs::File,
    read_only: bool,
    listen: &'a [SocketAddr],
    connect: &'a [SocketAddr],
) -> Grants<'a> {
    Grants {
        fs_root: Some(root),
        read_only,
        listen,
        connect,
    }
}

/// A file's bytes, or the error number reading it gave.
fn read(path: &Path) -> Result<Vec<u8>, i32> {
    std::fs::read(path).map_err(|e| e.raw_os_error().unwrap_or(0))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
