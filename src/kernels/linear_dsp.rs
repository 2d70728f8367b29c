//! Cortex-M4/M7 DSP fast path of the Block4 linear kernel (`cfg(picoformer_dsp)`).
//!
//! Per group of 4 rows × 4 inputs, 18 instructions for 16 MACs: one `LDRD` of two int16 input
//! pairs, one `LDM` of the 4 rows' weight words, and per row `SXTB16` + `SMLAD` on the pair
//! `(j0, j1)` and `SXTB16 ROR #8` + `SMLAD` on `(j2, j3)` (see [`super::layout`]). The loop is
//! unrolled four groups deep. `SMLAD` wraps like the reference's `wrapping_add`, so the sums
//! are bit-exact with [`super::linear::linear_ref`].

core::arch::global_asm!(
    ".syntax unified",
    ".section .text.pf_dot_block4,\"ax\",%progbits",
    ".global pf_dot_block4",
    ".type pf_dot_block4,%function",
    ".thumb_func",
    "pf_dot_block4:",
    // r0 = w, r1 = x, r2 = groups, r3 = acc; r4-r7 accumulators, r8/r9 inputs, r10-r12/lr weights
    "    push {{r3-r11, lr}}",
    "    ldm r3, {{r4-r7}}",
    "    tst r2, #3",
    "    beq 3f",
    "1:",
    GROUP!(),
    "    subs r2, r2, #1",
    "    tst r2, #3",
    "    bne 1b",
    "3:",
    "    cmp r2, #0",
    "    beq 9f",
    "2:",
    GROUP!(),
    GROUP!(),
    GROUP!(),
    GROUP!(),
    "    subs r2, r2, #4",
    "    bne 2b",
    "9:",
    "    ldr r3, [sp]",
    "    stm r3, {{r4-r7}}",
    "    pop {{r3-r11, pc}}",
    ".size pf_dot_block4, . - pf_dot_block4",
);

/// One group: 4 rows × 4 inputs.
macro_rules! GROUP {
    () => {
        "    ldrd r8, r9, [r1], #8
    ldm r0!, {{r10, r11, r12, lr}}
    sxtb16 r3, r10
    smlad r4, r3, r8, r4
    sxtb16 r10, r10, ror #8
    smlad r4, r10, r9, r4
    sxtb16 r3, r11
    smlad r5, r3, r8, r5
    sxtb16 r11, r11, ror #8
    smlad r5, r11, r9, r5
    sxtb16 r3, r12
    smlad r6, r3, r8, r6
    sxtb16 r12, r12, ror #8
    smlad r6, r12, r9, r6
    sxtb16 r3, lr
    smlad r7, r3, r8, r7
    sxtb16 lr, lr, ror #8
    smlad r7, lr, r9, r7"
    };
}
use GROUP;

extern "C" {
    fn pf_dot_block4(w: *const i8, x: *const i16, groups: usize, acc: *mut i32);
}

/// `acc[r] += Σ_j w[r, j] · x[j]` over one Block4 block; falls back to the portable loop when
/// a pointer is not word-aligned (never, for blob weights and arena activations).
#[inline(always)]
pub fn dot_block4(w: &[i8], x: &[i16], acc: &mut [i32; 4]) {
    let groups = (w.len() / 16).min(x.len() / 4);
    if groups == 0 {
        return;
    }
    if w.as_ptr() as usize % 4 != 0 || x.as_ptr() as usize % 4 != 0 {
        return super::linear::dot_block4_portable(w, x, acc);
    }
    // SAFETY: the routine reads `16·groups` bytes from `w` and `8·groups` bytes from `x`, both
    // within the slices and word-aligned (checked above), and reads and writes `acc[0..4]`. It
    // saves and restores every callee-saved register it uses (AAPCS).
    unsafe { pf_dot_block4(w.as_ptr(), x.as_ptr(), groups, acc.as_mut_ptr()) }
}
