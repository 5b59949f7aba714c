//! One-time invitations into a fabric, and the inviting device's store of outstanding ones
//! (PROTOCOL.md §16.4).
//!
//! An invitation travels as text: `weft-invite-1.<body>`, where `1` is the body's version
//! and `<body>` is the unpadded base64url (RFC 4648 §5) of these bytes:
//!
//! | offset | size    | field                                                        |
//! |--------|---------|--------------------------------------------------------------|
//! | 0      | 16      | fabric id                                                    |
//! | 16     | 32      | SHA-256 of the fabric CA certificate's DER                   |
//! | 48     | 32      | secret (random)                                              |
//! | 80     | 8       | expiry, seconds since the Unix epoch, u64 little-endian      |
//! | 88     | 1       | address count N, 1..=16                                      |
//! | 89     | N × var | addresses: family u8 (4 or 6), the IP in network order (4 or 16 bytes), port u16 little-endian |
//!
//! Nothing may follow the last address. [`Invitation::decode`] checks all of it and
//! refuses an expired invitation.
//!
//! Invariants: the secret is only ever in the invitation's text, never sent during
//! pairing and never stored by the inviter; the inviter's [`Pending`] store (in
//! `pending`) keeps only what is derived from it.

mod pending;

pub use pending::{LOCK_WAIT, Outstanding, Pending, STALE_LOCK};

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::hmac;
use serde::{Deserialize, Serialize};

use crate::identity::{
    CertSummary, Device, FabricId, HexIdError, IdentityError, hex_id, now_unix, parse_hex, random,
    sha256, to_hex,
};
use crate::reader::{Reader, Truncated};
use crate::state::{INVITATIONS_JSON, StateError};

/// What an invitation's text starts with, up to its version.
pub const PREFIX: &str = "weft-invite-";
/// The body version this code reads and writes.
pub const VERSION: u32 = 1;
/// The most addresses an invitation carries.
pub const MAX_ADDRESSES: usize = 16;
/// The fixed part of the body, before the addresses.
const FIXED_LEN: usize = 16 + 32 + 32 + 8 + 1;
/// The label the MAC key is derived with.
const MAC_KEY_LABEL: &[u8] = b"weft-pair-key";

/// Why an invitation or the pending store was refused.
#[derive(Debug, thiserror::Error)]
pub enum InviteError {
    #[error("an invitation starts with \"{PREFIX}{VERSION}.\"")]
    BadPrefix,
    #[error("invitation version {found:?} is not supported (this device reads version {VERSION})")]
    BadVersion { found: String },
    #[error("the invitation's body is not base64url")]
    BadBase64,
    #[error("the invitation is truncated: {0}")]
    Truncated(#[from] Truncated),
    #[error("the invitation has {count} bytes after its last address")]
    TrailingBytes { count: usize },
    #[error("the invitation holds {count} addresses; it must hold 1 to {MAX_ADDRESSES}")]
    AddressCount { count: usize },
    #[error("the invitation holds address family {family}; only 4 and 6 exist")]
    BadFamily { family: u8 },
    #[error("the invitation expired at {expires_unix} (Unix time); ask for a new one")]
    Expired { expires_unix: u64 },
    #[error("the invitation is unknown to this device")]
    Unknown,
    #[error("the invitation was already used")]
    Used,
    #[error("the system clock is before 1970 or the time to live overflows")]
    Clock,
    #[error("another process holds {path} (remove it if no weft process is running)")]
    Busy { path: PathBuf },
    #[error("{op} {path}: {source}")]
    Lock {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("{INVITATIONS_JSON} is not valid: {0}")]
    StoreJson(#[source] serde_json::Error),
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Identity(#[from] IdentityError),
}

hex_id!(
    /// An invitation's token id: SHA-256 of its secret.
    TokenId,
    32
);

/// The key pairing messages are authenticated with: HMAC-SHA256(secret, "weft-pair-key").
/// A secret; kept as hex in the pending store.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct MacKey([u8; 32]);

impl From<MacKey> for String {
    fn from(key: MacKey) -> String {
        to_hex(&key.0)
    }
}

impl TryFrom<String> for MacKey {
    type Error = HexIdError;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        parse_hex(&text).map(Self)
    }
}

impl fmt::Debug for MacKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MacKey(..)")
    }
}

impl MacKey {
    /// The HMAC key to sign and verify with.
    pub fn hmac(&self) -> hmac::Key {
        hmac::Key::new(hmac::HMAC_SHA256, &self.0)
    }
}

