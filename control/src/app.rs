//! Wasm apps (PROTOCOL.md §13): what an app and the bundled runtime
//! `wasm-run` exchange through the app's linear memory. The runtime
//! (`weft-wasm-run`) writes these layouts and the SDK (`user/wasm/weft-app`)
//! reads them; neither repeats a number given here.
//!
//! Owned here: the `weft` import module's name and function names (§13.3),
//! the event record and its kinds (§13.4) with what a descriptor that did
//! not follow a moved app was ([`moved`]), the interest bits (§13.3), the
//! process record (§13.5), the UDP limits ([`ADDR_TEXT_MAX`],
//! [`MAX_DATAGRAM`], §13.3), the IPC record and its kinds (§13.7), the
//! statuses and limits apps see (§13.3, §13.6) and the WASI preview 1
//! errnos the runtime returns (§13.1, §13.3).
//!
//! Invariants: the records are little-endian layouts declared once with
//! [`wire_layout!`](crate::wire_layout); `decode` never fails on a record of
//! the right size (an unknown kind is for the reader to refuse).

use crate::process::name_text;
use crate::status;

/// The import module of the event app ABI (§13.3).
pub const MODULE: &str = "weft";

/// The custom section in which an app built on the SDK states the interface
/// version it was built for (§13.3): [`crate::INTERFACE_VERSION`] as a
/// little-endian `u32`. The runtime refuses a module that imports from
/// [`MODULE`] without it, or with another version.
pub const INTERFACE_SECTION: &str = "weft_interface";

/// The contents of [`INTERFACE_SECTION`] for this interface version.
pub const INTERFACE_BYTES: [u8; 4] = crate::INTERFACE_VERSION.to_le_bytes();

/// The export the runtime calls with each batch of events (§13.2).
pub const ON_EVENTS: &str = "weft_on_events";

/// The functions of the [`MODULE`] import module (§13.3).
pub mod import {
    pub const EVENT_BUFFER: &str = "event_buffer";
    pub const INTEREST: &str = "interest";
    pub const TIMER: &str = "timer";
    pub const TCP_LISTEN: &str = "tcp_listen";
    pub const TCP_CONNECT: &str = "tcp_connect";
    pub const SPAWN: &str = "spawn";
    pub const KILL: &str = "kill";
    pub const PROCESSES: &str = "processes";
    pub const PID: &str = "pid";
    pub const FABRIC_CALL: &str = "fabric_call";
    pub const FABRIC_REPLY: &str = "fabric_reply";
    pub const FABRIC_WATCH: &str = "fabric_watch";
    pub const FABRIC_EVENT: &str = "fabric_event";
    pub const IPC_SERVE: &str = "ipc_serve";
    pub const IPC_OPEN: &str = "ipc_open";
    pub const IPC_SEND: &str = "ipc_send";
    pub const IPC_RECEIVE: &str = "ipc_receive";
    pub const IPC_REPLY: &str = "ipc_reply";
    pub const IPC_REFUSE: &str = "ipc_refuse";
    pub const IPC_CANCEL: &str = "ipc_cancel";
    pub const MOVE_SELF: &str = "move_self";
    pub const UDP_BIND: &str = "udp_bind";
    pub const UDP_SEND_TO: &str = "udp_send_to";
    pub const UDP_RECV_FROM: &str = "udp_recv_from";
    pub const UDP_LOCAL_ADDR: &str = "udp_local_addr";
}

/// The most bytes of a socket address as text (`IP:PORT`, `[IPv6]:PORT`):
/// 39 for the longest IPv6 address, its brackets, the colon and five port
/// digits. `udp_recv_from` and `udp_local_addr` refuse an address buffer
/// smaller than this (§13.3), so the address always fits.
pub const ADDR_TEXT_MAX: usize = 47;

/// The largest datagram `udp_send_to` takes, and the longest that
/// `udp_recv_from` delivers (§12.1, §13.3).
pub const MAX_DATAGRAM: usize = crate::net_proto::MAX_DATAGRAM;

