//! The int8 forward passes: the encoder over a sentence, and one decoder step.
//!
//! Both read top to bottom like PyTorch's `TransformerEncoderLayer` / `TransformerDecoderLayer`:
//!
//! ```text
//! post-norm: x = LN(x + Sublayer(x))        pre-norm: x = x + Sublayer(LN(x))
//! ```
//!
//! Activations: the residual stream and LayerNorm outputs are `i16`; Q, K and V are `i8`;
//! attention probabilities `u8`; contexts and FFN hidden values `i16`; logits `i32`.

use crate::kernels::activation::{relu_i16, table_i16};
use crate::kernels::attention::{attention, Heads, Mask};
use crate::kernels::layernorm::LayerNorm;
use crate::kernels::residual::{add_in_place, ResidualParams};
use crate::model::{Attention, FeedForward, Model};
use crate::observe::{Block, Data, Observer, Point, Site};

/// Activation buffers for `rows` positions; the decoder uses row 0 only.
pub(crate) struct Scratch<'a> {
    /// `(rows, d)` residual stream.
    pub x: &'a mut [i16],
    /// `(rows, d)` LayerNorm output (pre-norm) or sublayer input.
    pub h: &'a mut [i16],
    /// `(rows, d)` sublayer output.
    pub a: &'a mut [i16],
    /// `(rows, d)` attention context.
    pub ctx: &'a mut [i16],
    /// `(rows, d)` queries.
    pub q: &'a mut [i8],
    /// `(rows, d)` keys and values of encoder self-attention.
    pub k: &'a mut [i8],
    pub v: &'a mut [i8],
    /// `(rows, d_ff)` FFN hidden.
    pub ff: &'a mut [i16],
    /// `(max_len,)` attention scores and probabilities of one query row and head.
    pub scores: &'a mut [i32],
    pub probs: &'a mut [u8],
}

/// Where a sublayer's site names point.
#[derive(Clone, Copy)]
pub(crate) enum Stack {
    Enc,
    Dec,
}

fn site(stack: Stack, layer: usize, block: Block, point: Point) -> Site {
    let layer = layer as u8;
    match stack {
        Stack::Enc => Site::Enc { layer, block, point },
        Stack::Dec => Site::Dec { layer, block, point },
    }
}

/// The part of a residual block before the sublayer: pre-norm normalizes `x` into `h`,
/// post-norm hands `x` itself to the sublayer (copied into `h`).
fn block_input<O: Observer>(pre: bool, ln: &LayerNorm<'_>, x: &[i16], h: &mut [i16], s: Site, obs: &mut O) {
    if pre {
        ln.forward(x, h);
        obs.observe(s, Data::I16(h));
    } else {
        for (hj, &xj) in h.iter_mut().zip(x) {
            *hj = xj;
        }
    }
}

/// The part after the sublayer: `x = x + a`, then post-norm normalizes it in place (via `h`).
#[allow(clippy::too_many_arguments)]
fn block_output<O: Observer>(
    pre: bool,
    ln: &LayerNorm<'_>,
    res: ResidualParams,
    x: &mut [i16],
    a: &[i16],
    h: &mut [i16],
    sum: Site,
    norm: Site,
    obs: &mut O,
) {
    add_in_place(res, x, a);
    obs.observe(sum, Data::I16(x));
    if !pre {
        ln.forward(x, h);
        x.copy_from_slice(h);
        obs.observe(norm, Data::I16(x));
    }
}

/// The feed-forward sublayer on `rows` rows: `a = ff2(act(ff1(h)))`.
fn feed_forward<O: Observer>(f: &FeedForward<'_>, h: &[i16], ff: &mut [i16], a: &mut [i16], at: impl Fn(Point) -> Site, obs: &mut O) {
    f.ff1.forward(h, ff);
    match f.act {
        Some(table) => {
            obs.observe(at(Point::PreAct), Data::I16(ff));
            table_i16(ff, table);
        }
        None => relu_i16(ff),
    }
    obs.observe(at(Point::Hidden), Data::I16(ff));
    f.ff2.forward(ff, a);
    obs.observe(at(Point::Out), Data::I16(a));
}

