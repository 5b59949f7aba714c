//! A device's state directory (`--state DIR`, default `$WEFT_STATE`).
//!
//! Files, all written atomically (temporary file in DIR created 0600, fsync, rename, fsync
//! of DIR) and all mode 0600:
//!
//! | file               | holds                                                        |
//! |--------------------|--------------------------------------------------------------|
//! | `device.key`       | the device's private key, PKCS#8 PEM (secret)                |
//! | `device.crt`       | the device's certificate, PEM, signed by the fabric's CA (replaced when renewed) |
//! | `ca.crt`           | the fabric CA's certificate, PEM                             |
//! | `ca.key`           | the CA's private key, PKCS#8 PEM (secret); only on the device that created the fabric |
//! | `device.json`      | `{"name": "<device name>", "id": "<16 hex>", "fabric": "<32 hex>"}` |
//! | `invitations.json` | outstanding invitations (secret), see [`crate::invite::Pending`] |
//!
//! Invariants: DIR is mode 0700; [`StateDir::open`] refuses a DIR or a secret file that
//! group or others may access, naming the file and its mode; [`StateDir::create`] refuses
//! a DIR that already holds a device. Other modules keep their own files here through
//! [`StateDir::write_private`] and [`StateDir::read`]; file names are plain names (no `/`,
//! not starting with `.`, which is kept for temporary files).

