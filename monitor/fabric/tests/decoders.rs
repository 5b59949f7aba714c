//! Every decoder of what a peer device, a local client or a user hands the
//! fabric, run on the stable toolchain (`make test`): over seeds of valid
//! encodings, every truncation and every single-bit flip of them, and
//! pseudo-random bytes, a bounded number each. The drivers
//! (`support/decoders.rs`) are the cargo-fuzz targets' too (`make fuzz`
//! runs those unbounded).

#[path = "support/decoders.rs"]
mod decoders;

use decoders::DRIVERS;
use std::hash::{DefaultHasher, Hash, Hasher};
use weft_fabric::invite::Invitation;
use weft_fabric::local::{LocalRequest, LocalResponse, Program};
use weft_fabric::wire::{
    self, Device, Engine, Exit, Figures, Image, Known, Process, Request, Response,
};

/// Pseudo-random inputs per driver.
const RANDOM_INPUTS: usize = 50_000;

fn process() -> Process {
    Process {
        pid: "b:7".into(),
        device: "b".into(),
        name: "fabric-ls".into(),
        state: "running".into(),
        cpu_ns: 1_000_000,
        memory: 1 << 20,
        streams: 3,
        status: Some(137),
        engine: Some(Engine::Aot),
    }
}

fn device() -> Device {
    Device {
        name: "a".into(),
        id: "0123456789abcdef".into(),
        available: true,
        addresses: vec!["10.0.0.1:7447".into()],
        figures: Some(Figures {
            processes: 2,
            memory: 4096,
        }),
    }
}

fn known() -> Known {
    Known {
        name: "c".into(),
        id: "fedcba9876543210".into(),
        addresses: vec!["[::1]:7449".into()],
        removed: true,
        key: Some(format!("fedcba9876543210{}", "0".repeat(48))),
    }
}

/// Valid encodings for `driver`.
fn seeds(driver: &str) -> Vec<Vec<u8>> {
    match driver {
        "fabric_payloads" => {
            let requests = [
                Request::Info,
                Request::Registry,
                Request::Ps,
                Request::Stats { pid: 3, of: None },
                Request::Kill { pid: 4, of: None },
                Request::Renew {
                    csr: "-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n-----END CERTIFICATE REQUEST-----\n".into(),
                },
                Request::Spawn {
                    image: Image::Wasm {
                        sha256: "ab".repeat(32),
                        size: 10,
                        from: "a".into(),
                    },
                    args: vec!["x".into(), "".into(), "é ✓".into()],
                    engine: Some(Engine::Interp),
                },
                Request::Spawn {
                    image: Image::Program {
                        name: "hello".into(),
                    },
                    args: Vec::new(),
                    engine: None,
                },
            ];
            let responses = [
                Response::Info { device: device() },
                Response::Registry {
                    devices: vec![known()],
                },
                Response::Processes {
                    processes: vec![process(), process()],
                },
                Response::Process { process: process() },
                Response::Spawned { pid: "b:9".into() },
                Response::Done,
                Response::Renewed {
                    certificate: "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
                        .into(),
                },
                Response::Error {
                    message: "no \"such\" process\n".into(),
                },
            ];
            let mut out: Vec<Vec<u8>> = requests.iter().map(wire::encode).collect();
            out.extend(responses.iter().map(wire::encode));
            out.push(wire::encode(&Exit {
                pid: "c:2".into(),
                status: 0,
            }));
            out
        }
        "local_lines" => {
            let requests = [
                LocalRequest::Devices { available: true },
                LocalRequest::Invite { expires_secs: 600 },
                LocalRequest::Remove { name: "c".into() },
                LocalRequest::Ps { device: None },
                LocalRequest::Stats { pid: "a:2".into() },
                LocalRequest::Kill { pid: "b:3".into() },
                LocalRequest::Spawn {
                    device: Some("c".into()),
                    program: Program::Module {
                        bytes: b"\0asm\x01\0\0\0".to_vec(),
                    },
                    args: vec!["app".into()],
                    engine: Some(Engine::Aot),
                },
                LocalRequest::Spawn {
                    device: None,
                    program: Program::File {
                        name: "app.wasm".into(),
                    },
                    args: Vec::new(),
                    engine: None,
                },
                LocalRequest::Wait {
                    pid: "a:2".into(),
                    limit_secs: 5,
                },
                LocalRequest::Watch,
            ];
            let responses = [
                LocalResponse::Devices {
                    devices: vec![device()],
                },
                LocalResponse::Processes {
                    processes: vec![process()],
                },
                LocalResponse::Process { process: process() },
                LocalResponse::Done,
            ];
            let mut out: Vec<Vec<u8>> = requests
                .iter()
                .map(|r| serde_json::to_vec(r).expect("a seed encodes"))
                .collect();
            out.extend(
                responses
                    .iter()
                    .map(|r| serde_json::to_vec(r).expect("a seed encodes")),
            );
            out
        }
        "names" => ["weft/dev/a", "weft/fabric/removed/kitchen-2", "laptop:42"]
            .iter()
            .map(|s| s.as_bytes().to_vec())
            .collect(),
        "invitations" => {
            let invitation = Invitation {
                fabric: "00112233445566778899aabbccddeeff"
                    .parse()
                    .expect("a seed fabric id"),
                ca_sha256: [7; 32],
                addresses: vec![
                    "10.1.2.3:7447".parse().expect("a seed address"),
                    "[fe80::1]:9000".parse().expect("a seed address"),
                ],
                secret: [9; 32],
                // Far enough ahead never to expire while tests run.
                expires_unix: u64::from(u32::MAX) * 4,
            };
            vec![invitation.encode().into_bytes()]
        }
        other => panic!("no seeds for driver {other}"),
    }
}