/// The first app's process id; it cannot be killed (§13.3).
pub const FIRST_PID: u32 = 1;
/// The status a killed app's parent sees (§13.3): [`status::KILLED`].
pub const KILLED_STATUS: i32 = status::KILLED as i32;
/// The status of an app that trapped (§13.6): [`status::CRASHED`].
pub const TRAPPED_STATUS: i32 = status::CRASHED as i32;
/// The largest linear memory of an app whose spawner gave no limit (§13.3).
pub const DEFAULT_MEMORY_LIMIT: u64 = 256 << 20;

/// Interest bits of `interest` (§13.3).
pub mod interest {
    pub const READABLE: u32 = 1;
    pub const WRITABLE: u32 = 2;
    /// Every bit that means something; others are `EINVAL`.
    pub const ALL: u32 = READABLE | WRITABLE;
}

/// [`EventRecord::kind`] values (§13.4).
pub mod kind {
    /// Data, a connection to accept, or the end; `id` is the descriptor.
    pub const READABLE: u32 = 1;
    /// Room to write; `id` is the descriptor.
    pub const WRITABLE: u32 = 2;
    /// The monitor ended the stream with an error; `value` is its code.
    pub const CLOSED: u32 = 3;
    /// A timer is due; `value` is its token.
    pub const TIMER: u32 = 4;
    /// A child ended; `id` is its process id, `value` its status
    /// (sign-extended).
    pub const EXITED: u32 = 5;
    /// The app was moved to this device (§19.2) and descriptor `id` could
    /// not follow it: it is closed here; `value` is what it was
    /// ([`moved`]). One per such descriptor, in the app's first batch.
    pub const MOVED: u32 = 6;
}

/// What a descriptor that could not follow a moved app was: the `value` of
/// a [`kind::MOVED`] event (§13.4), and the `what` of a snapshot's
/// `CLOSED` descriptor record (§19.1).
pub mod moved {
    /// A file.
    pub const FILE: u16 = 1;
    /// A directory (other than the root, descriptor 3).
    pub const DIRECTORY: u16 = 2;
    /// A TCP listener the app bound (or a granted one it used).
    pub const TCP_LISTENER: u16 = 3;
    /// A TCP connection.
    pub const TCP_CONNECTION: u16 = 4;
    /// A UDP socket not bound on a fabric address.
    pub const UDP_SOCKET: u16 = 5;
    /// A watch of the fabric (`fabric_watch`).
    pub const FABRIC_WATCH: u16 = 6;

    /// Whether `what` is one of the values above.
    pub const fn known(what: u16) -> bool {
        matches!(what, FILE..=FABRIC_WATCH)
    }
}

crate::wire_layout! {
    /// One event as the runtime writes it into the app's event buffer: 16
    /// bytes (§13.4).
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct EventRecord: 16, in_place {
        /// [`kind`].
        [0] pub kind: u32,
        /// Descriptor, 0 or process id.
        [4] pub id: u32,
        /// Meaning per kind.
        [8] pub value: u64,
    }
}

impl EventRecord {
    /// A `MOVED` record: descriptor `fd`, which was `what` ([`moved`]),
    /// did not follow the app.
    pub fn moved(fd: u32, what: u16) -> Self {
        Self {
            kind: kind::MOVED,
            id: fd,
            value: u64::from(what),
        }
    }

    /// An `EXITED` record for child `pid` that ended with `status`.
    pub fn exited(pid: u32, status: i32) -> Self {
        Self {
            kind: kind::EXITED,
            id: pid,
            value: i64::from(status) as u64,
        }
    }
}

/// [`ProcessRecord::state`] values (§13.5).
pub mod state {
    /// Running or ready to run.
    pub const RUNNING: u32 = 1;
    /// Waiting for a stream, a timer or an event.
    pub const WAITING: u32 = 2;
}

/// Bytes of a process name in a [`ProcessRecord`].
pub const NAME_LEN: usize = 32;

