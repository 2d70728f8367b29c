//! x86-64 SIMD paths of the softmax (`picoformer_core = "x86"`), picked per call from
//! [`level`]: AVX2 (8 lanes, the table read with `VPGATHERDD`), AVX or SSE4.1 (4 lanes, four
//! table loads), or the portable loop. They take fused multipliers (every converted model's)
//! and rows of at least one vector; the rest go to the portable loop.
//!
//! The same arithmetic as [`super::portable::softmax_u8`], lane by lane: the maximum
//! (`PMAXSD`), `t = (hi((m - s) · mult) + 2^(sh-33)) >> (sh-32)` in unsigned 32 bits
//! (`PMULUDQ`, a uniform shift), `e = EXP2_NEG_Q15[min(t, 1023)]`, the exponentials written back
//! to `scores` and summed with wrapping (exact: Σe < 2^32), one scalar reciprocal, then
//! `p = min(255, ((e · recip) >> 1 + 2^22) >> 23)` (`PMULLD`: `e · recip < 2^32`), narrowed
//! with unsigned saturation (`PACKUSDW`, `PACKUSWB`: every value is at most 255). Elements past
//! the last whole vector take the scalar formula.

use core::arch::x86_64::*;

use super::exp2::{exp2_neg_q15, recip_2_32, EXP2_NEG_Q15, RECIP_CAP};
use super::portable;
use crate::kernels::x86_features::{level, Level};
use crate::quant::Requant;

/// Stack scratch: none beyond registers.
pub const STACK_BYTES: usize = 0;

/// [`EXP2_NEG_Q15`] widened to 32 bits, the element size `VPGATHERDD` reads (4 KiB).
static EXP2_NEG_U32: [u32; 1024] = {
    let mut t = [0u32; 1024];
    let mut i = 0;
    while i < 1024 {
        #[allow(clippy::indexing_slicing)] // evaluated at compile time: a bad index fails the build
        {
            t[i] = EXP2_NEG_Q15[i] as u32;
        }
        i += 1;
    }
    t
};

/// Softmax of `scores` into `p`, see the module doc of [`super`].
pub fn softmax_u8(scores: &mut [i32], rq: Requant, p: &mut [u8]) {
    let n = scores.len().min(p.len());
    let lvl = level();
    let lanes = if lvl >= Level::Avx2 { 8 } else { 4 };
    if lvl == Level::Portable || !rq.is_fused() || n < lanes {
        return portable::softmax_u8(scores, rq, p);
    }
    let (s, q) = (scores.as_mut_ptr(), p.as_mut_ptr());
    match lvl {
        // SAFETY: `level()` never exceeds what CPUID reported, so AVX2 is present; `s` and `q`
        // are valid for `n` elements, and `rq` is fused (shift in 33..=62).
        Level::Avx2 | Level::Avx512Vnni => unsafe { avx2::softmax(s, q, n, rq) },
        // SAFETY: as above, AVX is present.
        Level::Avx => unsafe { avx::softmax(s, q, n, rq) },
        // SAFETY: as above, SSSE3 and SSE4.1 are present.
        _ => unsafe { sse41::softmax(s, q, n, rq) },
    }
}

/// The fused exponent's constants: `mult`, `2^(sh-33)` and `sh - 32`.
#[inline(always)]
fn constants(rq: Requant) -> (u32, u32, i32) {
    (rq.mult.max(0) as u32, 1u32 << ((rq.shift - 33) & 31), rq.shift - 32)
}

/// `e` of one score below the maximum `m`, as the portable loop computes it.
#[inline(always)]
fn exp_scalar(m: i32, s: i32, (mult, r, s2): (u32, u32, i32)) -> u32 {
    let hi = ((m.wrapping_sub(s) as u32 as u64 * mult as u64) >> 32) as u32;
    exp2_neg_q15(((hi + r) >> (s2 & 31)) as u64)
}

