//! `weft_monitor`: the Weft monitor as a library. It boots the Weft kernel
//! in a KVM virtual machine, runs one program in it (and the processes that
//! program spawns), relays their streams, and reports how the guest ended.
//! The `weft` binary (`src/main.rs`) is its command line and its bundled
//! programs; everything else is here, and unit-tests without a built guest.
//!
//! Module map:
//!
//! - the VMM: `vm` + `cpuid` (KVM: the VM, its vCPU, the `KVM_RUN`
//!   loop's one call), `guest_memory` (guest RAM and the pipe regions'
//!   memory), `kvm_streams` (the VM as the relay sees it), `affinity`
//!   (which host CPU each thread runs on), `host` (every other host call,
//!   behind safe wrappers);
//! - the boot state, built before the first guest instruction: `boot`
//!   (what goes where), `address_space` (page tables of the kernel and of
//!   each program), `loader` (ELF segments into an address space),
//!   `descriptors` (GDT, TSS, IDT);
//! - the guest's requests: `exit` (the pure exit dispatcher, tested
//!   against a fake process host), `stray_mmio` (a program's access to
//!   memory that is not RAM, refused as a page fault in the program),
//!   `processes` + `process_memory` (the
//!   process host: spawned programs' address spaces and memory),
//!   [`catalog`] (the programs a guest may name, supplied by the caller),
//!   [`process_view`] (the processes read from the host: the kernel's
//!   status page and the process host's figures);
//! - [`streams`]: the relay, a thread that serves every stream of the guest
//!   (files, TCP, UDP, standard streams, a device guest's agent, driven
//!   through [`streams::device_link`]'s [`streams::DeviceHandle`], and its
//!   programs' fabric calls, handed over a [`streams::FabricLink`]), reaching
//!   the VMM only through its [`streams::Vmm`] trait;
//! - the end: `symbols` + `report` (crash reports), `stats`
//!   (`--stats`), [`status`] (exit statuses), `stopper` (`--timeout` and
//!   stop signals);
//! - [`run`]: the orchestration of one `weft run`; [`sandbox`]: what
//!   `weft run` gives up once its VM is built.
//!
//! Dependencies point one way: `run` → the VMM, boot, exit, processes and
//! the relay; the process host → boot and the relay's region table (through
//! `processes::Regions`); the relay → nothing of the VMM.

mod address_space;
mod affinity;
pub mod aot;
mod boot;
pub mod catalog;
mod cpuid;
pub mod daemon;
mod descriptors;
mod exit;
mod gdb;
mod guest_memory;
mod host;
mod kvm_streams;
mod loader;
mod process_memory;
pub mod process_view;
mod processes;
mod qemu;
mod report;
pub mod run;
pub mod sandbox;
mod stats;
pub mod status;
mod stopper;
mod stray_mmio;
pub mod streams;
mod symbols;
mod vm;
