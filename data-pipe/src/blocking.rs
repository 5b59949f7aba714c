//! Blocking I/O over a non-blocking ring end: [`Blocking`] implements the
//! `embedded-io` traits, polling as long as its [`Wait`] strategy allows
//! and then sleeping through it with the §7.6 protocol.

use embedded_io::{ErrorType, Read, ReadReady, Write, WriteReady};

use crate::access::Memory;
use crate::consumer::Consumer;
use crate::error::Error;
use crate::producer::Producer;
use crate::wake::{Notify, Wait, WaitDecision, Waitable};

/// A ring end ([`Producer`] or [`Consumer`]) whose `read`/`write` block
/// until they can move at least one byte, using `W` to sleep.
pub struct Blocking<E, W> {
    end: E,
    wait: W,
    max_spin: u32,
}

impl<E: Waitable, W: Wait> Blocking<E, W> {
    /// Polls up to `max_spin` times before each sleep, fewer if `wait`'s
    /// [`Wait::poll_again`] says so (`max_spin == 0` sleeps at once).
    pub fn new(end: E, wait: W, max_spin: u32) -> Self {
        Self {
            end,
            wait,
            max_spin,
        }
    }

    /// Polls the end until it is ready (`true`) or the spin is over.
    fn spin(&mut self) -> Result<bool, Error> {
        let mut polls = 0;
        while polls < self.max_spin && self.wait.poll_again(polls) {
            if self.end.ready()? {
                return Ok(true);
            }
            core::hint::spin_loop();
            polls += 1;
        }
        Ok(false)
    }

    /// The non-blocking end.
    pub fn get_mut(&mut self) -> &mut E {
        &mut self.end
    }

    /// The wait strategy.
    pub fn wait_mut(&mut self) -> &mut W {
        &mut self.wait
    }

    /// Runs `op` until it does not fail with [`Error::WouldBlock`].
    fn block<T>(&mut self, mut op: impl FnMut(&mut E) -> Result<T, Error>) -> Result<T, Error> {
        let mut blocked = false;
        loop {
            match op(&mut self.end) {
                Err(Error::WouldBlock) => {}
                done => {
                    if blocked {
                        self.wait.unblocked();
                    }
                    return done;
                }
            }
            if !blocked {
                blocked = true;
                self.wait.blocked();
            }
            if self.spin()? {
                continue;
            }
            if self.end.prepare_wait()? == WaitDecision::Sleep {
                self.wait.wait();
                self.end.end_wait();
            }
        }
    }
}

impl<E, W> ErrorType for Blocking<E, W> {
    type Error = Error;
}

impl<M: Memory, N: Notify, W: Wait> Read for Blocking<Consumer<M, N>, W> {
    /// Blocks until at least one byte or end-of-stream (`Ok(0)`).
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Error> {
        self.block(|c| c.read(buf))
    }
}

impl<M: Memory, N: Notify, W: Wait> ReadReady for Blocking<Consumer<M, N>, W> {
    fn read_ready(&mut self) -> Result<bool, Error> {
        self.end.ready()
    }
}

impl<M: Memory, N: Notify, W: Wait> Write for Blocking<Producer<M, N>, W> {
    /// Blocks until at least one byte is written.
    fn write(&mut self, buf: &[u8]) -> Result<usize, Error> {
        self.block(|p| p.write(buf))
    }

    /// Bytes are visible to the consumer as soon as `write` returns.
    fn flush(&mut self) -> Result<(), Error> {
        Ok(())
    }
}

impl<M: Memory, N: Notify, W: Wait> WriteReady for Blocking<Producer<M, N>, W> {
    fn write_ready(&mut self) -> Result<bool, Error> {
        self.end.ready()
    }
}

#[cfg(all(test, feature = "std"))]
mod tests {
    use super::*;
    use crate::layout::ring_size;
    use crate::{HeapRegion, NoNotify, Yield};
    use std::vec;
    use std::vec::Vec;

    #[test]
    fn blocking_moves_a_stream_between_threads() {
        let mem = HeapRegion::new(ring_size(256));
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        std::thread::scope(|s| {
            s.spawn(|| {
                let tx = Producer::new(&mem, 0, 256, NoNotify).unwrap();
                let mut tx = Blocking::new(tx, Yield, 64);
                tx.write_all(&data).unwrap();
            });
            let rx = Consumer::new(&mem, 0, 256, NoNotify).unwrap();
            let mut rx = Blocking::new(rx, Yield, 0);
            let mut got = vec![0; data.len()];
            rx.read_exact(&mut got).unwrap();
            assert_eq!(got, data);
            assert_eq!(rx.read(&mut [0; 4]), Ok(0));
            assert_eq!(rx.read_ready(), Ok(true));
        });
    }
}
