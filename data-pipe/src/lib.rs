//! Placeholder: the data pipe is being written.
#![no_std]
