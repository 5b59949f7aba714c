//! The shape of the output: sections added in order, everything but the
//! global, export and code sections unchanged, validity preserved, and bad
//! input refused with an error rather than a panic.

mod common;

use common::{Run, assert_valid, instrumented, wasm};
use wasmparser::{Parser, Payload};
use weft_wasm_instrument::{
    CURRENT_FUNCTION, Error, RESERVED_PREFIX, State, global_export, instrument,
};

/// A module's sections as (id, content), custom sections' content
/// including their name.
fn sections(module: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    for payload in Parser::new(0).parse_all(module) {
        let payload = payload.expect("parses");
        if let Payload::CodeSectionEntry(_) = payload {
            continue;
        }
        if let Some((id, range)) = payload.as_section() {
            out.push((id, module[range].to_vec()));
        }
    }
    out
}

fn ids(module: &[u8]) -> Vec<u8> {
    sections(module).into_iter().map(|(id, _)| id).collect()
}

#[test]
fn global_and_export_sections_are_added_in_order() {
    // Memory, data count (needed by `memory.init`), start, code and data,
    // with custom sections around them; no global or export section.
    let wat = r#"
        (module
          (@custom "first" (before first) "a")
          (memory 1)
          (@custom "after-memory" (after memory) "b")
          (func $init
            (memory.init $seg (i32.const 0) (i32.const 0) (i32.const 2)))
          (start $init)
          (@custom "before-code" (before code) "c")
          (data $seg "hi")
          (@custom "last" (after last) "d"))
    "#;
    let input = wasm(wat);
    assert!(!ids(&input).contains(&6) && !ids(&input).contains(&7));
    let out = instrumented(&input);
    // type, function, memory, custom, global, export, start, data count,
    // custom, code, data, custom, and the name section `wat` appends.
    assert_eq!(
        ids(&out.module),
        [0, 1, 3, 5, 0, 6, 7, 8, 12, 0, 10, 11, 0, 0]
    );

    // The start function ran, so the global names it.
    let mut run = Run::new(&out.module, ());
    let instance = run.instantiate().unwrap();
    assert_eq!(
        out.names.describe(run.current(&instance)).to_string(),
        "init"
    );
}

#[test]
fn global_section_goes_after_the_tag_section() {
    // The tag section (13) comes between memory (5) and global (6).
    let out = instrumented(&wasm("(module (memory 1) (tag $e) (func $f))"));
    assert_eq!(ids(&out.module), [1, 3, 5, 13, 6, 7, 10, 0]);
}

#[test]
fn module_with_only_types_and_functions() {
    let out = instrumented(&wasm("(module (func $f))"));
    assert_eq!(ids(&out.module), [1, 3, 6, 7, 10, 0]);
}

#[test]
fn empty_module_gets_the_global_and_export() {
    let out = instrumented(&wasm("(module)"));
    assert_eq!(ids(&out.module), [6, 7]);
    assert!(out.names.is_empty());
    let mut run = Run::new(&out.module, ());
    let instance = run.instantiate().unwrap();
    assert_eq!(run.current(&instance), -1);
}

#[test]
fn existing_global_and_export_sections_are_extended() {
    let wat = r#"
        (module
          (import "env" "g" (global i64))
          (global $a (mut i32) (i32.const 7))
          (global $b i64 (global.get 0))
          (func $f (export "f") (result i32) (global.get $a))
          (export "a" (global $a)))
    "#;
    let input = wasm(wat);
    let out = instrumented(&input);
    let before = sections(&input);
    let after = sections(&out.module);
    assert_eq!(ids(&input), ids(&out.module));
    for ((id, old), (_, new)) in before.iter().zip(&after) {
        match id {
            // The old entries, byte for byte after the count, then the new
            // ones: one global; its export and that of the mutable `$a`.
            6 | 7 => {
                let added = if *id == 6 { 1 } else { 2 };
                assert_eq!(new[0], old[0] + added, "count of section {id}");
                assert_eq!(new[1..old.len()], old[1..], "entries of section {id}");
            }
            10 => assert_ne!(new, old),
            _ => assert_eq!(new, old, "section {id} unchanged"),
        }
    }
    // The added global is the fourth (index 3), exported next to last;
    // `$a` (index 1) last.
    let export = &after.iter().find(|(id, _)| *id == 7).unwrap().1;
    let mut tail = Vec::new();
    for (name, index) in [(CURRENT_FUNCTION.to_string(), 3), (global_export(1), 1)] {
        tail.push(name.len() as u8);
        tail.extend_from_slice(name.as_bytes());
        tail.extend_from_slice(&[0x03, index]);
    }
    assert!(export.ends_with(&tail));
    assert_eq!(
        out.state,
        State {
            globals: vec![1],
            changes_tables: false,
            start: false,
            ..State::default()
        }
    );
}

