//! One-time invitations into a fabric, and the inviting device's store of outstanding ones.
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
//! Invariants:
//! - The secret is never stored or sent by the inviter's side. Its pending store
//!   (`invitations.json`, owner-only) keeps, per invitation, the token id
//!   `SHA-256(secret)`, the MAC key `HMAC-SHA256(key = secret, "weft-pair-key")` that
//!   pairing messages are authenticated with (the inviter must be able to check them; the
//!   key is a secret too, and useless once the invitation is used or expired), the expiry,
//!   and whether it was used.
//! - [`Pending::take`] succeeds once per invitation; a used invitation stays listed as used
//!   until it expires, so a second use is refused as used rather than unknown. Expired
//!   entries are pruned whenever the store is written.
//! - Read-modify-write of the store is serialised across processes (the CLI adds, the
//!   daemon takes) by the lock file `invitations.lock` in DIR, created exclusively; a lock
//!   older than [`STALE_LOCK`] is left over from a crash and is broken.

use std::fmt;
use std::fs::{self, OpenOptions};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::hmac;
use serde::{Deserialize, Serialize};

use crate::identity::{
    CertSummary, Device, FabricId, IdentityError, hex_id, now_unix, random, sha256,
};
use crate::state::{INVITATIONS_JSON, StateDir, StateError};

/// What an invitation's text starts with, up to its version.
pub const PREFIX: &str = "weft-invite-";
/// The body version this code reads and writes.
pub const VERSION: u32 = 1;
/// The most addresses an invitation carries.
pub const MAX_ADDRESSES: usize = 16;
/// The fixed part of the body, before the addresses.
const FIXED_LEN: usize = 16 + 32 + 32 + 8 + 1;
/// How long a writer of the pending store waits for another's lock.
const LOCK_WAIT: Duration = Duration::from_secs(2);
/// How old a lock file must be to count as left over from a crash.
pub const STALE_LOCK: Duration = Duration::from_secs(10);
/// The pending store's lock file.
const LOCK_FILE: &str = "invitations.lock";
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
    #[error("the invitation is truncated: {field} needs {needed} bytes, {left} are left")]
    Truncated {
        field: &'static str,
        needed: usize,
        left: usize,
    },
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
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MacKey(TokenId);

impl fmt::Debug for MacKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MacKey(..)")
    }
}

impl MacKey {
    /// The HMAC key to sign and verify with.
    pub fn hmac(&self) -> hmac::Key {
        hmac::Key::new(hmac::HMAC_SHA256, &self.0.0)
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
        MacKey(TokenId(derived))
    }

    /// Whether the invitation has expired.
    pub fn is_expired(&self) -> bool {
        now_unix() >= self.expires_unix
    }

    /// The text form, `weft-invite-1.<base64url body>`.
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
        let mut reader = Reader(&body);
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
            .map(|_| reader.address())
            .collect::<Result<Vec<_>, _>>()?;
        if !reader.0.is_empty() {
            return Err(InviteError::TrailingBytes {
                count: reader.0.len(),
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

/// Reads the invitation body front to back.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], InviteError> {
        let (head, rest) = self
            .0
            .split_first_chunk::<N>()
            .ok_or(InviteError::Truncated {
                field,
                needed: N,
                left: self.0.len(),
            })?;
        self.0 = rest;
        Ok(*head)
    }

    fn address(&mut self) -> Result<SocketAddr, InviteError> {
        let ip = match self.array("an address family")? {
            [4] => IpAddr::V4(Ipv4Addr::from(self.array::<4>("an IPv4 address")?)),
            [6] => IpAddr::V6(Ipv6Addr::from(self.array::<16>("an IPv6 address")?)),
            [family] => return Err(InviteError::BadFamily { family }),
        };
        let port = u16::from_le_bytes(self.array("a port")?);
        Ok(SocketAddr::new(ip, port))
    }
}

/// One outstanding or used invitation in the pending store.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Entry {
    token: TokenId,
    key: MacKey,
    expires_unix: u64,
    used: bool,
}

/// `invitations.json`.
#[derive(Debug, Default, Serialize, Deserialize)]
struct StoreFile {
    invitations: Vec<Entry>,
}

/// An invitation that can still be used, as listed by [`Pending::outstanding`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outstanding {
    pub token: TokenId,
    pub expires_unix: u64,
}

