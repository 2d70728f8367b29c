//! The int8 forward pass, one definition for every model kind: the input rows, a stack of
//! layers, and the output. Each layer reads top to bottom like PyTorch's layers:
//!
//! ```text
//! post-norm: x = norm(x + sublayer(x))        pre-norm: x = x + sublayer(norm(x))
//! ```
//!
//! An encoder's layers attend over their own rows in both directions; a decoder's over its KV
//! cache, causally, with the new rows' keys appended; the encoder-decoder's decoder adds
//! cross-attention over the encoded source.
//!
//! Activations: the residual stream, norm outputs, contexts and FFN values are `i16`; Q, K and
//! V are `i8` (with rotary positions the Q and K projections are `i16`, rotated into `i8`);
//! attention probabilities `u8`; logits and head outputs `i32`.

use core::ops::Range;

use crate::arena::Arena;
use crate::blob::{Config, PosKind, Stack};
use crate::kernels::activation::{gated_i16, relu_i16, table_i16};
use crate::kernels::attention::{attention, Mask};
use crate::kernels::linear::Linear;
use crate::kernels::pool::mean_rows;
use crate::kernels::residual::{add_in_place, ResidualParams};
use crate::kv::{CrossMemory, KvCache};
use crate::model::{Act, Attention, FeedForward, Input, Model, Norm, Positions};
use crate::observe::{Block, Data, Observer, Point, Site};
use crate::quant::sat_i16;
use crate::{Error, TokenId};

/// Rows the sublayers process at a time. Their buffers hold one block of rows, not the whole
/// sequence: only the residual stream, the queries and an encoder's own keys and values are
/// `(rows, ·)`.
/// Every kernel computes each row independently, so blocking changes no result.
pub(crate) const BLOCK_ROWS: usize = 16;

/// Activation buffers for up to `rows` rows, the sublayers' in blocks of `block` rows.
pub(crate) struct Scratch<'a> {
    rows: usize,
    block: usize,
    d: usize,
    /// `(rows, d)` residual stream; after the stack, its final norm.
    pub x: &'a mut [i16],
    /// `(rows, d)` queries.
    pub q: &'a mut [i8],
    /// `(rows, kv_width)` an encoder's own keys and values (empty when the stack attends over a
    /// KV cache).
    pub k: &'a mut [i8],
    pub v: &'a mut [i8],
    /// `(block, d)` norm output (the sublayer's input).
    pub h: &'a mut [i16],
    /// `(block, d)` sublayer output.
    pub a: &'a mut [i16],
    /// `(block, d)` attention context.
    pub ctx: &'a mut [i16],
    /// `(block, d)` and `(block, kv_width)` queries and keys before rotary positions (RoPE only).
    pub q_pre: &'a mut [i16],
    pub k_pre: &'a mut [i16],
    /// `(block, d_ff)` FFN hidden values, and SwiGLU's gate.
    pub ff: &'a mut [i16],
    pub gate: &'a mut [i16],
    /// `(max_len,)` one query row's scores and probabilities.
    pub scores: &'a mut [i32],
    pub probs: &'a mut [u8],
}

impl<'a> Scratch<'a> {
    /// Buffers for `rows` rows of a model with config `c`; `own_keys` when a stack attends over
    /// its own rows (an encoder).
    pub(crate) fn carve(c: &Config, rows: usize, own_keys: bool, a: &mut Arena<'a>) -> Result<Self, Error> {
        let (d, kv) = (c.d_model, c.kv_width());
        let rope = c.positions == PosKind::Rope;
        let swiglu = c.act == crate::blob::ActKind::SwiGlu;
        let block = rows.min(BLOCK_ROWS);
        Ok(Scratch {
            rows,
            block,
            d,
            x: a.take("x", rows * d)?,
            q: a.take("q", rows * d)?,
            k: a.take("k", if own_keys { rows * kv } else { 0 })?,
            v: a.take("v", if own_keys { rows * kv } else { 0 })?,
            h: a.take("h", block * d)?,
            a: a.take("a", block * d)?,
            ctx: a.take("ctx", block * d)?,
            q_pre: a.take("q_pre", if rope { block * d } else { 0 })?,
            k_pre: a.take("k_pre", if rope { block * kv } else { 0 })?,
            ff: a.take("ff", block * c.d_ff)?,
            gate: a.take("gate", if swiglu { block * c.d_ff } else { 0 })?,
            scores: a.take("scores", c.max_len)?,
            probs: a.take("probs", c.max_len)?,
        })
    }

