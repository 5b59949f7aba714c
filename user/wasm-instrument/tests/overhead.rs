//! Rough costs, printed rather than asserted (timings vary by machine):
//! `cargo test --release -p weft-wasm-instrument --test overhead -- --ignored --nocapture`.

mod common;

use std::time::{Duration, Instant};

use common::{Run, instrumented, wasm};
use weft_wasm_instrument::instrument;

/// The best of `rounds` timings of `f`.
fn best(rounds: u32, mut f: impl FnMut()) -> Duration {
    (0..rounds)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .min()
        .unwrap()
}

#[test]
#[ignore = "a measurement, not a check"]
fn time_to_instrument_the_examples() {
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../target/wasm/wasm32-wasip1/release"
    );
    for name in ["hello", "wc"] {
        let Ok(module) = std::fs::read(format!("{dir}/{name}.wasm")) else {
            eprintln!("{name}.wasm not built (`make guest`)");
            continue;
        };
        let out = instrument(&module).unwrap();
        let took = best(50, || {
            instrument(&module).unwrap();
        });
        // For scale: wasmi compiling (validating, translating) the module.
        let engine = wasmi::Engine::default();
        let compile = best(20, || {
            wasmi::Module::new(&engine, &module).unwrap();
        });
        eprintln!(
            "{name}.wasm: {} -> {} bytes (+{:.1}%), instrumented in {took:?} ({:.0} MiB/s); \
             wasmi compiles it in {compile:?}",
            module.len(),
            out.module.len(),
            100.0 * (out.module.len() - module.len()) as f64 / module.len() as f64,
            module.len() as f64 / took.as_secs_f64() / (1 << 20) as f64,
        );
    }
}

#[test]
#[ignore = "a measurement, not a check"]
fn interpretation_slowdown() {
    let wat = r#"
        (module
          (func $fib (export "fib") (param i64) (result i64)
            (if (result i64) (i64.lt_u (local.get 0) (i64.const 2))
              (then (local.get 0))
              (else (i64.add
                (call $fib (i64.sub (local.get 0) (i64.const 1)))
                (call $fib (i64.sub (local.get 0) (i64.const 2)))))))
          (func $add (param i32 i32) (result i32) (i32.add (local.get 0) (local.get 1)))
          (func (export "calls") (param $n i32) (result i32)
            (local $sum i32)
            (loop $again
              (local.set $sum (call $add (local.get $sum) (local.get $n)))
              (br_if $again (local.tee $n (i32.sub (local.get $n) (i32.const 1)))))
            (local.get $sum))
          (func (export "loop") (param $n i32) (result i32)
            (local $sum i32)
            (loop $again
              (local.set $sum (i32.add (local.get $sum) (local.get $n)))
              (br_if $again (local.tee $n (i32.sub (local.get $n) (i32.const 1)))))
            (local.get $sum)))
    "#;
    let original = wasm(wat);
    let out = instrumented(&original);
    // One call's time, best of several rounds on fresh instances: the same
    // module's timing varies by tens of percent from one instance to the
    // next (where the interpreter's code lands), so one instance says
    // little.
    let time = |module: &[u8], export: &str, arg: i64| {
        let arg = match export {
            "fib" => wasmi::Val::I64(arg),
            _ => wasmi::Val::I32(arg as i32),
        };
        let mut result = [arg.clone()];
        (0..7)
            .map(|_| {
                let mut run = Run::new(module, ());
                let instance = run.instantiate().unwrap();
                let func = instance.get_func(&run.store, export).unwrap();
                best(3, || {
                    func.call(&mut run.store, std::slice::from_ref(&arg), &mut result)
                        .unwrap()
                })
            })
            .min()
            .unwrap()
    };
    for (export, arg, what) in [
        ("fib", 30, "recursive fib(30), 2.7M calls"),
        (
            "calls",
            20_000_000,
            "20M calls of a 1-instruction function in a loop",
        ),
        ("loop", 20_000_000, "a 20M-iteration loop without calls"),
    ] {
        let before = time(&original, export, arg);
        let after = time(&out.module, export, arg);
        eprintln!(
            "{what}: {before:?} -> {after:?} ({:+.1}%)",
            100.0 * (after.as_secs_f64() / before.as_secs_f64() - 1.0)
        );
    }
}
