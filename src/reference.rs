//! The f32 reference forward pass (feature `reference`): the same model kinds, stacks and
//! sublayers as the int8 path ([`crate::forward`], whose names it uses), in float, reporting
//! the same [`Site`]s. The converter uses it to check the weight mapping against PyTorch and to
//! calibrate activation scales; a board with an FPU can run it beside the int8 model. The int8
//! path never calls it.
//!
//! A [`FloatModel`] is views into the caller's f32 weights (PyTorch layout, `(out, in)`);
//! [`FloatState::new`] checks every view's length against the config once, so the passes index
//! freely.

use crate::arena::Arena;
use crate::blob::{ActKind, Config, InputKind, ModelKind, PosKind, Stack, MAX_LAYERS};
use crate::observe::{Block, Data, NoObserver, Observer, Point, Site};
use crate::Error;

/// `y = x · wᵀ + b`, `w` `(n, k)`, `b` `(n,)`.
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

    fn fits(&self, n: usize, k: usize) -> bool {
        self.k == k && self.b.len() == n && self.w.len() == n * k
    }
}

/// LayerNorm (`b` as long as `g`; zeros for one without bias), or RMSNorm (`rms`, `b` unused).
#[derive(Debug, Clone, Copy, Default)]
pub struct FNorm<'a> {
    pub g: &'a [f32],
    pub b: &'a [f32],
    pub eps: f32,
    pub rms: bool,
}

impl FNorm<'_> {
    pub fn forward(&self, x: &[f32], y: &mut [f32]) {
        let d = self.g.len();
        if d == 0 {
            return;
        }
        for (xr, yr) in x.chunks_exact(d).zip(y.chunks_exact_mut(d)) {
            if self.rms {
                let ms = xr.iter().map(|v| v * v).sum::<f32>() / d as f32;
                let inv = 1.0 / libm::sqrtf(ms + self.eps);
                for ((yj, &xj), &g) in yr.iter_mut().zip(xr).zip(self.g) {
                    *yj = xj * inv * g;
                }
            } else {
                let mean = xr.iter().sum::<f32>() / d as f32;
                let var = xr.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / d as f32;
                let inv = 1.0 / libm::sqrtf(var + self.eps);
                for (((yj, &xj), &g), &b) in yr.iter_mut().zip(xr).zip(self.g).zip(self.b) {
                    *yj = (xj - mean) * inv * g + b;
                }
            }
        }
    }

    fn fits(&self, d: usize) -> bool {
        self.g.len() == d && (self.rms || self.b.len() == d)
    }
}

/// Self- or cross-attention: `q`, `o` `(d, d)`; `k`, `v` `(kv_width, d)`.
#[derive(Debug, Clone, Copy, Default)]
pub struct FAttention<'a> {
    pub q: FLinear<'a>,
    pub k: FLinear<'a>,
    pub v: FLinear<'a>,
    pub o: FLinear<'a>,
}

/// `down(act(up(x)))`, or with SwiGLU `down(silu(gate(x)) · up(x))`.
#[derive(Debug, Clone, Copy, Default)]
pub struct FFeedForward<'a> {
    pub up: FLinear<'a>,
    pub gate: FLinear<'a>,
    pub down: FLinear<'a>,
}

/// A norm and its sublayer.
#[derive(Debug, Clone, Copy, Default)]
pub struct FSublayer<'a, T> {
    pub norm: FNorm<'a>,
    pub op: T,
}

/// One layer; `cross` only in the encoder-decoder's decoder.
#[derive(Debug, Clone, Copy, Default)]
pub struct FLayer<'a> {
    pub attn: FSublayer<'a, FAttention<'a>>,
    pub cross: FSublayer<'a, FAttention<'a>>,
    pub ffn: FSublayer<'a, FFeedForward<'a>>,
}

