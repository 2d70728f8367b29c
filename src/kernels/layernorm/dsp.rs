//! Cortex-M4/M7/M33 DSP fast path of [`super::LayerNorm::forward`] (`picoformer_core = "dsp"`),
//! for word-aligned rows with `d % 8 == 0`: the row statistics and the output pass, inside the
//! portable row loop.
//!
//! - Row statistics (`pf_ln_stats`): one `LDM` of 8 inputs, then per pair one `SMLAD` by
//!   `(1, 1)` into `Σx` and one `SMLALD` into the 64-bit `Σx²` (11 instructions per 8 inputs).
//!   The caller turns them into `Σ(x - mean)² = Σx² - 2·mean·Σx + d·mean²`, the same integer
//!   the reference sums.
//! - Output (`pf_ln_out`), when `inv < 2^30` (the row's variance is above 16 input units²,
//!   which a residual stream's always is): `z = (xc·inv) >> 16` is one `SMMUL` of
//!   `(x << 15) - (mean << 15)` (one `RSB`) by `inv << 1`, exact since `|xc| < 2^16`; then
//!   `SMMLA` adds the rounding term to `(z·g) >> 32`, `ASR`, `QADD` of the bias and `SSAT #16`:
//!   10 instructions per output. A shift of exactly 32 rounds with one `SMMULR` instead.
//!
//! Bit-exact with [`super::reference::layer_norm_ref`]; the firmware checks it on target.

use super::params::{LayerNorm, RmsNorm};
use super::portable;

/// Stack scratch: the statistics' three words and the argument block.
pub const STACK_BYTES: usize = 12 + core::mem::size_of::<OutArgs>();

/// RMSNorm on a DSP core: the assembly's `Σx²`, the portable output pass.
#[inline]
pub fn rms_norm(rms: &RmsNorm<'_>, x: &[i16], y: &mut [i16]) {
    portable::rms_norm_with(rms, x, y, stats)
}

/// LayerNorm on a DSP core.
#[inline]
pub fn layer_norm(ln: &LayerNorm<'_>, x: &[i16], y: &mut [i16]) {
    portable::layer_norm_with(ln, x, y, stats, |x, y, ln, mean, inv| output(x, y, ln.gain, ln.bias, mean, inv, ln.shift))
}

/// Arguments of `pf_ln_out`, read by offset: keep the order.
#[repr(C)]
struct OutArgs {
    x: *const i16,
    y: *mut i16,
    gain: *const i32,
    bias: *const i32,
    /// `d / 2` (pairs of outputs).
    pairs: usize,
    /// `mean << 15`, `inv << 1`, `2^(shift - 33)`, `shift - 32`.
    mean15: i32,
    inv2: i32,
    round: i32,
    s2: i32,
}

// `pf_ln_out` loads the nine words with one `LDM`, in this order
const _: () = {
    use core::mem::{offset_of, size_of};
    assert!(offset_of!(OutArgs, x) == 0 && offset_of!(OutArgs, y) == 4 && offset_of!(OutArgs, gain) == 8);
    assert!(offset_of!(OutArgs, bias) == 12 && offset_of!(OutArgs, pairs) == 16 && offset_of!(OutArgs, mean15) == 20);
    assert!(offset_of!(OutArgs, inv2) == 24 && offset_of!(OutArgs, round) == 28 && offset_of!(OutArgs, s2) == 32);
    assert!(size_of::<OutArgs>() == 36);
};

/// `Σx` (`r3`, wrapping) and `Σx²` (`r4`:`r5`) over the pair in `$r`; `r6` = `(1, 1)`.
macro_rules! stats_pair {
    ($r:literal) => {
        concat!("smlad r3, ", $r, ", r6, r3\n", "smlald r4, r5, ", $r, ", ", $r, "\n")
    };
}

core::arch::global_asm!(
    ".syntax unified",
    ".arch armv7e-m",
    ".section .text.pf_ln_stats,\"ax\",%progbits",
    ".global pf_ln_stats",
    ".type pf_ln_stats,%function",
    ".thumb_func",
    "pf_ln_stats:",
    // r0 = x (word-aligned), r1 = d / 8 (≥ 1), r2 = out [Σx, Σx² lo, Σx² hi]
    "    push {{r4-r10, lr}}",
    "    movs r3, #0",
    "    movs r4, #0",
    "    movs r5, #0",
    "    mov r6, #0x00010001",
    "1:",
    "    ldm r0!, {{r7-r10}}",
    stats_pair!("r7"),
    stats_pair!("r8"),
    stats_pair!("r9"),
    stats_pair!("r10"),
    "    subs r1, r1, #1",
    "    bne 1b",
    "    stm r2, {{r3-r5}}",
    "    pop {{r4-r10, pc}}",
    ".size pf_ln_stats, . - pf_ln_stats",
);

