//! The payload of the ahead-of-time Wasm runtime, `wasm-aot` (PROTOCOL.md
//! §4.1, §13.8): a header, then the module compiled by the monitor
//! (wasmtime's artifact, an ELF) starting on a page of its own, so that
//! the runtime runs it in place. The monitor maps this payload block read
//! and execute (never write) for `wasm-aot` alone.
//!
//! Layout, from the payload's first byte (the block's byte 8, after its
//! length word):
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | [`MAGIC`] |
//! | 8 | 8 | the artifact's length, little-endian |
//! | 16 | 32 | the SHA-256 of the module it was compiled from |
//! | 48 | 4040 | zeros |
//! | 4088 | length | the artifact (the block's byte [`ARTIFACT_OFFSET`]) |

/// The header's first eight bytes.
pub const MAGIC: [u8; 8] = *b"WEFTAOT1";
/// Where the artifact starts, from the start of the payload block (its
/// length word included): a page boundary.
pub const ARTIFACT_OFFSET: usize = 4096;
/// The header's length, from the payload's first byte.
pub const HEADER: usize = ARTIFACT_OFFSET - 8;

/// A payload's header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub artifact_len: u64,
    pub module_sha256: [u8; 32],
}

impl Header {
    /// The payload's first [`HEADER`] bytes.
    pub fn encode(&self) -> [u8; HEADER] {
        let mut b = [0u8; HEADER];
        b[..8].copy_from_slice(&MAGIC);
        b[8..16].copy_from_slice(&self.artifact_len.to_le_bytes());
        b[16..48].copy_from_slice(&self.module_sha256);
        b
    }

    /// The header of `payload` (the bytes after the block's length word),
    /// if it starts with [`MAGIC`] and holds as many artifact bytes as it
    /// says.
    pub fn decode(payload: &[u8]) -> Option<Header> {
        let head = payload.get(..48)?;
        if head[..8] != MAGIC {
            return None;
        }
        let artifact_len = u64::from_le_bytes(head[8..16].try_into().ok()?);
        let mut module_sha256 = [0u8; 32];
        module_sha256.copy_from_slice(&head[16..48]);
        let end = (HEADER as u64).checked_add(artifact_len)?;
        (end <= payload.len() as u64).then_some(Header {
            artifact_len,
            module_sha256,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_header_round_trips_and_a_short_payload_is_refused() {
        let h = Header {
            artifact_len: 3,
            module_sha256: [7; 32],
        };
        let mut payload = h.encode().to_vec();
        payload.extend_from_slice(b"elf");
        assert_eq!(Header::decode(&payload), Some(h));
        assert_eq!(Header::decode(&payload[..payload.len() - 1]), None);
        payload[0] = b'X';
        assert_eq!(Header::decode(&payload), None);
        assert_eq!(Header::decode(b"WEFTAOT1"), None);
    }
}
