//! Scaled dot-product attention over heads, with padding and causal masks and grouped-query
//! heads.
//!
//! - `q`: `(rows, heads · d_head)` `i8`; `k`, `v`: `(n_keys, kv_heads · d_head)` `i8` (a KV
//!   cache, or the encoder's keys); query head `h` reads key/value head `h / (heads / kv_heads)`
//!   ([`Heads`]).
//! - `scores = q · kᵀ` in `i32`; `1/sqrt(d_head)` and the scales live in the softmax multiplier.
//! - probabilities are `u8` in 1/256 ([`softmax_u8`]); `ctx = p · v` in `i32`, requantized to
//!   `i16` by `ctx`.
//!
//! Query row `r` sees key `j` when `j < key_len` (padding) and, if causal, `j ≤ q_pos0 + r`.
//! A row that sees no key gets a zero context.
//!
//! Files: `params.rs` (the parameters and shapes), `reference.rs` (plain loops), `portable.rs`
//! (cores without assembly), `dsp.rs` (Cortex-M4/M7/M33), `mve.rs` (Cortex-M55/M85), `x86.rs`
//! (SSE4.1 / AVX / AVX2, chosen at run time). [`attention`] runs the row and head
//! loop and picks the core's file for the two products.

mod params;
mod portable;
mod reference;

// the Helium files hand what their assembly does not take to the DSP file (the M55 has the
// DSP extension too)
#[cfg(any(picoformer_core = "dsp", picoformer_core = "mve"))]
mod dsp;
#[cfg(picoformer_core = "mve")]
mod mve;
#[cfg(picoformer_core = "x86")]
mod x86;

// This build's core (`build.rs`): one line per core with its own file.
#[cfg(picoformer_core = "dsp")]
use dsp as core_path;
#[cfg(picoformer_core = "mve")]
use mve as core_path;
#[cfg(not(any(picoformer_core = "dsp", picoformer_core = "mve", picoformer_core = "x86")))]
use portable as core_path;
#[cfg(picoformer_core = "x86")]
use x86 as core_path;

pub use params::{AttentionParams, Heads, Mask};
pub use reference::attention_ref;

use super::softmax::softmax_u8;

/// Bytes of stack attention uses beyond its registers, on this build's core.
pub const STACK_BYTES: usize = core_path::STACK_BYTES;

