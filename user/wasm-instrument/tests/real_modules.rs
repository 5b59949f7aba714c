//! The example programs the repository builds for `wasm32-wasip1`
//! (`make guest`): instrumented, they validate and behave as before.
//!
//! They run under a minimal WASI (arguments, standard streams, exit; no
//! files, a fixed clock) written here, since the runtime's own WASI lives
//! in the guest.

mod common;

use common::{Run, assert_valid, example, instrumented};
use wasmi::{Caller, Error, Extern, Linker, Memory};

/// What a WASI program did.
#[derive(Debug, Default, PartialEq, Eq)]
struct Wasi {
    args: Vec<String>,
    stdin: Vec<u8>,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    exit: Option<i32>,
}

const ERRNO_BADF: i32 = 8;
const ERRNO_NOSYS: i32 = 52;

fn memory(caller: &Caller<'_, Wasi>) -> Memory {
    match caller.get_export("memory") {
        Some(Extern::Memory(memory)) => memory,
        _ => panic!("the program exports its memory"),
    }
}

fn read_u32(data: &[u8], at: i32) -> usize {
    let at = at as usize;
    u32::from_le_bytes(data[at..at + 4].try_into().unwrap()) as usize
}

fn write_u32(data: &mut [u8], at: i32, value: usize) {
    let at = at as usize;
    data[at..at + 4].copy_from_slice(&(value as u32).to_le_bytes());
}

/// Defines every import of `module` from `wasi_snapshot_preview1`: the few
/// the examples need for real, the rest as "not supported" (or, for file
/// descriptors, "bad descriptor").
fn define_wasi(linker: &mut Linker<Wasi>, module: &wasmi::Module) {
    linker
        .func_wrap(
            "wasi_snapshot_preview1",
            "args_sizes_get",
            |mut c: Caller<'_, Wasi>, count: i32, size: i32| {
                let (n, bytes) = (
                    c.data().args.len(),
                    c.data().args.iter().map(|a| a.len() + 1).sum(),
                );
                let data = memory(&c).data_mut(&mut c);
                write_u32(data, count, n);
                write_u32(data, size, bytes);
                0
            },
        )
        .unwrap();
    linker
        .func_wrap(
            "wasi_snapshot_preview1",
            "args_get",
            |mut c: Caller<'_, Wasi>, argv: i32, buf: i32| {
                let args = c.data().args.clone();
                let data = memory(&c).data_mut(&mut c);
                let mut at = buf as usize;
                for (i, arg) in args.iter().enumerate() {
                    write_u32(data, argv + 4 * i as i32, at);
                    data[at..at + arg.len()].copy_from_slice(arg.as_bytes());
                    data[at + arg.len()] = 0;
                    at += arg.len() + 1;
                }
                0
            },
        )
        .unwrap();
    linker
        .func_wrap(
            "wasi_snapshot_preview1",
            "environ_sizes_get",
            |mut c: Caller<'_, Wasi>, count: i32, size: i32| {
                let data = memory(&c).data_mut(&mut c);
                write_u32(data, count, 0);
                write_u32(data, size, 0);
                0
            },
        )
        .unwrap();
    linker
        .func_wrap("wasi_snapshot_preview1", "environ_get", |_: i32, _: i32| 0)
        .unwrap();
    linker
        .func_wrap(
            "wasi_snapshot_preview1",
            "fd_write",
            |mut c: Caller<'_, Wasi>, fd: i32, iovs: i32, len: i32, written: i32| {
                let memory = memory(&c);
                let mut bytes = Vec::new();
                let data = memory.data(&c);
                for i in 0..len {
                    let ptr = read_u32(data, iovs + 8 * i);
                    let n = read_u32(data, iovs + 8 * i + 4);
                    bytes.extend_from_slice(&data[ptr..ptr + n]);
                }
                let n = bytes.len();
                match fd {
                    1 => c.data_mut().stdout.extend(bytes),
                    2 => c.data_mut().stderr.extend(bytes),
                    _ => return ERRNO_BADF,
                }
                write_u32(memory.data_mut(&mut c), written, n);
                0
            },
        )
        .unwrap();
    linker
        .func_wrap(
            "wasi_snapshot_preview1",
            "fd_read",
            |mut c: Caller<'_, Wasi>, fd: i32, iovs: i32, len: i32, read: i32| {
                if fd != 0 {
                    return ERRNO_BADF;
                }
                let memory = memory(&c);
                let mut input = std::mem::take(&mut c.data_mut().stdin);
                let data = memory.data_mut(&mut c);
                let mut total = 0;
                for i in 0..len {
                    let ptr = read_u32(data, iovs + 8 * i);
                    let n = read_u32(data, iovs + 8 * i + 4).min(input.len());
                    data[ptr..ptr + n].copy_from_slice(&input[..n]);
                    input.drain(..n);
                    total += n;
                }
                write_u32(data, read, total);
                c.data_mut().stdin = input;
                0
            },
        )
        .unwrap();
    linker
        .func_wrap(
            "wasi_snapshot_preview1",
            "proc_exit",
            |mut c: Caller<'_, Wasi>, status: i32| -> Result<(), Error> {
                c.data_mut().exit = Some(status);
                Err(Error::i32_exit(status))
            },
        )
        .unwrap();
    const DEFINED: [&str; 7] = [
        "args_sizes_get",
        "args_get",
        "environ_sizes_get",
        "environ_get",
        "fd_write",
        "fd_read",
        "proc_exit",
    ];
    for import in module.imports() {
        if DEFINED.contains(&import.name()) {
            continue;
        }
        let ty = import.ty().func().expect("only function imports").clone();
        let errno = if import.name().starts_with("fd_") {
            ERRNO_BADF
        } else {
            ERRNO_NOSYS
        };
        linker
            .func_new(import.module(), import.name(), ty, move |_, _, results| {
                results[0] = wasmi::Val::I32(errno);
                Ok(())
            })
            .unwrap();
    }
}

