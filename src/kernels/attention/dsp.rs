//! Cortex-M4/M7/M33 DSP fast paths of the two matrix products inside [`super::attention`]
//! (`picoformer_core = "dsp"`), for heads with `d_head % 4 == 0` and `d_head ≤ MAX_DH`; other
//! heads take the portable loops.
//!
//! - Scores, `s_j = q_h · k_j` (`pf_qk_scores`): `q_h` is widened once into pairs `(q0, q2)`,
//!   `(q1, q3)` per 4 dimensions, the order `SXTB16` / `SXTB16 ROR #8` give a key word. Four
//!   keys at a time: per 4 dimensions one `LDRD` of the query pairs, and per key `LDR`, 2
//!   `SXTB16`, 2 `SMLAD`: 23 instructions per 16 MACs.
//! - Context, `c_i = Σ_j p_j · v_ji` (`pf_pv_context`): keys in pairs `(j, j+2)` with the
//!   probabilities `UXTB16`-widened to `(p_j, p_j+2)`; the two value words are interleaved with
//!   `PKHBT`/`PKHTB` so that `SXTB16` yields `(v_ji, v_j+2,i)` and one `SMLAD` adds both keys.
//!   Per 4 keys × 4 outputs: `LDM`/`STM` of the accumulators, 4 `LDR`, 4 `PKH`, 8 `SXTB16`,
//!   8 `SMLAD`: 28 instructions per 16 MACs. Left-over keys (`n % 4`) take `SMLABB`/`SMLATB`.
//!   Like the portable loop, it skips what adds nothing: a key, or four keys, with `p = 0`.
//!
//! `SMLAD` wraps like the reference's `wrapping_add`, so both are bit-exact with
//! [`super::reference::attention_ref`]; the firmware checks them on target.

use super::portable;
use crate::quant::{Activation, Requant};

/// Stack scratch: the widened query (`MAX_DH / 2` words) and the context accumulators
/// (`MAX_DH` words).
pub const STACK_BYTES: usize = 4 * (MAX_DH / 2 + MAX_DH);

/// Largest head dimension the fast paths take (their stack buffers).
pub const MAX_DH: usize = 64;

/// Arguments of `pf_qk_scores`, read by offset: keep the order.
#[repr(C)]
struct QkArgs {
    /// `d_head` query bytes; `k` points at key 0's head slice, keys `stride` bytes apart.
    q: *const i8,
    k: *const i8,
    stride: usize,
    groups: usize,
    n: usize,
    scores: *mut i32,
    /// `2 · groups` words of scratch for the widened query.
    qbuf: *mut u32,
}

// the offsets `pf_qk_scores` reads
const _: () = {
    use core::mem::offset_of;
    assert!(offset_of!(QkArgs, q) == 0 && offset_of!(QkArgs, k) == 4 && offset_of!(QkArgs, stride) == 8);
    assert!(offset_of!(QkArgs, groups) == 12 && offset_of!(QkArgs, n) == 16 && offset_of!(QkArgs, scores) == 20);
    assert!(offset_of!(QkArgs, qbuf) == 24);
};

/// `$acc += q · key word at [$addr]`, with the query pairs in r10/r11; r12, lr scratch.
macro_rules! qk_key {
    ($acc:literal, $load:literal) => {
        concat!(
            "ldr lr, ", $load, "\n",
            "sxtb16 r12, lr\n",
            "sxtb16 lr, lr, ror #8\n",
            "smlad ", $acc, ", r12, r10, ", $acc, "\n",
            "smlad ", $acc, ", lr, r11, ", $acc, "\n",
        )
    };
}

