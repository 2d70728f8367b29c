//! Helium (MVE) fast path of [`super::LayerNorm::forward`] (`picoformer_core = "mve"`), for
//! word-aligned rows: the row statistics and the output pass, inside the portable row loop.
//!
//! - Row statistics (`pf_mve_ln_stats`): per 32 inputs one `VLDM` of four Q registers, then
//!   per 8 one `VADDVA.S16` into `Σx` and one `VMLALDAVA.S16` into the 64-bit `Σx²` (the rest of
//!   the row under tail predication). The caller turns them into `Σ(x - mean)²`, exactly.
//! - Output (`pf_mve_ln_out*`), when `inv < 2^31`, `mean` is an `i16` and the shift is 32 or
//!   more: per 4 outputs `VLDRH.S32` of the inputs, `VMLAS` making `(x << 15) - (mean << 15)`,
//!   `VQDMULH` by `inv` (`z = (xc·inv) >> 16` exactly: the doubling high word of
//!   `xc·2^15·inv`), `VMULH` by the gains and `VRSHL` by `32 - shift` (the rounding of
//!   `(z·g + 2^(sh-1)) >> sh`, as `Requant::apply32`; one `VRMULH` for a shift of 32),
//!   `VQADD` of the biases and `VQMOVNB` to int16; the gains and biases come 8 at a time by
//!   `VLDM`: 19 instructions per 8 outputs.
//!
//! Bit-exact with [`super::reference::layer_norm_ref`]; the firmware checks it on target.

use super::params::{div_u64_small, inv_std, mean, LayerNorm, RmsNorm};
use super::portable;

/// Stack scratch: the statistics' three words and the argument block.
pub const STACK_BYTES: usize = 12 + core::mem::size_of::<OutArgs>();

/// RMSNorm on a Helium core: the assembly's `Σx²`, the portable output pass.
#[inline]
pub fn rms_norm(rms: &RmsNorm<'_>, x: &[i16], y: &mut [i16]) {
    portable::rms_norm_with(rms, x, y, stats)
}

/// LayerNorm on a Helium core: per row the statistics and the output pass in assembly, the
/// reciprocal square root by [`inv_std_fast`]; a row the assembly does not take goes through
/// the portable loop.
#[inline]
pub fn layer_norm(ln: &LayerNorm<'_>, x: &[i16], y: &mut [i16]) {
    let d = ln.gain.len();
    if d == 0 {
        return;
    }
    for (xr, yr) in x.chunks_exact(d).zip(y.chunks_exact_mut(d)) {
        let done = stats(xr).is_some_and(|(sum, sq_raw)| {
            // Σ(x - mean)² = Σx² - 2·mean·Σx + d·mean², exactly (every term < 2^63)
            let mean = mean(sum, d);
            let sq = (sq_raw as i64 - 2 * mean * sum as i64 + d as i64 * mean * mean) as u64;
            output(xr, yr, ln.gain, ln.bias, mean, inv_std_fast(sq, d, ln.eps), ln.shift)
        });
        if !done {
            portable::layer_norm(ln, xr, yr);
        }
    }
}

/// [`inv_std`] with 32-bit divisions: `inv = ⌊2^40 / std8⌋`, `std8 = ⌊sqrt(var · 2^16)⌋`,
/// `var = ⌊sq / d⌋ + eps`, equal to it for every input (a variance of 2^32 or more, which int16
/// rows cannot reach without a huge `eps`, takes it as it is).
///
/// - `var < 2^16`: `std8` is the integer square root of the 32-bit `var · 2^16` (Newton from a
///   power of two above it, `UDIV` per step).
/// - `var < 2^32`: `s = ⌊sqrt(var)⌋` the same way, then `std8 = 256·s + t` with `t` the largest
///   in `0..=255` such that `(256s + t)² ≤ 2^16·var`, i.e. `512·s·t + t² ≤ 2^16·(var - s²)`:
///   `⌊128·(var - s²) / s⌋` bounds it from above and is at most one too big, since
///   `t² < 2^16 ≤ 256·s` for `s ≥ 256`.
/// - `⌊2^40 / std8⌋ = 256·a + ⌊256·r / std8⌋` with `2^32 = a·std8 + r` (`std8 ≥ 256`, so `a` and
///   `256·r` fit 32 bits), except `std8 = 256` (2^32 exactly).
#[inline]
fn inv_std_fast(sq: u64, d: usize, eps: u32) -> i64 {
    let var = div_u64_small(sq, d as u32) + eps.max(1) as u64;
    let Ok(var) = u32::try_from(var) else {
        return inv_std(sq, d, eps);
    };
    let std8 = if var < 1 << 16 {
        isqrt32(var << 16)
    } else {
        let s = isqrt32(var);
        let rem = var - s * s; // ≤ 2s < 2^17
        let mut t = ((rem << 7) / s).min(255);
        let lhs = |t: u32| (s as u64 * 512 * t as u64) + (t * t) as u64;
        if lhs(t) > (rem as u64) << 16 {
            t -= 1;
        }
        256 * s + t
    };
    if std8 <= 256 {
        return 1 << 32; // var = 1: 2^40 / 256
    }
    // 2^32 = a·std8 + r, from the quotient of 2^32 - 1
    let mut a = u32::MAX / std8;
    let mut r = u32::MAX - a * std8 + 1;
    if r == std8 {
        a += 1;
        r = 0;
    }
    (((a as u64) << 8) + ((r << 8) / std8) as u64) as i64
}

