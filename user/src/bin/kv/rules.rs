//! The key-value service's rules, shared by the native `kv` and the Wasm
//! `kv-app` (which includes this file by path): `set KEY VALUE`, `get KEY`
//! and `del KEY` over a map of byte strings.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

/// The answer to one request: `Ok` bytes, or `Err` a refusal's reason.
pub fn apply<'a>(
    store: &'a mut BTreeMap<Vec<u8>, Vec<u8>>,
    data: &[u8],
) -> Result<&'a [u8], &'static str> {
    let mut words = data.splitn(3, |b| *b == b' ');
    match (words.next(), words.next(), words.next()) {
        (Some(b"set"), Some(key), Some(value)) => {
            store.insert(key.to_vec(), value.to_vec());
            Ok(b"ok")
        }
        (Some(b"get"), Some(key), None) => store.get(key).map(Vec::as_slice).ok_or("no such key"),
        (Some(b"del"), Some(key), None) => {
            store.remove(key).map(|_| &b"ok"[..]).ok_or("no such key")
        }
        _ => Err("bad request"),
    }
}
