//! An IPC descriptor (PROTOCOL.md §13.7, §18): one `IPC` stream of the
//! [`Host`], either providing a service or sending, and what it delivers
//! as the records `ipc_receive` writes.
//!
//! Invariants:
//! - what was taken from the stream but did not fit the app's buffer is
//!   kept ([`IpcEnd::keep`]) and is the next thing [`IpcEnd::take`]
//!   returns, so nothing is lost to a small buffer;
//! - a service descriptor knows the requests it handed the app and the
//!   app has not answered yet (taken, minus [`IpcEnd::reply`] and
//!   [`IpcEnd::refuse`]);
//! - a sending descriptor knows the messages whose outcome the app has
//!   not taken yet (from [`IpcEnd::submit`] until their `SENT`, `ANSWER`
//!   or `FAILED` is taken), and which of them are one-way, so their
//!   acknowledgement is told apart from an empty answer (`SENT` rather
//!   than `ANSWER`);
//! - the monitor's `PAUSED` and `RESUMED` frames never reach the app: the
//!   [`Host`]'s service takes them ([`IpcService::paused`]).
//!
//! So a descriptor can say whether it is *settled* ([`IpcEnd::settle`]):
//! nothing in flight that a move would lose, which a capture needs
//! (PROTOCOL.md §19.2).

use crate::host::{Host, Interest, IpcItem, IpcSender, IpcService, Stream, WasiResult};
use alloc::collections::{BTreeMap, BTreeSet};
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use weft_control::app::{IpcRecord, errno, ipc_flags, ipc_kind};
use weft_control::ipc_proto::Guid;
use weft_control::snapshot::Descriptor;

/// Something `ipc_receive` delivers: its record and the bytes that go to
/// the buffer (the sender's text, then the data).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Taken {
    pub record: IpcRecord,
    pub bytes: Vec<u8>,
}

enum Side<H: Host> {
    Service {
        service: H::IpcService,
        guid: Guid,
        name: String,
        /// Ids of the requests the app took and has not answered.
        unanswered: BTreeSet<u64>,
    },
    Sender {
        sender: H::IpcSender,
        /// Ids of the messages whose outcome the app has not taken, each
        /// with whether it is one-way.
        outstanding: BTreeMap<u32, bool>,
    },
}

/// An IPC descriptor's state.
pub struct IpcEnd<H: Host> {
    side: Side<H>,
    /// Taken from the stream, not yet delivered.
    pending: Option<Taken>,
}

/// Why an IPC descriptor is not settled: what a move now would lose.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unsettled {
    /// A service whose messages the monitor does not hold (no `PAUSED`).
    NotPaused,
    /// Something waits to be taken by the app (a message, an outcome).
    Waiting,
    /// A service with this many requests taken and not answered.
    Unanswered(usize),
    /// A sender with this many messages whose outcome is not taken yet.
    Outstanding(usize),
    /// The stream failed with this errno.
    Failed(i32),
}

impl fmt::Display for Unsettled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotPaused => f.write_str("is not paused (its messages still come)"),
            Self::Waiting => f.write_str("has something the app has not taken yet"),
            Self::Unanswered(1) => f.write_str("has 1 request unanswered"),
            Self::Unanswered(n) => write!(f, "has {n} requests unanswered"),
            Self::Outstanding(1) => f.write_str("has 1 message whose outcome is not taken"),
            Self::Outstanding(n) => write!(f, "has {n} messages whose outcome is not taken"),
            Self::Failed(e) => write!(f, "has a failed stream (errno {e})"),
        }
    }
}

impl<H: Host> IpcEnd<H> {
    /// A descriptor providing service `guid`, shown as `name`.
    pub fn service(service: H::IpcService, guid: Guid, name: String) -> Self {
        Self {
            side: Side::Service {
                service,
                guid,
                name,
                unanswered: BTreeSet::new(),
            },
            pending: None,
        }
    }

    /// A descriptor for sending.
    pub fn sender(sender: H::IpcSender) -> Self {
        Self {
            side: Side::Sender {
                sender,
                outstanding: BTreeMap::new(),
            },
            pending: None,
        }
    }

    /// Whether it provides a service (else it sends).
    pub fn is_service(&self) -> bool {
        matches!(self.side, Side::Service { .. })
    }

