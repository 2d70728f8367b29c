//! Quantization (DESIGN §3): the f32 model and its activation ranges → the blob's tensors, in
//! the order of `blob::expected_tensors`, for every model kind.
//!
//! Activation types: residual stream, norm outputs, attention contexts and FFN values are
//! `i16`; Q, K, V are `i8` (with RoPE the projections are `i16`, rotated into `i8`); logits and
//! head outputs `i32`. Weights are `i8` per output channel (scaled to the row's max |w| or
//! clipped, [`WeightRule`]), or int4, `-7..=7` per output channel, for the tensors a
//! [`Precision`] plan names; biases `i32` in the accumulator's scale. Every real multiplier
//! becomes a [`Requant`].

use std::collections::{HashMap, HashSet};
use std::f64::consts::LOG2_E;

use anyhow::{bail, Result};
use picoformer::blob::{self, ActKind, Config, DType, FeatureQuant, InputKind, ModelKind, NormKind, NormParams, NormPart, Part, PosKind, Proj, RopeParams, Side, Stack, Sub, Tag, TensorSpec, TokPart, TokenizerSizes};
use picoformer::kernels::activation::TABLE_LEN;
use picoformer::kernels::attention::AttentionParams;
use picoformer::kernels::layout::Layout;
use picoformer::kernels::residual::ResidualParams;
use picoformer::observe::{Block, Point, Site};
use picoformer::quant::Requant;
use picoformer::reference::{activation, rope_angle, sinusoid, FAttention, FFeedForward, FLinear, FNorm, FloatModel};

use crate::calibrate::Ranges;
use crate::gptq::{self, Grams};
use crate::spm::VocabTables;

/// The integer type a site is stored in.
pub fn site_qmax(site: Site) -> f32 {
    match site {
        Site::Enc { point: Point::Q | Point::K | Point::V, .. } | Site::Dec { point: Point::Q | Point::K | Point::V, .. } => 127.0,
        Site::Logits => (1 << 24) as f32,
        _ => 32767.0,
    }
}

fn stack_site(stack: Stack, layer: usize, block: Block, point: Point) -> Site {
    let layer = layer as u8;
    match stack {
        Stack::Encoder => Site::Enc { layer, block, point },
        Stack::Decoder => Site::Dec { layer, block, point },
    }
}

/// Scale of every site: `max / qmax`, with the tied constraints applied.
#[derive(Debug, Clone)]
pub struct Scales {
    pub s: HashMap<Site, f64>,
}

impl Scales {
    pub fn from_ranges(r: &Ranges, c: &Config) -> Scales {
        let mut s: HashMap<Site, f64> = HashMap::new();
        for (&site, &m) in &r.max {
            s.insert(site, (m.max(1e-6) / site_qmax(site)) as f64);
        }
        // The position table is shared: one scale for both embeddings.
        if c.kind == ModelKind::EncoderDecoder {
            let emb = s.get(&Site::SrcEmb).copied().unwrap_or(1.0).max(s.get(&Site::TgtEmb).copied().unwrap_or(1.0));
            s.insert(Site::SrcEmb, emb);
            s.insert(Site::TgtEmb, emb);
        }
        // ReLU is a clamp: the hidden values keep the pre-activation's scale, which only needs
        // to cover the positive side.
        if c.act == ActKind::Relu {
            let sites: Vec<Site> = s.keys().copied().collect();
            for site in sites {
                let pre = match site {
                    Site::Enc { layer, block, point: Point::Hidden } => Site::Enc { layer, block, point: Point::PreAct },
                    Site::Dec { layer, block, point: Point::Hidden } => Site::Dec { layer, block, point: Point::PreAct },
                    _ => continue,
                };
                let h = s[&site];
                s.insert(pre, h);
            }
        }
        // Without a final norm a stack's output is its stream, and the pooled vector keeps the
        // encoder output's scale (a mean or a row of it).
        let enc_out = s.get(&Site::EncNorm).copied();
        if let Some(e) = enc_out {
            s.insert(Site::Pooled, e);
        }
        // tanh is bounded: its output takes the whole i16 range of [-1, 1]
        if c.pooler() {
            s.insert(Site::Pooler, 1.0 / 32767.0);
        }
        Scales { s }
    }

    /// Logits are `i32`, so their scale is free. Make it at least `4.01 · s_in · max_c s_w,c`,
    /// so that every output channel's multiplier `s_in · s_w,c / s_logit` is below 1/4 (shift
    /// ≥ 33): the output projection then takes the kernels' fused requantization
    /// (`Requant::apply32`, `SMMLA` on Cortex-M4, `mulh` on RV32) instead of the 64-bit one.
    /// The logits keep more than 2^20 steps across their calibrated range.
    pub fn fit_logits(&mut self, fm: &FloatModel<'_>, weights: WeightRule, output_int4: bool) -> Result<()> {
        let c = &fm.config;
        let sw = quantize_rows_to(fm.output.w, c.d_model, if output_int4 { INT4_MAX } else { INT8_MAX }, weights).scales;
        let input = if c.token_output() {
            Site::DecNorm
        } else if c.pooler() {
            Site::Pooler
        } else {
            Site::Pooled
        };
        let floor = 4.01 * self.get(input)? * sw.iter().fold(0f64, |m, &s| m.max(s));
        let s = self.s.entry(Site::Logits).or_insert(floor);
        *s = s.max(floor);
        Ok(())
    }

