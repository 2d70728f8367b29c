//! Calibration and quantization (DESIGN §3): f32 export + activation ranges → blob tensors.
//!
//! Activation types: residual stream, LayerNorm outputs, attention contexts and FFN values are
//! `i16`; Q, K, V are `i8`; logits `i32`. Weights are `i8` per output channel, biases `i32` in
//! the accumulator's scale. Every real multiplier becomes a [`Requant`].

use std::collections::HashMap;

use anyhow::{bail, Result};
use picoformer::blob::{self, tag, Config, DType, TensorSpec};
use picoformer::kernels::activation::TABLE_LEN;
use picoformer::kernels::layout::Layout;
use picoformer::observe::{Block, Point, Site};
use picoformer::quant::Requant;
use picoformer::reference::{gelu, sinusoid, FAttention, FLayerNorm, FLinear, FloatModel};

use crate::calibrate::Ranges;
use crate::spm::VocabTables;

/// The integer type a site is stored in.
pub fn site_qmax(site: Site) -> f32 {
    match site {
        Site::Enc { point: Point::Q | Point::K | Point::V, .. } | Site::Dec { point: Point::Q | Point::K | Point::V, .. } => 127.0,
        Site::Logits => (1 << 24) as f32,
        _ => 32767.0,
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
        let emb = s.get(&Site::SrcEmb).copied().unwrap_or(1.0).max(s.get(&Site::TgtEmb).copied().unwrap_or(1.0));
        s.insert(Site::SrcEmb, emb);
        s.insert(Site::TgtEmb, emb);
        // ReLU is a clamp: the hidden values keep the pre-activation's scale, which only needs
        // to cover the positive side.
        if !c.gelu() {
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
        Scales { s }
    }

    /// Logits are `i32`, so their scale is free. Make it at least `4.01 · s_in · max_c s_w,c`,
    /// so that every output channel's multiplier `s_in · s_w,c / s_logit` is below 1/4 (shift
    /// ≥ 33): the output projection then takes the kernels' fused requantization
    /// (`Requant::apply32`, `SMMLA` on Cortex-M4, `mulh` on RV32) instead of the 64-bit one.
    /// The logits keep more than 2^20 steps across their calibrated range.
    pub fn fit_logits(&mut self, fm: &FloatModel<'_>) -> Result<()> {
        let w = if fm.config.tied() { fm.src_emb } else { fm.generator.w };
        let sw = quantize_rows(w, fm.config.d_model).scales;
        let floor = 4.01 * self.get(Site::DecNorm)? * sw.iter().fold(0f64, |m, &s| m.max(s));
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

/// Scales from the calibrated ranges (the logit scale fitted to the output projection), then
/// every tensor.
pub fn quantize(fm: &FloatModel<'_>, ranges: &Ranges, vocab: &VocabTables) -> Result<Quantized> {
    let mut scales = Scales::from_ranges(ranges, &fm.config);
    scales.fit_logits(fm)?;
    let tensors = Builder::new(fm, &scales).build(vocab)?;
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
        self.tensors.iter().filter(|t| t.spec.tag >> 24 == tag::TOK).map(|t| t.data.len()).sum()
    }

    /// Tensor bytes of everything else: weights and quantization parameters.
    pub fn weight_bytes(&self) -> usize {
        self.tensors.iter().filter(|t| t.spec.tag >> 24 != tag::TOK).map(|t| t.data.len()).sum()
    }
}

fn bytes_i16(v: &[i16]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}
fn bytes_i32(v: &[i32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}
fn bytes_rq(v: &[Requant]) -> Vec<u8> {
    v.iter().flat_map(|r| r.mult.to_le_bytes().into_iter().chain(r.shift.to_le_bytes())).collect()
}

/// A `(n, k)` matrix in symmetric int8, one scale per row: `w[o][j] ≈ q[o][j] · scales[o]`.
pub struct Rows {
    /// `(n, k)` row-major.
    pub q: Vec<i8>,
    /// `(n,)`.
    pub scales: Vec<f64>,
}

/// Symmetric per-row int8 of a row-major matrix with rows of `k`.
pub fn quantize_rows(w: &[f32], k: usize) -> Rows {
    let mut q = Vec::with_capacity(w.len());
    let mut scales = Vec::new();
    for row in w.chunks_exact(k) {
        let m = row.iter().fold(0f32, |m, x| m.max(x.abs())) as f64;
        let s = if m > 0.0 { m / 127.0 } else { 1.0 };
        scales.push(s);
        q.extend(row.iter().map(|&x| (x as f64 / s).round().clamp(-127.0, 127.0) as i8));
    }
    Rows { q, scales }
}

/// `[ma, mb, shift]` (in the layer scalars' order) for `y = (a·ma + b·mb) >> shift` with real multipliers `ra`, `rb`.
fn residual(ra: f64, rb: f64) -> [i32; 3] {
    let big = ra.max(rb).max(1e-30);
    let shift = ((2f64.powi(30) / big).log2().floor() as i32).clamp(1, 62);
    let m = |r: f64| (r * 2f64.powi(shift)).round().min(i32::MAX as f64) as i32;
    [m(ra), m(rb), shift]
}

/// The sublayer of a residual block, with its float weights.
#[derive(Clone, Copy)]
enum Sublayer<'a> {
    SelfAttn(&'a FAttention<'a>),
    /// Cross-attention: keys and values read the encoder memory, at scale `s_mem`.
    CrossAttn(&'a FAttention<'a>, f64),
    FeedForward(&'a FLinear<'a>, &'a FLinear<'a>),
}

impl Sublayer<'_> {
    fn block(&self) -> Block {
        match self {
            Sublayer::SelfAttn(_) => Block::SelfAttn,
            Sublayer::CrossAttn(..) => Block::CrossAttn,
            Sublayer::FeedForward(..) => Block::FeedForward,
        }
    }
}

/// One residual block of a layer: its LayerNorm (tensor kind and weights) and its sublayer.
struct ResidualBlock<'a> {
    norm_kind: u32,
    norm: &'a FLayerNorm<'a>,
    sublayer: Sublayer<'a>,
}

