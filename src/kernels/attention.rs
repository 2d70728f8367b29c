//! Scaled dot-product attention over heads, with padding and causal masks.
//!
//! - `q`: `(rows, d)` `i8`; `k`, `v`: `(n_keys, d)` `i8` (a KV cache or the cross-attention
//!   memory); heads split `d` into `heads` contiguous slices of `d / heads`.
//! - `scores = q · kᵀ` in `i32`; `1/sqrt(d_head)` and the scales live in the softmax multiplier.
//! - probabilities are `u8` in 1/256 ([`softmax_u8`]); `ctx = p · v` in `i32`, requantized to
//!   `i16` by `ctx`.
//!
//! Query row `r` sees key `j` when `j < key_len` (padding) and, if causal, `j ≤ q_pos0 + r`.
//! A row that sees no key gets a zero context.

use super::softmax::softmax_u8;
use crate::quant::{Activation, Requant};

/// Quantization parameters of one attention block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AttentionParams {
    /// Score difference (`s_q · s_k` units) to Q6 base-2 exponent: `s_q·s_k/sqrt(dh)·log2(e)·64`.
    pub softmax: Requant,
    /// `p · v` (units `s_v / 256`) to the context scale `s_ctx`.
    pub ctx: Requant,
}

/// Which keys each query row may attend to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mask {
    /// Keys at or past `key_len` are padding.
    pub key_len: usize,
    /// Whether key `j` is hidden from query rows before it.
    pub causal: bool,
    /// Absolute position of query row 0 (for the causal mask with a KV cache).
    pub q_pos0: usize,
}

/// Context outputs accumulated per pass over the keys.
const CTX_CHUNK: usize = 16;

/// Attention for `rows = q.len() / d` query rows. `scores` and `probs` are scratch of at least
/// `n_keys = k.len() / d` entries; shorter scratch limits the keys seen, never panics.
///
/// On Cortex-M4/M7/M33 (`picoformer_dsp`) heads with `d_head % 4 == 0` take the assembly
/// products of [`super::attention_dsp`]; other cores take the scores four keys per pass and the
/// context in whole chunks of outputs. Bit-exact with [`attention_ref`].
#[allow(clippy::too_many_arguments)]
pub fn attention(
    p: &AttentionParams,
    heads: usize,
    d: usize,
    q: &[i8],
    k: &[i8],
    v: &[i8],
    mask: Mask,
    scores: &mut [i32],
    probs: &mut [u8],
    out: &mut [i16],
) {
    attention_with(FAST_PATH, p, heads, d, q, k, v, mask, scores, probs, out)
}

/// Whether [`attention`] differs from [`attention_ref`] on this target: always (the DSP
/// assembly, or the portable fast loops).
pub const FAST_PATH: bool = true;

/// [`attention`] with the plain loops only: the reference for the fast paths.
#[allow(clippy::too_many_arguments)]
pub fn attention_ref(
    p: &AttentionParams,
    heads: usize,
    d: usize,
    q: &[i8],
    k: &[i8],
    v: &[i8],
    mask: Mask,
    scores: &mut [i32],
    probs: &mut [u8],
    out: &mut [i16],
) {
    attention_with(false, p, heads, d, q, k, v, mask, scores, probs, out)
}

