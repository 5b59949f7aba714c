//! The pairing messages' byte layout (see [`super`] for the tables) and its frames.
//!
//! Everything read here is the peer's allegation: every length is checked against the
//! bytes that remain and against its field's limit before use, and nothing panics on any
//! input.

use ring::hmac;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::timeout;

use super::{IO_TIMEOUT, MAX_FRAME, PairError, Status, VERSION};
use crate::identity::{FabricId, MAX_NAME_LEN};
use crate::invite::{MacKey, TokenId};
use crate::reader::{Reader, Truncated};

/// The label in front of a request's MAC input.
const REQUEST_LABEL: &[u8] = b"weft-pair-req";
/// The label in front of a reply's MAC input.
const REPLY_LABEL: &[u8] = b"weft-pair-rep";
/// The size of a nonce, token id and MAC.
pub(super) const TAG_LEN: usize = 32;

/// Why a message did not parse.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WireError {
    #[error("message version {found} is not supported (this device speaks version {VERSION})")]
    Version { found: u8 },
    #[error("the message is truncated: {0}")]
    Truncated(#[from] Truncated),
    #[error("{field} is {len} bytes, more than its limit of {max}")]
    TooLong {
        field: &'static str,
        len: usize,
        max: usize,
    },
    #[error("{field} is not UTF-8")]
    NotText { field: &'static str },
    #[error("the message has {count} bytes after its last field")]
    TrailingBytes { count: usize },
    #[error("status {found} is not a known status")]
    UnknownStatus { found: u8 },
}

/// A pairing request as read off the wire (the name is not checked yet).
#[derive(Debug)]
pub(super) struct Request {
    pub token: TokenId,
    pub nonce: [u8; TAG_LEN],
    pub name: String,
    pub csr_pem: String,
    /// The bytes the MAC covers (after the label) and the MAC itself.
    signed: Vec<u8>,
    mac: [u8; TAG_LEN],
}

impl Request {
    /// Encodes a request, MAC included.
    pub fn encode(
        key: &MacKey,
        token: &TokenId,
        nonce: &[u8; TAG_LEN],
        name: &str,
        csr_pem: &str,
    ) -> Result<Vec<u8>, WireError> {
        let mut out = vec![VERSION];
        out.extend_from_slice(&token.0);
        out.extend_from_slice(nonce);
        put_bytes::<1>("the device name", name.as_bytes(), MAX_NAME_LEN, &mut out)?;
        put_bytes::<2>(
            "the CSR",
            csr_pem.as_bytes(),
            usize::from(u16::MAX),
            &mut out,
        )?;
        let mac = sign(key, &[REQUEST_LABEL, &out]);
        out.extend_from_slice(&mac);
        Ok(out)
    }

    /// Decodes a request; its MAC is checked by [`verify`](Self::verify).
    pub fn decode(bytes: &[u8]) -> Result<Self, WireError> {
        let mut reader = Reader::new(bytes);
        let [version] = reader.array("the version")?;
        if version != VERSION {
            return Err(WireError::Version { found: version });
        }
        let token = TokenId(reader.array("the token id")?);
        let nonce = reader.array("the nonce")?;
        let name = text::<1>(&mut reader, "the device name", MAX_NAME_LEN)?;
        let csr_pem = text::<2>(&mut reader, "the CSR", usize::from(u16::MAX))?;
        let signed = bytes[..bytes.len() - reader.left()].to_vec();
        let mac = reader.array("the MAC")?;
        end(&reader)?;
        Ok(Self {
            token,
            nonce,
            name,
            csr_pem,
            signed,
            mac,
        })
    }

    /// Whether the MAC was made with `key` (compared in constant time).
    pub fn verify(&self, key: &MacKey) -> bool {
        let input = [REQUEST_LABEL, &self.signed].concat();
        hmac::verify(&key.hmac(), &input, &self.mac).is_ok()
    }
}

/// What an admitted joiner is sent.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Admission {
    pub fabric: FabricId,
    pub cert_pem: String,
    pub ca_cert_pem: String,
    pub registry_json: String,
}

