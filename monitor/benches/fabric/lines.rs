//! A child process's standard output, read line by line as it comes by a
//! thread of its own, each line stamped with the time it arrived (so that
//! the time is the arrival's, not the time someone got round to reading).

use crate::error::BenchError;
use std::io::{BufRead, BufReader, Read};
use std::process::Child;
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

/// A line and when it arrived.
pub type Line = (Instant, String);

pub struct StampedLines {
    lines: Receiver<Line>,
}

impl StampedLines {
    /// Starts reading `out` until its end.
    fn new(out: impl Read + Send + 'static) -> StampedLines {
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { return };
                if tx.send((Instant::now(), line)).is_err() {
                    return;
                }
            }
        });
        StampedLines { lines }
    }

    /// Starts reading the piped standard output of `child` (`what`); a
    /// child without one is killed.
    pub fn of(child: &mut Child, what: &str) -> Result<StampedLines, BenchError> {
        match child.stdout.take() {
            Some(out) => Ok(StampedLines::new(out)),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                Err(BenchError::Output {
                    what: what.to_string(),
                    text: "no piped standard output".into(),
                })
            }
        }
    }

    /// Drops the lines that arrived so far.
    pub fn skip(&self) {
        while self.lines.try_recv().is_ok() {}
    }

    /// The next line that `wanted` accepts (earlier ones dropped), within
    /// `limit`; `what` names it in the error.
    pub fn next(
        &self,
        what: &str,
        limit: Duration,
        wanted: impl Fn(&str) -> bool,
    ) -> Result<Line, BenchError> {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok((at, line)) if wanted(&line) => return Ok((at, line)),
                Ok(_) => {}
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    return Err(BenchError::Timeout {
                        what: what.to_string(),
                        limit,
                    });
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(BenchError::Output {
                        what: what.to_string(),
                        text: "the output ended first".into(),
                    });
                }
            }
        }
    }
}
