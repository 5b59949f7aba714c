//! A module that changes its tables or drops segments: its tables and the
//! functions that can be table elements are exported, its drops are noted
//! in exported globals, and `weft:drop` replays a drop (PROTOCOL.md §19).

mod common;

use common::{Run, assert_valid, instrumented, wasm};
use wasmi::{Instance, Val};
use weft_wasm_instrument::{
    DROP, SegmentKind, State, dropped_export, func_export, instrument, table_export,
};

/// A module using every way a function can become a table element.
const ELEMENTS: &str = r#"
    (module
      (import "env" "f" (func $imp))
      (import "env" "g" (func $unused))
      (table $t 4 funcref)
      (table $e 2 externref)
      (memory 1)
      (global $r (mut funcref) (ref.func $in_global))
      (func $a (result i32) (i32.const 1))
      (func $b (result i32) (i32.const 2))
      (func $c (result i32) (i32.const 3))
      (func $in_global)
      (func $in_code)
      (func $plain (export "plain"))
      (elem (table $t) (i32.const 0) func $a $imp)
      (elem $p funcref (ref.func $b) (ref.null func))
      (elem declare func $in_code)
      (func (export "change")
        (table.set $t (i32.const 2) (ref.func $in_code))
        (elem.drop $p)))
"#;

fn instance(run: &mut Run<()>) -> Instance {
    run.linker.func_wrap("env", "f", || {}).unwrap();
    run.linker.func_wrap("env", "g", || {}).unwrap();
    run.instantiate().expect("instantiates")
}

#[test]
fn tables_and_possible_elements_are_exported() {
    let out = instrumented(&wasm(ELEMENTS));
    // $imp 0, $unused 1, $a 2, $b 3, $c 4, $in_global 5, $in_code 6.
    assert_eq!(
        out.state,
        State {
            globals: vec![0],
            changes_tables: true,
            start: false,
            tables: 2,
            functions: vec![0, 2, 3, 5, 6],
            data_passive: vec![],
            elements_passive: vec![false, true, false],
        }
    );
    let mut run = Run::new(&out.module, ());
    let instance = instance(&mut run);
    for t in 0..2 {
        assert!(instance.get_table(&run.store, &table_export(t)).is_some());
    }
    assert!(instance.get_table(&run.store, &table_export(2)).is_none());
    for f in [0, 2, 3, 5, 6] {
        assert!(
            instance.get_func(&run.store, &func_export(f)).is_some(),
            "{f}"
        );
    }
    for f in [1, 4, 7] {
        assert!(
            instance.get_func(&run.store, &func_export(f)).is_none(),
            "{f}"
        );
    }
    // The table's entry 0 is the function exported as `weft:func:2`.
    let table = instance.get_table(&run.store, &table_export(0)).unwrap();
    let entry = table.get(&run.store, 0).unwrap();
    let entry = entry.as_func().unwrap().val().copied().unwrap();
    let a = instance.get_func(&run.store, &func_export(2)).unwrap();
    let results = &mut [Val::I32(0)];
    entry.call(&mut run.store, &[], results).unwrap();
    assert_eq!(results[0].i32(), Some(1));
    a.call(&mut run.store, &[], results).unwrap();
    assert_eq!(results[0].i32(), Some(1));
    // The plain export is still there.
    assert!(instance.get_func(&run.store, "plain").is_some());
}

#[test]
fn a_module_that_changes_no_table_exports_none() {
    let wat = r#"
        (module
          (table 2 funcref)
          (func $a)
          (elem (i32.const 0) func $a)
          (func (export "read") (drop (table.get 0 (i32.const 0)))))
    "#;
    let out = instrumented(&wasm(wat));
    assert!(!out.state.changes_tables);
    assert_eq!(out.state.tables, 0);
    assert!(out.state.functions.is_empty());
    let mut run = Run::new(&out.module, ());
    let instance = run.instantiate().unwrap();
    assert!(instance.get_table(&run.store, &table_export(0)).is_none());
    assert!(instance.get_func(&run.store, &func_export(0)).is_none());
    assert!(instance.get_func(&run.store, DROP).is_none());
}

/// A module with 70 passive data segments (two note words), one active,
/// and passive and active element segments.
fn segments_module() -> String {
    let mut data = String::new();
    for i in 0..70 {
        data.push_str(&format!(
            "(data $d{i} \"{}\")\n",
            char::from(b'a' + (i % 26) as u8)
        ));
    }
    format!(
        r#"
        (module
          (memory 1)
          (table 4 funcref)
          (func $f (result i32) (i32.const 7))
          (elem $active (i32.const 0) func $f)
          (elem $passive func $f $f)
          {data}
          (data $act (i32.const 100) "z")
          (func (export "drop_data") (param i32)
            (block
              (block
                (br_table 0 1 (local.get 0)))
              (data.drop $d3) (return))
            (data.drop $d65))
          (func (export "drop_elem") (elem.drop $passive))
          (func (export "init_data") (param i32) (result i32)
            (memory.init $d3 (i32.const 0) (i32.const 0) (i32.const 1))
            (i32.load8_u (i32.const 0)))
          (func (export "init_data65") (memory.init $d65 (i32.const 0) (i32.const 0) (i32.const 1)))
          (func (export "init_elem")
            (table.init $passive (i32.const 1) (i32.const 0) (i32.const 2))))
    "#
    )
}