/// A pairing reply as read off the wire.
#[derive(Debug)]
pub(super) enum Reply {
    Admitted {
        admission: Admission,
        signed: Vec<u8>,
        mac: [u8; TAG_LEN],
    },
    Refused {
        status: Status,
        message: String,
    },
}

/// Encodes an admission, its MAC bound to the request's `nonce`.
pub(super) fn encode_admission(
    key: &MacKey,
    nonce: &[u8; TAG_LEN],
    admission: &Admission,
) -> Result<Vec<u8>, WireError> {
    let mut out = vec![VERSION, Status::Admitted as u8];
    out.extend_from_slice(&admission.fabric.0);
    let max = MAX_FRAME as usize;
    put_bytes::<4>(
        "the certificate",
        admission.cert_pem.as_bytes(),
        max,
        &mut out,
    )?;
    put_bytes::<4>(
        "the CA certificate",
        admission.ca_cert_pem.as_bytes(),
        max,
        &mut out,
    )?;
    put_bytes::<4>(
        "the registry",
        admission.registry_json.as_bytes(),
        max,
        &mut out,
    )?;
    let mac = sign(key, &[REPLY_LABEL, nonce, &out]);
    out.extend_from_slice(&mac);
    Ok(out)
}

/// Encodes a refusal; messages longer than the field allows are cut at a character
/// boundary.
pub(super) fn encode_refusal(status: Status, message: &str) -> Vec<u8> {
    let mut end = message.len().min(usize::from(u16::MAX));
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    let message = &message.as_bytes()[..end];
    let mut out = vec![VERSION, status as u8];
    out.extend_from_slice(&(message.len() as u16).to_le_bytes());
    out.extend_from_slice(message);
    out
}

impl Reply {
    pub fn decode(bytes: &[u8]) -> Result<Self, WireError> {
        let mut reader = Reader::new(bytes);
        let [version, status] = reader.array("the version and status")?;
        if version != VERSION {
            return Err(WireError::Version { found: version });
        }
        let status = Status::from_code(status).ok_or(WireError::UnknownStatus { found: status })?;
        if status != Status::Admitted {
            let message = text::<2>(&mut reader, "the message", usize::from(u16::MAX))?;
            end(&reader)?;
            // The joiner prints the message: no terminal control sequences from the peer.
            let message = message
                .chars()
                .map(|c| {
                    if c.is_control() {
                        char::REPLACEMENT_CHARACTER
                    } else {
                        c
                    }
                })
                .collect();
            return Ok(Self::Refused { status, message });
        }
        let max = MAX_FRAME as usize;
        let admission = Admission {
            fabric: FabricId(reader.array("the fabric id")?),
            cert_pem: text::<4>(&mut reader, "the certificate", max)?,
            ca_cert_pem: text::<4>(&mut reader, "the CA certificate", max)?,
            registry_json: text::<4>(&mut reader, "the registry", max)?,
        };
        let signed = bytes[..bytes.len() - reader.left()].to_vec();
        let mac = reader.array("the MAC")?;
        end(&reader)?;
        Ok(Self::Admitted {
            admission,
            signed,
            mac,
        })
    }
}

/// Whether an admission's MAC was made with `key` for the request with `nonce`.
pub(super) fn verify_admission(
    key: &MacKey,
    nonce: &[u8; TAG_LEN],
    signed: &[u8],
    mac: &[u8; TAG_LEN],
) -> bool {
    let input = [REPLY_LABEL, nonce, signed].concat();
    hmac::verify(&key.hmac(), &input, mac).is_ok()
}

fn sign(key: &MacKey, parts: &[&[u8]]) -> [u8; TAG_LEN] {
    let mut context = hmac::Context::with_key(&key.hmac());
    parts.iter().for_each(|part| context.update(part));
    let mut mac = [0; TAG_LEN];
    mac.copy_from_slice(context.sign().as_ref());
    mac
}

/// Appends `bytes` behind its length, an `N`-byte little-endian integer.
fn put_bytes<const N: usize>(
    field: &'static str,
    bytes: &[u8],
    max: usize,
    out: &mut Vec<u8>,
) -> Result<(), WireError> {
    if bytes.len() > max {
        return Err(WireError::TooLong {
            field,
            len: bytes.len(),
            max,
        });
    }
    let len = (bytes.len() as u64).to_le_bytes();
    out.extend_from_slice(&len[..N]);
    out.extend_from_slice(bytes);
    Ok(())
}

