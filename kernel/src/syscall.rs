//! Syscall dispatch (PROTOCOL.md §5). Arguments are allegations from ring 3:
//! every range is checked to lie in the user half before the monitor is asked
//! to read it, and the monitor checks every page is user-mapped.

use crate::{apic, hypercall, process, sched, usercopy};
use weft_abi::{ErrorCode, encode, nr};
use weft_control::hypercall::console;
use weft_control::layout::is_user_range;
use weft_control::process::ProcessRecord;
use weft_kernel_core::clock;
use weft_kernel_core::end::End;
use weft_kernel_core::pick::Wait;

/// Called by the syscall gate stub with interrupts masked.
pub extern "C" fn weft_syscall(a0: u64, a1: u64, a2: u64, _a3: u64, number: u64) -> u64 {
    encode(match number {
        nr::WRITE => write(a0, a1, a2),
        nr::EXIT => exit(a0),
        nr::SLEEP => {
            sched::block(Wait::Timer, Some(a0));
            Ok(0)
        }
        nr::WAIT => Ok(wait(a0, a1)),
        nr::MAP => process::map(a0),
        nr::SPAWN => process::spawn(a0),
        nr::KILL => process::kill(a0),
        nr::AWAIT => process::await_child(a0, a1),
        nr::PROCESSES => processes(a0, a1),
        nr::PROCESS => one_process(a0, a1),
        #[cfg(feature = "crash-test")]
        nr::CRASH => crash::crash(a0),
        _ => Err(ErrorCode::NoSyscall),
    })
}

fn write(fd: u64, addr: u64, len: u64) -> Result<u64, ErrorCode> {
    let stream = match fd {
        weft_abi::FD_STDOUT => console::STDOUT,
        weft_abi::FD_STDERR => console::STDERR,
        _ => return Err(ErrorCode::BadArgument),
    };
    if len > console::MAX_USER_WRITE {
        return Err(ErrorCode::BadLength);
    }
    if !is_user_range(addr, len) {
        return Err(ErrorCode::BadAddress);
    }
    if len == 0 {
        return Ok(0);
    }
    hypercall::console_user(stream, addr, len, process::current_root()?)?;
    Ok(len)
}

/// Blocks until the stream-interrupt count differs from `seen` or `timeout_ns`
/// passes (`u64::MAX`: no limit); returns the count.
fn wait(seen: u64, timeout_ns: u64) -> u64 {
    if apic::stream_events() == seen && timeout_ns != 0 {
        match clock::timeout(timeout_ns) {
            None => sched::block_on_streams(),
            deadline => sched::block(Wait::Streams, deadline),
        }
    }
    apic::stream_events()
}

fn exit(status: u64) -> Result<u64, ErrorCode> {
    process::end_current(End::exit(status)?, None)
}

/// Writes up to `max` process records to `buf`; returns how many exist.
fn processes(buf: u64, max: u64) -> Result<u64, ErrorCode> {
    let (records, n) = process::records();
    let shown = n.min(usize::try_from(max).unwrap_or(usize::MAX));
    write_records(buf, &records[..shown])?;
    Ok(n as u64)
}

/// Writes process `pid`'s record to `buf`.
fn one_process(pid: u64, buf: u64) -> Result<u64, ErrorCode> {
    let (records, n) = process::records();
    let record = records[..n]
        .iter()
        .find(|r| u64::from(r.pid) == pid)
        .ok_or(ErrorCode::NoProcess)?;
    write_records(buf, core::slice::from_ref(record))?;
    Ok(0)
}

fn write_records(buf: u64, records: &[ProcessRecord]) -> Result<(), ErrorCode> {
    let root = process::current_root()?;
    for (i, r) in records.iter().enumerate() {
        let at = buf
            .checked_add((i * ProcessRecord::SIZE) as u64)
            .ok_or(ErrorCode::BadAddress)?;
        usercopy::write(root, at, &r.encode())?;
    }
    Ok(())
}

/// Deliberate kernel failures for the integration tests of the crash reports.
#[cfg(feature = "crash-test")]
mod crash {
    use weft_abi::{ErrorCode, crash};

    pub fn crash(kind: u64) -> Result<u64, ErrorCode> {
        match kind {
            crash::PANIC => nested_panic(),
            crash::PAGE_FAULT => nested_fault(),
            _ => Err(ErrorCode::BadArgument),
        }
    }

    #[inline(never)]
    fn nested_panic() -> ! {
        panic!("crash test: the program asked the kernel to panic")
    }

    #[inline(never)]
    fn nested_fault() -> ! {
        // SAFETY: deliberately reads an address the kernel never maps, to exercise
        // the ring-0 page-fault report; the fault handler never returns here.
        let v = unsafe { core::ptr::read_volatile(0xFFFF_FFFF_F000_0000 as *const u64) };
        panic!("unreachable: read {v:#x} from an unmapped address")
    }
}