core::arch::global_asm!(
    ".syntax unified",
    ".arch armv7e-m",
    ".section .text.pf_qk_scores,\"ax\",%progbits",
    ".global pf_qk_scores",
    ".type pf_qk_scores,%function",
    ".thumb_func",
    "pf_qk_scores:",
    // r0 = &QkArgs (groups ≥ 1, n ≥ 1)
    "    push {{r4-r11, lr}}",
    // stack: [sp] key quads left, [sp+4] scores, [sp+8] 4·stride - dh, [sp+12] stride - dh
    "    sub sp, sp, #16",
    // widen q: per 4 bytes the pairs (q0, q2), (q1, q3)
    "    ldr r1, [r0]",
    "    ldr r2, [r0, #12]",
    "    ldr r3, [r0, #24]",
    "1:",
    "    ldr r4, [r1], #4",
    "    sxtb16 r5, r4",
    "    sxtb16 r6, r4, ror #8",
    "    strd r5, r6, [r3], #8",
    "    subs r2, r2, #1",
    "    bne 1b",
    "    ldr r3, [r0, #4]",
    "    ldr r4, [r0, #8]",
    "    ldr r2, [r0, #12]",
    "    lsl r2, r2, #2",
    "    rsb r1, r2, r4, lsl #2",
    "    str r1, [sp, #8]",
    "    sub r1, r4, r2",
    "    str r1, [sp, #12]",
    "    ldr r1, [r0, #20]",
    "    str r1, [sp, #4]",
    "    add r5, r3, r4, lsl #1",
    "    ldr r1, [r0, #16]",
    "    lsrs r1, r1, #2",
    "    str r1, [sp]",
    "    beq 5f",
    // four keys: r3 = key 0 (key 1 at +stride), r5 = key 2 (key 3 at +stride); r6-r9 sums
    "2:",
    "    movs r6, #0",
    "    movs r7, #0",
    "    movs r8, #0",
    "    movs r9, #0",
    "    ldr r1, [r0, #24]",
    "    ldr r2, [r0, #12]",
    "3:",
    "    ldrd r10, r11, [r1], #8",
    qk_key!("r7", "[r3, r4]"),
    qk_key!("r6", "[r3], #4"),
    qk_key!("r9", "[r5, r4]"),
    qk_key!("r8", "[r5], #4"),
    "    subs r2, r2, #1",
    "    bne 3b",
    "    ldr r12, [sp, #4]",
    "    stm r12!, {{r6-r9}}",
    "    str r12, [sp, #4]",
    "    ldr r12, [sp, #8]",
    "    add r3, r3, r12",
    "    add r5, r5, r12",
    "    ldr r12, [sp]",
    "    subs r12, r12, #1",
    "    str r12, [sp]",
    "    bne 2b",
    // the last n % 4 keys one at a time
    "5:",
    "    ldr r12, [r0, #16]",
    "    ands r12, r12, #3",
    "    beq 9f",
    "    str r12, [sp]",
    "6:",
    "    movs r6, #0",
    "    ldr r1, [r0, #24]",
    "    ldr r2, [r0, #12]",
    "7:",
    "    ldrd r10, r11, [r1], #8",
    qk_key!("r6", "[r3], #4"),
    "    subs r2, r2, #1",
    "    bne 7b",
    "    ldr r12, [sp, #4]",
    "    str r6, [r12], #4",
    "    str r12, [sp, #4]",
    "    ldr r12, [sp, #12]",
    "    add r3, r3, r12",
    "    ldr r12, [sp]",
    "    subs r12, r12, #1",
    "    str r12, [sp]",
    "    bne 6b",
    "9:",
    "    add sp, sp, #16",
    "    pop {{r4-r11, pc}}",
    ".size pf_qk_scores, . - pf_qk_scores",
);

/// Arguments of `pf_pv_context`, read by offset: keep the order.
#[repr(C)]
struct PvArgs {
    /// `n` probabilities; `v` points at key 0's head slice, keys `stride` bytes apart.
    p: *const u8,
    v: *const i8,
    stride: usize,
    /// `d_head / 4` and the `d_head` accumulators (zeroed by the caller, 4-byte aligned).
    quads: usize,
    n: usize,
    acc: *mut i32,
}

// the offsets `pf_pv_context` reads
const _: () = {
    use core::mem::offset_of;
    assert!(offset_of!(PvArgs, p) == 0 && offset_of!(PvArgs, v) == 4 && offset_of!(PvArgs, stride) == 8);
    assert!(offset_of!(PvArgs, quads) == 12 && offset_of!(PvArgs, n) == 16 && offset_of!(PvArgs, acc) == 20);
};

/// Keys `(j, j+2)` into the 4 accumulators r6-r9: value words at `$a` (key j) and `$b` (key
/// j+2), probability pair in `$pp`; r0, r12, lr scratch.
macro_rules! pv_pair {
    ($a:literal, $b:literal, $pp:literal) => {
        concat!(
            "ldr lr, ", $a, "\n",
            "ldr r12, ", $b, "\n",
            "pkhbt r0, lr, r12, lsl #16\n",
            "pkhtb lr, r12, lr, asr #16\n",
            "sxtb16 r12, r0\n",
            "smlad r6, r12, ", $pp, ", r6\n",
            "sxtb16 r0, r0, ror #8\n",
            "smlad r7, r0, ", $pp, ", r7\n",
            "sxtb16 r12, lr\n",
            "smlad r8, r12, ", $pp, ", r8\n",
            "sxtb16 lr, lr, ror #8\n",
            "smlad r9, lr, ", $pp, ", r9\n",
        )
    };
}

