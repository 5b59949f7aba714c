//! Assembly entry points and the kernel manifest (PROTOCOL.md §2.1, §2.5, §5.1).
//!
//! Every path here is straight-line and short: ring 0 is emulated on the machines
//! Weft targets (~0.6 µs per instruction), so the monitor prepares all boot state
//! and these stubs only save what the Rust handlers need.

use core::arch::global_asm;
use weft_control::boot::{MANIFEST_MAGIC, STAMP_KERNEL_ENTRY_OFFSET};
use weft_control::layout::{selector, vector};

// Boot entry. The monitor starts the CPU here in 64-bit mode with `rsp` at the top
// of the boot stack, `gs` at the per-CPU block and `rdi` = the boot info (§2.3).
global_asm!(
    ".pushsection .text.entry, \"ax\"",
    ".global _start",
    "_start:",
    "    rdtsc",
    "    shl rdx, 32",
    "    or rax, rdx",
    "    mov [rdi + {stamp}], rax",
    "    xor ebp, ebp",
    "    call {main}",
    "    ud2",
    ".popsection",
    stamp = const STAMP_KERNEL_ENTRY_OFFSET,
    main = sym crate::kernel_main,
);

// Syscall entry: the `int3` gate (vector 3, DPL 3; §5.1). The CPU has switched
// to the kernel stack (TSS.RSP0) and masked interrupts; `int3` is a trap, so the
// saved RIP is already past it. Calls `weft_syscall(a0, a1, a2, a3, nr)`;
// scratch registers are zeroed before returning so no kernel value leaks to the
// program.
//
// Why `int3`: under nested PVM, `syscall` was observed to jump to IA32_LSTAR
// without leaving CPL 3 and `int 0x80` to raise #UD, while exceptions raised
// at ring 3 are delivered correctly. All cost one guest-kernel entry.
global_asm!(
    ".pushsection .text, \"ax\"",
    ".global weft_syscall_entry",
    "weft_syscall_entry:",
    "    push rbp",
    "    xor ebp, ebp",
    "    mov rcx, r10",
    "    mov r8, rax",
    "    call {dispatch}",
    "    pop rbp",
    "    xor edi, edi",
    "    xor esi, esi",
    "    xor edx, edx",
    "    xor ecx, ecx",
    "    xor r8d, r8d",
    "    xor r9d, r9d",
    "    xor r10d, r10d",
    "    xor r11d, r11d",
    "    iretq",
    ".popsection",
    dispatch = sym crate::syscall::weft_syscall,
);