fn word(run: &Run<()>, instance: &Instance, kind: SegmentKind, w: u32) -> i64 {
    instance
        .get_global(&run.store, &dropped_export(kind, w))
        .unwrap_or_else(|| panic!("note {kind:?} {w} exported"))
        .get(&run.store)
        .i64()
        .unwrap()
}

#[test]
fn drops_are_noted_and_replayed() {
    let out = instrumented(&wasm(&segments_module()));
    let state = &out.state;
    assert!(state.changes_tables);
    assert_eq!(state.data_passive.len(), 71);
    assert!(state.data_passive[..70].iter().all(|p| *p));
    assert!(!state.data_passive[70]);
    assert_eq!(state.elements_passive, [false, true]);

    let mut run = Run::new(&out.module, ());
    let instance = run.instantiate().unwrap();
    let call = |run: &mut Run<()>, name: &str, args: &[Val]| {
        let f = instance.get_func(&run.store, name).unwrap();
        let results = &mut [Val::I32(0)][..f.ty(&run.store).results().len()];
        f.call(&mut run.store, args, results)
            .map(|_| results.first().cloned())
    };
    assert_eq!(word(&run, &instance, SegmentKind::Data, 0), 0);
    assert_eq!(word(&run, &instance, SegmentKind::Data, 1), 0);
    assert_eq!(word(&run, &instance, SegmentKind::Element, 0), 0);
    assert!(
        instance
            .get_global(&run.store, &dropped_export(SegmentKind::Data, 2))
            .is_none()
    );
    call(&mut run, "drop_data", &[Val::I32(0)]).unwrap();
    assert_eq!(word(&run, &instance, SegmentKind::Data, 0), 1 << 3);
    call(&mut run, "drop_data", &[Val::I32(1)]).unwrap();
    assert_eq!(word(&run, &instance, SegmentKind::Data, 1), 1 << 1);
    call(&mut run, "drop_elem", &[]).unwrap();
    assert_eq!(word(&run, &instance, SegmentKind::Element, 0), 1 << 1);
    assert!(call(&mut run, "init_data", &[Val::I32(0)]).is_err());
    assert!(call(&mut run, "init_data65", &[]).is_err());
    assert!(call(&mut run, "init_elem", &[]).is_err());

    // A fresh instance: `weft:drop` has the same effect, notes included.
    let mut fresh = Run::new(&out.module, ());
    let instance = fresh.instantiate().unwrap();
    let drop = instance
        .get_typed_func::<(i32, i32), ()>(&fresh.store, DROP)
        .unwrap();
    let init = |run: &mut Run<()>, name: &str| {
        let f = instance.get_func(&run.store, name).unwrap();
        let results = &mut [Val::I32(0)][..f.ty(&run.store).results().len()];
        let args = &[Val::I32(0)][..f.ty(&run.store).params().len()];
        f.call(&mut run.store, args, results).is_ok()
    };
    assert!(init(&mut fresh, "init_data"));
    assert!(init(&mut fresh, "init_elem"));
    drop.call(&mut fresh.store, (0, 3)).unwrap();
    drop.call(&mut fresh.store, (0, 65)).unwrap();
    drop.call(&mut fresh.store, (1, 1)).unwrap();
    // Out of range or another kind: nothing.
    drop.call(&mut fresh.store, (0, 71)).unwrap();
    drop.call(&mut fresh.store, (1, 2)).unwrap();
    drop.call(&mut fresh.store, (2, 0)).unwrap();
    drop.call(&mut fresh.store, (-1, -1)).unwrap();
    assert_eq!(word(&fresh, &instance, SegmentKind::Data, 0), 1 << 3);
    assert_eq!(word(&fresh, &instance, SegmentKind::Data, 1), 1 << 1);
    assert_eq!(word(&fresh, &instance, SegmentKind::Element, 0), 1 << 1);
    assert!(!init(&mut fresh, "init_data"));
    assert!(!init(&mut fresh, "init_data65"));
    assert!(!init(&mut fresh, "init_elem"));
}

#[test]
fn sections_the_drop_function_needs_are_added() {
    // Changes a table; has passive data but no data count section (no code
    // may drop data then), and no global or export section.
    let wat = r#"
        (module
          (table 1 funcref)
          (memory 1)
          (func (table.set 0 (i32.const 0) (ref.null func)))
          (data "x"))
    "#;
    let out = instrumented(&wasm(wat));
    assert!(out.state.changes_tables);
    assert_eq!(out.state.data_passive, [true]);
    let mut run = Run::new(&out.module, ());
    let instance = run.instantiate().unwrap();
    let drop = instance
        .get_typed_func::<(i32, i32), ()>(&run.store, DROP)
        .unwrap();
    // Without a data count section the module cannot drop data: nothing.
    drop.call(&mut run.store, (0, 0)).unwrap();
    assert_eq!(word(&run, &instance, SegmentKind::Data, 0), 0);
}

#[test]
fn instrumented_twice_is_still_valid() {
    // The second walk's output is a module that changes its tables too;
    // instrumenting it again is refused (it exports `weft:` names), but
    // every module here validates.
    for wat in [ELEMENTS.to_string(), segments_module()] {
        let out = instrument(&wasm(&wat)).unwrap();
        assert_valid(&out.module);
        assert!(instrument(&out.module).is_err());
    }
}
