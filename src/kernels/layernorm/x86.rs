//! x86-64 SIMD paths of LayerNorm (`picoformer_core = "x86"`), picked per call from
//! [`level`]: AVX2 for rows of `d % 16 == 0`, AVX or SSE4.1 for `d % 8 == 0`, the portable loop
//! otherwise.
//!
//! - Statistics: `Σx` and `Σx²` in one pass (`PMADDWD` with ones and with `x` itself: a pair of
//!   squares is at most 2^31, exact as an unsigned 32-bit lane, summed in 64-bit lanes), then
//!   `Σ(x - mean)² = Σx² - 2·mean·Σx + d·mean²` exactly, as the DSP path does.
//! - Output, lane by lane: `z = (xc · inv) >> 16` from `PMULDQ` (`|xc · inv| < 2^47`, so `z`
//!   fits 32 bits and is the low word of a logical 64-bit shift), then the reference's
//!   `(z · g + 2^(sh-1)) >> sh` in 64 bits (`PMULDQ`, `PADDQ`, then for `sh = 32` the low word
//!   of a logical shift, for `sh > 32` the high word shifted arithmetically by `sh - 32`): for
//!   `sh ≥ 32` the result is below 2^30 in magnitude, so 32 bits hold it. The bias is added with
//!   32-bit saturation (the portable loop's `saturating_add`: an overflowing lane takes
//!   `i32::MIN` or `MAX` by its sign, which clamps to the same int16 bound as the reference's
//!   64-bit sum), and `PACKSSDW` clamps to int16.
//!
//! Rows the fast output does not take (`inv ≥ 2^31`, a shift outside `32..=62`, a mean outside
//! `i16`) go through the portable loop. The converter's shifts are 32 and 33.

use core::arch::x86_64::*;

use super::params::{inv_std, mean, LayerNorm, RmsNorm};
use super::portable;
use crate::kernels::x86_features::{level, Level};
use crate::quant::Requant;

/// Stack scratch: none beyond registers.
pub const STACK_BYTES: usize = 0;

/// LayerNorm through the best path this CPU has.
pub fn layer_norm(ln: &LayerNorm<'_>, x: &[i16], y: &mut [i16]) {
    let d = ln.gain.len();
    let lvl = level();
    if lvl == Level::Portable || d == 0 || d % 8 != 0 || ln.bias.len() < d {
        return portable::layer_norm(ln, x, y);
    }
    let wide = lvl >= Level::Avx2 && d % 16 == 0;
    let fast_shift = (32..=Requant::SHIFT_MAX).contains(&ln.shift);
    let n = d as i64;
    for (xr, yr) in x.chunks_exact(d).zip(y.chunks_exact_mut(d)) {
        let (xp, yp) = (xr.as_ptr(), yr.as_mut_ptr());
        let (sum, sq_raw) = match lvl {
            // SAFETY: `level()` never exceeds what CPUID reported, so AVX2 is present; `xp`
            // holds `d` values (`d % 16 == 0`).
            Level::Avx2 | Level::Avx512Vnni if wide => unsafe { avx2::stats(xp, d) },
            // SAFETY: as above, AVX is present (AVX2 implies it); `d % 8 == 0`.
            Level::Avx | Level::Avx2 | Level::Avx512Vnni => unsafe { avx::stats(xp, d) },
            // SAFETY: as above, SSSE3 and SSE4.1 are present.
            _ => unsafe { sse41::stats(xp, d) },
        };
        let mean = mean(sum, d);
        // Σ(x - mean)² = Σx² - 2·mean·Σx + d·mean², exactly (every term < 2^63)
        let sq = (sq_raw as i64 - 2 * mean * sum as i64 + n * mean * mean) as u64;
        let inv = inv_std(sq, d, ln.eps);
        if !(inv < 1 << 31 && fast_shift && (i16::MIN as i64..=i16::MAX as i64).contains(&mean)) {
            portable::layer_norm(ln, xr, yr);
            continue;
        }
        let o = Out { gain: ln.gain.as_ptr(), bias: ln.bias.as_ptr(), mean: mean as i32, inv: inv as i32, shift: ln.shift };
        match lvl {
            // SAFETY: as for the statistics; `gain`, `bias` and `yp` hold `d` values, the
            // shift is in 32..=62 (`fast_shift`) and `0 ≤ inv < 2^31`.
            Level::Avx2 | Level::Avx512Vnni if wide => unsafe { avx2::output(xp, yp, d, &o) },
            // SAFETY: as above.
            Level::Avx | Level::Avx2 | Level::Avx512Vnni => unsafe { avx::output(xp, yp, d, &o) },
            // SAFETY: as above.
            _ => unsafe { sse41::output(xp, yp, d, &o) },
        }
    }
}