// Exception vectors 0..=31 except 3, the syscall gate (§2.5). Each pushes a zero error code when the CPU
// pushes none, then its vector, then jumps to the common path, which pushes the
// general-purpose registers so the stack holds a `FaultFrame` (§3.4). The
// handler returns only when a debugger resumes the program (§21).
global_asm!(
    ".pushsection .text, \"ax\"",
    ".macro WEFT_EXC_NOERR n",
    "weft_vector_\\n:",
    "    push 0",
    "    push \\n",
    "    jmp weft_exception_common",
    ".endm",
    ".macro WEFT_EXC_ERR n",
    "weft_vector_\\n:",
    "    push \\n",
    "    jmp weft_exception_common",
    ".endm",
    "WEFT_EXC_NOERR 0", "WEFT_EXC_NOERR 1", "WEFT_EXC_NOERR 2",
    "WEFT_EXC_NOERR 4", "WEFT_EXC_NOERR 5", "WEFT_EXC_NOERR 6", "WEFT_EXC_NOERR 7",
    "WEFT_EXC_ERR 8", "WEFT_EXC_NOERR 9", "WEFT_EXC_ERR 10", "WEFT_EXC_ERR 11",
    "WEFT_EXC_ERR 12", "WEFT_EXC_ERR 13", "WEFT_EXC_ERR 14", "WEFT_EXC_NOERR 15",
    "WEFT_EXC_NOERR 16", "WEFT_EXC_ERR 17", "WEFT_EXC_NOERR 18", "WEFT_EXC_NOERR 19",
    "WEFT_EXC_NOERR 20", "WEFT_EXC_ERR 21", "WEFT_EXC_NOERR 22", "WEFT_EXC_NOERR 23",
    "WEFT_EXC_NOERR 24", "WEFT_EXC_NOERR 25", "WEFT_EXC_NOERR 26", "WEFT_EXC_NOERR 27",
    "WEFT_EXC_NOERR 28", "WEFT_EXC_ERR 29", "WEFT_EXC_ERR 30", "WEFT_EXC_NOERR 31",
    "weft_exception_common:",
    "    push rax", "    push rbx", "    push rcx", "    push rdx",
    "    push rsi", "    push rdi", "    push rbp", "    push r8",
    "    push r9", "    push r10", "    push r11", "    push r12",
    "    push r13", "    push r14", "    push r15",
    "    mov rdi, rsp",
    "    xor ebp, ebp",
    "    call {handler}",
    // A debugger resumed the program (§21): back to ring 3 with the frame.
    "    pop r15", "    pop r14", "    pop r13", "    pop r12",
    "    pop r11", "    pop r10", "    pop r9", "    pop r8",
    "    pop rbp", "    pop rdi", "    pop rsi", "    pop rdx",
    "    pop rcx", "    pop rbx", "    pop rax",
    "    add rsp, 16",
    "    iretq",
    // Local APIC interrupts: acknowledge (x2APIC EOI), count the stream
    // interrupt (the timer's needs no count: its handler is the scheduler,
    // which re-checks every deadline; it forgets the deadline the timer
    // was armed for, so the next decision arms it again), and, if the
    // interrupt came from ring 3, let the scheduler run (it may switch to
    // another process and come back here later). From ring 0 (the idle
    // halt) nothing else happens: the scheduler's loop re-checks.
    // Alignment: the CPU pushed 5 words onto the 16-aligned RSP0; 9 more
    // make 112 bytes, so the call is made with RSP 16-aligned.
    // The xAPIC variants (`xapic` = the EOI register's kernel address)
    // write the register in memory instead (§2.5).
    ".macro WEFT_IRQ name, counter=, fired=, xapic=",
    "\\name:",
    "    push rax", "    push rcx", "    push rdx",
    ".ifb \\xapic",
    "    mov ecx, 0x80B",
    "    xor eax, eax",
    "    xor edx, edx",
    "    wrmsr",
    ".else",
    "    movabs rax, \\xapic",
    "    mov dword ptr [rax], 0",
    ".endif",
    ".ifnb \\counter",
    "    lock inc qword ptr [rip + \\counter]",
    ".endif",
    ".ifnb \\fired",
    "    mov qword ptr [rip + \\fired], 0",
    ".endif",
    "    test byte ptr [rsp + 32], 3",
    "    jz 2f",
    "    push rsi", "    push rdi", "    push r8", "    push r9", "    push r10", "    push r11",
    "    call {preempt}",
    "    pop r11", "    pop r10", "    pop r9", "    pop r8", "    pop rdi", "    pop rsi",
    "2:",
    "    pop rdx", "    pop rcx", "    pop rax",
    "    iretq",
    ".endm",
    "WEFT_IRQ weft_timer_entry, , {armed_at}",
    "WEFT_IRQ weft_stream_entry, {events}",
    "WEFT_IRQ weft_timer_entry_xapic, , {armed_at}, {eoi}",
    "WEFT_IRQ weft_stream_entry_xapic, {events}, , {eoi}",
    // Spurious interrupts need no EOI.
    "weft_spurious_entry:",
    "    iretq",
    ".popsection",
    handler = sym crate::exception::weft_exception,
    events = sym crate::apic::STREAM_EVENTS,
    preempt = sym crate::sched::weft_preempt,
    armed_at = sym crate::sched::ARMED_AT,
    eoi = const weft_control::layout::XAPIC_BASE + 0xB0,
);

// The kernel manifest (§2.1), read by the monitor from the ELF before boot.
global_asm!(
    ".pushsection .weft_manifest, \"a\"",
    ".balign 8",
    "    .quad {magic}",
    "    .long {version}",
    "    .long {count}",
    "    .quad weft_vector_0, weft_vector_1, weft_vector_2, weft_syscall_entry",
    "    .quad weft_vector_4, weft_vector_5, weft_vector_6, weft_vector_7",
    "    .quad weft_vector_8, weft_vector_9, weft_vector_10, weft_vector_11",
    "    .quad weft_vector_12, weft_vector_13, weft_vector_14, weft_vector_15",
    "    .quad weft_vector_16, weft_vector_17, weft_vector_18, weft_vector_19",
    "    .quad weft_vector_20, weft_vector_21, weft_vector_22, weft_vector_23",
    "    .quad weft_vector_24, weft_vector_25, weft_vector_26, weft_vector_27",
    "    .quad weft_vector_28, weft_vector_29, weft_vector_30, weft_vector_31",
    "    .quad weft_timer_entry",
    "    .quad weft_stream_entry",
    "    .quad weft_spurious_entry",
    "    .quad weft_timer_entry_xapic",
    "    .quad weft_stream_entry_xapic",
    ".popsection",
    magic = const MANIFEST_MAGIC,
    version = const weft_control::INTERFACE_VERSION,
    count = const vector::TABLE_LEN,
);