crate::wire_layout! {
    /// One process as `processes` lists it: 64 bytes (§13.5).
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct ProcessRecord: 64, in_place {
        [0] pub pid: u32,
        /// 0 for the first app.
        [4] pub parent: u32,
        /// [`state`].
        [8] pub state: u32,
        /// Open sockets.
        [12] pub sockets: u32,
        /// Guest CPU time used.
        [16] pub cpu_ns: u64,
        /// Linear memory, bytes.
        [24] pub memory: u64,
        /// UTF-8, NUL-padded ([`name_of`]).
        [32] pub name: [u8; NAME_LEN],
    }
}

impl ProcessRecord {
    /// The name up to its first NUL.
    pub fn name(&self) -> &[u8] {
        name_text(&self.name)
    }
}

/// The name recorded for an app whose argument 0 is `arg0`: its last
/// `/`-separated component, cut to [`NAME_LEN`] bytes.
pub fn name_of(arg0: &[u8]) -> [u8; NAME_LEN] {
    crate::process::name_of(arg0)
}

/// `ipc_send`'s `timeout_ms` for a one-way message (§13.7); 0 is a
/// request with the default timeout, a positive value a request waiting
/// at most that long.
pub const IPC_ONE_WAY: i32 = -1;

/// `ipc_receive`'s `wait` (§13.7).
pub mod ipc_wait {
    /// Take what is there now; `EAGAIN` if nothing is.
    pub const NOW: i32 = 0;
    /// Suspend the app (only it) until something is there.
    pub const BLOCK: i32 = 1;
}

/// [`IpcRecord::kind`] values (§13.7).
pub mod ipc_kind {
    /// A message to the service: `id` is its id (for `ipc_reply`),
    /// `flags` bit 0 says it is a request, the sender's text and the data
    /// follow in the buffer.
    pub const MESSAGE: u32 = 1;
    /// A one-way message `id` is in a provider's queue.
    pub const SENT: u32 = 2;
    /// Request `id`'s answer: the data in the buffer.
    pub const ANSWER: u32 = 3;
    /// Message `id` failed: `error` is why (`weft_control::ipc_proto::
    /// IpcError`), the fabric's message is the data.
    pub const FAILED: u32 = 4;
}

/// [`IpcRecord::flags`] bits (§13.7): those of a `MESSAGE` frame (§18).
pub mod ipc_flags {
    /// The message is a request: answer it exactly once.
    pub const REQUEST: u32 = crate::ipc_proto::send_flags::REQUEST;
}

crate::wire_layout! {
    /// What `ipc_receive` took, as it writes it at `record_out`: 32 bytes
    /// (§13.7). The variable parts go to the buffer: the sender's text
    /// first (`MESSAGE` only), then the data.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct IpcRecord: 32, in_place {
        /// [`ipc_kind`].
        [0] pub kind: u32,
        /// [`ipc_flags`] (`MESSAGE`), else 0.
        [4] pub flags: u32,
        /// The message's id (`MESSAGE`), or the id `ipc_send` gave.
        [8] pub id: u64,
        /// `FAILED`: the `IpcError` number; else 0.
        [16] pub error: u32,
        /// Bytes of the sender's text (`MESSAGE`), else 0.
        [20] pub sender_len: u32,
        /// Bytes of data.
        [24] pub data_len: u32,
        /// 0.
        [28] pub reserved: u32,
    }
}

impl IpcRecord {
    /// The bytes the buffer must hold: the sender's text and the data.
    pub fn bytes(&self) -> usize {
        self.sender_len as usize + self.data_len as usize
    }
}