/// A one-time invitation into a fabric.
#[derive(Clone, PartialEq, Eq)]
pub struct Invitation {
    /// The fabric to join.
    pub fabric: FabricId,
    /// SHA-256 of the fabric CA certificate's DER: the joiner trusts the CA it is given
    /// only if it hashes to this.
    pub ca_sha256: [u8; 32],
    /// Where the inviting daemon listens for pairing.
    pub addresses: Vec<SocketAddr>,
    /// The shared secret (never sent during pairing).
    pub secret: [u8; 32],
    /// When the invitation stops being valid, seconds since the Unix epoch.
    pub expires_unix: u64,
}

impl fmt::Debug for Invitation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Invitation")
            .field("fabric", &self.fabric)
            .field("addresses", &self.addresses)
            .field("expires_unix", &self.expires_unix)
            .finish_non_exhaustive()
    }
}

impl Invitation {
    /// A fresh invitation into `device`'s fabric, reaching the daemon at `addresses`,
    /// valid for `ttl`.
    pub fn new(
        device: &Device,
        addresses: Vec<SocketAddr>,
        ttl: Duration,
    ) -> Result<Self, InviteError> {
        if addresses.is_empty() || addresses.len() > MAX_ADDRESSES {
            return Err(InviteError::AddressCount {
                count: addresses.len(),
            });
        }
        let expires = SystemTime::now()
            .checked_add(ttl)
            .and_then(|at| at.duration_since(SystemTime::UNIX_EPOCH).ok())
            .ok_or(InviteError::Clock)?;
        Ok(Self {
            fabric: device.info().fabric,
            ca_sha256: CertSummary::of_pem(device.ca_cert_pem())?.sha256,
            addresses,
            secret: random()?,
            expires_unix: expires.as_secs(),
        })
    }

    /// SHA-256 of the secret: how the joiner names the invitation to the inviter.
    pub fn token_id(&self) -> TokenId {
        TokenId(sha256(&self.secret))
    }

    /// The key pairing messages for this invitation are authenticated with.
    pub fn mac_key(&self) -> MacKey {
        let key = hmac::Key::new(hmac::HMAC_SHA256, &self.secret);
        let mut derived = [0; 32];
        derived.copy_from_slice(hmac::sign(&key, MAC_KEY_LABEL).as_ref());
        MacKey(derived)
    }

    /// Whether the invitation has expired.
    pub fn is_expired(&self) -> bool {
        now_unix() >= self.expires_unix
    }

    /// The text form, `weft-invite-1.<base64url body>`, with the first [`MAX_ADDRESSES`]
    /// addresses ([`new`](Self::new) and [`decode`](Self::decode) never make more).
    pub fn encode(&self) -> String {
        let mut body = Vec::with_capacity(FIXED_LEN + self.addresses.len() * 19);
        body.extend_from_slice(&self.fabric.0);
        body.extend_from_slice(&self.ca_sha256);
        body.extend_from_slice(&self.secret);
        body.extend_from_slice(&self.expires_unix.to_le_bytes());
        // `new` and `decode` keep the count within MAX_ADDRESSES.
        body.push(self.addresses.len().min(MAX_ADDRESSES) as u8);
        for address in self.addresses.iter().take(MAX_ADDRESSES) {
            match address.ip() {
                IpAddr::V4(ip) => {
                    body.push(4);
                    body.extend_from_slice(&ip.octets());
                }
                IpAddr::V6(ip) => {
                    body.push(6);
                    body.extend_from_slice(&ip.octets());
                }
            }
            body.extend_from_slice(&address.port().to_le_bytes());
        }
        format!("{PREFIX}{VERSION}.{}", URL_SAFE_NO_PAD.encode(body))
    }

    /// Reads the text form, checking every field and that it has not expired.
    pub fn decode(text: &str) -> Result<Self, InviteError> {
        let rest = text
            .trim()
            .strip_prefix(PREFIX)
            .ok_or(InviteError::BadPrefix)?;
        let (version, body) = rest.split_once('.').ok_or(InviteError::BadPrefix)?;
        if version != VERSION.to_string() {
            return Err(InviteError::BadVersion {
                found: version.chars().take(16).collect(),
            });
        }
        let body = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| InviteError::BadBase64)?;
        let mut reader = Reader::new(&body);
        let fabric = FabricId(reader.array("the fabric id")?);
        let ca_sha256 = reader.array("the CA hash")?;
        let secret = reader.array("the secret")?;
        let expires_unix = u64::from_le_bytes(reader.array("the expiry")?);
        let [count] = reader.array("the address count")?;
        let count = usize::from(count);
        if count == 0 || count > MAX_ADDRESSES {
            return Err(InviteError::AddressCount { count });
        }
        let addresses = (0..count)
            .map(|_| address(&mut reader))
            .collect::<Result<Vec<_>, _>>()?;
        if reader.left() != 0 {
            return Err(InviteError::TrailingBytes {
                count: reader.left(),
            });
        }
        let invitation = Self {
            fabric,
            ca_sha256,
            addresses,
            secret,
            expires_unix,
        };
        if invitation.is_expired() {
            return Err(InviteError::Expired { expires_unix });
        }
        Ok(invitation)
    }
}

