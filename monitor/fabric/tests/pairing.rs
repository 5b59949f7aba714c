//! Pairing end to end over loopback TCP: a fabric is created, an invitation issued, and a
//! second device joins through a real listener; then the two devices' certificates are
//! used in a real mutual-TLS handshake.

use std::fs::{self, Permissions};
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ring::hmac;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use weft_fabric::identity::{
    CaMaterial, CertSummary, DEFAULT_VALIDITY, Device, DeviceId, DeviceKey, DeviceName, Fabric,
    IdentityError, now_unix, verify_issued_by,
};
use weft_fabric::invite::{Invitation, InviteError, Pending};
use weft_fabric::pairing::{Admit, Admitted, PairError, Status, join, serve_pairing};
use weft_fabric::state::{
    CA_CRT, DEVICE_CRT, DEVICE_JSON, DEVICE_KEY, INVITATIONS_JSON, StateDir, StateError,
};

/// The daemon's side as the tests see it: a list of known devices.
#[derive(Default)]
struct Registry {
    devices: Mutex<Vec<(String, String)>>,
}

#[derive(Debug, thiserror::Error)]
#[error("the registry refused")]
struct Never;

impl Admit for Registry {
    type Error = Never;

    fn name_taken(&self, name: &DeviceName) -> bool {
        self.names().iter().any(|known| known == name.as_str())
    }

    fn admit(&self, name: &DeviceName, id: DeviceId, _cert_pem: &str) -> Result<(), Never> {
        let mut devices = self.devices.lock().unwrap();
        devices.push((name.to_string(), id.to_string()));
        Ok(())
    }

    fn registry(&self) -> serde_json::Value {
        let devices = self.devices.lock().unwrap();
        json!(
            devices
                .iter()
                .map(|(name, id)| json!({"name": name, "id": id}))
                .collect::<Vec<_>>()
        )
    }
}

impl Registry {
    fn names(&self) -> Vec<String> {
        let devices = self.devices.lock().unwrap();
        devices.iter().map(|(name, _)| name.clone()).collect()
    }
}

/// The inviting device: a created fabric saved in its state directory, and its daemon.
struct Inviter {
    _root: tempfile::TempDir,
    device: Device,
    ca: Arc<CaMaterial>,
    pending: Pending,
    registry: Arc<Registry>,
}

impl Inviter {
    fn new() -> Self {
        let root = tempfile::tempdir().unwrap();
        let dir = StateDir::create(root.path()).unwrap();
        let Fabric { ca, device } =
            Fabric::create(&DeviceName::new("alpha").unwrap(), DEFAULT_VALIDITY).unwrap();
        dir.save_device(&device).unwrap();
        dir.save_ca(&ca).unwrap();
        let registry = Registry::default();
        registry
            .devices
            .lock()
            .unwrap()
            .push(("alpha".to_owned(), device.info().id.to_string()));
        Self {
            _root: root,
            device,
            ca: Arc::new(ca),
            pending: Pending::new(dir),
            registry: Arc::new(registry),
        }
    }

    /// Serves `connections` pairings on a fresh loopback listener, with the CA or without.
    async fn listen(
        &self,
        connections: usize,
        with_ca: bool,
    ) -> (SocketAddr, JoinHandle<Vec<Result<Admitted, PairError>>>) {
        self.listen_with(connections, with_ca, self.registry.clone())
            .await
    }

    /// Like [`listen`](Self::listen), with another daemon side.
    async fn listen_with<A: Admit + Send + Sync + 'static>(
        &self,
        connections: usize,
        with_ca: bool,
        ctx: Arc<A>,
    ) -> (SocketAddr, JoinHandle<Vec<Result<Admitted, PairError>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (ca, pending) = (self.ca.clone(), self.pending.clone());
        let server = tokio::spawn(async move {
            let mut outcomes = Vec::new();
            for _ in 0..connections {
                let (stream, _) = listener.accept().await.unwrap();
                let ca = with_ca.then_some(&*ca);
                outcomes.push(serve_pairing(stream, &*ctx, ca, &pending).await);
            }
            outcomes
        });
        (address, server)
    }

    fn invite(&self, address: SocketAddr, ttl: Duration) -> Invitation {
        let invitation = Invitation::new(&self.device, vec![address], ttl).unwrap();
        self.pending.add(&invitation).unwrap();
        // The joiner gets the text form.
        Invitation::decode(&invitation.encode()).unwrap()
    }
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

