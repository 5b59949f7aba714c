//! The device's Zenoh configuration: router mode (every device routes, so
//! devices that cannot reach each other directly still reach each other
//! through a third), QUIC only (TLS 1.3), mutual authentication against the
//! fabric's CA, a lease of [`LEASE_MS`], and an access-control list that
//! drops every message to and from a removed device (by its certificate's
//! common name, which is its name).
//!
//! QUIC rather than Zenoh's TLS-over-TCP link: that link reads and writes
//! one rustls stream from two tasks at once through an `UnsafeCell`
//! (eclipse-zenoh/zenoh#2557), which rustls does not support; under
//! traffic both ways its links broke every few seconds (each daemon saw the
//! other unavailable for ~100 ms, and what was in flight was lost). A QUIC
//! link has no such sharing. Over UDP, though, a peer whose process dies
//! leaves no connection to reset: it is gone when its lease ends, hence a
//! lease shorter than Zenoh's 10 s default.

use serde_json::{Value, json};
use std::net::SocketAddr;
use std::path::PathBuf;
use thiserror::Error;

/// The files of the device's TLS identity.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    /// The fabric's CA certificate (PEM).
    pub ca: PathBuf,
    /// The device's certificate (PEM), signed by the CA, CN = its name.
    pub certificate: PathBuf,
    /// The device's private key (PEM).
    pub key: PathBuf,
}

/// Where the device listens and whom it connects to.
#[derive(Clone, Debug)]
pub struct Endpoints {
    pub listen: Vec<SocketAddr>,
    pub peers: Vec<SocketAddr>,
}

/// A configuration Zenoh refused.
#[derive(Debug, Error)]
#[error("zenoh configuration: {0}")]
pub struct ConfigError(String);

/// Every message kind Zenoh's access control knows.
const ALL_MESSAGES: [&str; 9] = [
    "put",
    "delete",
    "declare_subscriber",
    "query",
    "reply",
    "declare_queryable",
    "liveliness_token",
    "liveliness_query",
    "declare_liveliness_subscriber",
];

/// How long a link lives without hearing from its peer (Zenoh sends four
/// keep-alives per lease).
pub const LEASE_MS: u64 = 2_000;

/// How long a droppable message (a relayed UDP datagram) waits for room
/// in its link's queue before it is dropped, in microseconds.
pub const DROP_WAIT_US: u64 = 20_000;

/// How long any other message waits for room in its link's queue before
/// the link is taken for dead and closed, in microseconds: half a lease.
/// The wait holds the Zenoh thread that routes the message, and that
/// thread also reads other links; with Zenoh's 5 s, a device that died
/// with a full queue (a move's snapshot on its way to it) stalled the
/// devices routing to it until their links with each other, too, went a
/// lease without a word and were closed.
pub const CLOSE_WAIT_US: u64 = LEASE_MS * 1_000 / 2;
const _: () = assert!(CLOSE_WAIT_US < LEASE_MS * 1_000);

fn locator(addr: &SocketAddr) -> String {
    format!("quic/{addr}")
}

/// The configuration as JSON (what [`config`] hands to Zenoh).
pub fn config_json(tls: &TlsFiles, endpoints: &Endpoints, denied: &[String]) -> Value {
    let mut cfg = json!({
        "mode": "router",
        "listen": { "endpoints": endpoints.listen.iter().map(locator).collect::<Vec<_>>() },
        "connect": {
            "endpoints": endpoints.peers.iter().map(locator).collect::<Vec<_>>(),
            // Keep retrying peers that are down; never give up on start.
            "timeout_ms": -1,
            "exit_on_failure": false,
            "retry": { "period_init_ms": 250, "period_max_ms": 2000, "period_increase_factor": 2 },
        },
        "scouting": {
            // Devices are found through their peers' gossip, not multicast
            // (slow with listeners on 0.0.0.0, and it crosses fabrics).
            "multicast": { "enabled": false },
            "gossip": { "enabled": true, "multihop": true, "autoconnect": { "router": ["router"] } },
        },
        "transport": {
            "link": {
                "tx": {
                    "lease": LEASE_MS,
                    "keep_alive": 4,
                    // Datagrams relayed for fabric UDP sockets (the only
                    // droppable messages) wait for room in a queue of 16
                    // batches for up to DROP_WAIT_US: with Zenoh's 2 and
                    // 1 ms, a scheduling hiccup of the link's task dropped
                    // whole bursts.
                    "queue": {
                        "size": { "data": 16 },
                        "congestion_control": {
                            "drop": { "wait_before_drop": DROP_WAIT_US },
                            "block": { "wait_before_close": CLOSE_WAIT_US },
                        },
                    },
                },
                "protocols": ["quic"],
                "tls": {
                    "root_ca_certificate": tls.ca,
                    "listen_private_key": tls.key,
                    "listen_certificate": tls.certificate,
                    "enable_mtls": true,
                    "connect_private_key": tls.key,
                    "connect_certificate": tls.certificate,
                    // Devices are named by their certificates, not by DNS.
                    "verify_name_on_connect": false,
                    "close_link_on_expiration": true,
                },
            },
        },
        "adminspace": { "enabled": false },
    });
    if !denied.is_empty() {
        cfg["access_control"] = json!({
            "enabled": true,
            "default_permission": "allow",
            "rules": [{
                "id": "removed-devices",
                "messages": ALL_MESSAGES,
                "flows": ["ingress", "egress"],
                "permission": "deny",
                "key_exprs": ["**"],
            }],
            "subjects": [{ "id": "removed-devices", "cert_common_names": denied }],
            "policies": [{ "rules": ["removed-devices"], "subjects": ["removed-devices"] }],
        });
    }
    cfg
}

/// The Zenoh configuration of a device.
pub fn config(
    tls: &TlsFiles,
    endpoints: &Endpoints,
    denied: &[String],
) -> Result<zenoh::Config, ConfigError> {
    let text = config_json(tls, endpoints, denied).to_string();
    zenoh::Config::from_json5(&text).map_err(|e| ConfigError(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files() -> TlsFiles {
        TlsFiles {
            ca: "/s/ca.crt".into(),
            certificate: "/s/device.crt".into(),
            key: "/s/device.key".into(),
        }
    }

    #[test]
    fn zenoh_accepts_the_configuration() {
        let endpoints = Endpoints {
            listen: vec!["127.0.0.1:7447".parse().unwrap()],
            peers: vec!["10.0.0.2:7447".parse().unwrap()],
        };
        let zenoh = config(&files(), &endpoints, &[]).unwrap();
        assert_eq!(
            zenoh
                .get_json("transport/link/tx/queue/congestion_control/block/wait_before_close")
                .unwrap(),
            CLOSE_WAIT_US.to_string()
        );
        config(&files(), &endpoints, &["gone".into()]).unwrap();
        let json = config_json(&files(), &endpoints, &["gone".into()]);
        assert_eq!(json["mode"], "router");
        assert_eq!(json["connect"]["endpoints"][0], "quic/10.0.0.2:7447");
        assert_eq!(
            json["access_control"]["subjects"][0]["cert_common_names"][0],
            "gone"
        );
    }
}
