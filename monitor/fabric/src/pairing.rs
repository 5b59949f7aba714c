//! Pairing: a device joins a fabric over one TCP connection to an inviting daemon,
//! authenticated by an invitation's secret, which is never sent. (PROTOCOL.md §16.4.)
//!
//! ## Exchange
//!
//! The joiner generates its key pair and a CSR, connects to an address of the invitation,
//! sends one request frame and reads one reply frame; the inviter closes the connection
//! after replying. Both sides read each frame within 10 s.
//!
//! K is the invitation's MAC key, `HMAC-SHA256(key = secret, "weft-pair-key")` (see
//! [`crate::invite`]); the inviter holds K in its pending store, the joiner derives it from
//! the secret.
//!
//! ## Frames
//!
//! | offset | size | field                                                   |
//! |--------|------|---------------------------------------------------------|
//! | 0      | 4    | payload length N, u32 little-endian, 1..=65536          |
//! | 4      | N    | payload                                                 |
//!
//! A length of 0 or above 65536, a frame cut short, or more than 10 s waiting for bytes
//! ends the exchange with an error.
//!
//! ## Request payload (joiner → inviter)
//!
//! | offset  | size | field                                                         |
//! |---------|------|---------------------------------------------------------------|
//! | 0       | 1    | version = 1                                                   |
//! | 1       | 32   | token id = SHA-256(secret)                                    |
//! | 33      | 32   | nonce_j, random                                               |
//! | 65      | 1    | L = length of the requested name, 1..=32                      |
//! | 66      | L    | requested device name, `[a-z0-9-]`                            |
//! | 66+L    | 2    | C = length of the CSR, u16 little-endian                      |
//! | 68+L    | C    | the CSR, PEM (PKCS#10, ECDSA P-256)                           |
//! | 68+L+C  | 32   | mac_j = HMAC-SHA256(K, "weft-pair-req" ‖ bytes 0..68+L+C)      |
//!
//! ## Reply payload (inviter → joiner)
//!
//! | offset | size | field                                                          |
//! |--------|------|----------------------------------------------------------------|
//! | 0      | 1    | version = 1                                                    |
//! | 1      | 1    | status: see [`Status`]; 0 = admitted                           |
//!
//! Status 0 (admitted) continues, all lengths u32 little-endian:
//!
//! | offset      | size | field                                                     |
//! |-------------|------|-----------------------------------------------------------|
//! | 2           | 16   | fabric id                                                 |
//! | 18          | 4    | A = length of the device certificate                      |
//! | 22          | A    | the device certificate, PEM                               |
//! | 22+A        | 4    | B = length of the CA certificate                          |
//! | 26+A        | B    | the fabric CA's certificate, PEM                          |
//! | 26+A+B      | 4    | R = length of the registry                                |
//! | 30+A+B      | R    | the inviter's known devices, JSON (opaque here)           |
//! | 30+A+B+R    | 32   | mac_i = HMAC-SHA256(K, "weft-pair-rep" ‖ nonce_j ‖ bytes 0..30+A+B+R) |
//!
//! Any other status continues with a u16 little-endian length M and M bytes of UTF-8
//! message. A refusal carries no MAC (an unknown token has no key); the joiner reports it,
//! with control characters replaced by U+FFFD, and stores nothing.
//!
//! ## Checks
//!
//! Inviter, in order: version; token outstanding (unknown, used, expired); mac_j (constant
//! time); name valid; name free (the daemon's [`Admit::name_taken`]); holds the CA; CSR
//! signature and key type; signs and builds the reply (it must fit a frame); then it
//! consumes the token (once, even against concurrent pairings), records the device
//! ([`Admit::admit`]) and replies. A refusal before
//! the token is consumed leaves the invitation usable (a joiner can retry with another
//! name). Joiner: version; mac_i over its own nonce; fabric id equals the invitation's;
//! SHA-256 of the CA certificate's DER equals the invitation's `ca_sha256`; the
//! certificate is signed by that CA, holds the joiner's own public key and names it (CN
//! and SAN DNS). Only then does it write its state directory; its private key never
//! leaves it.

mod wire;

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::timeout;

