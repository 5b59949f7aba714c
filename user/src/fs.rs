//! Files and directories under the file-system root (PROTOCOL.md §10).
