//! The payloads of the fabric's Zenoh keys (PROTOCOL.md §16.3): UTF-8
//! JSON objects, each carrying `"v": 1`. A payload of another version, or
//! one that does not parse, is refused with a [`WireError`] naming what was
//! wrong; nothing a peer sends can make a daemon panic.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// The payload version this build speaks.
pub const VERSION: u32 = 1;
/// The largest call payload a daemon reads (a spawn's arguments included).
pub const MAX_PAYLOAD: usize = 256 * 1024;

/// A payload that could not be read.
#[derive(Debug, Error)]
pub enum WireError {
    #[error("payload of {0} bytes is over the {MAX_PAYLOAD}-byte limit")]
    TooLarge(usize),
    #[error("payload version {0} is not {VERSION}")]
    Version(u32),
    #[error("bad payload: {0}")]
    Json(#[from] serde_json::Error),
}

#[derive(Serialize, Deserialize)]
struct Envelope<T> {
    v: u32,
    #[serde(flatten)]
    body: T,
}

#[derive(Deserialize)]
struct VersionOnly {
    v: u32,
}

/// `body` as a version-1 payload.
pub fn encode<T: Serialize>(body: &T) -> Vec<u8> {
    // Serializing these plain data types cannot fail: every map key is a
    // string and no `Serialize` impl here returns an error.
    serde_json::to_vec(&Envelope { v: VERSION, body }).unwrap_or_default()
}

/// Reads a payload: its size, its version, then its body.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, WireError> {
    if bytes.len() > MAX_PAYLOAD {
        return Err(WireError::TooLarge(bytes.len()));
    }
    decode_file(bytes)
}

/// Reads a versioned document of any size (a file of the state directory).
pub fn decode_file<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, WireError> {
    let VersionOnly { v } = serde_json::from_slice(bytes)?;
    if v != VERSION {
        return Err(WireError::Version(v));
    }
    Ok(serde_json::from_slice::<Envelope<T>>(bytes)?.body)
}

/// A device as the fabric lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Device {
    pub name: String,
    /// Hex of the first 8 bytes of SHA-256 of its public key.
    pub id: String,
    /// Whether it is online now.
    pub available: bool,
    /// Where its daemon listens (`ADDR:PORT`).
    pub addresses: Vec<String>,
    /// Its figures, when available.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub figures: Option<Figures>,
}

/// A device's figures.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Figures {
    /// Processes running in its guest.
    pub processes: u32,
    /// Bytes of memory its processes hold.
    pub memory: u64,
}

/// A process as the fabric lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Process {
    /// `DEVICE:N`.
    pub pid: String,
    pub device: String,
    pub name: String,
    /// `running` (or ready to run), `waiting` (streams, a timer, another
    /// process) or `ended`.
    pub state: String,
    pub cpu_ns: u64,
    pub memory: u64,
    pub streams: u32,
    /// The exit status, once ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u32>,
    /// How it runs, if it is a Wasm app.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<Engine>,
}

/// The program a spawn runs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Image {
    /// One of the target device's own programs, by name.
    Program { name: String },
    /// A Wasm module, by the hex SHA-256 of its bytes, fetched from
    /// `weft/dev/<from>/blob/<sha256>` unless the target has it cached.
    Wasm {
        sha256: String,
        size: u64,
        from: String,
    },
}

/// How a spawned Wasm module runs (PROTOCOL.md §13.8).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Engine {
    /// Compiled ahead of time by the device's monitor.
    Aot,
    /// Interpreted (the only tier whose apps move).
    Interp,
}

