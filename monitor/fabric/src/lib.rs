//! The Weft fabric: every device running Weft joins one system, on Eclipse
//! Zenoh (router mode, mutual TLS against the fabric's CA).
//!
//! Identity and membership:
//! - [`state`]: the device's owner-only state directory and its files;
//! - [`identity`]: the fabric's CA, device keys, names, ids and certificates;
//! - [`invite`]: one-time invitations and the inviter's store of outstanding ones;
//! - [`pairing`]: the exchange by which a device joins (frame layout in its docs).
#![forbid(unsafe_code)]

pub mod identity;
pub mod invite;
pub mod pairing;
pub mod state;