// First entry into ring 3 (§5.1): rdi = entry, rsi = stack top, rdx = arguments
// block address, rcx = its length, r8 = the program's page-table root. Builds an
// interrupt frame (user SS, RSP, RFLAGS with IF, user CS, RIP) and returns into it.
global_asm!(
    ".pushsection .text, \"ax\"",
    ".global weft_enter_user",
    "weft_enter_user:",
    "    mov cr3, r8",
    "    push {user_ss}",
    "    push rsi",
    "    push 0x202",
    "    push {user_cs}",
    "    push rdi",
    "    mov rdi, rdx",
    "    mov rsi, rcx",
    "    xor eax, eax", "    xor ebx, ebx", "    xor ecx, ecx", "    xor edx, edx",
    "    xor ebp, ebp", "    xor r8d, r8d", "    xor r9d, r9d", "    xor r10d, r10d",
    "    xor r11d, r11d", "    xor r12d, r12d", "    xor r13d, r13d", "    xor r14d, r14d",
    "    xor r15d, r15d",
    "    iretq",
    ".popsection",
    user_ss = const selector::USER_DATA,
    user_cs = const selector::USER_CODE,
);

// Process switch (§14.5): saves the callee-saved registers on the current
// kernel stack, stores RSP at `[rdi]`, loads `rsi` as the new RSP and pops
// the next process's registers; `ret` resumes wherever that process
// switched out (or, for a new process, `weft_first_entry`). The caller has
// already loaded the next process's CR3 and RSP0.
global_asm!(
    ".pushsection .text, \"ax\"",
    ".global weft_switch",
    "weft_switch:",
    "    push rbp",
    "    push rbx",
    "    push r12",
    "    push r13",
    "    push r14",
    "    push r15",
    "    mov [rdi], rsp",
    "    mov rsp, rsi",
    "    pop r15",
    "    pop r14",
    "    pop r13",
    "    pop r12",
    "    pop rbx",
    "    pop rbp",
    "    ret",
    // A new process's first run: its kernel stack holds the arguments
    // block's address and length, then an interrupt frame (§5.1).
    ".global weft_first_entry",
    "weft_first_entry:",
    "    pop rdi",
    "    pop rsi",
    "    xor eax, eax",
    "    xor ebx, ebx",
    "    xor ecx, ecx",
    "    xor edx, edx",
    "    xor ebp, ebp",
    "    xor r8d, r8d",
    "    xor r9d, r9d",
    "    xor r10d, r10d",
    "    xor r11d, r11d",
    "    xor r12d, r12d",
    "    xor r13d, r13d",
    "    xor r14d, r14d",
    "    xor r15d, r15d",
    "    iretq",
    ".popsection",
);

unsafe extern "C" {
    fn weft_switch(save_rsp: *mut u64, next_rsp: u64);
    fn weft_first_entry();
    fn weft_enter_user(entry: u64, stack_top: u64, args_addr: u64, args_len: u64, root: u64) -> !;
}

/// Switches to the program's address space and enters it at ring 3.
///
/// # Safety
///
/// `root` must be the guest-physical address of a PML4 whose kernel half equals
/// the running kernel's, and `entry`/`stack_top` must be canonical user addresses
/// mapped in it (the monitor validated the program and built that table, §2.2).
pub unsafe fn enter_user(
    entry: u64,
    stack_top: u64,
    args_addr: u64,
    args_len: u64,
    root: u64,
) -> ! {
    // SAFETY: the caller guarantees the address space; the stub never returns.
    unsafe { weft_enter_user(entry, stack_top, args_addr, args_len, root) }
}

/// Words a new process's kernel stack starts with, lowest address first:
/// six callee-saved registers (zero) for `weft_switch` to pop, its return
/// address, the arguments block's address and length, then the interrupt
/// frame `iretq` consumes.
pub const FIRST_FRAME_WORDS: usize = 6 + 1 + 2 + 5;

/// The initial kernel-stack contents of a new process entering `entry` with
/// stack `stack_top` and the arguments block `[args_addr, +args_len)`.
pub fn first_frame(
    entry: u64,
    stack_top: u64,
    args_addr: u64,
    args_len: u64,
) -> [u64; FIRST_FRAME_WORDS] {
    [
        0,
        0,
        0,
        0,
        0,
        0,
        weft_first_entry as *const () as u64,
        args_addr,
        args_len,
        entry,
        u64::from(selector::USER_CODE),
        0x202,
        stack_top,
        u64::from(selector::USER_DATA),
    ]
}

/// Switches from the running process to the one whose saved stack pointer
/// is `next_rsp`, storing the running one's at `save_rsp`; returns when
/// some later switch resumes the running process.
///
/// # Safety
///
/// Interrupts are masked; CR3 and the TSS's RSP0 already name the next
/// process; `next_rsp` was stored by a previous switch of that process or
/// points at a [`first_frame`] on its kernel stack; `save_rsp` is valid for
/// a write.
pub unsafe fn switch(save_rsp: *mut u64, next_rsp: u64) {
    // SAFETY: forwarded to the caller.
    unsafe { weft_switch(save_rsp, next_rsp) }
}
