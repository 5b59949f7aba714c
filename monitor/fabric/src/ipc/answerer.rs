//! Where a message's answer goes: one place, answered once, by whichever
//! of its answerers comes first (the provider's reply, a timeout, a
//! cancel, an error on the way).
//!
//! An answer is handed over on the thread that has it: a reply that
//! arrives on one of Zenoh's threads is written to the requester's stream
//! from there, with no thread woken in between (PROTOCOL.md §18.5).
//!
//! Invariant: the function given to [`Answerer::new`] runs at most once,
//! never under the answerer's lock; an answerer dropped unanswered by all
//! its holders answers nothing (its function is dropped).

use super::Answer;
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;

/// Where the answer goes.
enum Way {
    Call(Box<dyn FnOnce(Answer) + Send>),
    Channel(oneshot::Sender<Answer>),
}

/// A message's way back, shared by everyone who may answer it.
#[derive(Clone)]
pub struct Answerer(Arc<Mutex<Option<Way>>>);

impl std::fmt::Debug for Answerer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Answerer")
            .field("done", &self.is_done())
            .finish()
    }
}

impl Answerer {
    /// An answerer that hands its answer to `f`.
    pub fn new(f: impl FnOnce(Answer) + Send + 'static) -> Answerer {
        Answerer(Arc::new(Mutex::new(Some(Way::Call(Box::new(f))))))
    }

    /// An answerer whose answer is received on the channel returned.
    pub fn channel() -> (Answerer, oneshot::Receiver<Answer>) {
        let (tx, rx) = oneshot::channel();
        (Answerer(Arc::new(Mutex::new(Some(Way::Channel(tx))))), rx)
    }

    fn way(&self) -> std::sync::MutexGuard<'_, Option<Way>> {
        // Only a take happens under the lock: never left half done.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Answers with `answer` if nobody has yet; whether this did.
    pub fn answer(&self, answer: Answer) -> bool {
        let way = self.way().take();
        match way {
            Some(Way::Call(f)) => f(answer),
            Some(Way::Channel(tx)) => {
                let _ = tx.send(answer);
            }
            None => return false,
        }
        true
    }

    /// Whether the message needs no answer any more: it has one, or
    /// nobody waits for it (a channel's receiver is gone).
    pub fn is_done(&self) -> bool {
        match &*self.way() {
            None => true,
            Some(Way::Channel(tx)) => tx.is_closed(),
            Some(Way::Call(_)) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_control::ipc_proto::IpcError;

    #[test]
    fn the_first_answer_is_the_only_one() {
        let (a, mut rx) = Answerer::channel();
        let b = a.clone();
        assert!(!a.is_done());
        assert!(b.answer(Ok(b"first".to_vec())));
        assert!(!a.answer(Err((IpcError::Timeout, "late".into()))));
        assert!(a.is_done() && b.is_done());
        assert_eq!(rx.try_recv().unwrap(), Ok(b"first".to_vec()));
    }

    #[test]
    fn a_channel_nobody_reads_needs_no_answer() {
        let (a, rx) = Answerer::channel();
        assert!(!a.is_done());
        drop(rx);
        assert!(a.is_done());
        let called = Answerer::new(drop);
        assert!(!called.is_done());
    }

    #[test]
    fn an_answer_is_handed_over_on_the_answering_thread() {
        let here = std::thread::current().id();
        let (tx, rx) = std::sync::mpsc::channel();
        let a = Answerer::new(move |answer| {
            tx.send((std::thread::current().id(), answer)).unwrap();
        });
        let remote = a.clone();
        let there = std::thread::spawn(move || {
            remote.answer(Ok(vec![7]));
            std::thread::current().id()
        })
        .join()
        .unwrap();
        let (on, answer) = rx.recv().unwrap();
        assert_eq!(answer, Ok(vec![7]));
        assert_eq!(on, there);
        assert_ne!(on, here);
    }
}