/// Run the encoder over `src` (ids already checked against the vocabulary, `1..=max_len` of
/// them), leaving the final-norm output in `s.h` (`(src.len(), d)`), then compute each decoder
/// layer's cross-attention keys and values into `cross_k`, `cross_v` (`(n_dec, max_len, d)`).
pub(crate) fn encode<O: Observer>(
    m: &Model<'_>,
    src: &[u16],
    s: &mut Scratch<'_>,
    cross_k: &mut [i8],
    cross_v: &mut [i8],
    obs: &mut O,
) {
    let c = &m.config;
    let (d, n) = (c.d_model, src.len());
    let pre = c.norm_first();
    let nd = n * d;
    let (Some(x), Some(h), Some(a), Some(ctx), Some(q), Some(k), Some(v), Some(ff)) = (
        s.x.get_mut(..nd),
        s.h.get_mut(..nd),
        s.a.get_mut(..nd),
        s.ctx.get_mut(..nd),
        s.q.get_mut(..nd),
        s.k.get_mut(..nd),
        s.v.get_mut(..nd),
        s.ff.get_mut(..n * c.d_ff),
    ) else {
        return;
    };

    // embedding + positions
    for (p, (&id, xr)) in src.iter().zip(x.chunks_exact_mut(d)).enumerate() {
        m.src_emb.lookup(id as usize, p, xr);
    }
    obs.observe(Site::SrcEmb, Data::I16(x));

    for (l, layer) in m.encoder_layers().iter().enumerate() {
        let at = |b, p| site(Stack::Enc, l, b, p);
        // self-attention block
        block_input(pre, &layer.ln1, x, h, at(Block::SelfAttn, Point::Norm), obs);
        let mask = Mask { key_len: n, causal: false, q_pos0: 0 };
        let sa = &layer.sa;
        project_qkv(sa, h, q, k, v, |p| at(Block::SelfAttn, p), obs);
        attention(&sa.params, Heads::multi(c.nhead, d), q, k, v, mask, s.scores, s.probs, ctx);
        obs.observe(at(Block::SelfAttn, Point::Ctx), Data::I16(ctx));
        sa.o.forward(ctx, a);
        obs.observe(at(Block::SelfAttn, Point::Out), Data::I16(a));
        block_output(pre, &layer.ln1, layer.res1, x, a, h, at(Block::SelfAttn, Point::Sum), at(Block::SelfAttn, Point::Norm), obs);

        // feed-forward block
        block_input(pre, &layer.ln2, x, h, at(Block::FeedForward, Point::Norm), obs);
        feed_forward(&layer.ff, h, ff, a, |p| at(Block::FeedForward, p), obs);
        block_output(pre, &layer.ln2, layer.res2, x, a, h, at(Block::FeedForward, Point::Sum), at(Block::FeedForward, Point::Norm), obs);
    }
    // final norm: the memory
    m.enc_norm.forward(x, h);
    obs.observe(Site::EncNorm, Data::I16(h));

    // cross-attention keys and values, once per sentence
    let stride = c.max_len * d;
    for (l, layer) in m.decoder_layers().iter().enumerate() {
        let (Some(ck), Some(cv)) = (cross_k.get_mut(l * stride..l * stride + nd), cross_v.get_mut(l * stride..l * stride + nd)) else {
            return;
        };
        layer.ca.k.forward(h, ck);
        obs.observe(site(Stack::Dec, l, Block::CrossAttn, Point::K), Data::I8(ck));
        layer.ca.v.forward(h, cv);
        obs.observe(site(Stack::Dec, l, Block::CrossAttn, Point::V), Data::I8(cv));
    }
}

fn project_qkv<O: Observer>(at: &Attention<'_>, h: &[i16], q: &mut [i8], k: &mut [i8], v: &mut [i8], name: impl Fn(Point) -> Site, obs: &mut O) {
    at.q.forward(h, q);
    obs.observe(name(Point::Q), Data::I8(q));
    at.k.forward(h, k);
    obs.observe(name(Point::K), Data::I8(k));
    at.v.forward(h, v);
    obs.observe(name(Point::V), Data::I8(v));
}

/// The decoder's per-sentence memory: cross-attention K/V, and the self-attention KV cache of
/// one beam slot, both `(n_dec, max_len, d)`.
pub(crate) struct DecoderMemory<'b> {
    pub cross_k: &'b [i8],
    pub cross_v: &'b [i8],
    pub src_len: usize,
    pub self_k: &'b mut [i8],
    pub self_v: &'b mut [i8],
}

