//! The f32 reference forward pass (feature `reference`): the same encoder and decoder step as
//! the int8 path, in float, reporting the same [`Site`]s. The converter uses it to check the
//! weight mapping against PyTorch and to calibrate activation scales; a board with an FPU can
//! run it beside the int8 model. The int8 path never calls it.

use crate::arena::Arena;
use crate::blob::{Config, MAX_LAYERS};
use crate::observe::{Block, Data, NoObserver, Observer, Point, Site};
use crate::Error;

/// `y = x · wᵀ + b`, `w` `(n, k)`.
#[derive(Debug, Clone, Copy, Default)]
pub struct FLinear<'a> {
    pub w: &'a [f32],
    pub b: &'a [f32],
    pub k: usize,
}

impl FLinear<'_> {
    /// Each output is `b + Σ_j x_j · w_j`, summed from `-0.0` in input order (as `Iterator::sum`
    /// does): the same bits however the outputs are grouped. Eight outputs run side by side, so
    /// their additions overlap instead of waiting on one another.
    pub fn forward(&self, x: &[f32], y: &mut [f32]) {
        let (k, n) = (self.k, self.b.len());
        if k == 0 || n == 0 {
            return;
        }
        for (xr, yr) in x.chunks_exact(k).zip(y.chunks_exact_mut(n)) {
            let mut done = 0;
            for ((y8, w8), b8) in yr.chunks_exact_mut(8).zip(self.w.chunks_exact(8 * k)).zip(self.b.chunks_exact(8)) {
                let rows: [&[f32]; 8] = core::array::from_fn(|i| &w8[i * k..(i + 1) * k]);
                let mut acc = [-0.0f32; 8];
                for (j, &a) in xr.iter().enumerate() {
                    for (s, row) in acc.iter_mut().zip(rows) {
                        *s += a * row[j];
                    }
                }
                for ((yo, &b), s) in y8.iter_mut().zip(b8).zip(acc) {
                    *yo = b + s;
                }
                done += 8;
            }
            let rest = self.w.get(done * k..).unwrap_or(&[]);
            for ((yo, wo), &b) in yr[done..].iter_mut().zip(rest.chunks_exact(k)).zip(&self.b[done..]) {
                *yo = b + xr.iter().zip(wo).map(|(a, w)| a * w).sum::<f32>();
            }
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub struct FLayerNorm<'a> {
    pub g: &'a [f32],
    pub b: &'a [f32],
    pub eps: f32,
}

impl FLayerNorm<'_> {
    pub fn forward(&self, x: &[f32], y: &mut [f32]) {
        let d = self.g.len();
        if d == 0 {
            return;
        }
        for (xr, yr) in x.chunks_exact(d).zip(y.chunks_exact_mut(d)) {
            let mean = xr.iter().sum::<f32>() / d as f32;
            let var = xr.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / d as f32;
            let inv = 1.0 / libm::sqrtf(var + self.eps);
            for (((yj, &xj), &g), &b) in yr.iter_mut().zip(xr).zip(self.g).zip(self.b) {
                *yj = (xj - mean) * inv * g + b;
            }
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub struct FAttention<'a> {
    pub q: FLinear<'a>,
    pub k: FLinear<'a>,
    pub v: FLinear<'a>,
    pub o: FLinear<'a>,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct FEncoderLayer<'a> {
    pub sa: FAttention<'a>,
    pub ln1: FLayerNorm<'a>,
    pub ff1: FLinear<'a>,
    pub ff2: FLinear<'a>,
    pub ln2: FLayerNorm<'a>,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct FDecoderLayer<'a> {
    pub sa: FAttention<'a>,
    pub ln1: FLayerNorm<'a>,
    pub ca: FAttention<'a>,
    pub ln2: FLayerNorm<'a>,
    pub ff1: FLinear<'a>,
    pub ff2: FLinear<'a>,
    pub ln3: FLayerNorm<'a>,
}

/// A float model: views into the caller's f32 weights (PyTorch layout).
#[derive(Debug, Clone, Default)]
pub struct FloatModel<'a> {
    /// Shapes and flags; the tokenizer fields are unused here.
    pub config: Config,
    pub scale_embedding: bool,
    /// `(vocab, d)` each; equal slices when tied.
    pub src_emb: &'a [f32],
    pub tgt_emb: &'a [f32],
    /// Output projection `(vocab, d)` with bias `(vocab,)` (zeros when tied).
    pub generator: FLinear<'a>,
    pub enc: [FEncoderLayer<'a>; MAX_LAYERS],
    pub enc_norm: FLayerNorm<'a>,
    pub dec: [FDecoderLayer<'a>; MAX_LAYERS],
    pub dec_norm: FLayerNorm<'a>,
}

/// The sinusoidal position table entry: `sin(p / 10000^(2i/d))` at `j = 2i`, `cos` at `2i + 1`.
pub fn sinusoid(p: usize, j: usize, d: usize) -> f32 {
    let i2 = (j & !1) as f64;
    let angle = p as f64 * libm::exp(-(i2 * libm::log(10000.0) / d as f64));
    (if j % 2 == 0 { libm::sin(angle) } else { libm::cos(angle) }) as f32
}

/// PyTorch's exact (erf) GELU.
pub fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + libm::erff(x * core::f32::consts::FRAC_1_SQRT_2))
}

/// Float activation buffers, carved from a caller's `f32`-aligned memory like the int8 arena.
pub struct FloatState<'a> {
    x: &'a mut [f32],
    h: &'a mut [f32],
    a: &'a mut [f32],
    ctx: &'a mut [f32],
    q: &'a mut [f32],
    k: &'a mut [f32],
    v: &'a mut [f32],
    ff: &'a mut [f32],
    scores: &'a mut [f32],
    cross_k: &'a mut [f32],
    cross_v: &'a mut [f32],
    self_k: &'a mut [f32],
    self_v: &'a mut [f32],
    logits: &'a mut [f32],
    src_len: usize,
}

fn carve<'a>(c: &Config, a: &mut Arena<'a>) -> Result<FloatState<'a>, Error> {
    let (s, d, l) = (c.max_len, c.d_model, c.n_dec);
    Ok(FloatState {
        x: a.take(s * d)?,
        h: a.take(s * d)?,
        a: a.take(s * d)?,
        ctx: a.take(s * d)?,
        q: a.take(s * d)?,
        k: a.take(s * d)?,
        v: a.take(s * d)?,
        ff: a.take(s * c.d_ff)?,
        scores: a.take(s)?,
        cross_k: a.take(l * s * d)?,
        cross_v: a.take(l * s * d)?,
        self_k: a.take(l * s * d)?,
        self_v: a.take(l * s * d)?,
        logits: a.take(c.vocab)?,
        src_len: 0,
    })
}

