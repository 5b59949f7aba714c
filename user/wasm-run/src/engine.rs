//! The engine configuration, defined once: what the guest runtime runs
//! apps with, and what `monitor/benches/wasm.rs` runs the host engine with
//! so the two are compared like for like.
//!
//! - `wasmi` with the features of this crate's manifest (`validate`,
//!   `stable`, `portable-dispatch`), fuel metering on;
//! - every function validated when the module is compiled (an invalid
//!   module is refused at load, as wasmtime does), but translated to
//!   wasmi's code only when first called: a program runs a small part of
//!   what it links (`hello.wasm` compiled in 0.6 ms rather than 2.1 ms on
//!   the host). A translation costs no fuel: wasmi 2 charges it to the
//!   fuel of the function's first call, where running out is not
//!   resumable (a large function first called near the end of a slice
//!   would trap), so its cost is set to zero; a call's fuel then counts
//!   what it runs, as it did when everything was translated up front;
//! - every module rewritten first by the load-time instrumentation
//!   (`weft_wasm_instrument`) so a trap report can name its function;
//! - calls run [`FUEL_SLICE`] units of fuel at a time.

use alloc::rc::Rc;
use alloc::string::String;
use core::fmt;
use wasmi::{CompilationMode, Config, CustomFuelCosts, Engine, Module};
use weft_wasm_instrument::{FunctionNames, Instrumented, State, instrument};

/// Fuel an app runs on before another app gets a turn (about a million Wasm
/// instructions, a few milliseconds here; PROTOCOL.md §13.6).
pub const FUEL_SLICE: u64 = 1_000_000;
/// Fuel a module's start function may use. It runs while the app is made,
/// in one go (it cannot be suspended as a call can), so one slice bounds
/// it: a start function that runs longer fails the load.
pub const START_FUEL: u64 = FUEL_SLICE;

/// The engine configuration (see the module docs).
pub fn config() -> Config {
    let mut config = Config::default();
    config.consume_fuel(true);
    config.compilation_mode(CompilationMode::LazyTranslation);
    config.fuel_cost(CustomFuelCosts {
        // wasmi's own default for `memory.copy`, `memory.fill` and the like.
        bytes_copied_per_fuel: 64,
        fuel_per_bytes_translated: 0,
        fuel_per_bytes_validated: 0,
    });
    config
}

/// A new engine with [`config`].
pub fn engine() -> Engine {
    Engine::new(&config())
}

/// A module ready to instantiate, with its function names and what of an
/// instance's state lies outside its memory.
#[derive(Clone)]
pub struct Compiled {
    pub module: Module,
    pub names: Rc<FunctionNames>,
    pub state: Rc<State>,
}

/// Instruments and compiles the module of `bytes` for `engine`.
pub fn compile(engine: &Engine, bytes: &[u8]) -> Result<Compiled, LoadError> {
    let Instrumented {
        module,
        names,
        state,
    } = instrument(bytes).map_err(LoadError::Instrument)?;
    Ok(Compiled {
        module: Module::new(engine, &module).map_err(LoadError::Compile)?,
        names: Rc::new(names),
        state: Rc::new(state),
    })
}

/// Why a module cannot run as an app.
#[derive(Debug)]
pub enum LoadError {
    /// Not a module the instrumentation can parse.
    Instrument(weft_wasm_instrument::Error),
    /// Not a valid module, or one using a feature the engine lacks.
    Compile(wasmi::Error),
    /// It imports a function of a module the runtime does not provide.
    Import { module: String, name: String },
    /// It uses the event ABI but states no interface version, several, or
    /// another one (`found`) than this runtime's.
    Interface { found: Option<u32> },
    /// Instantiation failed (a missing `weft` function, its start trapped).
    Instantiate(wasmi::Error),
    /// It exports neither an entry point nor an event handler.
    NoEntry,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::Instrument(e) => write!(f, "{e}"),
            LoadError::Compile(e) | LoadError::Instantiate(e) => write!(f, "{e}"),
            LoadError::Import { module, name } => write!(
                f,
                "imports {module}::{name}, which this runtime does not provide"
            ),
            LoadError::Interface { found: Some(v) } => write!(
                f,
                "the app was built for interface version {v}, this runtime speaks {} (rebuild it against this weft-app)",
                weft_control::INTERFACE_VERSION
            ),
            LoadError::Interface { found: None } => f.write_str(
                "the app imports `weft` but states no interface version (build it with weft-app)",
            ),
            LoadError::NoEntry => {
                f.write_str("the module exports neither `_start` nor `weft_on_events`")
            }
        }
    }
}

impl core::error::Error for LoadError {}