/// Attention for `rows = q.len() / q_width` query rows. `scores` and `probs` are scratch of at
/// least `n_keys = k.len() / kv_width` entries; shorter scratch limits the keys seen, never
/// panics. Bit-exact with [`attention_ref`].
#[allow(clippy::too_many_arguments)]
pub fn attention(p: &AttentionParams, h: Heads, q: &[i8], k: &[i8], v: &[i8], mask: Mask, scores: &mut [i32], probs: &mut [u8], out: &mut [i16]) {
    if !h.valid() {
        return;
    }
    let (dq, dkv, dh) = (h.q_width(), h.kv_width(), h.dim);
    let n_keys = (k.len() / dkv).min(v.len() / dkv).min(scores.len()).min(probs.len());
    for (r, (qr, outr)) in q.chunks_exact(dq).zip(out.chunks_exact_mut(dq)).enumerate() {
        let valid = mask.visible(n_keys, r);
        let (Some(scores), Some(probs)) = (scores.get_mut(..valid), probs.get_mut(..valid)) else {
            return;
        };
        // each key/value head serves a group of consecutive query heads (no division per head)
        let group = dh * (h.q / h.kv);
        for (kvh, (qg, og)) in qr.chunks_exact(group).zip(outr.chunks_exact_mut(group)).enumerate() {
            let off = kvh * dh;
            let (kh, vh) = (k.get(off..).unwrap_or(&[]), v.get(off..).unwrap_or(&[]));
            for (qh, outh) in qg.chunks_exact(dh).zip(og.chunks_exact_mut(dh)) {
                core_path::scores(qh, kh, dkv, scores);
                softmax_u8(scores, p.softmax, probs);
                core_path::context(probs, vh, dkv, p.ctx, outh);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::Requant;

    #[test]
    fn head_shapes_need_every_count_and_kv_dividing_q() {
        assert!(Heads { q: 4, kv: 2, dim: 8 }.valid() && Heads { q: 4, kv: 4, dim: 1 }.valid());
        for h in [Heads { q: 4, kv: 3, dim: 8 }, Heads { q: 4, kv: 2, dim: 0 }, Heads { q: 0, kv: 2, dim: 8 }, Heads { q: 4, kv: 0, dim: 8 }, Heads { q: 2, kv: 4, dim: 8 }] {
            assert!(!h.valid(), "{h:?}");
        }
    }

    /// Keys are counted by the shortest of `k`, `v`, `scores` and `probs`: a longer `v` (or
    /// `k`) adds none.
    #[test]
    fn the_key_count_is_the_shortest_buffers() {
        // two heads of 4: 8 values per key
        let h = Heads::multi(2, 8);
        let q = [1i8; 8];
        // keys close together (comparable probabilities), values far apart
        let k: Vec<i8> = (0..24).map(|i| (i * 7 % 5) as i8 - 2).collect();
        let v: Vec<i8> = (0..24).map(|i| (i * 37 % 29) as i8 * 4 - 56).collect();
        let mask = Mask { key_len: 3, causal: false, q_pos0: 0 };
        type Kernel = fn(&AttentionParams, Heads, &[i8], &[i8], &[i8], Mask, &mut [i32], &mut [u8], &mut [i16]);
        let run = |f: Kernel, k: &[i8], v: &[i8]| {
            let (mut s, mut p, mut o) = ([0i32; 3], [0u8; 3], [0i16; 8]);
            f(&params(), h, &q, k, v, mask, &mut s, &mut p, &mut o);
            o
        };
        for f in [attention_ref as Kernel, attention] {
            let two = run(f, &k[..16], &v[..16]);
            assert_ne!(two, run(f, &k, &v));
            assert_eq!(run(f, &k[..16], &v), two);
            assert_eq!(run(f, &k, &v[..16]), two);
        }
    }

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
        attention(&params(), Heads::multi(2, 4), &[1, 2, 3, 4], &[5, 6, 7, 8], &[10, -20, 30, -128], mask, &mut s, &mut pr, &mut out);
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
        attention(&params(), Heads::multi(1, 1), &q, &k, &v, causal, &mut s, &mut pr, &mut out);
        // row 0 sees key 0 (p = 255): 64·255/256 = 63.75 -> 64; row 1 sees keys 0,1 (p = 128 each): 0
        assert_eq!(out, [64, 0]);
        let pad = Mask { key_len: 2, causal: false, q_pos0: 0 };
        attention(&params(), Heads::multi(1, 1), &q, &k, &v, pad, &mut s, &mut pr, &mut out);
        assert_eq!(out, [0, 0]);
        // KV cache: query at absolute position 2 sees all three keys (p = 85 each)
        let cached = Mask { key_len: 3, causal: true, q_pos0: 2 };
        attention(&params(), Heads::multi(1, 1), &q[..1], &k, &v, cached, &mut s, &mut pr, &mut out[..1]);
        assert_eq!(out[0], ((64 - 64 + 127) * 85 + 128) >> 8);
    }

    #[test]
    fn fully_masked_row_is_zero() {
        let mut out = [5i16; 2];
        let (mut s, mut pr) = ([0i32; 2], [0u8; 2]);
        let none = Mask { key_len: 0, causal: false, q_pos0: 0 };
        attention(&params(), Heads::multi(1, 2), &[1, 1], &[1, 1, 1, 1], &[9, 9, 9, 9], none, &mut s, &mut pr, &mut out);
        assert_eq!(out, [0, 0]);
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
        attention(&params(), Heads::multi(2, 2), &q, &k, &v, mask, &mut s, &mut pr, &mut out);
        assert_eq!(out, [100, 50]);
    }

    /// Grouped-query attention equals multi-head attention with each K/V head repeated for its
    /// group.
    #[test]
    fn grouped_query_equals_repeated_heads() {
        let (keys, dim) = (5, 4);
        let q: Vec<i8> = (0..4 * dim).map(|i| (i as i8).wrapping_mul(37)).collect();
        let k: Vec<i8> = (0..keys * 2 * dim).map(|i| (i as i8).wrapping_mul(11)).collect();
        let v: Vec<i8> = (0..keys * 2 * dim).map(|i| (i as i8).wrapping_mul(23)).collect();
        // repeat K/V heads: [kv0, kv0, kv1, kv1] per key
        let repeat = |x: &[i8]| -> Vec<i8> { x.chunks(2 * dim).flat_map(|r| [&r[..dim], &r[..dim], &r[dim..], &r[dim..]].concat()).collect() };
        let p = AttentionParams { softmax: Requant::from_real(0.05), ctx: Requant::from_real(1.0 / 256.0) };
        let mask = Mask { key_len: keys, causal: false, q_pos0: 0 };
        let (mut s, mut pr) = ([0i32; 8], [0u8; 8]);
        let (mut gqa, mut mha) = ([0i16; 16], [0i16; 16]);
        attention(&p, Heads { q: 4, kv: 2, dim }, &q, &k, &v, mask, &mut s, &mut pr, &mut gqa);
        attention(&p, Heads::multi(4, 4 * dim), &q, &repeat(&k), &repeat(&v), mask, &mut s, &mut pr, &mut mha);
        assert_eq!(gqa, mha);
        assert!(gqa.iter().any(|&x| x != 0));
    }
}
