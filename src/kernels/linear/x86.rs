//! x86-64 SIMD paths of the Block4 linear layer (`picoformer_core = "x86"`), picked per call
//! from [`level`]: AVX2 (256-bit, with or without VNNI), AVX and SSE4.1 (the same 128-bit code, VEX- or
//! legacy-encoded), or the portable loop.
//!
//! A Block4 group is 16 bytes, 4 output rows × 4 inputs, each row's word in the input order
//! `j0, j2, j1, j3`. Per group the kernel sign-extends the weights to int16 (`PMOVSXBW`: 8 bytes
//! per 128-bit register, all 16 in one 256-bit register), loads the row's 4 inputs once and
//! permutes them to the same order (`x0, x2, x1, x3`, repeated: `PSHUFB`), and `PMADDWD` adds
//! the products in pairs into int32 lanes, two per output row; the pairs are folded with
//! `PHADDD` at the end. Exact: an int16 × int8 product is below 2^22 in magnitude, so no pair
//! sum overflows, and the lanes wrap like the reference's `wrapping_add` (any order gives the
//! same sum modulo 2^32).
//!
//! Tiles: 4 rows × 8 channels (AVX2) or 4 rows × 4 channels (128-bit) share each weight load
//! over four rows (the encoder's many-row inputs); there the weights are permuted to the inputs'
//! order instead (one `PSHUFB` per group, before widening) and each row's 4 inputs broadcast
//! straight from memory. Single rows take 32 (AVX2) or 16 channels per pass, so one permuted
//! input feeds 8 or 4 blocks. The channel sets that do not fill a tile go 8 or 4 at a time.
//!
//! Single rows prefetch the next channel set's weights while they work on this one (the output
//! projection's 512 KB do not stay in L1).
//!
//! With AVX-512 VNNI and VL ([`Level::Avx512Vnni`]) the AVX2 code fuses each `PMADDWD` and its
//! add into one `VPDPWSSD` on the same 256-bit registers (inline assembly: no intrinsic at the
//! crate's MSRV), the same wrapping sums.
//!
//! Requantization is [`Requant::apply32`] vectorized, when the layer is fused (every converted
//! layer is): the high word of `acc · mult` from two `PMULDQ`, then `(hi + 2^(s-33)) >> (s-32)`
//! with per-lane variable shifts on AVX2 (`VPSLLVD`, `VPSRAVD`); SSE has no variable shift, so
//! there `x >> s2` is `(x · 2^(31-s2)) >> 31` in 64 bits, rounding included:
//! `(hi + 2^(s2-1)) · 2^(31-s2) = hi · 2^(31-s2) + 2^30`. Saturation to int16 and int8 is
//! `PACKSSDW`/`PACKSSWB`, which clamp exactly as `saturate32` does. Layers with other shifts
//! requantize each accumulator with [`Activation::requant`].

use core::arch::x86_64::*;

use super::portable;
use super::weights::Linear;
use crate::kernels::x86_features::{level, Level};
use crate::quant::{Activation, OutKind, Requant};

/// Stack scratch: the 8 accumulators a non-fused layer requantizes one by one.
pub const STACK_BYTES: usize = 32;

