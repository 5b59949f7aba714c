//! CPU exceptions (PROTOCOL.md §2.5, §3.4).
//!
//! A fault is reported to the monitor with all registers, `CR2` and `CR3`;
//! the monitor names it and symbolizes the stack. An exception at ring 3 is
//! first offered to a debugger (§21), which may resume the program;
//! otherwise it ends only that process (status 125; the first program's
//! ends the guest). A fault in the kernel stops the VM with status 125.

use crate::arch::cpu;
use crate::{hypercall, process};
use weft_control::hypercall::{FaultFrame, FaultReport};

/// Called by the common exception stub with the frame it built on the
/// stack; returns only to resume the program with the frame as it is then.
pub extern "C" fn weft_exception(frame: *mut FaultFrame) {
    // SAFETY: the stub passes the address of the `FaultFrame` it just pushed on
    // the current stack (§3.4); it stays valid until the stub pops it.
    let frame_now = unsafe { frame.read() };
    let report = FaultReport {
        frame: frame_now,
        cr2: cpu::cr2(),
        cr3: cpu::cr3(),
    };
    if report.from_user() {
        if let Some(resumed) = hypercall::debug(&report) {
            // SAFETY: as above.
            unsafe { frame.write(resumed) };
            return;
        }
        process::fault(&report)
    }
    hypercall::fault(&report)
}
