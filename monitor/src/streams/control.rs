//! The control pipe (slot 0, PROTOCOL.md §9.1): opens and closes stream
//! pairs, nothing else.
//!
//! `OPEN` takes the lowest free slot, zeroes its rings and status word, starts
//! its task (which waits for the first frame) and replies with where the
//! rings are. `CLOSE` lets the slot's task take what the guest wrote before
//! closing (for at most [`CLOSE_GRACE`]), stops it, waits until it is gone
//! (so no monitor code touches the slot any more), and replies with the
//! stream's final status; only then may the slot be handed out again. A control frame
//! that breaks the protocol closes the control pipe: the guest can open no
//! more streams, the open ones go on. Each region (process) has its own
//! control pipe; the stream tasks it starts are its region's tasks.

use super::bells::SlotWake;
use super::dispatch::{self, Services};
use super::framed::{Failure, Status, StreamIo, reset_slot};
use super::region::{OpenError, Shared};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::task::JoinHandle;
use weft_control::control_pipe::{MAX_FRAME, Reply, Request};
use weft_control::frame::Code;
use weft_control::streams::{RING_CAPACITY, SLOTS, bell, rings, slot};
use weft_data_pipe::unconsumed;

/// How long `CLOSE` waits for a stream's task to take what the guest wrote
/// before closing (a request's reply, a socket's last bytes). A task that
/// is busy elsewhere is stopped after it; what it left is the protocol's
/// to deliver or drop (§9.1).
pub const CLOSE_GRACE: Duration = Duration::from_millis(20);

/// The control pipe before its task starts.
pub struct ControlPipe {
    wake: Arc<SlotWake>,
    /// What the streams it opens are served with.
    services: Arc<Services>,
}

/// The tasks of the slots the control pipe opened, by slot.
struct Slots {
    tasks: Vec<Option<JoinHandle<()>>>,
}

impl ControlPipe {
    /// The control pipe on slot 0, whose rings are zero from boot (fresh
    /// guest memory).
    pub fn new(wake: Arc<SlotWake>, services: Arc<Services>) -> Self {
        Self { wake, services }
    }

    /// Serves control requests until the guest closes the pipe or breaks
    /// its protocol. The streams still open go on (as region tasks).
    pub async fn serve(self, shared: Arc<Shared>) {
        let mut slots = Slots {
            tasks: (0..SLOTS).map(|_| None).collect(),
        };
        let mut io = match StreamIo::attach(&shared, slot::CONTROL, &self.wake) {
            Ok(io) => io,
            Err(e) => {
                super::host_output::stderr()
                    .notice(&format!("weft: cannot serve the control pipe: {e}\n"));
                return;
            }
        };
        let mut body = Vec::new();
        let mut out = [0u8; MAX_FRAME];
        loop {
            let request = match io.read_frame(&mut body).await {
                Ok(Some(h)) => Request::decode(h, &body)
                    .map_err(|e| Failure::protocol(format!("control pipe: {e}"))),
                Ok(None) => return,
                Err(f) => Err(f),
            };
            let reply = match request {
                Ok(Request::Open { request }) => slots.open(request, &shared, &self.services),
                Ok(Request::Close { request, slot }) => slots.close(request, slot, &shared).await,
                Err(f) => {
                    return io.fail(f).await;
                }
            };
            let n = reply.encode(&mut out);
            match io.write_frame(&out[..n]).await {
                Ok(()) => {}
                Err(f) if f.is_protocol() => return io.fail(f).await,
                Err(_) => return,
            }
        }
    }
}

impl Slots {
    fn open(&mut self, request: u32, shared: &Arc<Shared>, services: &Arc<Services>) -> Reply {
        let refused = |code| Reply::Refused { request, code };
        let Some(slot) = (slot::FIRST_DYNAMIC..SLOTS).find(|&s| self.tasks[s as usize].is_none())
        else {
            return refused(Code::NoSlots);
        };
        let open = self.tasks.iter().filter(|t| t.is_some()).count();
        let ticket = match services.budgets.open_stream(open) {
            Ok(t) => t,
            Err(_) => return refused(Code::OverBudget),
        };
        let Some(r) = rings(slot) else {
            return refused(Code::NoSlots);
        };
        reset_slot(&shared.region, r);
        let io = match shared.open_wakes(slot, libc::EFD_NONBLOCK) {
            Ok(wake) => StreamIo::attach(shared, slot, &wake),
            // Its process ended: nobody will read the reply.
            Err(OpenError::Stopping) => return refused(Code::Closed),
            Err(OpenError::Wake(e)) => Err(e),
        };
        let io = match io {
            Ok(io) => io,
            Err(e) => {
                super::host_output::stderr()
                    .notice(&format!("weft: cannot open stream slot {slot}: {e}\n"));
                shared.close_wakes(slot);
                return refused(Code::Io);
            }
        };
        let task = dispatch::serve(io, shared.clone(), services.clone());
        // The ticket goes back when the task is gone, finished or aborted.
        self.tasks[slot as usize] = Some(shared.spawn(async move {
            let _ticket = ticket;
            task.await
        }));
        services.stats.opened.fetch_add(1, Ordering::Relaxed);
        Reply::Opened {
            request,
            slot: slot as u32,
            rings: r,
            capacity: RING_CAPACITY as u32,
        }
    }

    async fn close(&mut self, request: u32, slot: u32, shared: &Shared) -> Reply {
        let task = self
            .tasks
            .get_mut(slot as usize)
            .filter(|_| u64::from(slot) >= slot::FIRST_DYNAMIC)
            .and_then(Option::take);
        let (Some(task), Some(r)) = (task, rings(slot.into())) else {
            return Reply::Refused {
                request,
                code: Code::BadSlot,
            };
        };
        shared.wake(slot.into(), bell::DATA);
        let _ = tokio::time::timeout(CLOSE_GRACE, async {
            // The woken task runs before a yielding one (one thread).
            tokio::task::yield_now().await;
            while !task.is_finished() && unconsumed(&shared.region, r.to_monitor as usize) != 0 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
        .await;
        task.abort();
        // Cancelled or finished: either way no monitor code holds the slot.
        let _ = task.await;
        shared.close_wakes(slot.into());
        let status = Status::of(shared.region, r).get();
        Reply::Closed {
            request,
            slot,
            status,
        }
    }
}