#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn attention_with(
    fast: bool,
    p: &AttentionParams,
    heads: usize,
    d: usize,
    q: &[i8],
    k: &[i8],
    v: &[i8],
    mask: Mask,
    scores: &mut [i32],
    probs: &mut [u8],
    out: &mut [i16],
) {
    if d == 0 || heads == 0 || d % heads != 0 {
        return;
    }
    let dh = d / heads;
    let n_keys = (k.len() / d).min(v.len() / d).min(scores.len()).min(probs.len());
    for (r, (qr, outr)) in q.chunks_exact(d).zip(out.chunks_exact_mut(d)).enumerate() {
        let mut valid = n_keys.min(mask.key_len);
        if mask.causal {
            valid = valid.min(mask.q_pos0.saturating_add(r).saturating_add(1));
        }
        let (Some(scores), Some(probs)) = (scores.get_mut(..valid), probs.get_mut(..valid)) else {
            return;
        };
        for (h, (qh, outh)) in qr.chunks_exact(dh).zip(outr.chunks_exact_mut(dh)).enumerate() {
            let off = h * dh;
            let (kh, vh) = (k.get(off..).unwrap_or(&[]), v.get(off..).unwrap_or(&[]));
            if !(fast && fast_scores(qh, kh, d, scores)) {
                // scores = q_h · k_hᵀ
                for (s, kj) in scores.iter_mut().zip(k.chunks_exact(d)) {
                    let kh = kj.get(off..off + dh).unwrap_or(&[]);
                    *s = dot_i8(qh, kh);
                }
            }
            softmax_u8(scores, p.softmax, probs);
            if fast && fast_context(probs, vh, d, p.ctx, outh) {
                continue;
            }
            // ctx_h = p · v_h, CTX_CHUNK outputs at a time; keys with p = 0 add nothing
            for (c, outc) in outh.chunks_mut(CTX_CHUNK).enumerate() {
                let lo = off + c * CTX_CHUNK;
                let mut acc = [0i32; CTX_CHUNK];
                for (&pj, vj) in probs.iter().zip(v.chunks_exact(d)) {
                    if pj == 0 {
                        continue;
                    }
                    let vs = vj.get(lo..lo + outc.len()).unwrap_or(&[]);
                    for (a, &vji) in acc.iter_mut().zip(vs) {
                        *a = a.wrapping_add(pj as i32 * vji as i32);
                    }
                }
                for (o, a) in outc.iter_mut().zip(acc) {
                    *o = i16::requant(p.ctx, a);
                }
            }
        }
    }
}

/// Portable fast path of the scores (cores without the DSP assembly): four keys per pass, so each query byte is loaded once for
/// four products and the four sums stay in registers. `kh` starts at key 0's head slice, keys
/// `d` apart; the same sums as the plain loop.
#[cfg(not(picoformer_dsp))]
#[inline(always)]
fn scores_4keys(qh: &[i8], kh: &[i8], d: usize, scores: &mut [i32]) {
    let dh = qh.len();
    let key = |j: usize| kh.get(j * d..j * d + dh).unwrap_or(&[]);
    let done = scores.len() / 4 * 4;
    let mut quads = scores.chunks_exact_mut(4);
    for (j4, s4) in quads.by_ref().enumerate() {
        let (k0, k1, k2, k3) = (key(4 * j4), key(4 * j4 + 1), key(4 * j4 + 2), key(4 * j4 + 3));
        let mut a = [0i32; 4];
        for ((((&q, &x0), &x1), &x2), &x3) in qh.iter().zip(k0).zip(k1).zip(k2).zip(k3) {
            let q = q as i32;
            a[0] = a[0].wrapping_add(q * x0 as i32);
            a[1] = a[1].wrapping_add(q * x1 as i32);
            a[2] = a[2].wrapping_add(q * x2 as i32);
            a[3] = a[3].wrapping_add(q * x3 as i32);
        }
        s4.copy_from_slice(&a);
    }
    for (j, s) in quads.into_remainder().iter_mut().enumerate() {
        *s = dot_i8(qh, key(done + j));
    }
}

