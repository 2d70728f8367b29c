//! Cortex-M4/M7/M33 DSP fast path of [`super::softmax_u8`] (`picoformer_core = "dsp"`), for
//! the 32-bit exponent form (fused shifts, `Requant::FUSED_SHIFTS`); other shifts take the
//! portable loop. One routine, `pf_softmax_u8`, three passes:
//!
//! - max: `LDM` of 8 scores, then `CMP` + `IT GT` + `MOVGT` each (3.4 instructions/element);
//! - exponentials: `LDM` 4, then per score `SUB`, `UMULL` (high word), `ADD` (rounding), `LSR`,
//!   `USAT #10` and one `LDRH` from [`EXP2_NEG_Q15`], `ADD` into the sum, `STM` 4 back (8);
//! - normalization: the reciprocal of the sum once (`UDIV`), then per 8 exponentials one `LDM`,
//!   8 `SMMULR` by `recip << 8` (exactly `(e·recip + 2^23) >> 24`), and per 4 two `PKHBT`, two
//!   `USAT16 #8` (the clamp to 255) and an `ORR` into one word, stored with `STR` (2.9).
//!
//! The output store is an unaligned `STR` when `p` is not word-aligned, which Armv7-M allows on
//! normal memory (`CCR.UNALIGN_TRP` clear, the reset value). Bit-exact with
//! [`super::reference::softmax_u8_ref`]; the firmware checks it on target.

use super::exp2::{EXP2_NEG_Q15, RECIP_CAP};
use super::portable;
use crate::quant::Requant;

/// Arguments of `pf_softmax_u8`, read by offset: keep the order.
#[repr(C)]
struct Args {
    scores: *mut i32,
    n: usize,
    /// `rq.mult`, `2^(shift - 33)` and `shift - 32`: the exponent `((hi + round) >> s2)`.
    mult: u32,
    round: u32,
    s2: u32,
    table: *const u16,
    p: *mut u8,
}

// the offsets `pf_softmax_u8` reads (`LDRD`/`LDM` from 0, `p` at 24)
const _: () = {
    use core::mem::offset_of;
    assert!(offset_of!(Args, scores) == 0 && offset_of!(Args, n) == 4 && offset_of!(Args, mult) == 8);
    assert!(offset_of!(Args, round) == 12 && offset_of!(Args, s2) == 16 && offset_of!(Args, table) == 20);
    assert!(offset_of!(Args, p) == 24);
};

/// One 32-bit exponential: `e = EXP2_NEG_Q15[min(((m - s)·mult >> 32) + round) >> s2, 1023)]`,
/// added into the sum. `r12` = m, `r3` = mult, `r4` = round, `r5` = s2, `r6` = table,
/// `lr` = sum, `r7` scratch.
macro_rules! exp {
    ($r:literal) => {
        concat!(
            "sub ", $r, ", r12, ", $r, "\n",
            "umull r7, ", $r, ", ", $r, ", r3\n",
            "add ", $r, ", ", $r, ", r4\n",
            "lsr ", $r, ", ", $r, ", r5\n",
            "usat ", $r, ", #10, ", $r, "\n",
            "ldrh ", $r, ", [r6, ", $r, ", lsl #1]\n",
            "add lr, lr, ", $r, "\n",
        )
    };
}

/// `r12 = max(r12, $r)`, signed.
macro_rules! max {
    ($r:literal) => {
        concat!("cmp ", $r, ", r12\n", "it gt\n", "movgt r12, ", $r, "\n")
    };
}

