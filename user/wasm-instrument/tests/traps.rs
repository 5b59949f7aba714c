//! After a trap, the current-function global names the function the trap
//! happened in, whatever the outer functions called and returned from
//! before.

mod common;

use common::{Run, instrumented, trap_in, wasm};
use wasmi::{Caller, TrapCode};
use weft_wasm_instrument::{CurrentFunction, NOT_STARTED};

/// `$outer` calls helpers (directly and through a table) that return, then
/// `$middle`, which calls helpers again and then `$inner`, which traps
/// with `TRAP` after its own call to a helper returned.
fn nested(trap: &str) -> String {
    format!(
        r#"
        (module
          (type $unary (func (param i32) (result i32)))
          (memory 1)
          (table funcref (elem $double $square))
          (func $double (type $unary) (i32.add (local.get 0) (local.get 0)))
          (func $square (type $unary) (i32.mul (local.get 0) (local.get 0)))
          (func $inner (param i32) (result i32)
            (drop (call $double (local.get 0)))
            {trap})
          (func $middle (param i32) (result i32)
            (drop (call_indirect (type $unary) (local.get 0) (i32.const 1)))
            (drop (call $square (local.get 0)))
            (call $inner (local.get 0)))
          (func $outer (export "run")
            (drop (call $double (i32.const 3)))
            (drop (call_indirect (type $unary) (i32.const 4) (i32.const 0)))
            (drop (call $middle (i32.const 0)))
            (drop (call $square (i32.const 5)))))
        "#
    )
}

#[test]
fn unreachable_names_the_inner_function() {
    let (trap, function) = trap_in(&nested("(unreachable)"), "run");
    assert_eq!(trap, TrapCode::UnreachableCodeReached);
    assert_eq!(function, "inner");
}

#[test]
fn out_of_bounds_load_names_the_inner_function() {
    let load = "(i32.load (i32.const 0x7fff_fff0))";
    let (trap, function) = trap_in(&nested(load), "run");
    assert_eq!(trap, TrapCode::MemoryOutOfBounds);
    assert_eq!(function, "inner");
}

#[test]
fn divide_by_zero_names_the_inner_function() {
    // The divisor is the parameter (0), so it is not folded away.
    let divide = "(i32.div_s (i32.const 7) (local.get 0))";
    let (trap, function) = trap_in(&nested(divide), "run");
    assert_eq!(trap, TrapCode::IntegerDivisionByZero);
    assert_eq!(function, "inner");
}

#[test]
fn trap_in_a_function_reached_by_call_indirect() {
    let wat = r#"
        (module
          (type $void (func))
          (table funcref (elem $fine $broken))
          (func $fine)
          (func $broken (unreachable))
          (func $dispatch (param i32) (call_indirect (type $void) (local.get 0)))
          (func (export "run")
            (call $dispatch (i32.const 0))
            (call $dispatch (i32.const 1))))
    "#;
    assert_eq!(trap_in(wat, "run").1, "broken");
}

#[test]
fn bad_call_indirect_names_the_caller() {
    // The call itself traps (no function at that table index): the callee
    // never started, so the caller is named.
    let wat = r#"
        (module
          (type $void (func))
          (table 2 funcref)
          (func $fine)
          (func $dispatch (param i32) (call $fine) (call_indirect (type $void) (local.get 0)))
          (func (export "run") (call $dispatch (i32.const 1))))
    "#;
    let (trap, function) = trap_in(wat, "run");
    assert_eq!(trap, TrapCode::IndirectCallToNull);
    assert_eq!(function, "dispatch");
}

#[test]
fn stack_exhaustion_names_the_recursing_function() {
    let wat = r#"
        (module
          (func $leaf (result i32) (i32.const 1))
          (func $recurse (param i32) (result i32)
            (drop (call $leaf))
            (i32.add (call $recurse (i32.add (local.get 0) (i32.const 1))) (i32.const 1)))
          (func (export "run") (drop (call $recurse (i32.const 0)))))
    "#;
    let (trap, function) = trap_in(wat, "run");
    assert_eq!(trap, TrapCode::StackOverflow);
    assert_eq!(function, "recurse");
}

#[test]
fn trap_after_a_tail_call_names_the_callee() {
    let wat = r#"
        (module
          (func $target (param i32) (result i32) (i32.div_u (i32.const 1) (local.get 0)))
          (func $jump (param i32) (result i32) (return_call $target (local.get 0)))
          (func (export "run") (drop (call $jump (i32.const 0)))))
    "#;
    assert_eq!(trap_in(wat, "run").1, "target");
}

#[test]
fn trap_right_after_a_call_returns_names_the_caller() {
    // A call directly followed by the trapping instruction: the value must
    // have been set back before it.
    let wat = r#"
        (module
          (func $helper (result i32) (i32.const 0))
          (func $caller (export "run") (drop (i32.div_u (i32.const 1) (call $helper)))))
    "#;
    assert_eq!(trap_in(wat, "run").1, "caller");
}

#[test]
fn names_fall_back_to_exports_then_indices() {
    let wat = r#"
        (module
          (func (export "exported_name") (unreachable))
          (func (export "run") (call 0)))
    "#;
    // No name section entry (WAT gives none to unnamed functions): the
    // export name.
    assert_eq!(trap_in(wat, "run").1, "exported_name");

    let wat = r#"
        (module
          (func (unreachable))
          (func (export "run") (call 0)))
    "#;
    assert_eq!(trap_in(wat, "run").1, "function[0]");
}