/// `p` of one exponential.
#[inline(always)]
fn prob_scalar(e: u32, recip: u32) -> u8 {
    (((e.wrapping_mul(recip) >> 1) + (1 << 22)) >> 23).min(255) as u8
}

/// The 4-lane softmax, compiled once per feature set (SSE4.1, AVX).
macro_rules! sse_path {
    ($name:ident, $feature:literal) => {
        mod $name {
            use super::*;

            /// # Safety
            /// The CPU has this module's feature; `s` and `q` valid for `n ≥ 4` elements; `rq`
            /// fused.
            #[target_feature(enable = $feature)]
            pub unsafe fn softmax(s: *mut i32, q: *mut u8, n: usize, rq: Requant) {
                let whole = n / 4 * 4;
                let mut mv = _mm_set1_epi32(i32::MIN);
                let mut j = 0;
                while j < whole {
                    mv = _mm_max_epi32(mv, _mm_loadu_si128(s.add(j) as *const __m128i));
                    j += 4;
                }
                mv = _mm_max_epi32(mv, _mm_shuffle_epi32(mv, 0b01_00_11_10));
                mv = _mm_max_epi32(mv, _mm_shuffle_epi32(mv, 0b10_11_00_01));
                let mut m = _mm_cvtsi128_si32(mv);
                for t in whole..n {
                    m = m.max(s.add(t).read());
                }
                let c = constants(rq);
                let (mult, r, s2) = (_mm_set1_epi32(c.0 as i32), _mm_set1_epi32(c.1 as i32), _mm_cvtsi32_si128(c.2));
                let mv = _mm_set1_epi32(m);
                let mut sum = _mm_setzero_si128();
                let mut j = 0;
                while j < whole {
                    let d = _mm_sub_epi32(mv, _mm_loadu_si128(s.add(j) as *const __m128i));
                    let he = _mm_srli_epi64(_mm_mul_epu32(d, mult), 32);
                    let po = _mm_mul_epu32(_mm_srli_epi64(d, 32), mult);
                    let t = _mm_srl_epi32(_mm_add_epi32(_mm_blend_epi16(he, po, 0xcc), r), s2);
                    let t = _mm_min_epu32(t, _mm_set1_epi32(1023));
                    let e = _mm_setr_epi32(
                        EXP2_NEG_U32.as_ptr().add(_mm_extract_epi32(t, 0) as usize).read() as i32,
                        EXP2_NEG_U32.as_ptr().add(_mm_extract_epi32(t, 1) as usize).read() as i32,
                        EXP2_NEG_U32.as_ptr().add(_mm_extract_epi32(t, 2) as usize).read() as i32,
                        EXP2_NEG_U32.as_ptr().add(_mm_extract_epi32(t, 3) as usize).read() as i32,
                    );
                    _mm_storeu_si128(s.add(j) as *mut __m128i, e);
                    sum = _mm_add_epi32(sum, e);
                    j += 4;
                }
                sum = _mm_add_epi32(sum, _mm_shuffle_epi32(sum, 0b01_00_11_10));
                sum = _mm_add_epi32(sum, _mm_shuffle_epi32(sum, 0b10_11_00_01));
                let mut total = _mm_cvtsi128_si32(sum) as u32;
                for t in whole..n {
                    let e = exp_scalar(m, s.add(t).read(), c);
                    s.add(t).write(e as i32);
                    total = total.wrapping_add(e);
                }
                let recip = recip_2_32(total).min(RECIP_CAP);
                let rv = _mm_set1_epi32(recip as i32);
                let half = _mm_set1_epi32(1 << 22);
                let mut j = 0;
                while j < whole {
                    let e = _mm_loadu_si128(s.add(j) as *const __m128i);
                    let v = _mm_srli_epi32(_mm_add_epi32(_mm_srli_epi32(_mm_mullo_epi32(e, rv), 1), half), 23);
                    let b = _mm_packus_epi16(_mm_packus_epi32(v, v), _mm_setzero_si128());
                    (q.add(j) as *mut i32).write_unaligned(_mm_cvtsi128_si32(b));
                    j += 4;
                }
                for t in whole..n {
                    q.add(t).write(prob_scalar(s.add(t).read() as u32, recip));
                }
            }
        }
    };
}

