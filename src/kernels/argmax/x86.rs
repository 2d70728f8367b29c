//! x86-64 SIMD argmax (`picoformer_core = "x86"`), picked per call from [`level`]: two passes,
//! the maximum 8 (AVX2) or 4 (SSE4.1, AVX) lanes at a time (`PMAXSD`), then the first position
//! equal to it (`PCMPEQD` + `MOVMSKPS`, the lowest set bit). Slices shorter than one vector take
//! the plain loop.

use core::arch::x86_64::*;

use super::argmax_ref;
use crate::kernels::x86_features::{level, Level};

/// Index of the first maximum of `v`.
pub fn argmax(v: &[i32]) -> usize {
    let lvl = level();
    let n = v.len();
    if lvl == Level::Portable || n < 8 {
        return argmax_ref(v);
    }
    let p = v.as_ptr();
    match lvl {
        // SAFETY: `level()` never exceeds what CPUID reported, so AVX2 is present; `p` holds
        // `n ≥ 8` values.
        Level::Avx2 | Level::Avx512Vnni => unsafe { avx2::argmax(p, n) },
        // SAFETY: as above, AVX is present.
        Level::Avx => unsafe { avx::argmax(p, n) },
        // SAFETY: as above, SSSE3 and SSE4.1 are present.
        _ => unsafe { sse41::argmax(p, n) },
    }
}

/// The 4-lane argmax, compiled once per feature set (SSE4.1, AVX).
macro_rules! sse_path {
    ($name:ident, $feature:literal) => {
        mod $name {
            use super::*;

            /// # Safety
            /// The CPU has this module's feature; `p` valid for `n ≥ 4` values.
            #[target_feature(enable = $feature)]
            pub unsafe fn argmax(p: *const i32, n: usize) -> usize {
                let whole = n / 4 * 4;
                let mut m = _mm_set1_epi32(i32::MIN);
                let mut j = 0;
                while j < whole {
                    m = _mm_max_epi32(m, _mm_loadu_si128(p.add(j) as *const __m128i));
                    j += 4;
                }
                m = _mm_max_epi32(m, _mm_shuffle_epi32(m, 0b01_00_11_10));
                m = _mm_max_epi32(m, _mm_shuffle_epi32(m, 0b10_11_00_01));
                let mut max = _mm_cvtsi128_si32(m);
                for t in whole..n {
                    max = max.max(p.add(t).read());
                }
                let mv = _mm_set1_epi32(max);
                let mut j = 0;
                while j < whole {
                    let eq = _mm_movemask_ps(_mm_castsi128_ps(_mm_cmpeq_epi32(mv, _mm_loadu_si128(p.add(j) as *const __m128i))));
                    if eq != 0 {
                        return j + eq.trailing_zeros() as usize;
                    }
                    j += 4;
                }
                (whole..n).find(|&t| p.add(t).read() == max).unwrap_or(0)
            }
        }
    };
}

sse_path!(sse41, "sse4.1");
sse_path!(avx, "avx");

mod avx2 {
    use super::*;

    /// # Safety
    /// The CPU has AVX2; `p` valid for `n ≥ 8` values.
    #[target_feature(enable = "avx2")]
    pub unsafe fn argmax(p: *const i32, n: usize) -> usize {
        let whole = n / 8 * 8;
        let mut m = _mm256_set1_epi32(i32::MIN);
        let mut j = 0;
        while j < whole {
            m = _mm256_max_epi32(m, _mm256_loadu_si256(p.add(j) as *const __m256i));
            j += 8;
        }
        let mut m4 = _mm_max_epi32(_mm256_castsi256_si128(m), _mm256_extracti128_si256(m, 1));
        m4 = _mm_max_epi32(m4, _mm_shuffle_epi32(m4, 0b01_00_11_10));
        m4 = _mm_max_epi32(m4, _mm_shuffle_epi32(m4, 0b10_11_00_01));
        let mut max = _mm_cvtsi128_si32(m4);
        for t in whole..n {
            max = max.max(p.add(t).read());
        }
        let mv = _mm256_set1_epi32(max);
        let mut j = 0;
        while j < whole {
            let eq = _mm256_movemask_ps(_mm256_castsi256_ps(_mm256_cmpeq_epi32(mv, _mm256_loadu_si256(p.add(j) as *const __m256i))));
            if eq != 0 {
                return j + eq.trailing_zeros() as usize;
            }
            j += 8;
        }
        (whole..n).find(|&t| p.add(t).read() == max).unwrap_or(0)
    }
}