/// The Block4 layer, through the best path this CPU has.
pub fn block4<O: Activation>(l: &Linear<'_>, x: &[i16], y: &mut [O]) {
    let (k, n) = (l.k, l.n());
    let lvl = level();
    // `forward` sends only k, n multiples of 4; a model's slices always have these lengths
    if lvl == Level::Portable || k == 0 || n == 0 || k % 4 != 0 || n % 4 != 0 || l.w.len() < n * k || l.rq.len() < n {
        return portable::block4(l, x, y);
    }
    let rows = (x.len() / k).min(y.len() / n);
    let a = Layer { w: l.w.as_ptr(), bias: l.bias.as_ptr(), rq: l.rq.as_ptr(), k, n, fused: l.fused() };
    let (x, y) = (x.as_ptr(), y.as_mut_ptr());
    match lvl {
        // SAFETY: `level()` is at most what CPUID reported, so AVX2 is present; `a` covers
        // n·k weights and n biases and multipliers, `x` and `y` `rows` rows (checked above).
        // SAFETY: as above, and AVX-512 VNNI and VL are present (and the OS saves their state).
        Level::Avx512Vnni => unsafe { avx2::layer::<O, true>(&a, x, y, rows) },
        Level::Avx2 => unsafe { avx2::layer::<O, false>(&a, x, y, rows) },
        // SAFETY: as above, AVX is present (and the OS saves its state).
        Level::Avx => unsafe { avx::layer(&a, x, y, rows) },
        // SAFETY: as above, SSSE3 and SSE4.1 are present.
        _ => unsafe { sse41::layer(&a, x, y, rows) },
    }
}

/// The layer as raw pointers, valid for `n·k` weights and `n` biases and multipliers.
struct Layer {
    w: *const i8,
    bias: *const i32,
    rq: *const Requant,
    k: usize,
    n: usize,
    fused: bool,
}

/// `y[c] = O::requant(rq[c], acc[c])` one by one, for layers that are not fused (out of line:
/// the fused path stays small enough to inline).
///
/// # Safety
/// `rq` valid for `N` multipliers, `y` for `N` outputs.
#[cold]
#[inline(never)]
unsafe fn requant_each<O: Activation, const N: usize>(acc: [i32; N], rq: *const Requant, y: *mut O) {
    for (c, &a) in acc.iter().enumerate() {
        y.add(c).write(O::requant(rq.add(c).read_unaligned(), a));
    }
}

