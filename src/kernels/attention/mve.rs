//! Helium (MVE) fast paths of the two matrix products inside [`super::attention`]
//! (`picoformer_core = "mve"`); heads they do not take go to the DSP file (and from there, to
//! the portable loops).
//!
//! - Scores, `s_j = q_h · k_j` (`pf_mve_qk_*`, `d_head` of 16, 32, 48 or 64, word-aligned keys):
//!   the query head stays in one to four Q registers; per key one `VLDM` of its head slice, one
//!   `ADD` of the stride and one `VMLADAVA.S8` per 16 dimensions, four keys' sums stored with
//!   one `STM`: 17 instructions per 4 keys × 32 dimensions (128 MACs).
//! - Context, `c_i = Σ_j p_j · v_ji` (`pf_mve_pv`, `d_head % 4 == 0`, at most [`MAX_KEYS`]
//!   keys): the sum runs over the keys, which lie a stride apart, so each output gathers eight
//!   keys' values with one `VLDRB.S16` (offsets `0, s, …, 7s`, plus 0-3 for four neighbouring
//!   outputs) and takes one `VMLADAVA.S16` with the eight keys' probabilities (`VLDRB.U16`
//!   widens them as it loads); a group of 8 keys costs 10 instructions for four outputs
//!   (32 MACs), the last group under a `VCTP` predicate (no probability or value past the last
//!   key is read or added). The four sums are requantized together, exactly as `i16::requant`: shifts from
//!   32 on by `VQDMULH` (the high word of `2·acc·mult`) and `VRSHL` by `31 - shift`, smaller
//!   ones (de-en's are 30) by `VQSHL` left by `31 - shift` and `VQRDMULH`; `VQMOVNB`; stored as
//!   int16.
//!
//! Sums wrap in 32 bits like the reference's `wrapping_add`, so both are bit-exact with
//! [`super::reference::attention_ref`]; the firmware checks them on target.

use core::mem::MaybeUninit;

use super::dsp;
use crate::quant::Requant;

/// Most keys [`context`] takes: the gathers' int16 offsets reach 7 strides only, so any count
/// works; the bound keeps a hostile length from running long in one call.
pub const MAX_KEYS: usize = 1 << 16;

/// Stack scratch: the argument blocks.
pub const STACK_BYTES: usize = max(core::mem::size_of::<PvArgs>() + core::mem::size_of::<QkArgs>(), dsp::STACK_BYTES);

const fn max(a: usize, b: usize) -> usize {
    if a > b {
        a
    } else {
        b
    }
}

/// Arguments of `pf_mve_qk_*`, read by offset: keep the order.
#[repr(C)]
struct QkArgs {
    /// `d_head` query bytes (word-aligned); `k` points at key 0's head slice, keys `stride` bytes
    /// apart (both word-aligned).
    q: *const i8,
    k: *const i8,
    stride: usize,
    n: usize,
    scores: *mut i32,
}

const _: () = {
    use core::mem::{offset_of, size_of};
    assert!(offset_of!(QkArgs, k) == 4 && offset_of!(QkArgs, stride) == 8 && offset_of!(QkArgs, n) == 12);
    assert!(offset_of!(QkArgs, scores) == 16 && size_of::<QkArgs>() == 20);
};

/// The scores of one head of `$dh` dimensions: the query in `$qregs` (one `VLDM`), per key a
/// `VLDM` of its slice into `$kregs` and the `$macs` (one `VMLADAVA.S8` per 16 dimensions into
/// the key's sum `$a`).
macro_rules! qk {
    ($name:literal, $qregs:literal, $kregs:literal, $mac:ident) => {
        core::arch::global_asm!(
            ".syntax unified",
            ".cpu cortex-m55",
            ".thumb",
            concat!(".section .text.", $name, ",\"ax\",%progbits"),
            concat!(".global ", $name),
            concat!(".type ", $name, ",%function"),
            ".thumb_func",
            concat!($name, ":"),
            // r0 = &QkArgs (n ≥ 1). r1 keys, r3 stride, r5 n, r12 scores; sums r0, r2, r4, r6
            "push {{r4-r7, lr}}",
            "vpush {{d8-d15}}",
            "ldr r1, [r0]",
            concat!("vldmia r1, {{", $qregs, "}}"),
            "ldrd r1, r3, [r0, #4]",
            "ldrd r5, r12, [r0, #12]",
            "lsrs r7, r5, #2",
            "wls lr, r7, 2f",
            "1:",
            concat!("vldmia r1, {{", $kregs, "}}"), "add r1, r1, r3", $mac!("vmladav", "r0"),
            concat!("vldmia r1, {{", $kregs, "}}"), "add r1, r1, r3", $mac!("vmladav", "r2"),
            concat!("vldmia r1, {{", $kregs, "}}"), "add r1, r1, r3", $mac!("vmladav", "r4"),
            concat!("vldmia r1, {{", $kregs, "}}"), "add r1, r1, r3", $mac!("vmladav", "r6"),
            "stmia r12!, {{r0, r2, r4, r6}}",
            "le lr, 1b",
            "2:",
            "ands r7, r5, #3",
            "wls lr, r7, 4f",
            "3:",
            concat!("vldmia r1, {{", $kregs, "}}"), "add r1, r1, r3", $mac!("vmladav", "r0"),
            "str r0, [r12], #4",
            "le lr, 3b",
            "4:",
            "vpop {{d8-d15}}",
            "pop {{r4-r7, pc}}",
            concat!(".size ", $name, ", . - ", $name),
        );
    };
}

