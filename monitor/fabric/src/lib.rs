//! The Weft fabric: every device running Weft joins one system, on Eclipse
//! Zenoh (router mode, mutual TLS against the fabric's CA).
#![forbid(unsafe_code)]

pub mod identity;
pub mod invite;
pub mod pairing;
pub mod state;
