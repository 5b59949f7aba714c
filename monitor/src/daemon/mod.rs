//! `weft daemon`: a device of the fabric. One device guest, whose first
//! program is the device agent (the guest's processes are the device's
//! apps), and one Zenoh node; the local CLI reaches it on its socket.
//!
//! Threads: the guest's vCPU runs on the calling thread (as in `weft run`,
//! so SIGINT/SIGTERM stop it the same way); the fabric side runs on a
//! tokio runtime of its own. When the guest ends — stopped by a signal,
//! crashed, or its agent gone — the node is closed at once (the device's
//! presence is withdrawn, so the others see it unavailable rather than a
//! device that hangs), the socket is removed, and the daemon exits with
//! the guest's status.
//!
//! The fabric side: `fabric` (the node, the registry, calls), `identity`
//! (the state directory, pairing, signing renewals on the CA's device),
//! `renewal` (keeping this device's own certificate valid), `local` (the
//! CLI's socket), `device` (the guest's processes).

mod device;
mod fabric;
mod identity;
mod ipc;
mod local;
mod moves;
mod renewal;
mod services;
mod udp;
mod watch;

pub use identity::Identity;

use crate::catalog::Catalog;
use crate::run::{self, RunConfig};
use crate::status::ExitStatus;
use crate::streams::Policy;
use crate::streams::host_output;
use crate::streams::{DeviceHandle, FabricAsk, FabricCall, IpcAsk, device_link};
use fabric::Daemon;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use weft_fabric::node::NodeConfig;
use weft_fabric::zconfig::Endpoints;

/// Fabric calls of the guest's apps waiting for the daemon (the streams
/// themselves hold at most `streams::MAX_IN_FLIGHT` each).
const FABRIC_QUEUE: usize = 64;

/// What `weft daemon` runs with.
pub struct DaemonConfig<'a> {
    pub state: PathBuf,
    /// Where the node listens.
    pub bind: SocketAddr,
    /// Devices to connect to at start (besides the known ones).
    pub peers: Vec<SocketAddr>,
    pub kernel: &'a [u8],
    /// The device agent's ELF.
    pub agent: &'a [u8],
    pub mem_bytes: u64,
    /// The grants of the device's apps.
    pub policy: Policy,
    /// The fabric addresses the device owns (`--fabric-ip`).
    pub fabric_ips: Vec<IpAddr>,
    /// How the device's Wasm modules run (`--engine`); it lives as long
    /// as the daemon's tasks.
    pub catalog: &'static dyn Catalog,
    /// Whether it enters its sandbox (`crate::sandbox`): its file rules
    /// before its first thread starts, its system-call filter (the daemon
    /// profile) once its guest is built.
    pub sandbox: bool,
}

/// The daemon's file rules (`crate::sandbox::restrict_daemon_files`):
/// its state directory, its guest's `--fs-root`, `/dev/kvm`. Runs while
/// the daemon has one thread.
fn restrict_files(cfg: &DaemonConfig<'_>) -> Result<crate::sandbox::FileRules, String> {
    let state = std::fs::File::open(&cfg.state)
        .map_err(|e| format!("the sandbox: {}: {e}", cfg.state.display()))?;
    crate::sandbox::restrict_daemon_files(&state, &run::grants(&cfg.policy))
        .map_err(|e| e.to_string())
}

/// A line of the daemon's own on its standard error (never blocking).
fn say(text: &str) {
    host_output::stderr().notice(&format!("weft daemon: {text}\n"));
}

