//! Armv7-M fast path of the Block4 linear kernel for cores without the DSP extension
//! (`cfg(picoformer_v7m)`: Cortex-M3, `thumbv7m`).
//!
//! Without `SMLAD` the floor is one `LDRSB` and one `MLA` per MAC. `pf_v7m_dot_8rows` takes 8
//! output channels (two Block4 blocks) per pass with the 8 accumulators in `r4`-`r11`, so each
//! int16 input is loaded once (`LDRSH`) for 8 weights: per group of 4 inputs, 4 `LDRSH`, 32 ×
//! (`LDRSB`, `MLA`), two pointer bumps and the loop, groups two deep: 2.2 instructions per MAC.
//! Sums wrap like the reference's `wrapping_add`, so the result is bit-exact with
//! [`super::reference::linear_ref`]; the firmware checks it on target against the reference.

/// `$acc += w[$ptr + 16·$g + 4·$c + $b] · r3` (weight byte sign-extended into `lr`).
macro_rules! mac {
    ($acc:literal, $ptr:literal, $g:literal, $c:literal, $b:literal) => {
        concat!("ldrsb lr, [", $ptr, ", #", $g, "*16+", $c, "*4+", $b, "]\n", "mla ", $acc, ", lr, r3, ", $acc, "\n")
    };
}

/// One input (`r3`, byte `$b` of each channel word) into the 8 channels of group `$g`.
macro_rules! input {
    ($g:literal, $b:literal) => {
        concat!(
            "ldrsh r3, [r1], #2\n",
            mac!("r4", "r0", $g, 0, $b), mac!("r5", "r0", $g, 1, $b),
            mac!("r6", "r0", $g, 2, $b), mac!("r7", "r0", $g, 3, $b),
            mac!("r8", "r12", $g, 0, $b), mac!("r9", "r12", $g, 1, $b),
            mac!("r10", "r12", $g, 2, $b), mac!("r11", "r12", $g, 3, $b),
        )
    };
}

/// Group `$g` of the pass: inputs j0..j3 sit at bytes 0, 2, 1, 3 of each channel's word.
macro_rules! group {
    ($g:literal) => {
        concat!(input!($g, 0), input!($g, 2), input!($g, 1), input!($g, 3))
    };
}

core::arch::global_asm!(
    ".syntax unified",
    ".section .text.pf_v7m_dot_8rows,\"ax\",%progbits",
    ".global pf_v7m_dot_8rows",
    ".type pf_v7m_dot_8rows,%function",
    ".thumb_func",
    "pf_v7m_dot_8rows:",
    // r0 = block 0 weights, r1 = x, r2 = groups (≥ 1), r3 = acc (8 × i32), [sp] = block stride
    "    push {{r3-r11, lr}}",
    "    ldr r12, [sp, #40]",
    "    add r12, r0, r12",
    "    ldm r3, {{r4-r11}}",
    // an odd group first, then two per iteration
    "    tst r2, #1",
    "    beq 2f",
    group!(0),
    "    add r0, r0, #16",
    "    add r12, r12, #16",
    "    subs r2, r2, #1",
    "    beq 3f",
    "2:",
    group!(0),
    group!(1),
    "    add r0, r0, #32",
    "    add r12, r12, #32",
    "    subs r2, r2, #2",
    "    bne 2b",
    "3:",
    "    ldr r3, [sp]",
    "    stm r3, {{r4-r11}}",
    "    pop {{r3-r11, pc}}",
    ".size pf_v7m_dot_8rows, . - pf_v7m_dot_8rows",
);

extern "C" {
    fn pf_v7m_dot_8rows(w: *const i8, x: *const i16, groups: usize, acc: *mut i32, stride: usize);
}

/// `acc[4b + r] += Σ_j w_b[r, j] · x[j]` for the two consecutive Block4 blocks in `w`
/// (`8·k` bytes; `x`: `k` values).
#[inline(always)]
pub fn dot_2blocks(w: &[i8], x: &[i16], k: usize, acc: &mut [i32; 8]) {
    let groups = k / 4;
    if groups == 0 || w.len() < 8 * k || x.len() < k {
        return;
    }
    // SAFETY: the routine reads `16 · groups` bytes from each of the two blocks
    // `w[b·4k .. (b+1)·4k]` (inside `w`, checked above), `4 · groups ≤ k` int16 of `x`
    // (`LDRSH`: 2-aligned as `i16`), and reads and writes `acc[0..8]`. It restores r4-r11.
    unsafe { pf_v7m_dot_8rows(w.as_ptr(), x.as_ptr(), groups, acc.as_mut_ptr(), 4 * k) }
}

use super::portable::{self, wide_sets};
use super::weights::Linear;
use crate::quant::Activation;

/// Stack scratch: the 8 accumulators of a pass (32 bytes).
pub const STACK_BYTES: usize = 32;

/// A Block4 layer on Armv7-M without DSP: 8 channels per assembly pass, the rest in blocks of 4.
#[inline]
pub fn block4<O: Activation>(l: &Linear<'_>, x: &[i16], y: &mut [O]) {
    portable::block4_rows(l, x, y, |l, xr, yr| wide_sets::<O, 8>(l, xr, yr, 0, dot_2blocks), portable::dot_block4)
}