/// A fabric call to a device (the query payload on `weft/dev/<name>/call`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// The device itself: name, id, addresses, figures.
    Info,
    /// The devices it knows (its registry).
    Registry,
    /// Its processes.
    Ps,
    /// One process: `pid` of `DEVICE:pid`, where `DEVICE` is `of`, or the
    /// called device when `of` is absent (a process moved there from
    /// another device keeps its first device's name, §19.4).
    Stats {
        pid: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        of: Option<String>,
    },
    /// Ends one process (it exits with status 137), named as `Stats` names
    /// it.
    Kill {
        pid: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        of: Option<String>,
    },
    /// Starts a program with `args` (its name first); a Wasm module in
    /// `engine`'s tier (default: as the device runs modules).
    Spawn {
        image: Image,
        args: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        engine: Option<Engine>,
    },
    /// Asks a device that holds the fabric's CA key for a fresh certificate
    /// for the key and name of `csr` (PEM, PKCS#10), whose device must be
    /// a member; see [`crate::renewal`].
    Renew { csr: String },
    /// The services its processes provide (§18).
    Services,
    /// Start a provider of `guid` unless one runs there (§18.7); answered
    /// `done` once one runs.
    Activate { guid: String },
    /// Asks the device that owns the fabric address of `addr` to bind a
    /// UDP socket there for an app of `device`, whose own id for the socket
    /// is `socket`: datagrams for it go to `weft/dev/<device>/udp/<socket>`
    /// ([`crate::udp`]).
    UdpBind {
        addr: std::net::SocketAddr,
        device: String,
        socket: u64,
    },
    /// Closes the socket `socket` (the owner's id) that `device` bound.
    UdpClose { device: String, socket: u64 },
    /// Holds what socket `socket` (the owner's id), which `device` uses,
    /// receives: the app is moving to device `to`, whose `udp_bind` of the
    /// same address takes the socket over (§19.6).
    UdpHold {
        device: String,
        socket: u64,
        to: String,
    },
    /// Delivers to `device` again what socket `socket` receives, and what
    /// it held: the move of its app failed (§19.6).
    UdpRelease { device: String, socket: u64 },
    /// Moves process `pid` (`DEVICE:N`, wherever it runs now) to device
    /// `to` (§19.4), waiting at most `wait_ms` for its batch to end.
    Move {
        pid: String,
        to: String,
        wait_ms: u32,
    },
    /// Takes app `pid` (`DEVICE:N`), moved here from `from`: the Wasm
    /// module `module` (fetched by hash unless cached), its process named
    /// `name`, and the snapshot the query carries as its payload. Only on
    /// `weft/dev/<name>/adopt` ([`crate::node::Node::adopt`]); a call
    /// carrying it is refused.
    Adopt {
        pid: String,
        name: String,
        module: Image,
        #[serde(skip)]
        snapshot: Vec<u8>,
    },
    /// Gets ready to take app `pid` (`DEVICE:N`), whose snapshot of
    /// `total` bytes is on its way: starts its runtime, which waits for the
    /// adopt that follows ([`Request::Adopt`], the same `pid`, `name` and
    /// `module`). Made by the node from a prepare query on
    /// `weft/dev/<name>/adopt` (whose JSON is that adopt request); never
    /// on the wire itself.
    #[serde(skip)]
    Prepare {
        pid: String,
        name: String,
        module: Image,
        total: u64,
    },
    /// Process `pid`, of the called device, now runs on `at` (told by the
    /// device that moved it, so that calls for it find it).
    Located { pid: String, at: String },
}

/// A device's answer to a [`Request`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub enum Response {
    Info {
        device: Device,
    },
    Registry {
        devices: Vec<Known>,
    },
    Processes {
        processes: Vec<Process>,
    },
    Process {
        process: Process,
    },
    Spawned {
        pid: String,
    },
    /// The renewed device certificate (PEM).
    Renewed {
        certificate: String,
    },
    /// The services its processes provide, one entry per instance.
    Services {
        services: Vec<Service>,
    },
    /// A UDP socket bound on `addr` for the caller; the owner's id for it is
    /// `socket` (the caller's sends go to `weft/dev/<owner>/udp/<socket>`).
    UdpBound {
        addr: std::net::SocketAddr,
        socket: u64,
    },
    /// A `udp_bind` refused: the stream error code (PROTOCOL.md §9.4) the
    /// app gets, and why.
    UdpRefused {
        code: u32,
        message: String,
    },
    Done,
    /// The process the call names runs on `device` now: call it there.
    Elsewhere {
        device: String,
    },
    /// The call was refused: `message` says why.
    Error {
        message: String,
    },
}

/// A running instance of a service (§18).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Service {
    /// The service's GUID, in its canonical lower-case text form.
    pub guid: String,
    /// Its display name.
    pub name: String,
    /// The providing process, `DEVICE:N`.
    pub pid: String,
    pub device: String,
}