/// A UTF-8 field behind its `N`-byte little-endian length, at most `max` bytes.
fn text<const N: usize>(
    reader: &mut Reader<'_>,
    field: &'static str,
    max: usize,
) -> Result<String, WireError> {
    let mut len = [0; 8];
    len[..N].copy_from_slice(&reader.array::<N>(field)?);
    let len = usize::try_from(u64::from_le_bytes(len)).unwrap_or(usize::MAX);
    if len > max {
        return Err(WireError::TooLong { field, len, max });
    }
    let bytes = reader.bytes(field, len)?;
    String::from_utf8(bytes.to_vec()).map_err(|_| WireError::NotText { field })
}

/// Refuses bytes after the last field.
fn end(reader: &Reader<'_>) -> Result<(), WireError> {
    match reader.left() {
        0 => Ok(()),
        count => Err(WireError::TrailingBytes { count }),
    }
}

/// Reads one frame: a u32 little-endian length (1..=[`MAX_FRAME`]) and that many bytes,
/// each read within [`IO_TIMEOUT`].
pub(super) async fn read_frame<S: AsyncRead + Unpin>(stream: &mut S) -> Result<Vec<u8>, PairError> {
    let mut len = [0; 4];
    read_exact(stream, &mut len).await?;
    let len = u32::from_le_bytes(len);
    if len == 0 || len > MAX_FRAME {
        return Err(PairError::FrameSize { len });
    }
    let mut frame = vec![0; len as usize];
    read_exact(stream, &mut frame).await?;
    Ok(frame)
}

async fn read_exact<S: AsyncRead + Unpin>(stream: &mut S, buf: &mut [u8]) -> Result<(), PairError> {
    match timeout(IO_TIMEOUT, stream.read_exact(buf)).await {
        Err(_) => Err(PairError::Timeout { op: "read" }),
        Ok(Err(source)) if source.kind() == std::io::ErrorKind::UnexpectedEof => {
            Err(PairError::Closed)
        }
        Ok(Err(source)) => Err(PairError::Io { op: "read", source }),
        Ok(Ok(_)) => Ok(()),
    }
}