use std::fs::{self, DirBuilder, File, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::identity::{CaMaterial, Device, DeviceInfo, IdentityError};

/// The device's private key.
pub const DEVICE_KEY: &str = "device.key";
/// The device's certificate.
pub const DEVICE_CRT: &str = "device.crt";
/// The fabric CA's certificate.
pub const CA_CRT: &str = "ca.crt";
/// The fabric CA's private key.
pub const CA_KEY: &str = "ca.key";
/// The device's name, id and fabric.
pub const DEVICE_JSON: &str = "device.json";
/// Outstanding invitations.
pub const INVITATIONS_JSON: &str = "invitations.json";

/// Files that must be owner-only.
const SECRET_FILES: [&str; 3] = [DEVICE_KEY, CA_KEY, INVITATIONS_JSON];
/// Mode bits that give group or others any access.
const NOT_OWNER: u32 = 0o077;

/// Why the state directory could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("{path} is not a directory")]
    NotADirectory { path: PathBuf },
    #[error("{path} already holds a device ({DEVICE_JSON} exists)")]
    HoldsDevice { path: PathBuf },
    #[error("{path} holds no device ({DEVICE_JSON} is missing); create or join a fabric first")]
    NoDevice { path: PathBuf },
    #[error("{path} has mode {mode:04o}; it must be accessible by its owner only (chmod go-rwx)")]
    Permissive { path: PathBuf, mode: u32 },
    #[error("{name:?} is not a plain file name")]
    BadFileName { name: String },
    #[error("{path} is not valid: {source}")]
    DeviceJson {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{path} is not UTF-8")]
    NotText { path: PathBuf },
    #[error("the identity files in {path} do not fit together: {source}")]
    Identity {
        path: PathBuf,
        source: IdentityError,
    },
}

/// A state directory that is owner-only.
#[derive(Clone, Debug)]
pub struct StateDir {
    path: PathBuf,
}

impl StateDir {
    /// Creates DIR (and missing parents) mode 0700, or takes an existing DIR that holds no
    /// device and restricts it to 0700.
    pub fn create(path: &Path) -> Result<Self, StateError> {
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(path)
            .map_err(io_error("create directory", path))?;
        let dir = Self::existing_dir(path)?;
        if dir.file(DEVICE_JSON).exists() {
            return Err(StateError::HoldsDevice {
                path: path.to_owned(),
            });
        }
        fs::set_permissions(path, Permissions::from_mode(0o700))
            .map_err(io_error("restrict to 0700", path))?;
        Ok(dir)
    }

    /// Opens DIR, checking it holds a device and that DIR and its secret files are
    /// owner-only.
    pub fn open(path: &Path) -> Result<Self, StateError> {
        let dir = Self::existing_dir(path)?;
        check_owner_only(path)?;
        if !dir.file(DEVICE_JSON).exists() {
            return Err(StateError::NoDevice {
                path: path.to_owned(),
            });
        }
        for name in SECRET_FILES {
            let file = dir.file(name);
            if file.exists() {
                check_owner_only(&file)?;
            }
        }
        Ok(dir)
    }

    fn existing_dir(path: &Path) -> Result<Self, StateError> {
        let meta = fs::metadata(path).map_err(io_error("inspect", path))?;
        if !meta.is_dir() {
            return Err(StateError::NotADirectory {
                path: path.to_owned(),
            });
        }
        Ok(Self {
            path: path.to_owned(),
        })
    }

    /// DIR.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The path of file `name` in DIR.
    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Replaces file `name` with `bytes` atomically, mode 0600: a reader sees the old
    /// content or the new, never a mix, even across a crash.
    pub fn write_private(&self, name: &str, bytes: &[u8]) -> Result<(), StateError> {
        check_file_name(name)?;
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let temp = self.file(&format!(
            ".{name}.{}.{}.tmp",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let written = write_synced(&temp, bytes).and_then(|()| {
            fs::rename(&temp, self.file(name)).map_err(io_error("rename into place", &temp))
        });
        if written.is_err() {
            // The temporary file is ours alone; failing to remove it leaves only litter.
            let _ = fs::remove_file(&temp);
        }
        written?;
        File::open(&self.path)
            .and_then(|dir| dir.sync_all())
            .map_err(io_error("sync directory", &self.path))
    }

    /// The content of file `name`.
    pub fn read(&self, name: &str) -> Result<Vec<u8>, StateError> {
        check_file_name(name)?;
        let path = self.file(name);
        fs::read(&path).map_err(io_error("read", &path))
    }

    /// The content of file `name`, or `None` if it does not exist.
    pub fn read_if_present(&self, name: &str) -> Result<Option<Vec<u8>>, StateError> {
        match self.read(name) {
            Err(StateError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                Ok(None)
            }
            other => other.map(Some),
        }
    }

    fn read_text(&self, name: &str) -> Result<String, StateError> {
        String::from_utf8(self.read(name)?).map_err(|_| StateError::NotText {
            path: self.file(name),
        })
    }

    /// Writes the device's files: `device.key`, `device.crt`, `ca.crt`, then `device.json`
    /// last, so a DIR with `device.json` holds a whole device.
    pub fn save_device(&self, device: &Device) -> Result<(), StateError> {
        self.write_private(DEVICE_KEY, device.key_pem().as_bytes())?;
        self.write_private(DEVICE_CRT, device.cert_pem().as_bytes())?;
        self.write_private(CA_CRT, device.ca_cert_pem().as_bytes())?;
        let info =
            serde_json::to_vec_pretty(device.info()).map_err(|source| StateError::DeviceJson {
                path: self.file(DEVICE_JSON),
                source,
            })?;
        self.write_private(DEVICE_JSON, &info)
    }

    /// Replaces `device.crt` with the device's (renewed) certificate, atomically: a reader
    /// (a Zenoh session being opened) sees the old certificate or the new, never a mix.
    pub fn save_certificate(&self, device: &Device) -> Result<(), StateError> {
        self.write_private(DEVICE_CRT, device.cert_pem().as_bytes())
    }

    /// Reads the device's files back.
    pub fn load_device(&self) -> Result<Device, StateError> {
        let info = self.device_info()?;
        let key_pem = self.read_text(DEVICE_KEY)?;
        let device = Device::from_pem(
            info,
            &key_pem,
            self.read_text(DEVICE_CRT)?,
            self.read_text(CA_CRT)?,
        );
        device.map_err(|source| self.identity_error(source))
    }

    /// `device.json`.
    pub fn device_info(&self) -> Result<DeviceInfo, StateError> {
        let path = self.file(DEVICE_JSON);
        serde_json::from_slice(&self.read(DEVICE_JSON)?)
            .map_err(|source| StateError::DeviceJson { path, source })
    }

    /// Writes `ca.key` (the CA's certificate is `ca.crt`, written by
    /// [`save_device`](Self::save_device)).
    pub fn save_ca(&self, ca: &CaMaterial) -> Result<(), StateError> {
        self.write_private(CA_KEY, ca.key_pem().as_bytes())
    }

    /// The fabric's CA, if this device holds `ca.key`.
    pub fn load_ca(&self) -> Result<Option<CaMaterial>, StateError> {
        let Some(key) = self.read_if_present(CA_KEY)? else {
            return Ok(None);
        };
        let key = String::from_utf8(key).map_err(|_| StateError::NotText {
            path: self.file(CA_KEY),
        })?;
        let fabric = self.device_info()?.fabric;
        CaMaterial::from_pem(fabric, self.read_text(CA_CRT)?, &key)
            .map(Some)
            .map_err(|source| self.identity_error(source))
    }

    fn identity_error(&self, source: IdentityError) -> StateError {
        StateError::Identity {
            path: self.path.clone(),
            source,
        }
    }
}

fn check_file_name(name: &str) -> Result<(), StateError> {
    if name.is_empty() || name.starts_with('.') || name.contains('/') || name.contains('\0') {
        return Err(StateError::BadFileName {
            name: name.to_owned(),
        });
    }
    Ok(())
}

fn check_owner_only(path: &Path) -> Result<(), StateError> {
    let mode = fs::metadata(path)
        .map_err(io_error("inspect", path))?
        .permissions()
        .mode()
        & 0o7777;
    if mode & NOT_OWNER != 0 {
        return Err(StateError::Permissive {
            path: path.to_owned(),
            mode,
        });
    }
    Ok(())
}

/// Creates `path` (which must not exist) mode 0600 and writes and syncs `bytes`.
fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), StateError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io_error("create", path))?;
    file.write_all(bytes).map_err(io_error("write", path))?;
    file.sync_all().map_err(io_error("sync", path))
}

