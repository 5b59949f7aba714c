//! Helpers shared by the integration tests: build modules from WAT,
//! instrument and validate them, run them in wasmi and read the current
//! function after a trap.

#![allow(dead_code)] // Each test binary uses a different part.

use wasmi::{Engine, Instance, Linker, Module, Store, TrapCode};
use weft_wasm_instrument::{CURRENT_FUNCTION, Instrumented, instrument};

/// `target/wasm/wasm32-wasip1/release/NAME.wasm` (`make guest` builds it).
pub fn example(name: &str) -> Vec<u8> {
    let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/wasm/wasm32-wasip1/release")
        .join(format!("{name}.wasm"));
    std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{} not readable ({e}): run `make guest`", path.display()))
}

/// The binary of a WAT module.
pub fn wasm(wat: &str) -> Vec<u8> {
    wat::parse_str(wat).expect("test WAT parses")
}

/// Fails the test unless `bytes` is a valid module (all proposals the
/// validator enables by default).
pub fn assert_valid(bytes: &[u8]) {
    if let Err(e) = wasmparser::Validator::new().validate_all(bytes) {
        panic!("instrumented module does not validate: {e}");
    }
}

/// `instrument(wasm)`, checked to be valid.
pub fn instrumented(wasm: &[u8]) -> Instrumented {
    let out = instrument(wasm).unwrap_or_else(|e| panic!("instrument: {e}"));
    assert_valid(&out.module);
    out
}

/// A store and linker ready for `module`'s instance.
pub struct Run<T: 'static> {
    pub store: Store<T>,
    pub linker: Linker<T>,
    pub module: Module,
}

impl<T> Run<T> {
    pub fn new(wasm: &[u8], state: T) -> Self {
        let engine = Engine::default();
        let module = Module::new(&engine, wasm).expect("wasmi compiles the module");
        let linker = Linker::new(&engine);
        let store = Store::new(&engine, state);
        Self {
            store,
            linker,
            module,
        }
    }

    pub fn instantiate(&mut self) -> Result<Instance, wasmi::Error> {
        self.linker
            .instantiate_and_start(&mut self.store, &self.module)
    }

    /// The value of the instrumented module's current-function global.
    pub fn current(&self, instance: &Instance) -> i32 {
        instance
            .get_global(&self.store, CURRENT_FUNCTION)
            .expect("the instrumented module exports the global")
            .get(&self.store)
            .i32()
            .expect("the global is an i32")
    }
}

/// Instruments the WAT module `wat`, calls its export `name` (no
/// parameters, no results), expects a trap and returns the trap and the
/// described current function.
pub fn trap_in(wat: &str, name: &str) -> (TrapCode, String) {
    let out = instrumented(&wasm(wat));
    let mut run = Run::new(&out.module, ());
    let instance = run.instantiate().expect("instantiates");
    let func = instance
        .get_typed_func::<(), ()>(&run.store, name)
        .expect("the export exists");
    let error = func.call(&mut run.store, ()).expect_err("the call traps");
    let trap = error
        .as_trap_code()
        .unwrap_or_else(|| panic!("not a trap: {error}"));
    let current = run.current(&instance);
    (trap, out.names.describe(current).to_string())
}
