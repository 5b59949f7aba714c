//! Integration tests of the device agent (PROTOCOL.md §15): each case boots
//! a real KVM guest through the library, with the agent (`device`) as its
//! first program and a device link, and drives it through the link's
//! handle: spawning bundled programs and images, listing, inspecting
//! (from the status page, live), killing, refusals, shutting down, and an
//! idle device staying idle.

mod common;

use common::{target, wasm};
use std::borrow::Cow;
use std::future::Future;
use std::path::PathBuf;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::broadcast;
use weft_control::device_proto::MAX_IMAGE;
use weft_control::error::ErrorCode;
use weft_control::process::state;
use weft_monitor::catalog::{Catalog, DEVICE_AGENT};
use weft_monitor::run::{self, RunConfig, RunError};
use weft_monitor::status::ExitStatus;
use weft_monitor::streams::{DeviceError, DeviceHandle, Exit, Policy, SpawnImage, device_link};

/// How long any one step may take before the test fails.
const STEP: Duration = Duration::from_secs(60);

fn guest_dir() -> PathBuf {
    target().join("x86_64-unknown-none/release")
}

/// The programs `make guest` built, by name.
struct Built;

impl Catalog for Built {
    fn find(&self, name: &str) -> Option<Cow<'static, [u8]>> {
        if name.contains('/') {
            return None;
        }
        std::fs::read(guest_dir().join(name)).ok().map(Cow::Owned)
    }
}

/// A device guest running in a thread of its own.
struct Device {
    handle: DeviceHandle,
    run: JoinHandle<Result<ExitStatus, RunError>>,
}

fn boot() -> Device {
    let read = |name: &str| {
        let p = guest_dir().join(name);
        std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e} (run `make guest`)", p.display()))
    };
    let kernel = read("weft-kernel");
    let agent = read(DEVICE_AGENT);
    let (link, handle) = device_link();
    let run = std::thread::spawn(move || {
        let cfg = RunConfig {
            kernel: &kernel,
            program: &agent,
            payload: None,
            program_name: DEVICE_AGENT,
            args: vec![DEVICE_AGENT.as_bytes().to_vec()],
            env: Vec::new(),
            mem_bytes: 256 << 20,
            timeout: None,
            stats: false,
            policy: Policy::default(),
            catalog: &Built,
            device: Some(link),
            fabric: None,
            // The test's own threads run beside it: no sandbox.
            sandbox: None,
            gdb: None,
            engine: weft_monitor::run::Engine::Weft,
        };
        run::run(cfg, Instant::now())
    });
    Device { handle, run }
}

/// Runs `test` against a freshly booted device guest, on a runtime of the
/// test's own (as the daemon drives it from a runtime apart from the
/// monitor's), and shuts the guest down after it.
fn with_device<F: Future<Output = ()>>(test: impl FnOnce(DeviceHandle) -> F) {
    let device = boot();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let shut = rt.block_on(async {
        step(device.handle.ready()).await.unwrap();
        test(device.handle.clone()).await;
        step(device.handle.shutdown()).await
    });
    let status = device.run.join().unwrap();
    assert_eq!(
        (shut, status.as_ref().ok()),
        (Ok(()), Some(&ExitStatus::Program(0))),
        "{status:?}"
    );
}

/// `f`, failing the test if it takes longer than [`STEP`].
async fn step<T>(f: impl Future<Output = T>) -> T {
    tokio::time::timeout(STEP, f)
        .await
        .expect("the device did not answer in time")
}

/// The next exit announced.
async fn next_exit(exits: &mut broadcast::Receiver<Exit>) -> Exit {
    step(exits.recv()).await.unwrap()
}

fn args(list: &[&str]) -> Vec<Vec<u8>> {
    list.iter().map(|a| a.as_bytes().to_vec()).collect()
}

fn bundled(name: &str) -> SpawnImage {
    SpawnImage::Bundled(name.to_owned())
}

#[test]
fn bundled_programs_run_and_their_exits_are_announced() {
    with_device(|d| async move {
        let mut exits = d.exits();
        let hello = step(d.spawn(bundled("hello"), args(&["hello", "device"])))
            .await
            .unwrap();
        assert!(hello > 1);
        assert_eq!(
            next_exit(&mut exits).await,
            Exit {
                pid: hello,
                status: 0
            }
        );
        let seven = step(d.spawn(bundled("exit-code"), args(&["exit-code", "7"])))
            .await
            .unwrap();
        assert_eq!(
            next_exit(&mut exits).await,
            Exit {
                pid: seven,
                status: 7
            }
        );
        // A fault ends only the faulting process.
        let fault = step(d.spawn(bundled("fault"), args(&["fault"])))
            .await
            .unwrap();
        assert_eq!(
            next_exit(&mut exits).await,
            Exit {
                pid: fault,
                status: 125
            }
        );
    });
}