/// `$a = q · k` over 16 dimensions: query `q0`, key `q4` (the first sum: `$op` = `vmladav`).
macro_rules! mac16 {
    ($op:literal, $a:literal) => {
        concat!($op, ".s8 ", $a, ", q0, q4")
    };
}

/// Over 32 dimensions: query `q0`-`q1`, key `q4`-`q5`.
macro_rules! mac32 {
    ($op:literal, $a:literal) => {
        concat!($op, ".s8 ", $a, ", q0, q4\n vmladava.s8 ", $a, ", q1, q5")
    };
}

/// Over 48 dimensions.
macro_rules! mac48 {
    ($op:literal, $a:literal) => {
        concat!($op, ".s8 ", $a, ", q0, q4\n vmladava.s8 ", $a, ", q1, q5\n vmladava.s8 ", $a, ", q2, q6")
    };
}

/// Over 64 dimensions.
macro_rules! mac64 {
    ($op:literal, $a:literal) => {
        concat!($op, ".s8 ", $a, ", q0, q4\n vmladava.s8 ", $a, ", q1, q5\n vmladava.s8 ", $a, ", q2, q6\n vmladava.s8 ", $a, ", q3, q7")
    };
}

qk!("pf_mve_qk16", "d0-d1", "d8-d9", mac16);
qk!("pf_mve_qk32", "d0-d3", "d8-d11", mac32);
qk!("pf_mve_qk48", "d0-d5", "d8-d13", mac48);
qk!("pf_mve_qk64", "d0-d7", "d8-d15", mac64);

/// Arguments of `pf_mve_pv`, read by offset: keep the order. The first 16 bytes are the
/// routine's spill area for four sums (`STM`, then `VLDM`).
#[repr(C, align(8))]
struct PvArgs {
    acc: MaybeUninit<[i32; 4]>,
    /// The `n` probabilities (widened to int16 as they are loaded).
    p: *const u8,
    /// `v` points at key 0's head slice, keys `stride` bytes apart; `groups` of 8 keys, the last
    /// with `last` keys (1..=8).
    v: *const i8,
    stride: usize,
    groups: usize,
    last: usize,
    /// `d_head / 4` blocks of four outputs, into `out`.
    blocks: usize,
    out: *mut i16,
    mult: i32,
    /// `31 - ctx.shift`.
    neg_s1: i32,
}

const _: () = {
    use core::mem::{offset_of, size_of};
    assert!(offset_of!(PvArgs, p) == 16 && offset_of!(PvArgs, v) == 20 && offset_of!(PvArgs, stride) == 24);
    assert!(offset_of!(PvArgs, groups) == 28 && offset_of!(PvArgs, last) == 32 && offset_of!(PvArgs, blocks) == 36);
    assert!(offset_of!(PvArgs, out) == 40 && offset_of!(PvArgs, mult) == 44 && offset_of!(PvArgs, neg_s1) == 48);
    assert!(size_of::<PvArgs>() == 56);
};

