//! The device's identity as the daemon and the CLI use it: its state
//! directory (key, certificate, the fabric's CA certificate — and CA key on
//! the device that created the fabric — and the registry), the addresses it
//! is reached at, and pairing: invitations issued here, and the pairing
//! listener that admits the devices that hold one.
//!
//! Only a device that holds the CA key can invite; it listens for pairing
//! on an ephemeral TCP port of its advertised address, named in every token.
//! It is also the one that renews the other devices' certificates
//! ([`Identity::sign_renewal`]); its own it renews itself.

use super::fabric::Daemon;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener as StdListener, UdpSocket};
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use weft_fabric::identity::{
    CaMaterial, CertSummary, DeviceId, DeviceName, Fabric, issue_validity,
};
use weft_fabric::invite::{Invitation, Pending};
use weft_fabric::pairing::{self, Admit};
use weft_fabric::registry::Registry;
use weft_fabric::renewal::{self, key_fingerprint};
use weft_fabric::state::{CA_CRT, DEVICE_CRT, DEVICE_KEY, StateDir};
use weft_fabric::wire::Known;
use weft_fabric::zconfig::TlsFiles;

/// How long one pairing exchange may take in all.
const PAIRING_LIMIT: Duration = Duration::from_secs(30);

/// A device's identity, loaded from its state directory.
pub struct Identity {
    pub name: String,
    pub id: String,
    pub fabric: String,
    /// The whole SHA-256 of its public key, hex (the registry's `key`).
    key: String,
    /// Where other devices reach this one (`ADDR:PORT`).
    pub addresses: Vec<String>,
    pub tls: TlsFiles,
    dir: StateDir,
    device: weft_fabric::identity::Device,
    ca: Option<CaMaterial>,
    pending: Pending,
    advertised: IpAddr,
    pairing: OnceLock<SocketAddr>,
}