    /// Refuse more rows than the buffers hold.
    fn check(&self, rows: usize) -> Result<(), Error> {
        if rows == 0 || rows > self.rows {
            return Err(Error::InputTooLong { len: rows, max: self.rows });
        }
        Ok(())
    }

    /// Rows `0..rows` in blocks of at most `block` rows.
    fn blocks(&self, rows: usize) -> impl Iterator<Item = Range<usize>> {
        let b = self.block.max(1);
        (0..rows).step_by(b).map(move |r| r..(r + b).min(rows))
    }
}

/// Where a stack's self-attention keys live.
pub(crate) enum Keys<'c, 'a> {
    /// An encoder's: its own rows, seen in both directions (the scratch's `k` and `v`).
    Own,
    /// A decoder's: slot `.1` of the cache, causal; the rows' keys land at their positions.
    Cache(&'c mut KvCache<'a>, usize),
    /// A batched decoder step: row `r` is one sequence's next token, described by `.1[r]`. Its
    /// key lands at its own slot and position (through the scratch's `k` and `v`), and its
    /// query attends over that slot alone, and over source `slot` of the cross memory.
    Rows(&'c mut KvCache<'a>, &'c [RowAt]),
}

/// One row of a batched decoder step: the token fed, its position, its KV slot (also its source
/// in the cross memory) and that source's rows.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct RowAt {
    pub token: u16,
    pub pos: u16,
    pub slot: u16,
    pub src_len: u16,
}

// SAFETY: `RowAt` is `repr(C)`, four `u16`s, no padding; every bit pattern is a valid value.
unsafe impl bytemuck::Zeroable for RowAt {}
// SAFETY: as above.
unsafe impl bytemuck::Pod for RowAt {}

fn site(stack: Stack, layer: usize, block: Block, point: Point) -> Site {
    let layer = layer as u8;
    match stack {
        Stack::Encoder => Site::Enc { layer, block, point },
        Stack::Decoder => Site::Dec { layer, block, point },
    }
}

/// Rows `0..n` of a `(rows, width)` buffer.
fn rows_of<T>(buf: &mut [T], n: usize, width: usize) -> Result<&mut [T], Error> {
    let len = buf.len();
    buf.get_mut(..n * width).ok_or(Error::InputTooLong { len: n * width, max: len })
}

/// The encoder's (or encoder-only model's) input rows into `s.x`: token embeddings, or the
/// projected feature frames (`(rows, n_features)` `i16`), plus the position table.
pub(crate) fn embed_source<O: Observer>(m: &Model<'_>, src: Source<'_>, s: &mut Scratch<'_>, obs: &mut O) -> Result<usize, Error> {
    let d = m.config.d_model;
    let rows = src.rows(&m.config);
    s.check(rows)?;
    let x = rows_of(s.x, rows, d)?;
    match (src, &m.input) {
        (Source::Tokens(ids), Input::Tokens(emb)) => {
            for (p, (&id, xr)) in ids.iter().zip(x.chunks_exact_mut(d)).enumerate() {
                emb.lookup(id as usize, m.positions.row(p, d), xr);
            }
        }
        (Source::Features(f), Input::Features { proj, .. }) => {
            proj.forward(f, x);
            for (p, xr) in x.chunks_exact_mut(d).enumerate() {
                for (xj, &pj) in xr.iter_mut().zip(m.positions.row(p, d)) {
                    *xj = sat_i16(*xj as i64 + pj as i64);
                }
            }
        }
        _ => return Err(Error::WrongInput),
    }
    obs.observe(Site::SrcEmb, Data::I16(x));
    // the embedding norm (BERT), in place through `h`, block by block
    if let Some(n) = &m.embed_norm {
        for t in s.blocks(rows) {
            let (x, h) = (rows_in(s.x, &t, d)?, rows_of(s.h, t.len(), d)?);
            n.forward(x, h);
            x.copy_from_slice(h);
        }
        obs.observe(Site::EmbNorm, Data::I16(rows_of(s.x, rows, d)?));
    }
    Ok(rows)
}

