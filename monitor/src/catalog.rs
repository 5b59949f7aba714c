//! The programs a guest can name without handing over their bytes, and how
//! an image becomes something the kernel can start.
//!
//! The library owns no images: whoever runs it (the `weft` binary, which
//! bundles the kernel and the example programs) supplies a [`Catalog`].
//! A spawn request that names a program (PROTOCOL.md §14) is looked up in
//! it; an image, named or handed over, goes through [`runnable`]: an ELF
//! runs as itself, a Wasm module (recognised by its magic bytes) runs in
//! the catalog's Wasm runtime ([`WASM_RUNTIME`]) as that runtime's payload.

use crate::address_space::Payload;
use std::borrow::Cow;
use thiserror::Error;
use weft_fabric::wire::Engine;

/// The four bytes every Wasm module starts with.
const WASM_MAGIC: &[u8; 4] = b"\0asm";

/// The name of the Wasm runtime in a catalog: the program that runs the
/// module in its payload block.
pub const WASM_RUNTIME: &str = "wasm-run";

/// The name of the device agent in a catalog: the first program of a
/// device guest, which the monitor drives over its `DEVICE` stream
/// (PROTOCOL.md §15; [`crate::streams::device_link`]).
pub const DEVICE_AGENT: &str = "device";

/// Programs known by name, and how Wasm modules run.
pub trait Catalog: Sync {
    /// The ELF of the program called `name`, if there is one.
    fn find(&self, name: &str) -> Option<Cow<'static, [u8]>>;

    /// For the ahead-of-time tier (PROTOCOL.md §13.8): `module`, which a
    /// spawn asked to run in `tier`, compiled as [`AOT_RUNTIME`]'s payload,
    /// or why it cannot be. `None`: it runs in the interpreter
    /// ([`WASM_RUNTIME`]). A catalog without a compiler interprets every
    /// module but those asked compiled.
    fn compile(&self, _module: &[u8], tier: Tier) -> Option<Result<Vec<u8>, NotRunnable>> {
        (tier == Tier::Compiled).then_some(Err(NotRunnable::NoCompiler))
    }
}

/// How a spawn asks a Wasm module to run (PROTOCOL.md §14.2's `tier`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Tier {
    /// As the guest runs modules by default (`--engine`).
    #[default]
    Default,
    /// In the interpreter.
    Interp,
    /// Compiled ahead of time.
    Compiled,
}

impl Tier {
    /// The wire value's tier (`weft_control::process::tier`), if it is one.
    pub fn from_wire(t: u32) -> Option<Self> {
        use weft_control::process::tier;
        match t {
            tier::DEFAULT => Some(Self::Default),
            tier::INTERP => Some(Self::Interp),
            tier::COMPILED => Some(Self::Compiled),
            _ => None,
        }
    }

    /// The tier a fabric spawn's `engine` asks for (none: the default).
    pub fn of_engine(engine: Option<Engine>) -> Self {
        match engine {
            None => Self::Default,
            Some(Engine::Aot) => Self::Compiled,
            Some(Engine::Interp) => Self::Interp,
        }
    }

    /// The fabric's `engine` for this tier (none for the default).
    pub fn engine(self) -> Option<Engine> {
        match self {
            Self::Default => None,
            Self::Interp => Some(Engine::Interp),
            Self::Compiled => Some(Engine::Aot),
        }
    }

    /// The wire value.
    pub fn wire(self) -> u32 {
        use weft_control::process::tier;
        match self {
            Self::Default => tier::DEFAULT,
            Self::Interp => tier::INTERP,
            Self::Compiled => tier::COMPILED,
        }
    }
}

/// The name of the ahead-of-time tier's runtime in a catalog: the program
/// that runs the compiled module in its (executable) payload block.
pub const AOT_RUNTIME: &str = "wasm-aot";

/// What the kernel starts for an image.
#[derive(Debug)]
pub struct Program {
    /// The ELF the kernel starts: the program itself, or the Wasm runtime.
    pub elf: Cow<'static, [u8]>,
    /// The payload block's bytes: the Wasm module, for the runtime.
    pub payload: Option<Cow<'static, [u8]>>,
    /// Whether the program runs its payload (the ahead-of-time runtime's
    /// compiled module, PROTOCOL.md §13.8): mapped executable then.
    pub payload_executable: bool,
}

impl Program {
    /// The tier its Wasm module runs in; `None` for a native program.
    pub fn tier(&self) -> Option<Tier> {
        match (&self.payload, self.payload_executable) {
            (None, _) => None,
            (Some(_), false) => Some(Tier::Interp),
            (Some(_), true) => Some(Tier::Compiled),
        }
    }

    /// The payload block as the address space maps it.
    pub fn payload(&self) -> Option<Payload<'_>> {
        self.payload.as_deref().map(|bytes| Payload {
            bytes,
            executable: self.payload_executable,
        })
    }
}