/// The blob tensors, built in [`blob::expected_tensors`] order.
pub struct Builder<'m> {
    pub fm: &'m FloatModel<'m>,
    pub scales: &'m Scales,
    tensors: HashMap<u32, Tensor>,
}

impl<'m> Builder<'m> {
    pub fn new(fm: &'m FloatModel<'m>, scales: &'m Scales) -> Self {
        Builder { fm, scales, tensors: HashMap::new() }
    }

    fn put(&mut self, group: u32, layer: usize, kind: u32, dtype: DType, dims: [usize; 2], data: Vec<u8>) {
        let tag = tag::make(group, layer as u32, kind);
        self.tensors.insert(tag, Tensor { spec: TensorSpec { tag, dtype, dims }, layout: Layout::RowMajor, data });
    }

    /// An int8 `(n, k)` weight matrix, given row-major, stored Block4 when the shape allows.
    fn put_weights(&mut self, group: u32, layer: usize, kind: u32, n: usize, k: usize, q: &[i8]) {
        let tag = tag::make(group, layer as u32, kind);
        let layout = Layout::from_code(Layout::Block4.code(), n, k).unwrap_or(Layout::RowMajor);
        let mut data = vec![0u8; n * k];
        for o in 0..n {
            for j in 0..k {
                data[layout.index(o, j, k)] = q[o * k + j] as u8;
            }
        }
        self.tensors.insert(tag, Tensor { spec: TensorSpec { tag, dtype: DType::I8, dims: [n, k] }, layout, data });
    }

    /// A linear from input scale `sx` to output scale `sy`, per-row weight scales.
    fn linear(&mut self, group: u32, layer: usize, base: u32, l: &FLinear<'_>, sx: f64, sy: f64) {
        let w = quantize_rows(l.w, l.k);
        self.linear_q(group, layer, base, &w.q, &w.scales, l.b, l.k, sx, sy, true);
    }