/// The 128-bit kernel, compiled once per feature set (SSE4.1, AVX).
macro_rules! sse_path {
    ($name:ident, $feature:literal) => {
        mod $name {
            use super::*;

            /// Rows in tiles of 4, then one by one.
            ///
            /// # Safety
            /// The CPU has this module's feature; `a` valid, `x` and `y` valid for `rows` rows.
            #[target_feature(enable = $feature)]
            pub unsafe fn layer<O: Activation>(a: &Layer, x: *const i16, y: *mut O, rows: usize) {
                let mut r = 0;
                while r + 4 <= rows {
                    tile::<O, 4, 1>(a, x.add(r * a.k), y.add(r * a.n));
                    r += 4;
                }
                while r < rows {
                    tile::<O, 1, 4>(a, x.add(r * a.k), y.add(r * a.n));
                    r += 1;
                }
            }

            /// `R` rows: channels in sets of `B` blocks, then block by block.
            #[target_feature(enable = $feature)]
            #[inline]
            unsafe fn tile<O: Activation, const R: usize, const B: usize>(a: &Layer, x: *const i16, y: *mut O) {
                let mut c = 0;
                while c + 4 * B <= a.n {
                    set::<O, R, B>(a, x, y, c);
                    c += 4 * B;
                }
                while c < a.n {
                    set::<O, R, 1>(a, x, y, c);
                    c += 4;
                }
            }

            /// `R` rows × `B` blocks from channel `c`.
            #[target_feature(enable = $feature)]
            #[inline]
            unsafe fn set<O: Activation, const R: usize, const B: usize>(a: &Layer, x: *const i16, y: *mut O, c: usize) {
                let k = a.k;
                // (x0, x1, x2, x3) -> (x0, x2, x1, x3), twice
                let perm = _mm_setr_epi8(0, 1, 4, 5, 2, 3, 6, 7, 0, 1, 4, 5, 2, 3, 6, 7);
                // per row and block: rows 0-1 and rows 2-3 of the block, two lanes per row
                let mut lo = [[_mm_setzero_si128(); B]; R];
                let mut hi = [[_mm_setzero_si128(); B]; R];
                let w = a.w.add(c * k);
                let mut g = 0;
                while g < k {
                    let mut xv = [_mm_setzero_si128(); R];
                    for (r, v) in xv.iter_mut().enumerate() {
                        *v = _mm_shuffle_epi8(_mm_loadl_epi64(x.add(r * k + g) as *const __m128i), perm);
                    }
                    let wb = w.add(4 * g);
                    if R == 1 && B >= 4 {
                        // the next set's 16·B bytes per step (a hint, never dereferenced:
                        // `wrapping_add` may point past the weights)
                        let next = w.wrapping_add(B * 4 * k + 4 * B * g);
                        _mm_prefetch::<_MM_HINT_T0>(next);
                    }
                    for b in 0..B {
                        let w01 = _mm_cvtepi8_epi16(_mm_loadl_epi64(wb.add(b * 4 * k) as *const __m128i));
                        let w23 = _mm_cvtepi8_epi16(_mm_loadl_epi64(wb.add(b * 4 * k + 8) as *const __m128i));
                        for ((lr, hr), &xr) in lo.iter_mut().zip(hi.iter_mut()).zip(xv.iter()) {
                            if let (Some(l), Some(h)) = (lr.get_mut(b), hr.get_mut(b)) {
                                *l = _mm_add_epi32(*l, _mm_madd_epi16(w01, xr));
                                *h = _mm_add_epi32(*h, _mm_madd_epi16(w23, xr));
                            }
                        }
                    }
                    g += 4;
                }
                for (r, (lr, hr)) in lo.iter().zip(hi.iter()).enumerate() {
                    for (b, (&l, &h)) in lr.iter().zip(hr.iter()).enumerate() {
                        let ch = c + 4 * b;
                        store4(a, _mm_hadd_epi32(l, h), ch, y.add(r * a.n + ch));
                    }
                }
            }

            /// Bias, requantization and store of channels `ch..ch + 4`.
            #[target_feature(enable = $feature)]
            #[inline]
            unsafe fn store4<O: Activation>(a: &Layer, acc: __m128i, ch: usize, y: *mut O) {
                let v = _mm_add_epi32(acc, _mm_loadu_si128(a.bias.add(ch) as *const __m128i));
                if !a.fused {
                    let mut t = [0i32; 4];
                    _mm_storeu_si128(t.as_mut_ptr() as *mut __m128i, v);
                    return requant_each(t, a.rq.add(ch), y);
                }
                let q = requant4(v, a.rq.add(ch));
                match O::KIND {
                    OutKind::I32 => _mm_storeu_si128(y as *mut __m128i, q),
                    OutKind::I16 => _mm_storel_epi64(y as *mut __m128i, _mm_packs_epi32(q, q)),
                    OutKind::I8 => {
                        let p = _mm_packs_epi16(_mm_packs_epi32(q, q), _mm_setzero_si128());
                        (y as *mut i32).write_unaligned(_mm_cvtsi128_si32(p));
                    }
                }
            }

            /// [`Requant::apply32`] on 4 lanes, every shift fused (`33..=62`).
            #[target_feature(enable = $feature)]
            #[inline]
            unsafe fn requant4(v: __m128i, rq: *const Requant) -> __m128i {
                let r01 = _mm_loadu_si128(rq as *const __m128i); // m0 s0 m1 s1
                let r23 = _mm_loadu_si128(rq.add(2) as *const __m128i);
                let mult = _mm_unpacklo_epi64(_mm_shuffle_epi32(r01, 0xd8), _mm_shuffle_epi32(r23, 0xd8));
                // 2^(31 - s2) = 2^(63 - s) per lane, s2 = s - 32 in 1..=30
                let p = |i: usize| 1i32 << ((63 - rq.add(i).read_unaligned().shift) & 31);
                let pw = _mm_setr_epi32(p(0), p(1), p(2), p(3));
                // hi = (v · mult) >> 32, even lanes and odd lanes
                let he = _mm_srli_epi64(_mm_mul_epi32(v, mult), 32);
                let ho = _mm_srli_epi64(_mm_mul_epi32(_mm_srli_epi64(v, 32), _mm_srli_epi64(mult, 32)), 32);
                // (hi · 2^(31-s2) + 2^30) >> 31: the low word of each 64-bit lane is the result
                let c30 = _mm_set1_epi64x(1 << 30);
                let te = _mm_add_epi64(_mm_mul_epi32(he, pw), c30);
                let to = _mm_add_epi64(_mm_mul_epi32(ho, _mm_srli_epi64(pw, 32)), c30);
                _mm_blend_epi16(_mm_srli_epi64(te, 31), _mm_slli_epi64(to, 1), 0xcc)
            }
        }
    };
}