use crate::identity::{
    CaMaterial, CertSummary, Device, DeviceId, DeviceInfo, DeviceKey, DeviceName, FabricId,
    IdentityError, NameError, issue_validity, random, verify_issued_by,
};
use crate::invite::{Invitation, InviteError, Pending};
use crate::state::{StateDir, StateError};
pub use wire::WireError;
use wire::{Admission, Reply, Request};

/// The pairing protocol version.
pub const VERSION: u8 = 1;
/// The largest frame payload.
pub const MAX_FRAME: u32 = 64 * 1024;
/// How long either side waits for a frame, a write, or a connection.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// A reply's status byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Status {
    Admitted = 0,
    /// The request's version is not spoken by the inviter.
    BadVersion = 1,
    /// The request did not parse.
    Malformed = 2,
    TokenUnknown = 3,
    TokenUsed = 4,
    TokenExpired = 5,
    /// mac_j does not verify: the joiner does not hold the invitation's secret.
    BadMac = 6,
    NameInvalid = 7,
    NameTaken = 8,
    /// The CSR's signature or key type was refused.
    BadCsr = 9,
    /// The inviting device does not hold the fabric's CA key.
    NoCa = 10,
    /// The inviter failed on its side (storage, signing).
    Internal = 11,
}

impl Status {
    const ALL: [Self; 12] = [
        Self::Admitted,
        Self::BadVersion,
        Self::Malformed,
        Self::TokenUnknown,
        Self::TokenUsed,
        Self::TokenExpired,
        Self::BadMac,
        Self::NameInvalid,
        Self::NameTaken,
        Self::BadCsr,
        Self::NoCa,
        Self::Internal,
    ];

    fn from_code(code: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|status| *status as u8 == code)
    }
}

