//! TCP and UDP sockets (PROTOCOL.md §11, §12).
