//! Moving an app whose module changes its tables and drops segments
//! (PROTOCOL.md §19.1, §19.2): the tables (grown, set, copied, initialised)
//! and the dropped segments go with it, and a snapshot that does not fit
//! the module is refused with why.

use crate::snapshot::{MODULE, captured, first, handle, stateful};
use crate::{Fake, module};
use weft_control::snapshot::{
    self, Global, HostRecord, Plan, Segments, Table, Writer, restore_memory,
};
use weft_wasm_instrument::SegmentKind;
use weft_wasm_run::app::{App, End};
use weft_wasm_run::events;
use weft_wasm_run::snapshot::{RestoreError, restore};
use weft_wasm_run::system::System;
use weft_wasm_run::tables::RestoreError as TablesError;

/// An event app whose first batch changes its table `$t` (grown from 2 to
/// 6: `table.copy`, `table.set` from `ref.func` of an imported function
/// and of its own, and from `table.get`, `table.init` from a passive
/// segment) and drops the passive segments `$gone` and `$gd`. Its second
/// batch prints, as `i32`s, what `call_indirect` gives through slots 0, 2,
/// 3, 4 and 5, what the imported function in slot 1 gives, and the
/// table's size; its third inits slot 0 from the kept segment `$pe` and
/// memory from the kept `$pd` and prints what they give; its fourth runs
/// `last`, which is expected to trap.
fn tables_app(last: &str) -> Vec<u8> {
    module(&format!(
        r#"(type $i (func (result i32)))
           (type $ii (func (param i32 i32) (result i32)))
           (table $t 2 8 funcref)
           (table $x 1 externref)
           (func $one (result i32) (i32.const 1))
           (func $two (result i32) (i32.const 2))
           (func $three (result i32) (i32.const 3))
           (func $four (result i32) (i32.const 4))
           (elem (table $t) (i32.const 0) func $one $two)
           (elem $pe func $three $four)
           (elem $gone func $two $two)
           (elem declare func $four $interest)
           (data $pd "kept")
           (data $gd "gone")
           (global $batch (mut i32) (i32.const 0))
           (func (export "_start")
             (drop (call $event_buffer (i32.const 1024) (i32.const 4)))
             (drop (call $timer (i64.const 1) (i64.const 1000))))
           (func (export "weft_on_events") (param i32)
             (global.set $batch (i32.add (global.get $batch) (i32.const 1)))
             (if (i32.eq (global.get $batch) (i32.const 1))
               (then
                 (drop (table.grow $t (ref.null func) (i32.const 4)))
                 (table.copy $t $t (i32.const 4) (i32.const 1) (i32.const 1))
                 (table.set $t (i32.const 1) (ref.func $interest))
                 (table.set $t (i32.const 2) (ref.func $four))
                 (table.set $t (i32.const 3) (table.get $t (i32.const 0)))
                 (table.init $t $pe (i32.const 5) (i32.const 0) (i32.const 1))
                 (elem.drop $gone)
                 (data.drop $gd)))
             (if (i32.eq (global.get $batch) (i32.const 2))
               (then
                 (i32.store (i32.const 400) (call_indirect $t (type $i) (i32.const 0)))
                 (i32.store (i32.const 404)
                   (call_indirect $t (type $ii) (i32.const 99) (i32.const 1) (i32.const 1)))
                 (i32.store (i32.const 408) (call_indirect $t (type $i) (i32.const 2)))
                 (i32.store (i32.const 412) (call_indirect $t (type $i) (i32.const 3)))
                 (i32.store (i32.const 416) (call_indirect $t (type $i) (i32.const 4)))
                 (i32.store (i32.const 420) (call_indirect $t (type $i) (i32.const 5)))
                 (i32.store (i32.const 424) (table.size $t))
                 (i32.store (i32.const 428) (table.size $x))
                 (drop (call $print (i32.const 1) (i32.const 400) (i32.const 32)))))
             (if (i32.eq (global.get $batch) (i32.const 3))
               (then
                 (table.init $t $pe (i32.const 0) (i32.const 0) (i32.const 1))
                 (memory.init $pd (i32.const 300) (i32.const 0) (i32.const 4))
                 (i32.store (i32.const 400) (call_indirect $t (type $i) (i32.const 0)))
                 (i32.store (i32.const 404) (i32.load (i32.const 300)))
                 (drop (call $print (i32.const 1) (i32.const 400) (i32.const 8)))))
             (if (i32.eq (global.get $batch) (i32.const 4))
               (then {last}))
             (drop (call $timer (i64.const 1) (i64.const 1000))))"#
    ))
}