#[test]
fn mutable_globals_are_reachable_and_table_changes_are_seen() {
    let wat = r#"
        (module
          (import "env" "g" (global (mut i32)))
          (global $hidden (mut i64) (i64.const 5))
          (global $fixed f32 (f32.const 1))
          (global $shown (export "shown") (mut f64) (f64.const 2))
          (func (export "bump") (global.set $hidden (i64.add (global.get $hidden) (i64.const 1)))))
    "#;
    let out = instrumented(&wasm(wat));
    assert_eq!(
        out.state,
        State {
            globals: vec![1, 3],
            changes_tables: false,
            start: false,
            ..State::default()
        }
    );
    let engine = wasmi::Engine::default();
    let module = wasmi::Module::new(&engine, &out.module).unwrap();
    let mut store = wasmi::Store::new(&engine, ());
    let mut linker = wasmi::Linker::new(&engine);
    let g = wasmi::Global::new(&mut store, wasmi::Val::I32(0), wasmi::Mutability::Var);
    linker.define("env", "g", g).unwrap();
    let instance = linker.instantiate_and_start(&mut store, &module).unwrap();
    let bump = instance.get_typed_func::<(), ()>(&store, "bump").unwrap();
    bump.call(&mut store, ()).unwrap();
    let hidden = instance.get_global(&store, &global_export(1)).unwrap();
    assert_eq!(hidden.get(&store).i64(), Some(6));
    hidden.set(&mut store, wasmi::Val::I64(40)).unwrap();
    bump.call(&mut store, ()).unwrap();
    assert_eq!(hidden.get(&store).i64(), Some(41));
    assert!(instance.get_global(&store, &global_export(2)).is_none());

    for body in [
        "(table.set 0 (i32.const 0) (ref.null func))",
        "(drop (table.grow 0 (ref.null func) (i32.const 1)))",
        "(table.fill 0 (i32.const 0) (ref.null func) (i32.const 1))",
        "(table.copy (i32.const 0) (i32.const 0) (i32.const 1))",
        "(table.init 0 (i32.const 0) (i32.const 0) (i32.const 0))",
        "(elem.drop 0)",
        "(data.drop 0)",
    ] {
        let wat = format!(
            r#"(module (table 1 funcref) (memory 1) (elem func) (data "x")
                 (func {body}))"#
        );
        assert!(instrumented(&wasm(&wat)).state.changes_tables, "{body}");
    }
    let reads = r#"(module (table 1 funcref) (func (drop (table.get 0 (i32.const 0)))))"#;
    assert!(!instrumented(&wasm(reads)).state.changes_tables);
    let started = instrumented(&wasm("(module (func $s) (start $s))"));
    assert!(started.state.start);
}

#[test]
fn only_code_global_and_export_sections_change() {
    // A module with most kinds of section, and names.
    let wat = r#"
        (module $m
          (type $t (func (param i32) (result i32)))
          (import "env" "f" (func $imported (type $t)))
          (table 2 funcref)
          (memory 1)
          (global $g (mut i32) (i32.const 0))
          (export "run" (func $run))
          (elem (i32.const 0) $imported $run)
          (func $run (type $t)
            (call_indirect (type $t) (call $imported (local.get 0)) (i32.const 0)))
          (data (i32.const 16) "data"))
    "#;
    let input = wasm(wat);
    let out = instrumented(&input);
    for ((id, old), (new_id, new)) in sections(&input).iter().zip(sections(&out.module)) {
        assert_eq!(*id, new_id);
        if ![6, 7, 10].contains(id) {
            assert_eq!(old, &new, "section {id} unchanged");
        }
    }
    assert_eq!(out.names.name(0), Some("imported"));
    assert_eq!(out.names.name(1), Some("run"));
}