core::arch::global_asm!(
    ".syntax unified",
    ".cpu cortex-m55",
    ".thumb",
    ".section .text.pf_mve_pv,\"ax\",%progbits",
    ".global pf_mve_pv",
    ".type pf_mve_pv,%function",
    ".thumb_func",
    "pf_mve_pv:",
    // r0 = &PvArgs (groups ≥ 1, blocks ≥ 1). r1 the group's values, r3 the probabilities, r5
    // out, r7 &PvArgs, r8 blocks left, r9 the block's first value, r10 8 · stride, r11 groups
    // left, r12 31 - shift, lr the multiplier; q0-q3 offsets, q4 probabilities, q5-q7 gathered
    // values, sums r0, r2, r4, r6
    "push {{r4-r11, lr}}",
    "vpush {{d8-d15}}",
    "mov r7, r0",
    // q0 = (0, s, 2s, …, 7s) as int16, q1-q3 the same + 1, 2, 3
    "ldr r1, [r7, #24]",
    "movs r2, #0",
    "vidup.u16 q0, r2, #1",
    "vmul.i16 q0, q0, r1",
    "movs r2, #1",
    "vadd.i16 q1, q0, r2",
    "movs r2, #2",
    "vadd.i16 q2, q0, r2",
    "movs r2, #3",
    "vadd.i16 q3, q0, r2",
    "lsl r10, r1, #3",
    "ldr r9, [r7, #20]",
    "ldrd r8, r5, [r7, #36]",
    "ldrd lr, r12, [r7, #44]",
    "5:",
    // a block of 4 outputs: the groups of 8 keys, the last one predicated
    "ldr r3, [r7, #16]",
    "mov r1, r9",
    "ldr r11, [r7, #28]",
    "subs r11, r11, #1",
    "beq 7f",
    // the first group (not the last)
    "vldrb.u16 q4, [r3], #8",
    "vldrb.s16 q5, [r1, q0]",
    "vldrb.s16 q6, [r1, q1]",
    "vldrb.s16 q7, [r1, q2]",
    "vmladav.s16 r0, q5, q4",
    "vldrb.s16 q5, [r1, q3]",
    "vmladav.s16 r2, q6, q4",
    "vmladav.s16 r4, q7, q4",
    "vmladav.s16 r6, q5, q4",
    "add r1, r1, r10",
    "subs r11, r11, #1",
    "beq 8f",
    "6:",
    "vldrb.u16 q4, [r3], #8",
    "vldrb.s16 q5, [r1, q0]",
    "vldrb.s16 q6, [r1, q1]",
    "vldrb.s16 q7, [r1, q2]",
    "vmladava.s16 r0, q5, q4",
    "vldrb.s16 q5, [r1, q3]",
    "vmladava.s16 r2, q6, q4",
    "vmladava.s16 r4, q7, q4",
    "vmladava.s16 r6, q5, q4",
    "add r1, r1, r10",
    "subs r11, r11, #1",
    "bne 6b",
    "8:",
    // the last group after others: its keys past the end are not read (p is 0 there)
    "ldr r11, [r7, #32]",
    "vctp.16 r11",
    "vpstttt",
    "vldrbt.u16 q4, [r3]",
    "vldrbt.s16 q5, [r1, q0]",
    "vldrbt.s16 q6, [r1, q1]",
    "vldrbt.s16 q7, [r1, q2]",
    "vpstttt",
    "vmladavat.s16 r0, q5, q4",
    "vldrbt.s16 q5, [r1, q3]",
    "vmladavat.s16 r2, q6, q4",
    "vmladavat.s16 r4, q7, q4",
    "vpst",
    "vmladavat.s16 r6, q5, q4",
    "b 9f",
    "7:",
    // the only group
    "ldr r11, [r7, #32]",
    "vctp.16 r11",
    "vpstttt",
    "vldrbt.u16 q4, [r3]",
    "vldrbt.s16 q5, [r1, q0]",
    "vldrbt.s16 q6, [r1, q1]",
    "vldrbt.s16 q7, [r1, q2]",
    "vpstttt",
    "vmladavt.s16 r0, q5, q4",
    "vldrbt.s16 q5, [r1, q3]",
    "vmladavt.s16 r2, q6, q4",
    "vmladavt.s16 r4, q7, q4",
    "vpst",
    "vmladavt.s16 r6, q5, q4",
    "9:",
    // requantize the four sums and store them as int16 (`i16::requant`): for shifts of 32 and
    // more VQDMULH's high word of 2·acc·mult then the rounding shift right by shift - 31 (the
    // identity of `Requant::apply32`; mult ≥ 0 never saturates); below, VQSHL left by
    // 31 - shift (saturating: a sum it clips saturates the int16 either way) then VQRDMULH,
    // `(2·acc'·mult + 2^31) >> 32` = `(acc·mult + 2^(shift-1)) >> shift`
    "stm r7, {{r0, r2, r4, r6}}",
    "vldmia r7, {{d8-d9}}",
    "cmp r12, #0",
    "bge 10f",
    "vqdmulh.s32 q4, q4, lr",
    "vrshl.s32 q4, r12",
    "b 11f",
    "10:",
    "vqshl.s32 q4, r12",
    "vqrdmulh.s32 q4, q4, lr",
    "11:",
    "vqmovnb.s32 q4, q4",
    "vstrh.32 q4, [r5], #8",
    "adds r9, r9, #4",
    "subs r8, r8, #1",
    "bne 5b",
    "vpop {{d8-d15}}",
    "pop {{r4-r11, pc}}",
    ".size pf_mve_pv, . - pf_mve_pv",
);

