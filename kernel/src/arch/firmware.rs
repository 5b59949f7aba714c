//! The firmware for QEMU (PROTOCOL.md §22): from the reset state (real
//! mode, CS base 0xFFFF_0000) through 32-bit protected mode to 64-bit mode
//! in the CPU state Weft's own monitor sets directly (§2.4), then the
//! kernel's entry. It lies in a section the kernel never loads; the monitor
//! copies it to the start of the ROM at `ROM_BASE`, so every address here
//! is the ROM's, computed from label distances (the section needs no
//! relocation). About 60 instructions, run once.
//!
//! Under Weft's own monitor none of this runs.

use core::arch::global_asm;
use weft_control::firmware::{PARAMS, ROM_BASE, flags};
use weft_control::layout::selector;

global_asm!(
    ".pushsection .weft_firmware, \"\", @progbits",
    ".code16",
    "fw_start:",
    "    cli",
    "    cld",
    "    lgdtl %cs:(fw_gdtr - fw_start)",
    "    movl %cr0, %eax",
    "    orl $1, %eax",
    "    movl %eax, %cr0",
    "    ljmpl $0x08, $({rom} + fw_32 - fw_start)",
    ".code32",
    "fw_32:",
    "    movw $0x10, %ax",
    "    movw %ax, %ds",
    "    movw %ax, %es",
    "    movw %ax, %ss",
    "    movl ${params}, %ebx",
    // The local APIC as §2.4 has it: spurious vector 255 and enabled, the
    // timer one-shot on its vector, divide by 1.
    "    testl ${xapic}, 40(%ebx)",
    "    jz 1f",
    "    movl $0x1FF, 0xFEE000F0",
    "    movl $0x20, 0xFEE00320",
    "    movl $0xB, 0xFEE003E0",
    "    jmp 2f",
    "1:",
    "    movl $0x1B, %ecx",
    "    rdmsr",
    "    orl $0xC00, %eax",
    "    wrmsr",
    "    xorl %edx, %edx",
    "    movl $0x80F, %ecx",
    "    movl $0x1FF, %eax",
    "    wrmsr",
    "    movl $0x832, %ecx",
    "    movl $0x20, %eax",
    "    wrmsr",
    "    movl $0x83E, %ecx",
    "    movl $0xB, %eax",
    "    wrmsr",
    "2:",
    // PAE | PGE | OSFXSR | OSXMMEXCPT; the kernel's tables; SCE | LME |
    // NXE; then paging on: long mode, in the identity-mapped ROM.
    "    movl $0x6A0, %eax",
    "    movl %eax, %cr4",
    "    movl 24(%ebx), %eax",
    "    movl %eax, %cr3",
    "    movl $0xC0000080, %ecx",
    "    movl $0x901, %eax",
    "    xorl %edx, %edx",
    "    wrmsr",
    "    movl $0x80010033, %eax",
    "    movl %eax, %cr0",
    "    ljmpl $0x18, $({rom} + fw_64 - fw_start)",
    ".code64",
    "fw_64:",
    "    movl ${params}, %ebx",
    "    movq 8(%rbx), %rsp",
    "    lgdt 54(%rbx)",
    "    lidt 70(%rbx)",
    "    movw ${kdata}, %ax",
    "    movw %ax, %ds",
    "    movw %ax, %es",
    "    movw %ax, %ss",
    "    movw %ax, %fs",
    "    movw %ax, %gs",
    "    pushq ${kcode}",
    "    leaq 3f(%rip), %rax",
    "    pushq %rax",
    "    lretq",
    "3:",
    // The monitor marks the TSS descriptor busy (KVM takes TR as is);
    // `ltr` wants it available, and marks it busy again.
    "    movq 56(%rbx), %rax",
    "    andb $0xFD, {tss} + 5(%rax)",
    "    movw ${tss}, %ax",
    "    ltr %ax",
    "    movl $0xC0000101, %ecx",
    "    movl 32(%rbx), %eax",
    "    movl 36(%rbx), %edx",
    "    wrmsr",
    "    movq 16(%rbx), %rdi",
    "    movq 0(%rbx), %rax",
    "    pushq $2",
    "    popfq",
    "    xorl %ebx, %ebx",
    "    xorl %ecx, %ecx",
    "    xorl %edx, %edx",
    "    xorl %esi, %esi",
    "    xorl %ebp, %ebp",
    "    jmpq *%rax",
    // Flat 32-bit code, data, 64-bit code: only for the way up. Their
    // accessed bits are set: the CPU would otherwise write them, and the
    // table is in ROM (KVM cannot complete that write and retries the
    // instruction forever).
    ".balign 8",
    "fw_gdt:",
    "    .quad 0, 0x00CF9B000000FFFF, 0x00CF93000000FFFF, 0x00AF9B000000FFFF",
    "fw_gdtr:",
    "    .word 31",
    "    .long {rom} + fw_gdt - fw_start",
    ".popsection",
    rom = const ROM_BASE,
    params = const PARAMS,
    xapic = const flags::XAPIC,
    kdata = const selector::KERNEL_DATA,
    kcode = const selector::KERNEL_CODE,
    tss = const selector::TSS,
    options(att_syntax),
);
