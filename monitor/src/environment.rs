//! `weft run --env`: the program's environment (PROTOCOL.md §4). Only the
//! variables given reach the program; `weft`'s own environment leaks in
//! only where `--env KEY` asks for it, as wasmtime's `--env` does.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use thiserror::Error;
use weft_control::args::{self, VariableError};
use weft_control::layout::USER_ARGS_MAX;

/// Why the arguments and environment cannot be given to the program.
#[derive(Debug, Error)]
pub enum EnvError {
    /// An `--env` that is no variable.
    #[error("--env {given:?}: {why}")]
    Variable { given: OsString, why: VariableError },
    /// The arguments block (§4) would be too large.
    #[error(
        "the program's arguments and environment take {need} bytes; their block holds at most {USER_ARGS_MAX}"
    )]
    TooLarge { need: usize },
}

/// A variable, `(KEY, VALUE)`.
pub type Variable = (Vec<u8>, Vec<u8>);

/// The environment `--env` gives, in the order given: `KEY=VALUE` sets KEY
/// (split at the first `=`); `KEY` alone takes `inherited(KEY)`, and leaves
/// KEY unset if that is `None`. A KEY given again replaces its value where
/// it was first given.
pub fn environment(
    given: &[OsString],
    inherited: impl Fn(&OsStr) -> Option<OsString>,
) -> Result<Vec<Variable>, EnvError> {
    let mut env: Vec<Variable> = Vec::new();
    for g in given {
        let bytes = g.as_bytes();
        let (key, value) = match bytes.iter().position(|b| *b == b'=') {
            Some(eq) => (&bytes[..eq], bytes[eq + 1..].to_vec()),
            None => match inherited(g) {
                Some(v) => (bytes, v.into_vec()),
                None => continue,
            },
        };
        args::check_variable(key, &value).map_err(|why| EnvError::Variable {
            given: g.clone(),
            why,
        })?;
        match env.iter_mut().find(|(k, _)| k == key) {
            Some((_, v)) => *v = value,
            None => env.push((key.to_vec(), value)),
        }
    }
    Ok(env)
}

/// Refuses `argv` and `env` if their block (§4) would exceed
/// [`USER_ARGS_MAX`].
pub fn check_block(argv: &[Vec<u8>], env: &[Variable]) -> Result<(), EnvError> {
    match args::block_len(argv, env) {
        Some(need) if need as u64 <= USER_ARGS_MAX => Ok(()),
        need => Err(EnvError::TooLarge {
            need: need.unwrap_or(usize::MAX),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn given(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    fn only_home(k: &OsStr) -> Option<OsString> {
        (k == "HOME").then(|| OsString::from("/home/w"))
    }

    #[test]
    fn values_are_given_or_inherited_and_unset_keys_stay_unset() {
        let env = environment(
            &given(&["A=1", "HOME", "UNSET", "B=x=y", "E=", "A=2"]),
            only_home,
        )
        .unwrap();
        let want: Vec<Variable> = [("A", "2"), ("HOME", "/home/w"), ("B", "x=y"), ("E", "")]
            .iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
            .collect();
        assert_eq!(env, want);
        assert!(environment(&[], only_home).unwrap().is_empty());
    }

    #[test]
    fn a_key_that_is_no_name_is_refused_naming_it() {
        let e = environment(&given(&["=x"]), only_home).unwrap_err();
        assert!(
            e.to_string().contains("\"=x\"") && e.to_string().contains("empty"),
            "{e}"
        );
        let nul = OsString::from_vec(b"K\0".to_vec());
        let e = environment(&[nul], |_| Some("v".into())).unwrap_err();
        assert!(e.to_string().contains("NUL"), "{e}");
    }

    #[test]
    fn a_block_too_large_is_refused() {
        let argv = vec![b"hello".to_vec()];
        let big = vec![(b"K".to_vec(), vec![b'v'; USER_ARGS_MAX as usize])];
        let e = check_block(&argv, &big).unwrap_err();
        assert!(e.to_string().contains("at most 65536"), "{e}");
        assert!(check_block(&argv, &[(b"K".to_vec(), b"v".to_vec())]).is_ok());
    }
}