/// The WASI preview 1 errnos the runtime returns (§13.1, §13.3): the
/// values of the WASI specification, as the `i32` a host function returns.
pub mod errno {
    pub const SUCCESS: i32 = 0;
    pub const ACCES: i32 = 2;
    pub const ADDRINUSE: i32 = 3;
    pub const AGAIN: i32 = 6;
    pub const BADF: i32 = 8;
    pub const BUSY: i32 = 10;
    pub const CONNREFUSED: i32 = 14;
    pub const CONNRESET: i32 = 15;
    pub const DQUOT: i32 = 19;
    pub const EXIST: i32 = 20;
    pub const FAULT: i32 = 21;
    pub const FBIG: i32 = 22;
    pub const HOSTUNREACH: i32 = 23;
    pub const ILSEQ: i32 = 25;
    pub const INVAL: i32 = 28;
    pub const IO: i32 = 29;
    pub const ISDIR: i32 = 31;
    pub const LOOP: i32 = 32;
    pub const MFILE: i32 = 33;
    pub const MSGSIZE: i32 = 35;
    pub const NAMETOOLONG: i32 = 37;
    pub const NFILE: i32 = 41;
    pub const NOENT: i32 = 44;
    pub const NOEXEC: i32 = 45;
    pub const NOSYS: i32 = 52;
    pub const NOTCONN: i32 = 53;
    pub const NOTDIR: i32 = 54;
    pub const NOTEMPTY: i32 = 55;
    pub const NOTSOCK: i32 = 57;
    pub const NOTSUP: i32 = 58;
    pub const PERM: i32 = 63;
    pub const PIPE: i32 = 64;
    pub const RANGE: i32 = 68;
    pub const ROFS: i32 = 69;
    pub const SPIPE: i32 = 70;
    pub const SRCH: i32 = 71;
    pub const TIMEDOUT: i32 = 73;
    pub const NOTCAPABLE: i32 = 76;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_records_round_trip_and_sign_extend_statuses() {
        let r = EventRecord::exited(7, -1);
        let b = r.encode();
        assert_eq!(&b[0..4], &kind::EXITED.to_le_bytes());
        assert_eq!(&b[4..8], &7u32.to_le_bytes());
        assert_eq!(&b[8..16], &u64::MAX.to_le_bytes());
        assert_eq!(EventRecord::decode(&b), r);
    }

    #[test]
    fn ipc_records_round_trip_at_their_offsets() {
        let r = IpcRecord {
            kind: ipc_kind::MESSAGE,
            flags: ipc_flags::REQUEST,
            id: 1 << 40,
            error: 0,
            sender_len: 3,
            data_len: 70_000,
            reserved: 0,
        };
        let b = r.encode();
        assert_eq!(&b[8..16], &(1u64 << 40).to_le_bytes());
        assert_eq!(&b[24..28], &70_000u32.to_le_bytes());
        assert_eq!(IpcRecord::decode(&b), r);
        assert_eq!(r.bytes(), 70_003);
    }

    #[test]
    fn ipc_records_are_the_bytes_of_protocol_13_7() {
        let message = IpcRecord {
            kind: ipc_kind::MESSAGE,
            flags: ipc_flags::REQUEST,
            id: 7,
            sender_len: 3,
            data_len: 10,
            ..IpcRecord::default()
        };
        let mut expected = [0u8; 32];
        expected[..12].copy_from_slice(&[1, 0, 0, 0, 1, 0, 0, 0, 7, 0, 0, 0]);
        expected[20] = 3;
        expected[24] = 10;
        assert_eq!(message.encode(), expected);
        let refused = IpcRecord {
            kind: ipc_kind::FAILED,
            id: 2,
            error: crate::ipc_proto::IpcError::Refused as u32,
            data_len: 11,
            ..IpcRecord::default()
        };
        let mut expected = [0u8; 32];
        expected[0] = 4;
        expected[8] = 2;
        expected[16] = 5;
        expected[24] = 11;
        assert_eq!(refused.encode(), expected);
    }

    #[test]
    fn process_records_round_trip_with_their_names() {
        let r = ProcessRecord {
            pid: 2,
            parent: 1,
            state: state::WAITING,
            sockets: 3,
            cpu_ns: 1 << 40,
            memory: 65536,
            name: name_of(b"/apps/echo-server.wasm"),
        };
        let b = r.encode();
        assert_eq!(&b[16..24], &(1u64 << 40).to_le_bytes());
        assert_eq!(ProcessRecord::decode(&b), r);
        assert_eq!(r.name(), b"echo-server.wasm");
        assert_eq!(name_of(&[b'x'; 40]), [b'x'; NAME_LEN]);
    }
}
