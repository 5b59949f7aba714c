//! The fabric's registry of known devices, as one device holds it.
//!
//! Invariants: one entry per name; an entry's id never changes once known
//! (a different id under a known name is refused, not merged); a removed
//! device stays listed as removed for good, and removal wins every merge,
//! so that a removal reaches every daemon however registries travel; an
//! entry's `key` (the whole SHA-256 of its public key) is kept only if its
//! first 16 hex digits are the entry's id, and once known never changes.

use crate::keys::valid_name;
use crate::state::{StateDir, StateError};
use crate::wire::{self, Known};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The registry's file in the state directory: `{"v":1,"devices":[Known...]}`.
pub const REGISTRY_JSON: &str = "registry.json";

#[derive(Serialize, Deserialize)]
struct RegistryFile {
    devices: Vec<Known>,
}

/// A registry file that could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error("{REGISTRY_JSON}: {0}")]
    Wire(#[from] wire::WireError),
}

/// What a merge or an admission changed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// Devices now known that were not.
    pub added: Vec<String>,
    /// Devices now removed that were not.
    pub removed: Vec<String>,
    /// Devices whose addresses changed.
    pub moved: Vec<String>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.moved.is_empty()
    }
}

/// Known devices by name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Registry {
    devices: BTreeMap<String, Known>,
}

impl Registry {
    /// A registry of `devices`; invalid names and conflicting duplicates are
    /// dropped (as a merge would).
    pub fn from_list(devices: Vec<Known>) -> Registry {
        let mut r = Registry::default();
        r.merge(devices);
        r
    }

    /// The registry kept in `dir` (empty if there is none yet).
    pub fn load(dir: &StateDir) -> Result<Registry, RegistryError> {
        match dir.read_if_present(REGISTRY_JSON)? {
            None => Ok(Registry::default()),
            Some(bytes) => {
                let file: RegistryFile = wire::decode_file(&bytes)?;
                Ok(Registry::from_list(file.devices))
            }
        }
    }

    /// Keeps the registry in `dir` (owner-only, replaced atomically).
    pub fn save(&self, dir: &StateDir) -> Result<(), RegistryError> {
        let file = RegistryFile {
            devices: self.list(),
        };
        dir.write_private(REGISTRY_JSON, &wire::encode(&file))?;
        Ok(())
    }

    /// Every entry, removed ones included, by name.
    pub fn list(&self) -> Vec<Known> {
        self.devices.values().cloned().collect()
    }

    /// The entry for `name`.
    pub fn get(&self, name: &str) -> Option<&Known> {
        self.devices.get(name)
    }

    /// Whether `name` is known and not removed.
    pub fn is_member(&self, name: &str) -> bool {
        self.devices.get(name).is_some_and(|k| !k.removed)
    }

    /// Whether `name` is taken (known, or removed: a removed name is never
    /// given again).
    pub fn is_taken(&self, name: &str) -> bool {
        self.devices.contains_key(name)
    }

    /// The names of removed devices: the deny list.
    pub fn removed(&self) -> Vec<String> {
        self.devices
            .values()
            .filter(|k| k.removed)
            .map(|k| k.name.clone())
            .collect()
    }

    /// Merges entries learned from another device (or a pairing).
    pub fn merge(&mut self, entries: Vec<Known>) -> Changes {
        let mut changes = Changes::default();
        for mut entry in entries {
            if !valid_name(&entry.name) {
                continue;
            }
            if !entry.key.as_deref().is_some_and(|k| key_fits(k, &entry.id)) {
                entry.key = None;
            }
            match self.devices.get_mut(&entry.name) {
                None => {
                    if entry.removed {
                        changes.removed.push(entry.name.clone());
                    } else {
                        changes.added.push(entry.name.clone());
                    }
                    self.devices.insert(entry.name.clone(), entry);
                }
                Some(mine) if mine.id != entry.id => {}
                Some(mine) => {
                    if mine.key.is_none() {
                        mine.key = entry.key;
                    }
                    if entry.removed && !mine.removed {
                        mine.removed = true;
                        changes.removed.push(entry.name.clone());
                    }
                    if !mine.removed
                        && mine.addresses != entry.addresses
                        && !entry.addresses.is_empty()
                    {
                        mine.addresses = entry.addresses;
                        changes.moved.push(entry.name.clone());
                    }
                }
            }
        }
        changes
    }

    /// Marks `name` removed; false if it is not known or already removed.
    pub fn remove(&mut self, name: &str) -> bool {
        match self.devices.get_mut(name) {
            Some(k) if !k.removed => {
                k.removed = true;
                true
            }
            _ => false,
        }
    }
}

/// Whether `key` is the hex of a whole SHA-256 (64 lowercase hex digits)
/// that extends the device id `id`.
fn key_fits(key: &str, id: &str) -> bool {
    key.len() == 64
        && key
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        && !id.is_empty()
        && key.starts_with(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known(name: &str, id: &str, removed: bool) -> Known {
        Known {
            name: name.into(),
            id: id.into(),
            addresses: vec!["10.0.0.1:7447".into()],
            removed,
            key: None,
        }
    }

    #[test]
    fn a_key_is_kept_only_if_it_extends_the_id_and_never_changes() {
        let id = "0123456789abcdef";
        let key = |tail: char| format!("{id}{}", tail.to_string().repeat(48));
        let with_key = |k: String| Known {
            key: Some(k),
            ..known("a", id, false)
        };
        let mut r = Registry::from_list(vec![with_key(format!("ff{}", "0".repeat(62)))]);
        assert_eq!(r.get("a").and_then(|k| k.key.clone()), None);
        r.merge(vec![with_key(key('1'))]);
        assert_eq!(r.get("a").and_then(|k| k.key.clone()), Some(key('1')));
        r.merge(vec![with_key(key('2'))]);
        assert_eq!(r.get("a").and_then(|k| k.key.clone()), Some(key('1')));
        let upper = Registry::from_list(vec![with_key(key('A'))]);
        assert_eq!(upper.get("a").and_then(|k| k.key.clone()), None);
    }

    #[test]
    fn removal_wins_every_merge_and_is_for_good() {
        let mut a = Registry::from_list(vec![known("a", "1", false), known("b", "2", false)]);
        let changes = a.merge(vec![known("b", "2", true), known("c", "3", false)]);
        assert_eq!(changes.added, ["c"]);
        assert_eq!(changes.removed, ["b"]);
        // A stale copy that still lists b does not bring it back.
        assert!(a.merge(vec![known("b", "2", false)]).is_empty());
        assert!(!a.is_member("b"));
        assert!(a.is_taken("b"));
        assert_eq!(a.removed(), ["b"]);
    }

    #[test]
    fn a_known_name_keeps_its_id_and_bad_names_are_dropped() {
        let mut r = Registry::from_list(vec![known("a", "1", false)]);
        // Another device claiming "a" can neither replace nor remove it.
        assert!(
            r.merge(vec![known("a", "9", true), known("A/x", "2", false)])
                .is_empty()
        );
        assert!(r.is_member("a"));
        assert_eq!(r.get("a").map(|k| k.id.as_str()), Some("1"));
        assert_eq!(r.list().len(), 1);
    }

    #[test]
    fn remove_reports_whether_it_changed_anything() {
        let mut r = Registry::from_list(vec![known("a", "1", false)]);
        assert!(r.remove("a"));
        assert!(!r.remove("a"));
        assert!(!r.remove("zz"));
    }
}