/// The `last` batches that must trap: from a dropped segment.
const TRAPS: [&str; 2] = [
    "(table.init $t $gone (i32.const 0) (i32.const 0) (i32.const 1))",
    "(memory.init $gd (i32.const 300) (i32.const 0) (i32.const 1))",
];

/// What batches 2 and 3 print.
fn expected() -> Vec<u8> {
    // Slot 1 is `interest` on descriptor 99: EBADF.
    let ebadf = weft_control::app::errno::BADF;
    let words = [1, ebadf, 4, 1, 2, 3, 6, 1, 3, i32::from_le_bytes(*b"kept")];
    words.iter().flat_map(|w| w.to_le_bytes()).collect()
}

/// Runs `app` until it ends; how.
fn until_end(fake: &Fake, app: &mut App<Fake>) -> End {
    loop {
        while app.runnable() {
            if let Some(end) = app.step() {
                return end;
            }
        }
        match events::deliver(app) {
            Some(true) => {}
            Some(false) => fake.0.borrow_mut().now += 1000,
            None => panic!("nothing can wake the app"),
        }
    }
}

/// The snapshot of the app of `wasm` after its first batch.
fn after_changes(wasm: &[u8]) -> (Fake, App<Fake>, Vec<u8>) {
    let fake = Fake::new();
    let (_, mut app) = first(&fake, wasm);
    handle(&fake, &mut app, 1);
    let snap = captured(&mut app).unwrap();
    (fake, app, snap)
}

#[test]
fn changed_tables_and_dropped_segments_move() {
    for last in TRAPS {
        let wasm = tables_app(last);
        let (source, mut app, snap) = after_changes(&wasm);

        // The snapshot holds both tables and the dropped segments.
        let contents = snapshot::read(&snap).unwrap();
        let tables: Vec<_> = contents.tables.iter().collect();
        assert_eq!(tables.len(), 2);
        assert_eq!(tables[0].size(), 6);
        let entries: Vec<_> = tables[0].entries().collect();
        assert!(entries.iter().all(Option::is_some), "{entries:?}");
        assert_eq!(entries[0], entries[3]);
        assert_eq!(tables[1].entries().collect::<Vec<_>>(), [None]);
        let data: Vec<_> = contents.segments.data.iter().collect();
        assert_eq!(data, [false, true]);
        let elements: Vec<_> = contents.segments.elements.iter().collect();
        // Active (dropped when made), `$pe` kept, `$gone` dropped,
        // declarative (dropped when made).
        assert_eq!(elements, [true, false, true, true]);

        let destination = Fake::new();
        let system = System::new(destination.clone()).unwrap();
        let mut moved = restore(&system, 0, &wasm, MODULE, &snap, Vec::new()).unwrap();
        // Moved again at once: the same snapshot.
        assert_eq!(captured(&mut moved).unwrap()[48..], snap[48..]);

        let at_source = until_end(&source, &mut app);
        let at_destination = until_end(&destination, &mut moved);
        for (fake, end) in [(&source, at_source), (&destination, at_destination)] {
            assert_eq!(fake.0.borrow().stdout, expected(), "{last}");
            match end {
                End::Trap(why) => assert!(why.contains("trap"), "{why}"),
                End::Exit(status) => panic!("{last}: exited with {status}, no trap"),
            }
        }
    }
}

#[test]
fn a_module_that_changes_no_table_has_no_tables_section() {
    let fake = Fake::new();
    let (_, mut app) = first(&fake, &stateful());
    handle(&fake, &mut app, 1);
    let snap = captured(&mut app).unwrap();
    let kinds: Vec<_> = snapshot::Reader::new(&snap)
        .unwrap()
        .map(|s| s.unwrap().kind())
        .collect();
    assert!(!kinds.contains(&snapshot::SectionKind::Tables), "{kinds:?}");
    assert!(
        !kinds.contains(&snapshot::SectionKind::Segments),
        "{kinds:?}"
    );
}

