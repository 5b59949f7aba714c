//! The device's service registry (PROTOCOL.md §18.7): `DIR/services.json`
//! in the state directory names which program may provide each service on
//! this device, which may be started on a first message, and what this
//! device's programs may send to.
//!
//! ```json
//! {"services": [{"guid": "0b5e1a7c-3d2f-4e6a-8b9c-0d1e2f3a4b5c", "name": "kv",
//!                "provider": "program:kv", "args": ["serve", "0b5e1a7c-..."],
//!                "activate": true},
//!               {"guid": "...", "name": "echo", "provider": "sha256:9f2c...",
//!                "path": "modules/echo.wasm", "activate": true}],
//!  "grants": [{"to": "*", "send": ["*"]}]}
//! ```
//!
//! A provider or a grant's `to` is a program's identity: `program:NAME` (one
//! of the device's own programs, run by name) or `sha256:HEX` (a Wasm
//! module or ELF, by the SHA-256 of its bytes); `to` may also be `*`.
//! Without `grants`, a program may send to every service the registry
//! names. The device's own CLI may send to any service.
//!
//! The file is read again whenever its modification time or size changes
//! (a missing file is an empty registry); one that does not parse keeps
//! the last good registry and is reported once per change.
//!
//! Invariants: a lookup sees one whole version of the file; every GUID in
//! it is valid (an entry with an invalid GUID or identity makes the whole
//! file refused, with a message naming it).

use super::say;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;
use weft_control::ipc_proto::Guid;

/// The file's name in the state directory.
pub const FILE: &str = "services.json";
/// The largest file read.
const MAX_FILE: u64 = 1 << 20;

/// One named service.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Named {
    pub guid: String,
    pub name: String,
    /// The identity of the program that may provide it here.
    pub provider: String,
    /// Its arguments when started (the program's name is put first).
    #[serde(default)]
    pub args: Vec<String>,
    /// For a `sha256:` provider that a first message starts: the module's
    /// file (its bytes must have that hash), relative to the state
    /// directory and beneath it (the daemon's sandbox lets it read files
    /// only there, [`Services::module`]).
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// Whether a first message starts it.
    #[serde(default)]
    pub activate: bool,
}

/// What a program may send to.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Grant {
    /// An identity, or `*`.
    pub to: String,
    /// GUIDs, or `*`.
    pub send: Vec<String>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    services: Vec<Named>,
    #[serde(default)]
    grants: Option<Vec<Grant>>,
}

/// A parsed, checked registry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Registry {
    named: Vec<(Guid, Named)>,
    grants: Option<Vec<Grant>>,
}

/// Whether `identity` is one a program can have.
fn valid_identity(identity: &str) -> bool {
    if let Some(hex) = identity.strip_prefix("sha256:") {
        return hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    }
    identity
        .strip_prefix("program:")
        .is_some_and(|n| !n.is_empty() && !n.contains('/'))
}

impl Registry {
    /// Parses and checks the file's text.
    pub fn parse(text: &str) -> Result<Registry, String> {
        if !text.trim_start().starts_with('{') {
            return Err("not a JSON object".into());
        }
        let file: File = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let mut named = Vec::new();
        for n in file.services {
            let guid = Guid::parse(&n.guid).ok_or_else(|| format!("{:?} is not a GUID", n.guid))?;
            if !valid_identity(&n.provider) {
                return Err(format!(
                    "provider {:?} is neither program:NAME nor sha256:HEX",
                    n.provider
                ));
            }
            if n.name.is_empty() || n.name.len() > weft_control::ipc_proto::MAX_NAME {
                return Err(format!("service name {:?} is not 1 to 64 bytes", n.name));
            }
            if n.activate && n.provider.starts_with("sha256:") && n.path.is_none() {
                return Err(format!(
                    "service {}: a sha256: provider that activates needs its module's path",
                    n.guid
                ));
            }
            if let Some(path) = &n.path
                && !path
                    .components()
                    .all(|c| matches!(c, std::path::Component::Normal(_)))
            {
                return Err(format!(
                    "service {}: module path {} is not a path beneath the state directory \
                     (relative, without `..`), where the daemon reads modules",
                    n.guid,
                    path.display()
                ));
            }
            named.push((guid, n));
        }
        for g in file.grants.iter().flatten() {
            if g.to != "*" && !valid_identity(&g.to) {
                return Err(format!(
                    "grant to {:?}: not *, program:NAME or sha256:HEX",
                    g.to
                ));
            }
            if let Some(bad) = g
                .send
                .iter()
                .find(|s| *s != "*" && Guid::parse(s).is_none())
            {
                return Err(format!("grant to {:?}: {bad:?} is not * or a GUID", g.to));
            }
        }
        Ok(Registry {
            named,
            grants: file.grants,
        })
    }