    pub fn get(&self, site: Site) -> Result<f64> {
        match self.s.get(&site) {
            Some(&v) => Ok(v),
            None => bail!("no calibration range for site {site}"),
        }
    }

    fn set(&mut self, site: Site, v: f64) {
        self.s.insert(site, v);
    }
}

/// An owned tensor: spec and little-endian bytes.
pub struct Tensor {
    pub spec: TensorSpec,
    pub layout: Layout,
    pub data: Vec<u8>,
}

/// The quantized model: the scale of every site, and every blob tensor in blob order.
pub struct Quantized {
    pub scales: Scales,
    pub tensors: Vec<Tensor>,
}

/// How a feature input's values were quantized: per feature, `q = round(x / s) + zp`.
#[derive(Debug, Clone, Default)]
pub struct FeatureScales {
    pub scale: Vec<f64>,
    pub zero_point: Vec<i32>,
}

impl FeatureScales {
    /// From each feature's calibrated `[min, max]`: the `i16` range covers it, the zero point
    /// puts its middle at 0.
    pub fn from_ranges(lo: &[f32], hi: &[f32]) -> FeatureScales {
        let mut f = FeatureScales::default();
        for (&a, &b) in lo.iter().zip(hi) {
            let (a, b) = (a.min(0.0) as f64, b.max(0.0) as f64);
            let s = ((b - a) / 65535.0).max(1e-12);
            f.scale.push(s);
            f.zero_point.push((-(a + b) / 2.0 / s).round().clamp(-32768.0, 32767.0) as i32);
        }
        f
    }

    /// The `i16` of real value `x` for feature `j`.
    pub fn quantize(&self, j: usize, x: f32) -> i16 {
        ((x as f64 / self.scale[j]).round() + self.zero_point[j] as f64).clamp(-32768.0, 32767.0) as i16
    }
}

/// The weight matrices stored int4 (by their weight tag: `Tag::Embedding`, a linear's or the
/// output's `Part::Weight`); every other weight is int8. A tied output projection takes its
/// table's precision.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Precision {
    pub int4: HashSet<Tag>,
}

impl Precision {
    /// The tag whose precision the output projection has (its table's, when tied).
    pub fn output_tag(c: &Config) -> Tag {
        match (c.tied(), c.kind) {
            (true, ModelKind::EncoderDecoder) => Tag::Embedding(Side::Source),
            (true, _) => Tag::Embedding(Side::Target),
            (false, _) => Tag::Output(Part::Weight),
        }
    }
}

/// Largest magnitude of an int8 and of an int4 weight (symmetric).
pub const INT8_MAX: f64 = 127.0;
pub const INT4_MAX: f64 = 7.0;

/// Scales from the calibrated ranges (the logit scale fitted to the output projection), then
/// every tensor, all weights int8, scaled by `weights`.
pub fn quantize(fm: &FloatModel<'_>, ranges: &Ranges, weights: WeightRule, vocab: Option<&VocabTables>, features: Option<&FeatureScales>) -> Result<Quantized> {
    quantize_with(fm, ranges, weights, vocab, features, &Precision::default())
}

/// [`quantize`] with the weight matrices `p` names in int4.
pub fn quantize_with(fm: &FloatModel<'_>, ranges: &Ranges, weights: WeightRule, vocab: Option<&VocabTables>, features: Option<&FeatureScales>, p: &Precision) -> Result<Quantized> {
    let c = fm.config;
    let mut scales = Scales::from_ranges(ranges, &c);
    // a stack without a final norm hands on its stream unchanged
    if !c.final_norm() {
        for (stack, site) in [(Stack::Encoder, Site::EncNorm), (Stack::Decoder, Site::DecNorm)] {
            let n = c.layers(stack);
            if n > 0 {
                let last = stack_site(stack, n - 1, Block::FeedForward, if c.norm_first() { Point::Sum } else { Point::Norm });
                let s = scales.get(last)?;
                scales.set(site, s);
                if stack == Stack::Encoder {
                    scales.set(Site::Pooled, s);
                }
            }
        }
    }
    scales.fit_logits(fm, weights, p.int4.contains(&Precision::output_tag(&c)))?;
    let mut b = Builder::new(fm, &scales, weights);
    b.int4 = p.int4.clone();
    if weights == WeightRule::Gptq {
        b.grams = Some(&ranges.grams);
    }
    let tensors = b.build(vocab, features)?;
    Ok(Quantized { scales, tensors })
}

impl Quantized {
    /// Serialize the tensors into a blob.
    pub fn blob(&self, c: &Config) -> Result<Vec<u8>> {
        let refs: Vec<blob::TensorData<'_>> = self.tensors.iter().map(|t| blob::TensorData { spec: t.spec, layout: t.layout.code(), data: &t.data }).collect();
        let mut out = vec![0u8; blob::blob_len(&refs)];
        let n = blob::write(c, &refs, &mut out).map_err(|e| anyhow::anyhow!("writing blob: {e}"))?;
        out.truncate(n);
        Ok(out)
    }

    /// Tensor bytes of the tokenizer vocabulary.
    pub fn vocab_bytes(&self) -> usize {
        self.tensors.iter().filter(|t| matches!(t.spec.tag, Tag::Tokenizer(_))).map(|t| t.data.len()).sum()
    }

