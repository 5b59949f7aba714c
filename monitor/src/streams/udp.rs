//! Placeholder for the udp protocol handler.

use super::Shared;
use super::framed::{Failure, StreamIo};
use std::sync::Arc;
use weft_control::frame::Code;

/// Serves a stream whose first frame was `kind` with `params`.
pub async fn serve(io: StreamIo, kind: u16, params: &[u8], shared: Arc<Shared>) {
    let _ = (kind, params, shared);
    io.fail(Failure::new(Code::Unsupported, "not built yet"))
        .await
}
