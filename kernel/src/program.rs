//! The running program: its address space and anonymous memory.
//!
//! The monitor loaded the first program and built its page tables (§2.2); the
//! kernel keeps its root and the next free heap address, and maps more memory on
//! `map`.

use crate::arch::{self, cpu};
use crate::memory::{DirectMap, FRAMES};
use alloc::boxed::Box;
use core::ptr::{addr_of_mut, write_volatile};
use spin::Mutex;
use weft_control::boot::BootInfo;
use weft_control::error::ErrorCode;
use weft_control::layout::{PAGE_SIZE, USER_HEAP_TOP};
use weft_image::paging::{FrameAllocator, PageFlags, map_4k};

/// A program's kernel-side state.
pub struct Process {
    /// Guest-physical address of its PML4.
    pub root: u64,
    heap_next: u64,
    mem_size: u64,
}

static CURRENT: Mutex<Option<Box<Process>>> = Mutex::new(None);

/// Runs `f` on the current process.
pub fn with_current<R>(f: impl FnOnce(&mut Process) -> R) -> Option<R> {
    CURRENT.lock().as_deref_mut().map(f)
}

/// Records the first program and enters it at ring 3.
pub fn start(info: *mut BootInfo) -> ! {
    // SAFETY: the boot info page is the monitor's and ours alone (§2.2).
    let (p, mem_size) = unsafe { ((*info).program, (*info).mem_size) };
    *CURRENT.lock() = Some(Box::new(Process {
        root: p.root,
        heap_next: p.heap_base,
        mem_size,
    }));
    // SAFETY: as above; the stamp is a plain report for the monitor (§2.3).
    unsafe { write_volatile(addr_of_mut!((*info).stamps.program_entry), cpu::rdtsc()) };
    // SAFETY: the monitor validated the program and built `root` with the
    // kernel half shared; entry and stack are mapped user addresses (§2.2).
    unsafe { arch::enter_user(p.entry, p.stack_top, p.args_addr, p.args_len, p.root) }
}

impl Process {
    /// Maps `len` bytes (rounded up to pages) of zeroed read/write user memory.
    pub fn map_anonymous(&mut self, len: u64) -> Result<u64, ErrorCode> {
        if len == 0 {
            return Err(ErrorCode::BadLength);
        }
        let bytes = len
            .checked_next_multiple_of(PAGE_SIZE)
            .ok_or(ErrorCode::BadLength)?;
        let start = self.heap_next;
        let end = start
            .checked_add(bytes)
            .filter(|e| *e <= USER_HEAP_TOP)
            .ok_or(ErrorCode::OutOfMemory)?;
        let flags = PageFlags {
            writable: true,
            user: true,
            executable: false,
            global: false,
        };
        let mut mem = DirectMap::new(self.mem_size);
        let mut frames = FRAMES.lock();
        let mut vaddr = start;
        while vaddr < end {
            let frame = frames.alloc_zeroed().ok_or(ErrorCode::OutOfMemory)?;
            map_4k(&mut mem, &mut *frames, self.root, vaddr, frame, flags)
                .map_err(|_| ErrorCode::OutOfMemory)?;
            vaddr += PAGE_SIZE;
        }
        self.heap_next = end;
        Ok(start)
    }
}