/// The inviting device's outstanding invitations (`invitations.json` in DIR).
#[derive(Clone, Debug)]
pub struct Pending {
    dir: StateDir,
}

impl Pending {
    /// The store in `dir`.
    pub fn new(dir: StateDir) -> Self {
        Self { dir }
    }

    /// Records `invitation` as outstanding.
    pub fn add(&self, invitation: &Invitation) -> Result<(), InviteError> {
        self.update(|store| {
            store.invitations.push(Entry {
                token: invitation.token_id(),
                key: invitation.mac_key(),
                expires_unix: invitation.expires_unix,
                used: false,
            });
            Ok(())
        })
    }

    /// The MAC key of outstanding invitation `token`, to check a pairing request with
    /// before [`take`](Self::take)ing it.
    pub fn mac_key(&self, token: &TokenId) -> Result<MacKey, InviteError> {
        let store = self.load()?;
        usable(&store, token).map(|entry| entry.key.clone())
    }

    /// Consumes outstanding invitation `token`: succeeds once, then refuses it as used.
    pub fn take(&self, token: &TokenId) -> Result<(), InviteError> {
        self.update(|store| {
            usable(store, token)?;
            if let Some(entry) = store.invitations.iter_mut().find(|e| e.token == *token) {
                entry.used = true;
            }
            Ok(())
        })
    }

    /// The invitations that can still be used.
    pub fn outstanding(&self) -> Result<Vec<Outstanding>, InviteError> {
        let now = now_unix();
        Ok(self
            .load()?
            .invitations
            .into_iter()
            .filter(|entry| !entry.used && entry.expires_unix > now)
            .map(|entry| Outstanding {
                token: entry.token,
                expires_unix: entry.expires_unix,
            })
            .collect())
    }

    fn load(&self) -> Result<StoreFile, InviteError> {
        match self.dir.read_if_present(INVITATIONS_JSON)? {
            Some(bytes) => serde_json::from_slice(&bytes).map_err(InviteError::StoreJson),
            None => Ok(StoreFile::default()),
        }
    }

    /// Applies `change` to the store under the lock and writes it back pruned of expired
    /// entries, even if `change` refused (an expired invitation is then gone).
    fn update(
        &self,
        change: impl FnOnce(&mut StoreFile) -> Result<(), InviteError>,
    ) -> Result<(), InviteError> {
        let _lock = StoreLock::acquire(&self.dir)?;
        let mut store = self.load()?;
        let outcome = change(&mut store);
        let now = now_unix();
        store.invitations.retain(|entry| entry.expires_unix > now);
        let bytes = serde_json::to_vec_pretty(&store).map_err(InviteError::StoreJson)?;
        self.dir.write_private(INVITATIONS_JSON, &bytes)?;
        outcome
    }
}

/// The entry for `token` if it can be used now.
fn usable<'a>(store: &'a StoreFile, token: &TokenId) -> Result<&'a Entry, InviteError> {
    let entry = store
        .invitations
        .iter()
        .find(|entry| entry.token == *token)
        .ok_or(InviteError::Unknown)?;
    if entry.expires_unix <= now_unix() {
        return Err(InviteError::Expired {
            expires_unix: entry.expires_unix,
        });
    }
    if entry.used {
        return Err(InviteError::Used);
    }
    Ok(entry)
}

/// The pending store's lock file, removed when dropped.
struct StoreLock {
    path: PathBuf,
}

