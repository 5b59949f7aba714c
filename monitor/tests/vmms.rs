//! The same guests under every VMM Weft runs on (PROTOCOL.md §22): Weft's
//! own KVM monitor, QEMU with KVM and QEMU with TCG. Each case is one body
//! run three times, with `--vmm`/`--accel` the only difference, asserting
//! the same output, exit status and reports; one more case hides
//! `/dev/kvm` from `weft` and QEMU and still runs under TCG.

mod common;

use common::{
    Server, TempDir, connect_when_up, crash_kernel, echo_datagrams, echo_round_trip, free_port,
    guest_program, http_server, random_bytes, wasm, weft,
};
use std::fs;
use std::io::Write;
use std::process::{Output, Stdio};

/// `weft run` with `vmm`'s options, then `args`.
fn run(vmm: &[&str], args: &[&str]) -> Output {
    weft()
        .arg("run")
        .args(vmm)
        .args(["--timeout", "120"])
        .args(args)
        .output()
        .expect("spawn weft")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// One test per VMM for each body: `name::weft`, `name::qemu_kvm`,
/// `name::qemu_tcg`.
macro_rules! across_vmms {
    ($($name:ident => $body:expr;)*) => {$(
        mod $name {
            #[test]
            fn weft() {
                $body(&[]);
            }
            #[test]
            fn qemu_kvm() {
                $body(&["--vmm", "qemu", "--accel", "kvm"]);
            }
            #[test]
            fn qemu_tcg() {
                $body(&["--vmm", "qemu", "--accel", "tcg"]);
            }
        }
    )*};
}

across_vmms! {
    boot_prints_each_argument => super::boot_prints_each_argument;
    exit_statuses_are_the_programs => super::exit_statuses_are_the_programs;
    a_fault_is_reported_with_symbols => super::a_fault_is_reported_with_symbols;
    a_kernel_panic_is_reported_with_symbols => super::a_kernel_panic_is_reported_with_symbols;
    a_timeout_stops_a_spinning_guest => super::a_timeout_stops_a_spinning_guest;
    a_signal_to_the_group_stops_the_guest => super::a_signal_to_the_group_stops_the_guest;
    files_are_read_and_written_beneath_the_root => super::files_are_read_and_written_beneath_the_root;
    tcp_is_served_both_ways => super::tcp_is_served_both_ways;
    udp_datagrams_are_echoed => super::udp_datagrams_are_echoed;
    wasm_hello_runs => super::wasm_hello_runs;
    standard_input_is_copied => super::standard_input_is_copied;
    processes_and_the_timer_work => super::processes_and_the_timer_work;
}

fn boot_prints_each_argument(vmm: &[&str]) {
    let o = run(vmm, &["hello", "one", "two words", "-x", "--mem"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert_eq!(
        text(&o.stdout),
        "Hello from Weft!\none\ntwo words\n-x\n--mem\n"
    );
    assert_eq!(text(&o.stderr), "");
}

fn exit_statuses_are_the_programs(vmm: &[&str]) {
    for status in ["0", "7", "125"] {
        let o = run(vmm, &["exit-code", status]);
        assert_eq!(o.status.code(), status.parse().ok(), "{}", text(&o.stderr));
        assert!(o.stdout.is_empty());
    }
    let o = run(vmm, &["exit-code", "abc"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("usage: exit-code N"),
        "{}",
        text(&o.stderr)
    );
}

fn a_fault_is_reported_with_symbols(vmm: &[&str]) {
    let o = run(vmm, &["fault"]);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(125), "{err}");
    assert_eq!(text(&o.stdout), "reading address 0xdead\n");
    assert!(
        err.contains(
            "program `fault` fault: page fault at address 0xdead (read from ring 3, page not mapped)"
        ),
        "{err}"
    );
    assert!(err.contains("weft_program_main+"), "{err}");
    assert!(err.contains("weft_user::rt::weft_user_start"), "{err}");
    assert!(err.contains("cr2=0x000000000000dead"), "{err}");
}

fn a_kernel_panic_is_reported_with_symbols(vmm: &[&str]) {
    let kernel = crash_kernel();
    let o = run(
        vmm,
        &["--kernel", &kernel, &guest_program("crash-kernel"), "panic"],
    );
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(125), "{err}");
    for fragment in [
        "guest crash: kernel panic",
        "crash test: the program asked the kernel to panic",
        "weft_kernel::syscall::crash::nested_panic",
        "[kernel]",
    ] {
        assert!(err.contains(fragment), "missing {fragment:?} in: {err}");
    }
}

fn a_timeout_stops_a_spinning_guest(vmm: &[&str]) {
    let o = weft()
        .arg("run")
        .args(vmm)
        .args(["--timeout", "1", "spin"])
        .output()
        .expect("spawn weft");
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(124), "{err}");
    assert!(err.contains("weft: timed out after 1.0 s"), "{err}");
}

/// SIGINT to `weft`'s whole process group (a Ctrl-C at its terminal)
/// stops the guest, with the output so far and status 130, whichever
/// VMM runs it.
fn a_signal_to_the_group_stops_the_guest(vmm: &[&str]) {
    use std::os::unix::process::CommandExt;
    let mut child = weft()
        .arg("run")
        .args(vmm)
        .args(["--timeout", "120", "spin"])
        .process_group(0)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn weft");
    let out = common::lines(child.stdout.take().expect("stdout"));
    common::wait_for_line(&out, "spinning");
    let group = child.id() as libc::pid_t;
    // SAFETY: `kill` has no memory effects; the group is the child's own,
    // which is not reaped before this.
    assert_eq!(unsafe { libc::kill(-group, libc::SIGINT) }, 0);
    let o = child.wait_with_output().expect("weft ends");
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(130), "{err}");
    // The signal was `weft`'s to handle: QEMU, in a group of its own, saw
    // none (it would say it terminated on it).
    assert!(!err.contains("terminating on signal"), "{err}");
}