extern "C" {
    fn pf_mve_qk16(args: *const QkArgs);
    fn pf_mve_qk32(args: *const QkArgs);
    fn pf_mve_qk48(args: *const QkArgs);
    fn pf_mve_qk64(args: *const QkArgs);
    fn pf_mve_pv(args: *mut PvArgs);
}

/// `scores[j] = q · k[j·stride .. j·stride + dh]` for `j < scores.len()`, `dh = q.len()` in
/// {16, 32, 48, 64}, everything word-aligned. Returns `false`, doing nothing, otherwise or if `k`
/// does not hold every key.
#[inline(always)]
fn scores_asm(q: &[i8], k: &[i8], stride: usize, scores: &mut [i32]) -> bool {
    let (dh, n) = (q.len(), scores.len());
    let aligned = (q.as_ptr() as usize | k.as_ptr() as usize | stride) % 4 == 0;
    if !aligned || !matches!(dh, 16 | 32 | 48 | 64) || stride < dh || n == 0 || (n - 1).checked_mul(stride).and_then(|o| o.checked_add(dh)).is_none_or(|end| end > k.len()) {
        return false;
    }
    let args = QkArgs { q: q.as_ptr(), k: k.as_ptr(), stride, n, scores: scores.as_mut_ptr() };
    // SAFETY: reads `dh` bytes of `q` and `dh` bytes at `k + j·stride` for `j < n` (`VLDM`,
    // word-aligned: checked), the last ending at `(n-1)·stride + dh ≤ k.len()` (checked), and
    // writes `n` scores (4-aligned as `i32`). Callee-saved registers are restored.
    unsafe {
        match dh {
            16 => pf_mve_qk16(&args),
            32 => pf_mve_qk32(&args),
            48 => pf_mve_qk48(&args),
            _ => pf_mve_qk64(&args),
        }
    }
    true
}

/// The scores of one head: the assembly when the head qualifies, else the DSP file.
#[inline(always)]
pub fn scores(qh: &[i8], kh: &[i8], stride: usize, s: &mut [i32]) -> bool {
    scores_asm(qh, kh, stride, s) || scores_dsp(qh, kh, stride, s)
}

/// Heads the assembly does not take (a head size other than 16, 32, 48 or 64, say) go to the
/// DSP kernel (out of line: the common path stays small).
#[inline(never)]
fn scores_dsp(qh: &[i8], kh: &[i8], stride: usize, s: &mut [i32]) -> bool {
    dsp::scores(qh, kh, stride, s)
}

#[inline(never)]
fn context_dsp(probs: &[u8], vh: &[i8], stride: usize, rq: Requant, outh: &mut [i16]) -> bool {
    dsp::context(probs, vh, stride, rq, outh)
}

/// `outh[i] = rq(Σ_j p[j] · v[j·stride + i])` for `i < outh.len()` (`= dh`, a multiple of 4),
/// `j < p.len()` (at most [`MAX_KEYS`], at least 1), `7·stride < 2^16` (the gathers' int16
/// offsets). Returns `false`, doing nothing, otherwise or if `v` does not hold
/// every key.
#[inline(always)]
fn context_asm(p: &[u8], v: &[i8], stride: usize, rq: Requant, out: &mut [i16]) -> bool {
    let (dh, n) = (out.len(), p.len());
    let ok = dh % 4 == 0 && dh > 0 && stride >= dh && stride < 1 << 13 && (1..=MAX_KEYS).contains(&n) && rq.is_valid() && out.as_ptr() as usize % 2 == 0;
    if !ok || (n - 1).checked_mul(stride).and_then(|o| o.checked_add(dh)).is_none_or(|end| end > v.len()) {
        return false;
    }
    let groups = n.div_ceil(8);
    let mut args = PvArgs {
        acc: MaybeUninit::uninit(),
        p: p.as_ptr(),
        v: v.as_ptr(),
        stride,
        groups,
        last: n - 8 * (groups - 1),
        blocks: dh / 4,
        out: out.as_mut_ptr(),
        mult: rq.mult,
        neg_s1: 31 - rq.shift,
    };
    // SAFETY: the routine reads the `n` probabilities and the bytes at `v + j·stride + i` for
    // `j < n`, `i < dh` (the last group's keys past `n` are predicated off: neither loaded nor
    // added), the last ending inside `v` (checked); writes `dh` int16 at `out` (2-aligned).
    // Callee-saved registers are restored.
    unsafe { pf_mve_pv(&mut args) };
    true
}

/// The context of one head, requantized into `outh`: the assembly when the head qualifies,
/// else the DSP file.
#[inline(always)]
pub fn context(probs: &[u8], vh: &[i8], stride: usize, rq: Requant, outh: &mut [i16]) -> bool {
    context_asm(probs, vh, stride, rq, outh) || context_dsp(probs, vh, stride, rq, outh)
}