/// `⌊sqrt(v)⌋` for a 32-bit `v`: Newton's step `x ← (x + v/x) / 2` from `2^⌈bits/2⌉ ≥ sqrt(v)`
/// decreases to it.
#[inline]
fn isqrt32(v: u32) -> u32 {
    if v == 0 {
        return 0;
    }
    let mut x = 1u32 << (32 - v.leading_zeros()).div_ceil(2);
    loop {
        let y = (x + v / x) / 2;
        if y >= x {
            return x;
        }
        x = y;
    }
}

core::arch::global_asm!(
    ".syntax unified",
    ".cpu cortex-m55",
    ".thumb",
    ".section .text.pf_mve_ln_stats,\"ax\",%progbits",
    ".global pf_mve_ln_stats",
    ".type pf_mve_ln_stats,%function",
    ".thumb_func",
    "pf_mve_ln_stats:",
    // r0 = x (word-aligned), r1 = d (≥ 1), r2 = out [Σx, Σx² lo, Σx² hi]; Σx in r12, Σx² in r4:r5
    "    push {{r4, r5, r7, lr}}",
    "    mov r12, #0",
    "    movs r4, #0",
    "    movs r5, #0",
    "    lsrs r3, r1, #5",
    "    wls lr, r3, 2f",
    "1:",
    "    vldmia r0!, {{d0-d7}}",
    "    vaddva.s16 r12, q0",
    "    vmlaldava.s16 r4, r5, q0, q0",
    "    vaddva.s16 r12, q1",
    "    vmlaldava.s16 r4, r5, q1, q1",
    "    vaddva.s16 r12, q2",
    "    vmlaldava.s16 r4, r5, q2, q2",
    "    vaddva.s16 r12, q3",
    "    vmlaldava.s16 r4, r5, q3, q3",
    "    le lr, 1b",
    "2:",
    "    and r3, r1, #31",
    "    wlstp.16 lr, r3, 4f",
    "3:",
    "    vldrh.u16 q0, [r0], #16",
    "    vaddva.s16 r12, q0",
    "    vmlaldava.s16 r4, r5, q0, q0",
    "    letp lr, 3b",
    "4:",
    "    str r12, [r2]",
    "    strd r4, r5, [r2, #4]",
    "    pop {{r4, r5, r7, pc}}",
    ".size pf_mve_ln_stats, . - pf_mve_ln_stats",
);

/// Arguments of `pf_mve_ln_out*`, read by offset: keep the order.
#[repr(C)]
struct OutArgs {
    x: *const i16,
    y: *mut i16,
    gain: *const i32,
    bias: *const i32,
    /// `d / 8` (blocks of 8 outputs).
    blocks: usize,
    /// `-(mean << 15)`, `inv`, `32 - shift`.
    neg_mean15: i32,
    inv: i32,
    neg_s2: i32,
}

const _: () = {
    use core::mem::{offset_of, size_of};
    assert!(offset_of!(OutArgs, y) == 4 && offset_of!(OutArgs, gain) == 8 && offset_of!(OutArgs, bias) == 12);
    assert!(offset_of!(OutArgs, blocks) == 16 && offset_of!(OutArgs, neg_mean15) == 20 && offset_of!(OutArgs, inv) == 24);
    assert!(offset_of!(OutArgs, neg_s2) == 28 && size_of::<OutArgs>() == 32);
};

/// Four outputs: inputs at `r1` (advanced), biases `$b`; `q7` = 2^15, r5 = `-(mean << 15)`,
/// r6 = inv, r12 = `32 - shift`; stored at `r2` (advanced). `$z` turns `z` into
/// `(z·g + 2^(sh-1)) >> sh` in `q0` with its gains.
macro_rules! ln_out4 {
    ($b:literal, $z:expr) => {
        concat!(
            "vldrh.s32 q0, [r1], #8\n",
            "vmlas.s32 q0, q7, r5\n",
            "vqdmulh.s32 q0, q0, r6\n",
            $z,
            "vqadd.s32 q0, q0, ", $b, "\n",
            "vqmovnb.s32 q0, q0\n",
            "vstrh.32 q0, [r2], #8\n",
        )
    };
}