#[test]
fn imported_functions_and_globals_offset_the_indices() {
    // Two imported functions (indices 0, 1) and two imported globals: the
    // defined functions start at 2 and the added global is the fourth.
    let wat = r#"
        (module
          (import "host" "log" (func $log (param i32)))
          (import "host" "base" (global $base i32))
          (import "host" "call_back" (func $call_back))
          (import "host" "counter" (global $counter (mut i32)))
          (global $local (mut i32) (global.get $base))
          (export "callback" (func $callback))
          (func $callback
            (global.set $counter (i32.add (global.get $counter) (i32.const 1))))
          (func $inner (param i32)
            (call $log (local.get 0))
            (global.set $local (i32.div_s (global.get $base) (local.get 0))))
          (func $outer (export "run")
            (call $call_back)
            (call $log (global.get $local))
            (call $inner (i32.const 0))))
    "#;
    let out = instrumented(&wasm(wat));
    assert_eq!(out.names.len(), 5);
    assert_eq!(out.names.name(0), Some("log"));
    assert_eq!(out.names.name(3), Some("inner"));

    let mut run = Run::new(&out.module, Vec::new());
    run.linker
        .func_wrap("host", "log", |mut caller: Caller<'_, Vec<i32>>, v: i32| {
            caller.data_mut().push(v);
        })
        .unwrap();
    // Calls back into the module: the global must be set back to the
    // caller when the host function returns.
    run.linker
        .func_wrap("host", "call_back", |mut caller: Caller<'_, Vec<i32>>| {
            let callback = caller
                .get_export("callback")
                .and_then(|e| e.into_func())
                .expect("callback export");
            callback.typed::<(), ()>(&caller)?.call(&mut caller, ())
        })
        .unwrap();
    let base = wasmi::Global::new(
        &mut run.store,
        wasmi::Val::I32(42),
        wasmi::Mutability::Const,
    );
    let counter = wasmi::Global::new(&mut run.store, wasmi::Val::I32(0), wasmi::Mutability::Var);
    run.linker.define("host", "base", base).unwrap();
    run.linker.define("host", "counter", counter).unwrap();

    let instance = run.instantiate().unwrap();
    assert_eq!(run.current(&instance), NOT_STARTED);
    assert_eq!(out.names.describe(NOT_STARTED), CurrentFunction::NotStarted);
    let error = instance
        .get_typed_func::<(), ()>(&run.store, "run")
        .unwrap()
        .call(&mut run.store, ())
        .expect_err("traps");
    assert_eq!(error.as_trap_code(), Some(TrapCode::IntegerDivisionByZero));
    let current = run.current(&instance);
    assert_eq!(current, 3);
    assert_eq!(out.names.describe(current).to_string(), "inner");
    // The module's own globals still work: the callback ran once, `$local`
    // was read from `$base` at instantiation, and the log saw 42 then 0.
    assert_eq!(counter.get(&run.store).i32(), Some(1));
    assert_eq!(run.store.data(), &[42, 0]);
}

#[test]
fn host_function_calling_back_into_the_module() {
    // `$outer` calls the host, the host calls `$callback`, and back in
    // `$outer` the trap must name `$outer`, not the callback.
    let wat = r#"
        (module
          (import "host" "call_back" (func $call_back))
          (func $callback (export "callback"))
          (func $outer (export "run")
            (call $call_back)
            (unreachable)))
    "#;
    let out = instrumented(&wasm(wat));
    let mut run = Run::new(&out.module, ());
    run.linker
        .func_wrap("host", "call_back", |mut caller: Caller<'_, ()>| {
            let callback = caller
                .get_export("callback")
                .and_then(|e| e.into_func())
                .expect("callback export");
            callback.typed::<(), ()>(&caller)?.call(&mut caller, ())
        })
        .unwrap();
    let instance = run.instantiate().unwrap();
    let run_func = instance
        .get_typed_func::<(), ()>(&run.store, "run")
        .unwrap();
    assert!(run_func.call(&mut run.store, ()).is_err());
    let current = run.current(&instance);
    assert_eq!(out.names.describe(current).to_string(), "outer");
}

#[test]
fn trap_in_a_host_function_names_its_wasm_caller() {
    let wat = r#"
        (module
          (import "host" "fail" (func $fail))
          (func $fine)
          (func $calls_host (call $fine) (call $fail))
          (func (export "run") (call $calls_host)))
    "#;
    let out = instrumented(&wasm(wat));
    let mut run = Run::new(&out.module, ());
    run.linker
        .func_wrap("host", "fail", || -> Result<(), wasmi::Error> {
            Err(wasmi::Error::new("host failure"))
        })
        .unwrap();
    let instance = run.instantiate().unwrap();
    let run_func = instance
        .get_typed_func::<(), ()>(&run.store, "run")
        .unwrap();
    assert!(run_func.call(&mut run.store, ()).is_err());
    let current = run.current(&instance);
    assert_eq!(out.names.describe(current).to_string(), "calls_host");
}

#[test]
fn trap_in_the_start_function() {
    let wat = r#"
        (module
          (func $helper)
          (func $init (call $helper) (unreachable))
          (start $init))
    "#;
    let out = instrumented(&wasm(wat));
    let mut run = Run::new(&out.module, ());
    // The instance is gone with the failed start; the global cannot be
    // read, but instantiation fails with the trap rather than anything
    // the rewrite caused.
    let error = run.instantiate().expect_err("the start function traps");
    assert_eq!(error.as_trap_code(), Some(TrapCode::UnreachableCodeReached));
}