sse_path!(sse41, "sse4.1");
sse_path!(avx, "avx");

mod avx2 {
    use super::*;

    /// Rows in tiles of 4, then one by one. Past one tile, the channels go in chunks of about
    /// [`CHUNK_BYTES`] of weights (a multiple of 32 channels), every row passing over one chunk
    /// before the next: the chunk stays in L1 instead of each tile streaming the whole layer
    /// (a batch's output projection is 512 KB).
    ///
    /// # Safety
    /// The CPU has AVX2; `a` valid, `x` and `y` valid for `rows` rows.
    #[target_feature(enable = "avx2")]
    pub unsafe fn layer<O: Activation, const VNNI: bool>(a: &Layer, x: *const i16, y: *mut O, rows: usize) {
        let chunk = if rows > 4 { (CHUNK_BYTES / a.k / 32 * 32).max(32) } else { a.n };
        let mut c0 = 0;
        while c0 < a.n {
            let c1 = (c0 + chunk).min(a.n);
            let mut r = 0;
            while r + 4 <= rows {
                tile::<O, 4, 2, VNNI>(a, x.add(r * a.k), y.add(r * a.n), c0..c1);
                r += 4;
            }
            while r < rows {
                tile::<O, 1, 8, VNNI>(a, x.add(r * a.k), y.add(r * a.n), c0..c1);
                r += 1;
            }
            c0 = c1;
        }
    }

    /// Weight bytes of a chunk of channels (half of a 32 KiB L1 data cache).
    const CHUNK_BYTES: usize = 16 * 1024;

    /// `R` rows, channels `cs`: in sets of `B` blocks (`B` even), then in pairs, then block by
    /// block.
    #[target_feature(enable = "avx2")]
    #[inline]
    unsafe fn tile<O: Activation, const R: usize, const B: usize, const VNNI: bool>(a: &Layer, x: *const i16, y: *mut O, cs: core::ops::Range<usize>) {
        let mut c = cs.start;
        while c + 4 * B <= cs.end {
            set::<O, R, B, VNNI>(a, x, y, c);
            c += 4 * B;
        }
        while B > 2 && c + 8 <= cs.end {
            set::<O, R, 2, VNNI>(a, x, y, c);
            c += 8;
        }
        while c < cs.end {
            set::<O, R, 1, VNNI>(a, x, y, c);
            c += 4;
        }
    }

