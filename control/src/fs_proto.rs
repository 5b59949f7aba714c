//! The file-system protocols (PROTOCOL.md §10).