/// A decoder's input rows into `s.x`: the embeddings of `(token, position)` pairs.
pub(crate) fn embed_target<O: Observer>(m: &Model<'_>, rows: usize, tokens: impl Iterator<Item = (TokenId, usize)>, s: &mut Scratch<'_>, obs: &mut O) -> Result<(), Error> {
    let d = m.config.d_model;
    s.check(rows)?;
    let x = rows_of(s.x, rows, d)?;
    for ((id, p), xr) in tokens.zip(x.chunks_exact_mut(d)) {
        m.target.lookup(id as usize, m.positions.row(p, d), xr);
    }
    obs.observe(Site::TgtEmb, Data::I16(x));
    Ok(())
}

/// What an encoder reads.
#[derive(Clone, Copy)]
pub(crate) enum Source<'s> {
    Tokens(&'s [TokenId]),
    /// `(rows, n_features)`.
    Features(&'s [i16]),
}

impl Source<'_> {
    fn rows(&self, c: &Config) -> usize {
        match self {
            Source::Tokens(ids) => ids.len(),
            Source::Features(f) => f.len() / c.n_features.max(1),
        }
    }
}

/// Run the layers of `stack` over rows `0..rows` of `s.x` (positions `pos0..`), leaving the
/// final norm's output in `s.x` (the stream itself when the model has no final norm).
///
/// Each sublayer runs over blocks of rows ([`BLOCK_ROWS`]). Self-attention takes two passes:
/// every block's queries, keys and values first, then each block's queries attend over all the
/// keys.
#[allow(clippy::too_many_arguments)]
pub(crate) fn run_stack<O: Observer>(
    m: &Model<'_>,
    stack: Stack,
    s: &mut Scratch<'_>,
    rows: usize,
    pos0: usize,
    mut keys: Keys<'_, '_>,
    cross: Option<&CrossMemory<'_>>,
    obs: &mut O,
) -> Result<(), Error> {
    let pre = m.config.norm_first();
    s.check(rows)?;
    for (l, layer) in m.layers(stack).iter().enumerate() {
        let at = |b, p| site(stack, l, b, p);

        // self-attention: the projections of every row, then each block's queries over all keys
        let sa = &layer.attn;
        let sa_at = |p| at(Block::SelfAttn, p);
        for t in s.blocks(rows) {
            block_input(pre, &sa.norm, s, &t, sa_at(Point::Norm), obs)?;
            self_project(m, &sa.op, s, &t, pos0, l, &mut keys, sa_at, obs)?;
        }
        for t in s.blocks(rows) {
            self_attend(m, &sa.op, s, &t, rows, pos0, l, &mut keys, sa_at, obs)?;
            block_output(pre, &sa.norm, sa.residual, s, &t, sa_at(Point::Sum), sa_at(Point::Norm), obs)?;
        }

        // cross-attention over the encoded source (the encoder-decoder's decoder)
        if let Some(mem) = cross {
            let ca = &layer.cross;
            let ca_at = |p| at(Block::CrossAttn, p);
            let batch = match &keys {
                Keys::Rows(_, at) => Some(*at),
                _ => None,
            };
            for t in s.blocks(rows) {
                block_input(pre, &ca.norm, s, &t, ca_at(Point::Norm), obs)?;
                cross_attention(m, &ca.op, s, &t, mem, batch, l, ca_at, obs)?;
                block_output(pre, &ca.norm, ca.residual, s, &t, ca_at(Point::Sum), ca_at(Point::Norm), obs)?;
            }
        }

        // feed-forward
        let ff = &layer.ffn;
        let ff_at = |p| at(Block::FeedForward, p);
        for t in s.blocks(rows) {
            block_input(pre, &ff.norm, s, &t, ff_at(Point::Norm), obs)?;
            feed_forward(&ff.op, s, &t, ff_at, obs)?;
            block_output(pre, &ff.norm, ff.residual, s, &t, ff_at(Point::Sum), ff_at(Point::Norm), obs)?;
        }
    }

    // final norm, in place
    let (norm, point) = match stack {
        Stack::Encoder => (&m.enc_norm, Site::EncNorm),
        Stack::Decoder => (&m.dec_norm, Site::DecNorm),
    };
    for t in s.blocks(rows) {
        let (x, h) = (rows_in(s.x, &t, s.d)?, rows_of(s.h, t.len(), s.d)?);
        if let Some(n) = norm {
            n.forward(x, h);
            x.copy_from_slice(h);
        }
        obs.observe(point, Data::I16(x));
    }
    Ok(())
}