/// A scratch directory for `--fs-root`, removed at the end.
fn scratch_root(vmm: &[&str]) -> TempDir {
    TempDir::new(&format!("vmms-{}", vmm.join("-").replace("--", "")))
}

fn files_are_read_and_written_beneath_the_root(vmm: &[&str]) {
    let root = scratch_root(vmm);
    let data = random_bytes(11, 700_000);
    fs::write(root.join("src"), &data).unwrap();
    let dir = root.display().to_string();
    let o = run(vmm, &["--fs-root", &dir, "cp", "/src", "/dst"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(
        fs::read(root.join("dst")).unwrap() == data,
        "cp's copy differs"
    );
    let o = run(vmm, &["--fs-root", &dir, "cat", "/dst", "/src"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(o.stdout.len() == 2 * data.len() && o.stdout[..data.len()] == data[..]);
    let o = run(vmm, &["--fs-root", &dir, "cat", "/../etc/passwd"]);
    assert_ne!(o.status.code(), Some(0));
    assert!(o.stdout.is_empty());
}

/// `weft run` with `vmm`'s options of the server `program`, granted and
/// told to listen on a free port; the server and its address.
fn start_server(vmm: &[&str], program: &str) -> (Server, u16) {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let port_arg = port.to_string();
    let mut args = vec!["run"];
    args.extend(vmm);
    args.extend(["--listen", &listen, "--timeout", "300", program, &port_arg]);
    (Server::start(&args), port)
}

fn tcp_is_served_both_ways(vmm: &[&str]) {
    // In: the guest's echo server, a host client.
    let (server, port) = start_server(vmm, "echo-server");
    let data = random_bytes(5, 300_000);
    let back = echo_round_trip(connect_when_up(port), data.clone());
    assert!(back == data, "echo differs ({} bytes back)", back.len());
    drop(server);

    // Out: the guest's HTTP client, a host server.
    let body = random_bytes(6, 200_000);
    let (addr, host) = http_server(body.clone(), 1);
    let target = addr.to_string();
    let o = run(vmm, &["--connect", &target, "http-get", &target, "/data"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(o.stdout == body, "body differs ({} bytes)", o.stdout.len());
    assert!(host.join().unwrap()[0].starts_with("GET /data HTTP/1.1\r\n"));
}

fn udp_datagrams_are_echoed(vmm: &[&str]) {
    let (_server, port) = start_server(vmm, "udp-echo");
    echo_datagrams(&format!("127.0.0.1:{port}"));
}

fn wasm_hello_runs(vmm: &[&str]) {
    let o = run(vmm, &[&wasm("hello"), "a", "b"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(
        text(&o.stdout).starts_with("Hello from Wasm!"),
        "{}",
        text(&o.stdout)
    );
}

/// With no `/dev/kvm` (a mount namespace whose `/dev` lacks it), `--vmm
/// qemu` picks TCG and the guest runs.
#[test]
fn without_dev_kvm_qemu_runs_the_guest_with_tcg() {
    let weft = env!("CARGO_BIN_EXE_weft");
    let script = format!(
        "set -e; orig=$(mktemp -d); mount --bind /dev \"$orig\"; \
         mount -t tmpfs tmpfs /dev; \
         for n in null zero full random urandom; do touch /dev/$n; mount --bind \"$orig/$n\" /dev/$n; done; \
         umount -l \"$orig\"; rmdir \"$orig\"; \
         test ! -e /dev/kvm; \
         exec {weft} run --vmm qemu --timeout 120 hello without kvm"
    );
    let o = std::process::Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .output()
        .expect("run unshare");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout), "Hello from Weft!\nwithout\nkvm\n");
    // And asking for KVM there is a clear usage error.
    let script = script.replace("run --vmm qemu", "run --vmm qemu --accel kvm");
    let o = std::process::Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .output()
        .expect("run unshare");
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("--accel kvm needs /dev/kvm"),
        "{}",
        text(&o.stderr)
    );
}

fn standard_input_is_copied(vmm: &[&str]) {
    let data = random_bytes(9, 400_000);
    let mut child = weft()
        .arg("run")
        .args(vmm)
        .args(["--timeout", "120", "cat"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn weft");
    let mut input = child.stdin.take().expect("stdin");
    let sent = data.clone();
    let writer = std::thread::spawn(move || input.write_all(&sent));
    let o = child.wait_with_output().expect("weft ends");
    writer
        .join()
        .expect("the writer ends")
        .expect("write stdin");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(
        o.stdout == data,
        "stdin came back different ({} bytes)",
        o.stdout.len()
    );
}

fn processes_and_the_timer_work(vmm: &[&str]) {
    let o = run(
        vmm,
        &[
            "procs",
            "hello",
            "a",
            "--",
            "exit-code",
            "3",
            "--",
            "sleep",
            "50",
        ],
    );
    let out = text(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    for line in [
        "Hello from Weft!",
        "procs: exit-code (pid 3) exited with status 3",
        "slept 50 ms",
        "procs: sleep (pid 4) exited with status 0",
    ] {
        assert!(out.contains(line), "missing {line:?} in: {out}");
    }
}