/// Writes one frame within [`IO_TIMEOUT`].
pub(super) async fn write_frame<S: AsyncWrite + Unpin>(
    stream: &mut S,
    payload: &[u8],
) -> Result<(), PairError> {
    let len = u32::try_from(payload.len())
        .ok()
        .filter(|len| (1..=MAX_FRAME).contains(len))
        .ok_or(PairError::FrameSize {
            len: u32::try_from(payload.len()).unwrap_or(u32::MAX),
        })?;
    let frame = [&len.to_le_bytes()[..], payload].concat();
    let write = async {
        stream.write_all(&frame).await?;
        stream.flush().await
    };
    match timeout(IO_TIMEOUT, write).await {
        Err(_) => Err(PairError::Timeout { op: "write" }),
        Ok(Err(source)) => Err(PairError::Io {
            op: "write",
            source,
        }),
        Ok(Ok(())) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> MacKey {
        MacKey::try_from("11".repeat(32)).unwrap()
    }

    #[test]
    fn request_round_trips_and_its_mac_binds_every_byte() {
        let token = TokenId([7; 32]);
        let bytes = Request::encode(&key(), &token, &[9; 32], "beta", "CSR").unwrap();
        let request = Request::decode(&bytes).unwrap();
        assert_eq!((request.token, request.nonce), (token, [9; 32]));
        assert_eq!(
            (request.name.as_str(), request.csr_pem.as_str()),
            ("beta", "CSR")
        );
        assert!(request.verify(&key()));
        let other: MacKey = MacKey::try_from("22".repeat(32)).unwrap();
        assert!(!request.verify(&other));
        for at in 0..bytes.len() {
            let mut flipped = bytes.clone();
            flipped[at] ^= 0x01;
            if let Ok(request) = Request::decode(&flipped) {
                assert!(
                    !request.verify(&key()),
                    "flipping byte {at} kept the MAC valid"
                );
            }
        }
    }

    #[test]
    fn every_truncation_and_extension_is_an_error() {
        let bytes = Request::encode(&key(), &TokenId([7; 32]), &[9; 32], "beta", "CSR").unwrap();
        for len in 0..bytes.len() {
            assert!(Request::decode(&bytes[..len]).is_err(), "length {len}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(
            Request::decode(&longer).unwrap_err(),
            WireError::TrailingBytes { count: 1 }
        );
        let mut version = bytes;
        version[0] = 9;
        assert_eq!(
            Request::decode(&version).unwrap_err(),
            WireError::Version { found: 9 }
        );

        let admission = Admission {
            fabric: FabricId([1; 16]),
            cert_pem: "C".into(),
            ca_cert_pem: "CA".into(),
            registry_json: "[]".into(),
        };
        let reply = encode_admission(&key(), &[9; 32], &admission).unwrap();
        let Reply::Admitted {
            admission: read,
            signed,
            mac,
        } = Reply::decode(&reply).unwrap()
        else {
            panic!("not an admission");
        };
        assert_eq!(read, admission);
        assert!(verify_admission(&key(), &[9; 32], &signed, &mac));
        assert!(!verify_admission(&key(), &[8; 32], &signed, &mac));
        for len in 0..reply.len() {
            assert!(Reply::decode(&reply[..len]).is_err(), "length {len}");
        }
    }

    #[test]
    fn oversized_fields_are_refused_both_ways() {
        let long_name = "a".repeat(MAX_NAME_LEN + 1);
        assert!(matches!(
            Request::encode(&key(), &TokenId([0; 32]), &[0; 32], &long_name, "CSR"),
            Err(WireError::TooLong { .. })
        ));
        let mut bytes = vec![VERSION];
        bytes.extend_from_slice(&[0; 64]);
        bytes.push(200);
        assert!(matches!(
            Request::decode(&bytes),
            Err(WireError::TooLong { len: 200, .. })
        ));
        let refusal = encode_refusal(Status::NameTaken, &"é".repeat(40_000));
        let Reply::Refused { status, message } = Reply::decode(&refusal).unwrap() else {
            panic!("not a refusal");
        };
        assert_eq!(status, Status::NameTaken);
        assert_eq!(message.len(), 65_534);
        let Reply::Refused { message, .. } =
            Reply::decode(&encode_refusal(Status::Internal, "a\x1b[2Jb\n")).unwrap()
        else {
            panic!("not a refusal");
        };
        assert_eq!(message, "a\u{fffd}[2Jb\u{fffd}");
    }

    #[test]
    fn random_and_mutated_input_is_refused_without_panicking() {
        let request = Request::encode(&key(), &TokenId([7; 32]), &[9; 32], "beta", "CSR").unwrap();
        let admission = Admission {
            fabric: FabricId([1; 16]),
            cert_pem: "C".into(),
            ca_cert_pem: "CA".into(),
            registry_json: "[]".into(),
        };
        let reply = encode_admission(&key(), &[9; 32], &admission).unwrap();
        // xorshift64: deterministic, so a failure reproduces.
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for round in 0..20_000 {
            let original = if round % 2 == 0 { &request } else { &reply };
            let mut bytes = original.clone();
            match next() % 3 {
                0 => bytes = (0..next() % 200).map(|_| next() as u8).collect(),
                1 => {
                    for _ in 0..1 + next() % 4 {
                        let at = (next() as usize) % bytes.len();
                        bytes[at] = next() as u8;
                    }
                }
                _ => bytes.truncate((next() as usize) % bytes.len()),
            }
            let changed = bytes != *original;
            if let Ok(request) = Request::decode(&bytes) {
                assert!(!(changed && request.verify(&key())), "round {round}");
            }
            if let Ok(Reply::Admitted { signed, mac, .. }) = Reply::decode(&bytes) {
                let verified = verify_admission(&key(), &[9; 32], &signed, &mac);
                assert!(!(changed && verified), "round {round}");
            }
        }
    }
}
