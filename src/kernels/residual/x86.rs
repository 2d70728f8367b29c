//! x86-64 SIMD residual add (`picoformer_core = "x86"`), picked per call from [`level`]: 8
//! (AVX2) or 4 (SSE4.1, AVX) elements per step, for shifts `16..=32` (the scalar loop's `narrow`
//! case, every converted model's); it returns how many elements it did and the scalar loop takes
//! the rest.
//!
//! Per lane, as the scalar loop: `t = a·ma + b·mb + 2^(sh-1)` in 64 bits (`PMULDQ`, `PADDQ`;
//! `|t| < 2^47`), `t >> sh` as the low word of a logical 64-bit shift (it fits 32 bits since
//! `sh ≥ 16`, and `sh ≤ 32` keeps the low word's bits inside the 64), clamped to `i16` by
//! `PACKSSDW`.

use core::arch::x86_64::*;

use super::ResidualParams;
use crate::kernels::x86_features::{level, Level};

/// The level to run at and its lanes: none unless the level and the shift allow.
#[inline(always)]
fn lanes(p: ResidualParams) -> (Level, usize) {
    let l = level();
    match l {
        _ if !(16..=32).contains(&p.shift) => (l, 0),
        Level::Portable => (l, 0),
        Level::Avx2 | Level::Avx512Vnni => (l, 8),
        _ => (l, 4),
    }
}

/// `y = a + b` requantized over the first elements that fill whole vectors; returns how many.
pub fn add(p: ResidualParams, a: &[i16], b: &[i16], y: &mut [i16]) -> usize {
    let (lvl, l) = lanes(p);
    if l == 0 {
        return 0;
    }
    let n = a.len().min(b.len()).min(y.len()) / l * l;
    // SAFETY: `run` reads `n` values of `a` and `b` and writes `n` of `y`, all in bounds; the
    // level and `l` come from `lanes` (at most what CPUID reported, shift in 16..=32).
    unsafe { run(lvl, p, a.as_ptr(), b.as_ptr(), y.as_mut_ptr(), n) };
    n
}

/// `a = a + b` requantized over the first elements that fill whole vectors; returns how many.
pub fn add_in_place(p: ResidualParams, a: &mut [i16], b: &[i16]) -> usize {
    let (lvl, l) = lanes(p);
    if l == 0 {
        return 0;
    }
    let n = a.len().min(b.len()) / l * l;
    let pa = a.as_mut_ptr();
    // SAFETY: as in `add`; `y` is `a` itself: each step loads its `a` values before it stores
    // over them.
    unsafe { run(lvl, p, pa, b.as_ptr(), pa, n) };
    n
}

/// # Safety
/// `a`, `b` valid for `n` reads, `y` for `n` writes (it may be `a`), `n` a multiple of the
/// level's lanes, the shift in `16..=32`, and the CPU at level `lvl` (not `Portable`).
unsafe fn run(lvl: Level, p: ResidualParams, a: *const i16, b: *const i16, y: *mut i16, n: usize) {
    match lvl {
        // the caller's contract: the CPU has the level
        Level::Avx2 | Level::Avx512Vnni => avx2::run(p, a, b, y, n),
        Level::Avx => avx::run(p, a, b, y, n),
        _ => sse41::run(p, a, b, y, n),
    }
}

/// 4 lanes of `(a·ma + b·mb + round) >> sh`, the low words (exact: every result fits 32 bits).
#[target_feature(enable = "sse4.1")]
#[inline]
unsafe fn four(a: __m128i, b: __m128i, ma: __m128i, mb: __m128i, round: __m128i, sh: __m128i) -> __m128i {
    let te = _mm_add_epi64(_mm_add_epi64(_mm_mul_epi32(a, ma), _mm_mul_epi32(b, mb)), round);
    let to = _mm_add_epi64(_mm_add_epi64(_mm_mul_epi32(_mm_srli_epi64(a, 32), ma), _mm_mul_epi32(_mm_srli_epi64(b, 32), mb)), round);
    _mm_blend_epi16(_mm_srl_epi64(te, sh), _mm_slli_epi64(_mm_srl_epi64(to, sh), 32), 0xcc)
}

/// The 4-lane add, compiled once per feature set (SSE4.1, AVX).
macro_rules! sse_path {
    ($name:ident, $feature:literal) => {
        mod $name {
            use super::*;

            /// # Safety
            /// As [`super::run`], `n % 4 == 0`, the CPU has this module's feature.
            #[target_feature(enable = $feature)]
            pub unsafe fn run(p: ResidualParams, a: *const i16, b: *const i16, y: *mut i16, n: usize) {
                let (ma, mb) = (_mm_set1_epi32(p.ma), _mm_set1_epi32(p.mb));
                let round = _mm_set1_epi64x(1i64 << (p.shift - 1));
                let sh = _mm_cvtsi32_si128(p.shift);
                let mut j = 0;
                while j < n {
                    let av = _mm_cvtepi16_epi32(_mm_loadl_epi64(a.add(j) as *const __m128i));
                    let bv = _mm_cvtepi16_epi32(_mm_loadl_epi64(b.add(j) as *const __m128i));
                    let v = four(av, bv, ma, mb, round, sh);
                    _mm_storel_epi64(y.add(j) as *mut __m128i, _mm_packs_epi32(v, v));
                    j += 4;
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
    /// As [`super::run`], `n % 8 == 0`, the CPU has AVX2.
    #[target_feature(enable = "avx2")]
    pub unsafe fn run(p: ResidualParams, a: *const i16, b: *const i16, y: *mut i16, n: usize) {
        let (ma, mb) = (_mm256_set1_epi32(p.ma), _mm256_set1_epi32(p.mb));
        let round = _mm256_set1_epi64x(1i64 << (p.shift - 1));
        let sh = _mm_cvtsi32_si128(p.shift);
        let mut j = 0;
        while j < n {
            let av = _mm256_cvtepi16_epi32(_mm_loadu_si128(a.add(j) as *const __m128i));
            let bv = _mm256_cvtepi16_epi32(_mm_loadu_si128(b.add(j) as *const __m128i));
            let te = _mm256_add_epi64(_mm256_add_epi64(_mm256_mul_epi32(av, ma), _mm256_mul_epi32(bv, mb)), round);
            let to = _mm256_add_epi64(
                _mm256_add_epi64(_mm256_mul_epi32(_mm256_srli_epi64(av, 32), ma), _mm256_mul_epi32(_mm256_srli_epi64(bv, 32), mb)),
                round,
            );
            let v = _mm256_blend_epi32(_mm256_srl_epi64(te, sh), _mm256_slli_epi64(_mm256_srl_epi64(to, sh), 32), 0b1010_1010);
            _mm_storeu_si128(y.add(j) as *mut __m128i, _mm_packs_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1)));
            j += 8;
        }
    }
}
