//! The key-value service's rules, shared by the native `kv` and the Wasm
//! `kv-app` (which includes this file by path): `set KEY VALUE`, `get KEY`,
//! `del KEY` and `count KEY` over a map of byte strings.
//!
//! `count KEY` adds one to the decimal number KEY holds (none: 0) and
//! answers the new number, so a client that counts one key and gets 1, 2,
//! 3, ... knows each of its requests was handled once, in order, by one
//! store; a value that is not such a number is refused.

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
        (Some(b"count"), Some(key), None) => {
            let value = store.entry(key.to_vec()).or_insert_with(|| b"0".to_vec());
            let n = core::str::from_utf8(value)
                .ok()
                .and_then(|t| t.parse::<u64>().ok())
                .and_then(|n| n.checked_add(1))
                .ok_or("not a count")?;
            *value = alloc::format!("{n}").into_bytes();
            Ok(value)
        }
        _ => Err("bad request"),
    }
}