/// Portable fast path of the context, for heads of whole [`CTX_CHUNK`]s: the chunk's sums live
/// in a fixed-size array (registers once unrolled) and every value load is in bounds up front.
/// Returns `false`, doing nothing, for other head sizes.
#[cfg(not(picoformer_dsp))]
#[inline(always)]
fn context_chunks(probs: &[u8], vh: &[i8], d: usize, rq: Requant, outh: &mut [i16]) -> bool {
    if outh.len() % CTX_CHUNK != 0 {
        return false;
    }
    for (c, outc) in outh.chunks_exact_mut(CTX_CHUNK).enumerate() {
        let lo = c * CTX_CHUNK;
        let mut acc = [0i32; CTX_CHUNK];
        for (&pj, vj) in probs.iter().zip(vh.chunks(d)) {
            if pj == 0 {
                continue;
            }
            let Some(vs) = vj.get(lo..lo + CTX_CHUNK).and_then(|v| <&[i8; CTX_CHUNK]>::try_from(v).ok()) else {
                continue;
            };
            for (a, &x) in acc.iter_mut().zip(vs) {
                *a = a.wrapping_add(pj as i32 * x as i32);
            }
        }
        for (o, a) in outc.iter_mut().zip(acc) {
            *o = i16::requant(rq, a);
        }
    }
    true
}

/// The scores of one head through the fast path, if it takes them (`false`: not done): the
/// DSP assembly, or elsewhere [`scores_4keys`].
#[inline(always)]
fn fast_scores(qh: &[i8], kh: &[i8], d: usize, scores: &mut [i32]) -> bool {
    #[cfg(picoformer_dsp)]
    return super::attention_dsp::scores(qh, kh, d, scores);
    #[cfg(not(picoformer_dsp))]
    {
        scores_4keys(qh, kh, d, scores);
        true
    }
}

/// The context of one head through the fast path, requantized into `outh`, if it takes it:
/// the DSP assembly, or elsewhere [`context_chunks`].
#[inline(always)]
fn fast_context(probs: &[u8], vh: &[i8], d: usize, rq: Requant, outh: &mut [i16]) -> bool {
    #[cfg(picoformer_dsp)]
    {
        use super::attention_dsp::MAX_DH;
        let mut acc = [0i32; MAX_DH];
        let Some(acc) = acc.get_mut(..outh.len()) else {
            return false;
        };
        if !super::attention_dsp::context(probs, vh, d, acc) {
            return false;
        }
        for (o, &a) in outh.iter_mut().zip(acc.iter()) {
            *o = i16::requant(rq, a);
        }
        true
    }
    #[cfg(not(picoformer_dsp))]
    context_chunks(probs, vh, d, rq, outh)
}

