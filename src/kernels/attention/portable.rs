//! The portable fast loops of attention, for cores without assembly: the scores four keys per
//! pass (each query byte loaded once for four products, four sums in registers) and the context
//! in fixed-size chunks of outputs. The same sums as [`super::reference::attention_ref`].

use super::params::dot_i8;
use crate::quant::{Activation, Requant};

/// Context outputs accumulated per pass over the keys.
pub const CTX_CHUNK: usize = 16;

/// Stack scratch: one chunk of context accumulators.
#[cfg_attr(any(picoformer_core = "dsp", picoformer_core = "mve", picoformer_core = "x86"), allow(dead_code))] // the interface of cores without a file
pub const STACK_BYTES: usize = 4 * CTX_CHUNK;

/// `scores[j] = q_h · k_j` for the head slice `qh` against `kh` (key 0's head slice, keys
/// `stride` apart). Always done.
#[inline(always)]
pub fn scores(qh: &[i8], kh: &[i8], stride: usize, scores: &mut [i32]) -> bool {
    let dh = qh.len();
    let key = |j: usize| kh.get(j * stride..j * stride + dh).unwrap_or(&[]);
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
    true
}

/// `outh = rq(Σ_j p_j · v_j)` over the head slice `vh` (key 0's, keys `stride` apart), in
/// chunks of [`CTX_CHUNK`] outputs; keys with `p = 0` add nothing. Always done.
#[inline(always)]
pub fn context(probs: &[u8], vh: &[i8], stride: usize, rq: Requant, outh: &mut [i16]) -> bool {
    if outh.len() % CTX_CHUNK == 0 {
        return whole_chunks(probs, vh, stride, rq, outh);
    }
    for (c, outc) in outh.chunks_mut(CTX_CHUNK).enumerate() {
        let lo = c * CTX_CHUNK;
        let mut acc = [0i32; CTX_CHUNK];
        for (&pj, vj) in probs.iter().zip(vh.chunks(stride)) {
            if pj == 0 {
                continue;
            }
            for (a, &x) in acc.iter_mut().zip(vj.get(lo..lo + outc.len()).unwrap_or(&[])) {
                *a = a.wrapping_add(pj as i32 * x as i32);
            }
        }
        for (o, a) in outc.iter_mut().zip(acc) {
            *o = i16::requant(rq, a);
        }
    }
    true
}

/// [`context`] for heads of whole chunks: the chunk's sums live in a fixed-size array
/// (registers once unrolled) and every value load is in bounds up front.
#[inline(always)]
fn whole_chunks(probs: &[u8], vh: &[i8], stride: usize, rq: Requant, outh: &mut [i16]) -> bool {
    for (c, outc) in outh.chunks_exact_mut(CTX_CHUNK).enumerate() {
        let lo = c * CTX_CHUNK;
        let mut acc = [0i32; CTX_CHUNK];
        for (&pj, vj) in probs.iter().zip(vh.chunks(stride)) {
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