#[test]
fn images_are_handed_over_in_chunks() {
    with_device(|d| async move {
        let mut exits = d.exits();
        let module = std::fs::read(wasm("hello")).unwrap();
        let pid = step(d.spawn(SpawnImage::Bytes(module.clone()), args(&["hello.wasm"])))
            .await
            .unwrap();
        assert_eq!(next_exit(&mut exits).await, Exit { pid, status: 0 });
        // The same module padded past many frames (a custom section).
        let padded = with_custom_section(&module, 6 << 20);
        let pid = step(d.spawn(SpawnImage::Bytes(padded), args(&["big.wasm"])))
            .await
            .unwrap();
        assert_eq!(next_exit(&mut exits).await, Exit { pid, status: 0 });
        // A native ELF from its bytes.
        let elf = std::fs::read(guest_dir().join("exit-code")).unwrap();
        let pid = step(d.spawn(SpawnImage::Bytes(elf), args(&["exit-code", "3"])))
            .await
            .unwrap();
        assert_eq!(next_exit(&mut exits).await, Exit { pid, status: 3 });
    });
}

/// `module` with a custom section appended that makes it `len` bytes
/// longer (roughly).
fn with_custom_section(module: &[u8], len: usize) -> Vec<u8> {
    let mut payload = vec![1u8, b'x'];
    payload.resize(len, 0);
    let mut out = module.to_vec();
    out.push(0);
    let mut n = payload.len();
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            break;
        }
        out.push(byte | 0x80);
    }
    out.extend_from_slice(&payload);
    out
}

#[test]
fn processes_are_listed_inspected_and_killed() {
    with_device(|d| async move {
        let mut exits = d.exits();
        let spin = step(d.spawn(bundled("spin"), args(&["spin"])))
            .await
            .unwrap();
        let list = step(d.list()).await.unwrap();
        let agent = list
            .iter()
            .find(|r| r.pid == 1)
            .expect("the agent is listed");
        assert_eq!((agent.parent, agent.name()), (0, DEVICE_AGENT.as_bytes()));
        let child = list.iter().find(|r| r.pid == spin).expect("spin is listed");
        assert_eq!((child.parent, child.name()), (1, &b"spin"[..]));
        // Requests in flight together are answered each in turn.
        let (again, rec) = step(async { tokio::join!(d.list(), d.stats(spin)) }).await;
        assert_eq!(again.unwrap().len(), list.len());
        let rec = rec.unwrap();
        assert_eq!((rec.pid, rec.parent, rec.name()), (spin, 1, &b"spin"[..]));
        assert!(
            matches!(rec.state, state::RUNNABLE | state::BLOCKED),
            "{rec:?}"
        );
        assert!(rec.memory > 0 && rec.streams >= 3, "{rec:?}");
        step(d.kill(spin)).await.unwrap();
        assert_eq!(
            next_exit(&mut exits).await,
            Exit {
                pid: spin,
                status: 137
            }
        );
        let list = step(d.list()).await.unwrap();
        assert!(list.iter().all(|r| r.pid != spin), "{list:?}");
    });
}

/// Process `pid`'s CPU time and state, as listed.
async fn cpu_of(d: &DeviceHandle, pid: u32) -> (u64, u32) {
    let r = step(d.stats(pid)).await.unwrap();
    (r.cpu_ns, r.state)
}

