//! Armv6-M fast path of the Block4 linear kernel (`cfg(picoformer_v6m)`: Cortex-M0/M0+,
//! `thumbv6m`).
//!
//! Armv6-M has 8 low registers for arithmetic, `LDRSB` only with a register offset, and a
//! 32-bit `MULS` that overwrites one operand. `pf_v6m_dot_block4` keeps one Block4 block's four
//! accumulators in the high registers `r8`-`r11` and the group's four int16 inputs in `r2`-`r5`
//! (two `LDR` + `SXTH`/`ASRS`); each MAC is `LDRB` + `SXTB` + `MULS` + `ADD` (high-register
//! form): 74 instructions per 16 MACs. Sums wrap like the reference's `wrapping_add`, so the
//! result is bit-exact with [`super::reference::linear_ref`]; the firmware checks it on target.

/// Channel at word offset `$o` of the group into accumulator `$acc`: bytes 0..3 hold inputs
/// j0, j2, j1, j3 (`r2`, `r4`, `r3`, `r5`).
macro_rules! chan {
    ($acc:literal, $o:literal) => {
        concat!(
            "ldrb r6, [r0, #", $o, "+0]\n", "sxtb r6, r6\n", "muls r6, r2, r6\n", "add ", $acc, ", r6\n",
            "ldrb r6, [r0, #", $o, "+1]\n", "sxtb r6, r6\n", "muls r6, r4, r6\n", "add ", $acc, ", r6\n",
            "ldrb r6, [r0, #", $o, "+2]\n", "sxtb r6, r6\n", "muls r6, r3, r6\n", "add ", $acc, ", r6\n",
            "ldrb r6, [r0, #", $o, "+3]\n", "sxtb r6, r6\n", "muls r6, r5, r6\n", "add ", $acc, ", r6\n",
        )
    };
}

core::arch::global_asm!(
    ".syntax unified",
    ".section .text.pf_v6m_dot_block4,\"ax\",%progbits",
    ".global pf_v6m_dot_block4",
    ".type pf_v6m_dot_block4,%function",
    ".thumb_func",
    "pf_v6m_dot_block4:",
    // r0 = weights (16·groups bytes), r1 = x (word-aligned), r2 = groups (≥ 1), r3 = acc (4 × i32)
    "    push {{r4-r7, lr}}",
    "    mov r4, r8",
    "    mov r5, r9",
    "    mov r6, r10",
    "    mov r7, r11",
    "    push {{r3-r7}}",
    "    ldm r3!, {{r4-r7}}",
    "    mov r8, r4",
    "    mov r9, r5",
    "    mov r10, r6",
    "    mov r11, r7",
    "    lsls r2, r2, #4",
    "    adds r2, r0, r2",
    "    mov r12, r2",
    "1:",
    "    ldr r2, [r1, #0]",
    "    asrs r3, r2, #16",
    "    sxth r2, r2",
    "    ldr r4, [r1, #4]",
    "    asrs r5, r4, #16",
    "    sxth r4, r4",
    "    adds r1, #8",
    chan!("r8", 0),
    chan!("r9", 4),
    chan!("r10", 8),
    chan!("r11", 12),
    "    adds r0, #16",
    "    cmp r0, r12",
    "    bne 1b",
    "    pop {{r3}}",
    "    mov r4, r8",
    "    mov r5, r9",
    "    mov r6, r10",
    "    mov r7, r11",
    "    stm r3!, {{r4-r7}}",
    "    pop {{r4-r7}}",
    "    mov r8, r4",
    "    mov r9, r5",
    "    mov r10, r6",
    "    mov r11, r7",
    "    pop {{r4-r7, pc}}",
    ".size pf_v6m_dot_block4, . - pf_v6m_dot_block4",
);

extern "C" {
    fn pf_v6m_dot_block4(w: *const i8, x: *const i16, groups: usize, acc: *mut i32);
}

/// `acc[r] += Σ_j w[r, j] · x[j]` for one Block4 block (`w`: `4·k` bytes, `x`: `k` values,
/// `k = x.len()` rounded down to a multiple of 4). Returns `false`, doing nothing, unless `x` is
/// word-aligned (Armv6-M faults on unaligned words) and `w` holds the groups.
#[inline(always)]
fn dot_block4_asm(w: &[i8], x: &[i16], acc: &mut [i32; 4]) -> bool {
    let groups = (x.len() / 4).min(w.len() / 16);
    if groups == 0 || x.as_ptr() as usize % 4 != 0 {
        return false;
    }
    // SAFETY: reads `16 · groups ≤ w.len()` weight bytes (`LDRB`), `4 · groups ≤ x.len()`
    // int16 of `x` as words (word-aligned, checked), and reads and writes `acc[0..4]` (`LDM`/
    // `STM`: word-aligned as `[i32; 4]`). Restores r4-r11.
    unsafe { pf_v6m_dot_block4(w.as_ptr(), x.as_ptr(), groups, acc.as_mut_ptr()) };
    true
}

use super::portable;
use super::weights::Linear;
use crate::quant::Activation;

/// Stack scratch: none beyond the 4 accumulators.
pub const STACK_BYTES: usize = 16;

/// A Block4 layer on Armv6-M: each block of 4 channels in assembly, rows through the portable
/// loop.
#[inline]
pub fn block4<O: Activation>(l: &Linear<'_>, x: &[i16], y: &mut [O]) {
    portable::block4_rows(l, x, y, |_, _, _| 0, |w, x, acc| {
        if !dot_block4_asm(w, x, acc) {
            portable::dot_block4(w, x, acc)
        }
    })
}