/// Rows `t` of a `(rows, width)` buffer.
fn rows_in<'b, T>(buf: &'b mut [T], t: &Range<usize>, width: usize) -> Result<&'b mut [T], Error> {
    let len = buf.len();
    buf.get_mut(t.start * width..t.end * width).ok_or(Error::InputTooLong { len: t.end * width, max: len })
}

/// Before the sublayer, for the block of rows `t`: pre-norm normalizes them into `h`; post-norm
/// hands the stream itself to the sublayer (copied into `h`).
fn block_input<O: Observer>(pre: bool, norm: &Norm<'_>, s: &mut Scratch<'_>, t: &Range<usize>, site: Site, obs: &mut O) -> Result<(), Error> {
    let d = s.d;
    let (x, h) = (rows_in(s.x, t, d)?, rows_of(s.h, t.len(), d)?);
    if pre {
        norm.forward(x, h);
        obs.observe(site, Data::I16(h));
    } else {
        h.copy_from_slice(x);
    }
    Ok(())
}

/// After the sublayer: rows `t` of the stream `x += a`, then post-norm normalizes them (via `h`).
#[allow(clippy::too_many_arguments)]
fn block_output<O: Observer>(pre: bool, norm: &Norm<'_>, res: ResidualParams, s: &mut Scratch<'_>, t: &Range<usize>, sum: Site, normed: Site, obs: &mut O) -> Result<(), Error> {
    let (d, n) = (s.d, t.len());
    let (x, a, h) = (rows_in(s.x, t, d)?, rows_of(s.a, n, d)?, rows_of(s.h, n, d)?);
    add_in_place(res, x, a);
    obs.observe(sum, Data::I16(x));
    if !pre {
        norm.forward(x, h);
        x.copy_from_slice(h);
        obs.observe(normed, Data::I16(x));
    }
    Ok(())
}

/// The queries or keys of `h` through `proj`, into `out` (`i8`): directly, or with rotary
/// positions through the `i16` buffer `pre` and the rotation at positions `pos0..` (or, in a
/// batched step, each row at its own position `batch[r].pos`).
#[allow(clippy::too_many_arguments)]
fn project_rotated<O: Observer>(m: &Model<'_>, proj: &Linear<'_>, rq: crate::quant::Requant, heads: usize, h: &[i16], pre: &mut [i16], pos0: usize, batch: Option<&[RowAt]>, out: &mut [i8], sites: (Site, Site), obs: &mut O) {
    match &m.positions {
        Positions::Rope(rope) => {
            proj.forward(h, pre);
            obs.observe(sites.0, Data::I16(pre));
            match batch {
                Some(at) => {
                    let rows = at.len().max(1);
                    for ((xr, yr), r) in pre.chunks_exact(pre.len() / rows).zip(out.chunks_exact_mut(out.len() / rows)).zip(at) {
                        rope.apply(xr, r.pos as usize, heads, rq, yr);
                    }
                }
                None => rope.apply(pre, pos0, heads, rq, out),
            }
        }
        _ => proj.forward(h, out),
    }
    obs.observe(sites.1, Data::I8(out));
}