/// `snap` written again with its tables and segments changed by `change`.
fn rewritten(
    snap: &[u8],
    change: impl FnOnce(&mut Vec<(u32, Vec<Option<u32>>)>, &mut Vec<bool>, &mut Vec<bool>),
) -> Vec<u8> {
    let contents = snapshot::read(snap).unwrap();
    let view = contents.memory.unwrap();
    let mut memory = vec![0; view.byte_len() as usize];
    restore_memory(&view, &mut memory).unwrap();
    let globals: Vec<Global> = contents.globals.iter().collect();
    let mut tables: Vec<(u32, Vec<Option<u32>>)> = contents
        .tables
        .iter()
        .map(|t| (t.index(), t.entries().collect()))
        .collect();
    let mut data: Vec<bool> = contents.segments.data.iter().collect();
    let mut elements: Vec<bool> = contents.segments.elements.iter().collect();
    change(&mut tables, &mut data, &mut elements);
    let tables: Vec<Table<'_>> = tables
        .iter()
        .map(|(index, entries)| Table {
            index: *index,
            entries,
        })
        .collect();
    let segments = Segments {
        data: &data,
        elements: &elements,
    };
    let host: Vec<HostRecord<'_>> = contents.host.iter().collect();
    let plan = Plan::new()
        .memory(&memory)
        .globals(&globals)
        .tables(&tables)
        .segments(&segments)
        .host(&host);
    let mut out = Vec::new();
    let mut writer = Writer::new(|b: &[u8]| out.extend_from_slice(b));
    writer.header(MODULE, &plan).unwrap();
    writer.memory(&memory, view.max_pages()).unwrap();
    writer.globals(&globals).unwrap();
    writer.tables(&tables).unwrap();
    writer.segments(&segments).unwrap();
    writer.host(&host).unwrap();
    writer.finish().unwrap();
    out
}

#[test]
fn tables_and_segments_that_do_not_fit_are_refused() {
    let wasm = tables_app(TRAPS[0]);
    let (_, _, snap) = after_changes(&wasm);
    let restored = |snap: &[u8]| {
        let system = System::new(Fake::new()).unwrap();
        restore(&system, 0, &wasm, MODULE, snap, Vec::new()).map(|_| ())
    };
    // The rewriting itself changes nothing.
    assert!(restored(&rewritten(&snap, |_, _, _| {})).is_ok());

    type Change =
        Box<dyn FnOnce(&mut Vec<(u32, Vec<Option<u32>>)>, &mut Vec<bool>, &mut Vec<bool>)>;
    let cases: Vec<(Change, TablesError, &str)> = vec![
        (
            // Function 1 (`fd_read`) is never a table element.
            Box::new(|t, _, _| t[0].1[5] = Some(1)),
            TablesError::Function {
                table: 0,
                entry: 5,
                function: 1,
            },
            "its table 0 holds function 1 at entry 5, which the module cannot put in a table",
        ),
        (
            Box::new(|t, _, _| t[0].1.truncate(1)),
            TablesError::Shrunk {
                table: 0,
                size: 1,
                now: 2,
            },
            "its table 0 has 1 entries, fewer than the module's 2",
        ),
        (
            Box::new(|t, _, _| t[0].1.resize(9, None)),
            TablesError::Grow {
                table: 0,
                size: 9,
                max: Some(8),
            },
            "its table 0 has 9 entries, more than the module's maximum 8",
        ),
        (
            Box::new(|t, _, _| t[1].1[0] = t[0].1[0]),
            TablesError::Type { table: 1, entry: 0 },
            "its table 1 holds a function at entry 0, but the module's holds external references",
        ),
        (
            Box::new(|t, _, _| t[1].0 = 2),
            TablesError::NoTable(2),
            "its table 2 is not one of the module's",
        ),
        (
            Box::new(|t, _, _| {
                t.pop();
            }),
            TablesError::TableCount {
                snapshot: 1,
                module: 2,
            },
            "it holds 1 tables, but its module has 2",
        ),
        (
            Box::new(|_, _, e| e[0] = false),
            TablesError::ActiveKept {
                kind: SegmentKind::Element,
                index: 0,
            },
            "its active element segment 0 is not dropped, which no instance can be",
        ),
        (
            Box::new(|_, d, _| d.push(true)),
            TablesError::SegmentCount {
                kind: SegmentKind::Data,
                snapshot: 3,
                module: 2,
            },
            "it has 3 data segments, but its module has 2",
        ),
    ];
    for (change, error, text) in cases {
        let bent = rewritten(&snap, change);
        match restored(&bent) {
            Err(RestoreError::Tables(e)) => {
                assert_eq!(e, error);
                assert_eq!(e.to_string(), text);
            }
            other => panic!("{text}: {other:?}"),
        }
    }

    // A module that changes no table refuses a snapshot holding tables.
    let plain = stateful();
    let fake = Fake::new();
    let (_, mut app) = first(&fake, &plain);
    handle(&fake, &mut app, 1);
    let snap = captured(&mut app).unwrap();
    let bent = rewritten(&snap, |t, _, _| t.push((0, vec![None])));
    let system = System::new(Fake::new()).unwrap();
    let refused = restore(&system, 0, &plain, MODULE, &bent, Vec::new()).map(|_| ());
    assert!(
        matches!(refused, Err(RestoreError::Tables(TablesError::Unexpected))),
        "{refused:?}"
    );
}