    /// `R` rows × `B` blocks from channel `c` (`B` = 1 or even).
    #[target_feature(enable = "avx2")]
    #[inline]
    unsafe fn set<O: Activation, const R: usize, const B: usize, const VNNI: bool>(a: &Layer, x: *const i16, y: *mut O, c: usize) {
        let k = a.k;
        let perm = _mm_setr_epi8(0, 1, 4, 5, 2, 3, 6, 7, 0, 1, 4, 5, 2, 3, 6, 7);
        // per row and block: [r0 r0 r1 r1 | r2 r2 r3 r3]
        let mut acc = [[_mm256_setzero_si256(); B]; R];
        let w = a.w.add(c * k);
        // several rows: the weights are permuted to the inputs' order once for all rows, and
        // each row's inputs broadcast straight from memory; one row: its inputs are permuted
        let wperm = _mm256_setr_epi8(0, 1, 4, 5, 2, 3, 6, 7, 8, 9, 12, 13, 10, 11, 14, 15, 0, 1, 4, 5, 2, 3, 6, 7, 8, 9, 12, 13, 10, 11, 14, 15);
        let mut g = 0;
        while g < k {
            let mut xv = [_mm256_setzero_si256(); R];
            for (r, v) in xv.iter_mut().enumerate() {
                let xq = _mm_loadl_epi64(x.add(r * k + g) as *const __m128i);
                *v = _mm256_broadcastq_epi64(if R == 1 { _mm_shuffle_epi8(xq, perm) } else { xq });
            }
            let wb = w.add(4 * g);
            if R == 1 && B >= 4 {
                // the next set's 16·B bytes per step, so its lines arrive from L2/L3 in time (a
                // hint: never dereferenced, `wrapping_add` may point past the weights)
                let next = w.wrapping_add(B * 4 * k + 4 * B * g);
                _mm_prefetch::<_MM_HINT_T0>(next);
                _mm_prefetch::<_MM_HINT_T0>(next.wrapping_add(64));
            }
            for b in 0..B {
                let wv = _mm256_cvtepi8_epi16(_mm_loadu_si128(wb.add(b * 4 * k) as *const __m128i));
                let wv = if R == 1 { wv } else { _mm256_shuffle_epi8(wv, wperm) };
                for (ar, &xr) in acc.iter_mut().zip(xv.iter()) {
                    if let Some(s) = ar.get_mut(b) {
                        if VNNI {
                            // s += pairs of wv · xr: VPMADDWD and VPADDD in one, the same
                            // wrapping sums (the caller's level says the CPU has VNNI and VL;
                            // Rust 1.85 has no stable intrinsic for it)
                            core::arch::asm!("vpdpwssd {s}, {w}, {x}", s = inout(ymm_reg) *s, w = in(ymm_reg) wv, x = in(ymm_reg) xr, options(pure, nomem, nostack, preserves_flags));
                        } else {
                            *s = _mm256_add_epi32(*s, _mm256_madd_epi16(wv, xr));
                        }
                    }
                }
            }
            g += 4;
        }
        for (r, ar) in acc.iter().enumerate() {
            let yr = y.add(r * a.n);
            if B == 1 {
                for &s in ar.iter() {
                    // [r0 r1 r0 r1 | r2 r3 r2 r3] -> r0 r1 r2 r3
                    let h = _mm256_hadd_epi32(s, s);
                    let v = _mm_unpacklo_epi64(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
                    store4(a, v, c, yr.add(c));
                }
                continue;
            }
            let mut b = 0;
            while b + 2 <= B {
                if let (Some(&s0), Some(&s1)) = (ar.get(b), ar.get(b + 1)) {
                    // [A0 A1 B0 B1 | A2 A3 B2 B3] -> A0 A1 A2 A3 B0 B1 B2 B3
                    let v = _mm256_permute4x64_epi64(_mm256_hadd_epi32(s0, s1), 0xd8);
                    let ch = c + 4 * b;
                    store8(a, v, ch, yr.add(ch));
                }
                b += 2;
            }
        }
    }

    /// Bias, requantization and store of channels `ch..ch + 8`.
    #[target_feature(enable = "avx2")]
    #[inline]
    unsafe fn store8<O: Activation>(a: &Layer, acc: __m256i, ch: usize, y: *mut O) {
        let v = _mm256_add_epi32(acc, _mm256_loadu_si256(a.bias.add(ch) as *const __m256i));
        if !a.fused {
            let mut t = [0i32; 8];
            _mm256_storeu_si256(t.as_mut_ptr() as *mut __m256i, v);
            return requant_each(t, a.rq.add(ch), y);
        }
        let q = requant8(v, a.rq.add(ch));
        match O::KIND {
            OutKind::I32 => _mm256_storeu_si256(y as *mut __m256i, q),
            OutKind::I16 => {
                let p = _mm_packs_epi32(_mm256_castsi256_si128(q), _mm256_extracti128_si256(q, 1));
                _mm_storeu_si128(y as *mut __m128i, p);
            }
            OutKind::I8 => {
                let p = _mm_packs_epi32(_mm256_castsi256_si128(q), _mm256_extracti128_si256(q, 1));
                _mm_storel_epi64(y as *mut __m128i, _mm_packs_epi16(p, p));
            }
        }
    }

    /// Bias, requantization and store of channels `ch..ch + 4`.
    #[target_feature(enable = "avx2")]
    #[inline]
    unsafe fn store4<O: Activation>(a: &Layer, acc: __m128i, ch: usize, y: *mut O) {
        let v = _mm_add_epi32(acc, _mm_loadu_si128(a.bias.add(ch) as *const __m128i));
        if !a.fused {
            let mut t = [0i32; 4];
            _mm_storeu_si128(t.as_mut_ptr() as *mut __m128i, v);
            return requant_each(t, a.rq.add(ch), y);
        }
        let r01 = _mm_loadu_si128(a.rq.add(ch) as *const __m128i);
        let r23 = _mm_loadu_si128(a.rq.add(ch + 2) as *const __m128i);
        let (r01, r23) = (_mm_shuffle_epi32(r01, 0xd8), _mm_shuffle_epi32(r23, 0xd8));
        let (mult, shift) = (_mm_unpacklo_epi64(r01, r23), _mm_unpackhi_epi64(r01, r23));
        let he = _mm_srli_epi64(_mm_mul_epi32(v, mult), 32);
        let po = _mm_mul_epi32(_mm_srli_epi64(v, 32), _mm_srli_epi64(mult, 32));
        let hi = _mm_blend_epi32(he, po, 0b1010);
        let r = _mm_sllv_epi32(_mm_set1_epi32(1), _mm_sub_epi32(shift, _mm_set1_epi32(33)));
        let q = _mm_srav_epi32(_mm_add_epi32(hi, r), _mm_sub_epi32(shift, _mm_set1_epi32(32)));
        match O::KIND {
            OutKind::I32 => _mm_storeu_si128(y as *mut __m128i, q),
            OutKind::I16 => _mm_storel_epi64(y as *mut __m128i, _mm_packs_epi32(q, q)),
            OutKind::I8 => {
                let p = _mm_packs_epi16(_mm_packs_epi32(q, q), _mm_setzero_si128());
                (y as *mut i32).write_unaligned(_mm_cvtsi128_si32(p));
            }
        }
    }

    /// [`Requant::apply32`] on 8 lanes, every shift fused (`33..=62`).
    #[target_feature(enable = "avx2")]
    #[inline]
    unsafe fn requant8(v: __m256i, rq: *const Requant) -> __m256i {
        let idx = _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7);
        let r0 = _mm256_permutevar8x32_epi32(_mm256_loadu_si256(rq as *const __m256i), idx); // m0-3 s0-3
        let r1 = _mm256_permutevar8x32_epi32(_mm256_loadu_si256(rq.add(4) as *const __m256i), idx);
        let mult = _mm256_permute2x128_si256(r0, r1, 0x20);
        let shift = _mm256_permute2x128_si256(r0, r1, 0x31);
        let he = _mm256_srli_epi64(_mm256_mul_epi32(v, mult), 32);
        let po = _mm256_mul_epi32(_mm256_srli_epi64(v, 32), _mm256_srli_epi64(mult, 32));
        let hi = _mm256_blend_epi32(he, po, 0b1010_1010);
        let r = _mm256_sllv_epi32(_mm256_set1_epi32(1), _mm256_sub_epi32(shift, _mm256_set1_epi32(33)));
        _mm256_srav_epi32(_mm256_add_epi32(hi, r), _mm256_sub_epi32(shift, _mm256_set1_epi32(32)))
    }
}