    /// Tensor bytes of everything else: weights and quantization parameters.
    pub fn weight_bytes(&self) -> usize {
        self.tensors.iter().filter(|t| !matches!(t.spec.tag, Tag::Tokenizer(_))).map(|t| t.data.len()).sum()
    }
}

fn le<T: bytemuck::Pod>(v: &[T]) -> Vec<u8> {
    bytemuck::cast_slice(v).to_vec()
}

/// A `(n, k)` matrix in symmetric int8, one scale per row: `w[o][j] ≈ q[o][j] · scales[o]`.
pub struct Rows {
    /// `(n, k)` row-major.
    pub q: Vec<i8>,
    /// `(n,)`.
    pub scales: Vec<f64>,
}

/// How a weight row's scale is chosen (`convert --weights`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum WeightRule {
    /// The row's max |w| is ±127.
    #[default]
    Max,
    /// The row is clipped where its quantization error is least ([`mse_row_clip`]). Measured
    /// on de-en: no better than `Max` on held-out sentences, so not the default.
    Mse,
    /// `Max`'s scales, the values rounded by GPTQ against each linear's calibration inputs
    /// ([`crate::gptq`]).
    Gptq,
}

impl std::str::FromStr for WeightRule {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "max" => Ok(WeightRule::Max),
            "mse" => Ok(WeightRule::Mse),
            "gptq" => Ok(WeightRule::Gptq),
            _ => Err(format!("{s:?}: expected max, mse or gptq")),
        }
    }
}

/// Symmetric per-row int8 of a row-major matrix with rows of `k`, scaled by `rule`.
pub fn quantize_rows(w: &[f32], k: usize, rule: WeightRule) -> Rows {
    quantize_rows_to(w, k, INT8_MAX, rule)
}

/// Symmetric per-row quantization to `-qmax..=qmax` ([`INT8_MAX`] or [`INT4_MAX`]). int8 rows
/// take the scale `max |w| / qmax` (or `rule`'s clip); int4 rows the clipped scale
/// `α · max |w| / qmax`, `α ∈ {1, 0.95, …, 0.5}`, with the least squared error on the row.
pub fn quantize_rows_to(w: &[f32], k: usize, qmax: f64, rule: WeightRule) -> Rows {
    let mut q = Vec::with_capacity(w.len());
    let mut scales = Vec::new();
    let err = |row: &[f32], s: f64| row.iter().map(|&x| (x as f64 - (x as f64 / s).round().clamp(-qmax, qmax) * s).powi(2)).sum::<f64>();
    for row in w.chunks_exact(k) {
        let m = row.iter().fold(0f32, |m, x| m.max(x.abs())) as f64;
        let m = if qmax > INT4_MAX && rule == WeightRule::Mse && m > 0.0 { mse_row_clip(row, m) } else { m };
        let mut s = if m > 0.0 { m / qmax } else { 1.0 };
        if qmax <= INT4_MAX && m > 0.0 {
            let best = (0..=10).map(|i| 1.0 - 0.05 * i as f64).map(|a| (err(row, a * m / qmax), a)).fold((f64::MAX, 1.0), |b, c| if c.0 < b.0 { c } else { b });
            s = best.1 * m / qmax;
        }
        scales.push(s);
        q.extend(row.iter().map(|&x| (x as f64 / s).round().clamp(-qmax, qmax) as i8));
    }
    Rows { q, scales }
}

/// The clip point of one row, a percent of its max |w| (50..=100), of least squared error.
pub fn mse_row_clip(row: &[f32], max: f64) -> f64 {
    let mut best = (f64::MAX, max);
    for pct in (50..=100).rev() {
        let c = max * pct as f64 / 100.0;
        let s = c / 127.0;
        let e: f64 = row
            .iter()
            .map(|&x| {
                let x = x as f64;
                let d = x - (x / s).round().clamp(-127.0, 127.0) * s;
                d * d
            })
            .sum();
        if e < best.0 {
            best = (e, c);
        }
    }
    best.1
}

/// `y = (a·ma + b·mb) >> shift` with real multipliers `ra`, `rb`.
fn residual(ra: f64, rb: f64) -> ResidualParams {
    let big = ra.max(rb).max(1e-30);
    let shift = ((2f64.powi(30) / big).log2().floor() as i32).clamp(1, 62);
    let m = |r: f64| (r * 2f64.powi(shift)).round().min(i32::MAX as f64) as i32;
    ResidualParams { ma: m(ra), mb: m(rb), shift }
}

/// An interpolated activation table from input scale `s_in` to output scale `s_out`.
fn act_table(act: ActKind, s_in: f64, s_out: f64) -> Vec<i16> {
    table(|x| activation(act, x), s_in, s_out)
}

/// The interpolated table of `f` ([`picoformer::kernels::activation::table_i16`]): entry `i`
/// is `f` at input `256 i − 32768` (in units of `s_in`), in units of `s_out`.
fn table(f: impl Fn(f32) -> f32, s_in: f64, s_out: f64) -> Vec<i16> {
    (0..TABLE_LEN)
        .map(|i| {
            let u = (256 * i as i64 - 32768) as f64 * s_in;
            (f(u as f32) as f64 / s_out).round().clamp(-32768.0, 32767.0) as i16
        })
        .collect()
}

