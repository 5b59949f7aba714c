//! What can stop the fabric benchmark, each naming the step that failed.

use std::time::Duration;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum BenchError {
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("{what} exited with {status}: {output}")]
    Failed {
        what: String,
        status: std::process::ExitStatus,
        output: String,
    },
    #[error("not within {limit:?}: {what}")]
    Timeout { what: String, limit: Duration },
    #[error("{what}: unexpected output: {text}")]
    Output { what: String, text: String },
    #[error("zenoh, {what}: {message}")]
    Zenoh { what: String, message: String },
    #[error("{error}; the daemon's log:\n{log}")]
    Daemon { error: Box<BenchError>, log: String },
    #[error("writing the results: {0}")]
    Record(std::io::Error),
}

/// A closure turning an I/O error into [`BenchError::Io`] about `what`.
pub fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> BenchError {
    let what = what.into();
    move |source| BenchError::Io { what, source }
}

/// A closure turning a Zenoh error into [`BenchError::Zenoh`] about `what`.
pub fn zerr<E: std::fmt::Display>(what: &str) -> impl FnOnce(E) -> BenchError + '_ {
    move |e| BenchError::Zenoh {
        what: what.to_string(),
        message: e.to_string(),
    }
}