/// One decoder step: feed `token` at position `pos` (`< max_len`), append its keys and values
/// to the cache, and write the `(vocab,)` logits.
pub(crate) fn decode_step<O: Observer>(
    m: &Model<'_>,
    token: u16,
    pos: usize,
    mem: &mut DecoderMemory<'_>,
    s: &mut Scratch<'_>,
    logits: &mut [i32],
    obs: &mut O,
) {
    let c = &m.config;
    let d = c.d_model;
    let pre = c.norm_first();
    let stride = c.max_len * d;
    let (Some(x), Some(h), Some(a), Some(ctx), Some(q), Some(ff)) = (
        s.x.get_mut(..d),
        s.h.get_mut(..d),
        s.a.get_mut(..d),
        s.ctx.get_mut(..d),
        s.q.get_mut(..d),
        s.ff.get_mut(..c.d_ff),
    ) else {
        return;
    };

    // embedding + position
    m.tgt_emb.lookup(token as usize, pos, x);
    obs.observe(Site::TgtEmb, Data::I16(x));

    for (l, layer) in m.decoder_layers().iter().enumerate() {
        let at = |b, p| site(Stack::Dec, l, b, p);
        let base = l * stride;
        let (Some(kc), Some(vc)) = (mem.self_k.get_mut(base..base + (pos + 1) * d), mem.self_v.get_mut(base..base + (pos + 1) * d)) else {
            return;
        };

        // masked self-attention over the cache, this step's keys appended
        block_input(pre, &layer.ln1, x, h, at(Block::SelfAttn, Point::Norm), obs);
        let sa = &layer.sa;
        let (Some(k_new), Some(v_new)) = (kc.get_mut(pos * d..), vc.get_mut(pos * d..)) else {
            return;
        };
        project_qkv(sa, h, q, k_new, v_new, |p| at(Block::SelfAttn, p), obs);
        let mask = Mask { key_len: pos + 1, causal: true, q_pos0: pos };
        attention(&sa.params, Heads::multi(c.nhead, d), q, kc, vc, mask, s.scores, s.probs, ctx);
        obs.observe(at(Block::SelfAttn, Point::Ctx), Data::I16(ctx));
        sa.o.forward(ctx, a);
        obs.observe(at(Block::SelfAttn, Point::Out), Data::I16(a));
        block_output(pre, &layer.ln1, layer.res1, x, a, h, at(Block::SelfAttn, Point::Sum), at(Block::SelfAttn, Point::Norm), obs);

        // cross-attention over the memory
        block_input(pre, &layer.ln2, x, h, at(Block::CrossAttn, Point::Norm), obs);
        let ca = &layer.ca;
        ca.q.forward(h, q);
        obs.observe(at(Block::CrossAttn, Point::Q), Data::I8(q));
        let n = mem.src_len * d;
        let (Some(ck), Some(cv)) = (mem.cross_k.get(base..base + n), mem.cross_v.get(base..base + n)) else {
            return;
        };
        let mask = Mask { key_len: mem.src_len, causal: false, q_pos0: 0 };
        attention(&ca.params, Heads::multi(c.nhead, d), q, ck, cv, mask, s.scores, s.probs, ctx);
        obs.observe(at(Block::CrossAttn, Point::Ctx), Data::I16(ctx));
        ca.o.forward(ctx, a);
        obs.observe(at(Block::CrossAttn, Point::Out), Data::I16(a));
        block_output(pre, &layer.ln2, layer.res2, x, a, h, at(Block::CrossAttn, Point::Sum), at(Block::CrossAttn, Point::Norm), obs);

        // feed-forward
        block_input(pre, &layer.ln3, x, h, at(Block::FeedForward, Point::Norm), obs);
        feed_forward(&layer.ff, h, ff, a, |p| at(Block::FeedForward, p), obs);
        block_output(pre, &layer.ln3, layer.res3, x, a, h, at(Block::FeedForward, Point::Sum), at(Block::FeedForward, Point::Norm), obs);
    }
    // final norm and output projection
    m.dec_norm.forward(x, h);
    obs.observe(Site::DecNorm, Data::I16(h));
    m.generator.forward(h, logits);
    obs.observe(Site::Logits, Data::I32(logits));
}