    /// Why `identity` may not provide `guid` here, if it may not.
    pub fn may_provide(&self, guid: &Guid, identity: &str) -> Result<(), String> {
        let entries: Vec<&Named> = self.entries(guid).collect();
        if entries.is_empty() {
            return Err(format!(
                "service {guid} is not named in this device's registry ({FILE})"
            ));
        }
        if entries.iter().any(|n| n.provider == identity) {
            return Ok(());
        }
        Err(format!(
            "this device's registry names {} as the provider of service {guid}, not {identity}",
            entries[0].provider
        ))
    }

    /// Why `identity` may not send to `guid`, if it may not.
    pub fn may_send(&self, guid: &Guid, identity: &str) -> Result<(), String> {
        let allowed = match &self.grants {
            None => self.entries(guid).next().is_some(),
            Some(grants) => grants.iter().any(|g| {
                (g.to == "*" || g.to == identity)
                    && g.send
                        .iter()
                        .any(|s| s == "*" || Guid::parse(s).as_ref() == Some(guid))
            }),
        };
        if allowed {
            return Ok(());
        }
        Err(match self.grants {
            None => format!(
                "service {guid} is not named in this device's registry ({FILE}), so its programs may not send to it"
            ),
            Some(_) => format!(
                "no grant in this device's registry ({FILE}) lets {identity} send to service {guid}"
            ),
        })
    }

    /// The entries naming `guid`.
    pub fn entries<'a>(&'a self, guid: &'a Guid) -> impl Iterator<Item = &'a Named> + 'a {
        self.named
            .iter()
            .filter(move |(g, _)| g == guid)
            .map(|(_, n)| n)
    }

    /// The services a first message starts here.
    pub fn activatable(&self) -> Vec<(Guid, Named)> {
        self.named
            .iter()
            .filter(|(_, n)| n.activate)
            .cloned()
            .collect()
    }
}

/// The registry file of a state directory, read again when it changes
/// (looked at on every message: shared, not copied, while it does not).
pub struct Services {
    state: PathBuf,
    path: PathBuf,
    cache: Mutex<Cached>,
}

/// The file's stamp (modified time and length) when it was last read, if
/// it was there, and the registry read then.
type Cached = (Option<(SystemTime, u64)>, Arc<Registry>);

impl Services {
    pub fn new(state: &Path) -> Services {
        Services {
            state: state.to_path_buf(),
            path: state.join(FILE),
            cache: Mutex::new((None, Arc::default())),
        }
    }

    fn locked(&self) -> MutexGuard<'_, Cached> {
        // Replaced whole, never left half changed.
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Where a registry entry's module `path` is (checked to lie beneath
    /// the state directory when the registry was read).
    pub fn module(&self, path: &Path) -> PathBuf {
        self.state.join(path)
    }