/// `Σ a_i · b_i` over the shorter of the two.
#[inline(always)]
fn dot_i8(a: &[i8], b: &[i8]) -> i32 {
    a.iter().zip(b).fold(0i32, |acc, (&x, &y)| acc.wrapping_add(x as i32 * y as i32))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> AttentionParams {
        // one score unit = one Q6 step; ctx = p·v / 256 exactly (in units of v)
        AttentionParams { softmax: Requant::from_real(1.0), ctx: Requant::from_real(1.0 / 256.0) }
    }

    #[test]
    fn one_key_copies_value() {
        let mut out = [0i16; 4];
        let mut s = [0i32; 4];
        let mut pr = [0u8; 4];
        let mask = Mask { key_len: 1, causal: false, q_pos0: 0 };
        attention(&params(), 2, 4, &[1, 2, 3, 4], &[5, 6, 7, 8], &[10, -20, 30, -128], mask, &mut s, &mut pr, &mut out);
        // p = 255/256 -> ctx = round(v · 255/256), half up: -127.5 -> -127
        assert_eq!(out, [10, -20, 30, -127]);
    }

    #[test]
    fn causal_and_padding_masks() {
        // 2 query rows, 3 keys, 1 head of d = 1; q·k equal for all keys -> uniform over visible keys
        let q = [0i8, 0];
        let k = [1i8, 1, 1];
        let v = [64i8, -64, 127];
        let mut out = [0i16; 2];
        let (mut s, mut pr) = ([0i32; 3], [0u8; 3]);
        let causal = Mask { key_len: 3, causal: true, q_pos0: 0 };
        attention(&params(), 1, 1, &q, &k, &v, causal, &mut s, &mut pr, &mut out);
        // row 0 sees key 0 (p = 255): 64·255/256 = 63.75 -> 64; row 1 sees keys 0,1 (p = 128 each): 0
        assert_eq!(out, [64, 0]);
        let pad = Mask { key_len: 2, causal: false, q_pos0: 0 };
        attention(&params(), 1, 1, &q, &k, &v, pad, &mut s, &mut pr, &mut out);
        assert_eq!(out, [0, 0]);
        // KV cache: query at absolute position 2 sees all three keys (p = 85 each)
        let cached = Mask { key_len: 3, causal: true, q_pos0: 2 };
        attention(&params(), 1, 1, &q[..1], &k, &v, cached, &mut s, &mut pr, &mut out[..1]);
        assert_eq!(out[0], ((64 - 64 + 127) * 85 + 128) >> 8);
    }

    #[test]
    fn fully_masked_row_is_zero() {
        let mut out = [5i16; 2];
        let (mut s, mut pr) = ([0i32; 2], [0u8; 2]);
        let none = Mask { key_len: 0, causal: false, q_pos0: 0 };
        attention(&params(), 1, 2, &[1, 1], &[1, 1, 1, 1], &[9, 9, 9, 9], none, &mut s, &mut pr, &mut out);
        assert_eq!(out, [0, 0]);
    }

    /// The fast paths (the portable ones on the host) equal the plain loops.
    #[test]
    fn fast_paths_match_the_reference() {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        // Miri interprets ~1000x slower: a sample of the sweep there
        for t in 0..if cfg!(miri) { 40 } else { 3000 } {
            let heads = [1, 2, 4][t % 3];
            let dh = if t % 5 == 4 { 1 + next() as usize % 40 } else { 16 * (1 + next() as usize % 4) };
            let d = heads * dh;
            let (keys, rows) = (next() as usize % 22, 1 + next() as usize % 3);
            let mut fill = |n: usize| -> Vec<i8> {
                (0..n).map(|_| match next() % 8 { 0 => i8::MIN, 1 => i8::MAX, _ => next() as i8 }).collect()
            };
            let (q, k, v) = (fill(rows * d), fill(keys * d), fill(keys * d));
            let p = AttentionParams {
                softmax: Requant { mult: (1 << 30) | (next() as i32 & 0x3fff_ffff), shift: 33 + (next() % 12) as i32 },
                ctx: Requant { mult: (1 << 30) | (next() as i32 & 0x3fff_ffff), shift: 38 + (next() % 7) as i32 },
            };
            let mask = Mask { key_len: keys - (t % 7 == 0) as usize * keys.min(2), causal: t % 2 == 0, q_pos0: next() as usize % (keys + 1) };
            let (mut sa, mut sb, mut pa, mut pb) = (vec![0i32; keys], vec![0i32; keys], vec![0u8; keys], vec![0u8; keys]);
            let (mut oa, mut ob) = (vec![0i16; rows * d], vec![0i16; rows * d]);
            attention_ref(&p, heads, d, &q, &k, &v, mask, &mut sa, &mut pa, &mut oa);
            attention(&p, heads, d, &q, &k, &v, mask, &mut sb, &mut pb, &mut ob);
            assert_eq!((oa, pa), (ob, pb), "trial {t}: {heads} heads of {dh}, {keys} keys, {rows} rows");
        }
    }

    #[test]
    fn heads_are_independent() {
        // head 0 prefers key 0, head 1 prefers key 1 (score gap of 64·16 -> exactly zero weight)
        let q = [32i8, 32];
        let k = [32i8, 0, 0, 32];
        let v = [100i8, -100, -50, 50];
        let mut out = [0i16; 2];
        let (mut s, mut pr) = ([0i32; 2], [0u8; 2]);
        let mask = Mask { key_len: 2, causal: false, q_pos0: 0 };
        attention(&params(), 2, 2, &q, &k, &v, mask, &mut s, &mut pr, &mut out);
        assert_eq!(out, [100, 50]);
    }
}
