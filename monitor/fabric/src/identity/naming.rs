//! How devices and fabrics are named: device names, and fixed-size ids shown as hex.
//!
//! Invariants: a [`DeviceName`] is 1–32 characters of `[a-z0-9-]`, not starting with `-`
//! (it is also the device certificate's CN and SAN DNS name, so it must be a valid DNS
//! label); a [`FabricId`] is 16 random bytes; a [`DeviceId`] is the first 8 bytes of
//! SHA-256 over the device's public key (SubjectPublicKeyInfo DER), derived, never chosen.
//! Ids are lowercase hex in text, JSON and on the wire's text forms.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::sha256;

/// The longest device name.
pub const MAX_NAME_LEN: usize = 32;

/// Why a device name was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NameError {
    #[error("a device name cannot be empty")]
    Empty,
    #[error("device name {name:?} is longer than {MAX_NAME_LEN} characters")]
    TooLong { name: String },
    #[error("device name {name:?} starts with '-'")]
    LeadingDash { name: String },
    #[error("device name {name:?} holds {found:?}; only a-z, 0-9 and '-' are allowed")]
    BadCharacter { name: String, found: char },
}

/// Why a hex id did not parse.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{text:?} is not {len} hex digits")]
pub struct HexIdError {
    text: String,
    len: usize,
}

/// Defines a fixed-size id shown as lowercase hex (Display, FromStr, serde as a string).
macro_rules! hex_id {
    ($(#[$doc:meta])* $name:ident, $len:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[serde(into = "String", try_from = "String")]
        pub struct $name(pub [u8; $len]);

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&$crate::identity::to_hex(&self.0))
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{}({self})", stringify!($name))
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::identity::HexIdError;
            fn from_str(text: &str) -> Result<Self, Self::Err> {
                $crate::identity::parse_hex(text).map(Self)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.to_string()
            }
        }

        impl TryFrom<String> for $name {
            type Error = $crate::identity::HexIdError;
            fn try_from(text: String) -> Result<Self, Self::Error> {
                text.parse()
            }
        }
    };
}

pub(crate) use hex_id;

/// `bytes` as lowercase hex.
pub(crate) fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Parses exactly `2 * N` lowercase or uppercase hex digits.
pub(crate) fn parse_hex<const N: usize>(text: &str) -> Result<[u8; N], HexIdError> {
    let error = || HexIdError {
        text: text.to_owned(),
        len: 2 * N,
    };
    if text.len() != 2 * N || !text.is_ascii() {
        return Err(error());
    }
    let mut out = [0; N];
    for (byte, pair) in out.iter_mut().zip(text.as_bytes().chunks_exact(2)) {
        let pair = std::str::from_utf8(pair).map_err(|_| error())?;
        *byte = u8::from_str_radix(pair, 16).map_err(|_| error())?;
    }
    Ok(out)
}

hex_id!(
    /// A fabric's id: 16 random bytes chosen when the fabric is created.
    FabricId,
    16
);

hex_id!(
    /// A device's id: the first 8 bytes of SHA-256 over its public key (SPKI DER).
    DeviceId,
    8
);

impl DeviceId {
    /// The id of the device whose public key is `spki_der`.
    pub fn of_public_key(spki_der: &[u8]) -> Self {
        let hash = sha256(spki_der);
        let mut id = [0; 8];
        id.copy_from_slice(&hash[..8]);
        Self(id)
    }
}

/// A checked device name: 1–32 characters of `[a-z0-9-]`, not starting with `-`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct DeviceName(String);

impl DeviceName {
    /// Checks `name` against the naming rule.
    pub fn new(name: &str) -> Result<Self, NameError> {
        let owned = || name.to_owned();
        if name.is_empty() {
            return Err(NameError::Empty);
        }
        if name.chars().count() > MAX_NAME_LEN {
            return Err(NameError::TooLong { name: owned() });
        }
        if let Some(found) = name
            .chars()
            .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
        {
            return Err(NameError::BadCharacter {
                name: owned(),
                found,
            });
        }
        if name.starts_with('-') {
            return Err(NameError::LeadingDash { name: owned() });
        }
        Ok(Self(owned()))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DeviceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for DeviceName {
    type Err = NameError;
    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Self::new(name)
    }
}

impl From<DeviceName> for String {
    fn from(name: DeviceName) -> String {
        name.0
    }
}

impl TryFrom<String> for DeviceName {
    type Error = NameError;
    fn try_from(name: String) -> Result<Self, Self::Error> {
        Self::new(&name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_rule() {
        for good in ["a", "laptop", "pi-4", "0", &"x".repeat(32)] {
            assert!(DeviceName::new(good).is_ok(), "{good} should be accepted");
        }
        assert_eq!(DeviceName::new(""), Err(NameError::Empty));
        assert!(matches!(
            DeviceName::new(&"x".repeat(33)),
            Err(NameError::TooLong { .. })
        ));
        assert!(matches!(
            DeviceName::new("-a"),
            Err(NameError::LeadingDash { .. })
        ));
        for (bad, found) in [("Laptop", 'L'), ("a b", ' '), ("a.b", '.'), ("é", 'é')] {
            assert_eq!(
                DeviceName::new(bad),
                Err(NameError::BadCharacter {
                    name: bad.to_owned(),
                    found
                })
            );
        }
    }

    #[test]
    fn hex_ids_round_trip_and_refuse_bad_text() {
        let id = DeviceId([0, 1, 0xab, 0xff, 2, 3, 4, 5]);
        assert_eq!(id.to_string(), "0001abff02030405");
        assert_eq!("0001abff02030405".parse::<DeviceId>(), Ok(id));
        assert!("0001abff0203040".parse::<DeviceId>().is_err());
        assert!("0001abff020304zz".parse::<DeviceId>().is_err());
        assert!("0001abff02030405é".parse::<DeviceId>().is_err());
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, "\"0001abff02030405\"");
        assert_eq!(serde_json::from_str::<DeviceId>(&json).unwrap(), id);
    }
}
