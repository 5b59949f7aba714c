//! The TCP and UDP protocols (PROTOCOL.md §11, §12).
