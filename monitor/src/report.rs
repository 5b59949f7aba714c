//! Turns why the VM stopped into the `weft` exit status and, for a crash, a
//! report on standard error naming the cause, the registers and a symbolized
//! backtrace.

use crate::exit::Stop;
use crate::guest_memory::Ram;
use crate::status::ExitStatus;
use crate::symbols::{Symbols, describe, walk};
use std::fmt::Write;
use weft_control::hypercall::{FaultReport, exception_name, pf};
use weft_control::layout::{PAGE_SIZE, USER_TOP};
use weft_control::streams::USER_DOORBELLS_ADDR;

/// What a report needs besides the stop itself.
pub struct Context<'a> {
    pub ram: &'a Ram,
    pub kernel: &'a Symbols<'a>,
    pub program: &'a Symbols<'a>,
}

/// The exit status for `stop` and the report to print (empty if none).
pub fn report(stop: &Stop, cx: &Context<'_>) -> (ExitStatus, String) {
    let tables = [cx.kernel, cx.program];
    let mut out = String::new();
    let status = match stop {
        Stop::Exited(s) => return (ExitStatus::Program(*s), out),
        Stop::Timeout => return (ExitStatus::Timeout, out),
        Stop::Signal(sig) => {
            let _ = writeln!(out, "weft: stopped by signal {sig}");
            return (ExitStatus::Signal(*sig as u8), out);
        }
        Stop::Panic {
            message,
            rip,
            rbp,
            cr3,
            ..
        } => {
            let _ = writeln!(out, "weft: guest crash: kernel panic: {message}");
            let _ = writeln!(out, "  at {}", describe(*rip, &tables));
            backtrace(&mut out, &walk(cx.ram, *cr3, *rbp, false), &tables);
            ExitStatus::Crash
        }
        Stop::Fault(r) => {
            let who = if r.from_user() {
                format!("program `{}`", cx.program.image)
            } else {
                "kernel".to_owned()
            };
            fault(&mut out, &format!("weft: guest crash: {who} fault"), r, cx);
            ExitStatus::Crash
        }
        Stop::TripleFault => {
            let _ = writeln!(
                out,
                "weft: guest crash: triple fault (the guest CPU shut down)"
            );
            ExitStatus::Crash
        }
        Stop::Violation(v) => {
            let _ = writeln!(out, "weft: guest crash: protocol violation: {v}");
            ExitStatus::Crash
        }
    };
    (status, out)
}

fn backtrace(out: &mut String, frames: &[u64], tables: &[&Symbols<'_>]) {
    let _ = writeln!(out, "  backtrace:");
    for (i, ret) in frames.iter().enumerate() {
        // A return address points after the call; name the call itself.
        let _ = writeln!(out, "    #{i} {}", describe(ret.saturating_sub(1), tables));
    }
}

/// The report of a fault in spawned process `pid` (§14.4), which ended
/// only that process.
pub fn process_fault(pid: u32, r: &FaultReport, cx: &Context<'_>) -> String {
    let mut out = String::new();
    let title = format!(
        "weft: process {pid} (`{}`) crashed with status 125",
        cx.program.image
    );
    fault(&mut out, &title, r, cx);
    out
}

/// Whether user address `addr` is in the doorbell page (§1.3).
fn in_doorbell_page(addr: u64) -> bool {
    addr.checked_sub(USER_DOORBELLS_ADDR)
        .is_some_and(|off| off < PAGE_SIZE)
}

/// Writes `title: what happened`, the registers and the backtrace.
fn fault(out: &mut String, title: &str, r: &FaultReport, cx: &Context<'_>) {
    let f = &r.frame;
    let user = r.from_user();
    let mut what = exception_name(f.vector).to_owned();
    if f.vector == 14 {
        let access = if f.error_code & pf::FETCH != 0 {
            "instruction fetch"
        } else if f.error_code & pf::WRITE != 0 {
            "write"
        } else {
            "read"
        };
        let why = if f.error_code & pf::PRESENT == 0 {
            "page not mapped"
        } else if access == "read" && in_doorbell_page(r.cr2) {
            // What the monitor injects for a program's read there (§8.2).
            "protection violation: the doorbell page may only be written"
        } else {
            "protection violation"
        };
        let ring = if f.error_code & pf::USER != 0 {
            "ring 3"
        } else {
            "ring 0"
        };
        let _ = write!(
            what,
            " at address {:#x} ({access} from {ring}, {why})",
            r.cr2
        );
    } else if f.error_code != 0 {
        let _ = write!(what, " (error code {:#x})", f.error_code);
    }
    let _ = writeln!(out, "{title}: {what}");
    let tables = [cx.kernel, cx.program];
    let _ = writeln!(out, "  at {}", describe(f.rip, &tables));
    let regs = [
        ("rax", f.rax),
        ("rbx", f.rbx),
        ("rcx", f.rcx),
        ("rdx", f.rdx),
        ("rsi", f.rsi),
        ("rdi", f.rdi),
        ("rbp", f.rbp),
        ("rsp", f.rsp),
        ("r8", f.r8),
        ("r9", f.r9),
        ("r10", f.r10),
        ("r11", f.r11),
        ("r12", f.r12),
        ("r13", f.r13),
        ("r14", f.r14),
        ("r15", f.r15),
        ("rip", f.rip),
        ("rflags", f.rflags),
        ("cs", f.cs),
        ("ss", f.ss),
        ("cr2", r.cr2),
        ("cr3", r.cr3),
    ];
    for row in regs.chunks(4) {
        let line: Vec<String> = row
            .iter()
            .map(|(n, v)| format!("{n:>6}={v:#018x}"))
            .collect();
        let _ = writeln!(out, "  {}", line.join(" "));
    }
    let mut frames = vec![f.rip + 1];
    frames.extend(walk(cx.ram, r.cr3, f.rbp, user && f.rbp < USER_TOP));
    backtrace(out, &frames, &tables);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit::Violation;
    use crate::guest_memory;

    #[test]
    fn user_page_fault_report_names_address_access_and_program() {
        let ram = guest_memory::create(1 << 20).unwrap();
        let kernel = Symbols::new("kernel", b"");
        let program = Symbols::new("fault", b"");
        let cx = Context {
            ram: &ram,
            kernel: &kernel,
            program: &program,
        };
        let mut r = FaultReport::default();
        r.frame.vector = 14;
        r.frame.cs = 0x23;
        r.frame.error_code = pf::USER;
        r.cr2 = 0xdead;
        let (status, text) = report(&Stop::Fault(r), &cx);
        assert_eq!(status, ExitStatus::Crash);
        assert!(text.contains("program `fault` fault: page fault at address 0xdead (read from ring 3, page not mapped)"), "{text}");
        assert!(text.contains("cr2=0x000000000000dead"), "{text}");
        r.frame.error_code = pf::USER | pf::PRESENT;
        r.cr2 = USER_DOORBELLS_ADDR + 8;
        let text = process_fault(4, &r, &cx);
        assert!(text.starts_with("weft: process 4 (`fault`) crashed with status 125: page fault at address 0x710000000008 (read from ring 3, protection violation: the doorbell page may only be written)\n"), "{text}");
        let (status, text) = report(&Stop::Violation(Violation::ExitStatus(300)), &cx);
        assert_eq!(status, ExitStatus::Crash);
        assert!(text.contains("protocol violation: exit status 300"));
        assert_eq!(
            report(&Stop::Exited(3), &cx),
            (ExitStatus::Program(3), String::new())
        );
    }
}