/// The blob tensors, built by tag and then put in blob order.
pub struct Builder<'m> {
    pub fm: &'m FloatModel<'m>,
    pub scales: &'m Scales,
    pub weights: WeightRule,
    /// Weight tags stored int4 ([`Precision`]).
    pub int4: HashSet<Tag>,
    /// `--weights gptq`: each weight tag's input Gram matrix, to round against.
    pub grams: Option<&'m Grams>,
    tensors: HashMap<Tag, Tensor>,
}

/// The place of a sublayer, for its tags and sites.
#[derive(Clone, Copy)]
struct At {
    stack: Stack,
    layer: usize,
    sub: Sub,
}

impl At {
    fn site(self, p: Point) -> Site {
        let block = match self.sub {
            Sub::SelfAttn => Block::SelfAttn,
            Sub::CrossAttn => Block::CrossAttn,
            Sub::FeedForward => Block::FeedForward,
        };
        stack_site(self.stack, self.layer, block, p)
    }
    fn linear(self, proj: Proj) -> impl Fn(Part) -> Tag {
        move |part| Tag::Linear { stack: self.stack, layer: self.layer as u8, sub: self.sub, proj, part }
    }
}

impl<'m> Builder<'m> {
    pub fn new(fm: &'m FloatModel<'m>, scales: &'m Scales, weights: WeightRule) -> Self {
        Builder { fm, scales, weights, int4: HashSet::new(), grams: None, tensors: HashMap::new() }
    }

    fn put(&mut self, tag: Tag, dtype: DType, dims: [usize; 2], data: Vec<u8>) {
        self.tensors.insert(tag, Tensor { spec: TensorSpec { tag, dtype, dims }, layout: Layout::RowMajor, data });
    }

    fn record<T: bytemuck::Pod>(&mut self, tag: Tag, r: T) {
        let data = le(&[r]);
        let words = data.len() / 4;
        self.put(tag, DType::I32, [1, words], data);
    }

    /// The largest weight magnitude of a weight tag: int8's, or int4's if the plan says so.
    fn qmax(&self, tag: Tag) -> f64 {
        if self.int4.contains(&tag) {
            INT4_MAX
        } else {
            INT8_MAX
        }
    }

    /// The weight matrix `tag`, `(n, k)` row-major, quantized by the rule (GPTQ-rounded when
    /// its inputs' Gram is known).
    fn rows(&self, tag: Tag, w: &[f32], k: usize) -> Rows {
        let qmax = self.qmax(tag);
        let rows = quantize_rows_to(w, k, qmax, self.weights);
        match self.grams.and_then(|g| g.get(&tag)) {
            Some(g) => gptq::refine(rows, w, k, qmax, g),
            None => rows,
        }
    }

    /// An `(n, k)` weight matrix, given row-major, stored Block4 when the shape allows; int4
    /// (nibbles, [`picoformer::kernels::layout`]) if the plan names it.
    fn put_weights(&mut self, tag: Tag, n: usize, k: usize, q: &[i8]) {
        let layout = Layout::from_code(Layout::Block4.code(), n, k).unwrap_or(Layout::RowMajor);
        let int4 = self.int4.contains(&tag);
        let mut data = vec![0u8; layout.bytes(n, k, int4)];
        for o in 0..n {
            for j in 0..k {
                let v = q[o * k + j] as u8;
                if int4 {
                    let (b, high) = layout.nibble(o, j, k);
                    data[b] |= if high { v << 4 } else { v & 0x0f };
                } else {
                    data[layout.index(o, j, k)] = v;
                }
            }
        }
        let dtype = if int4 { DType::I4 } else { DType::I8 };
        self.tensors.insert(tag, Tensor { spec: TensorSpec { tag, dtype, dims: [n, k] }, layout, data });
    }

    /// A linear from input scale `sx` to output scale `sy`, per-row weight scales.
    fn linear(&mut self, tag: impl Fn(Part) -> Tag, l: &FLinear<'_>, sx: f64, sy: f64) {
        let w = self.rows(tag(Part::Weight), l.w, l.k);
        self.linear_q(&tag, &w, l.b, l.k, sx, sy, true);
    }

    /// A linear's bias and requantizers for quantized weights `w` (and the weights themselves
    /// when `write_w`: a tied output projection reuses an embedding table's).
    #[allow(clippy::too_many_arguments)]
    fn linear_q(&mut self, tag: &impl Fn(Part) -> Tag, w: &Rows, b: &[f32], k: usize, sx: f64, sy: f64, write_w: bool) {
        let n = w.scales.len();
        let bias: Vec<i32> = b.iter().zip(&w.scales).map(|(&b, &s)| (b as f64 / (sx * s)).round().clamp(i32::MIN as f64, i32::MAX as f64) as i32).collect();
        let rq: Vec<Requant> = w.scales.iter().map(|&s| Requant::from_real(sx * s / sy)).collect();
        if write_w {
            self.put_weights(tag(Part::Weight), n, k, &w.q);
        }
        self.put(tag(Part::Bias), DType::I32, [n, 1], le(&bias));
        self.put(tag(Part::Requant), DType::Requant, [n, 1], le(&rq));
    }