impl StoreLock {
    fn acquire(dir: &StateDir) -> Result<Self, InviteError> {
        let path = dir.file(LOCK_FILE);
        let deadline = Instant::now() + LOCK_WAIT;
        loop {
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(_) => return Ok(Self { path }),
                Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {}
                Err(source) => {
                    return Err(InviteError::Lock {
                        op: "create",
                        path,
                        source,
                    });
                }
            }
            let age = fs::metadata(&path)
                .and_then(|meta| meta.modified())
                .ok()
                .and_then(|modified| modified.elapsed().ok());
            if age.is_some_and(|age| age > STALE_LOCK) {
                // A crashed holder's lock: whoever removes it first retries like the rest.
                let _ = fs::remove_file(&path);
            } else if Instant::now() >= deadline {
                return Err(InviteError::Busy { path });
            } else {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }
}

impl Drop for StoreLock {
    fn drop(&mut self) {
        // Nothing to do if it is already gone: only a stale-lock breaker removes others'.
        let _ = fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::{DEFAULT_VALIDITY, DeviceName, Fabric};

    fn device_dir() -> (tempfile::TempDir, StateDir, Fabric) {
        let root = tempfile::tempdir().unwrap();
        let dir = StateDir::create(root.path()).unwrap();
        let fabric = Fabric::create(&DeviceName::new("alpha").unwrap(), DEFAULT_VALIDITY).unwrap();
        dir.save_device(&fabric.device).unwrap();
        (root, dir, fabric)
    }

    fn addresses() -> Vec<SocketAddr> {
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
                    Err(InviteError::Truncated { .. })
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

    #[test]
    fn pending_takes_once_and_refuses_unknown_and_expired() {
        let (_root, dir, fabric) = device_dir();
        let pending = Pending::new(dir.clone());
        let invitation =
            Invitation::new(&fabric.device, addresses(), Duration::from_secs(600)).unwrap();
        let token = invitation.token_id();
        assert!(matches!(pending.take(&token), Err(InviteError::Unknown)));
        pending.add(&invitation).unwrap();
        assert_eq!(
            pending.outstanding().unwrap(),
            [Outstanding {
                token,
                expires_unix: invitation.expires_unix
            }]
        );
        assert_eq!(pending.mac_key(&token).unwrap(), invitation.mac_key());
        pending.take(&token).unwrap();
        assert!(matches!(pending.take(&token), Err(InviteError::Used)));
        assert!(matches!(pending.mac_key(&token), Err(InviteError::Used)));
        assert!(pending.outstanding().unwrap().is_empty());

        let stored = String::from_utf8(dir.read(INVITATIONS_JSON).unwrap()).unwrap();
        let secret_hex: String = invitation
            .secret
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert!(
            !stored.contains(&secret_hex),
            "the secret is stored: {stored}"
        );

        let mut expired = Invitation::new(&fabric.device, addresses(), Duration::ZERO).unwrap();
        expired.expires_unix = now_unix() - 1;
        pending.add(&expired).unwrap();
        // Pruned as it was added: it expired already.
        assert!(matches!(
            pending.take(&expired.token_id()),
            Err(InviteError::Unknown)
        ));
    }

    #[test]
    fn pending_reports_expiry_and_prunes() {
        let (_root, dir, fabric) = device_dir();
        let pending = Pending::new(dir.clone());
        let mut soon = Invitation::new(&fabric.device, addresses(), Duration::ZERO).unwrap();
        soon.expires_unix = now_unix() + 1;
        pending.add(&soon).unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while now_unix() < soon.expires_unix {
            assert!(Instant::now() < deadline, "the clock does not advance");
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(matches!(
            pending.take(&soon.token_id()),
            Err(InviteError::Expired { .. })
        ));
        assert!(matches!(
            pending.take(&soon.token_id()),
            Err(InviteError::Unknown)
        ));
        assert!(!dir.file(LOCK_FILE).exists());
    }

    #[test]
    fn a_stale_lock_is_broken_and_a_fresh_one_waits() {
        let (_root, dir, fabric) = device_dir();
        let pending = Pending::new(dir.clone());
        let invitation =
            Invitation::new(&fabric.device, addresses(), Duration::from_secs(600)).unwrap();
        let lock = dir.file(LOCK_FILE);
        fs::write(&lock, b"").unwrap();
        assert!(matches!(
            pending.add(&invitation),
            Err(InviteError::Busy { .. })
        ));
        let old = SystemTime::now() - STALE_LOCK - Duration::from_secs(1);
        fs::File::options()
            .write(true)
            .open(&lock)
            .unwrap()
            .set_modified(old)
            .unwrap();
        pending.add(&invitation).unwrap();
        assert_eq!(pending.outstanding().unwrap().len(), 1);
    }
}
