#!/usr/bin/env python3
"""The reference side of the WASI conformance test: runs a wasm32-wasip1
command under wasmtime (the PyPI package, pinned to 51.0.0) set up as
`weft run` sets up the same program.

    reference.py [--fs-root DIR] [--read-only] [--env KEY=VALUE]...
                 [--stdin FILE] [--stdout FILE] [--stderr FILE]
                 PROGRAM.wasm [ARG]...

Mirrors weft: argv is PROGRAM.wasm as given followed by the arguments; the
environment is exactly the `--env` variables; DIR is preopened as "/" (fd 3),
read-only with `--read-only`; the standard streams are the files given, or
this process's own. The exit status is proc_exit's code, 0 when `_start`
returns, and 125 on a trap (its message on standard error), as weft's.
"""

import argparse
import os
import sys

import wasmtime


def parse(argv):
    """The command line: runner options, then the program and its arguments."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--fs-root")
    p.add_argument("--read-only", action="store_true")
    p.add_argument("--env", action="append", default=[])
    p.add_argument("--stdin")
    p.add_argument("--stdout")
    p.add_argument("--stderr")
    p.add_argument("program")
    p.add_argument("args", nargs=argparse.REMAINDER)
    return p.parse_args(argv)


def environment(options):
    """The program's variables: KEY=VALUE as given, KEY alone taking this
    process's value (left out when it has none), as weft's --env does."""
    pairs = []
    for option in options:
        if "=" in option:
            pairs.append(option.split("=", 1))
        elif option in os.environ:
            pairs.append([option, os.environ[option]])
    return pairs


def wasi_config(opts):
    """The WASI context: argv, environment, preopen and standard streams."""
    wasi = wasmtime.WasiConfig()
    wasi.argv = [opts.program] + opts.args
    wasi.env = environment(opts.env)
    if opts.fs_root is not None:
        wasi.preopen_dir(opts.fs_root, "/", fs_mutable=not opts.read_only)
    if opts.stdin:
        wasi.stdin_file = opts.stdin
    else:
        wasi.inherit_stdin()
    if opts.stdout:
        wasi.stdout_file = opts.stdout
    else:
        wasi.inherit_stdout()
    if opts.stderr:
        wasi.stderr_file = opts.stderr
    else:
        wasi.inherit_stderr()
    return wasi


def run(opts):
    """Instantiates the program and runs `_start`; returns the exit status."""
    engine = wasmtime.Engine()
    store = wasmtime.Store(engine)
    store.set_wasi(wasi_config(opts))
    linker = wasmtime.Linker(engine)
    linker.define_wasi()
    module = wasmtime.Module.from_file(engine, opts.program)
    try:
        instance = linker.instantiate(store, module)
        instance.exports(store)["_start"](store)
    except wasmtime.ExitTrap as e:
        return e.code
    except (wasmtime.Trap, wasmtime.WasmtimeError) as e:
        if opts.stderr:
            with open(opts.stderr, "a") as err:
                print(f"trap: {e}", file=err)
        else:
            print(f"trap: {e}", file=sys.stderr)
        return 125
    return 0


if __name__ == "__main__":
    sys.exit(run(parse(sys.argv[1:])))