/// RMSNorm: `Σx²` through the SIMD statistics, the portable output pass.
pub fn rms_norm(rms: &RmsNorm<'_>, x: &[i16], y: &mut [i16]) {
    portable::rms_norm_with(rms, x, y, row_stats)
}

/// `(Σx, Σx²)` of one row through the best path this CPU has, or `None` (no SIMD, or a length
/// not a multiple of 8).
fn row_stats(x: &[i16]) -> Option<(i32, u64)> {
    let (d, lvl) = (x.len(), level());
    if lvl == Level::Portable || d == 0 || d % 8 != 0 {
        return None;
    }
    let xp = x.as_ptr();
    Some(match lvl {
        // SAFETY: `level()` never exceeds what CPUID reported, so AVX2 is present; `xp` holds
        // `d` values (`d % 16 == 0`).
        Level::Avx2 | Level::Avx512Vnni if d % 16 == 0 => unsafe { avx2::stats(xp, d) },
        // SAFETY: as above, AVX is present (AVX2 implies it); `d % 8 == 0`.
        Level::Avx | Level::Avx2 | Level::Avx512Vnni => unsafe { avx::stats(xp, d) },
        // SAFETY: as above, SSSE3 and SSE4.1 are present.
        _ => unsafe { sse41::stats(xp, d) },
    })
}

/// One row's output parameters.
struct Out {
    gain: *const i32,
    bias: *const i32,
    mean: i32,
    inv: i32,
    shift: i32,
}

/// The 64-bit shift of a row's output: `(sh, sh - 32)` as shift counts, and whether `sh > 32`
/// (then the high words are shifted by `sh - 32`, else the 64-bit lanes by `sh`).
#[target_feature(enable = "sse4.1")]
#[inline]
unsafe fn shift_counts(sh: i32) -> (__m128i, __m128i, bool) {
    (_mm_cvtsi32_si128(sh), _mm_cvtsi32_si128(sh - 32), sh > 32)
}

/// `a + b` per lane, saturating at `i32::MIN` and `MAX`.
#[target_feature(enable = "sse4.1")]
#[inline]
unsafe fn adds_epi32(a: __m128i, b: __m128i) -> __m128i {
    let sum = _mm_add_epi32(a, b);
    // overflow: a and b agree in sign and the sum does not
    let over = _mm_srai_epi32(_mm_andnot_si128(_mm_xor_si128(a, b), _mm_xor_si128(a, sum)), 31);
    let sat = _mm_xor_si128(_mm_srai_epi32(a, 31), _mm_set1_epi32(i32::MAX));
    _mm_blendv_epi8(sum, sat, over)
}

/// `(v · m) >> shift` for 4 lanes of 64-bit products, the low words, even and odd lanes:
/// `z = (xc · inv) >> 16` (the result fits 32 bits, so a logical shift of the 64-bit product
/// gives it).
#[target_feature(enable = "sse4.1")]
#[inline]
unsafe fn mul_shift16(xc: __m128i, inv: __m128i) -> __m128i {
    let pe = _mm_srli_epi64(_mm_mul_epi32(xc, inv), 16);
    let po = _mm_slli_epi64(_mm_mul_epi32(_mm_srli_epi64(xc, 32), inv), 16);
    _mm_blend_epi16(pe, po, 0xcc)
}