#[test]
fn already_exported_name_is_refused() {
    for name in [
        CURRENT_FUNCTION.to_string(),
        global_export(0),
        "weft:x".into(),
    ] {
        let wat = format!(r#"(module (global (export "{name}") i32 (i32.const 0)))"#);
        let error = instrument(&wasm(&wat)).unwrap_err();
        assert!(matches!(error, Error::ExportNameTaken), "{error}");
        assert!(error.to_string().contains(RESERVED_PREFIX), "{error}");
    }
}

#[test]
fn global_index_past_the_last_global_is_refused() {
    // Invalid as it stands; after adding a global it would not be, so the
    // rewrite refuses it rather than make it valid.
    let cases = [
        "(module (global i32 (i32.const 0)) (func (drop (global.get 1))))",
        "(module (global (mut i32) (i32.const 0)) (func (global.set 1 (i32.const 0))))",
        "(module (global i32 (i32.const 0)) (global i32 (global.get 2)))",
        "(module (memory 1) (global i32 (i32.const 0)) (data (global.get 1) \"x\"))",
        "(module (table 1 funcref) (elem (global.get 0) func))",
    ];
    for wat in cases {
        let input = wasm(wat);
        assert!(wasmparser::Validator::new().validate_all(&input).is_err());
        let error = instrument(&input).unwrap_err();
        assert!(
            matches!(error, Error::GlobalOutOfRange { .. }),
            "{wat}: {error}"
        );
    }
}

#[test]
fn bad_input_is_an_error_that_says_what_is_wrong() {
    let valid = wasm("(module (func $f (export \"f\") (nop)))");
    let mut wrong_version = valid.clone();
    wrong_version[4] = 2;
    let mut out_of_order = b"\0asm\x01\0\0\0".to_vec();
    out_of_order.extend_from_slice(&[3, 1, 0, 1, 1, 0]); // function, then type
    let mut unknown_section = b"\0asm\x01\0\0\0".to_vec();
    unknown_section.extend_from_slice(&[14, 0]);
    let mut missing_bodies = b"\0asm\x01\0\0\0".to_vec();
    missing_bodies.extend_from_slice(&[1, 4, 1, 0x60, 0, 0, 3, 2, 1, 0]);
    let component = b"\0asm\x0d\0\x01\0".to_vec();

    let cases: [(&str, &[u8], &str); 9] = [
        ("empty", b"", "malformed"),
        ("not Wasm", b"\x7fELF\x02\x01\x01\0", "magic"),
        ("truncated header", b"\0asm\x01\0", "malformed"),
        ("truncated body", &valid[..valid.len() - 3], "malformed"),
        ("version 2", &wrong_version, "version"),
        ("component", &component, "component"),
        ("out of order", &out_of_order, "out of order"),
        ("unknown section", &unknown_section, "unknown section"),
        ("missing bodies", &missing_bodies, "bodies"),
    ];
    for (what, input, says) in cases {
        let error = instrument(input).expect_err(what);
        let text = error.to_string();
        assert!(text.contains(says), "{what}: {text:?} should say {says:?}");
    }
}

#[test]
fn every_truncation_is_refused_or_a_valid_shorter_module() {
    let input = wasm(
        r#"(module (memory 1) (global (mut i32) (i32.const 1))
             (func $a (export "a") (param i32) (result i32)
               (if (result i32) (local.get 0)
                 (then (call $a (i32.sub (local.get 0) (i32.const 1))))
                 (else (global.get 0))))
             (data (i32.const 0) "abc"))"#,
    );
    for len in 0..input.len() {
        let prefix = &input[..len];
        // A cut at a section boundary is a complete module (maybe with
        // functions but no bodies, which is refused).
        if let Ok(out) = instrument(prefix) {
            assert_valid(&out.module);
        }
    }
}

/// Every one-byte change to a module: no panic, and where the rewrite
/// accepts the changed module, the output is valid exactly when the input
/// is.
#[test]
fn single_byte_changes_keep_validity() {
    let input = wasm(
        r#"(module
             (type $t (func (param i32) (result i32)))
             (import "env" "g" (global i32))
             (table 2 funcref)
             (memory 1)
             (global $h (mut i32) (global.get 0))
             (export "a" (func $a))
             (elem (i32.const 0) $a $b)
             (func $a (type $t)
               (block (result i32)
                 (call_indirect (type $t) (local.get 0) (i32.const 1))
                 (br_if 0 (i32.eqz (call $b (local.get 0))))
                 (global.set $h)
                 (global.get $h)))
             (func $b (type $t) (i32.div_u (local.get 0) (global.get 0)))
             (data (i32.const 8) "xyz"))"#,
    );
    let mut accepted = 0;
    for at in 8..input.len() {
        for change in [0x01, 0x02, 0x40, 0x80, 0xFF] {
            let mut changed = input.clone();
            changed[at] ^= change;
            let Ok(out) = instrument(&changed) else {
                continue;
            };
            accepted += 1;
            let valid_in = wasmparser::Validator::new().validate_all(&changed).is_ok();
            let valid_out = wasmparser::Validator::new()
                .validate_all(&out.module)
                .is_ok();
            assert_eq!(valid_in, valid_out, "byte {at} ^ {change:#x}");
        }
    }
    assert!(accepted > 100, "only {accepted} changed modules parsed");
}

#[test]
#[cfg(not(feature = "simd"))]
fn simd_is_refused_without_the_simd_feature() {
    let input = wasm("(module (func (export \"f\") (result v128) (v128.const i64x2 1 2)))");
    let error = instrument(&input).unwrap_err();
    assert!(error.to_string().contains("SIMD"), "{error}");
}

#[test]
#[cfg(feature = "simd")]
fn simd_is_accepted_with_the_simd_feature() {
    let input = wasm("(module (func (export \"f\") (result v128) (v128.const i64x2 1 2)))");
    instrumented(&input);
}