    /// A norm from input scale `s_in` to output scale `s_out`: gains with a shift that keeps
    /// the largest below 2^30, biases (LayerNorm), and `ε` in input units².
    fn norm(&mut self, tag: impl Fn(NormPart) -> Tag, n: &FNorm<'_>, s_in: f64, s_out: f64) {
        let gmax = n.g.iter().fold(0f64, |m, &g| m.max((g as f64 / s_out).abs())).max(1e-30);
        let shift = (16 + (2f64.powi(30) / gmax).log2().floor() as i32).clamp(1, 62);
        let gain: Vec<i32> = n.g.iter().map(|&g| (g as f64 / s_out * 2f64.powi(shift - 16)).round() as i32).collect();
        let d = gain.len();
        self.put(tag(NormPart::Gain), DType::I32, [d, 1], le(&gain));
        if self.fm.config.norm == NormKind::LayerNorm {
            let bias: Vec<i32> = n.b.iter().map(|&b| (b as f64 / s_out).round().clamp(i32::MIN as f64, i32::MAX as f64) as i32).collect();
            self.put(tag(NormPart::Bias), DType::I32, [d, 1], le(&bias));
        }
        let eps = ((n.eps as f64) / (s_in * s_in)).round().clamp(1.0, i32::MAX as f64) as i32;
        self.record(tag(NormPart::Params), NormParams { shift, eps });
    }

    /// Q, K, V and output projections, the attention record and (self-attention with RoPE) the
    /// rotation record, of one attention sublayer.
    fn attention(&mut self, at: At, a: &FAttention<'_>, s_in: f64, s_kv_in: f64) -> Result<()> {
        let c = self.fm.config;
        let sc = self.scales;
        let (sq, sk, sv, sctx, sout) = (sc.get(at.site(Point::Q))?, sc.get(at.site(Point::K))?, sc.get(at.site(Point::V))?, sc.get(at.site(Point::Ctx))?, sc.get(at.site(Point::Out))?);
        let rope = at.sub == Sub::SelfAttn && c.positions == PosKind::Rope;
        // with RoPE the projections write i16 at their own scale, rotated into Q and K
        let (sq_out, sk_out) = if rope { (sc.get(at.site(Point::QPre))?, sc.get(at.site(Point::KPre))?) } else { (sq, sk) };
        self.linear(at.linear(Proj::Q), &a.q, s_in, sq_out);
        self.linear(at.linear(Proj::K), &a.k, s_kv_in, sk_out);
        self.linear(at.linear(Proj::V), &a.v, s_kv_in, sv);
        self.linear(at.linear(Proj::O), &a.o, sctx, sout);
        let dh = c.d_head() as f64;
        let softmax = Requant::from_real(sq * sk / dh.sqrt() * LOG2_E * 64.0);
        let ctx = Requant::from_real(sv / 256.0 / sctx);
        let (stack, layer, sub) = (at.stack, at.layer as u8, at.sub);
        self.record(Tag::Attention { stack, layer, sub }, AttentionParams { softmax, ctx });
        if rope {
            let q = Requant::from_real(sq_out / 32768.0 / sq);
            let k = Requant::from_real(sk_out / 32768.0 / sk);
            self.record(Tag::Rope { stack, layer }, RopeParams { q, k });
        }
        Ok(())
    }

    /// The feed-forward sublayer's linears, activation table and (SwiGLU) product multiplier.
    fn ffn(&mut self, at: At, f: &FFeedForward<'_>, s_in: f64) -> Result<()> {
        let c = self.fm.config;
        let sc = self.scales;
        let (stack, layer) = (at.stack, at.layer as u8);
        let (s_pre, s_hidden, s_out) = (sc.get(at.site(Point::PreAct))?, sc.get(at.site(Point::Hidden))?, sc.get(at.site(Point::Out))?);
        if c.act == ActKind::SwiGlu {
            let (s_gate, s_up) = (sc.get(at.site(Point::Gate))?, sc.get(at.site(Point::Up))?);
            self.linear(at.linear(Proj::Gate), &f.gate, s_in, s_pre);
            self.linear(at.linear(Proj::Up), &f.up, s_in, s_up);
            self.linear(at.linear(Proj::Down), &f.down, s_hidden, s_out);
            let t = act_table(ActKind::SwiGlu, s_pre, s_gate);
            self.put(Tag::ActTable { stack, layer }, DType::I16, [TABLE_LEN, 1], le(&t));
            let mul = Requant::from_real(s_gate * s_up / s_hidden);
            self.put(Tag::GateMul { stack, layer }, DType::Requant, [1, 1], le(&[mul]));
            return Ok(());
        }
        self.linear(at.linear(Proj::Up), &f.up, s_in, s_pre);
        self.linear(at.linear(Proj::Down), &f.down, s_hidden, s_out);
        if c.act != ActKind::Relu {
            let t = act_table(c.act, s_pre, s_hidden);
            self.put(Tag::ActTable { stack, layer }, DType::I16, [TABLE_LEN, 1], le(&t));
        }
        Ok(())
    }