/// Deterministic noise (SipHash with fixed keys of a counter), so a
/// failure reproduces.
fn noise(n: usize) -> u64 {
    let mut h = DefaultHasher::new();
    n.hash(&mut h);
    h.finish()
}

/// Every prefix of `seed` and every one-bit change of it.
fn mutants(seed: &[u8]) -> impl Iterator<Item = Vec<u8>> + '_ {
    let prefixes = (0..seed.len()).map(|len| seed[..len].to_vec());
    let flips = (0..seed.len() * 8).map(|bit| {
        let mut m = seed.to_vec();
        m[bit / 8] ^= 1 << (bit % 8);
        m
    });
    prefixes.chain(flips)
}

/// `seed` with a few noise bytes spliced in at a noisy place (more likely
/// to get past a decoder's first checks than noise alone), or noise alone.
fn spliced(seed: &[u8], n: usize) -> Vec<u8> {
    let k = noise(n);
    if k.is_multiple_of(4) {
        return (0..k % 64)
            .map(|i| noise(n ^ (i as usize) << 20) as u8)
            .collect();
    }
    let mut out = seed.to_vec();
    let at = (k >> 8) as usize % (seed.len() + 1);
    let junk = (0..(k >> 40) % 16).map(|i| noise(n + (i as usize) * 7919) as u8);
    out.splice(at..at, junk);
    out
}

#[test]
fn decoders_survive_seeds_their_mutations_and_random_bytes() {
    for &(name, driver) in DRIVERS {
        let seeds = seeds(name);
        for mutant in seeds.iter().flat_map(|s| mutants(s)) {
            driver(&mutant);
        }
        for n in 0..RANDOM_INPUTS {
            driver(&spliced(&seeds[n % seeds.len()], n));
        }
    }
}

#[test]
fn seeds_are_accepted_by_their_decoders() {
    // A seed that no longer decodes would leave its driver checking only
    // refusals: each is accepted, and round-trips.
    for &(name, driver) in DRIVERS {
        for (i, seed) in seeds(name).iter().enumerate() {
            assert!(driver(seed) > 0, "{name}: seed {i} is refused");
        }
    }
}

#[test]
fn payloads_over_the_limit_are_refused_before_parsing() {
    let mut big = wire::encode(&Request::Ps);
    big.resize(wire::MAX_PAYLOAD + 1, b' ');
    assert!(matches!(
        wire::decode::<Request>(&big),
        Err(wire::WireError::TooLarge(_))
    ));
}