/// The keys and values of an encoder's rows, or of a decoder's cache, `(rows, kv_width)` each:
/// those visible to a call over `rows` rows at positions `pos0..`, and the mask that goes with
/// them.
fn visible<'k>(keys: &'k mut Keys<'_, '_>, own: (&'k mut [i8], &'k mut [i8]), rows: usize, pos0: usize, layer: usize, kw: usize) -> Result<(&'k mut [i8], &'k mut [i8], Mask), Error> {
    match keys {
        Keys::Own => Ok((rows_of(own.0, rows, kw)?, rows_of(own.1, rows, kw)?, Mask { key_len: rows, causal: false, q_pos0: 0 })),
        Keys::Cache(cache, slot) => {
            let (kl, vl) = cache.layer(*slot, layer)?;
            let end = pos0 + rows;
            Ok((rows_of(kl, end, kw)?, rows_of(vl, end, kw)?, Mask { key_len: end, causal: true, q_pos0: pos0 }))
        }
        // a batched step addresses each row's slot itself
        Keys::Rows(..) => Err(Error::DecoderState),
    }
}

/// A batched step's rows `t`, each with its description.
fn rows_at<'r>(at: &'r [RowAt], t: &Range<usize>) -> Result<&'r [RowAt], Error> {
    at.get(t.clone()).ok_or(Error::DecoderState)
}

/// Self-attention, first pass: the queries, keys and values of the block of rows `t`
/// (positions `pos0 + t`), from `h`; the keys and values into the encoder's own rows or the
/// decoder's cache.
#[allow(clippy::too_many_arguments)]
fn self_project<O: Observer>(m: &Model<'_>, at: &Attention<'_>, s: &mut Scratch<'_>, t: &Range<usize>, pos0: usize, layer: usize, keys: &mut Keys<'_, '_>, name: impl Fn(Point) -> Site, obs: &mut O) -> Result<(), Error> {
    let c = &m.config;
    let (d, kw, n, heads) = (c.d_model, c.kv_width(), t.len(), m.heads());
    let rope = c.positions == PosKind::Rope;
    let Scratch { h, q, k, v, q_pre, k_pre, .. } = s;
    let (h, q) = (rows_of(h, n, d)?, rows_in(q, t, d)?);
    let q_pre = if rope { rows_of(q_pre, n, d)? } else { &mut [] };
    let k_pre = if rope { rows_of(k_pre, n, kw)? } else { &mut [] };
    if let Keys::Rows(cache, all) = keys {
        // every row's key and value into the scratch, then each to its own slot and position
        let rows = rows_at(all, t)?;
        project_rotated(m, &at.q, at.rope.q, heads.q, h, q_pre, 0, Some(rows), q, (name(Point::QPre), name(Point::Q)), obs);
        let (k_new, v_new) = (rows_in(k, t, kw)?, rows_in(v, t, kw)?);
        project_rotated(m, &at.k, at.rope.k, heads.kv, h, k_pre, 0, Some(rows), k_new, (name(Point::KPre), name(Point::K)), obs);
        at.v.forward(h, v_new);
        obs.observe(name(Point::V), Data::I8(v_new));
        for ((r, kr), vr) in rows.iter().zip(k_new.chunks_exact(kw)).zip(v_new.chunks_exact(kw)) {
            let (kl, vl) = cache.layer(r.slot as usize, layer)?;
            let p = r.pos as usize;
            rows_in(kl, &(p..p + 1), kw)?.copy_from_slice(kr);
            rows_in(vl, &(p..p + 1), kw)?.copy_from_slice(vr);
        }
        return Ok(());
    }
    project_rotated(m, &at.q, at.rope.q, heads.q, h, q_pre, pos0 + t.start, None, q, (name(Point::QPre), name(Point::Q)), obs);
    let (kc, vc, _) = visible(keys, (k, v), t.end, pos0, layer, kw)?;
    let (k_new, v_new) = (rows_in(kc, &(pos0 + t.start..pos0 + t.end), kw)?, rows_in(vc, &(pos0 + t.start..pos0 + t.end), kw)?);
    project_rotated(m, &at.k, at.rope.k, heads.kv, h, k_pre, pos0 + t.start, None, k_new, (name(Point::KPre), name(Point::K)), obs);
    at.v.forward(h, v_new);
    obs.observe(name(Point::V), Data::I8(v_new));
    Ok(())
}