impl<'a> FloatState<'a> {
    /// Bytes of memory a float state for `c` needs; `c` must pass `Config::validate`, which
    /// bounds every size.
    pub fn bytes(c: &Config) -> Result<usize, Error> {
        c.validate()?;
        let mut a = Arena::dry();
        carve(c, &mut a)?;
        Ok(a.used())
    }

    /// Carve a state from `mem` (8-byte aligned, at least [`FloatState::bytes`]).
    pub fn new(c: &Config, mem: &'a mut [u8]) -> Result<Self, Error> {
        let needed = Self::bytes(c)?;
        if mem.len() < needed {
            return Err(Error::ArenaTooSmall { needed, got: mem.len() });
        }
        carve(c, &mut Arena::new(mem)?)
    }

    /// The last decoder step's `(vocab,)` logits.
    pub fn logits(&self) -> &[f32] {
        self.logits
    }
}

fn site(dec: bool, layer: usize, block: Block, point: Point) -> Site {
    let layer = layer as u8;
    if dec {
        Site::Dec { layer, block, point }
    } else {
        Site::Enc { layer, block, point }
    }
}

/// Scaled dot-product attention for `rows` queries over `n` keys; query row `r` sees keys
/// `j < limit(r)`.
#[allow(clippy::too_many_arguments)]
fn attend(heads: usize, d: usize, q: &[f32], k: &[f32], v: &[f32], n: usize, limit: impl Fn(usize) -> usize, scores: &mut [f32], out: &mut [f32]) {
    let dh = d / heads;
    let scale = 1.0 / libm::sqrtf(dh as f32);
    for (r, (qr, or)) in q.chunks_exact(d).zip(out.chunks_exact_mut(d)).enumerate() {
        let valid = limit(r).min(n);
        for h in 0..heads {
            let off = h * dh;
            let s = &mut scores[..valid];
            for (j, sj) in s.iter_mut().enumerate() {
                let kj = &k[j * d + off..j * d + off + dh];
                *sj = qr[off..off + dh].iter().zip(kj).map(|(a, b)| a * b).sum::<f32>() * scale;
            }
            let m = s.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let mut sum = 0.0;
            for sj in s.iter_mut() {
                *sj = libm::expf(*sj - m);
                sum += *sj;
            }
            for i in 0..dh {
                let mut acc = 0.0;
                for (j, &p) in s.iter().enumerate() {
                    acc += p * v[j * d + off + i];
                }
                or[off + i] = if valid == 0 { 0.0 } else { acc / sum };
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn ffn<O: Observer>(ff1: &FLinear<'_>, ff2: &FLinear<'_>, gelu_act: bool, h: &[f32], ff: &mut [f32], a: &mut [f32], at: impl Fn(Point) -> Site, obs: &mut O) {
    ff1.forward(h, ff);
    if gelu_act {
        obs.observe(at(Point::PreAct), Data::F32(ff));
        ff.iter_mut().for_each(|v| *v = gelu(*v));
    } else {
        obs.observe(at(Point::PreAct), Data::F32(ff));
        ff.iter_mut().for_each(|v| *v = v.max(0.0));
    }
    obs.observe(at(Point::Hidden), Data::F32(ff));
    ff2.forward(ff, a);
    obs.observe(at(Point::Out), Data::F32(a));
}

fn pre<O: Observer>(norm_first: bool, ln: &FLayerNorm<'_>, x: &[f32], h: &mut [f32], s: Site, obs: &mut O) {
    if norm_first {
        ln.forward(x, h);
        obs.observe(s, Data::F32(h));
    } else {
        h.copy_from_slice(x);
    }
}

#[allow(clippy::too_many_arguments)]
fn post<O: Observer>(norm_first: bool, ln: &FLayerNorm<'_>, x: &mut [f32], a: &[f32], h: &mut [f32], sum: Site, norm: Site, obs: &mut O) {
    x.iter_mut().zip(a).for_each(|(x, a)| *x += a);
    obs.observe(sum, Data::F32(x));
    if !norm_first {
        ln.forward(x, h);
        x.copy_from_slice(h);
        obs.observe(norm, Data::F32(x));
    }
}

fn embed(table: &[f32], scale: f32, id: usize, p: usize, x: &mut [f32]) {
    let d = x.len();
    for (j, xj) in x.iter_mut().enumerate() {
        *xj = table[id * d + j] * scale + sinusoid(p, j, d);
    }
}

impl FloatModel<'_> {
    fn emb_scale(&self) -> f32 {
        if self.scale_embedding {
            libm::sqrtf(self.config.d_model as f32)
        } else {
            1.0
        }
    }

    /// Every view has the length the config calls for: the forward passes index them freely.
    fn check(&self, st: &FloatState<'_>) -> Result<(), Error> {
        let c = &self.config;
        c.validate()?;
        let (d, f, v) = (c.d_model, c.d_ff, c.vocab);
        let bad = |field| Err(Error::BadConfig { field });
        let lin = |l: &FLinear<'_>, n: usize, k: usize| l.k == k && l.b.len() == n && l.w.len() == n * k;
        let norm = |n: &FLayerNorm<'_>| n.g.len() == d && n.b.len() == d;
        let attn = |a: &FAttention<'_>| [&a.q, &a.k, &a.v, &a.o].iter().all(|l| lin(l, d, d));
        if self.src_emb.len() != v * d || self.tgt_emb.len() != v * d || !lin(&self.generator, v, d) {
            return bad("embeddings");
        }
        if !norm(&self.enc_norm) || !norm(&self.dec_norm) {
            return bad("final norms");
        }
        for l in self.enc.get(..c.n_enc).unwrap_or(&[]) {
            if !attn(&l.sa) || !lin(&l.ff1, f, d) || !lin(&l.ff2, d, f) || !norm(&l.ln1) || !norm(&l.ln2) {
                return bad("encoder layer");
            }
        }
        for l in self.dec.get(..c.n_dec).unwrap_or(&[]) {
            if !attn(&l.sa) || !attn(&l.ca) || !lin(&l.ff1, f, d) || !lin(&l.ff2, d, f) || !norm(&l.ln1) || !norm(&l.ln2) || !norm(&l.ln3) {
                return bad("decoder layer");
            }
        }
        let s = c.max_len * d;
        if st.x.len() < s || st.ff.len() < c.max_len * f || st.cross_k.len() < c.n_dec * s || st.self_k.len() < c.n_dec * s || st.logits.len() < v {
            return bad("float state");
        }
        Ok(())
    }

    /// Encode `src` (ids < vocab, `1..=max_len` of them) into the memory and the cross K/V.
    pub fn encode<O: Observer>(&self, src: &[u16], st: &mut FloatState<'_>, obs: &mut O) -> Result<(), Error> {
        self.check(st)?;
        let c = &self.config;
        if src.is_empty() {
            return Err(Error::EmptyInput);
        }
        if src.len() > c.max_len {
            return Err(Error::InputTooLong { len: src.len(), max: c.max_len });
        }
        if let Some(&id) = src.iter().find(|&&id| id as usize >= c.vocab) {
            return Err(Error::TokenOutOfRange { id: id as u32, vocab: c.vocab as u32 });
        }
        let (d, n, nf) = (c.d_model, src.len(), c.norm_first());
        let nd = n * d;
        let (x, h, a, ctx) = (&mut st.x[..nd], &mut st.h[..nd], &mut st.a[..nd], &mut st.ctx[..nd]);
        let (q, k, v, ff) = (&mut st.q[..nd], &mut st.k[..nd], &mut st.v[..nd], &mut st.ff[..n * c.d_ff]);
        for (p, (&id, xr)) in src.iter().zip(x.chunks_exact_mut(d)).enumerate() {
            embed(self.src_emb, self.emb_scale(), id as usize, p, xr);
        }
        obs.observe(Site::SrcEmb, Data::F32(x));
        for (l, layer) in self.enc[..c.n_enc].iter().enumerate() {
            let at = |b, p| site(false, l, b, p);
            pre(nf, &layer.ln1, x, h, at(Block::SelfAttn, Point::Norm), obs);
            layer.sa.q.forward(h, q);
            obs.observe(at(Block::SelfAttn, Point::Q), Data::F32(q));
            layer.sa.k.forward(h, k);
            obs.observe(at(Block::SelfAttn, Point::K), Data::F32(k));
            layer.sa.v.forward(h, v);
            obs.observe(at(Block::SelfAttn, Point::V), Data::F32(v));
            attend(c.nhead, d, q, k, v, n, |_| n, st.scores, ctx);
            obs.observe(at(Block::SelfAttn, Point::Ctx), Data::F32(ctx));
            layer.sa.o.forward(ctx, a);
            obs.observe(at(Block::SelfAttn, Point::Out), Data::F32(a));
            post(nf, &layer.ln1, x, a, h, at(Block::SelfAttn, Point::Sum), at(Block::SelfAttn, Point::Norm), obs);
            pre(nf, &layer.ln2, x, h, at(Block::FeedForward, Point::Norm), obs);
            ffn(&layer.ff1, &layer.ff2, c.gelu(), h, ff, a, |p| at(Block::FeedForward, p), obs);
            post(nf, &layer.ln2, x, a, h, at(Block::FeedForward, Point::Sum), at(Block::FeedForward, Point::Norm), obs);
        }
        self.enc_norm.forward(x, h);
        obs.observe(Site::EncNorm, Data::F32(h));
        let stride = c.max_len * d;
        for (l, layer) in self.dec[..c.n_dec].iter().enumerate() {
            let ck = &mut st.cross_k[l * stride..l * stride + nd];
            layer.ca.k.forward(h, ck);
            obs.observe(site(true, l, Block::CrossAttn, Point::K), Data::F32(ck));
            let cv = &mut st.cross_v[l * stride..l * stride + nd];
            layer.ca.v.forward(h, cv);
            obs.observe(site(true, l, Block::CrossAttn, Point::V), Data::F32(cv));
        }
        st.src_len = n;
        Ok(())
    }

    /// The encoder output (after the final norm) of the last [`FloatModel::encode`], `(n, d)`.
    pub fn memory<'s>(&self, st: &'s FloatState<'_>) -> &'s [f32] {
        &st.h[..st.src_len * self.config.d_model]
    }

    /// One decoder step: `token` at `pos` (`< max_len`), logits into the state. Call
    /// [`FloatModel::encode`] first.
    pub fn decode_step<O: Observer>(&self, token: u16, pos: usize, st: &mut FloatState<'_>, obs: &mut O) -> Result<(), Error> {
        self.check(st)?;
        let c = &self.config;
        if st.src_len == 0 || pos >= c.max_len {
            return Err(Error::DecoderState);
        }
        if token as usize >= c.vocab {
            return Err(Error::TokenOutOfRange { id: token as u32, vocab: c.vocab as u32 });
        }
        let (d, nf) = (c.d_model, c.norm_first());
        let stride = c.max_len * d;
        let (x, h, a, ctx) = (&mut st.x[..d], &mut st.h[..d], &mut st.a[..d], &mut st.ctx[..d]);
        let (q, ff) = (&mut st.q[..d], &mut st.ff[..c.d_ff]);
        embed(self.tgt_emb, self.emb_scale(), token as usize, pos, x);
        obs.observe(Site::TgtEmb, Data::F32(x));
        for (l, layer) in self.dec[..c.n_dec].iter().enumerate() {
            let at = |b, p| site(true, l, b, p);
            let base = l * stride;
            pre(nf, &layer.ln1, x, h, at(Block::SelfAttn, Point::Norm), obs);
            layer.sa.q.forward(h, q);
            obs.observe(at(Block::SelfAttn, Point::Q), Data::F32(q));
            let kc = &mut st.self_k[base..base + (pos + 1) * d];
            layer.sa.k.forward(h, &mut kc[pos * d..]);
            obs.observe(at(Block::SelfAttn, Point::K), Data::F32(&kc[pos * d..]));
            let vc = &mut st.self_v[base..base + (pos + 1) * d];
            layer.sa.v.forward(h, &mut vc[pos * d..]);
            obs.observe(at(Block::SelfAttn, Point::V), Data::F32(&vc[pos * d..]));
            attend(c.nhead, d, q, kc, vc, pos + 1, |_| pos + 1, st.scores, ctx);
            obs.observe(at(Block::SelfAttn, Point::Ctx), Data::F32(ctx));
            layer.sa.o.forward(ctx, a);
            obs.observe(at(Block::SelfAttn, Point::Out), Data::F32(a));
            post(nf, &layer.ln1, x, a, h, at(Block::SelfAttn, Point::Sum), at(Block::SelfAttn, Point::Norm), obs);

            pre(nf, &layer.ln2, x, h, at(Block::CrossAttn, Point::Norm), obs);
            layer.ca.q.forward(h, q);
            obs.observe(at(Block::CrossAttn, Point::Q), Data::F32(q));
            let n = st.src_len;
            attend(c.nhead, d, q, &st.cross_k[base..base + n * d], &st.cross_v[base..base + n * d], n, |_| n, st.scores, ctx);
            obs.observe(at(Block::CrossAttn, Point::Ctx), Data::F32(ctx));
            layer.ca.o.forward(ctx, a);
            obs.observe(at(Block::CrossAttn, Point::Out), Data::F32(a));
            post(nf, &layer.ln2, x, a, h, at(Block::CrossAttn, Point::Sum), at(Block::CrossAttn, Point::Norm), obs);

            pre(nf, &layer.ln3, x, h, at(Block::FeedForward, Point::Norm), obs);
            ffn(&layer.ff1, &layer.ff2, c.gelu(), h, ff, a, |p| at(Block::FeedForward, p), obs);
            post(nf, &layer.ln3, x, a, h, at(Block::FeedForward, Point::Sum), at(Block::FeedForward, Point::Norm), obs);
        }
        self.dec_norm.forward(x, h);
        obs.observe(Site::DecNorm, Data::F32(h));
        self.generator.forward(h, st.logits);
        obs.observe(Site::Logits, Data::F32(st.logits));
        Ok(())
    }

    /// Greedy decoding after [`FloatModel::encode`]; returns the ids written (eos included).
    /// A full `out` stops decoding with [`Error::OutputFull`].
    pub fn greedy(&self, st: &mut FloatState<'_>, out: &mut [u16]) -> Result<usize, Error> {
        let c = &self.config;
        let mut last = c.bos;
        let mut n = 0;
        for pos in 0..c.max_len - 1 {
            let capacity = out.len();
            let slot = out.get_mut(n).ok_or(Error::OutputFull { capacity })?;
            self.decode_step(last, pos, st, &mut NoObserver)?;
            let mut best = 0;
            for (i, &v) in st.logits.iter().enumerate() {
                if v > st.logits[best] {
                    best = i;
                }
            }
            *slot = best as u16;
            n += 1;
            last = best as u16;
            if last == c.eos {
                break;
            }
        }
        Ok(n)
    }
}
