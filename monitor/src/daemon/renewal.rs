//! Keeping this device's certificate valid (PROTOCOL.md §16.6): once less
//! than a third of its validity is left, the daemon sends a CSR for its own
//! key (which never leaves the state directory) to a device that holds the
//! fabric's CA key — itself, if it does — stores the certificate it gets
//! back (atomically, in place of `device.crt`) and reopens its Zenoh
//! session, which presents the new one from then on.
//!
//! The certificate is checked when the daemon starts and then at the
//! instant it is due, and at least every [`CHECK_EVERY`] (a clock that
//! jumps, a machine that slept). A renewal that fails (no signer reached,
//! a refusal) is logged and tried again after [`FIRST_RETRY`], doubling up
//! to [`MAX_RETRY`]. A device whose certificate expires is cut off (every
//! link it has is closed at the expiry, and no device accepts a new one),
//! so it can no longer reach a signer; only the device that holds the CA
//! renews itself even then.

use super::fabric::{CALL_LIMIT, Daemon};
use super::say;
use std::sync::Arc;
use std::time::Duration;
use weft_fabric::identity::{CertSummary, Device, now_unix};
use weft_fabric::renewal::renewal_due;
use weft_fabric::wire::{Request, Response};

/// The longest the daemon goes without looking at its certificate.
pub const CHECK_EVERY: Duration = Duration::from_secs(10 * 60);
/// The first wait after a failed renewal.
pub const FIRST_RETRY: Duration = Duration::from_secs(1);
/// How long the session stays closed before it is opened again with the
/// renewed certificate: time for every other router to forget the old one
/// before the new one (a new Zenoh id on the same address) appears.
pub const REOPEN_PAUSE: Duration = Duration::from_secs(2);
/// The longest one signer is waited for.
const ASK_LIMIT: Duration = CALL_LIMIT.saturating_add(Duration::from_secs(5));
/// The longest wait between renewal attempts.
pub const MAX_RETRY: Duration = Duration::from_secs(5 * 60);

/// Renews this device's certificate whenever it is due, until the device
/// is removed (or the daemon ends).
///
/// # Cancel safety
/// Cancelling it between attempts loses nothing; cancelled during one, the
/// certificate on disk is the old one or the new one, never a mix.
pub async fn keep_renewed(daemon: Arc<Daemon>) {
    let mut retry = FIRST_RETRY;
    // A renewed certificate is stored before the session is reopened; a
    // reopen that failed is tried again before anything else.
    let mut reopen = false;
    while !daemon.is_removed() {
        let step = if reopen {
            reopen_session(&daemon).await.map(|()| None)
        } else {
            match due_in(&daemon) {
                Ok(Some(wait)) => Ok(Some(wait.min(CHECK_EVERY))),
                Ok(None) => renew(&daemon).await.map(|()| None),
                Err(e) => Err(Failure::Renew(e)),
            }
        };
        let wait = match step {
            Ok(wait) => {
                reopen = false;
                retry = FIRST_RETRY;
                match wait {
                    Some(wait) => wait,
                    None => continue,
                }
            }
            Err(failure) => {
                let what = match failure {
                    Failure::Renew(e) => format!("cannot renew this device's certificate: {e}"),
                    Failure::Reopen(e) => {
                        reopen = true;
                        format!(
                            "the certificate was renewed, but reopening the session failed: {e}"
                        )
                    }
                };
                say(&format!("{what}; trying again in {retry:?}"));
                let wait = retry;
                retry = (retry * 2).min(MAX_RETRY);
                wait
            }
        };
        tokio::time::sleep(wait).await;
    }
}

/// Why a step of [`keep_renewed`] failed.
enum Failure {
    /// No certificate was stored.
    Renew(String),
    /// The renewed certificate is stored; the session still presents the
    /// old one.
    Reopen(String),
}

async fn reopen_session(daemon: &Daemon) -> Result<(), Failure> {
    daemon.stop().await;
    tokio::time::sleep(REOPEN_PAUSE).await;
    daemon
        .reopen()
        .await
        .map_err(|e| Failure::Reopen(e.to_string()))
}

/// How long until this device's certificate is due for renewal (`None`:
/// it is due now).
fn due_in(daemon: &Daemon) -> Result<Option<Duration>, String> {
    let device = daemon
        .identity
        .state()
        .load_device()
        .map_err(|e| e.to_string())?;
    let cert = CertSummary::of_pem(device.cert_pem()).map_err(|e| e.to_string())?;
    let now = now_unix() as i64;
    let due = renewal_due(&cert);
    Ok((now < due).then(|| Duration::from_secs(due.abs_diff(now))))
}

/// One renewal: asks a signer, checks and stores the certificate, reopens
/// the session, and says so.
async fn renew(daemon: &Daemon) -> Result<(), Failure> {
    let renewed = renewed_certificate(daemon).await.map_err(Failure::Renew)?;
    reopen_session(daemon).await?;
    say(&renewed);
    Ok(())
}

/// Asks a signer for a certificate and stores it; returns what to log.
async fn renewed_certificate(daemon: &Daemon) -> Result<String, String> {
    let state = daemon.identity.state();
    let mut device = state.load_device().map_err(|e| e.to_string())?;
    let old = CertSummary::of_pem(device.cert_pem()).map_err(|e| e.to_string())?;
    let now = now_unix() as i64;
    if now >= old.not_after_unix {
        say("this device's certificate expired: it is cut off from the fabric until it is renewed");
    }
    let csr = device.csr_pem().map_err(|e| e.to_string())?;
    let (signer, certificate) = ask_signers(daemon, csr).await?;
    let new = CertSummary::of_pem(&certificate).map_err(|e| e.to_string())?;
    if new.not_after_unix <= old.not_after_unix {
        return Err(format!(
            "{signer} sent a certificate that ends no later than the current one"
        ));
    }
    device
        .replace_cert(certificate)
        .map_err(|e| format!("{signer} sent a certificate this device cannot use: {e}"))?;
    save(daemon, &device)?;
    Ok(format!(
        "certificate renewed by {signer}, valid for {} s more",
        new.not_after_unix.saturating_sub(now)
    ))
}

fn save(daemon: &Daemon, device: &Device) -> Result<(), String> {
    daemon
        .identity
        .state()
        .save_certificate(device)
        .map_err(|e| format!("cannot store the renewed certificate: {e}"))
}

/// Asks this device if it holds the CA, else every available device in
/// turn, for a certificate for `csr`; the first that signs it answers.
async fn ask_signers(daemon: &Daemon, csr: String) -> Result<(String, String), String> {
    let me = daemon.identity.name.clone();
    let signers = if daemon.identity.holds_ca() {
        vec![me]
    } else {
        let mut others = daemon.available_members().await;
        others.retain(|d| *d != me);
        others
    };
    let mut refusals = Vec::new();
    for signer in signers {
        let request = Request::Renew { csr: csr.clone() };
        // A call has its own limit; this one also bounds a session that
        // stopped answering altogether.
        let call = tokio::time::timeout(ASK_LIMIT, daemon.call(&signer, request));
        match call.await {
            Ok(Ok(Response::Renewed { certificate })) => return Ok((signer, certificate)),
            Ok(Ok(other)) => refusals.push(format!("{signer}: unexpected answer {other:?}")),
            Ok(Err(e)) => refusals.push(e),
            Err(_) => refusals.push(format!("{signer}: no answer within {ASK_LIMIT:?}")),
        }
    }
    if refusals.is_empty() {
        return Err("no other device is available to sign it".into());
    }
    Err(format!(
        "no device holding the fabric's CA signed it ({})",
        refusals.join("; ")
    ))
}