/// Runs a device until its guest ends; returns the daemon's exit status.
pub fn run(cfg: DaemonConfig<'_>, start: Instant) -> ExitStatus {
    // While this is the only thread: the runtime's threads, and Zenoh's
    // started from them, run off the vCPU's CPU.
    crate::affinity::place_process();
    if local::daemon_running(&cfg.state) {
        eprintln!(
            "weft daemon: a daemon already runs for {}",
            cfg.state.display()
        );
        return ExitStatus::Usage;
    }
    // Read again at each certificate this daemon issues; a bad value is
    // refused now rather than at the first pairing or renewal.
    if let Err(e) = weft_fabric::identity::issue_validity() {
        eprintln!("weft daemon: {e}");
        return ExitStatus::Usage;
    }
    let identity = match Identity::load(&cfg.state, cfg.bind) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("weft daemon: {e}");
            return ExitStatus::Usage;
        }
    };
    let registry = match identity.load_registry() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("weft daemon: {e}");
            return ExitStatus::Usage;
        }
    };
    if registry.get(&identity.name).is_some_and(|k| k.removed) {
        eprintln!(
            "weft daemon: device {} was removed from its fabric; it reaches nothing more",
            identity.name
        );
        return ExitStatus::Usage;
    }
    if cfg.sandbox
        && let Err(e) = restrict_files(&cfg)
    {
        eprintln!("weft daemon: {e}");
        return ExitStatus::Usage;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("weft-fabric")
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("weft daemon: cannot start the fabric's runtime: {e}");
            return ExitStatus::Usage;
        }
    };
    let listener = {
        let _guard = runtime.enter();
        match local::bind(&cfg.state) {
            Ok(l) => l,
            Err(e) => {
                eprintln!(
                    "weft daemon: the local socket in {}: {e}",
                    cfg.state.display()
                );
                return ExitStatus::Usage;
            }
        }
    };
    let node_cfg = NodeConfig {
        name: identity.name.clone(),
        tls: identity.tls.clone(),
        endpoints: Endpoints {
            listen: vec![cfg.bind],
            peers: identity.peers(&registry, &cfg.peers),
        },
        denied: Vec::new(),
        fabric_ips: cfg.fabric_ips.clone(),
    };
    // Sockets on this device's fabric addresses are held within its apps'
    // network grants.
    let udp = udp::FabricUdp::new(
        identity.name.clone(),
        cfg.fabric_ips.clone(),
        Policy {
            listen: cfg.policy.listen.clone(),
            connect: cfg.policy.connect.clone(),
            ..Policy::default()
        },
    );
    let (link, handle) = device_link();
    // The guest's apps' fabric calls (FABRIC streams, §17), answered as the
    // CLI's are once the node is up.
    let (fabric_link, fabric_calls) = tokio::sync::mpsc::channel(FABRIC_QUEUE);
    let running: Arc<Mutex<Option<Arc<Daemon>>>> = Arc::default();
    let failed: Arc<Mutex<Option<String>>> = Arc::default();
    runtime.spawn(start_fabric(
        identity,
        handle,
        Joining {
            catalog: cfg.catalog,
            node_cfg,
            registry,
            udp,
        },
        Clients {
            listener,
            fabric_calls,
        },
        running.clone(),
        failed.clone(),
    ));

    // A stop signal withdraws the device at once; the guest's streams
    // drain after that, for up to `DRAIN_LIMIT`.
    let withdrawing: Arc<Mutex<Option<tokio::task::JoinHandle<()>>>> = Arc::default();
    let (stopping, on_stop, started) = (
        running.clone(),
        runtime.handle().clone(),
        withdrawing.clone(),
    );
    crate::stopper::on_request(move || {
        if let Some(daemon) = stopping.lock().ok().and_then(|d| d.clone()) {
            let stop = on_stop.spawn(async move { daemon.stop().await });
            if let Ok(mut s) = started.lock() {
                *s = Some(stop);
            }
        }
    });
    let status = match run::run(
        RunConfig {
            kernel: cfg.kernel,
            program: cfg.agent,
            payload: None,
            program_name: "device",
            args: vec![b"device".to_vec()],
            env: Vec::new(),
            mem_bytes: cfg.mem_bytes,
            timeout: None,
            stats: false,
            policy: cfg.policy,
            catalog: cfg.catalog,
            device: Some(link),
            fabric: Some(fabric_link),
            sandbox: cfg.sandbox.then_some(crate::sandbox::Profile::Daemon),
            gdb: None,
            engine: run::Engine::Weft,
        },
        start,
    ) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("weft daemon: {e}");
            e.status()
        }
    };
    let daemon = running.lock().ok().and_then(|mut d| d.take());
    let withdrawn = withdrawing.lock().ok().and_then(|mut w| w.take());
    match (withdrawn, daemon) {
        // The stop signal's withdrawal is under way: it closes the node.
        (Some(stop), _) => {
            let _ = runtime.block_on(stop);
        }
        (None, Some(daemon)) => runtime.block_on(daemon.stop()),
        (None, None) => {}
    }
    let _ = std::fs::remove_file(weft_fabric::local::socket_path(&cfg.state));
    if let Some(e) = failed.lock().ok().and_then(|mut f| f.take()) {
        eprintln!("weft daemon: {e}");
        return ExitStatus::Usage;
    }
    let last = match status {
        ExitStatus::Signal(_) => "stopped".to_string(),
        s => format!(
            "the device guest ended (status {}); the device is unavailable",
            s.code()
        ),
    };
    // The last words, written before the process ends (`say` only queues
    // them for the writer thread, which ends with the process).
    host_output::settle(&format!("weft daemon: {last}\n"), Instant::now());
    status
}

