//! CPU exceptions (PROTOCOL.md §2.5, §3.4).
//!
//! Every exception is fatal for now: a fault in the program or in the kernel is
//! reported to the monitor with all registers, `CR2` and `CR3`, and the monitor
//! names the fault, symbolizes the stack and stops the VM with status 125.

use crate::arch::cpu;
use crate::hypercall;
use weft_control::hypercall::{FaultFrame, FaultReport};

/// Called by the common exception stub with the frame it built on the stack.
pub extern "C" fn weft_exception(frame: *const FaultFrame) -> ! {
    // SAFETY: the stub passes the address of the `FaultFrame` it just pushed on
    // the current stack (§3.4); it stays valid because this never returns.
    let frame = unsafe { frame.read() };
    hypercall::fault(&FaultReport {
        frame,
        cr2: cpu::cr2(),
        cr3: cpu::cr3(),
    })
}