    /// One residual sublayer, `x + f(norm(x))` (pre-norm) or `norm(x + f(x))` (post-norm), from a
    /// stream at scale `stream`: the norm where the config puts it, the sublayer `f`, and the
    /// residual sum's multipliers. `s_mem` is the encoder output's scale (cross-attention's keys).
    /// Returns the stream's scale after the sublayer.
    fn residual_block(&mut self, at: At, norm: &FNorm<'_>, stream: f64, s_mem: f64) -> Result<f64> {
        let sc = self.scales;
        let pre = self.fm.config.norm_first();
        let (stack, layer, sub) = (at.stack, at.layer as u8, at.sub);
        let norm_tag = |part| Tag::Norm { stack, layer, sub, part };
        let s_in = if pre { sc.get(at.site(Point::Norm))? } else { stream };
        if pre {
            self.norm(norm_tag, norm, stream, s_in);
        }
        let l = &self.fm.layers(stack)[at.layer];
        match sub {
            Sub::SelfAttn => self.attention(at, &l.attn.op, s_in, s_in)?,
            Sub::CrossAttn => self.attention(at, &l.cross.op, s_in, s_mem)?,
            Sub::FeedForward => self.ffn(at, &l.ffn.op, s_in)?,
        }
        let s_sum = sc.get(at.site(Point::Sum))?;
        self.record(Tag::Residual { stack, layer, sub }, residual(stream / s_sum, sc.get(at.site(Point::Out))? / s_sum));
        if pre {
            return Ok(s_sum);
        }
        let s_norm = sc.get(at.site(Point::Norm))?;
        self.norm(norm_tag, norm, s_sum, s_norm);
        Ok(s_norm)
    }

    /// The layers of one stack from an input at scale `input`, then its final norm into
    /// `out_site`'s scale; returns that scale.
    fn stack(&mut self, stack: Stack, input: f64, s_mem: f64) -> Result<f64> {
        let fm = self.fm;
        let c = fm.config;
        let cross = stack == Stack::Decoder && c.kind == ModelKind::EncoderDecoder;
        let mut stream = input;
        for (l, layer) in fm.layers(stack).iter().enumerate() {
            let at = |sub| At { stack, layer: l, sub };
            stream = self.residual_block(at(Sub::SelfAttn), &layer.attn.norm, stream, s_mem)?;
            if cross {
                stream = self.residual_block(at(Sub::CrossAttn), &layer.cross.norm, stream, s_mem)?;
            }
            stream = self.residual_block(at(Sub::FeedForward), &layer.ffn.norm, stream, s_mem)?;
        }
        let (norm, site) = match stack {
            Stack::Encoder => (&fm.enc_norm, Site::EncNorm),
            Stack::Decoder => (&fm.dec_norm, Site::DecNorm),
        };
        let s_out = self.scales.get(site)?;
        if let Some(n) = norm {
            self.norm(|part| Tag::FinalNorm(stack, part), n, stream, s_out);
        }
        Ok(s_out)
    }

    /// A token embedding table and its requantizers into the stream at scale `s_emb`.
    fn embedding(&mut self, side: Side, table: &[f32], s_emb: f64) -> Rows {
        let d = self.fm.config.d_model;
        let emb_mult = if self.fm.scale_embedding { (d as f64).sqrt() } else { 1.0 };
        let rows = self.rows(Tag::Embedding(side), table, d);
        let rq: Vec<Requant> = rows.scales.iter().map(|&s| Requant::from_real(s * emb_mult / s_emb)).collect();
        self.put_weights(Tag::Embedding(side), rows.scales.len(), d, &rows.q);
        self.put(Tag::EmbeddingRq(side), DType::Requant, [rq.len(), 1], le(&rq));
        rows
    }