fn text(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// The address other devices reach a daemon bound to `bind` at: the bound
/// address, or for an unspecified one the source address of the default
/// route (found without sending anything), else loopback.
fn advertised(bind: SocketAddr) -> IpAddr {
    if !bind.ip().is_unspecified() {
        return bind.ip();
    }
    UdpSocket::bind("0.0.0.0:0")
        .and_then(|s| s.connect("192.0.2.1:9").map(|()| s))
        .and_then(|s| s.local_addr())
        .map_or(IpAddr::V4(Ipv4Addr::LOCALHOST), |a| a.ip())
}

fn entry(name: &str, id: &str, addresses: Vec<String>, key: Option<String>) -> Known {
    Known {
        name: name.to_string(),
        id: id.to_string(),
        addresses,
        removed: false,
        key,
    }
}

/// The registry's `key` of the device certificate `cert_pem`.
fn key_of(cert_pem: &str) -> Result<String, String> {
    Ok(key_fingerprint(
        &CertSummary::of_pem(cert_pem).map_err(text)?.spki_der,
    ))
}

impl Identity {
    /// `weft fabric create`: a new fabric whose first device is `name`.
    /// Returns the fabric's id.
    pub fn create_fabric(dir: &Path, name: &str) -> Result<String, String> {
        let name = DeviceName::new(name).map_err(text)?;
        let state = StateDir::create(dir).map_err(text)?;
        let fabric = Fabric::create(&name, issue_validity().map_err(text)?).map_err(text)?;
        state.save_device(&fabric.device).map_err(text)?;
        state.save_ca(&fabric.ca).map_err(text)?;
        let info = fabric.device.info();
        let key = key_of(fabric.device.cert_pem())?;
        let registry = Registry::from_list(vec![entry(
            name.as_str(),
            &info.id.to_string(),
            vec![],
            Some(key),
        )]);
        registry.save(&state).map_err(text)?;
        Ok(info.fabric.to_string())
    }

    /// `weft fabric join`: pairs this new device through the daemon that
    /// issued `token`. Returns the fabric's id.
    pub fn join(dir: &Path, name: &str, token: &str) -> Result<String, String> {
        let invitation = Invitation::decode(token.trim()).map_err(text)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(text)?;
        let joined = runtime
            .block_on(pairing::join(&invitation, name, dir))
            .map_err(text)?;
        let info = joined.device.info();
        let mut known: Vec<Known> = serde_json::from_value(joined.registry).unwrap_or_default();
        let key = key_of(joined.device.cert_pem())?;
        known.push(entry(
            info.name.as_str(),
            &info.id.to_string(),
            vec![],
            Some(key),
        ));
        let state = StateDir::open(dir).map_err(text)?;
        Registry::from_list(known).save(&state).map_err(text)?;
        Ok(info.fabric.to_string())
    }

    /// Loads the device of `dir` for a daemon bound to `bind`.
    pub fn load(dir: &Path, bind: SocketAddr) -> Result<Identity, String> {
        let state = StateDir::open(dir).map_err(text)?;
        let device = state.load_device().map_err(text)?;
        let ca = state.load_ca().map_err(text)?;
        let info = device.info().clone();
        let ip = advertised(bind);
        Ok(Identity {
            name: info.name.to_string(),
            id: info.id.to_string(),
            fabric: info.fabric.to_string(),
            key: key_of(device.cert_pem())?,
            addresses: vec![SocketAddr::new(ip, bind.port()).to_string()],
            tls: TlsFiles {
                ca: state.file(CA_CRT),
                certificate: state.file(DEVICE_CRT),
                key: state.file(DEVICE_KEY),
            },
            pending: Pending::new(StateDir::open(dir).map_err(text)?),
            dir: state,
            device,
            ca,
            advertised: ip,
            pairing: OnceLock::new(),
        })
    }

    /// The registry, with this device's own entry up to date.
    pub fn load_registry(&self) -> Result<Registry, String> {
        let mut registry = Registry::load(&self.dir).map_err(text)?;
        registry.merge(vec![entry(
            &self.name,
            &self.id,
            self.addresses.clone(),
            Some(self.key.clone()),
        )]);
        Ok(registry)
    }

    /// Keeps the registry in the state directory.
    pub fn save_registry(&self, registry: &Registry) -> Result<(), String> {
        registry.save(&self.dir).map_err(text)
    }

    /// The devices to connect to at start: `extra`, and every known device
    /// but this one.
    pub fn peers(&self, registry: &Registry, extra: &[SocketAddr]) -> Vec<SocketAddr> {
        let mut peers = extra.to_vec();
        for k in registry.list() {
            if k.removed || k.name == self.name {
                continue;
            }
            for a in k.addresses.iter().filter_map(|a| a.parse().ok()) {
                if !peers.contains(&a) {
                    peers.push(a);
                }
            }
        }
        peers
    }

    /// The state directory.
    pub fn state(&self) -> &StateDir {
        &self.dir
    }

    /// Whether this device holds the fabric's CA key (it invites and renews).
    pub fn holds_ca(&self) -> bool {
        self.ca.is_some()
    }

    /// Answers a renewal (`Request::Renew`): signs `csr` after the checks of
    /// [`renewal::sign_renewal`] against `registry`, for the validity this
    /// process issues ([`issue_validity`]). Returns the certificate (PEM).
    pub fn sign_renewal(&self, registry: &Registry, csr: &str) -> Result<String, String> {
        let Some(ca) = &self.ca else {
            return Err(format!(
                "device {} does not hold the fabric's CA: it renews no certificates",
                self.name
            ));
        };
        let validity = issue_validity().map_err(text)?;
        let signed = renewal::sign_renewal(ca, registry, csr, validity).map_err(|e| {
            super::say(&format!("certificate renewal refused: {e}"));
            e.to_string()
        })?;
        Ok(signed.cert_pem)
    }

    /// A one-time invitation valid for `expires_secs`.
    pub fn invite(&self, expires_secs: u64) -> Result<String, String> {
        if self.ca.is_none() {
            return Err(format!(
                "device {} does not hold the fabric's CA: invite from the device that created the fabric",
                self.name
            ));
        }
        let address = *self
            .pairing
            .get()
            .ok_or("the pairing listener is not running")?;
        let invitation = Invitation::new(
            &self.device,
            vec![address],
            Duration::from_secs(expires_secs),
        )
        .map_err(text)?;
        self.pending.add(&invitation).map_err(text)?;
        Ok(invitation.encode())
    }
}

/// The daemon as pairing sees it: its registry.
struct Admitter(Arc<Daemon>);

impl Admit for Admitter {
    type Error = std::io::Error;

    fn name_taken(&self, name: &DeviceName) -> bool {
        self.0.name_taken(name.as_str())
    }

    fn admit(&self, name: &DeviceName, id: DeviceId, cert_pem: &str) -> Result<(), Self::Error> {
        let key = key_of(cert_pem).map_err(std::io::Error::other)?;
        self.0
            .admit(entry(name.as_str(), &id.to_string(), vec![], Some(key)))
            .map_err(std::io::Error::other)
    }

    fn registry(&self) -> serde_json::Value {
        serde_json::to_value(self.0.known()).unwrap_or_default()
    }
}

/// Starts the pairing listener of a device that holds the CA (others have
/// none: they cannot invite).
pub async fn serve_pairing(daemon: Arc<Daemon>) -> Result<(), String> {
    if daemon.identity.ca.is_none() {
        return Ok(());
    }
    let at = SocketAddr::new(daemon.identity.advertised, 0);
    let listener = StdListener::bind(at)
        .and_then(|l| l.set_nonblocking(true).map(|()| l))
        .and_then(tokio::net::TcpListener::from_std)
        .map_err(|e| format!("the pairing listener on {at}: {e}"))?;
    let address = listener.local_addr().map_err(text)?;
    let _ = daemon.identity.pairing.set(address);
    tokio::spawn(async move {
        while let Ok((stream, peer)) = listener.accept().await {
            let daemon = daemon.clone();
            tokio::spawn(async move {
                let admitter = Admitter(daemon.clone());
                let identity = &daemon.identity;
                let pairing = pairing::serve_pairing(
                    stream,
                    &admitter,
                    identity.ca.as_ref(),
                    &identity.pending,
                );
                match tokio::time::timeout(PAIRING_LIMIT, pairing).await {
                    Ok(Ok(admitted)) => super::say(&format!(
                        "device {} ({}) joined the fabric",
                        admitted.name, admitted.id
                    )),
                    Ok(Err(e)) => super::say(&format!("pairing from {peer} refused: {e}")),
                    Err(_) => super::say(&format!("pairing from {peer} timed out")),
                }
            });
        }
    });
    Ok(())
}