fn io_error(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> StateError {
    let path = path.to_owned();
    move |source| StateError::Io { op, path, source }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::{DEFAULT_VALIDITY, DeviceName, Fabric};

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    fn created_device(dir: &StateDir) -> Fabric {
        let fabric = Fabric::create(&DeviceName::new("alpha").unwrap(), DEFAULT_VALIDITY).unwrap();
        dir.save_device(&fabric.device).unwrap();
        dir.save_ca(&fabric.ca).unwrap();
        fabric
    }

    #[test]
    fn files_are_owner_only_and_the_device_reloads() {
        let root = tempfile::tempdir().unwrap();
        let path = root.path().join("state");
        let dir = StateDir::create(&path).unwrap();
        let fabric = created_device(&dir);
        assert_eq!(mode(&path), 0o700);
        for name in [DEVICE_KEY, DEVICE_CRT, CA_CRT, CA_KEY, DEVICE_JSON] {
            assert_eq!(mode(&dir.file(name)), 0o600, "{name}");
        }
        let leftovers: Vec<_> = fs::read_dir(&path)
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .filter(|name| name.to_string_lossy().starts_with('.'))
            .collect();
        assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");

        let opened = StateDir::open(&path).unwrap();
        let device = opened.load_device().unwrap();
        assert_eq!(device.info(), fabric.device.info());
        assert_eq!(device.key_pem(), fabric.device.key_pem());
        let ca = opened.load_ca().unwrap().unwrap();
        assert_eq!(ca.fabric(), fabric.ca.fabric());
        let json: serde_json::Value =
            serde_json::from_slice(&opened.read(DEVICE_JSON).unwrap()).unwrap();
        assert_eq!(json["name"], "alpha");
        assert_eq!(json["id"], device.info().id.to_string());
        assert_eq!(json["fabric"], ca.fabric().to_string());
    }

    #[test]
    fn create_restricts_an_empty_dir_and_refuses_one_with_a_device() {
        let root = tempfile::tempdir().unwrap();
        fs::set_permissions(root.path(), Permissions::from_mode(0o755)).unwrap();
        let dir = StateDir::create(root.path()).unwrap();
        assert_eq!(mode(root.path()), 0o700);
        created_device(&dir);
        assert!(matches!(
            StateDir::create(root.path()),
            Err(StateError::HoldsDevice { .. })
        ));
    }

    #[test]
    fn open_refuses_a_readable_key_a_readable_dir_and_an_empty_dir() {
        let root = tempfile::tempdir().unwrap();
        let dir = StateDir::create(root.path()).unwrap();
        assert!(matches!(
            StateDir::open(root.path()),
            Err(StateError::NoDevice { .. })
        ));
        created_device(&dir);

        let key = dir.file(DEVICE_KEY);
        fs::set_permissions(&key, Permissions::from_mode(0o644)).unwrap();
        let error = StateDir::open(root.path()).unwrap_err();
        assert!(
            matches!(&error, StateError::Permissive { path, mode: 0o644 } if *path == key),
            "{error:?}"
        );
        let message = error.to_string();
        assert!(
            message.contains("device.key") && message.contains("0644"),
            "{message}"
        );
        fs::set_permissions(&key, Permissions::from_mode(0o600)).unwrap();

        fs::set_permissions(root.path(), Permissions::from_mode(0o750)).unwrap();
        assert!(matches!(
            StateDir::open(root.path()),
            Err(StateError::Permissive { mode: 0o750, .. })
        ));
        fs::set_permissions(root.path(), Permissions::from_mode(0o700)).unwrap();
        StateDir::open(root.path()).unwrap();
    }

    #[test]
    fn write_private_replaces_and_refuses_paths() {
        let root = tempfile::tempdir().unwrap();
        let dir = StateDir::create(root.path()).unwrap();
        dir.write_private("registry.json", b"one").unwrap();
        dir.write_private("registry.json", b"two").unwrap();
        assert_eq!(dir.read("registry.json").unwrap(), b"two");
        assert_eq!(mode(&dir.file("registry.json")), 0o600);
        assert_eq!(dir.read_if_present("absent").unwrap(), None);
        for bad in ["", "../x", "a/b", ".hidden"] {
            assert!(matches!(
                dir.write_private(bad, b"x"),
                Err(StateError::BadFileName { .. })
            ));
        }
    }
}
