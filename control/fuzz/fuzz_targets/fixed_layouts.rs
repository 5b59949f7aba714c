//! Fuzzes `fixed_layouts` (the driver in `control/tests/support/decoders.rs`,
//! which `make test` also runs over seeds, mutations and random bytes).
//!
//! Run: `make fuzz`, or `cd control/fuzz && cargo +nightly fuzz run fixed_layouts`
#![no_main]

#[path = "../../tests/support/decoders.rs"]
mod decoders;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    decoders::fixed_layouts(data);
});
