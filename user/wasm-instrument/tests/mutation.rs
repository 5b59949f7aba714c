//! Damaged modules: the instrumentation never panics on bytes a spawner
//! hands it (a module is the other side's input, STYLE.md habit 13), and
//! whenever the damaged input is still a valid module, so is its
//! instrumented form. Seeds are the examples `make guest` builds and small
//! WAT modules; mutations are deterministic (the same inputs every run).

mod common;

use common::{assert_valid, example, wasm};
use weft_wasm_instrument::instrument;

/// Mutants per seed.
const MUTANTS: usize = 2_000;

/// xorshift64*: deterministic pseudo-random numbers.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Instruments `bytes`; checks the output of a valid input validates.
/// True if the instrumentation accepted it.
fn check(bytes: &[u8]) -> bool {
    match instrument(bytes) {
        Ok(out) => {
            if wasmparser::Validator::new().validate_all(bytes).is_ok() {
                assert_valid(&out.module);
            }
            true
        }
        Err(_) => false,
    }
}

#[test]
fn damaged_modules_never_panic_and_valid_ones_stay_valid() {
    let seeds = [
        example("hello"),
        example("echo-server"),
        wasm(
            r#"(module
                 (memory 1) (global $g (mut i32) (i32.const 0))
                 (func $f (param i32) (result i32)
                   (if (result i32) (local.get 0)
                     (then (call $f (i32.sub (local.get 0) (i32.const 1))))
                     (else (global.get $g))))
                 (func (export "_start") (drop (call $f (i32.const 3)))))"#,
        ),
    ];
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for seed in &seeds {
        assert!(check(seed), "a seed is refused");
        let mut accepted = 0;
        for i in 0..MUTANTS {
            let mut m = seed.clone();
            match i % 4 {
                // A cut anywhere.
                0 => m.truncate(rng.below(seed.len())),
                // A few bytes overwritten, often in the first sections.
                1 | 2 => {
                    for _ in 0..=rng.below(4) {
                        let at = if rng.below(2) == 0 {
                            rng.below(seed.len().min(512))
                        } else {
                            rng.below(seed.len())
                        };
                        m[at] = rng.next() as u8;
                    }
                }
                // A byte inserted (shifts every later offset and length).
                _ => m.insert(rng.below(seed.len()), rng.next() as u8),
            }
            if check(&m) {
                accepted += 1;
            }
        }
        // Not vacuous: some mutants were instrumented (and so checked).
        assert!(accepted > 0, "no mutant was accepted");
    }
}