core::arch::global_asm!(
    ".syntax unified",
    ".arch armv7e-m",
    ".section .text.pf_softmax_u8,\"ax\",%progbits",
    ".global pf_softmax_u8",
    ".type pf_softmax_u8,%function",
    ".thumb_func",
    "pf_softmax_u8:",
    // r0 = &Args (n ≥ 1)
    "    push {{r4-r11, lr}}",
    // pass 1: r12 = max over the scores; n % 8 singly, then 8 per LDM
    "    ldrd r1, r2, [r0]",
    "    mov r12, #0x80000000",
    "    ands r3, r2, #7",
    "    beq 2f",
    "1:",
    "    ldr r4, [r1], #4",
    max!("r4"),
    "    subs r3, r3, #1",
    "    bne 1b",
    "2:",
    "    lsrs r3, r2, #3",
    "    beq 4f",
    "3:",
    "    ldm r1!, {{r4-r11}}",
    max!("r4"), max!("r5"), max!("r6"), max!("r7"),
    max!("r8"), max!("r9"), max!("r10"), max!("r11"),
    "    subs r3, r3, #1",
    "    bne 3b",
    "4:",
    // pass 2: each score becomes e in place, lr = Σe; n % 4 singly, then 4 per LDM/STM
    "    ldm r0, {{r1-r6}}",
    "    mov lr, #0",
    "    ands r8, r2, #3",
    "    beq 6f",
    "5:",
    "    ldr r9, [r1]",
    exp!("r9"),
    "    str r9, [r1], #4",
    "    subs r8, r8, #1",
    "    bne 5b",
    "6:",
    "    lsrs r2, r2, #2",
    "    beq 8f",
    "7:",
    "    ldm r1, {{r8-r11}}",
    exp!("r8"), exp!("r9"), exp!("r10"), exp!("r11"),
    "    stm r1!, {{r8-r11}}",
    "    subs r2, r2, #1",
    "    bne 7b",
    "8:",
    // r12 = min(⌊2^32 / Σe⌋, RECIP_CAP) << 8, as `recip_2_32`: the quotient of 2^32 - 1, plus
    // one when the remainder is Σe - 1; Σe ≤ 1 (only if the sum wrapped) takes the cap
    "    ldr r12, ={cap}",
    "    cmp lr, #1",
    "    bls 9f",
    "    mvn r7, #0",
    "    udiv r8, r7, lr",
    "    mls r9, r8, lr, r7",
    "    sub r10, lr, #1",
    "    cmp r9, r10",
    "    it eq",
    "    addeq r8, r8, #1",
    "    cmp r8, r12",
    "    it lo",
    "    movlo r12, r8",
    "9:",
    "    lsl r12, r12, #8",
    // pass 3: p = min(255, (e·recip + 2^23) >> 24); n % 8 singly, then 8 per LDM, 2 STR
    "    ldrd r1, r2, [r0]",
    "    ldr r3, [r0, #24]",
    "    ands r4, r2, #7",
    "    beq 11f",
    "10:",
    "    ldr r5, [r1], #4",
    "    smmulr r5, r5, r12",
    "    usat r5, #8, r5",
    "    strb r5, [r3], #1",
    "    subs r4, r4, #1",
    "    bne 10b",
    "11:",
    "    lsrs r2, r2, #3",
    "    beq 13f",
    "12:",
    "    ldm r1!, {{r4-r11}}",
    "    smmulr r4, r4, r12",
    "    smmulr r5, r5, r12",
    "    smmulr r6, r6, r12",
    "    smmulr r7, r7, r12",
    "    smmulr r8, r8, r12",
    "    smmulr r9, r9, r12",
    "    smmulr r10, r10, r12",
    "    smmulr r11, r11, r12",
    // bytes 0..4 = r4..r7: halfwords (p0, p2) and (p1, p3), saturated, interleaved
    "    pkhbt r4, r4, r6, lsl #16",
    "    pkhbt r5, r5, r7, lsl #16",
    "    usat16 r4, #8, r4",
    "    usat16 r5, #8, r5",
    "    orr r4, r4, r5, lsl #8",
    "    pkhbt r8, r8, r10, lsl #16",
    "    pkhbt r9, r9, r11, lsl #16",
    "    usat16 r8, #8, r8",
    "    usat16 r9, #8, r9",
    "    orr r8, r8, r9, lsl #8",
    "    str r4, [r3], #4",
    "    str r8, [r3], #4",
    "    subs r2, r2, #1",
    "    bne 12b",
    "13:",
    "    pop {{r4-r11, pc}}",
    ".ltorg",
    ".size pf_softmax_u8, . - pf_softmax_u8",
    cap = const RECIP_CAP,
);

extern "C" {
    fn pf_softmax_u8(args: *const Args);
}

/// Stack scratch: none beyond the argument block.
pub const STACK_BYTES: usize = core::mem::size_of::<Args>();

/// [`super::softmax_u8`] on a DSP core, over the shorter of `scores` and `p`: the assembly for
/// fused shifts, the portable loop for others.
pub fn softmax_u8(scores: &mut [i32], rq: Requant, p: &mut [u8]) {
    let n = scores.len().min(p.len());
    if n == 0 {
        return;
    }
    if !rq.is_fused() {
        return softmax_portable(scores, rq, p);
    }
    let args = Args {
        scores: scores.as_mut_ptr(),
        n,
        mult: rq.mult.max(0) as u32,
        round: 1 << (rq.shift - 33),
        s2: (rq.shift - 32) as u32,
        table: EXP2_NEG_Q15.as_ptr(),
        p: p.as_mut_ptr(),
    };
    // SAFETY: the routine reads and writes `n` scores at `scores` (4-byte aligned, as `i32`),
    // writes `n` bytes at `p`, and reads `EXP2_NEG_Q15` at indices ≤ 1023 (`USAT #10`); `n` is
    // at most both lengths. It saves every callee-saved register it uses.
    unsafe { pf_softmax_u8(&args) };
}

/// Shifts the assembly does not take (out of line: the common path stays small).
#[cold]
#[inline(never)]
fn softmax_portable(scores: &mut [i32], rq: Requant, p: &mut [u8]) {
    portable::softmax_u8(scores, rq, p)
}