/// Self-attention, second pass: the queries of the block of rows `t` over the keys of all
/// `rows` rows (causal in a decoder's cache), projected out into `a`.
#[allow(clippy::too_many_arguments)]
fn self_attend<O: Observer>(
    m: &Model<'_>,
    at: &Attention<'_>,
    s: &mut Scratch<'_>,
    t: &Range<usize>,
    rows: usize,
    pos0: usize,
    layer: usize,
    keys: &mut Keys<'_, '_>,
    name: impl Fn(Point) -> Site,
    obs: &mut O,
) -> Result<(), Error> {
    let c = &m.config;
    let (d, kw, n) = (c.d_model, c.kv_width(), t.len());
    let Scratch { q, k, v, ctx, a, scores, probs, .. } = s;
    let (q, ctx, a) = (rows_in(q, t, d)?, rows_of(ctx, n, d)?, rows_of(a, n, d)?);
    if let Keys::Rows(cache, all) = keys {
        // each row over its own slot's keys, positions 0..=pos
        for ((r, qr), cr) in rows_at(all, t)?.iter().zip(q.chunks_exact(d)).zip(ctx.chunks_exact_mut(d)) {
            let (kl, vl) = cache.layer(r.slot as usize, layer)?;
            let end = r.pos as usize + 1;
            let mask = Mask { key_len: end, causal: true, q_pos0: r.pos as usize };
            attention(&at.params, m.heads(), qr, rows_of(kl, end, kw)?, rows_of(vl, end, kw)?, mask, scores, probs, cr);
        }
    } else {
        let (kc, vc, mask) = visible(keys, (k, v), rows, pos0, layer, kw)?;
        let mask = Mask { q_pos0: mask.q_pos0 + t.start, ..mask };
        attention(&at.params, m.heads(), q, kc, vc, mask, scores, probs, ctx);
    }
    obs.observe(name(Point::Ctx), Data::I16(ctx));
    at.o.forward(ctx, a);
    obs.observe(name(Point::Out), Data::I16(a));
    Ok(())
}

/// Cross-attention of the block of rows `t` over the encoded source of decoder layer `layer`
/// (in a batched step, `batch`, each row over its own source).
#[allow(clippy::too_many_arguments)]
fn cross_attention<O: Observer>(m: &Model<'_>, at: &Attention<'_>, s: &mut Scratch<'_>, t: &Range<usize>, mem: &CrossMemory<'_>, batch: Option<&[RowAt]>, layer: usize, name: impl Fn(Point) -> Site, obs: &mut O) -> Result<(), Error> {
    let (d, n) = (m.config.d_model, t.len());
    let Scratch { h, q, ctx, a, scores, probs, .. } = s;
    let (h, q, ctx, a) = (rows_of(h, n, d)?, rows_in(q, t, d)?, rows_of(ctx, n, d)?, rows_of(a, n, d)?);
    at.q.forward(h, q);
    obs.observe(name(Point::Q), Data::I8(q));
    match batch {
        Some(all) => {
            for ((r, qr), cr) in rows_at(all, t)?.iter().zip(q.chunks_exact(d)).zip(ctx.chunks_exact_mut(d)) {
                let len = r.src_len as usize;
                let (ck, cv) = mem.source(r.slot as usize, layer, len)?;
                let mask = Mask { key_len: len, causal: false, q_pos0: 0 };
                attention(&at.params, m.heads(), qr, ck, cv, mask, scores, probs, cr);
            }
        }
        None => {
            let (ck, cv) = mem.layer(layer)?;
            let mask = Mask { key_len: mem.len, causal: false, q_pos0: 0 };
            attention(&at.params, m.heads(), q, ck, cv, mask, scores, probs, ctx);
        }
    }
    obs.observe(name(Point::Ctx), Data::I16(ctx));
    at.o.forward(ctx, a);
    obs.observe(name(Point::Out), Data::I16(a));
    Ok(())
}

