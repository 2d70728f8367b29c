//! x86-64 SIMD paths of the two matrix products inside [`super::attention`]
//! (`picoformer_core = "x86"`), picked per call from [`level`]: AVX2 for heads with
//! `d_head % 16 == 0`, the 128-bit code (AVX or SSE4.1) for `d_head % 8 == 0`, the portable
//! loops otherwise.
//!
//! - Scores, `s_j = q_h · k_j`: four keys per pass; per 16 (or 8) dimensions the query is
//!   sign-extended to int16 once (`PMOVSXBW`) and multiplied with each key's
//!   (`PMADDWD`, int8 × int8 products summed in pairs, exact); the four sums fold with
//!   `PHADDD`.
//! - Context, `c_i = Σ_j p_j · v_ji`: keys in pairs; the two value rows are interleaved
//!   byte by byte (`PUNPCKLBW`), sign-extended, and `PMADDWD` with the broadcast pair
//!   `(p_j, p_j+1)` adds both keys' products per output; 16 (or 8) outputs per pass. A left-over
//!   key pairs with zeros. Requantization to int16 is the 64-bit rule vectorized (one
//!   multiplier per call: a uniform shift), see `requant8_i16`.
//!
//! Sums wrap in 32 bits like the reference's `wrapping_add`, so both are bit-exact with
//! [`super::reference::attention_ref`].

use core::arch::x86_64::*;

use super::portable;
use crate::kernels::x86_features::{level, Level};
use crate::quant::{Activation, Requant};

/// Stack scratch: the context accumulators of one pass (16 `i32`).
pub const STACK_BYTES: usize = 64;

/// Whether `n` keys of `dh` bytes, `stride` apart, all lie inside a buffer of `len` bytes.
#[inline(always)]
fn keys_fit(n: usize, dh: usize, stride: usize, len: usize) -> bool {
    n == 0 || (n - 1).checked_mul(stride).and_then(|o| o.checked_add(dh)).is_some_and(|end| end <= len)
}

/// `scores[j] = q_h · k_j` for the head slice `qh` against `kh` (key 0's head slice, keys
/// `stride` apart). Always done.
#[inline(always)]
pub fn scores(qh: &[i8], kh: &[i8], stride: usize, s: &mut [i32]) -> bool {
    let (dh, n) = (qh.len(), s.len());
    let lvl = level();
    if lvl == Level::Portable || dh == 0 || dh % 8 != 0 || !keys_fit(n, dh, stride, kh.len()) {
        return portable::scores(qh, kh, stride, s);
    }
    let (q, k, out) = (qh.as_ptr(), kh.as_ptr(), s.as_mut_ptr());
    match lvl {
        // SAFETY: `level()` never exceeds what CPUID reported, so AVX2 is present; `q` holds
        // `dh` bytes, `k` every key's `dh` bytes (`keys_fit`), `out` `n` scores.
        Level::Avx2 | Level::Avx512Vnni if dh % 16 == 0 => unsafe { avx2::scores(q, k, stride, dh, n, out) },
        // SAFETY: as above, AVX is present (AVX2 implies it).
        Level::Avx | Level::Avx2 | Level::Avx512Vnni => unsafe { avx::scores(q, k, stride, dh, n, out) },
        // SAFETY: as above, SSSE3 and SSE4.1 are present.
        _ => unsafe { sse41::scores(q, k, stride, dh, n, out) },
    }
    true
}

/// `outh = rq(Σ_j p_j · v_j)` over the head slice `vh` (key 0's, keys `stride` apart). Always
/// done.
#[inline(always)]
pub fn context(probs: &[u8], vh: &[i8], stride: usize, rq: Requant, outh: &mut [i16]) -> bool {
    let (dh, n) = (outh.len(), probs.len());
    let lvl = level();
    if lvl == Level::Portable || dh == 0 || dh % 8 != 0 || !keys_fit(n, dh, stride, vh.len()) {
        return portable::context(probs, vh, stride, rq, outh);
    }
    let (p, v, out) = (probs.as_ptr(), vh.as_ptr(), outh.as_mut_ptr());
    match lvl {
        // SAFETY: `level()` never exceeds what CPUID reported, so AVX2 is present; `p` holds
        // `n` probabilities, `v` every key's `dh` bytes (`keys_fit`), `out` `dh` outputs.
        Level::Avx2 | Level::Avx512Vnni if dh % 16 == 0 => unsafe { avx2::context(p, v, stride, n, rq, dh, out) },
        // SAFETY: as above, AVX is present (AVX2 implies it).
        Level::Avx | Level::Avx2 | Level::Avx512Vnni => unsafe { avx::context(p, v, stride, n, rq, dh, out) },
        // SAFETY: as above, SSSE3 and SSE4.1 are present.
        _ => unsafe { sse41::context(p, v, stride, n, rq, dh, out) },
    }
    true
}