/// A float model: views into the caller's f32 weights.
#[derive(Debug, Clone, Default)]
pub struct FloatModel<'a> {
    /// Shapes, kind and blocks; the tokenizer fields are unused here.
    pub config: Config,
    /// Multiply token embeddings by √d.
    pub scale_embedding: bool,
    /// RoPE base.
    pub rope_theta: f64,
    /// `(vocab, d)` token tables of the encoder's and the decoder's side (equal when tied).
    pub source: &'a [f32],
    pub target: &'a [f32],
    /// Feature input: `(d, n_features)`.
    pub input_proj: FLinear<'a>,
    /// `(max_len, d)` learned positions (`PosKind::Learned`).
    pub positions: &'a [f32],
    /// The encoder's layers, then the decoder's.
    pub layers: [FLayer<'a>; MAX_LAYERS],
    pub enc_norm: Option<FNorm<'a>>,
    pub dec_norm: Option<FNorm<'a>>,
    /// Encoder-only, `FLAG_EMBED_NORM`: the norm over the input rows.
    pub embed_norm: Option<FNorm<'a>>,
    /// Encoder-only, `FLAG_POOLER`: `(d, d)`, through tanh before the head.
    pub pooler: Option<FLinear<'a>>,
    /// `(outputs, d)` with `(outputs,)` bias: logits, or the encoder-only head.
    pub output: FLinear<'a>,
}

/// The interleaved sinusoidal table entry: `sin(p / 10000^(2i/d))` at `j = 2i`, `cos` at `2i+1`.
pub fn sinusoid(p: usize, j: usize, d: usize) -> f32 {
    let i2 = (j & !1) as f64;
    let angle = p as f64 * libm::exp(-(i2 * libm::log(10000.0) / d as f64));
    (if j % 2 == 0 { libm::sin(angle) } else { libm::cos(angle) }) as f32
}

/// `(cos θ, sin θ)` of rotary pair `i` (`< d_head / 2`) at position `p`: `θ = p · base^(−2i/d_head)`,
/// in `f64`.
pub fn rope_angle(p: usize, i: usize, d_head: usize, base: f64) -> (f64, f64) {
    let theta = p as f64 * libm::pow(base, -(2.0 * i as f64) / d_head as f64);
    (libm::cos(theta), libm::sin(theta))
}

/// PyTorch's exact (erf) GELU.
pub fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + libm::erff(x * core::f32::consts::FRAC_1_SQRT_2))
}

/// The tanh approximation of GELU (PyTorch's `approximate="tanh"`).
pub fn gelu_tanh(x: f32) -> f32 {
    0.5 * x * (1.0 + libm::tanhf(0.797_884_6 * (x + 0.044715 * x * x * x)))
}

/// SiLU, `x · σ(x)`.
pub fn silu(x: f32) -> f32 {
    x / (1.0 + libm::expf(-x))
}

/// The activation of a non-gated FFN (or SwiGLU's gate).
pub fn activation(act: ActKind, x: f32) -> f32 {
    match act {
        ActKind::Relu => x.max(0.0),
        ActKind::Gelu => gelu(x),
        ActKind::GeluTanh => gelu_tanh(x),
        ActKind::SwiGlu | ActKind::Silu => silu(x),
    }
}

/// What an encoder reads.
#[derive(Debug, Clone, Copy)]
pub enum FSource<'s> {
    Tokens(&'s [u16]),
    /// `(rows, n_features)` real values.
    Features(&'s [f32]),
}

/// Float activation buffers, carved from a caller's 8-byte-aligned memory like the int8 arena.
pub struct FloatState<'a> {
    x: &'a mut [f32],
    h: &'a mut [f32],
    a: &'a mut [f32],
    ctx: &'a mut [f32],
    q: &'a mut [f32],
    k: &'a mut [f32],
    v: &'a mut [f32],
    ff: &'a mut [f32],
    gate: &'a mut [f32],
    scores: &'a mut [f32],
    cross_k: &'a mut [f32],
    cross_v: &'a mut [f32],
    self_k: &'a mut [f32],
    self_v: &'a mut [f32],
    logits: &'a mut [f32],
    pooled: &'a mut [f32],
    /// Rows of the last encoder pass (0: none).
    src_len: usize,
}