/// Reads one address: family, IP, port.
fn address(reader: &mut Reader<'_>) -> Result<SocketAddr, InviteError> {
    let ip = match reader.array("an address family")? {
        [4] => IpAddr::V4(Ipv4Addr::from(reader.array::<4>("an IPv4 address")?)),
        [6] => IpAddr::V6(Ipv6Addr::from(reader.array::<16>("an IPv6 address")?)),
        [family] => return Err(InviteError::BadFamily { family }),
    };
    let port = u16::from_le_bytes(reader.array("a port")?);
    Ok(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::{DEFAULT_VALIDITY, DeviceName, Fabric};
    use crate::state::StateDir;

    pub(super) fn device_dir() -> (tempfile::TempDir, StateDir, Fabric) {
        let root = tempfile::tempdir().unwrap();
        let dir = StateDir::create(root.path()).unwrap();
        let fabric = Fabric::create(&DeviceName::new("alpha").unwrap(), DEFAULT_VALIDITY).unwrap();
        dir.save_device(&fabric.device).unwrap();
        (root, dir, fabric)
    }

    pub(super) fn addresses() -> Vec<SocketAddr> {
        vec![
            "192.168.1.7:7447".parse().unwrap(),
            "[fe80::1]:7448".parse().unwrap(),
        ]
    }

    #[test]
    fn text_form_round_trips() {
        let (_root, _dir, fabric) = device_dir();
        let invitation =
            Invitation::new(&fabric.device, addresses(), Duration::from_secs(600)).unwrap();
        let text = invitation.encode();
        assert!(text.starts_with("weft-invite-1."), "{text}");
        assert_eq!(Invitation::decode(&text).unwrap(), invitation);
        assert_eq!(
            Invitation::decode(&format!(" {text}\n")).unwrap(),
            invitation
        );
        let debug = format!("{invitation:?}");
        assert!(!debug.contains("secret"), "{debug}");
    }

    #[test]
    fn decode_refuses_every_kind_of_bad_text() {
        let (_root, _dir, fabric) = device_dir();
        let mut invitation =
            Invitation::new(&fabric.device, addresses(), Duration::from_secs(600)).unwrap();
        let text = invitation.encode();
        let body = text.strip_prefix("weft-invite-1.").unwrap();
        let bytes = URL_SAFE_NO_PAD.decode(body).unwrap();
        let with_body = |bytes: &[u8]| format!("weft-invite-1.{}", URL_SAFE_NO_PAD.encode(bytes));

        assert!(matches!(
            Invitation::decode("hello"),
            Err(InviteError::BadPrefix)
        ));
        assert!(matches!(
            Invitation::decode(&format!("weft-invite-2.{body}")),
            Err(InviteError::BadVersion { found }) if found == "2"
        ));
        assert!(matches!(
            Invitation::decode("weft-invite-1.!!!"),
            Err(InviteError::BadBase64)
        ));
        for len in [0, 10, FIXED_LEN - 1, FIXED_LEN, bytes.len() - 1] {
            assert!(
                matches!(
                    Invitation::decode(&with_body(&bytes[..len])),
                    Err(InviteError::Truncated(_))
                ),
                "length {len}"
            );
        }
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(matches!(
            Invitation::decode(&with_body(&trailing)),
            Err(InviteError::TrailingBytes { count: 1 })
        ));
        let mut family = bytes.clone();
        family[FIXED_LEN] = 5;
        assert!(matches!(
            Invitation::decode(&with_body(&family)),
            Err(InviteError::BadFamily { family: 5 })
        ));
        let mut none = bytes[..FIXED_LEN].to_vec();
        none[FIXED_LEN - 1] = 0;
        assert!(matches!(
            Invitation::decode(&with_body(&none)),
            Err(InviteError::AddressCount { count: 0 })
        ));

        invitation.expires_unix = now_unix() - 1;
        assert!(matches!(
            Invitation::decode(&invitation.encode()),
            Err(InviteError::Expired { .. })
        ));
    }
}