    #[allow(clippy::too_many_arguments)]
    fn linear_q(&mut self, group: u32, layer: usize, base: u32, q: &[i8], sw: &[f64], b: &[f32], k: usize, sx: f64, sy: f64, write_w: bool) {
        let n = sw.len();
        let bias: Vec<i32> = b.iter().zip(sw).map(|(&b, &s)| (b as f64 / (sx * s)).round().clamp(i32::MIN as f64, i32::MAX as f64) as i32).collect();
        let rq: Vec<Requant> = sw.iter().map(|&s| Requant::from_real(sx * s / sy)).collect();
        if write_w {
            self.put_weights(group, layer, base, n, k, q);
        }
        self.put(group, layer, base + 1, DType::I32, [n, 1], bytes_i32(&bias));
        self.put(group, layer, base + 2, DType::Requant, [n, 1], bytes_rq(&rq));
    }

    fn layer_norm(&mut self, group: u32, layer: usize, kind: u32, ln: &FLayerNorm<'_>, s_in: f64, s_out: f64) {
        let gmax = ln.g.iter().fold(0f64, |m, &g| m.max((g as f64 / s_out).abs())).max(1e-30);
        let shift = (16 + (2f64.powi(30) / gmax).log2().floor() as i32).clamp(1, 62);
        let mut v: Vec<i32> = ln.g.iter().map(|&g| (g as f64 / s_out * 2f64.powi(shift - 16)).round() as i32).collect();
        v.extend(ln.b.iter().map(|&b| (b as f64 / s_out).round().clamp(i32::MIN as f64, i32::MAX as f64) as i32));
        v.push(shift);
        v.push(((ln.eps as f64) / (s_in * s_in)).round().clamp(1.0, i32::MAX as f64) as i32);
        let n = v.len();
        self.put(group, layer, kind, DType::I32, [n, 1], bytes_i32(&v));
    }

    /// Q, K, V and output projections plus `(softmax, ctx)` scalars of one attention block.
    #[allow(clippy::too_many_arguments)]
    fn attention(&mut self, group: u32, layer: usize, cross: bool, a: &FAttention<'_>, s_in: f64, s_mem: f64, site: impl Fn(Point) -> Site) -> Result<[i32; 4]> {
        let c = self.fm.config;
        let (sq, sk, sv, sctx, sout) = (self.scales.get(site(Point::Q))?, self.scales.get(site(Point::K))?, self.scales.get(site(Point::V))?, self.scales.get(site(Point::Ctx))?, self.scales.get(site(Point::Out))?);
        let base = if cross { tag::CA_Q } else { tag::SA_Q };
        self.linear(group, layer, base, &a.q, s_in, sq);
        let s_kv_in = if cross { s_mem } else { s_in };
        self.linear(group, layer, base + 4, &a.k, s_kv_in, sk);
        self.linear(group, layer, base + 8, &a.v, s_kv_in, sv);
        self.linear(group, layer, base + 12, &a.o, sctx, sout);
        let dh = c.d_head() as f64;
        let sm = Requant::from_real(sq * sk / dh.sqrt() * std::f64::consts::LOG2_E * 64.0);
        let ctx = Requant::from_real(sv / 256.0 / sctx);
        Ok([sm.mult, sm.shift, ctx.mult, ctx.shift])
    }

    fn ffn(&mut self, group: u32, layer: usize, f1: &FLinear<'_>, f2: &FLinear<'_>, s_in: f64, site: impl Fn(Point) -> Site) -> Result<()> {
        let (su, sh, so) = (self.scales.get(site(Point::PreAct))?, self.scales.get(site(Point::Hidden))?, self.scales.get(site(Point::Out))?);
        self.linear(group, layer, tag::FF1, f1, s_in, su);
        self.linear(group, layer, tag::FF2, f2, sh, so);
        if self.fm.config.gelu() {
            let t: Vec<i16> = (0..TABLE_LEN)
                .map(|i| {
                    let u = (256 * i as i64 - 32768) as f64 * su;
                    (gelu(u as f32) as f64 / sh).round().clamp(-32768.0, 32767.0) as i16
                })
                .collect();
            self.put(group, layer, tag::ACT_TABLE, DType::I16, [TABLE_LEN, 1], bytes_i16(&t));
        }
        Ok(())
    }