fn carve<'a>(c: &Config, a: &mut Arena<'a>) -> Result<FloatState<'a>, Error> {
    let (s, d, l, kv) = (c.max_len, c.d_model, c.n_dec, c.kv_width());
    Ok(FloatState {
        x: a.take("x", s * d)?,
        h: a.take("h", s * d)?,
        a: a.take("a", s * d)?,
        ctx: a.take("ctx", s * d)?,
        q: a.take("q", s * d)?,
        k: a.take("k", s * kv)?,
        v: a.take("v", s * kv)?,
        ff: a.take("ff", s * c.d_ff)?,
        gate: a.take("gate", s * c.d_ff)?,
        scores: a.take("scores", s)?,
        cross_k: a.take("cross_k", l * s * kv)?,
        cross_v: a.take("cross_v", l * s * kv)?,
        self_k: a.take("self_k", l * s * kv)?,
        self_v: a.take("self_v", l * s * kv)?,
        logits: a.take("logits", c.outputs())?,
        pooled: a.take("pooled", d)?,
        src_len: 0,
    })
}

impl<'a> FloatState<'a> {
    /// Bytes of memory a float state for `c` needs; `c` must pass `Config::validate`.
    pub fn bytes(c: &Config) -> Result<usize, Error> {
        c.validate()?;
        let mut a = Arena::dry();
        carve(c, &mut a)?;
        Ok(a.used())
    }

    /// Carve a state for `m` from `mem` (8-byte aligned, at least [`FloatState::bytes`]), after
    /// checking every view of `m` against its config.
    pub fn new(m: &FloatModel<'_>, mem: &'a mut [u8]) -> Result<Self, Error> {
        let needed = Self::bytes(&m.config)?;
        m.check()?;
        if mem.len() < needed {
            return Err(Error::ArenaTooSmall { needed, got: mem.len() });
        }
        carve(&m.config, &mut Arena::new(mem)?)
    }

    /// The last decoder step's `(vocab,)` logits, or the encoder-only head's outputs.
    pub fn logits(&self) -> &[f32] {
        self.logits
    }
}

fn site(stack: Stack, layer: usize, block: Block, point: Point) -> Site {
    let layer = layer as u8;
    match stack {
        Stack::Encoder => Site::Enc { layer, block, point },
        Stack::Decoder => Site::Dec { layer, block, point },
    }
}

/// Where a stack's self-attention keys live.
#[derive(Clone, Copy)]
enum Keys {
    /// An encoder's own rows, in both directions.
    Own,
    /// The decoder's cache, causal.
    Cache,
}

/// Scaled dot-product attention of `rows` queries over `n` keys (`kv_width` apart) with
/// grouped heads; query row `r` sees keys `j < limit(r)`.
#[allow(clippy::too_many_arguments)]
fn attention(c: &Config, q: &[f32], k: &[f32], v: &[f32], n: usize, limit: impl Fn(usize) -> usize, scores: &mut [f32], out: &mut [f32]) {
    let (d, dh, kw) = (c.d_model, c.d_head(), c.kv_width());
    let group = c.nhead / c.n_kv_heads.max(1);
    let scale = 1.0 / libm::sqrtf(dh as f32);
    for (r, (qr, or)) in q.chunks_exact(d).zip(out.chunks_exact_mut(d)).enumerate() {
        let valid = limit(r).min(n);
        for h in 0..c.nhead {
            let (off, kv_off) = (h * dh, (h / group) * dh);
            let s = &mut scores[..valid];
            for (j, sj) in s.iter_mut().enumerate() {
                let kj = &k[j * kw + kv_off..j * kw + kv_off + dh];
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
                    acc += p * v[j * kw + kv_off + i];
                }
                or[off + i] = if valid == 0 { 0.0 } else { acc / sum };
            }
        }
    }
}