/// `(p_j, p_j+1)` as one int32 of two int16, for `PMADDWD`.
///
/// # Safety
/// `p` valid for `j + 1` bytes, and for `j + 2` when `pair`.
#[inline(always)]
unsafe fn prob_pair(p: *const u8, j: usize, pair: bool) -> i32 {
    let p0 = p.add(j).read() as i32;
    let p1 = if pair { p.add(j + 1).read() as i32 } else { 0 };
    p0 | p1 << 16
}

/// `out[i] = i16::requant(rq, acc[i])` for 8 lanes with one multiplier, 128-bit SSE4.1
/// operations, then `PACKSSDW` (the `i16` clamp). Callers have SSE4.1 or more, so it inlines
/// into each.
///
/// The rule in 64 bits, `v = (acc · mult + 2^(s-1)) >> s`, with a uniform shift: `PMULDQ`
/// products, a 64-bit add, then for `s ≤ 32` a logical 64-bit shift whose low word is `v`
/// whenever `v` fits 32 bits, for `s > 32` the high word shifted by `s - 32`. It always does for `s ≥ 32` (`|v| < 2^30`), and for smaller shifts (the converter's
/// context multipliers have `s = 30`) when every `|acc| < 2^(s-1)`, checked per call; other
/// lanes take [`Activation::requant`] one by one.
///
/// # Safety
/// The CPU has SSE4.1; `out` valid for 8 outputs.
#[target_feature(enable = "sse4.1")]
#[inline]
unsafe fn requant8_i16(a0: __m128i, a1: __m128i, rq: Requant, out: *mut i16) {
    let s = rq.shift & 63;
    let fits = s >= 32 || {
        let bound = _mm_set1_epi32((1 << ((s - 1).max(0) & 31)) - 1);
        let over = _mm_or_si128(_mm_cmpgt_epi32(_mm_abs_epi32(a0), bound), _mm_cmpgt_epi32(_mm_abs_epi32(a1), bound));
        // |i32::MIN| is negative as i32: catch it too
        let min = _mm_set1_epi32(i32::MIN);
        let over = _mm_or_si128(over, _mm_or_si128(_mm_cmpeq_epi32(a0, min), _mm_cmpeq_epi32(a1, min)));
        _mm_testz_si128(over, over) == 1
    };
    if !fits || s < 1 {
        let mut t = [0i32; 8];
        _mm_storeu_si128(t.as_mut_ptr() as *mut __m128i, a0);
        _mm_storeu_si128(t.as_mut_ptr().add(4) as *mut __m128i, a1);
        for (i, &a) in t.iter().enumerate() {
            out.add(i).write(i16::requant(rq, a));
        }
        return;
    }
    let mult = _mm_set1_epi32(rq.mult);
    let round = _mm_set1_epi64x(1i64 << (s - 1));
    let sh = _mm_cvtsi32_si128(s);
    let hsh = if s > 32 { Some(_mm_cvtsi32_si128(s - 32)) } else { None };
    let (q0, q1) = (apply64(a0, mult, round, sh, hsh), apply64(a1, mult, round, sh, hsh));
    _mm_storeu_si128(out as *mut __m128i, _mm_packs_epi32(q0, q1));
}