/// The output routine: `$zg1` and `$zg2` make `(z·g + 2^(sh-1)) >> sh` from `z` (in `q0`) and
/// the gains of outputs 0-3 (`q1`) and 4-7 (`q2`) of each 8.
macro_rules! ln_out {
    ($name:literal, $zg1:expr, $zg2:expr) => {
        core::arch::global_asm!(
            ".syntax unified",
            ".cpu cortex-m55",
            ".thumb",
            concat!(".section .text.", $name, ",\"ax\",%progbits"),
            concat!(".global ", $name),
            concat!(".type ", $name, ",%function"),
            ".thumb_func",
            concat!($name, ":"),
            // r0 = &OutArgs (blocks ≥ 1). r1 x, r2 y, r3 gains, r4 biases; q1-q2 gains,
            // q3-q4 biases of 8 outputs
            "push {{r4-r7, lr}}",
            "vpush {{d8-d15}}",
            "ldm r0, {{r1-r7}}",
            "mov lr, r5",
            "mov r5, r6",
            "mov r6, r7",
            "ldr r12, [r0, #28]",
            "mov r7, #0x8000",
            "vdup.32 q7, r7",
            "dls lr, lr",
            "1:",
            "vldmia r3!, {{d2-d5}}",
            "vldmia r4!, {{d6-d9}}",
            ln_out4!("q3", $zg1),
            ln_out4!("q4", $zg2),
            "le lr, 1b",
            "vpop {{d8-d15}}",
            "pop {{r4-r7, pc}}",
            concat!(".size ", $name, ", . - ", $name),
        );
    };
}

ln_out!("pf_mve_ln_out", "vmulh.s32 q0, q0, q1\n vrshl.s32 q0, r12\n", "vmulh.s32 q0, q0, q2\n vrshl.s32 q0, r12\n");
ln_out!("pf_mve_ln_out32", "vrmulh.s32 q0, q0, q1\n", "vrmulh.s32 q0, q0, q2\n");

extern "C" {
    fn pf_mve_ln_stats(x: *const i16, d: usize, out: *mut [u32; 3]);
    fn pf_mve_ln_out(args: *const OutArgs);
    fn pf_mve_ln_out32(args: *const OutArgs);
}

/// `(Σx, Σx²)` of one row (`Σx` wrapping, as the reference's), or `None` if the row is not
/// word-aligned or longer than 2^16 (where `Σx` could wrap).
#[inline(always)]
fn stats(x: &[i16]) -> Option<(i32, u64)> {
    if x.is_empty() || x.len() > 1 << 16 || x.as_ptr() as usize % 4 != 0 {
        return None;
    }
    let mut out = [0u32; 3];
    // SAFETY: reads `x.len()` int16 (word-aligned: checked; the tail under predication), writes
    // the three words of `out`; restores r4, r5, r7.
    unsafe { pf_mve_ln_stats(x.as_ptr(), x.len(), &mut out) };
    let [sum, lo, hi] = out;
    Some((sum as i32, (hi as u64) << 32 | lo as u64))
}

/// The output pass of one row, if `inv < 2^31`, `mean` is an `i16`, `shift` in `32..=62`,
/// `y`, `gain` and `bias` as long as `x`, `x.len() % 8 == 0` and the gains and biases
/// word-aligned; `false` (nothing written) otherwise.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn output(x: &[i16], y: &mut [i16], gain: &[i32], bias: &[i32], mean: i64, inv: i64, shift: i32) -> bool {
    let d = x.len();
    let ok = d > 0
        && d % 8 == 0
        && y.len() == d
        && gain.len() == d
        && bias.len() == d
        && (0..1 << 31).contains(&inv)
        && (i16::MIN as i64..=i16::MAX as i64).contains(&mean)
        && (32..=62).contains(&shift)
        && (gain.as_ptr() as usize | bias.as_ptr() as usize) % 4 == 0;
    if !ok {
        return false;
    }
    let args = OutArgs {
        x: x.as_ptr(),
        y: y.as_mut_ptr(),
        gain: gain.as_ptr(),
        bias: bias.as_ptr(),
        blocks: d / 8,
        neg_mean15: -((mean as i32) << 15),
        inv: inv as i32,
        neg_s2: 32 - shift,
    };
    // SAFETY: reads `d` int16 of `x` (`VLDRH`: 2-aligned) and `d` words of `gain` and `bias`
    // (`VLDM`: word-aligned, checked), writes `d` int16 of `y` (lengths checked); restores r4-r7
    // and q4-q7.
    unsafe {
        if shift == 32 {
            pf_mve_ln_out32(&args)
        } else {
            pf_mve_ln_out(&args)
        }
    }
    true
}