fn refused_with(result: Result<weft_fabric::pairing::Joined, PairError>, expected: Status) {
    match result {
        Err(PairError::Refused { status, .. }) if status == expected => {}
        other => panic!("expected a refusal with {expected:?}, got {other:?}"),
    }
}

#[tokio::test]
async fn a_joined_device_holds_a_certificate_the_fabric_trusts() {
    let inviter = Inviter::new();
    let (address, server) = inviter.listen(1, true).await;
    let token = inviter.invite(address, Duration::from_secs(600));
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("beta");

    let joined = join(&token, "beta", &dir).await.unwrap();
    let admitted = server.await.unwrap().pop().unwrap().unwrap();

    let info = joined.device.info();
    assert_eq!(info.name.as_str(), "beta");
    assert_eq!(info.fabric, inviter.ca.fabric());
    assert_eq!(admitted.id, info.id);
    assert_eq!(admitted.cert_pem, joined.device.cert_pem());
    assert_eq!(
        joined.registry,
        json!([{"name": "alpha", "id": inviter.device.info().id.to_string()}])
    );
    verify_issued_by(joined.device.cert_pem(), inviter.ca.cert_pem()).unwrap();
    let cert = CertSummary::of_pem(joined.device.cert_pem()).unwrap();
    assert_eq!(DeviceId::of_public_key(&cert.spki_der), info.id);
    assert!(inviter.pending.outstanding().unwrap().is_empty());

    assert_eq!(mode(&dir), 0o700);
    for name in [DEVICE_KEY, DEVICE_CRT, CA_CRT, DEVICE_JSON] {
        assert_eq!(mode(&dir.join(name)), 0o600, "{name}");
    }
    let reopened = StateDir::open(&dir).unwrap();
    assert!(reopened.load_ca().unwrap().is_none());
    let saved = reopened.load_device().unwrap();
    assert_eq!(saved.info(), info);
    assert_eq!(saved.key_pem(), joined.device.key_pem());

    mutual_tls(&inviter.device, &joined.device).unwrap();
    mutual_tls(&joined.device, &inviter.device).unwrap();
    let stranger = Fabric::create(&DeviceName::new("beta").unwrap(), DEFAULT_VALIDITY).unwrap();
    assert!(mutual_tls(&inviter.device, &stranger.device).is_err());
    assert!(mutual_tls(&stranger.device, &joined.device).is_err());
}