/// The feed-forward sublayer on the block of rows `t`: `a = down(act(up(h)))`, or with SwiGLU
/// `a = down(silu(gate(h)) · up(h))`.
fn feed_forward<O: Observer>(f: &FeedForward<'_>, s: &mut Scratch<'_>, t: &Range<usize>, at: impl Fn(Point) -> Site, obs: &mut O) -> Result<(), Error> {
    let (d, d_ff, n) = (f.up.k, f.up.n(), t.len());
    let Scratch { h, ff, gate, a, .. } = s;
    let (h, ff, a) = (rows_of(h, n, d)?, rows_of(ff, n, d_ff)?, rows_of(a, n, d)?);
    match f.act {
        Act::Relu => {
            f.up.forward(h, ff);
            obs.observe(at(Point::PreAct), Data::I16(ff));
            relu_i16(ff);
        }
        Act::Table(table) => {
            f.up.forward(h, ff);
            obs.observe(at(Point::PreAct), Data::I16(ff));
            table_i16(ff, table);
        }
        Act::SwiGlu { silu, mul } => {
            let g = rows_of(gate, n, d_ff)?;
            f.gate.forward(h, g);
            obs.observe(at(Point::PreAct), Data::I16(g));
            table_i16(g, silu);
            obs.observe(at(Point::Gate), Data::I16(g));
            f.up.forward(h, ff);
            obs.observe(at(Point::Up), Data::I16(ff));
            gated_i16(g, ff, mul);
        }
    }
    obs.observe(at(Point::Hidden), Data::I16(ff));
    f.down.forward(ff, a);
    obs.observe(at(Point::Out), Data::I16(a));
    Ok(())
}

/// The encoder-decoder: each decoder layer's cross-attention keys and values of the encoder
/// output (`s.x`, `rows` rows), once per source, into source `src` of `mem` (the caller records
/// its length).
pub(crate) fn cross_keys<O: Observer>(m: &Model<'_>, s: &Scratch<'_>, rows: usize, mem: &mut CrossMemory<'_>, src: usize, obs: &mut O) -> Result<(), Error> {
    let d = m.config.d_model;
    let x = s.x.get(..rows * d).ok_or(Error::DecoderState)?;
    for (l, layer) in m.layers(Stack::Decoder).iter().enumerate() {
        let (ck, cv) = mem.layer_mut(src, l, rows)?;
        let ca = &layer.cross.op;
        ca.k.forward(x, ck);
        obs.observe(site(Stack::Decoder, l, Block::CrossAttn, Point::K), Data::I8(ck));
        ca.v.forward(x, cv);
        obs.observe(site(Stack::Decoder, l, Block::CrossAttn, Point::V), Data::I8(cv));
    }
    Ok(())
}

/// The output projection of rows `rows` of the stack's output `s.x` into `out` (`(rows, n)`,
/// one many-row product): logits, or the head's outputs.
pub(crate) fn output<O: Observer>(m: &Model<'_>, s: &Scratch<'_>, rows: Range<usize>, out: &mut [i32], obs: &mut O) -> Result<(), Error> {
    let d = m.config.d_model;
    let x = s.x.get(rows.start * d..rows.end * d).ok_or(Error::DecoderState)?;
    m.output.forward(x, out);
    obs.observe(Site::Logits, Data::I32(out));
    Ok(())
}

/// Encoder-only: pool the encoder output's `rows` rows into `pooled` (`(d,)`), then the head;
/// with a pooler (BERT) the head reads `tanh(pooler(pooled))`, computed in `s.a`.
pub(crate) fn pool_and_head<O: Observer>(m: &Model<'_>, s: &mut Scratch<'_>, rows: usize, pooled: &mut [i16], out: &mut [i32], obs: &mut O) -> Result<(), Error> {
    let d = m.config.d_model;
    let x = s.x.get(..rows * d).ok_or(Error::DecoderState)?;
    match m.config.pooling {
        crate::blob::Pooling::First => pooled.copy_from_slice(x.get(..d).ok_or(Error::DecoderState)?),
        crate::blob::Pooling::Mean => mean_rows(x, d, pooled),
    }
    obs.observe(Site::Pooled, Data::I16(pooled));
    if let Some((dense, tanh)) = &m.pooler {
        let y = rows_of(s.a, 1, d)?;
        dense.forward(pooled, y);
        obs.observe(Site::PoolerPre, Data::I16(y));
        table_i16(y, tanh);
        obs.observe(Site::Pooler, Data::I16(y));
        m.output.forward(y, out);
        obs.observe(Site::Logits, Data::I32(out));
        return Ok(());
    }
    m.output.forward(pooled, out);
    obs.observe(Site::Logits, Data::I32(out));
    Ok(())
}
