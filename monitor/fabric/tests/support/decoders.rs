//! One driver per decoder of what a peer device, a local client or a user
//! hands the fabric (PROTOCOL.md §16): call and reply payloads, exit
//! notices, the daemon socket's lines, key names, pids and invitations.
//! Shared by the stable test `tests/decoders.rs` (seeds, their mutations
//! and random bytes) and the cargo-fuzz targets in `monitor/fabric/fuzz`.
//!
//! Each driver decodes its input and must never panic. JSON has many
//! spellings of one value, so where a decoder accepts the input the value
//! must survive a round trip: encoded again, it decodes to the same value.
#![allow(dead_code)]

use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt::Debug;
use weft_fabric::invite::Invitation;
use weft_fabric::keys;
use weft_fabric::local::{LocalRequest, LocalResponse};
use weft_fabric::wire::{self, Exit, Pid, Request, Response};

/// A driver: decodes its input, checks what it accepts, and returns how
/// many of its decoders accepted it.
pub type Driver = fn(&[u8]) -> usize;

/// Every driver, by name (the cargo-fuzz target of the same name runs it).
pub const DRIVERS: &[(&str, Driver)] = &[
    ("fabric_payloads", fabric_payloads),
    ("local_lines", local_lines),
    ("names", names),
    ("invitations", invitations),
];

/// 1 if `data` is a payload of `T` (then checked for a round trip), else 0.
fn payload<T: Serialize + DeserializeOwned + PartialEq + Debug>(data: &[u8]) -> usize {
    let Ok(value) = wire::decode::<T>(data) else {
        return 0;
    };
    let again = wire::decode::<T>(&wire::encode(&value));
    assert_eq!(again.ok().as_ref(), Some(&value), "payload round trip");
    1
}

/// What a peer sends on the fabric's keys: call payloads (the query on
/// `weft/dev/<name>/call`), their replies (registries included) and exits.
pub fn fabric_payloads(data: &[u8]) -> usize {
    payload::<Request>(data) + payload::<Response>(data) + payload::<Exit>(data)
}

/// 1 if `data` is a JSON `T` (then checked for a round trip), else 0.
fn line<T: Serialize + DeserializeOwned + PartialEq + Debug>(data: &[u8]) -> usize {
    let Ok(value) = serde_json::from_slice::<T>(data) else {
        return 0;
    };
    let bytes = serde_json::to_vec(&value).expect("a decoded value encodes");
    let again = serde_json::from_slice::<T>(&bytes);
    assert_eq!(again.ok().as_ref(), Some(&value), "line round trip");
    1
}

/// The daemon socket's lines: a client's request, the daemon's answer.
pub fn local_lines(data: &[u8]) -> usize {
    line::<LocalRequest>(data) + line::<LocalResponse>(data)
}

/// Key expressions a peer's samples carry, and pids a user types.
pub fn names(data: &[u8]) -> usize {
    let Ok(text) = std::str::from_utf8(data) else {
        return 0;
    };
    let mut accepted = 0;
    if let Some(name) = keys::device_of_presence(text) {
        assert_eq!(keys::presence(name), text);
        accepted += 1;
    }
    if let Some(name) = keys::device_of_removal(text) {
        assert_eq!(keys::removed(name), text);
        accepted += 1;
    }
    if let Ok(pid) = Pid::parse(text) {
        assert_eq!(Pid::parse(&pid.to_string()), Ok(pid));
        accepted += 1;
    }
    accepted
}

/// Invitation tokens a user pastes.
pub fn invitations(data: &[u8]) -> usize {
    let Ok(text) = std::str::from_utf8(data) else {
        return 0;
    };
    let Ok(invitation) = Invitation::decode(text) else {
        return 0;
    };
    let again = Invitation::decode(&invitation.encode()).ok();
    assert!(again == Some(invitation), "invitation round trip");
    1
}