/// One output: input at `[r1]`, gain in `$g`, bias in `$b`, result stored at `[r2]`;
/// r7 = mean << 15, r8 = inv << 1, r9 = round, r10 = s2; r0 scratch.
macro_rules! ln_out {
    ($g:literal, $b:literal) => {
        concat!(
            "ldrsh r0, [r1], #2\n",
            "rsb r0, r7, r0, lsl #15\n",
            "smmul r0, r0, r8\n",
            "smmla r0, r0, ", $g, ", r9\n",
            "asr r0, r0, r10\n",
            "qadd r0, r0, ", $b, "\n",
            "ssat r0, #16, r0\n",
            "strh r0, [r2], #2\n",
        )
    };
}

/// [`ln_out`] for shift 32, where `(z·g + 2^31) >> 32` is one `SMMULR`.
macro_rules! ln_out32 {
    ($g:literal, $b:literal) => {
        concat!(
            "ldrsh r0, [r1], #2\n",
            "rsb r0, r7, r0, lsl #15\n",
            "smmul r0, r0, r8\n",
            "smmulr r0, r0, ", $g, "\n",
            "qadd r0, r0, ", $b, "\n",
            "ssat r0, #16, r0\n",
            "strh r0, [r2], #2\n",
        )
    };
}

core::arch::global_asm!(
    ".syntax unified",
    ".arch armv7e-m",
    ".section .text.pf_ln_out,\"ax\",%progbits",
    ".global pf_ln_out",
    ".type pf_ln_out,%function",
    ".thumb_func",
    "pf_ln_out:",
    // r0 = &OutArgs (pairs ≥ 1)
    "    push {{r4-r11, lr}}",
    "    ldm r0, {{r1-r9}}",
    // r1 x, r2 y, r3 gain, r4 bias, r5 pairs; mean15..s2 arrive in r6-r9, `ln_out` wants r7-r10
    "    mov r10, r9",
    "    mov r9, r8",
    "    mov r8, r7",
    "    mov r7, r6",
    "    cmp r10, #0",
    "    beq 2f",
    "1:",
    "    ldrd r11, r12, [r3], #8",
    "    ldrd r6, lr, [r4], #8",
    ln_out!("r11", "r6"),
    ln_out!("r12", "lr"),
    "    subs r5, r5, #1",
    "    bne 1b",
    "    pop {{r4-r11, pc}}",
    // shift 32
    "2:",
    "    ldrd r11, r12, [r3], #8",
    "    ldrd r6, lr, [r4], #8",
    ln_out32!("r11", "r6"),
    ln_out32!("r12", "lr"),
    "    subs r5, r5, #1",
    "    bne 2b",
    "    pop {{r4-r11, pc}}",
    ".size pf_ln_out, . - pf_ln_out",
);

extern "C" {
    fn pf_ln_stats(x: *const i16, blocks: usize, out: *mut [u32; 3]);
    fn pf_ln_out(args: *const OutArgs);
}

/// Whether a row of `x` takes the fast statistics: `d % 8 == 0`, word-aligned, and
/// `d ≤ 2^16` so that `Σx` cannot wrap.
#[inline(always)]
fn takes(x: &[i16]) -> bool {
    !x.is_empty() && x.len() % 8 == 0 && x.len() <= 1 << 16 && x.as_ptr() as usize % 4 == 0
}

/// `(Σx, Σx²)` of one row (`Σx` wrapping, as the reference's), or `None` if it does not take
/// the fast path.
#[inline(always)]
fn stats(x: &[i16]) -> Option<(i32, u64)> {
    if !takes(x) {
        return None;
    }
    let mut out = [0u32; 3];
    // SAFETY: reads `x.len()` int16 (word-aligned, `x.len() % 8 == 0`, checked), writes the
    // three words of `out`; restores r4-r10.
    unsafe { pf_ln_stats(x.as_ptr(), x.len() / 8, &mut out) };
    let [sum, lo, hi] = out;
    Some((sum as i32, (hi as u64) << 32 | lo as u64))
}

/// The output pass of one row, if `inv < 2^30`, `mean` is an `i16`, `shift` in `32..=62`,
/// `y`, `gain` and `bias` as long as `x` and `x.len()` even; `false` (nothing written)
/// otherwise.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn output(x: &[i16], y: &mut [i16], gain: &[i32], bias: &[i32], mean: i64, inv: i64, shift: i32) -> bool {
    let d = x.len();
    let ok = d > 0
        && d % 2 == 0
        && y.len() == d
        && gain.len() == d
        && bias.len() == d
        && (0..1 << 30).contains(&inv)
        && (i16::MIN as i64..=i16::MAX as i64).contains(&mean)
        && (32..=62).contains(&shift);
    if !ok {
        return false;
    }
    let args = OutArgs {
        x: x.as_ptr(),
        y: y.as_mut_ptr(),
        gain: gain.as_ptr(),
        bias: bias.as_ptr(),
        pairs: d / 2,
        mean15: (mean as i32) << 15,
        inv2: (inv as i32) << 1,
        round: (1 << (shift - 32)) >> 1,
        s2: shift - 32,
    };
    // SAFETY: reads `d` int16 of `x` and `d` words of `gain` and `bias` (`LDRD`: word-aligned
    // as `i32` slices), writes `d` int16 of `y` (lengths checked); restores r4-r11.
    unsafe { pf_ln_out(&args) };
    true
}
