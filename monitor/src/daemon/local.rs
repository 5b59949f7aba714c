//! The daemon's local socket (`DIR/daemon.sock`, PROTOCOL.md §16.5): the
//! CLI's commands, one request and one answer per connection. A client
//! that sends nothing or garbage gets an error answer or is dropped after
//! [`CLIENT_LIMIT`]; it never holds the daemon.

use super::device::{MAX_MODULE, check_module};
use super::fabric::Daemon;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::net::UnixListener;
use weft_fabric::local::{self, LocalRequest, LocalResponse, Program};

/// How long a client may take to send its request.
pub const CLIENT_LIMIT: Duration = Duration::from_secs(10);

/// Whether a daemon answers on `dir`'s socket now.
pub fn daemon_running(dir: &Path) -> bool {
    std::os::unix::net::UnixStream::connect(local::socket_path(dir)).is_ok()
}

/// Binds the socket (replacing a stale one: check [`daemon_running`]
/// first), owner-only.
pub fn bind(dir: &Path) -> std::io::Result<UnixListener> {
    let path = local::socket_path(dir);
    match std::fs::remove_file(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let listener = UnixListener::bind(&path)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// Serves the CLI's commands until the listener fails.
pub async fn serve(daemon: Arc<Daemon>, listener: UnixListener) {
    while let Ok((stream, _)) = listener.accept().await {
        let daemon = daemon.clone();
        tokio::spawn(async move {
            let mut stream = stream;
            let read = async {
                let (request, fd) = local::read_request(&mut stream).await?;
                with_module(request, fd).await
            };
            let request = tokio::time::timeout(CLIENT_LIMIT, read).await;
            let (mut reader, mut writer) = stream.into_split();
            let response = match request {
                Ok(Ok(LocalRequest::Watch)) => {
                    // Until the watcher goes (its end reads as closed).
                    let mut probe = [0u8; 1];
                    tokio::select! {
                        () = daemon.watch(&mut writer) => {}
                        _ = reader.read(&mut probe) => {}
                    }
                    return;
                }
                Ok(Ok(request)) => daemon.command(request).await,
                Ok(Err(message)) => LocalResponse::Error { message },
                Err(_) => LocalResponse::Error {
                    message: format!("no request within {CLIENT_LIMIT:?}"),
                },
            };
            let _ = local::write_response(&mut writer, &response).await;
        });
    }
}

/// `request` with the module file its descriptor `fd` came for read in: a
/// spawn of a [`Program::File`] becomes one of its bytes (at most
/// `MAX_MODULE`, and a Wasm module's). Only a regular file is read (one
/// the CLI opened, bounded in size), so the read cannot block for long;
/// it runs off the runtime's threads all the same.
async fn with_module(request: LocalRequest, fd: Option<OwnedFd>) -> Result<LocalRequest, String> {
    let LocalRequest::Spawn {
        device,
        program: Program::File { name },
        args,
        engine,
    } = request
    else {
        return Ok(request);
    };
    let fd = fd.ok_or_else(|| no_descriptor(&name))?;
    let read = tokio::task::spawn_blocking(move || {
        let file = std::fs::File::from(fd);
        // A pipe or a device could block the read.
        if !file.metadata().is_ok_and(|m| m.is_file()) {
            return Err(format!("{name}: not a regular file"));
        }
        let mut bytes = Vec::new();
        file.take(MAX_MODULE + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| format!("{name}: {e}"))?;
        check_module(&name, &bytes)?;
        Ok(bytes)
    });
    let bytes = read
        .await
        .map_err(|e| format!("reading the module: {e}"))??;
    Ok(LocalRequest::Spawn {
        device,
        program: Program::Module { bytes },
        args,
        engine,
    })
}

/// Why a [`Program::File`] named `name` cannot be read.
pub(super) fn no_descriptor(name: &str) -> String {
    format!("{name}: its descriptor did not come with the request")
}
