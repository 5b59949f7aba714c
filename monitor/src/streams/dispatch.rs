//! The first frame of a stream (PROTOCOL.md §9.2): it names the protocol and
//! its parameters, and the stream is handed to that protocol's module, which
//! serves it to the end in this task.

use super::framed::{Failure, StreamIo};
use super::region::Shared;
use std::sync::Arc;
use weft_control::frame::{Code, Decoder, VERSION, kind};

/// Serves one stream the control pipe opened.
pub async fn serve(mut io: StreamIo, shared: Arc<Shared>) {
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
            super::fs::serve(io, header.kind, params, shared).await
        }
        kind::TCP_LISTEN | kind::TCP_CONNECT | kind::TCP_ACCEPT => {
            super::tcp::serve(io, header.kind, params, shared).await
        }
        kind::UDP_BIND => super::udp::serve(io, header.kind, params, shared).await,
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
