//! A peer that rewrites the ring header arbitrarily between operations
//! (PROTOCOL.md §7.7); the driver is shared with `tests/hostile.rs`.
//!
//! Run: `cd data-pipe/fuzz && cargo +nightly fuzz run hostile_header`
#![no_main]

#[path = "../../tests/support/hostile.rs"]
mod hostile;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Some((&shift, ops)) = data.split_first() {
        hostile::run(shift, &hostile::decode(ops));
    }
});