    /// Build every tensor; returns them in blob order.
    pub fn build(mut self, vocab: Option<&VocabTables>, features: Option<&FeatureScales>) -> Result<Vec<Tensor>> {
        let fm = self.fm;
        let c = fm.config;
        let (d, dh) = (c.d_model, c.d_head());
        let sc = self.scales;

        // input: the encoder's (tokens or features), the decoder's tokens
        let s_src = if c.kind == ModelKind::DecoderOnly { 0.0 } else { sc.get(Site::SrcEmb)? };
        let s_tgt = if c.kind == ModelKind::EncoderOnly { 0.0 } else { sc.get(Site::TgtEmb)? };
        let mut tables: [Option<Rows>; 2] = [None, None];
        match c.input {
            InputKind::Tokens if c.kind != ModelKind::DecoderOnly => tables[0] = Some(self.embedding(Side::Source, fm.source, s_src)),
            InputKind::Features => {
                let Some(f) = features else { bail!("a feature model needs its features' calibrated ranges") };
                self.input_projection(f, s_src);
            }
            InputKind::Tokens => {}
        }
        if c.kind != ModelKind::EncoderOnly && !(c.kind == ModelKind::EncoderDecoder && c.tied()) {
            tables[1] = Some(self.embedding(Side::Target, fm.target, s_tgt));
        }
        // positions, in the input's scale (both sides share it)
        let s_pos = if c.kind == ModelKind::DecoderOnly { s_tgt } else { s_src };
        match c.positions {
            PosKind::Sinusoidal | PosKind::Learned => {
                let value = |i: usize| if c.positions == PosKind::Learned { fm.positions[i] } else { sinusoid(i / d, i % d, d) };
                let pos: Vec<i16> = (0..c.max_len * d).map(|i| (value(i) as f64 / s_pos).round().clamp(-32768.0, 32767.0) as i16).collect();
                self.put(Tag::Positions, DType::I16, [c.max_len, d], le(&pos));
            }
            PosKind::Rope => {
                let half = dh / 2;
                let q15 = |v: f64| (v * 32768.0).round().clamp(-32767.0, 32767.0) as i16;
                let (mut cos, mut sin) = (Vec::new(), Vec::new());
                for p in 0..c.max_len {
                    for i in 0..half {
                        let (co, si) = rope_angle(p, i, dh, fm.rope_theta);
                        cos.push(q15(co));
                        sin.push(q15(si));
                    }
                }
                self.put(Tag::RopeCos, DType::I16, [c.max_len, half], le(&cos));
                self.put(Tag::RopeSin, DType::I16, [c.max_len, half], le(&sin));
            }
            PosKind::None => {}
        }

        // the embedding norm (BERT): the stack reads its output
        let s_src = match &fm.embed_norm {
            Some(n) => {
                let s_en = sc.get(Site::EmbNorm)?;
                self.norm(Tag::EmbedNorm, n, s_src, s_en);
                s_en
            }
            None => s_src,
        };

        // the stacks
        let s_mem = if c.n_enc > 0 { self.stack(Stack::Encoder, s_src, 0.0)? } else { 0.0 };
        let s_dec = if c.n_dec > 0 { self.stack(Stack::Decoder, s_tgt, s_mem)? } else { 0.0 };

        // output: logits, or the head; tied reuses the table its tokens come from
        let s_logit = sc.get(Site::Logits)?;
        let mut s_head_in = if c.token_output() { s_dec } else { sc.get(Site::Pooled)? };
        // the pooler (BERT): dense into the tanh table's input, the table into the head's
        if let Some(p) = &fm.pooler {
            let (s_pre, s_out) = (sc.get(Site::PoolerPre)?, sc.get(Site::Pooler)?);
            self.linear(Tag::Pooler, p, s_head_in, s_pre);
            self.put(Tag::PoolerTable, DType::I16, [TABLE_LEN, 1], le(&table(f32::tanh, s_pre, s_out)));
            s_head_in = s_out;
        }
        let out_tag = Tag::Output;
        if c.tied() {
            let i = if c.kind == ModelKind::EncoderDecoder { 0 } else { 1 };
            let Some(rows) = tables[i].take() else { bail!("internal: a tied output without its table") };
            self.linear_q(&out_tag, &rows, fm.output.b, d, s_head_in, s_logit, false);
        } else {
            self.linear(out_tag, &fm.output, s_head_in, s_logit);
        }
        if c.token_output() {
            let lsm = Requant::from_real(s_logit * LOG2_E * 1024.0);
            self.put(Tag::LogSoftmax, DType::Requant, [1, 1], le(&[lsm]));
        } else {
            self.put(Tag::HeadScale, DType::Requant, [1, 1], le(&[Requant::from_real(s_logit)]));
        }

        // tokenizer
        let mut sizes = TokenizerSizes::default();
        if let Some(v) = vocab.filter(|_| c.tokens()) {
            let n = c.vocab;
            self.put(Tag::Tokenizer(TokPart::Offsets), DType::U32, [n + 1, 1], le(&v.offsets));
            self.put(Tag::Tokenizer(TokPart::Bytes), DType::U8, [v.bytes.len(), 1], v.bytes.clone());
            self.put(Tag::Tokenizer(TokPart::Scores), DType::I32, [n, 1], le(&v.scores));
            self.put(Tag::Tokenizer(TokPart::Sorted), DType::U16, [v.sorted.len(), 1], le(&v.sorted));
            if !v.byte_ids.is_empty() {
                self.put(Tag::Tokenizer(TokPart::ByteIds), DType::U16, [256, 1], le(&v.byte_ids));
            }
            if c.tokenizer == blob::TokenizerKind::WordPiece {
                let m = v.map_from.len();
                self.put(Tag::Tokenizer(TokPart::Classes), DType::U32, [v.classes.len(), 1], le(&v.classes));
                self.put(Tag::Tokenizer(TokPart::MapFrom), DType::U32, [m, 1], le(&v.map_from));
                self.put(Tag::Tokenizer(TokPart::MapOffsets), DType::U32, [m + 1, 1], le(&v.map_offsets));
                self.put(Tag::Tokenizer(TokPart::MapBytes), DType::U8, [v.map_bytes.len(), 1], v.map_bytes.clone());
            }
            sizes = TokenizerSizes { bytes: v.bytes.len(), normal: v.sorted.len(), classes: v.classes.len(), map: v.map_from.len(), map_bytes: v.map_bytes.len() };
        }

        // blob order
        let mut order = Vec::new();
        blob::expected_tensors(&c, sizes, |s| {
            order.push(s.tag);
            Ok(())
        })?;
        let mut out = Vec::new();
        for t in order {
            match self.tensors.remove(&t) {
                Some(x) => out.push(x),
                None => bail!("internal: tensor {t} was not built"),
            }
        }
        // and nothing the format does not expect
        if let Some(t) = self.tensors.keys().min_by_key(|t| t.code()) {
            bail!("internal: tensor {t} was built but the format has no place for it");
        }
        Ok(out)
    }

