//! Fuzzes `names` (the driver in `monitor/fabric/tests/support/decoders.rs`,
//! which `make test` also runs over seeds, mutations and random bytes).
//!
//! Run: `make fuzz`, or `cd monitor/fabric/fuzz && cargo +nightly fuzz run names`
#![no_main]

#[path = "../../tests/support/decoders.rs"]
mod decoders;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    decoders::names(data);
});