    /// What it is, as a snapshot's descriptor record says (§19.1).
    pub fn descriptor(&self) -> Descriptor<'_> {
        match &self.side {
            Side::Service { guid, name, .. } => Descriptor::IpcService { guid: *guid, name },
            Side::Sender { .. } => Descriptor::IpcSender,
        }
    }

    /// The next thing to deliver: what was kept first, then the stream's;
    /// `Ok(None)` if nothing is there yet.
    pub fn take(&mut self) -> WasiResult<Option<Taken>> {
        if let Some(t) = self.pending.take() {
            return Ok(Some(t));
        }
        let taken = match &mut self.side {
            Side::Service {
                service,
                unanswered,
                ..
            } => {
                let Some(item) = service.try_message()? else {
                    return Ok(None);
                };
                if let IpcItem::Message {
                    id, request: true, ..
                } = item
                {
                    unanswered.insert(id);
                }
                taken_of(item, None)
            }
            Side::Sender {
                sender,
                outstanding,
            } => {
                let Some(item) = sender.try_answer()? else {
                    return Ok(None);
                };
                taken_of(item, Some(outstanding))
            }
        };
        Ok(Some(taken))
    }

    /// Keeps `t` for the next [`IpcEnd::take`] (it did not fit).
    pub fn keep(&mut self, t: Taken) {
        self.pending = Some(t);
    }

    /// Whether something taken waits to be delivered again.
    pub fn has_pending(&self) -> bool {
        self.pending.is_some()
    }

    /// Answers request `id` of a service descriptor (see
    /// [`IpcService::reply`]); `EBADF` for a sending one.
    pub fn reply(&mut self, id: u64, data: &[u8]) -> WasiResult<()> {
        let (service, unanswered) = self.service_mut()?;
        service.reply(id, data)?;
        unanswered.remove(&id);
        Ok(())
    }

    /// Refuses request `id` of a service descriptor (see
    /// [`IpcService::refuse`]); `EBADF` for a sending one.
    pub fn refuse(&mut self, id: u64, reason: &str) -> WasiResult<()> {
        let (service, unanswered) = self.service_mut()?;
        service.refuse(id, reason)?;
        unanswered.remove(&id);
        Ok(())
    }

    fn service_mut(&mut self) -> WasiResult<(&mut H::IpcService, &mut BTreeSet<u64>)> {
        match &mut self.side {
            Side::Service {
                service,
                unanswered,
                ..
            } => Ok((service, unanswered)),
            Side::Sender { .. } => Err(errno::BADF),
        }
    }

    /// Sends on a sending descriptor (see [`IpcSender::submit`]); `EBADF`
    /// for a service's.
    pub fn submit(
        &mut self,
        guid: Guid,
        pid: Option<&str>,
        data: &[u8],
        timeout_ms: Option<u32>,
    ) -> WasiResult<u32> {
        let Side::Sender {
            sender,
            outstanding,
        } = &mut self.side
        else {
            return Err(errno::BADF);
        };
        let id = sender.submit(guid, pid, data, timeout_ms)?;
        outstanding.insert(id, timeout_ms.is_none());
        Ok(id)
    }

    /// Cancels request `id` of a sending descriptor (see
    /// [`IpcSender::cancel`]); `EBADF` for a service's.
    pub fn cancel(&mut self, id: u32) -> WasiResult<()> {
        match &mut self.side {
            Side::Sender { sender, .. } => sender.cancel(id),
            Side::Service { .. } => Err(errno::BADF),
        }
    }

    /// Whether a move now would lose nothing of this descriptor: a service
    /// is paused and has no request unanswered, a sender has no outcome to
    /// come, and neither has anything for the app to take. A service first
    /// takes what its stream holds without waiting, so a `PAUSED` that
    /// came is noted (a message found so is kept for the app).
    pub fn settle(&mut self) -> Result<(), Unsettled> {
        if self.pending.is_none() && self.is_service() {
            match self.take() {
                Ok(Some(t)) => self.keep(t),
                Ok(None) => {}
                Err(e) => return Err(Unsettled::Failed(e)),
            }
        }
        let waiting = self.pending.is_some() || self.stream().ready(Interest::Read);
        match &self.side {
            Side::Service { service, .. } if !service.paused() => Err(Unsettled::NotPaused),
            _ if waiting => Err(Unsettled::Waiting),
            Side::Service { unanswered, .. } if !unanswered.is_empty() => {
                Err(Unsettled::Unanswered(unanswered.len()))
            }
            Side::Sender { outstanding, .. } if !outstanding.is_empty() => {
                Err(Unsettled::Outstanding(outstanding.len()))
            }
            _ => Ok(()),
        }
    }

    /// Whether it is a service the monitor does not hold yet, with nothing
    /// kept for the app and its stream not ended: a `PAUSED` to come on
    /// its stream is what a capture waits for.
    pub fn awaits_pause(&mut self) -> bool {
        let waits = match &self.side {
            Side::Service { service, .. } => !service.paused() && self.pending.is_none(),
            Side::Sender { .. } => false,
        };
        waits && self.stream().status().is_none()
    }

    pub fn stream(&mut self) -> &mut H::Stream {
        match &mut self.side {
            Side::Service { service, .. } => service.stream(),
            Side::Sender { sender, .. } => sender.stream(),
        }
    }
}

/// The record and bytes of `item`; `outstanding` (a sender's) forgets the
/// message whose outcome it is, and turns the acknowledgement of a one-way
/// message into `SENT`.
fn taken_of(item: IpcItem, outstanding: Option<&mut BTreeMap<u32, bool>>) -> Taken {
    let mut record = IpcRecord::default();
    let bytes = match item {
        IpcItem::Message {
            id,
            request,
            sender,
            data,
        } => {
            record.kind = ipc_kind::MESSAGE;
            record.id = id;
            record.flags = if request { ipc_flags::REQUEST } else { 0 };
            record.sender_len = sender.len() as u32;
            record.data_len = data.len() as u32;
            let mut bytes = sender.into_bytes();
            bytes.extend_from_slice(&data);
            bytes
        }
        IpcItem::Answer { request, data } => {
            let one_way = outstanding.and_then(|o| o.remove(&request));
            record.kind = if one_way == Some(true) {
                ipc_kind::SENT
            } else {
                ipc_kind::ANSWER
            };
            record.id = u64::from(request);
            record.data_len = data.len() as u32;
            data
        }
        IpcItem::Failed {
            request,
            error,
            message,
        } => {
            if let Some(o) = outstanding {
                o.remove(&request);
            }
            record.kind = ipc_kind::FAILED;
            record.id = u64::from(request);
            record.error = error;
            record.data_len = message.len() as u32;
            message.into_bytes()
        }
    };
    Taken { record, bytes }
}