    /// Feature input: the projection with each feature's scale folded into its weights
    /// (`W'[o, j] = W[o, j] · s_j`, in `q` units) and the zero points into the bias
    /// (`b' = b − Σ_j W'[o, j] · zp_j`), then the records callers quantize with.
    fn input_projection(&mut self, f: &FeatureScales, s_out: f64) {
        let p = &self.fm.input_proj;
        let (n, k) = (p.b.len(), p.k);
        let folded: Vec<f32> = (0..n * k).map(|i| (p.w[i] as f64 * f.scale[i % k]) as f32).collect();
        let bias: Vec<f32> = (0..n).map(|o| (p.b[o] as f64 - (0..k).map(|j| folded[o * k + j] as f64 * f.zero_point[j] as f64).sum::<f64>()) as f32).collect();
        let l = FLinear { w: &folded, b: &bias, k };
        self.linear(Tag::InputProj, &l, 1.0, s_out);
        let q: Vec<FeatureQuant> = f.scale.iter().zip(&f.zero_point).map(|(&s, &zero_point)| FeatureQuant { scale: Requant::from_real(s), zero_point }).collect();
        self.put(Tag::FeatureQuant, DType::I32, [k, 3], le(&q));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int8_rows_take_max_over_127_or_the_mse_clip() {
        // one outlier: round-to-nearest at max keeps it; the MSE rule clips it
        let mut row = vec![0.01f32; 64];
        row[0] = 1.0;
        row[1] = -0.37;
        let r = quantize_rows_to(&row, 64, INT8_MAX, WeightRule::Max);
        assert_eq!(r.scales, [1.0 / 127.0]);
        assert_eq!((r.q[0], r.q[1], r.q[2]), (127, -47, 1));
        let r = quantize_rows_to(&row, 64, INT8_MAX, WeightRule::Mse);
        assert_eq!(r.scales, [mse_row_clip(&row, 1.0) / 127.0]);
        // a zero row: scale 1, values 0
        let r = quantize_rows(&[0.0; 8], 4, WeightRule::Mse);
        assert_eq!((r.scales, r.q), (vec![1.0, 1.0], vec![0; 8]));
    }

    #[test]
    fn int4_rows_take_the_clip_of_least_error() {
        // w spread evenly over ±0.5 beside one outlier at 1: the best 4-bit scale clips it (at
        // 0.9 of the max, 3.5% less squared error)
        let row: Vec<f32> = (0..32).map(|i| if i == 0 { 1.0 } else { (i * 37 % 31) as f32 / 31.0 - 0.5 }).collect();
        let err = |s: f64| row.iter().map(|&x| (x as f64 - (x as f64 / s).round().clamp(-7.0, 7.0) * s).powi(2)).sum::<f64>();
        let (best, alpha) = (0..=10).map(|i| 1.0 - 0.05 * i as f64).map(|a| (err(a / 7.0), a)).fold((f64::MAX, 1.0), |b, c| if c.0 < b.0 { c } else { b });
        assert!((alpha - 0.9).abs() < 1e-12 && best < err(1.0 / 7.0));
        for rule in [WeightRule::Max, WeightRule::Mse] {
            let r = quantize_rows_to(&row, 32, INT4_MAX, rule);
            assert_eq!(r.scales, [alpha / 7.0], "{rule:?}");
            assert!(r.q.iter().all(|v| (-7..=7).contains(v)) && r.q[0] == 7);
        }
    }

    #[test]
    fn a_long_row_of_small_values_clips_its_one_outlier() {
        // 8,191 values in ±0.02 and one at 1: finer steps for the many outweigh the outlier's
        // error down to 97% of the max (the least squared error, checked in Python)
        let mut row: Vec<f32> = (0..8192u32).map(|i| (i * 7919 % 1000) as f32 / 1000.0 * 0.04 - 0.02).collect();
        row[0] = 1.0;
        let c = mse_row_clip(&row, 1.0);
        assert!((c - 0.97).abs() < 1e-9, "{c}");
        let r = quantize_rows_to(&row, 8192, INT8_MAX, WeightRule::Mse);
        assert_eq!(r.scales, [c / 127.0]);
        assert_eq!(quantize_rows_to(&row, 8192, INT8_MAX, WeightRule::Max).scales, [1.0 / 127.0]);
    }

    #[test]
    fn the_row_clip_is_the_least_error_percent() {
        for seed in 0..10u32 {
            let row: Vec<f32> = (0..96u32).map(|i| {
                let u = (i.wrapping_mul(2654435761) ^ seed.wrapping_mul(97)) % 1000;
                // a heavy tail: cubes of a uniform value
                ((u as f32 / 500.0) - 1.0).powi(3)
            }).collect();
            let max = row.iter().fold(0f32, |m, x| m.max(x.abs())) as f64;
            let err = |c: f64| row.iter().map(|&x| { let s = c / 127.0; (x as f64 - (x as f64 / s).round().clamp(-127.0, 127.0) * s).powi(2) }).sum::<f64>();
            let want = (50..=100).rev().map(|p| max * p as f64 / 100.0).fold((f64::MAX, max), |b, c| if err(c) < b.0 { (err(c), c) } else { b }).1;
            assert_eq!(mse_row_clip(&row, max), want, "seed {seed}");
        }
    }

    #[test]
    fn features_quantize_around_their_middle() {
        let f = FeatureScales::from_ranges(&[-1.0, 2.0], &[3.0, 4.0]);
        // [-1, 3]: 4 / 65535 per step, zero point at −1 / s; [0, 4] (0 is always in range)
        assert!((f.scale[0] - 4.0 / 65535.0).abs() < 1e-15 && (f.scale[1] - 4.0 / 65535.0).abs() < 1e-15);
        assert_eq!(f.zero_point, [-16384, -32768]);
        assert_eq!(f.quantize(0, 1.0), 0);
        assert_eq!(f.quantize(0, 3.0), 32767);
        assert_eq!(f.quantize(0, -1.0), -32768);
        assert_eq!(f.quantize(1, 2.0), 0);
        assert_eq!(f.quantize(1, 100.0), 32767);
    }
}
