//! An IPC descriptor (PROTOCOL.md §13.7, §18): one `IPC` stream of the
//! [`Host`], either providing a service or sending, and what it delivers
//! as the records `ipc_receive` writes.
//!
//! Invariants:
//! - what was taken from the stream but did not fit the app's buffer is
//!   kept ([`IpcEnd::keep`]) and is the next thing [`IpcEnd::take`]
//!   returns, so nothing is lost to a small buffer;
//! - a sending descriptor remembers which of its messages are one-way, so
//!   their acknowledgement is told apart from an empty answer (`SENT`
//!   rather than `ANSWER`) and is forgotten once told.

use crate::host::{Host, IpcItem, IpcSender, IpcService, WasiResult};
use alloc::collections::BTreeSet;
use alloc::vec::Vec;
use weft_control::app::{IpcRecord, errno, ipc_flags, ipc_kind};
use weft_control::ipc_proto::Guid;

/// Something `ipc_receive` delivers: its record and the bytes that go to
/// the buffer (the sender's text, then the data).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Taken {
    pub record: IpcRecord,
    pub bytes: Vec<u8>,
}

enum Side<H: Host> {
    Service(H::IpcService),
    Sender {
        sender: H::IpcSender,
        /// Ids of one-way messages not acknowledged yet.
        one_way: BTreeSet<u32>,
    },
}

/// An IPC descriptor's state.
pub struct IpcEnd<H: Host> {
    side: Side<H>,
    /// Taken from the stream, not yet delivered.
    pending: Option<Taken>,
}

impl<H: Host> IpcEnd<H> {
    /// A descriptor providing a service.
    pub fn service(service: H::IpcService) -> Self {
        Self {
            side: Side::Service(service),
            pending: None,
        }
    }

    /// A descriptor for sending.
    pub fn sender(sender: H::IpcSender) -> Self {
        Self {
            side: Side::Sender {
                sender,
                one_way: BTreeSet::new(),
            },
            pending: None,
        }
    }

    /// The next thing to deliver: what was kept first, then the stream's;
    /// `Ok(None)` if nothing is there yet.
    pub fn take(&mut self) -> WasiResult<Option<Taken>> {
        if let Some(t) = self.pending.take() {
            return Ok(Some(t));
        }
        let item = match &mut self.side {
            Side::Service(s) => s.try_message()?,
            Side::Sender { sender, .. } => sender.try_answer()?,
        };
        let Some(item) = item else { return Ok(None) };
        let one_way = match &mut self.side {
            Side::Sender { one_way, .. } => Some(one_way),
            Side::Service(_) => None,
        };
        Ok(Some(taken_of(item, one_way)))
    }

    /// Keeps `t` for the next [`IpcEnd::take`] (it did not fit).
    pub fn keep(&mut self, t: Taken) {
        self.pending = Some(t);
    }

    /// Whether something taken waits to be delivered again.
    pub fn has_pending(&self) -> bool {
        self.pending.is_some()
    }

    /// The service this descriptor provides; `EBADF` for a sending one.
    pub fn service_mut(&mut self) -> WasiResult<&mut H::IpcService> {
        match &mut self.side {
            Side::Service(s) => Ok(s),
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
        let Side::Sender { sender, one_way } = &mut self.side else {
            return Err(errno::BADF);
        };
        let id = sender.submit(guid, pid, data, timeout_ms)?;
        if timeout_ms.is_none() {
            one_way.insert(id);
        }
        Ok(id)
    }

    /// Cancels request `id` of a sending descriptor (see
    /// [`IpcSender::cancel`]); `EBADF` for a service's.
    pub fn cancel(&mut self, id: u32) -> WasiResult<()> {
        match &mut self.side {
            Side::Sender { sender, .. } => sender.cancel(id),
            Side::Service(_) => Err(errno::BADF),
        }
    }

    pub fn stream(&mut self) -> &mut H::Stream {
        match &mut self.side {
            Side::Service(s) => s.stream(),
            Side::Sender { sender, .. } => sender.stream(),
        }
    }
}

/// The record and bytes of `item`; `one_way` (a sender's) turns the
/// acknowledgement of a one-way message into `SENT`.
fn taken_of(item: IpcItem, one_way: Option<&mut BTreeSet<u32>>) -> Taken {
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
            let sent = one_way.is_some_and(|set| set.remove(&request));
            record.kind = if sent {
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
            if let Some(set) = one_way {
                set.remove(&request);
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