sse_path!(sse41, "sse4.1");
sse_path!(avx, "avx");

mod avx2 {
    use super::*;

    /// # Safety
    /// The CPU has AVX2; `s` and `q` valid for `n ≥ 8` elements; `rq` fused.
    #[target_feature(enable = "avx2")]
    pub unsafe fn softmax(s: *mut i32, q: *mut u8, n: usize, rq: Requant) {
        let whole = n / 8 * 8;
        let mut mv = _mm256_set1_epi32(i32::MIN);
        let mut j = 0;
        while j < whole {
            mv = _mm256_max_epi32(mv, _mm256_loadu_si256(s.add(j) as *const __m256i));
            j += 8;
        }
        let mut m4 = _mm_max_epi32(_mm256_castsi256_si128(mv), _mm256_extracti128_si256(mv, 1));
        m4 = _mm_max_epi32(m4, _mm_shuffle_epi32(m4, 0b01_00_11_10));
        m4 = _mm_max_epi32(m4, _mm_shuffle_epi32(m4, 0b10_11_00_01));
        let mut m = _mm_cvtsi128_si32(m4);
        for t in whole..n {
            m = m.max(s.add(t).read());
        }
        let c = constants(rq);
        let (mult, r, s2) = (_mm256_set1_epi32(c.0 as i32), _mm256_set1_epi32(c.1 as i32), _mm_cvtsi32_si128(c.2));
        let mv = _mm256_set1_epi32(m);
        let table = EXP2_NEG_U32.as_ptr() as *const i32;
        let mut sum = _mm256_setzero_si256();
        let mut j = 0;
        while j < whole {
            let d = _mm256_sub_epi32(mv, _mm256_loadu_si256(s.add(j) as *const __m256i));
            let he = _mm256_srli_epi64(_mm256_mul_epu32(d, mult), 32);
            let po = _mm256_mul_epu32(_mm256_srli_epi64(d, 32), mult);
            let t = _mm256_srl_epi32(_mm256_add_epi32(_mm256_blend_epi32(he, po, 0b1010_1010), r), s2);
            // every index is at most 1023: the gather stays inside the table
            let t = _mm256_min_epu32(t, _mm256_set1_epi32(1023));
            let e = _mm256_i32gather_epi32::<4>(table, t);
            _mm256_storeu_si256(s.add(j) as *mut __m256i, e);
            sum = _mm256_add_epi32(sum, e);
            j += 8;
        }
        let mut s4 = _mm_add_epi32(_mm256_castsi256_si128(sum), _mm256_extracti128_si256(sum, 1));
        s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0b01_00_11_10));
        s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0b10_11_00_01));
        let mut total = _mm_cvtsi128_si32(s4) as u32;
        for t in whole..n {
            let e = exp_scalar(m, s.add(t).read(), c);
            s.add(t).write(e as i32);
            total = total.wrapping_add(e);
        }
        let recip = recip_2_32(total).min(RECIP_CAP);
        let rv = _mm256_set1_epi32(recip as i32);
        let half = _mm256_set1_epi32(1 << 22);
        let mut j = 0;
        while j < whole {
            let e = _mm256_loadu_si256(s.add(j) as *const __m256i);
            let v = _mm256_srli_epi32(_mm256_add_epi32(_mm256_srli_epi32(_mm256_mullo_epi32(e, rv), 1), half), 23);
            let w = _mm_packus_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
            _mm_storel_epi64(q.add(j) as *mut __m128i, _mm_packus_epi16(w, w));
            j += 8;
        }
        for t in whole..n {
            q.add(t).write(prob_scalar(s.add(t).read() as u32, recip));
        }
    }
}
