//! The Weft fabric: every device running Weft joins one system, on Eclipse
//! Zenoh (router mode, mutual TLS against the fabric's CA).
//!
//! Identity and membership:
//! - [`state`]: the device's owner-only state directory and its files;
//! - [`identity`]: the fabric's CA, device keys, names, ids and certificates;
//! - [`invite`]: one-time invitations and the inviter's store of outstanding ones;
//! - [`pairing`]: the exchange by which a device joins (frame layout in its docs);
//! - [`registry`]: the known devices, as one device holds them;
//! - [`renewal`]: renewing device certificates before they expire.
//!
//! The network:
//! - [`keys`]: the Zenoh key space; [`wire`]: the payloads on it;
//! - [`zconfig`]: the device's Zenoh configuration; [`node`]: its session
//!   (presence, calls served and made, modules offered, exits, removals);
//! - [`ipc`]: services by GUID between devices (tokens, queryables,
//!   payloads);
//! - [`adopt`]: an app's snapshot handed to the device it moves to, in
//!   parts;
//! - [`udp`]: the payloads of UDP sockets on the fabric's addresses;
//! - [`local`]: the daemon's local socket (the CLI's requests);
//! - [`bounded`]: the bounded maps that keep a long-running daemon flat.
#![forbid(unsafe_code)]

pub mod adopt;
pub mod bounded;
pub mod identity;
pub mod invite;
pub mod ipc;
pub mod keys;
pub mod local;
pub mod node;
pub mod pairing;
mod reader;
pub mod registry;
pub mod renewal;
pub mod state;
mod tokens;
pub mod udp;
pub mod wire;
pub mod zconfig;
