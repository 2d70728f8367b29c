//! Helium (MVE) fast path of the residual add (`picoformer_core = "mve"`):
//! `y = sat_i16((a·ma + b·mb + 2^(sh-1)) >> sh)` with 32-bit lanes, exactly.
//!
//! Split each multiplier at bit 15, `m = 2^15·mh + ml` with `0 ≤ ml < 2^15`. Then for int16
//! inputs `L = a·ml + b·nl` fits 32 bits, and so does `H = a·mh + b·nh` when
//! `|ma| + |mb| ≤ 2^31 - 2^17`; the sum is `2^15·H + L = 2^15·G + (L mod 2^15)` with
//! `G = H + (L >> 15)`, and for `sh ≥ 16` the low 15 bits cannot carry into the result:
//! `(sum + 2^(sh-1)) >> sh = (G + 2^(sh-16)) >> (sh-15)`, one rounding shift (`VRSHL`). Per 4
//! outputs `VLDRH.S32` of both inputs, `VMUL` + `VMLA` by the scalar halves twice, `VSHR`,
//! `VADD`, `VRSHL`, `VQMOVNB` and a narrowing store, the row under tail predication (`DLSTP`).
//! Other multipliers and shifts (`sh` outside 16..=46) take the portable loop.

use super::ResidualParams;

core::arch::global_asm!(
    ".syntax unified",
    ".cpu cortex-m55",
    ".thumb",
    ".section .text.pf_mve_residual,\"ax\",%progbits",
    ".global pf_mve_residual",
    ".type pf_mve_residual,%function",
    ".thumb_func",
    "pf_mve_residual:",
    // r0 = &Args { a, b, y, n, ml, nl, mh, nh, neg } (n ≥ 1)
    "    push {{r4-r9, lr}}",
    "    ldm r0, {{r1-r9}}",
    // r1 a, r2 b, r3 y, r4 n, r5 ml, r6 nl, r7 mh, r8 nh, r9 15 - sh
    "    dlstp.32 lr, r4",
    "1:",
    "    vldrh.s32 q0, [r1], #8",
    "    vldrh.s32 q1, [r2], #8",
    "    vmul.i32 q2, q0, r5",
    "    vmla.s32 q2, q1, r6",
    "    vmul.i32 q3, q0, r7",
    "    vmla.s32 q3, q1, r8",
    "    vshr.s32 q2, q2, #15",
    "    vadd.i32 q3, q3, q2",
    "    vrshl.s32 q3, r9",
    "    vqmovnb.s32 q3, q3",
    "    vstrh.32 q3, [r3], #8",
    "    letp lr, 1b",
    "    pop {{r4-r9, pc}}",
    ".size pf_mve_residual, . - pf_mve_residual",
);

/// Arguments of `pf_mve_residual`, loaded with one `LDM`: keep the order.
#[repr(C)]
struct Args {
    a: *const i16,
    b: *const i16,
    y: *mut i16,
    n: usize,
    ml: i32,
    nl: i32,
    mh: i32,
    nh: i32,
    /// `15 - sh`: the rounding shift right by `sh - 15`.
    neg: i32,
}

const _: () = assert!(core::mem::size_of::<Args>() == 36);

extern "C" {
    fn pf_mve_residual(args: *const Args);
}

/// Whether `p` takes the assembly: `sh` in 16..=46 and `|ma| + |mb| ≤ 2^31 - 2^17`.
#[inline(always)]
fn takes(p: ResidualParams) -> bool {
    (16..=46).contains(&p.shift) && p.ma.unsigned_abs() as u64 + p.mb.unsigned_abs() as u64 <= (1 << 31) - (1 << 17)
}

/// `y[j] = add(a[j], b[j])` for `j < n` through the assembly; `y` may be `a` (in place) or not
/// overlap either input. The caller checked [`takes`] and the lengths.
#[inline(always)]
fn run(p: ResidualParams, a: *const i16, b: *const i16, y: *mut i16, n: usize) {
    let args = Args { a, b, y, n, ml: p.ma & 0x7fff, nl: p.mb & 0x7fff, mh: p.ma >> 15, nh: p.mb >> 15, neg: 15 - p.shift };
    // SAFETY: the routine reads `n` int16 at `a` and at `b` and writes `n` int16 at `y` (each
    // 2-aligned as `i16`, lengths checked by the callers), four at a time, each store after the
    // loads of the same elements: in place (`y == a`) is safe. r4-r9 are restored.
    unsafe { pf_mve_residual(&args) }
}

/// `y = a + b` requantized ([`super::add`]); `false`, doing nothing, unless [`takes`].
#[inline]
pub fn add(p: ResidualParams, a: &[i16], b: &[i16], y: &mut [i16]) -> bool {
    let n = y.len().min(a.len()).min(b.len());
    if n == 0 || !takes(p) {
        return n == 0;
    }
    run(p, a.as_ptr(), b.as_ptr(), y.as_mut_ptr(), n);
    true
}

/// `a = a + b` requantized ([`super::add_in_place`]); `false`, doing nothing, unless [`takes`].
#[inline]
pub fn add_in_place(p: ResidualParams, a: &mut [i16], b: &[i16]) -> bool {
    let n = a.len().min(b.len());
    if n == 0 || !takes(p) {
        return n == 0;
    }
    run(p, a.as_ptr(), b.as_ptr(), a.as_mut_ptr(), n);
    true
}