impl FloatModel<'_> {
    /// The layers of one stack.
    pub fn layers(&self, s: Stack) -> &[FLayer<'_>] {
        let c = &self.config;
        match s {
            Stack::Encoder => &self.layers[..c.n_enc.min(MAX_LAYERS)],
            Stack::Decoder => &self.layers[c.n_enc.min(MAX_LAYERS)..(c.n_enc + c.n_dec).min(MAX_LAYERS)],
        }
    }

    /// Every view has the length the config calls for: the forward passes index them freely.
    pub fn check(&self) -> Result<(), Error> {
        let c = &self.config;
        c.validate()?;
        let (d, f, v, kw) = (c.d_model, c.d_ff, c.vocab, c.kv_width());
        let bad = |field| Err(Error::BadConfig { field });
        let attn = |a: &FAttention<'_>| a.q.fits(d, d) && a.k.fits(kw, d) && a.v.fits(kw, d) && a.o.fits(d, d);
        let swiglu = c.act == ActKind::SwiGlu;
        let ffn = |x: &FFeedForward<'_>| x.up.fits(f, d) && x.down.fits(d, f) && (!swiglu || x.gate.fits(f, d));
        match c.input {
            InputKind::Tokens if c.kind != ModelKind::DecoderOnly && self.source.len() != v * d => return bad("embeddings"),
            InputKind::Features if !self.input_proj.fits(d, c.n_features) => return bad("input_proj"),
            _ => {}
        }
        if c.kind != ModelKind::EncoderOnly && self.target.len() != v * d {
            return bad("embeddings");
        }
        if c.positions == PosKind::Learned && self.positions.len() != c.max_len * d {
            return bad("positions");
        }
        if !self.output.fits(c.outputs(), d) {
            return bad("output");
        }
        for n in [&self.enc_norm, &self.dec_norm].into_iter().flatten() {
            if !n.fits(d) {
                return bad("final norms");
            }
        }
        if c.embed_norm() != self.embed_norm.as_ref().is_some_and(|n| n.fits(d)) {
            return bad("embed_norm");
        }
        if c.pooler() != self.pooler.as_ref().is_some_and(|p| p.fits(d, d)) {
            return bad("pooler");
        }
        for (stack, field) in [(Stack::Encoder, "encoder layer"), (Stack::Decoder, "decoder layer")] {
            let cross = stack == Stack::Decoder && c.kind == ModelKind::EncoderDecoder;
            for l in self.layers(stack) {
                let ok = attn(&l.attn.op) && l.attn.norm.fits(d) && ffn(&l.ffn.op) && l.ffn.norm.fits(d) && (!cross || (attn(&l.cross.op) && l.cross.norm.fits(d)));
                if !ok {
                    return bad(field);
                }
            }
        }
        Ok(())
    }

    fn emb_scale(&self) -> f32 {
        if self.scale_embedding {
            libm::sqrtf(self.config.d_model as f32)
        } else {
            1.0
        }
    }

    /// The added position of entry `j` at position `p` (0 without added positions).
    fn position(&self, p: usize, j: usize) -> f32 {
        let d = self.config.d_model;
        match self.config.positions {
            PosKind::Sinusoidal => sinusoid(p, j, d),
            PosKind::Learned => self.positions[p * d + j],
            PosKind::None | PosKind::Rope => 0.0,
        }
    }

    /// Rotate each head of `x` (`(rows, heads · d_head)`, positions `pos0..`) in place.
    fn rope(&self, x: &mut [f32], heads: usize, pos0: usize) {
        let dh = self.config.d_head();
        let half = dh / 2;
        for (r, xr) in x.chunks_exact_mut(heads * dh).enumerate() {
            for xh in xr.chunks_exact_mut(dh) {
                for i in 0..half {
                    let (c, s) = rope_angle(pos0 + r, i, dh, self.rope_theta);
                    let (c, s) = (c as f32, s as f32);
                    let (a, b) = (xh[i], xh[i + half]);
                    xh[i] = a * c - b * s;
                    xh[i + half] = b * c + a * s;
                }
            }
        }
    }

    /// [`FloatModel::check`], and `st` is large enough for this model (a state carved for
    /// another model may not be).
    fn ready(&self, st: &FloatState<'_>) -> Result<(), Error> {
        self.check()?;
        let c = &self.config;
        let (s, d, kw) = (c.max_len, c.d_model, c.kv_width());
        let ok = st.x.len() >= s * d && st.k.len() >= s * kw && st.ff.len() >= s * c.d_ff && st.cross_k.len() >= c.n_dec * s * kw && st.self_k.len() >= c.n_dec * s * kw && st.logits.len() == c.outputs() && st.pooled.len() == d;
        if ok {
            Ok(())
        } else {
            Err(Error::BadConfig { field: "float state" })
        }
    }

    fn check_ids(&self, ids: &[u16]) -> Result<(), Error> {
        let vocab = self.config.vocab;
        match ids.iter().find(|&&id| id as usize >= vocab) {
            Some(&id) => Err(Error::TokenOutOfRange { id: id as u32, vocab: vocab as u32 }),
            None => Ok(()),
        }
    }

    /// The encoder's input rows into `st.x`: token embeddings, or projected features, plus
    /// positions.
    fn embed_source<O: Observer>(&self, src: FSource<'_>, st: &mut FloatState<'_>, obs: &mut O) -> Result<usize, Error> {
        let c = &self.config;
        let d = c.d_model;
        let rows = match src {
            FSource::Tokens(ids) => {
                if !c.tokens() {
                    return Err(Error::WrongInput);
                }
                self.check_ids(ids)?;
                ids.len()
            }
            FSource::Features(f) => {
                if c.tokens() {
                    return Err(Error::WrongInput);
                }
                if f.len() % c.n_features != 0 {
                    return Err(Error::BadFeatureCount { len: f.len(), per_frame: c.n_features });
                }
                f.len() / c.n_features
            }
        };
        if rows == 0 {
            return Err(Error::EmptyInput);
        }
        if rows > c.max_len {
            return Err(Error::InputTooLong { len: rows, max: c.max_len });
        }
        let x = &mut st.x[..rows * d];
        match src {
            FSource::Tokens(ids) => {
                for (p, (&id, xr)) in ids.iter().zip(x.chunks_exact_mut(d)).enumerate() {
                    for (j, xj) in xr.iter_mut().enumerate() {
                        *xj = self.source[id as usize * d + j] * self.emb_scale() + self.position(p, j);
                    }
                }
            }
            FSource::Features(f) => {
                self.input_proj.forward(f, x);
                for (p, xr) in x.chunks_exact_mut(d).enumerate() {
                    for (j, xj) in xr.iter_mut().enumerate() {
                        *xj += self.position(p, j);
                    }
                }
            }
        }
        obs.observe(Site::SrcEmb, Data::F32(x));
        if let Some(n) = &self.embed_norm {
            let h = &mut st.h[..rows * d];
            n.forward(&st.x[..rows * d], h);
            st.x[..rows * d].copy_from_slice(h);
            obs.observe(Site::EmbNorm, Data::F32(&st.x[..rows * d]));
        }
        Ok(rows)
    }

    /// Run the layers of `stack` over rows `0..rows` of `st.x`, leaving the final norm's output
    /// in `st.h`.
    fn run_stack<O: Observer>(&self, stack: Stack, st: &mut FloatState<'_>, rows: usize, pos0: usize, keys: Keys, obs: &mut O) {
        let c = &self.config;
        let (d, pre) = (c.d_model, c.norm_first());
        for (l, layer) in self.layers(stack).iter().enumerate() {
            let at = |b, p| site(stack, l, b, p);
            let sa = &layer.attn;
            self.block_input(pre, &sa.norm, st, rows, at(Block::SelfAttn, Point::Norm), obs);
            self.self_attention(&sa.op, st, rows, pos0, l, keys, |p| at(Block::SelfAttn, p), obs);
            self.block_output(pre, &sa.norm, st, rows, at(Block::SelfAttn, Point::Sum), at(Block::SelfAttn, Point::Norm), obs);
            if stack == Stack::Decoder && c.kind == ModelKind::EncoderDecoder {
                let ca = &layer.cross;
                self.block_input(pre, &ca.norm, st, rows, at(Block::CrossAttn, Point::Norm), obs);
                self.cross_attention(&ca.op, st, rows, l, |p| at(Block::CrossAttn, p), obs);
                self.block_output(pre, &ca.norm, st, rows, at(Block::CrossAttn, Point::Sum), at(Block::CrossAttn, Point::Norm), obs);
            }
            let ff = &layer.ffn;
            self.block_input(pre, &ff.norm, st, rows, at(Block::FeedForward, Point::Norm), obs);
            self.feed_forward(&ff.op, st, rows, |p| at(Block::FeedForward, p), obs);
            self.block_output(pre, &ff.norm, st, rows, at(Block::FeedForward, Point::Sum), at(Block::FeedForward, Point::Norm), obs);
        }
        let (x, h) = (&st.x[..rows * d], &mut st.h[..rows * d]);
        let (norm, point) = match stack {
            Stack::Encoder => (&self.enc_norm, Site::EncNorm),
            Stack::Decoder => (&self.dec_norm, Site::DecNorm),
        };
        match norm {
            Some(n) => n.forward(x, h),
            None => h.copy_from_slice(x),
        }
        obs.observe(point, Data::F32(h));
    }

    fn block_input<O: Observer>(&self, pre: bool, norm: &FNorm<'_>, st: &mut FloatState<'_>, rows: usize, s: Site, obs: &mut O) {
        let n = rows * self.config.d_model;
        let (x, h) = (&st.x[..n], &mut st.h[..n]);
        if pre {
            norm.forward(x, h);
            obs.observe(s, Data::F32(h));
        } else {
            h.copy_from_slice(x);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn block_output<O: Observer>(&self, pre: bool, norm: &FNorm<'_>, st: &mut FloatState<'_>, rows: usize, sum: Site, normed: Site, obs: &mut O) {
        let n = rows * self.config.d_model;
        let (x, a, h) = (&mut st.x[..n], &st.a[..n], &mut st.h[..n]);
        x.iter_mut().zip(a).for_each(|(x, a)| *x += a);
        obs.observe(sum, Data::F32(x));
        if !pre {
            norm.forward(x, h);
            x.copy_from_slice(h);
            obs.observe(normed, Data::F32(x));
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn self_attention<O: Observer>(&self, at: &FAttention<'_>, st: &mut FloatState<'_>, rows: usize, pos0: usize, layer: usize, keys: Keys, name: impl Fn(Point) -> Site, obs: &mut O) {
        let c = &self.config;
        let (d, kw, s) = (c.d_model, c.kv_width(), c.max_len);
        let rope = c.positions == PosKind::Rope;
        let h = &st.h[..rows * d];
        let q = &mut st.q[..rows * d];
        at.q.forward(h, q);
        if rope {
            obs.observe(name(Point::QPre), Data::F32(q));
            self.rope(q, c.nhead, pos0);
        }
        obs.observe(name(Point::Q), Data::F32(q));
        let (kc, vc, end): (&mut [f32], &mut [f32], usize) = match keys {
            Keys::Own => (&mut st.k[..rows * kw], &mut st.v[..rows * kw], rows),
            Keys::Cache => {
                let base = layer * s * kw;
                (&mut st.self_k[base..base + (pos0 + rows) * kw], &mut st.self_v[base..base + (pos0 + rows) * kw], pos0 + rows)
            }
        };
        let first = (end - rows) * kw;
        let k_new = &mut kc[first..];
        at.k.forward(h, k_new);
        if rope {
            obs.observe(name(Point::KPre), Data::F32(k_new));
            self.rope(k_new, c.n_kv_heads, pos0);
        }
        obs.observe(name(Point::K), Data::F32(k_new));
        let v_new = &mut vc[first..];
        at.v.forward(h, v_new);
        obs.observe(name(Point::V), Data::F32(v_new));
        let ctx = &mut st.ctx[..rows * d];
        match keys {
            Keys::Own => attention(c, q, kc, vc, end, |_| end, st.scores, ctx),
            Keys::Cache => attention(c, q, kc, vc, end, |r| pos0 + r + 1, st.scores, ctx),
        }
        obs.observe(name(Point::Ctx), Data::F32(ctx));
        at.o.forward(ctx, &mut st.a[..rows * d]);
        obs.observe(name(Point::Out), Data::F32(&st.a[..rows * d]));
    }

    fn cross_attention<O: Observer>(&self, at: &FAttention<'_>, st: &mut FloatState<'_>, rows: usize, layer: usize, name: impl Fn(Point) -> Site, obs: &mut O) {
        let c = &self.config;
        let (d, kw, s, n) = (c.d_model, c.kv_width(), c.max_len, st.src_len);
        let q = &mut st.q[..rows * d];
        at.q.forward(&st.h[..rows * d], q);
        obs.observe(name(Point::Q), Data::F32(q));
        let base = layer * s * kw;
        let ctx = &mut st.ctx[..rows * d];
        attention(c, q, &st.cross_k[base..base + n * kw], &st.cross_v[base..base + n * kw], n, |_| n, st.scores, ctx);
        obs.observe(name(Point::Ctx), Data::F32(ctx));
        at.o.forward(ctx, &mut st.a[..rows * d]);
        obs.observe(name(Point::Out), Data::F32(&st.a[..rows * d]));
    }

    fn feed_forward<O: Observer>(&self, f: &FFeedForward<'_>, st: &mut FloatState<'_>, rows: usize, at: impl Fn(Point) -> Site, obs: &mut O) {
        let c = &self.config;
        let (d, fd) = (c.d_model, c.d_ff);
        let h = &st.h[..rows * d];
        let ff = &mut st.ff[..rows * fd];
        if c.act == ActKind::SwiGlu {
            let g = &mut st.gate[..rows * fd];
            f.gate.forward(h, g);
            obs.observe(at(Point::PreAct), Data::F32(g));
            g.iter_mut().for_each(|v| *v = silu(*v));
            obs.observe(at(Point::Gate), Data::F32(g));
            f.up.forward(h, ff);
            obs.observe(at(Point::Up), Data::F32(ff));
            ff.iter_mut().zip(g.iter()).for_each(|(u, g)| *u *= g);
        } else {
            f.up.forward(h, ff);
            obs.observe(at(Point::PreAct), Data::F32(ff));
            ff.iter_mut().for_each(|v| *v = activation(c.act, *v));
        }
        obs.observe(at(Point::Hidden), Data::F32(ff));
        f.down.forward(ff, &mut st.a[..rows * d]);
        obs.observe(at(Point::Out), Data::F32(&st.a[..rows * d]));
    }

    /// Encode `src` (encoder-decoder: ids, `1..=max_len` of them) into the memory and each
    /// decoder layer's cross K/V; encoder-only: the final norm's output (see
    /// [`FloatModel::classify`]).
    pub fn encode<O: Observer>(&self, src: &[u16], st: &mut FloatState<'_>, obs: &mut O) -> Result<(), Error> {
        self.encode_source(FSource::Tokens(src), st, obs)
    }

    /// [`FloatModel::encode`] of tokens or features.
    pub fn encode_source<O: Observer>(&self, src: FSource<'_>, st: &mut FloatState<'_>, obs: &mut O) -> Result<(), Error> {
        self.ready(st)?;
        let c = &self.config;
        if c.kind == ModelKind::DecoderOnly {
            return Err(Error::WrongModelKind);
        }
        st.src_len = 0;
        let rows = self.embed_source(src, st, obs)?;
        self.run_stack(Stack::Encoder, st, rows, 0, Keys::Own, obs);
        if c.kind == ModelKind::EncoderDecoder {
            let (s, d, kw) = (c.max_len, c.d_model, c.kv_width());
            for (l, layer) in self.layers(Stack::Decoder).iter().enumerate() {
                let h = &st.h[..rows * d];
                let ck = &mut st.cross_k[l * s * kw..l * s * kw + rows * kw];
                layer.cross.op.k.forward(h, ck);
                obs.observe(site(Stack::Decoder, l, Block::CrossAttn, Point::K), Data::F32(ck));
                let cv = &mut st.cross_v[l * s * kw..l * s * kw + rows * kw];
                layer.cross.op.v.forward(h, cv);
                obs.observe(site(Stack::Decoder, l, Block::CrossAttn, Point::V), Data::F32(cv));
            }
        }
        st.src_len = rows;
        Ok(())
    }

    /// Encoder-only: classify `src`, returning the head's outputs.
    pub fn classify<'s, O: Observer>(&self, src: FSource<'_>, st: &'s mut FloatState<'_>, obs: &mut O) -> Result<&'s [f32], Error> {
        if self.config.kind != ModelKind::EncoderOnly {
            return Err(Error::WrongModelKind);
        }
        self.encode_source(src, st, obs)?;
        let (d, n) = (self.config.d_model, st.src_len);
        let h = &st.h[..n * d];
        match self.config.pooling {
            crate::blob::Pooling::First => st.pooled.copy_from_slice(&h[..d]),
            crate::blob::Pooling::Mean => {
                for j in 0..d {
                    st.pooled[j] = (0..n).map(|r| h[r * d + j]).sum::<f32>() / n as f32;
                }
            }
        }
        obs.observe(Site::Pooled, Data::F32(st.pooled));
        if let Some(p) = &self.pooler {
            let y = &mut st.a[..d];
            p.forward(st.pooled, y);
            obs.observe(Site::PoolerPre, Data::F32(y));
            y.iter_mut().for_each(|v| *v = libm::tanhf(*v));
            obs.observe(Site::Pooler, Data::F32(y));
            self.output.forward(y, st.logits);
            obs.observe(Site::Logits, Data::F32(st.logits));
            return Ok(st.logits);
        }
        self.output.forward(st.pooled, st.logits);
        obs.observe(Site::Logits, Data::F32(st.logits));
        Ok(st.logits)
    }

    /// The encoder output (after the final norm) of the last encode, `(n, d)`.
    pub fn memory<'s>(&self, st: &'s FloatState<'_>) -> &'s [f32] {
        &st.h[..st.src_len * self.config.d_model]
    }

    /// One decoder step: `token` at `pos` (`< max_len`), logits into the state. The
    /// encoder-decoder: call [`FloatModel::encode`] first; decoder-only: feed positions from 0.
    pub fn decode_step<O: Observer>(&self, token: u16, pos: usize, st: &mut FloatState<'_>, obs: &mut O) -> Result<(), Error> {
        self.ready(st)?;
        let c = &self.config;
        if c.kind == ModelKind::EncoderOnly {
            return Err(Error::WrongModelKind);
        }
        if (c.kind == ModelKind::EncoderDecoder && st.src_len == 0) || pos >= c.max_len {
            return Err(Error::DecoderState);
        }
        self.check_ids(&[token])?;
        let d = c.d_model;
        for (j, xj) in st.x[..d].iter_mut().enumerate() {
            *xj = self.target[token as usize * d + j] * self.emb_scale() + self.position(pos, j);
        }
        obs.observe(Site::TgtEmb, Data::F32(&st.x[..d]));
        self.run_stack(Stack::Decoder, st, 1, pos, Keys::Cache, obs);
        self.output.forward(&st.h[..d], st.logits);
        obs.observe(Site::Logits, Data::F32(st.logits));
        Ok(())
    }

    /// Greedy decoding after [`FloatModel::encode`]; returns the ids written (eos included).
    /// A full `out` stops decoding with [`Error::OutputFull`].
    pub fn greedy(&self, st: &mut FloatState<'_>, out: &mut [u16]) -> Result<usize, Error> {
        let c = &self.config;
        self.continue_greedy(c.bos, 0, c.max_len - 1, st, out)
    }

    /// Decoder-only: feed `prompt` from position 0, then up to `max_new` greedy tokens (eos
    /// included when produced; prompt and continuation together at most `max_len`) into `out`.
    pub fn generate(&self, prompt: &[u16], max_new: usize, st: &mut FloatState<'_>, out: &mut [u16]) -> Result<usize, Error> {
        let c = &self.config;
        let Some((&last, head)) = prompt.split_last() else {
            return Err(Error::EmptyInput);
        };
        if prompt.len() >= c.max_len {
            return Err(Error::InputTooLong { len: prompt.len(), max: c.max_len - 1 });
        }
        for (p, &t) in head.iter().enumerate() {
            self.decode_step(t, p, st, &mut NoObserver)?;
        }
        self.continue_greedy(last, head.len(), max_new.min(c.max_len - prompt.len()), st, out)
    }

    fn continue_greedy(&self, first: u16, pos0: usize, steps: usize, st: &mut FloatState<'_>, out: &mut [u16]) -> Result<usize, Error> {
        let eos = self.config.eos;
        let (mut last, mut n) = (first, 0);
        for pos in pos0..pos0 + steps {
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
            if last == eos {
                break;
            }
        }
        Ok(n)
    }
}