/// Why an image cannot run.
#[derive(Debug, Error)]
pub enum NotRunnable {
    /// A Wasm module was given, and the catalog has no runtime for it.
    #[error("no Wasm runtime ({0}) to run the module")]
    NoRuntime(&'static str),
    /// The ahead-of-time compiler refused the module.
    #[error("{0}")]
    Compile(String),
    /// The module was asked compiled, and this monitor cannot compile.
    #[error("this monitor cannot compile Wasm (the compiled tier needs an x86-64 CPU with SSE4.1)")]
    NoCompiler,
    /// A tier was asked for an image that is not a Wasm module.
    #[error("a tier was asked for a program that is not a Wasm module")]
    NotWasm,
}

/// The hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// A program's identity, as the IPC registry names providers and grants
/// (PROTOCOL.md §18.7): `program:NAME` for a bundled program run by name,
/// `sha256:HEX` for an image given as bytes (a Wasm module or an ELF), by
/// the SHA-256 of those bytes.
pub fn identity_of_bytes(bytes: &[u8]) -> String {
    format!("sha256:{}", sha256_hex(bytes))
}

/// What runs `bytes`: an ELF runs as itself (and takes only
/// [`Tier::Default`]); a Wasm module runs in the catalog's runtime, as its
/// payload: compiled, in [`AOT_RUNTIME`], if the catalog compiles it in
/// `tier` ([`Catalog::compile`]), else in [`WASM_RUNTIME`].
/// (Whether the ELF is valid is checked when it is loaded.)
pub fn runnable(
    catalog: &dyn Catalog,
    bytes: Cow<'static, [u8]>,
    tier: Tier,
) -> Result<Program, NotRunnable> {
    if bytes.starts_with(WASM_MAGIC) {
        if let Some(compiled) = catalog.compile(&bytes, tier) {
            let payload = compiled?;
            let elf = catalog
                .find(AOT_RUNTIME)
                .ok_or(NotRunnable::NoRuntime(AOT_RUNTIME))?;
            return Ok(Program {
                elf,
                payload: Some(Cow::Owned(payload)),
                payload_executable: true,
            });
        }
        let elf = catalog
            .find(WASM_RUNTIME)
            .ok_or(NotRunnable::NoRuntime(WASM_RUNTIME))?;
        return Ok(Program {
            elf,
            payload: Some(bytes),
            payload_executable: false,
        });
    }
    if tier != Tier::Default {
        return Err(NotRunnable::NotWasm);
    }
    Ok(Program {
        elf: bytes,
        payload: None,
        payload_executable: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    struct NoPrograms;

    impl Catalog for NoPrograms {
        fn find(&self, _: &str) -> Option<Cow<'static, [u8]>> {
            None
        }
    }

    struct OnlyRuntime;

    impl Catalog for OnlyRuntime {
        fn find(&self, name: &str) -> Option<Cow<'static, [u8]>> {
            (name == WASM_RUNTIME).then_some(Cow::Borrowed(b"\x7fELF runtime"))
        }
    }

    #[test]
    fn an_elf_runs_as_itself_and_in_no_tier() {
        let p = runnable(&NoPrograms, Cow::Borrowed(b"\x7fELF"), Tier::Default).unwrap();
        assert_eq!(&*p.elf, b"\x7fELF");
        assert!(p.payload.is_none());
        for tier in [Tier::Interp, Tier::Compiled] {
            let e = runnable(&NoPrograms, Cow::Borrowed(b"\x7fELF"), tier).unwrap_err();
            assert!(matches!(e, NotRunnable::NotWasm), "{e:?}");
        }
    }

    #[test]
    fn a_wasm_module_runs_in_the_runtime_as_its_payload() {
        let module = Cow::Borrowed(&b"\0asm\x01\0\0\0"[..]);
        for tier in [Tier::Default, Tier::Interp] {
            let p = runnable(&OnlyRuntime, module.clone(), tier).unwrap();
            assert_eq!(&*p.elf, b"\x7fELF runtime");
            assert_eq!(p.payload, Some(module.clone()));
        }
        assert!(runnable(&NoPrograms, module.clone(), Tier::Default).is_err());
        // Without a compiler, a module asked compiled is refused, not
        // interpreted.
        let e = runnable(&OnlyRuntime, module, Tier::Compiled).unwrap_err();
        assert!(matches!(e, NotRunnable::NoCompiler), "{e:?}");
    }

    #[test]
    fn tiers_round_trip_on_the_wire() {
        for t in [Tier::Default, Tier::Interp, Tier::Compiled] {
            assert_eq!(Tier::from_wire(t.wire()), Some(t));
            assert_eq!(Tier::of_engine(t.engine()), t);
        }
        assert_eq!(Tier::from_wire(3), None);
    }
}