/// A device in a registry: known (paired), or removed for good.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Known {
    pub name: String,
    pub id: String,
    pub addresses: Vec<String>,
    /// Removed devices stay listed so that every daemon keeps refusing them.
    #[serde(default)]
    pub removed: bool,
    /// Hex of the whole SHA-256 of its public key (SPKI DER), whose first 16
    /// digits are `id`: what a renewal's key is compared with. Recorded by
    /// the device that admitted it; absent in entries from before it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// A process's exit (the put on `weft/dev/<name>/exit/<n>`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exit {
    pub pid: String,
    pub status: u32,
}

/// A process's start (the put on `weft/dev/<name>/start/<n>`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Start {
    pub pid: String,
}

/// A fabric pid, `DEVICE:N`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pid {
    pub device: String,
    pub n: u32,
}

impl Pid {
    /// `DEVICE:N` of process `n` of `device`.
    pub fn text(device: &str, n: u32) -> String {
        format!("{device}:{n}")
    }

    /// Reads `DEVICE:N`.
    pub fn parse(text: &str) -> Result<Pid, String> {
        let (device, n) = text
            .rsplit_once(':')
            .ok_or_else(|| format!("pid {text:?} is not DEVICE:N"))?;
        if !crate::keys::valid_name(device) {
            return Err(format!("pid {text:?}: {device:?} is not a device name"));
        }
        let n = n
            .parse()
            .map_err(|_| format!("pid {text:?}: {n:?} is not a process number"))?;
        Ok(Pid {
            device: device.to_string(),
            n,
        })
    }
}

impl std::fmt::Display for Pid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&Pid::text(&self.device, self.n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_with_their_version() {
        let requests = [
            Request::Info,
            Request::Ps,
            Request::Kill { pid: 3, of: None },
            Request::Stats {
                pid: 4,
                of: Some("c".into()),
            },
            Request::Move {
                pid: "a:7".into(),
                to: "b".into(),
                wait_ms: 5000,
            },
            Request::Located {
                pid: "a:7".into(),
                at: "c".into(),
            },
            Request::Renew {
                csr: "-----BEGIN CERTIFICATE REQUEST-----".into(),
            },
            Request::UdpBind {
                addr: "10.0.0.1:9000".parse().unwrap(),
                device: "b".into(),
                socket: u64::MAX,
            },
            Request::UdpClose {
                device: "b".into(),
                socket: 7,
            },
            Request::UdpHold {
                device: "b".into(),
                socket: 7,
                to: "c".into(),
            },
            Request::UdpRelease {
                device: "b".into(),
                socket: 7,
            },
            Request::Spawn {
                image: Image::Wasm {
                    sha256: "ab".repeat(32),
                    size: 10,
                    from: "a".into(),
                },
                args: vec!["x".into()],
                engine: Some(Engine::Aot),
            },
        ];
        for r in requests {
            let bytes = encode(&r);
            assert!(
                bytes.starts_with(b"{\"v\":1,"),
                "{}",
                String::from_utf8_lossy(&bytes)
            );
            assert_eq!(decode::<Request>(&bytes).unwrap(), r);
        }
    }

    #[test]
    fn bad_payloads_are_refused_by_name() {
        let err = |b: &[u8]| decode::<Request>(b).unwrap_err().to_string();
        assert!(err(br#"{"v":2,"op":"ps"}"#).contains("version 2"));
        assert!(err(br#"{"op":"ps"}"#).contains("missing field `v`"));
        assert!(err(br#"{"v":1,"op":"format"}"#).contains("unknown variant"));
        assert!(err(br#"{"v":1,"op":"kill","pid":-1}"#).contains("bad payload"));
        assert!(err(b"\xff\x00").contains("bad payload"));
        assert!(err(&vec![b' '; MAX_PAYLOAD + 1]).contains("over the"));
    }

    #[test]
    fn pids_name_their_device() {
        let p = Pid::parse("alpha:12").unwrap();
        assert_eq!((p.device.as_str(), p.n), ("alpha", 12));
        assert_eq!(p.to_string(), "alpha:12");
        for bad in ["12", "alpha:", "alpha:x", "Al:1", ":1", "a:1:2"] {
            assert!(Pid::parse(bad).is_err(), "{bad}");
        }
    }
}
