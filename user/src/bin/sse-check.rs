//! `sse-check SEED MS`: fills the sixteen SSE registers with a pattern of
//! SEED and spins for MS milliseconds, checking after every round that
//! they still hold it. Several run side by side to show that the kernel
//! keeps each process's SSE registers its own across switches (compiled
//! Wasm uses them). Exits 0 if they were kept, 1 (naming the round) if
//! not, 2 for bad arguments.
#![no_std]
#![no_main]

use core::arch::asm;
use weft_user::{Args, eprintln, println, time};

weft_user::entry!(main);

/// Loads every XMM register with `seed` (register `i` gets `seed + i` in
/// each 32-bit lane), then spins `spins` times and returns whether they
/// all still hold it.
fn round(seed: u32, spins: u32) -> bool {
    let mut pattern = [0u32; 64];
    for (i, w) in pattern.iter_mut().enumerate() {
        *w = seed.wrapping_mul(0x9E37_79B9).wrapping_add((i / 4) as u32);
    }
    let mut back = [0u32; 64];
    // SAFETY: the registers are declared clobbered; both arrays are 256
    // bytes (16 registers of 16 bytes), read and written unaligned. The
    // spin between the load and the store touches no XMM register, so only
    // a switch that failed to keep them could change them.
    unsafe {
        asm!(
            "movdqu xmm0, [{p}]", "movdqu xmm1, [{p} + 16]",
            "movdqu xmm2, [{p} + 32]", "movdqu xmm3, [{p} + 48]",
            "movdqu xmm4, [{p} + 64]", "movdqu xmm5, [{p} + 80]",
            "movdqu xmm6, [{p} + 96]", "movdqu xmm7, [{p} + 112]",
            "movdqu xmm8, [{p} + 128]", "movdqu xmm9, [{p} + 144]",
            "movdqu xmm10, [{p} + 160]", "movdqu xmm11, [{p} + 176]",
            "movdqu xmm12, [{p} + 192]", "movdqu xmm13, [{p} + 208]",
            "movdqu xmm14, [{p} + 224]", "movdqu xmm15, [{p} + 240]",
            "2:",
            "pause",
            "dec {n:e}",
            "jnz 2b",
            "movdqu [{b}], xmm0", "movdqu [{b} + 16], xmm1",
            "movdqu [{b} + 32], xmm2", "movdqu [{b} + 48], xmm3",
            "movdqu [{b} + 64], xmm4", "movdqu [{b} + 80], xmm5",
            "movdqu [{b} + 96], xmm6", "movdqu [{b} + 112], xmm7",
            "movdqu [{b} + 128], xmm8", "movdqu [{b} + 144], xmm9",
            "movdqu [{b} + 160], xmm10", "movdqu [{b} + 176], xmm11",
            "movdqu [{b} + 192], xmm12", "movdqu [{b} + 208], xmm13",
            "movdqu [{b} + 224], xmm14", "movdqu [{b} + 240], xmm15",
            p = in(reg) pattern.as_ptr(),
            b = in(reg) back.as_mut_ptr(),
            n = inout(reg) spins.max(1) => _,
            out("xmm0") _, out("xmm1") _, out("xmm2") _, out("xmm3") _,
            out("xmm4") _, out("xmm5") _, out("xmm6") _, out("xmm7") _,
            out("xmm8") _, out("xmm9") _, out("xmm10") _, out("xmm11") _,
            out("xmm12") _, out("xmm13") _, out("xmm14") _, out("xmm15") _,
            options(nostack),
        );
    }
    back == pattern
}

fn main(args: Args) -> i32 {
    let (Some(Ok(seed)), Some(Ok(ms))) = (
        args.get(1).map(str::parse::<u32>),
        args.get(2).map(str::parse::<u64>),
    ) else {
        eprintln!("usage: sse-check SEED MS");
        return 2;
    };
    let end = time::monotonic_ns() + ms * 1_000_000;
    let mut rounds = 0u64;
    while time::monotonic_ns() < end {
        rounds += 1;
        if !round(seed, 200_000) {
            eprintln!("sse-check {seed}: the SSE registers changed in round {rounds}");
            return 1;
        }
    }
    println!("sse-check {seed}: kept over {rounds} rounds");
    0
}