core::arch::global_asm!(
    ".syntax unified",
    ".arch armv7e-m",
    ".section .text.pf_pv_context,\"ax\",%progbits",
    ".global pf_pv_context",
    ".type pf_pv_context,%function",
    ".thumb_func",
    "pf_pv_context:",
    // r0 = &PvArgs (quads ≥ 1, n ≥ 0)
    "    push {{r4-r11, lr}}",
    // stack: [sp] &PvArgs, [sp+4] key quads left, [sp+8] p, [sp+12] 4·stride - dh
    "    sub sp, sp, #16",
    "    str r0, [sp]",
    "    ldr r1, [r0]",
    "    str r1, [sp, #8]",
    "    ldr r3, [r0, #4]",
    "    ldr r4, [r0, #8]",
    "    ldr r2, [r0, #12]",
    "    lsl r2, r2, #2",
    "    rsb r1, r2, r4, lsl #2",
    "    str r1, [sp, #12]",
    "    add r5, r3, r4, lsl #1",
    "    ldr r1, [r0, #16]",
    "    lsrs r1, r1, #2",
    "    str r1, [sp, #4]",
    "    beq 5f",
    // four keys: r3 = key 0 (key 1 at +stride), r5 = key 2 (key 3 at +stride)
    "2:",
    "    ldr r1, [sp, #8]",
    "    ldr r12, [r1], #4",
    "    str r1, [sp, #8]",
    "    cmp r12, #0",
    "    beq 4f",
    "    uxtb16 r10, r12",
    "    uxtb16 r11, r12, ror #8",
    "    ldr r0, [sp]",
    "    ldr r1, [r0, #20]",
    "    ldr r2, [r0, #12]",
    "3:",
    "    ldm r1, {{r6-r9}}",
    pv_pair!("[r3, r4]", "[r5, r4]", "r11"),
    pv_pair!("[r3], #4", "[r5], #4", "r10"),
    "    stm r1!, {{r6-r9}}",
    "    subs r2, r2, #1",
    "    bne 3b",
    "    ldr r12, [sp, #12]",
    "    add r3, r3, r12",
    "    add r5, r5, r12",
    "    b 8f",
    // four zero probabilities add nothing: skip their values
    "4:",
    "    add r3, r3, r4, lsl #2",
    "    add r5, r5, r4, lsl #2",
    "8:",
    "    ldr r12, [sp, #4]",
    "    subs r12, r12, #1",
    "    str r12, [sp, #4]",
    "    bne 2b",
    // the last n % 4 keys one at a time: (v_i, v_i+2) and (v_i+1, v_i+3) times p
    "5:",
    "    ldr r0, [sp]",
    "    ldr r12, [r0, #16]",
    "    ands r12, r12, #3",
    "    beq 9f",
    "    str r12, [sp, #4]",
    "    ldr r12, [r0, #12]",
    "    lsl r12, r12, #2",
    "    sub r12, r4, r12",
    "    str r12, [sp, #12]",
    "6:",
    "    ldr r1, [sp, #8]",
    "    ldrb r10, [r1], #1",
    "    str r1, [sp, #8]",
    "    cmp r10, #0",
    "    beq 1f",
    "    ldr r1, [r0, #20]",
    "    ldr r2, [r0, #12]",
    "7:",
    "    ldm r1, {{r6-r9}}",
    "    ldr lr, [r3], #4",
    "    sxtb16 r12, lr",
    "    sxtb16 lr, lr, ror #8",
    "    smlabb r6, r12, r10, r6",
    "    smlatb r8, r12, r10, r8",
    "    smlabb r7, lr, r10, r7",
    "    smlatb r9, lr, r10, r9",
    "    stm r1!, {{r6-r9}}",
    "    subs r2, r2, #1",
    "    bne 7b",
    "    ldr r12, [sp, #12]",
    "    add r3, r3, r12",
    "    b 8f",
    "1:",
    "    add r3, r3, r4",
    "8:",
    "    ldr r12, [sp, #4]",
    "    subs r12, r12, #1",
    "    str r12, [sp, #4]",
    "    bne 6b",
    "9:",
    "    add sp, sp, #16",
    "    pop {{r4-r11, pc}}",
    ".size pf_pv_context, . - pf_pv_context",
);

