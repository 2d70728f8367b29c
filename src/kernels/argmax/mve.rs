//! Helium (MVE) argmax (`picoformer_core = "mve"`): per 16 logits one `VLDM` of four Q
//! registers and four `VMAXV.S32` into the running maximum; a block that raises it is noted
//! (`CMP`, `IT GT`, `MOVGT`), so the first maximum is in the last block noted, and a scalar
//! scan of those 16 finds it. About 0.6 instructions per logit.

core::arch::global_asm!(
    ".syntax unified",
    ".cpu cortex-m55",
    ".thumb",
    ".section .text.pf_mve_argmax_blocks,\"ax\",%progbits",
    ".global pf_mve_argmax_blocks",
    ".type pf_mve_argmax_blocks,%function",
    ".thumb_func",
    "pf_mve_argmax_blocks:",
    // r0 = v (word-aligned), r1 = blocks of 16 (≥ 1), r2 = &mut [max, block]. r3 the running
    // maximum, r12 its block's index, r1 the current block's index
    "    push {{r4, lr}}",
    "    mov r3, #0x80000000",
    "    movs r12, #0",
    "    dls lr, r1",
    "    movs r1, #0",
    "1:",
    "    mov r4, r3",
    "    vldmia r0!, {{d0-d7}}",
    "    vmaxv.s32 r4, q0",
    "    vmaxv.s32 r4, q1",
    "    vmaxv.s32 r4, q2",
    "    vmaxv.s32 r4, q3",
    "    cmp r4, r3",
    "    itt gt",
    "    movgt r3, r4",
    "    movgt r12, r1",
    "    adds r1, r1, #1",
    "    le lr, 1b",
    "    strd r3, r12, [r2]",
    "    pop {{r4, pc}}",
    ".size pf_mve_argmax_blocks, . - pf_mve_argmax_blocks",
);

extern "C" {
    fn pf_mve_argmax_blocks(v: *const i32, blocks: usize, out: *mut [i32; 2]);
}

/// The index of the first maximum of `v` (`None` if empty): the blocks of 16 in assembly, the
/// tail and the block holding the maximum in Rust.
#[inline]
pub fn argmax(v: &[i32]) -> Option<usize> {
    let blocks = v.len() / 16;
    if blocks == 0 || v.as_ptr() as usize % 4 != 0 {
        return plain(v);
    }
    let mut out = [0i32; 2];
    // SAFETY: reads `16·blocks ≤ v.len()` words of `v` (word-aligned: checked), writes `out`;
    // restores r4.
    unsafe { pf_mve_argmax_blocks(v.as_ptr(), blocks, &mut out) };
    let [m, b] = out;
    // the first maximum of the blocks is in block b: the first element there equal to m, unless
    // the tail holds a larger one
    let mut best = (16 * b as usize..16 * (b as usize + 1)).find(|&i| v.get(i) == Some(&m)).unwrap_or(0);
    let mut best_v = m;
    for (i, &x) in v.iter().enumerate().skip(16 * blocks) {
        if x > best_v {
            (best, best_v) = (i, x);
        }
    }
    Some(best)
}

/// The plain loop, for short or misaligned rows.
#[cold]
fn plain(v: &[i32]) -> Option<usize> {
    let mut best = (0, *v.first()?);
    for (i, &x) in v.iter().enumerate() {
        if x > best.1 {
            best = (i, x);
        }
    }
    Some(best.0)
}