/// Why pairing failed, on either side.
#[derive(Debug, thiserror::Error)]
pub enum PairError {
    #[error("pairing {op} failed: {source}")]
    Io { op: &'static str, source: io::Error },
    #[error("pairing {op} took longer than {IO_TIMEOUT:?}")]
    Timeout { op: &'static str },
    #[error("could not reach the inviting device at any of {tried:?}: {source}")]
    Connect {
        tried: Vec<SocketAddr>,
        source: io::Error,
    },
    #[error("the peer closed the connection in the middle of the exchange")]
    Closed,
    #[error("a pairing frame of {len} bytes is outside 1..={MAX_FRAME}")]
    FrameSize { len: u32 },
    #[error("bad pairing message: {0}")]
    Wire(#[from] WireError),
    #[error("the request's MAC does not verify: the joiner does not hold this invitation's secret")]
    BadRequestMac,
    #[error("the reply's MAC does not verify: the peer does not hold this invitation's secret")]
    BadReplyMac,
    #[error("the inviting device refused ({status:?}): {message}")]
    Refused { status: Status, message: String },
    #[error("device name {name} is already taken in this fabric")]
    NameTaken { name: DeviceName },
    #[error("this device does not hold the fabric's CA")]
    NoCa,
    #[error("the peer sent fabric {found}, but the invitation is for fabric {expected}")]
    FabricMismatch { expected: FabricId, found: FabricId },
    #[error("the peer's CA certificate does not match the invitation's CA hash")]
    CaMismatch,
    #[error("the certificate received names {found:?}, not the requested {expected}")]
    CertName {
        expected: DeviceName,
        found: Vec<String>,
    },
    #[error("the reply (certificates and registry) does not fit in a frame of {MAX_FRAME} bytes")]
    ReplyTooLarge,
    #[error("the registry received is not JSON: {0}")]
    Registry(#[source] serde_json::Error),
    #[error(transparent)]
    Name(#[from] NameError),
    #[error(transparent)]
    Invite(#[from] InviteError),
    #[error(transparent)]
    Identity(#[from] IdentityError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error("recording the new device failed: {0}")]
    Admit(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl PairError {
    /// The status an inviter answers this error with.
    fn status(&self) -> Status {
        match self {
            Self::Wire(WireError::Version { .. }) => Status::BadVersion,
            Self::Wire(_) | Self::FrameSize { .. } | Self::Closed => Status::Malformed,
            Self::Invite(InviteError::Unknown) => Status::TokenUnknown,
            Self::Invite(InviteError::Used) => Status::TokenUsed,
            Self::Invite(InviteError::Expired { .. }) => Status::TokenExpired,
            Self::BadRequestMac => Status::BadMac,
            Self::Name(_) => Status::NameInvalid,
            Self::NameTaken { .. } => Status::NameTaken,
            Self::Identity(
                IdentityError::CsrSignature
                | IdentityError::KeyAlgorithm { .. }
                | IdentityError::Pem { .. }
                | IdentityError::Der { .. },
            ) => Status::BadCsr,
            Self::NoCa => Status::NoCa,
            _ => Status::Internal,
        }
    }
}

/// What the daemon supplies to admit devices: its registry of known devices.
pub trait Admit {
    type Error: std::error::Error + Send + Sync + 'static;

    /// Whether a device of the fabric already has `name`.
    fn name_taken(&self, name: &DeviceName) -> bool;

    /// Records a newly admitted device.
    fn admit(&self, name: &DeviceName, id: DeviceId, cert_pem: &str) -> Result<(), Self::Error>;

    /// The known devices, sent to the new device as they are. Called before
    /// [`admit`](Self::admit), so it lists the fabric as the new device finds it.
    fn registry(&self) -> serde_json::Value;
}

/// A device the inviter admitted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Admitted {
    pub name: DeviceName,
    pub id: DeviceId,
    pub cert_pem: String,
}

/// What a joiner has after pairing: its identity (already saved in its state directory)
/// and the inviter's registry.
#[derive(Debug)]
pub struct Joined {
    pub device: Device,
    pub registry: serde_json::Value,
}

/// Serves one pairing request on `stream` as the inviting device: checks it, signs the
/// joiner's CSR with `ca` (None: this device does not hold the CA, and says so), records
/// the device through `ctx` and replies. Any refusal is also sent to the joiner.
///
/// Signing and the pending store's file I/O run on the calling task; they block it
/// briefly (up to the store's lock wait if another process holds the lock).
///
/// # Cancel safety
///
/// Not cancel safe: cancelled after the token is consumed, the invitation is used and the
/// device may be recorded without the joiner getting its certificate.
pub async fn serve_pairing<S, A>(
    mut stream: S,
    ctx: &A,
    ca: Option<&CaMaterial>,
    pending: &Pending,
) -> Result<Admitted, PairError>
where
    S: AsyncRead + AsyncWrite + Unpin,
    A: Admit,
{
    match admit(&mut stream, ctx, ca, pending).await {
        Ok((admitted, reply)) => {
            wire::write_frame(&mut stream, &reply).await?;
            Ok(admitted)
        }
        Err(error) => {
            let status = error.status();
            // The peer is not trusted yet: our own failures stay in our log.
            let message = match status {
                Status::Internal => "the inviting device failed on its side; see its log".into(),
                _ => error.to_string(),
            };
            let refusal = wire::encode_refusal(status, &message);
            // The joiner may be gone or be the garbage's sender; the error that matters
            // is the one that made us refuse.
            let _ = wire::write_frame(&mut stream, &refusal).await;
            Err(error)
        }
    }
}

/// Everything of [`serve_pairing`] up to the reply.
async fn admit<S, A>(
    stream: &mut S,
    ctx: &A,
    ca: Option<&CaMaterial>,
    pending: &Pending,
) -> Result<(Admitted, Vec<u8>), PairError>
where
    S: AsyncRead + Unpin,
    A: Admit,
{
    let request = Request::decode(&wire::read_frame(stream).await?)?;
    let key = pending.mac_key(&request.token)?;
    if !request.verify(&key) {
        return Err(PairError::BadRequestMac);
    }
    let name = DeviceName::new(&request.name)?;
    if ctx.name_taken(&name) {
        return Err(PairError::NameTaken { name });
    }
    let ca = ca.ok_or(PairError::NoCa)?;
    let signed = ca.sign(&request.csr_pem, &name, issue_validity()?)?;
    // The reply is built, and known to fit a frame, before anything is consumed or
    // recorded.
    let registry_json = serde_json::to_string(&ctx.registry()).map_err(PairError::Registry)?;
    let admission = Admission {
        fabric: ca.fabric(),
        cert_pem: signed.cert_pem.clone(),
        ca_cert_pem: ca.cert_pem().to_owned(),
        registry_json,
    };
    let reply = wire::encode_admission(&key, &request.nonce, &admission)
        .ok()
        .filter(|reply| reply.len() <= MAX_FRAME as usize)
        .ok_or(PairError::ReplyTooLarge)?;
    pending.take(&request.token)?;
    ctx.admit(&name, signed.id, &signed.cert_pem)
        .map_err(|error| PairError::Admit(Box::new(error)))?;
    let admitted = Admitted {
        name,
        id: signed.id,
        cert_pem: signed.cert_pem,
    };
    Ok((admitted, reply))
}

/// Joins the fabric of `token` as device `name`: creates the state directory `dir`,
/// pairs with the inviting daemon at the first of the invitation's addresses that
/// accepts a connection, checks what it sends and saves the new identity in `dir`.
///
/// # Cancel safety
///
/// Cancel safe up to the reply: `dir` then holds no device, and the invitation may be
/// used up if the inviter admitted the device already.
pub async fn join(token: &Invitation, name: &str, dir: &Path) -> Result<Joined, PairError> {
    let name = DeviceName::new(name)?;
    if token.is_expired() {
        return Err(InviteError::Expired {
            expires_unix: token.expires_unix,
        }
        .into());
    }
    let state = StateDir::create(dir)?;
    let key = DeviceKey::generate()?;
    let nonce = random()?;
    let mac_key = token.mac_key();
    let request = Request::encode(
        &mac_key,
        &token.token_id(),
        &nonce,
        name.as_str(),
        &key.csr_pem(&name)?,
    )?;

    let mut stream = connect(&token.addresses).await?;
    wire::write_frame(&mut stream, &request).await?;
    let (admission, signed, mac) = match Reply::decode(&wire::read_frame(&mut stream).await?)? {
        Reply::Refused { status, message } => return Err(PairError::Refused { status, message }),
        Reply::Admitted {
            admission,
            signed,
            mac,
        } => (admission, signed, mac),
    };
    if !wire::verify_admission(&mac_key, &nonce, &signed, &mac) {
        return Err(PairError::BadReplyMac);
    }
    if admission.fabric != token.fabric {
        return Err(PairError::FabricMismatch {
            expected: token.fabric,
            found: admission.fabric,
        });
    }
    if CertSummary::of_pem(&admission.ca_cert_pem)?.sha256 != token.ca_sha256 {
        return Err(PairError::CaMismatch);
    }
    verify_issued_by(&admission.cert_pem, &admission.ca_cert_pem)?;
    key.check_cert(&admission.cert_pem)?;
    let cert = CertSummary::of_pem(&admission.cert_pem)?;
    if cert.common_name != name.as_str() || cert.dns_names != [name.as_str()] {
        return Err(PairError::CertName {
            expected: name,
            found: [vec![cert.common_name], cert.dns_names].concat(),
        });
    }
    let registry = serde_json::from_str(&admission.registry_json).map_err(PairError::Registry)?;

    let info = DeviceInfo {
        name,
        id: key.id(),
        fabric: token.fabric,
    };
    let device = key.into_device(info, admission.cert_pem, admission.ca_cert_pem);
    state.save_device(&device)?;
    Ok(Joined { device, registry })
}

/// Connects to the first of `addresses` that accepts within [`IO_TIMEOUT`].
async fn connect(addresses: &[SocketAddr]) -> Result<TcpStream, PairError> {
    let mut last = io::Error::new(io::ErrorKind::InvalidInput, "the invitation has no address");
    for address in addresses {
        match timeout(IO_TIMEOUT, TcpStream::connect(address)).await {
            Ok(Ok(stream)) => return Ok(stream),
            Ok(Err(error)) => last = error,
            Err(_) => last = io::Error::new(io::ErrorKind::TimedOut, "connecting timed out"),
        }
    }
    Err(PairError::Connect {
        tried: addresses.to_vec(),
        source: last,
    })
}
