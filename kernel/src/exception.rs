//! CPU exceptions (PROTOCOL.md §2.5, §3.4).
//!
//! A fault is reported to the monitor with all registers, `CR2` and `CR3`;
//! the monitor names it and symbolizes the stack. A fault at ring 3 ends
//! only that process (status 125; the first program's ends the guest); a
//! fault in the kernel stops the VM with status 125.

use crate::arch::cpu;
use crate::{hypercall, process};
use weft_control::hypercall::{FaultFrame, FaultReport};

/// Called by the common exception stub with the frame it built on the stack.
pub extern "C" fn weft_exception(frame: *const FaultFrame) -> ! {
    // SAFETY: the stub passes the address of the `FaultFrame` it just pushed on
    // the current stack (§3.4); it stays valid because this never returns.
    let frame = unsafe { frame.read() };
    let report = FaultReport {
        frame,
        cr2: cpu::cr2(),
        cr3: cpu::cr3(),
    };
    if report.from_user() {
        process::fault(&report)
    }
    hypercall::fault(&report)
}
