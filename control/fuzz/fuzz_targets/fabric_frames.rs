//! Fuzzes `fabric_frames` (the driver in `control/tests/support/decoders.rs`,
//! which `make test` also runs over seeds, mutations and random bytes).
//!
//! Run: `make fuzz`, or `cd control/fuzz && cargo +nightly fuzz run fabric_frames`
#![no_main]

#[path = "../../tests/support/decoders.rs"]
mod decoders;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    decoders::fabric_frames(data);
});
