//! Stopping a running guest from outside: `--timeout`, or SIGINT/SIGTERM (a
//! server program is stopped with Ctrl-C and still gets its report and
//! `--stats`).
//!
//! The vCPU thread (the main thread) sits in `KVM_RUN`; the only way to make
//! it return is a signal to that thread. A stopper thread waits for the
//! deadline or for a stop signal (the handler writes an eventfd, which is
//! async-signal-safe), records why, and then kicks the vCPU thread with
//! SIGRTMIN every 5 ms, so a kick that lands just before `KVM_RUN` is not
//! lost. The run loop asks [`requested`] after every exit. A hook set with
//! [`on_request`] runs on the stopper thread as soon as the request is
//! recorded, before the guest has stopped (the daemon withdraws its device
//! from the fabric there, while the guest's streams still drain).

use crate::host;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;
use vmm_sys_util::eventfd::EventFd;

/// Why the guest must stop: 0 nothing yet, -1 the timeout, else the signal.
static REQUEST: AtomicI32 = AtomicI32::new(0);
/// The eventfd the stop-signal handler writes (-1 before `arm`).
static WAKE: AtomicI32 = AtomicI32::new(-1);
/// What runs once a stop is requested.
static HOOK: OnceLock<Box<dyn Fn() + Send + Sync>> = OnceLock::new();

/// Runs `hook` on the stopper thread once a stop is requested (the first
/// hook set is kept).
pub fn on_request(hook: impl Fn() + Send + Sync + 'static) {
    let _ = HOOK.set(Box::new(hook));
}

/// A request from outside to stop the guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopRequest {
    /// `--timeout` expired.
    Timeout,
    /// `weft` received this signal (SIGINT or SIGTERM).
    Signal(i32),
}

/// The pending stop request, if any.
pub fn requested() -> Option<StopRequest> {
    match REQUEST.load(Ordering::SeqCst) {
        0 => None,
        -1 => Some(StopRequest::Timeout),
        sig => Some(StopRequest::Signal(sig)),
    }
}

extern "C" fn on_kick(_: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {}

extern "C" fn on_stop(sig: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {
    let _ = REQUEST.compare_exchange(0, sig, Ordering::SeqCst, Ordering::SeqCst);
    // The stopper's eventfd stays open for the life of the process (`arm`
    // leaks it); -1 before `arm`.
    let fd = WAKE.load(Ordering::SeqCst);
    if fd >= 0 {
        host::signal_eventfd(fd);
    }
}

/// Installs the handlers and starts the stopper thread for the calling
/// thread, which must be the one that runs the vCPU for the rest of the
/// process.
pub fn arm(timeout: Option<Duration>) -> std::io::Result<()> {
    let wake = EventFd::new(0)?;
    let fd = std::os::fd::AsRawFd::as_raw_fd(&wake);
    let kick = host::kick_signal();
    host::on_signal(kick, on_kick)?;
    WAKE.store(fd, Ordering::SeqCst);
    host::on_signal(libc::SIGINT, on_stop)?;
    host::on_signal(libc::SIGTERM, on_stop)?;
    // The vCPU thread, the main thread, outlives the stopper (the process
    // exits when it returns).
    let target = host::Thread::current();
    std::thread::Builder::new()
        .name("weft-stopper".into())
        .spawn(move || {
            let expired = loop {
                match host::wait_readable(fd, timeout) {
                    Ok(ready) => break !ready,
                    // Interrupted by an unrelated signal: wait on (the
                    // deadline restarts, erring on the late side).
                    Err(_) if REQUEST.load(Ordering::SeqCst) == 0 => {}
                    Err(_) => break false,
                }
            };
            if expired {
                let _ = REQUEST.compare_exchange(0, -1, Ordering::SeqCst, Ordering::SeqCst);
            }
            if let Some(hook) = HOOK.get() {
                hook();
            }
            // The handler may have run on another thread: kick until the
            // process ends.
            let _keep_open = wake;
            loop {
                target.kick(kick);
                std::thread::sleep(Duration::from_millis(5));
            }
        })?;
    Ok(())
}