#[tokio::test]
async fn a_used_invitation_is_refused_the_second_time() {
    let inviter = Inviter::new();
    let (address, server) = inviter.listen(2, true).await;
    let token = inviter.invite(address, Duration::from_secs(600));
    let root = tempfile::tempdir().unwrap();

    join(&token, "beta", &root.path().join("beta"))
        .await
        .unwrap();
    let second = join(&token, "gamma", &root.path().join("gamma")).await;
    refused_with(second, Status::TokenUsed);
    let outcomes = server.await.unwrap();
    assert!(matches!(
        outcomes[1],
        Err(PairError::Invite(InviteError::Used))
    ));
    assert_eq!(inviter.registry.names(), ["alpha", "beta"]);
    assert!(StateDir::open(&root.path().join("gamma")).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_joins_with_one_invitation_admit_one_device() {
    let inviter = Inviter::new();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let token = inviter.invite(address, Duration::from_secs(600));
    let (ca, pending, registry) = (
        inviter.ca.clone(),
        inviter.pending.clone(),
        inviter.registry.clone(),
    );
    let server = tokio::spawn(async move {
        let mut servers = Vec::new();
        for _ in 0..2 {
            let (stream, _) = listener.accept().await.unwrap();
            let (ca, pending, registry) = (ca.clone(), pending.clone(), registry.clone());
            servers.push(tokio::spawn(async move {
                serve_pairing(stream, &*registry, Some(&ca), &pending).await
            }));
        }
        servers
    });
    let root = tempfile::tempdir().unwrap();
    let (beta_dir, gamma_dir) = (root.path().join("beta"), root.path().join("gamma"));
    let (beta, gamma) = tokio::join!(
        join(&token, "beta", &beta_dir),
        join(&token, "gamma", &gamma_dir),
    );
    let mut admitted = 0;
    for handle in server.await.unwrap() {
        admitted += usize::from(handle.await.unwrap().is_ok());
    }
    assert_eq!(admitted, 1);
    let (winner, loser) = match (beta, gamma) {
        (Ok(winner), loser @ Err(_)) | (loser @ Err(_), Ok(winner)) => (winner, loser),
        other => panic!("expected exactly one admission, got {other:?}"),
    };
    refused_with(loser, Status::TokenUsed);
    assert_eq!(
        inviter.registry.names(),
        ["alpha", winner.device.info().name.as_str()]
    );
}

#[tokio::test]
async fn an_expired_invitation_is_refused_by_both_sides() {
    let inviter = Inviter::new();
    let (address, server) = inviter.listen(1, true).await;
    let root = tempfile::tempdir().unwrap();

    let mut stale = Invitation::new(&inviter.device, vec![address], Duration::ZERO).unwrap();
    stale.expires_unix = now_unix() - 1;
    assert!(matches!(
        join(&stale, "beta", &root.path().join("early")).await,
        Err(PairError::Invite(InviteError::Expired { .. }))
    ));

    // The inviter's entry expires while the joiner's copy claims more time.
    let mut token = Invitation::new(&inviter.device, vec![address], Duration::ZERO).unwrap();
    token.expires_unix = now_unix() + 1;
    inviter.pending.add(&token).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while now_unix() < token.expires_unix {
        assert!(Instant::now() < deadline, "the clock does not advance");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    token.expires_unix = now_unix() + 600;
    refused_with(
        join(&token, "beta", &root.path().join("late")).await,
        Status::TokenExpired,
    );
    assert!(matches!(
        server.await.unwrap()[0],
        Err(PairError::Invite(InviteError::Expired { .. }))
    ));
    assert_eq!(inviter.registry.names(), ["alpha"]);
}

/// A request laid out by hand as the protocol documents it.
fn request(token_id: &[u8; 32], mac_key: &[u8], name: &str, csr: &str) -> Vec<u8> {
    let mut body = vec![1];
    body.extend_from_slice(token_id);
    body.extend_from_slice(&[0x5a; 32]);
    body.push(name.len() as u8);
    body.extend_from_slice(name.as_bytes());
    body.extend_from_slice(&(csr.len() as u16).to_le_bytes());
    body.extend_from_slice(csr.as_bytes());
    let key = hmac::Key::new(hmac::HMAC_SHA256, mac_key);
    let mac = hmac::sign(&key, &[&b"weft-pair-req"[..], &body].concat());
    body.extend_from_slice(mac.as_ref());
    body
}

/// The invitation's MAC key as the protocol documents it: HMAC-SHA256(secret, "weft-pair-key").
fn mac_key(token: &Invitation) -> Vec<u8> {
    let key = hmac::Key::new(hmac::HMAC_SHA256, &token.secret);
    hmac::sign(&key, b"weft-pair-key").as_ref().to_vec()
}

/// Sends `bytes` raw, half-closes, and returns the reply's status byte, if any reply came.
async fn exchange_raw(address: SocketAddr, bytes: &[u8]) -> Option<u8> {
    let mut stream = TcpStream::connect(address).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    stream.shutdown().await.unwrap();
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).await.unwrap();
    reply.get(5).copied()
}

fn framed(payload: &[u8]) -> Vec<u8> {
    [&(payload.len() as u32).to_le_bytes()[..], payload].concat()
}

#[tokio::test]
async fn a_wrong_secret_is_refused_and_admits_nothing() {
    let inviter = Inviter::new();
    let (address, server) = inviter.listen(2, true).await;
    let token = inviter.invite(address, Duration::from_secs(600));
    let name = DeviceName::new("mallory").unwrap();
    let csr = DeviceKey::generate().unwrap().csr_pem(&name).unwrap();

    // The right token id, a MAC under the wrong key.
    let forged = request(&token.token_id().0, &[0x42; 32], "mallory", &csr);
    assert_eq!(
        exchange_raw(address, &framed(&forged)).await,
        Some(Status::BadMac as u8)
    );
    // A wrong secret: its token id is unknown.
    let mut wrong = token.clone();
    wrong.secret[0] ^= 1;
    let root = tempfile::tempdir().unwrap();
    refused_with(
        join(&wrong, "mallory", &root.path().join("m")).await,
        Status::TokenUnknown,
    );
    let outcomes = server.await.unwrap();
    assert!(matches!(outcomes[0], Err(PairError::BadRequestMac)));
    assert!(matches!(
        outcomes[1],
        Err(PairError::Invite(InviteError::Unknown))
    ));
    assert_eq!(inviter.registry.names(), ["alpha"]);
    assert_eq!(inviter.pending.outstanding().unwrap().len(), 1);
}

#[tokio::test]
async fn a_taken_name_is_refused_and_the_invitation_stays_usable() {
    let inviter = Inviter::new();
    let (address, server) = inviter.listen(3, true).await;
    let token = inviter.invite(address, Duration::from_secs(600));
    let root = tempfile::tempdir().unwrap();

    let taken = join(&token, "alpha", &root.path().join("a")).await;
    match &taken {
        Err(PairError::Refused { status, message }) => {
            assert_eq!(*status, Status::NameTaken);
            assert!(message.contains("alpha"), "{message}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    // A name the inviter's rule refuses is refused by the joiner already.
    assert!(matches!(
        join(&token, "Beta", &root.path().join("b")).await,
        Err(PairError::Name(_))
    ));
    // A name the joiner did not check is refused by the inviter.
    let csr = DeviceKey::generate()
        .unwrap()
        .csr_pem(&DeviceName::new("x").unwrap())
        .unwrap();
    let bad_name = request(&token.token_id().0, &mac_key(&token), "-x", &csr);
    assert_eq!(
        exchange_raw(address, &framed(&bad_name)).await,
        Some(Status::NameInvalid as u8)
    );
    join(&token, "beta", &root.path().join("beta"))
        .await
        .unwrap();
    let outcomes = server.await.unwrap();
    assert!(matches!(outcomes[0], Err(PairError::NameTaken { .. })));
    assert!(matches!(outcomes[1], Err(PairError::Name(_))));
    assert!(outcomes[2].is_ok());
    assert_eq!(inviter.registry.names(), ["alpha", "beta"]);
}

#[tokio::test]
async fn a_device_without_the_ca_says_so() {
    let inviter = Inviter::new();
    let (address, server) = inviter.listen(1, false).await;
    let token = inviter.invite(address, Duration::from_secs(600));
    let root = tempfile::tempdir().unwrap();
    match join(&token, "beta", &root.path().join("beta")).await {
        Err(PairError::Refused { status, message }) => {
            assert_eq!(status, Status::NoCa);
            assert_eq!(message, "this device does not hold the fabric's CA");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(matches!(server.await.unwrap()[0], Err(PairError::NoCa)));
    assert_eq!(inviter.pending.outstanding().unwrap().len(), 1);
}

/// A daemon side whose registry is too big for one reply frame.
struct Bloated(Registry);

impl Admit for Bloated {
    type Error = Never;

    fn name_taken(&self, name: &DeviceName) -> bool {
        self.0.name_taken(name)
    }

    fn admit(&self, name: &DeviceName, id: DeviceId, cert_pem: &str) -> Result<(), Never> {
        self.0.admit(name, id, cert_pem)
    }

    fn registry(&self) -> serde_json::Value {
        json!("x".repeat(70_000))
    }
}

#[tokio::test]
async fn a_reply_too_large_for_a_frame_consumes_and_admits_nothing() {
    let inviter = Inviter::new();
    let bloated = Arc::new(Bloated(Registry::default()));
    let (address, server) = inviter.listen_with(1, true, bloated.clone()).await;
    let token = inviter.invite(address, Duration::from_secs(600));
    let root = tempfile::tempdir().unwrap();
    match join(&token, "beta", &root.path().join("beta")).await {
        Err(PairError::Refused { status, message }) => {
            assert_eq!(status, Status::Internal);
            assert_eq!(
                message,
                "the inviting device failed on its side; see its log"
            );
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(matches!(
        server.await.unwrap()[0],
        Err(PairError::ReplyTooLarge)
    ));
    assert!(bloated.0.names().is_empty());
    assert_eq!(inviter.pending.outstanding().unwrap().len(), 1);
}

#[tokio::test]
async fn a_ca_other_than_the_invitations_is_not_trusted() {
    let inviter = Inviter::new();
    let (address, server) = inviter.listen(1, true).await;
    let mut token = inviter.invite(address, Duration::from_secs(600));
    token.ca_sha256[0] ^= 1;
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("beta");
    assert!(matches!(
        join(&token, "beta", &dir).await,
        Err(PairError::CaMismatch)
    ));
    server.await.unwrap().pop().unwrap().unwrap();
    assert!(!dir.join(DEVICE_JSON).exists());
    assert!(!dir.join(DEVICE_KEY).exists());
}

#[tokio::test]
async fn garbage_truncated_and_oversized_frames_get_errors() {
    let inviter = Inviter::new();
    let (address, server) = inviter.listen(5, true).await;
    inviter.invite(address, Duration::from_secs(600));

    let malformed = Some(Status::Malformed as u8);
    // A length far beyond the limit.
    assert_eq!(
        exchange_raw(address, &u32::MAX.to_le_bytes()).await,
        malformed
    );
    // An empty frame.
    assert_eq!(exchange_raw(address, &0u32.to_le_bytes()).await, malformed);
    // A frame cut short.
    let mut cut = 100u32.to_le_bytes().to_vec();
    cut.extend_from_slice(&[1; 10]);
    assert_eq!(exchange_raw(address, &cut).await, malformed);
    // Garbage that fills its frame.
    let garbage: Vec<u8> = (0..200u32).map(|i| (i * 37 % 251) as u8 | 0x80).collect();
    assert_eq!(
        exchange_raw(address, &framed(&garbage)).await,
        Some(Status::BadVersion as u8)
    );
    let mut versioned = garbage.clone();
    versioned[0] = 1;
    assert_eq!(exchange_raw(address, &framed(&versioned)).await, malformed);

    let outcomes = server.await.unwrap();
    assert!(matches!(
        outcomes[0],
        Err(PairError::FrameSize { len: u32::MAX })
    ));
    assert!(matches!(outcomes[1], Err(PairError::FrameSize { len: 0 })));
    assert!(matches!(outcomes[2], Err(PairError::Closed)));
    assert!(matches!(outcomes[3], Err(PairError::Wire(_))));
    assert!(matches!(outcomes[4], Err(PairError::Wire(_))));
    assert_eq!(inviter.registry.names(), ["alpha"]);
    assert_eq!(inviter.pending.outstanding().unwrap().len(), 1);
}

#[tokio::test]
async fn a_joiner_refuses_a_garbage_reply() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let fake = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut len = [0; 4];
        stream.read_exact(&mut len).await.unwrap();
        let mut request = vec![0; u32::from_le_bytes(len) as usize];
        stream.read_exact(&mut request).await.unwrap();
        stream.write_all(&framed(&[1, 0, 9, 9, 9])).await.unwrap();
    });
    let inviter = Inviter::new();
    let token = inviter.invite(address, Duration::from_secs(600));
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("beta");
    assert!(matches!(
        join(&token, "beta", &dir).await,
        Err(PairError::Wire(_))
    ));
    fake.await.unwrap();
    assert!(!dir.join(DEVICE_JSON).exists());
}

/// An admission laid out by hand as the protocol documents it, MACed under `mac_key`.
fn admission(mac_key: &[u8], nonce: &[u8], fabric: &[u8; 16], cert: &str, ca: &str) -> Vec<u8> {
    let mut body = vec![1, Status::Admitted as u8];
    body.extend_from_slice(fabric);
    for field in [cert, ca, "[]"] {
        body.extend_from_slice(&(field.len() as u32).to_le_bytes());
        body.extend_from_slice(field.as_bytes());
    }
    let key = hmac::Key::new(hmac::HMAC_SHA256, mac_key);
    let mac = hmac::sign(&key, &[&b"weft-pair-rep"[..], nonce, &body].concat());
    body.extend_from_slice(mac.as_ref());
    body
}

#[tokio::test]
async fn a_joiner_refuses_a_forged_or_foreign_admission() {
    let inviter = Inviter::new();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let token = inviter.invite(listener.local_addr().unwrap(), Duration::from_secs(600));
    let name = DeviceName::new("beta").unwrap();
    let other_key = DeviceKey::generate().unwrap();
    let foreign = inviter
        .ca
        .sign(&other_key.csr_pem(&name).unwrap(), &name, DEFAULT_VALIDITY)
        .unwrap();
    let (right_key, ca_pem, fabric) = (
        mac_key(&token),
        inviter.ca.cert_pem().to_owned(),
        inviter.ca.fabric().0,
    );
    let fake = tokio::spawn(async move {
        // First a reply MACed without the secret, then a MACed one for someone else's key.
        for mac_key in [vec![0x42; 32], right_key] {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut len = [0; 4];
            stream.read_exact(&mut len).await.unwrap();
            let mut request = vec![0; u32::from_le_bytes(len) as usize];
            stream.read_exact(&mut request).await.unwrap();
            let nonce = &request[33..65];
            let reply = admission(&mac_key, nonce, &fabric, &foreign.cert_pem, &ca_pem);
            stream.write_all(&framed(&reply)).await.unwrap();
        }
    });
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("beta");
    assert!(matches!(
        join(&token, "beta", &dir).await,
        Err(PairError::BadReplyMac)
    ));
    assert!(matches!(
        join(&token, "beta", &dir).await,
        Err(PairError::Identity(IdentityError::DeviceKeyMismatch))
    ));
    fake.await.unwrap();
    assert!(!dir.join(DEVICE_JSON).exists());
    assert!(!dir.join(DEVICE_KEY).exists());
}

#[tokio::test]
async fn joining_into_a_directory_that_holds_a_device_is_refused_before_connecting() {
    let inviter = Inviter::new();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let token = inviter.invite(listener.local_addr().unwrap(), Duration::from_secs(600));
    let root = tempfile::tempdir().unwrap();
    let dir = StateDir::create(root.path()).unwrap();
    dir.save_device(&inviter.device).unwrap();
    assert!(matches!(
        join(&token, "beta", root.path()).await,
        Err(PairError::State(StateError::HoldsDevice { .. }))
    ));
    // Had the joiner connected, the kernel would have queued the connection before `join`
    // returned, and accept would be ready at once.
    let accepted = tokio::time::timeout(Duration::from_millis(50), listener.accept()).await;
    assert!(accepted.is_err(), "the joiner connected");
}

#[tokio::test(start_paused = true)]
async fn a_silent_joiner_times_out() {
    let inviter = Inviter::new();
    let (address, server) = inviter.listen(1, true).await;
    let _silent = TcpStream::connect(address).await.unwrap();
    assert!(matches!(
        server.await.unwrap()[0],
        Err(PairError::Timeout { op: "read" })
    ));
}

#[test]
fn the_state_dir_refuses_a_world_readable_key() {
    let root = tempfile::tempdir().unwrap();
    let dir = StateDir::create(root.path()).unwrap();
    let fabric = Fabric::create(&DeviceName::new("alpha").unwrap(), DEFAULT_VALIDITY).unwrap();
    dir.save_device(&fabric.device).unwrap();
    dir.write_private(INVITATIONS_JSON, b"{\"invitations\":[]}")
        .unwrap();
    for name in [DEVICE_KEY, INVITATIONS_JSON] {
        let path = dir.file(name);
        fs::set_permissions(&path, Permissions::from_mode(0o604)).unwrap();
        let error = StateDir::open(root.path()).unwrap_err().to_string();
        assert!(error.contains(name) && error.contains("0604"), "{error}");
        fs::set_permissions(&path, Permissions::from_mode(0o600)).unwrap();
    }
    StateDir::open(root.path()).unwrap();
}

/// Runs a mutual-TLS handshake (as Zenoh does) with `server` listening and `client`
/// connecting, each trusting only its own fabric's CA, and exchanges one message.
fn mutual_tls(server: &Device, client: &Device) -> Result<(), String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    let server_config = server_config(server);
    let server_thread = std::thread::spawn(move || -> Result<Vec<u8>, String> {
        let (mut socket, _) = listener.accept().unwrap();
        let mut conn = rustls::ServerConnection::new(server_config).map_err(|e| e.to_string())?;
        let mut tls = rustls::Stream::new(&mut conn, &mut socket);
        let mut message = [0; 4];
        tls.read_exact(&mut message).map_err(|e| e.to_string())?;
        tls.write_all(b"pong").map_err(|e| e.to_string())?;
        let peer = conn.peer_certificates().ok_or("no client certificate")?;
        Ok(peer[0].to_vec())
    });
    let name = ServerName::try_from(server.info().name.to_string()).unwrap();
    let mut conn = rustls::ClientConnection::new(client_config(client), name).unwrap();
    let mut socket = std::net::TcpStream::connect(address).unwrap();
    let mut tls = rustls::Stream::new(&mut conn, &mut socket);
    let client_side = tls
        .write_all(b"ping")
        .and_then(|()| {
            let mut reply = [0; 4];
            tls.read_exact(&mut reply).map(|()| reply)
        })
        .map_err(|e| e.to_string());
    drop(socket);
    let server_side = server_thread.join().unwrap();
    assert_eq!(client_side?, *b"pong");
    let client_der = CertificateDer::from_pem_slice(client.cert_pem().as_bytes()).unwrap();
    assert_eq!(server_side?, client_der.to_vec());
    Ok(())
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn roots(device: &Device) -> Arc<rustls::RootCertStore> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(device.ca_cert_pem().as_bytes()).unwrap())
        .unwrap();
    Arc::new(roots)
}

fn chain(device: &Device) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
    (
        vec![CertificateDer::from_pem_slice(device.cert_pem().as_bytes()).unwrap()],
        PrivateKeyDer::from_pem_slice(device.key_pem().as_bytes()).unwrap(),
    )
}

fn server_config(device: &Device) -> Arc<rustls::ServerConfig> {
    let verifier =
        rustls::server::WebPkiClientVerifier::builder_with_provider(roots(device), provider())
            .build()
            .unwrap();
    let (certs, key) = chain(device);
    Arc::new(
        rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(certs, key)
            .unwrap(),
    )
}

fn client_config(device: &Device) -> Arc<rustls::ClientConfig> {
    let (certs, key) = chain(device);
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots(device))
            .with_client_auth_cert(certs, key)
            .unwrap(),
    )
}