/// `(z · g + round) >> sh` for 4 lanes in 64 bits, exact when each result fits 32 bits (see
/// [`shift_counts`]).
#[target_feature(enable = "sse4.1")]
#[inline]
unsafe fn mul_round(z: __m128i, g: __m128i, round: __m128i, (sh, hsh, high): (__m128i, __m128i, bool)) -> __m128i {
    let te = _mm_add_epi64(_mm_mul_epi32(z, g), round);
    let to = _mm_add_epi64(_mm_mul_epi32(_mm_srli_epi64(z, 32), _mm_srli_epi64(g, 32)), round);
    if high {
        _mm_sra_epi32(_mm_blend_epi16(_mm_srli_epi64(te, 32), to, 0xcc), hsh)
    } else {
        _mm_blend_epi16(_mm_srl_epi64(te, sh), _mm_slli_epi64(_mm_srl_epi64(to, sh), 32), 0xcc)
    }
}

/// The 128-bit statistics and output, compiled once per feature set (SSE4.1, AVX).
macro_rules! sse_path {
    ($name:ident, $feature:literal) => {
        mod $name {
            use super::*;

            /// `(Σx, Σx²)` of a row.
            ///
            /// # Safety
            /// The CPU has this module's feature; `x` valid for `d` values, `d % 8 == 0`.
            #[target_feature(enable = $feature)]
            pub unsafe fn stats(x: *const i16, d: usize) -> (i32, u64) {
                let ones = _mm_set1_epi16(1);
                let (mut s, mut q) = (_mm_setzero_si128(), _mm_setzero_si128());
                let mut j = 0;
                while j < d {
                    let v = _mm_loadu_si128(x.add(j) as *const __m128i);
                    s = _mm_add_epi32(s, _mm_madd_epi16(v, ones));
                    let sq = _mm_madd_epi16(v, v); // unsigned, ≤ 2^31 each
                    q = _mm_add_epi64(q, _mm_add_epi64(_mm_cvtepu32_epi64(sq), _mm_cvtepu32_epi64(_mm_srli_si128(sq, 8))));
                    j += 8;
                }
                s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b01_00_11_10));
                s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b10_11_00_01));
                q = _mm_add_epi64(q, _mm_srli_si128(q, 8));
                (_mm_cvtsi128_si32(s), _mm_cvtsi128_si64(q) as u64)
            }

            /// The output pass of a row.
            ///
            /// # Safety
            /// The CPU has this module's feature; `x`, `y` and `o`'s gain and bias valid for
            /// `d` values, `d % 8 == 0`; `o.shift` in `32..=62`.
            #[target_feature(enable = $feature)]
            pub unsafe fn output(x: *const i16, y: *mut i16, d: usize, o: &Out) {
                let (mean, inv) = (_mm_set1_epi32(o.mean), _mm_set1_epi32(o.inv));
                let round = _mm_set1_epi64x(1i64 << (o.shift - 1));
                let counts = shift_counts(o.shift);
                let mut j = 0;
                while j < d {
                    let v = _mm_loadu_si128(x.add(j) as *const __m128i);
                    let mut h = [_mm_setzero_si128(); 2];
                    for (i, hv) in h.iter_mut().enumerate() {
                        let xs = if i == 0 { v } else { _mm_srli_si128(v, 8) };
                        let xc = _mm_sub_epi32(_mm_cvtepi16_epi32(xs), mean);
                        let z = mul_shift16(xc, inv);
                        let g = _mm_loadu_si128(o.gain.add(j + 4 * i) as *const __m128i);
                        let b = _mm_loadu_si128(o.bias.add(j + 4 * i) as *const __m128i);
                        let t = mul_round(z, g, round, counts);
                        *hv = adds_epi32(t, b);
                    }
                    let [h0, h1] = h;
                    _mm_storeu_si128(y.add(j) as *mut __m128i, _mm_packs_epi32(h0, h1));
                    j += 8;
                }
            }
        }
    };
}

sse_path!(sse41, "sse4.1");
sse_path!(avx, "avx");

mod avx2 {
    use super::*;

