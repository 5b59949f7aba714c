//! The first app's environment (`environ_sizes_get`, `environ_get`,
//! PROTOCOL.md §4, §13.1).

use crate::{Fake, module};

/// An app that prints its environment's strings (NUL-terminated, as
/// `environ_get` lays them out) and exits with the variables' count × 100 +
/// their bytes.
fn environ_printer() -> Vec<u8> {
    module(
        r#"(func (export "_start")
             (drop (call $environ_sizes_get (i32.const 16) (i32.const 20)))
             (drop (call $environ_get (i32.const 512) (i32.const 1024)))
             (drop (call $print (i32.const 1) (i32.const 1024) (i32.load (i32.const 20))))
             (call $proc_exit (i32.add (i32.mul (i32.load (i32.const 16)) (i32.const 100))
                                       (i32.load (i32.const 20)))))"#,
    )
}

#[test]
fn the_first_app_gets_its_environment_nul_terminated() {
    let fake = Fake::new();
    let env = vec![b"HOME=/root".to_vec(), b"EMPTY=".to_vec()];
    let status = weft_wasm_run::run(
        fake.clone(),
        &environ_printer(),
        vec![b"app.wasm".to_vec()],
        env,
        Vec::new(),
    );
    assert_eq!(status, 2 * 100 + 18);
    assert_eq!(fake.stdout(), "HOME=/root\0EMPTY=\0");
}

#[test]
fn without_variables_the_environment_is_empty() {
    let fake = Fake::new();
    assert_eq!(crate::run(&fake, &environ_printer(), &[]), 0);
    assert_eq!(fake.stdout(), "");
}