    /// One layer of either stack: its residual blocks in order, then its scalars (each block's
    /// sublayer scalars followed by its residual multipliers). Returns the stream's scale after it.
    fn layer(&mut self, group: u32, layer: usize, blocks: &[ResidualBlock<'_>], mut stream: f64, site: impl Fn(Block, Point) -> Site) -> Result<f64> {
        let mut scalars = Vec::new();
        for b in blocks {
            let block = b.sublayer.block();
            stream = self.residual_block(group, layer, b, stream, |p| site(block, p), &mut scalars)?;
        }
        self.put(group, layer, tag::SCALARS, DType::I32, [scalars.len(), 1], bytes_i32(&scalars));
        Ok(stream)
    }

    /// One residual block, `x + f(norm(x))` (pre-norm) or `norm(x + f(x))` (post-norm), from a
    /// stream at scale `stream`: the LayerNorm where the config puts it, the sublayer `f`, and the
    /// residual sum's multipliers (appended to `scalars` after the sublayer's). Returns the
    /// stream's scale after the block.
    fn residual_block(&mut self, group: u32, layer: usize, b: &ResidualBlock<'_>, stream: f64, site: impl Fn(Point) -> Site, scalars: &mut Vec<i32>) -> Result<f64> {
        let sc = self.scales;
        let pre = self.fm.config.norm_first();
        let s_in = if pre { sc.get(site(Point::Norm))? } else { stream };
        if pre {
            self.layer_norm(group, layer, b.norm_kind, b.norm, stream, s_in);
        }
        match b.sublayer {
            Sublayer::SelfAttn(a) => scalars.extend(self.attention(group, layer, false, a, s_in, 0.0, &site)?),
            Sublayer::CrossAttn(a, s_mem) => scalars.extend(self.attention(group, layer, true, a, s_in, s_mem, &site)?),
            Sublayer::FeedForward(f1, f2) => self.ffn(group, layer, f1, f2, s_in, &site)?,
        }
        let s_sum = sc.get(site(Point::Sum))?;
        scalars.extend(residual(stream / s_sum, sc.get(site(Point::Out))? / s_sum));
        if pre {
            return Ok(s_sum);
        }
        let s_norm = sc.get(site(Point::Norm))?;
        self.layer_norm(group, layer, b.norm_kind, b.norm, s_sum, s_norm);
        Ok(s_norm)
    }

    /// Build every tensor; returns them in blob order.
    pub fn build(mut self, vocab: &VocabTables) -> Result<Vec<Tensor>> {
        let fm = self.fm;
        let c = fm.config;
        let (d, v) = (c.d_model, c.vocab);
        let sc = self.scales;
        let s_emb = sc.get(Site::SrcEmb)?;
        let emb_mult = if fm.scale_embedding { (d as f64).sqrt() } else { 1.0 };

        // embeddings and positions
        let src = quantize_rows(fm.src_emb, d);
        let rq = |s: &[f64]| -> Vec<Requant> { s.iter().map(|&s| Requant::from_real(s * emb_mult / s_emb)).collect() };
        self.put_weights(tag::GLOBAL, 0, tag::SRC_EMB, v, d, &src.q);
        self.put(tag::GLOBAL, 0, tag::SRC_EMB_RQ, DType::Requant, [v, 1], bytes_rq(&rq(&src.scales)));
        if !c.tied() {
            let tgt = quantize_rows(fm.tgt_emb, d);
            self.put_weights(tag::GLOBAL, 0, tag::TGT_EMB, v, d, &tgt.q);
            self.put(tag::GLOBAL, 0, tag::TGT_EMB_RQ, DType::Requant, [v, 1], bytes_rq(&rq(&tgt.scales)));
        }
        let pos: Vec<i16> = (0..c.max_len * d).map(|i| (sinusoid(i / d, i % d, d) as f64 / s_emb).round().clamp(-32768.0, 32767.0) as i16).collect();
        self.put(tag::GLOBAL, 0, tag::POS, DType::I16, [c.max_len, d], bytes_i16(&pos));

        // encoder
        let mut stream = s_emb;
        for (l, layer) in fm.enc.iter().enumerate().take(c.n_enc) {
            let blocks = [
                ResidualBlock { norm_kind: tag::LN1, norm: &layer.ln1, sublayer: Sublayer::SelfAttn(&layer.sa) },
                ResidualBlock { norm_kind: tag::LN2, norm: &layer.ln2, sublayer: Sublayer::FeedForward(&layer.ff1, &layer.ff2) },
            ];
            stream = self.layer(tag::ENC, l, &blocks, stream, |block, point| Site::Enc { layer: l as u8, block, point })?;
        }
        let s_mem = sc.get(Site::EncNorm)?;
        self.layer_norm(tag::GLOBAL, 0, tag::ENC_NORM, &fm.enc_norm, stream, s_mem);

        // decoder
        let mut stream = s_emb;
        for (l, layer) in fm.dec.iter().enumerate().take(c.n_dec) {
            let blocks = [
                ResidualBlock { norm_kind: tag::LN1, norm: &layer.ln1, sublayer: Sublayer::SelfAttn(&layer.sa) },
                ResidualBlock { norm_kind: tag::LN2, norm: &layer.ln2, sublayer: Sublayer::CrossAttn(&layer.ca, s_mem) },
                ResidualBlock { norm_kind: tag::LN3, norm: &layer.ln3, sublayer: Sublayer::FeedForward(&layer.ff1, &layer.ff2) },
            ];
            stream = self.layer(tag::DEC, l, &blocks, stream, |block, point| Site::Dec { layer: l as u8, block, point })?;
        }
        let s_dn = sc.get(Site::DecNorm)?;
        self.layer_norm(tag::GLOBAL, 0, tag::DEC_NORM, &fm.dec_norm, stream, s_dn);

        // output projection: tied reuses the source table and its row scales
        let s_logit = sc.get(Site::Logits)?;
        if c.tied() {
            self.linear_q(tag::GLOBAL, 0, tag::GEN_W, &src.q, &src.scales, fm.generator.b, d, s_dn, s_logit, false);
        } else {
            self.linear(tag::GLOBAL, 0, tag::GEN_W, &fm.generator, s_dn, s_logit);
        }
        let lsm = Requant::from_real(s_logit * std::f64::consts::LOG2_E * 1024.0);
        self.put(tag::GLOBAL, 0, tag::SCALARS, DType::I32, [2, 1], bytes_i32(&[lsm.mult, lsm.shift]));

        // tokenizer
        self.put(tag::TOK, 0, tag::TOK_OFFSETS, DType::U32, [v + 1, 1], vocab.offsets.iter().flat_map(|x| x.to_le_bytes()).collect());
        self.put(tag::TOK, 0, tag::TOK_BYTES, DType::U8, [vocab.bytes.len(), 1], vocab.bytes.clone());
        self.put(tag::TOK, 0, tag::TOK_SCORES, DType::I32, [v, 1], bytes_i32(&vocab.scores));
        self.put(tag::TOK, 0, tag::TOK_SORTED, DType::U16, [vocab.sorted.len(), 1], vocab.sorted.iter().flat_map(|x| x.to_le_bytes()).collect());

        // blob order
        let mut order = Vec::new();
        blob::expected_tensors(&c, vocab.bytes.len(), vocab.sorted.len(), |s| {
            order.push(s.tag);
            Ok(())
        })?;
        let mut out = Vec::new();
        for t in order {
            match self.tensors.remove(&t) {
                Some(x) => out.push(x),
                None => bail!("internal: tensor {t:#010x} was not built"),
            }
        }
        Ok(out)
    }
}