    /// The registry as the file says now.
    pub fn current(&self) -> Arc<Registry> {
        let stamp = std::fs::metadata(&self.path)
            .ok()
            .and_then(|m| Some((m.modified().ok()?, m.len())));
        let mut cache = self.locked();
        if cache.0 == stamp {
            return cache.1.clone();
        }
        cache.0 = stamp;
        let read = match stamp {
            None => Ok(Registry::default()),
            Some((_, len)) if len > MAX_FILE => Err(format!("larger than {MAX_FILE} bytes")),
            Some(_) => std::fs::read_to_string(&self.path)
                .map_err(|e| e.to_string())
                .and_then(|t| Registry::parse(&t)),
        };
        match read {
            Ok(r) => cache.1 = Arc::new(r),
            Err(e) => say(&format!(
                "{}: {e}; the registry stays as it was",
                self.path.display()
            )),
        }
        cache.1.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KV: &str = "0b5e1a7c-3d2f-4e6a-8b9c-0d1e2f3a4b5c";
    const OTHER: &str = "11111111-2222-4333-8444-555555555555";

    fn kv() -> Guid {
        Guid::parse(KV).unwrap()
    }

    #[test]
    fn only_the_named_provider_may_provide() {
        let r = Registry::parse(&format!(
            r#"{{"services":[{{"guid":"{KV}","name":"kv","provider":"program:kv"}}]}}"#
        ))
        .unwrap();
        assert_eq!(r.may_provide(&kv(), "program:kv"), Ok(()));
        let imposter = r.may_provide(&kv(), "program:ipc-check").unwrap_err();
        assert!(imposter.contains("names program:kv"), "{imposter}");
        let unnamed = r.may_provide(&Guid::parse(OTHER).unwrap(), "program:kv");
        assert!(unnamed.unwrap_err().contains("not named"));
    }

    #[test]
    fn without_grants_programs_may_send_to_the_named_services() {
        let r = Registry::parse(&format!(
            r#"{{"services":[{{"guid":"{KV}","name":"kv","provider":"program:kv"}}]}}"#
        ))
        .unwrap();
        assert_eq!(r.may_send(&kv(), "program:anything"), Ok(()));
        assert!(
            r.may_send(&Guid::parse(OTHER).unwrap(), "program:x")
                .is_err()
        );
        assert!(Registry::default().may_send(&kv(), "program:x").is_err());
    }

    #[test]
    fn grants_say_who_may_send_to_what() {
        let hash = "a".repeat(64);
        let r = Registry::parse(&format!(
            r#"{{"grants":[{{"to":"sha256:{hash}","send":["{KV}"]}},{{"to":"program:ipc-check","send":["*"]}}]}}"#
        ))
        .unwrap();
        assert_eq!(r.may_send(&kv(), &format!("sha256:{hash}")), Ok(()));
        let other = Guid::parse(OTHER).unwrap();
        assert!(r.may_send(&other, &format!("sha256:{hash}")).is_err());
        assert_eq!(r.may_send(&other, "program:ipc-check"), Ok(()));
        let refused = r.may_send(&kv(), "program:kv").unwrap_err();
        assert!(refused.contains("no grant"), "{refused}");
    }

    #[test]
    fn bad_files_are_refused_whole() {
        for bad in [
            "[]",
            r#"{"services":[{"guid":"x","name":"kv","provider":"program:kv"}]}"#,
            &format!(r#"{{"services":[{{"guid":"{KV}","name":"kv","provider":"kv"}}]}}"#),
            &format!(r#"{{"services":[{{"guid":"{KV}","name":"","provider":"program:kv"}}]}}"#),
            &format!(r#"{{"services":[{{"guid":"{KV}","name":"kv","provider":"sha256:AB"}}]}}"#),
            r#"{"grants":[{"to":"me","send":["*"]}]}"#,
            r#"{"grants":[{"to":"*","send":["kv"]}]}"#,
            r#"{"servces":[]}"#,
        ] {
            assert!(Registry::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn module_paths_lie_beneath_the_state_directory() {
        let hash = "ab".repeat(32);
        let entry = |path: &str| {
            format!(
                r#"{{"services":[{{"guid":"{KV}","name":"kv","provider":"sha256:{hash}","path":"{path}","activate":true}}]}}"#
            )
        };
        for good in ["echo.wasm", "modules/echo.wasm"] {
            assert!(Registry::parse(&entry(good)).is_ok(), "{good}");
        }
        for bad in [
            "/srv/echo.wasm",
            "../echo.wasm",
            "modules/../../echo.wasm",
            "./echo.wasm",
        ] {
            let e = Registry::parse(&entry(bad)).unwrap_err();
            assert!(e.contains("beneath the state directory"), "{bad}: {e}");
        }
        let services = Services::new(Path::new("/var/lib/weft"));
        assert_eq!(
            services.module(Path::new("modules/echo.wasm")),
            Path::new("/var/lib/weft/modules/echo.wasm")
        );
    }

    #[test]
    fn the_file_is_read_again_when_it_changes() {
        let dir = std::env::temp_dir().join(format!("weft-services-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let s = Services::new(&dir);
        assert_eq!(*s.current(), Registry::default());
        let text = format!(
            r#"{{"services":[{{"guid":"{KV}","name":"kv","provider":"program:kv","activate":true}}]}}"#
        );
        std::fs::write(dir.join(FILE), &text).unwrap();
        assert_eq!(s.current().activatable().len(), 1);
        // A broken edit keeps the last good registry.
        std::fs::write(dir.join(FILE), "{ broken").unwrap();
        assert_eq!(s.current().activatable().len(), 1);
        std::fs::remove_file(dir.join(FILE)).unwrap();
        assert_eq!(*s.current(), Registry::default());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
