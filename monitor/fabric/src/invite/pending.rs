//! The inviting device's store of outstanding invitations (`invitations.json` in DIR).
//!
//! Invariants:
//! - The secret is never stored. Per invitation the store keeps the token id
//!   `SHA-256(secret)`, the MAC key `HMAC-SHA256(key = secret, "weft-pair-key")` that
//!   pairing messages are authenticated with (the inviter must be able to check them; the
//!   key is a secret too, and useless once the invitation is used or expired), the expiry,
//!   and whether it was used. The file is written with [`StateDir::write_private`] (0600).
//! - [`Pending::take`] succeeds once per invitation; a used invitation stays listed as used
//!   until it expires, so a second use is refused as used rather than unknown. Expired
//!   entries are pruned whenever the store is written.
//! - Read-modify-write of the store is serialised across processes (the CLI adds, the
//!   daemon takes) by the lock file `invitations.lock` in DIR, created exclusively; a lock
//!   older than [`STALE_LOCK`] is left over from a crash and is broken. Calls block the
//!   calling thread for at most about [`LOCK_WAIT`] while another process holds the lock.

use std::fs::{self, OpenOptions};
use std::io;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::{Invitation, InviteError, MacKey, TokenId};
use crate::identity::now_unix;
use crate::state::{INVITATIONS_JSON, StateDir};

/// How long a writer of the pending store waits for another's lock.
pub const LOCK_WAIT: Duration = Duration::from_secs(2);
/// How old a lock file must be to count as left over from a crash.
pub const STALE_LOCK: Duration = Duration::from_secs(10);
/// The pending store's lock file.
const LOCK_FILE: &str = "invitations.lock";

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
    use crate::identity::to_hex;
    use crate::invite::tests::{addresses, device_dir};
    use std::time::SystemTime;

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
        assert!(
            !stored.contains(&to_hex(&invitation.secret)),
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