/// Who asks the daemon besides other devices: the CLI on the local socket,
/// and the guest's apps on FABRIC streams.
struct Clients {
    listener: tokio::net::UnixListener,
    fabric_calls: tokio::sync::mpsc::Receiver<FabricAsk>,
}

/// What the device joins the fabric with: its node's configuration, the
/// known devices, and the table of its fabric UDP sockets.
struct Joining {
    catalog: &'static dyn Catalog,
    node_cfg: NodeConfig,
    registry: weft_fabric::registry::Registry,
    udp: Arc<udp::FabricUdp>,
}

/// Waits for the guest's agent, then opens the node and serves the fabric
/// and the local socket. On failure the guest is shut down, so that the
/// daemon ends instead of running a device nobody can reach.
async fn start_fabric(
    identity: Identity,
    handle: DeviceHandle,
    joining: Joining,
    clients: Clients,
    running: Arc<Mutex<Option<Arc<Daemon>>>>,
    failed: Arc<Mutex<Option<String>>>,
) {
    let result = async {
        handle
            .ready()
            .await
            .map_err(|e| format!("the device guest did not start: {e}"))?;
        let device =
            device::LocalDevice::new(identity.name.clone(), handle.clone(), joining.catalog);
        let Joining {
            catalog: _,
            node_cfg,
            registry,
            udp,
        } = joining;
        let daemon = Daemon::start(identity, device, node_cfg, registry, udp)
            .await
            .map_err(|e| format!("cannot join the fabric: {e}"))?;
        identity::serve_pairing(daemon.clone()).await?;
        tokio::spawn(renewal::keep_renewed(daemon.clone()));
        if let Ok(mut r) = running.lock() {
            *r = Some(daemon.clone());
        }
        say(&format!("device {} is up", daemon.identity.name));
        let Clients {
            listener,
            mut fabric_calls,
        } = clients;
        tokio::spawn(local::serve(daemon.clone(), listener));
        let events = watch::Events::start(daemon.clone());
        tokio::spawn(async move {
            while let Some(ask) = fabric_calls.recv().await {
                match ask {
                    FabricAsk::Call(FabricCall { request, reply }) => {
                        let daemon = daemon.clone();
                        tokio::spawn(async move {
                            let _ = reply.send(daemon.command(request).await);
                        });
                    }
                    FabricAsk::Watch(granted) => {
                        let _ = granted.send(events.subscribe());
                    }
                    // A stream routes its messages itself, on its own
                    // thread, in the order it sent them.
                    FabricAsk::Ipc(IpcAsk::Route(granted)) => {
                        let _ = granted.send(daemon.ipc.router());
                    }
                    FabricAsk::Ipc(IpcAsk::Serve {
                        region,
                        guid,
                        name,
                        runtime,
                        direct,
                        granted,
                    }) => {
                        let serving = daemon
                            .ipc
                            .serve(&daemon, region, guid, name, runtime, direct);
                        let _ = granted.send(serving.await);
                    }
                    FabricAsk::Udp(ask) => {
                        tokio::spawn(udp::FabricUdp::route(daemon.clone(), ask));
                    }
                    FabricAsk::Move(ask) => {
                        let daemon = daemon.clone();
                        tokio::spawn(async move { daemon.mover_asks(ask).await });
                    }
                }
            }
        });
        Ok::<(), String>(())
    }
    .await;
    if let Err(e) = result {
        if let Ok(mut f) = failed.lock() {
            *f = Some(e);
        }
        let _ = handle.shutdown().await;
    }
}