/// `(v · mult + round) >> sh` per lane in 64 bits (exact when each result fits 32 bits): for
/// `sh ≤ 32` the low word of a logical shift, else the high word shifted arithmetically by
/// `sh - 32` (`hsh`).
#[target_feature(enable = "sse4.1")]
#[inline]
unsafe fn apply64(v: __m128i, mult: __m128i, round: __m128i, sh: __m128i, hsh: Option<__m128i>) -> __m128i {
    let e = _mm_add_epi64(_mm_mul_epi32(v, mult), round);
    let o = _mm_add_epi64(_mm_mul_epi32(_mm_srli_epi64(v, 32), mult), round);
    match hsh {
        None => _mm_blend_epi16(_mm_srl_epi64(e, sh), _mm_slli_epi64(_mm_srl_epi64(o, sh), 32), 0xcc),
        Some(h) => _mm_sra_epi32(_mm_blend_epi16(_mm_srli_epi64(e, 32), o, 0xcc), h),
    }
}

/// The 128-bit products, compiled once per feature set (SSE4.1, AVX): 8 dimensions or outputs
/// per step.
macro_rules! sse_path {
    ($name:ident, $feature:literal) => {
        mod $name {
            use super::*;

            /// # Safety
            /// The CPU has this module's feature; `q` valid for `dh` bytes (`dh % 8 == 0`), `k`
            /// for `n` keys of `dh` bytes `stride` apart, `out` for `n` scores.
            #[target_feature(enable = $feature)]
            pub unsafe fn scores(q: *const i8, k: *const i8, stride: usize, dh: usize, n: usize, out: *mut i32) {
                let mut j = 0;
                while j + 4 <= n {
                    let kj = k.add(j * stride);
                    let mut acc = [_mm_setzero_si128(); 4];
                    let mut d = 0;
                    while d < dh {
                        let qv = _mm_cvtepi8_epi16(_mm_loadl_epi64(q.add(d) as *const __m128i));
                        for (i, a) in acc.iter_mut().enumerate() {
                            let kv = _mm_cvtepi8_epi16(_mm_loadl_epi64(kj.add(i * stride + d) as *const __m128i));
                            *a = _mm_add_epi32(*a, _mm_madd_epi16(qv, kv));
                        }
                        d += 8;
                    }
                    let [a0, a1, a2, a3] = acc;
                    let s = _mm_hadd_epi32(_mm_hadd_epi32(a0, a1), _mm_hadd_epi32(a2, a3));
                    _mm_storeu_si128(out.add(j) as *mut __m128i, s);
                    j += 4;
                }
                while j < n {
                    let kj = k.add(j * stride);
                    let mut a = _mm_setzero_si128();
                    let mut d = 0;
                    while d < dh {
                        let qv = _mm_cvtepi8_epi16(_mm_loadl_epi64(q.add(d) as *const __m128i));
                        let kv = _mm_cvtepi8_epi16(_mm_loadl_epi64(kj.add(d) as *const __m128i));
                        a = _mm_add_epi32(a, _mm_madd_epi16(qv, kv));
                        d += 8;
                    }
                    let h = _mm_hadd_epi32(a, a);
                    out.add(j).write(_mm_cvtsi128_si32(_mm_hadd_epi32(h, h)));
                    j += 1;
                }
            }

            /// # Safety
            /// The CPU has this module's feature; `p` valid for `n` bytes, `v` for `n` keys of
            /// `dh` bytes `stride` apart (`dh % 8 == 0`), `out` for `dh` outputs.
            #[target_feature(enable = $feature)]
            pub unsafe fn context(p: *const u8, v: *const i8, stride: usize, n: usize, rq: Requant, dh: usize, out: *mut i16) {
                let mut c = 0;
                while c < dh {
                    let (mut a0, mut a1) = (_mm_setzero_si128(), _mm_setzero_si128());
                    let mut j = 0;
                    while j < n {
                        let pair = j + 1 < n;
                        let pp = _mm_set1_epi32(prob_pair(p, j, pair));
                        let v0 = _mm_loadl_epi64(v.add(j * stride + c) as *const __m128i);
                        let v1 = if pair { _mm_loadl_epi64(v.add((j + 1) * stride + c) as *const __m128i) } else { _mm_setzero_si128() };
                        let iv = _mm_unpacklo_epi8(v0, v1); // (v_j,i, v_j+1,i) for i in c..c+8
                        a0 = _mm_add_epi32(a0, _mm_madd_epi16(_mm_cvtepi8_epi16(iv), pp));
                        a1 = _mm_add_epi32(a1, _mm_madd_epi16(_mm_cvtepi8_epi16(_mm_srli_si128(iv, 8)), pp));
                        j += 2;
                    }
                    requant8_i16(a0, a1, rq, out.add(c));
                    c += 8;
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
    /// The CPU has AVX2; `q` valid for `dh` bytes (`dh % 16 == 0`), `k` for `n` keys of `dh`
    /// bytes `stride` apart, `out` for `n` scores.
    #[target_feature(enable = "avx2")]
    pub unsafe fn scores(q: *const i8, k: *const i8, stride: usize, dh: usize, n: usize, out: *mut i32) {
        let mut j = 0;
        while j + 4 <= n {
            let kj = k.add(j * stride);
            let mut acc = [_mm256_setzero_si256(); 4];
            let mut d = 0;
            while d < dh {
                let qv = _mm256_cvtepi8_epi16(_mm_loadu_si128(q.add(d) as *const __m128i));
                for (i, a) in acc.iter_mut().enumerate() {
                    let kv = _mm256_cvtepi8_epi16(_mm_loadu_si128(kj.add(i * stride + d) as *const __m128i));
                    *a = _mm256_add_epi32(*a, _mm256_madd_epi16(qv, kv));
                }
                d += 16;
            }
            let [a0, a1, a2, a3] = acc;
            // [s0 s1 s2 s3 | s0 s1 s2 s3] partial sums per half
            let h = _mm256_hadd_epi32(_mm256_hadd_epi32(a0, a1), _mm256_hadd_epi32(a2, a3));
            let s = _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
            _mm_storeu_si128(out.add(j) as *mut __m128i, s);
            j += 4;
        }
        while j < n {
            let kj = k.add(j * stride);
            let mut a = _mm256_setzero_si256();
            let mut d = 0;
            while d < dh {
                let qv = _mm256_cvtepi8_epi16(_mm_loadu_si128(q.add(d) as *const __m128i));
                let kv = _mm256_cvtepi8_epi16(_mm_loadu_si128(kj.add(d) as *const __m128i));
                a = _mm256_add_epi32(a, _mm256_madd_epi16(qv, kv));
                d += 16;
            }
            let s = _mm_add_epi32(_mm256_castsi256_si128(a), _mm256_extracti128_si256(a, 1));
            let h = _mm_hadd_epi32(s, s);
            out.add(j).write(_mm_cvtsi128_si32(_mm_hadd_epi32(h, h)));
            j += 1;
        }
    }

    /// # Safety
    /// The CPU has AVX2; `p` valid for `n` bytes, `v` for `n` keys of `dh` bytes `stride`
    /// apart (`dh % 16 == 0`), `out` for `dh` outputs.
    #[target_feature(enable = "avx2")]
    pub unsafe fn context(p: *const u8, v: *const i8, stride: usize, n: usize, rq: Requant, dh: usize, out: *mut i16) {
        let mut c = 0;
        while c < dh {
            let (mut a0, mut a1) = (_mm256_setzero_si256(), _mm256_setzero_si256());
            let mut j = 0;
            while j < n {
                let pair = j + 1 < n;
                let pp = _mm256_set1_epi32(prob_pair(p, j, pair));
                let v0 = _mm_loadu_si128(v.add(j * stride + c) as *const __m128i);
                let v1 = if pair { _mm_loadu_si128(v.add((j + 1) * stride + c) as *const __m128i) } else { _mm_setzero_si128() };
                // (v_j,i, v_j+1,i) for i in c..c+8 and c+8..c+16
                a0 = _mm256_add_epi32(a0, _mm256_madd_epi16(_mm256_cvtepi8_epi16(_mm_unpacklo_epi8(v0, v1)), pp));
                a1 = _mm256_add_epi32(a1, _mm256_madd_epi16(_mm256_cvtepi8_epi16(_mm_unpackhi_epi8(v0, v1)), pp));
                j += 2;
            }
            requant8_i16(_mm256_castsi256_si128(a0), _mm256_extracti128_si256(a0, 1), rq, out.add(c));
            requant8_i16(_mm256_castsi256_si128(a1), _mm256_extracti128_si256(a1, 1), rq, out.add(c + 8));
            c += 16;
        }
    }
}
