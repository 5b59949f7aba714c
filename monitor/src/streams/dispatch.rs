//! The first frame of a stream (PROTOCOL.md §9.2): it names the protocol and
//! its parameters, and the stream is handed to that protocol's module, which
//! serves it to the end in this task, with what it needs of the region's
//! [`Services`].

use super::RelayStats;
use super::budget::Budgets;
use super::device::{self, DeviceSlot};
use super::fabric::{self, FabricLink};
use super::framed::{Failure, StreamIo};
use super::policy::Policy;
use super::region::Shared;
use super::tcp;
use std::sync::Arc;
use weft_control::frame::{Code, Decoder, VERSION, kind};

/// What the protocol tasks of one region share besides the region itself.
pub struct Services {
    /// What the guest may reach (one for the VM).
    pub policy: Arc<Policy>,
    /// The relay's figures (one for the VM).
    pub stats: Arc<RelayStats>,
    /// The guest's budgets (one for the VM).
    pub budgets: Arc<Budgets>,
    /// TCP connections the region's listeners accepted and announced, not
    /// yet taken (§11).
    pub pending: tcp::Pending,
    /// The guest's device link (§15), in the first program's region only.
    pub device: Option<Arc<DeviceSlot>>,
    /// The daemon's end of the guest's fabric calls (§17), in every region.
    pub fabric: Option<FabricLink>,
}

/// Serves one stream the control pipe opened.
pub async fn serve(mut io: StreamIo, shared: Arc<Shared>, services: Arc<Services>) {
    let mut body = Vec::new();
    let header = match io.read_frame(&mut body).await {
        Ok(Some(h)) => h,
        // Closed before naming a protocol: nothing to serve.
        Ok(None) => return,
        Err(f) => return io.fail(f).await,
    };
    let params = match version_and_params(&body) {
        Ok(p) => p,
        Err(f) => return io.fail(f).await,
    };
    match header.kind {
        kind::FILE_OPEN | kind::FS_SESSION => {
            super::fs::serve(io, header.kind, params, &services.policy).await
        }
        kind::TCP_LISTEN | kind::TCP_CONNECT | kind::TCP_ACCEPT => {
            tcp::serve(io, header.kind, params, &shared, &services).await
        }
        kind::UDP_BIND => {
            let (policy, fabric) = (&services.policy, services.fabric.as_ref());
            super::udp::serve(io, params, shared.index(), policy, fabric).await
        }
        kind::DEVICE => device::serve(io, params, services.device.as_deref()).await,
        kind::FABRIC => fabric::serve(io, params, services.fabric.as_ref()).await,
        kind::IPC => super::ipc::serve(io, params, services.fabric.as_ref(), &shared).await,
        kind::MOVE => super::mover::serve(io, params, services.fabric.as_ref(), &shared).await,
        other => {
            io.fail(Failure::protocol(format!(
                "first frame kind {other:#06x} names no protocol"
            )))
            .await
        }
    }
}

/// Checks the version every first frame starts with and returns the
/// protocol's parameters after it.
fn version_and_params(body: &[u8]) -> Result<&[u8], Failure> {
    let mut d = Decoder::new(body);
    let version = d.u32().map_err(Failure::protocol)?;
    if version != VERSION {
        return Err(Failure::new(
            Code::Version,
            format!("stream protocol version {version}; this monitor speaks {VERSION}"),
        ));
    }
    Ok(d.rest())
}
