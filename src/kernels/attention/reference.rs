//! The plain reference of attention: per row and head, the scores one key at a time, the
//! reference softmax, and the context one output at a time. The fast paths are checked against
//! it.

use super::params::{dot_i8, AttentionParams, Heads, Mask};
use crate::kernels::softmax::softmax_u8_ref;
use crate::quant::Activation;

/// [`super::attention`] with plain loops.
#[allow(clippy::too_many_arguments)]
pub fn attention_ref(p: &AttentionParams, h: Heads, q: &[i8], k: &[i8], v: &[i8], mask: Mask, scores: &mut [i32], probs: &mut [u8], out: &mut [i16]) {
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
        for (head, (qh, outh)) in qr.chunks_exact(dh).zip(outr.chunks_exact_mut(dh)).enumerate() {
            let off = h.kv_of(head) * dh;
            for (s, kj) in scores.iter_mut().zip(k.chunks_exact(dkv)) {
                *s = dot_i8(qh, kj.get(off..off + dh).unwrap_or(&[]));
            }
            softmax_u8_ref(scores, p.softmax, probs);
            for (i, o) in outh.iter_mut().enumerate() {
                let mut acc = 0i32;
                for (&pj, vj) in probs.iter().zip(v.chunks_exact(dkv)) {
                    acc = acc.wrapping_add(pj as i32 * vj.get(off + i).copied().unwrap_or(0) as i32);
                }
                *o = i16::requant(p.ctx, acc);
            }
        }
    }
}
