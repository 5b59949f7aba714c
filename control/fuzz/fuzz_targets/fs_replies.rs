//! Fuzzes `fs_replies` (the driver in `control/tests/support/decoders.rs`,
//! which `make test` also runs over seeds, mutations and random bytes).
//!
//! Run: `make fuzz`, or `cd control/fuzz && cargo +nightly fuzz run fs_replies`
#![no_main]

#[path = "../../tests/support/decoders.rs"]
mod decoders;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    decoders::fs_replies(data);
});