extern "C" {
    fn pf_qk_scores(args: *const QkArgs);
    fn pf_pv_context(args: *const PvArgs);
}

/// Whether a head of `dh` dimensions over keys of stride `stride` takes the fast paths.
#[inline(always)]
pub fn takes(dh: usize, stride: usize) -> bool {
    dh % 4 == 0 && dh > 0 && dh <= MAX_DH && stride >= dh
}

/// `scores[j] = q · k[j·stride .. j·stride + dh]` for `j < scores.len()`, `dh = q.len()`.
/// Returns `false`, doing nothing, unless [`takes`] and `k` holds every key.
#[inline(always)]
fn scores_asm(q: &[i8], k: &[i8], stride: usize, scores: &mut [i32]) -> bool {
    let (dh, n) = (q.len(), scores.len());
    if !takes(dh, stride) || n == 0 || (n - 1).checked_mul(stride).and_then(|o| o.checked_add(dh)).is_none_or(|end| end > k.len()) {
        return false;
    }
    let mut qbuf = [0u32; MAX_DH / 2];
    let args = QkArgs { q: q.as_ptr(), k: k.as_ptr(), stride, groups: dh / 4, n, scores: scores.as_mut_ptr(), qbuf: qbuf.as_mut_ptr() };
    // SAFETY: reads `dh` bytes of `q`, and `dh` bytes at `k + j·stride` for `j < n`, the last
    // ending at `(n-1)·stride + dh ≤ k.len()` (checked); writes `n` scores (4-aligned) and
    // `dh / 2 ≤ MAX_DH / 2` words of `qbuf` (4-aligned, as `LDRD`/`STRD` need). Word loads of
    // `q` and `k` may be unaligned, which Armv7-M allows for `LDR`. Callee-saved registers are
    // restored.
    unsafe { pf_qk_scores(&args) };
    true
}

/// `acc[i] = Σ_j p[j] · v[j·stride + i]` for `i < acc.len()` (`= dh`), `j < p.len()`.
/// Returns `false`, doing nothing, unless [`takes`] and `v` holds every key.
#[inline(always)]
fn context_asm(p: &[u8], v: &[i8], stride: usize, acc: &mut [i32]) -> bool {
    let (dh, n) = (acc.len(), p.len());
    if !takes(dh, stride) || (n > 0 && (n - 1).checked_mul(stride).and_then(|o| o.checked_add(dh)).is_none_or(|end| end > v.len())) {
        return false;
    }
    acc.fill(0);
    let args = PvArgs { p: p.as_ptr(), v: v.as_ptr(), stride, quads: dh / 4, n, acc: acc.as_mut_ptr() };
    // SAFETY: reads `n` bytes of `p` (the first `4·⌊n/4⌋` as words, unaligned `LDR`), and
    // `dh` bytes at `v + j·stride` for `j < n`, the last ending inside `v` (checked); reads
    // and writes the `dh` accumulators (`LDM`/`STM`: 4-aligned as `i32`). Callee-saved
    // registers are restored.
    unsafe { pf_pv_context(&args) };
    true
}

/// The scores of one head: the assembly when the head qualifies, else the portable loop.
#[inline(always)]
pub fn scores(qh: &[i8], kh: &[i8], stride: usize, s: &mut [i32]) -> bool {
    scores_asm(qh, kh, stride, s) || scores_portable(qh, kh, stride, s)
}

/// Heads the assembly does not take (out of line: the common path stays small).
#[cold]
#[inline(never)]
fn scores_portable(qh: &[i8], kh: &[i8], stride: usize, s: &mut [i32]) -> bool {
    portable::scores(qh, kh, stride, s)
}

#[cold]
#[inline(never)]
fn context_portable(probs: &[u8], vh: &[i8], stride: usize, rq: Requant, outh: &mut [i16]) -> bool {
    portable::context(probs, vh, stride, rq, outh)
}

/// The context of one head, requantized into `outh`: the assembly when the head qualifies,
/// else the portable loop.
#[inline(always)]
pub fn context(probs: &[u8], vh: &[i8], stride: usize, rq: Requant, outh: &mut [i16]) -> bool {
    let mut acc = [0i32; MAX_DH];
    let Some(acc) = acc.get_mut(..outh.len()) else {
        return context_portable(probs, vh, stride, rq, outh);
    };
    if !context_asm(probs, vh, stride, acc) {
        return context_portable(probs, vh, stride, rq, outh);
    }
    for (o, &a) in outh.iter_mut().zip(acc.iter()) {
        *o = i16::requant(rq, a);
    }
    true
}