#[test]
fn cpu_time_is_read_live_and_a_sleeping_device_stays_asleep() {
    with_device(|d| async move {
        let sleeper = step(d.spawn(bundled("sleep"), args(&["sleep", "600000"])))
            .await
            .unwrap();
        let asleep = async {
            loop {
                if cpu_of(&d, sleeper).await.1 == state::BLOCKED {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        };
        step(asleep).await;
        let (agent_before, child_before) = (cpu_of(&d, 1).await, cpu_of(&d, sleeper).await);
        tokio::time::sleep(Duration::from_secs(1)).await;
        let (agent_after, child_after) = (cpu_of(&d, 1).await, cpu_of(&d, sleeper).await);
        // Nothing wakes the guest while its child sleeps (an agent that
        // looked for ended children every 10 ms spent a few ms of emulated
        // ring 0 each time), and halted time is no one's.
        assert!(
            agent_after.0 - agent_before.0 < 20_000_000,
            "the agent ran {} ns in a second of rest",
            agent_after.0 - agent_before.0
        );
        assert_eq!(child_after, child_before);
        // A spinning process's time is read as it runs, without entering
        // the guest: it grows with the wall clock.
        let spin = step(d.spawn(bundled("spin"), args(&["spin"])))
            .await
            .unwrap();
        let (first, _) = cpu_of(&d, spin).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (second, running) = cpu_of(&d, spin).await;
        assert_eq!(running, state::RUNNABLE);
        assert!(
            second - first >= 250_000_000,
            "spin ran {} ns in 500 ms",
            second - first
        );
        step(d.kill(spin)).await.unwrap();
        step(d.kill(sleeper)).await.unwrap();
    });
}

#[test]
fn refused_requests_carry_the_agents_error_code() {
    with_device(|d| async move {
        assert_eq!(refused(step(d.kill(999)).await), ErrorCode::NoProcess);
        assert_eq!(refused(step(d.stats(999)).await), ErrorCode::NoProcess);
        let junk = SpawnImage::Bytes(b"\x7fELF, but not really".to_vec());
        let e = step(d.spawn(junk, args(&["junk"]))).await;
        assert_eq!(refused(e), ErrorCode::BadImage);
        let e = step(d.spawn(bundled("no-such-program"), args(&["x"]))).await;
        assert_eq!(refused(e), ErrorCode::NotFound);
        let e = step(d.spawn(SpawnImage::Bytes(Vec::new()), args(&["x"]))).await;
        assert_eq!(e, Err(DeviceError::ImageSize(0)));
        let huge = SpawnImage::Bytes(vec![0; MAX_IMAGE + 1]);
        let e = step(d.spawn(huge, args(&["x"]))).await;
        assert_eq!(e, Err(DeviceError::ImageSize(MAX_IMAGE + 1)));
        let e = step(d.spawn(bundled(""), args(&["x"]))).await;
        assert_eq!(e, Err(DeviceError::NameSize(0)));
        // The agent still serves after refusals.
        assert_eq!(step(d.list()).await.unwrap().len(), 1);
    });
}

/// The agent's error code of a refused request.
fn refused<T: std::fmt::Debug>(r: Result<T, DeviceError>) -> ErrorCode {
    match r {
        Err(DeviceError::Refused { code, .. }) => code,
        other => panic!("not refused: {other:?}"),
    }
}

#[test]
fn shutdown_kills_the_children_and_ends_the_guest() {
    let device = boot();
    let d = device.handle.clone();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let mut exits = d.exits();
    rt.block_on(async {
        step(d.ready()).await.unwrap();
        let a = step(d.spawn(bundled("spin"), args(&["spin"])))
            .await
            .unwrap();
        let b = step(d.spawn(bundled("sleep"), args(&["sleep", "100000"])))
            .await
            .unwrap();
        step(d.shutdown()).await.unwrap();
        let mut ended = vec![next_exit(&mut exits).await, next_exit(&mut exits).await];
        ended.sort_by_key(|e| e.pid);
        assert_eq!(
            ended,
            [
                Exit {
                    pid: a,
                    status: 137
                },
                Exit {
                    pid: b,
                    status: 137
                }
            ]
        );
        assert!(matches!(
            step(exits.recv()).await,
            Err(broadcast::error::RecvError::Closed)
        ));
        assert_eq!(step(d.list()).await, Err(DeviceError::Gone));
        assert_eq!(step(d.ready()).await, Err(DeviceError::Gone));
        let e = step(d.spawn(bundled("hello"), args(&["hello"]))).await;
        assert_eq!(e, Err(DeviceError::Gone));
    });
    let status = device.run.join().unwrap().unwrap();
    assert_eq!(status, ExitStatus::Program(0));
}

#[test]
fn many_spawn_and_exit_cycles_leave_only_the_agent() {
    with_device(|d| async move {
        let mut exits = d.exits();
        for i in 0..50u32 {
            let status = i.to_string();
            let pid = step(d.spawn(bundled("exit-code"), args(&["exit-code", &status])))
                .await
                .unwrap();
            assert_eq!(next_exit(&mut exits).await, Exit { pid, status: i });
        }
        let list = step(d.list()).await.unwrap();
        assert_eq!(list.len(), 1, "{list:?}");
        assert_eq!(list[0].pid, 1);
    });
}