    /// `(Σx, Σx²)` of a row.
    ///
    /// # Safety
    /// The CPU has AVX2; `x` valid for `d` values, `d % 16 == 0`.
    #[target_feature(enable = "avx2")]
    pub unsafe fn stats(x: *const i16, d: usize) -> (i32, u64) {
        let ones = _mm256_set1_epi16(1);
        let (mut s, mut q) = (_mm256_setzero_si256(), _mm256_setzero_si256());
        let mut j = 0;
        while j < d {
            let v = _mm256_loadu_si256(x.add(j) as *const __m256i);
            s = _mm256_add_epi32(s, _mm256_madd_epi16(v, ones));
            let sq = _mm256_madd_epi16(v, v); // unsigned, ≤ 2^31 each
            let z = _mm256_setzero_si256();
            q = _mm256_add_epi64(q, _mm256_add_epi64(_mm256_unpacklo_epi32(sq, z), _mm256_unpackhi_epi32(sq, z)));
            j += 16;
        }
        let mut s4 = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
        s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0b01_00_11_10));
        s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0b10_11_00_01));
        let mut q2 = _mm_add_epi64(_mm256_castsi256_si128(q), _mm256_extracti128_si256(q, 1));
        q2 = _mm_add_epi64(q2, _mm_srli_si128(q2, 8));
        (_mm_cvtsi128_si32(s4), _mm_cvtsi128_si64(q2) as u64)
    }

    /// The output pass of a row, 8 lanes per step.
    ///
    /// # Safety
    /// The CPU has AVX2; `x`, `y` and `o`'s gain and bias valid for `d` values, `d % 16 == 0`;
    /// `o.shift` in `32..=62`.
    #[target_feature(enable = "avx2")]
    pub unsafe fn output(x: *const i16, y: *mut i16, d: usize, o: &Out) {
        let (mean, inv) = (_mm256_set1_epi32(o.mean), _mm256_set1_epi32(o.inv));
        let round = _mm256_set1_epi64x(1i64 << (o.shift - 1));
        let (sh, hsh, high) = shift_counts(o.shift);
        let mut j = 0;
        while j < d {
            let v = _mm256_loadu_si256(x.add(j) as *const __m256i);
            let mut h = [_mm256_setzero_si256(); 2];
            for (i, hv) in h.iter_mut().enumerate() {
                let xs = if i == 0 { _mm256_castsi256_si128(v) } else { _mm256_extracti128_si256(v, 1) };
                let xc = _mm256_sub_epi32(_mm256_cvtepi16_epi32(xs), mean);
                let pe = _mm256_srli_epi64(_mm256_mul_epi32(xc, inv), 16);
                let po = _mm256_slli_epi64(_mm256_mul_epi32(_mm256_srli_epi64(xc, 32), inv), 16);
                let z = _mm256_blend_epi32(pe, po, 0b1010_1010);
                let g = _mm256_loadu_si256(o.gain.add(j + 8 * i) as *const __m256i);
                let te = _mm256_add_epi64(_mm256_mul_epi32(z, g), round);
                let to = _mm256_add_epi64(_mm256_mul_epi32(_mm256_srli_epi64(z, 32), _mm256_srli_epi64(g, 32)), round);
                let t = if high {
                    _mm256_sra_epi32(_mm256_blend_epi32(_mm256_srli_epi64(te, 32), to, 0b1010_1010), hsh)
                } else {
                    _mm256_blend_epi32(_mm256_srl_epi64(te, sh), _mm256_slli_epi64(_mm256_srl_epi64(to, sh), 32), 0b1010_1010)
                };
                let b = _mm256_loadu_si256(o.bias.add(j + 8 * i) as *const __m256i);
                // saturating add, as `adds_epi32`
                let sum = _mm256_add_epi32(t, b);
                let over = _mm256_srai_epi32(_mm256_andnot_si256(_mm256_xor_si256(t, b), _mm256_xor_si256(t, sum)), 31);
                let sat = _mm256_xor_si256(_mm256_srai_epi32(t, 31), _mm256_set1_epi32(i32::MAX));
                *hv = _mm256_blendv_epi8(sum, sat, over);
            }
            let [h0, h1] = h;
            // in-lane pack interleaves the halves: put them back in order
            let p = _mm256_permute4x64_epi64(_mm256_packs_epi32(h0, h1), 0xd8);
            _mm256_storeu_si256(y.add(j) as *mut __m256i, p);
            j += 16;
        }
    }
}