/// Runs the WASI program `wasm` with `args` and `stdin`: what it did, and
/// the value of the current-function global after it ended (if
/// instrumented).
fn run(wasm: &[u8], args: &[&str], stdin: &[u8]) -> (Wasi, Option<i32>) {
    let state = Wasi {
        args: args.iter().map(|a| a.to_string()).collect(),
        stdin: stdin.to_vec(),
        ..Wasi::default()
    };
    let mut run = Run::new(wasm, state);
    let module = run.module.clone();
    define_wasi(&mut run.linker, &module);
    let instance = run.instantiate().expect("instantiates");
    let start = instance
        .get_typed_func::<(), ()>(&run.store, "_start")
        .expect("_start");
    match start.call(&mut run.store, ()) {
        Ok(()) => {}
        Err(e) if e.i32_exit_status().is_some() => {}
        Err(e) => panic!("the program failed: {e}"),
    }
    let current = instance
        .get_global(&run.store, weft_wasm_instrument::CURRENT_FUNCTION)
        .map(|g| g.get(&run.store).i32().unwrap());
    (std::mem::take(run.store.data_mut()), current)
}

/// Instruments `name`.wasm and checks it behaves as the original for each
/// of `cases` (arguments, standard input).
fn check_example(name: &str, cases: &[(&[&str], &[u8])]) {
    let original = example(name);
    let out = instrumented(&original);
    assert_valid(&original);
    for (args, stdin) in cases {
        let (before, none) = run(&original, args, stdin);
        let (after, current) = run(&out.module, args, stdin);
        assert_eq!(none, None);
        assert_eq!(before, after, "{name} {args:?} behaves the same");
        assert!(!after.stdout.is_empty() || !after.stderr.is_empty());
        // Exiting through `proc_exit` (a host function) leaves a Wasm
        // function in the global; returning from `_start` leaves `_start`.
        let current = out.names.describe(current.expect("exported global"));
        assert!(
            !current.to_string().starts_with("function["),
            "{name}: a named function, not {current}"
        );
    }
}

#[test]
fn hello_behaves_the_same() {
    check_example(
        "hello",
        &[
            (&["hello", "one", "two"], b""),
            (&["hello", "-"], b"standard input\n"),
            (&["hello", "exit=3"], b""),
        ],
    );
}

#[test]
fn wc_behaves_the_same() {
    // No preopened directory: every path fails, which `wc` reports.
    check_example("wc", &[(&["wc", "a.txt", "b.txt"], b""), (&["wc"], b"")]);
}

#[test]
fn real_modules_survive_random_damage_without_panic() {
    let original = example("hello");
    // xorshift: deterministic, no dependency.
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..300 {
        let mut damaged = original.clone();
        for _ in 0..1 + next() % 4 {
            let at = (next() as usize) % damaged.len();
            damaged[at] ^= 1 << (next() % 8);
        }
        if next() % 8 == 0 {
            damaged.truncate((next() as usize) % damaged.len());
        }
        if let Ok(out) = weft_wasm_instrument::instrument(&damaged) {
            let valid_in = wasmparser::Validator::new().validate_all(&damaged).is_ok();
            let valid_out = wasmparser::Validator::new()
                .validate_all(&out.module)
                .is_ok();
            assert_eq!(valid_in, valid_out);
        }
    }
}
