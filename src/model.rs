//! A parsed, validated model: zero-copy views into the blob.

use crate::blob::{self, tag, Config, DType, Entry, TensorSpec, ALIGN, ENTRY_LEN, HEADER_LEN, MAX_LAYERS};
use crate::kernels::attention::AttentionParams;
use crate::kernels::embedding::Embedding;
use crate::kernels::layernorm::LayerNorm;
use crate::kernels::layout::Layout;
use crate::kernels::linear::Linear;
use crate::kernels::residual::ResidualParams;
use crate::quant::Requant;
use crate::tokenizer::{Tokenizer, Vocab};
use crate::Error;

/// Self-attention or cross-attention weights of one layer.
#[derive(Debug, Clone, Copy, Default)]
pub struct Attention<'a> {
    pub q: Linear<'a>,
    pub k: Linear<'a>,
    pub v: Linear<'a>,
    pub o: Linear<'a>,
    pub params: AttentionParams,
}

/// The feed-forward block: `ff2(act(ff1(x)))`. `act` is `None` for ReLU, else the
/// interpolation table of [`crate::kernels::activation`].
#[derive(Debug, Clone, Copy, Default)]
pub struct FeedForward<'a> {
    pub ff1: Linear<'a>,
    pub ff2: Linear<'a>,
    pub act: Option<&'a [i16]>,
}

/// One encoder layer.
#[derive(Debug, Clone, Copy, Default)]
pub struct EncoderLayer<'a> {
    pub sa: Attention<'a>,
    pub ln1: LayerNorm<'a>,
    pub res1: ResidualParams,
    pub ff: FeedForward<'a>,
    pub ln2: LayerNorm<'a>,
    pub res2: ResidualParams,
}

/// One decoder layer.
#[derive(Debug, Clone, Copy, Default)]
pub struct DecoderLayer<'a> {
    pub sa: Attention<'a>,
    pub ln1: LayerNorm<'a>,
    pub res1: ResidualParams,
    pub ca: Attention<'a>,
    pub ln2: LayerNorm<'a>,
    pub res2: ResidualParams,
    pub ff: FeedForward<'a>,
    pub ln3: LayerNorm<'a>,
    pub res3: ResidualParams,
}

/// A model, parsed and verified. Every view has the shape its config calls for and every
/// quantization parameter is in range, so no forward path can index out of bounds. The fields
/// are private: [`Model::parse`] is the only way to a non-empty model, so every size computed
/// from its config is within the bounds `Config::validate` checks.
#[derive(Debug, Clone, Default)]
pub struct Model<'a> {
    pub(crate) config: Config,
    pub(crate) src_emb: Embedding<'a>,
    pub(crate) tgt_emb: Embedding<'a>,
    pub(crate) enc: [EncoderLayer<'a>; MAX_LAYERS],
    pub(crate) enc_norm: LayerNorm<'a>,
    pub(crate) dec: [DecoderLayer<'a>; MAX_LAYERS],
    pub(crate) dec_norm: LayerNorm<'a>,
    /// Output projection to `i32` logits, `(vocab, d)`.
    pub(crate) generator: Linear<'a>,
    /// Logit difference to a Q10 base-2 exponent: `s_logit · log2(e) · 1024` (beam search).
    pub(crate) log_softmax: Requant,
    pub(crate) tokenizer: Tokenizer<'a>,
}

/// Views gathered while walking the tensor table, before they are assembled.
#[derive(Default)]
struct Parts<'a> {
    src_emb: &'a [i8],
    src_layout: Layout,
    tgt_layout: Layout,
    gen_layout: Layout,
    src_rq: &'a [Requant],
    tgt_emb: &'a [i8],
    tgt_rq: &'a [Requant],
    pos: &'a [i16],
    enc_norm: LayerNorm<'a>,
    dec_norm: LayerNorm<'a>,
    gen_w: &'a [i8],
    gen_bias: &'a [i32],
    gen_rq: &'a [Requant],
    log_softmax: Requant,
    tok_offsets: &'a [u32],
    tok_bytes: &'a [u8],
    tok_scores: &'a [i32],
    tok_sorted: &'a [u16],
}

impl<'a> Model<'a> {
    /// Verify `blob` completely and return views into it. The blob must start on an
    /// [`ALIGN`]-byte boundary; bytes past the length in its header are ignored.
    pub fn parse(blob: &'a [u8]) -> Result<Model<'a>, Error> {
        let mut m = Model::default();
        Model::parse_into(blob, &mut m)?;
        Ok(m)
    }

    /// [`Model::parse`] into a caller's slot (a `static`, say), so the model's few KiB of
    /// views never sit on the stack. On error `m` is left empty (`Model::default()`, whose
    /// zero-sized config makes every forward pass a no-op), never half-filled.
    pub fn parse_into(blob: &'a [u8], m: &mut Model<'a>) -> Result<(), Error> {
        *m = Model::default();
        let r = Model::parse_views(blob, m);
        if r.is_err() {
            *m = Model::default();
        }
        r
    }

    fn parse_views(blob: &'a [u8], m: &mut Model<'a>) -> Result<(), Error> {
        if blob.len() < HEADER_LEN {
            return Err(Error::Truncated { needed: HEADER_LEN, got: blob.len() });
        }
        if blob.as_ptr() as usize % ALIGN != 0 {
            return Err(Error::MisalignedBlob { align: ALIGN });
        }
        if blob.get(0..4) != Some(&blob::MAGIC[..]) {
            return Err(Error::BadMagic);
        }
        let version = blob::u16_at(blob, 4).unwrap_or(0);
        if version != blob::VERSION {
            return Err(Error::UnsupportedVersion { found: version, supported: blob::VERSION });
        }
        if blob::u16_at(blob, 6) != Some(HEADER_LEN as u16) {
            return Err(Error::BadConfig { field: "header length" });
        }
        let total = blob::u32_at(blob, 8).unwrap_or(0) as usize;
        if total < HEADER_LEN {
            return Err(Error::BadConfig { field: "total length" });
        }
        let blob = blob.get(..total).ok_or(Error::Truncated { needed: total, got: blob.len() })?;
        let stored = blob::u32_at(blob, 12).unwrap_or(0);
        let computed = blob::CRC.checksum(blob.get(16..).unwrap_or(&[]));
        if stored != computed {
            return Err(Error::ChecksumMismatch { stored, computed });
        }
        let config = blob::read_config(blob).ok_or(Error::BadConfig { field: "header" })?;
        config.validate()?;
        let count = blob::u32_at(blob, 56).unwrap_or(0) as usize;
        if blob::u32_at(blob, 60) != Some(HEADER_LEN as u32) {
            return Err(Error::BadConfig { field: "table offset" });
        }
        let table_end = count
            .checked_mul(ENTRY_LEN)
            .and_then(|n| n.checked_add(HEADER_LEN))
            .ok_or(Error::BadConfig { field: "tensor count" })?;
        if table_end > total {
            return Err(Error::Truncated { needed: table_end, got: total });
        }

        let mut parts = Parts::default();
        let mut index = 0usize;
        let mut data_start = table_end;
        blob::expected_tensors(&config, usize::MAX, usize::MAX, |spec| {
            if index >= count {
                return Err(Error::BadConfig { field: "tensor count" });
            }
            let e = blob::read_entry(blob, index).ok_or(Error::BadConfig { field: "tensor table" })?;
            let bytes = check_entry(blob, index, &spec, &e, data_start)?;
            data_start = e.offset as usize + bytes.len();
            let layout = Layout::from_code(e.layout, spec.dims[0], spec.dims[1]).unwrap_or_default();
            parts.take(&config, spec.tag, bytes, layout, m)?;
            index += 1;
            Ok(())
        })?;
        if index != count {
            return Err(Error::BadConfig { field: "tensor count" });
        }
        parts.assemble(config, m)
    }

    /// The model's hyper-parameters, as verified by [`Model::parse`].
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The output projection to `(vocab,)` `i32` logits.
    pub fn generator(&self) -> &Linear<'a> {
        &self.generator
    }

    /// The vocabulary's tokenizer.
    pub fn tokenizer(&self) -> &Tokenizer<'a> {
        &self.tokenizer
    }

    /// Encoder layers in use.
    pub fn encoder_layers(&self) -> &[EncoderLayer<'a>] {
        self.enc.get(..self.config.n_enc).unwrap_or(&[])
    }

    /// Decoder layers in use.
    pub fn decoder_layers(&self) -> &[DecoderLayer<'a>] {
        self.dec.get(..self.config.n_dec).unwrap_or(&[])
    }
}

/// Check one table entry against its spec and return its bytes.
fn check_entry<'a>(blob: &'a [u8], index: usize, spec: &TensorSpec, e: &Entry, data_start: usize) -> Result<&'a [u8], Error> {
    if e.tag != spec.tag {
        return Err(Error::UnexpectedTensor { index, expected: spec.tag, found: e.tag });
    }
    let shape_err = Error::BadTensorShape { tag: e.tag };
    if e.dtype != spec.dtype as u16 {
        return Err(shape_err);
    }
    // only int8 weight matrices may use a blocked layout
    let layout_ok = e.layout == 0 || (spec.dtype == DType::I8 && Layout::from_code(e.layout, e.dims[0] as usize, e.dims[1] as usize).is_some());
    if !layout_ok {
        return Err(shape_err);
    }
    // usize::MAX in a spec dim is a wildcard (tokenizer sizes the config does not fix).
    for (want, got) in spec.dims.iter().zip(e.dims) {
        if *want != usize::MAX && *want != got as usize {
            return Err(shape_err);
        }
    }
    let n = (e.dims[0] as usize)
        .checked_mul(e.dims[1] as usize)
        .and_then(|n| n.checked_mul(spec.dtype.size()))
        .ok_or(shape_err)?;
    if n != e.bytes as usize {
        return Err(shape_err);
    }
    let range_err = Error::BadTensorRange { tag: e.tag };
    let start = e.offset as usize;
    if start % ALIGN != 0 || start < data_start {
        return Err(range_err);
    }
    let end = start.checked_add(n).ok_or(range_err)?;
    blob.get(start..end).ok_or(range_err)
}

fn cast<T: bytemuck::Pod>(tag: u32, bytes: &[u8]) -> Result<&[T], Error> {
    bytemuck::try_cast_slice(bytes).map_err(|_| Error::BadTensorRange { tag })
}

fn check_requants(tag: u32, rq: &[Requant]) -> Result<(), Error> {
    match rq.iter().position(|r| !r.is_valid()) {
        Some(index) => Err(Error::BadQuantParam { tag, index }),
        None => Ok(()),
    }
}

fn layer_norm<'a>(tag: u32, bytes: &'a [u8], d: usize) -> Result<LayerNorm<'a>, Error> {
    let v: &[i32] = cast(tag, bytes)?;
    let err = Error::BadTensorShape { tag };
    let gain = v.get(..d).ok_or(err)?;
    let bias = v.get(d..2 * d).ok_or(err)?;
    let shift = *v.get(2 * d).ok_or(err)?;
    let eps = *v.get(2 * d + 1).ok_or(err)?;
    if !(Requant::SHIFT_MIN..=Requant::SHIFT_MAX).contains(&shift) {
        return Err(Error::BadQuantParam { tag, index: 2 * d });
    }
    if eps < 1 {
        return Err(Error::BadQuantParam { tag, index: 2 * d + 1 });
    }
    Ok(LayerNorm { gain, bias, shift, eps: eps as u32 })
}

/// Read `(softmax, ctx)` requants from 4 scalars.
fn attention_params(tag: u32, s: &[i32], at: usize) -> Result<AttentionParams, Error> {
    let g = |i: usize| s.get(at + i).copied().ok_or(Error::BadTensorShape { tag });
    let p = AttentionParams {
        softmax: Requant { mult: g(0)?, shift: g(1)? },
        ctx: Requant { mult: g(2)?, shift: g(3)? },
    };
    if !p.softmax.is_valid() {
        return Err(Error::BadQuantParam { tag, index: at });
    }
    if !p.ctx.is_valid() {
        return Err(Error::BadQuantParam { tag, index: at + 2 });
    }
    Ok(p)
}

/// Read a residual add's `(ma, mb, shift)` from 3 scalars.
fn residual_params(tag: u32, s: &[i32], at: usize) -> Result<ResidualParams, Error> {
    let g = |i: usize| s.get(at + i).copied().ok_or(Error::BadTensorShape { tag });
    let p = ResidualParams { ma: g(0)?, mb: g(1)?, shift: g(2)? };
    if !(Requant::SHIFT_MIN..=Requant::SHIFT_MAX).contains(&p.shift) {
        return Err(Error::BadQuantParam { tag, index: at + 2 });
    }
    Ok(p)
}

impl<'a> Parts<'a> {
    /// File one tensor's bytes under its tag.
    fn take(&mut self, c: &Config, full_tag: u32, bytes: &'a [u8], layout: Layout, m: &mut Model<'a>) -> Result<(), Error> {
        let group = full_tag >> 24;
        let layer = ((full_tag >> 16) & 0xff) as usize;
        let kind = full_tag & 0xffff;
        let d = c.d_model;
        let t = full_tag;
        match group {
            tag::GLOBAL => match kind {
                tag::SRC_EMB => (self.src_emb, self.src_layout) = (cast(t, bytes)?, layout),
                tag::SRC_EMB_RQ => self.src_rq = checked_rq(t, bytes)?,
                tag::TGT_EMB => (self.tgt_emb, self.tgt_layout) = (cast(t, bytes)?, layout),
                tag::TGT_EMB_RQ => self.tgt_rq = checked_rq(t, bytes)?,
                tag::POS => self.pos = cast(t, bytes)?,
                tag::ENC_NORM => self.enc_norm = layer_norm(t, bytes, d)?,
                tag::DEC_NORM => self.dec_norm = layer_norm(t, bytes, d)?,
                tag::GEN_W => (self.gen_w, self.gen_layout) = (cast(t, bytes)?, layout),
                tag::GEN_BIAS => self.gen_bias = cast(t, bytes)?,
                tag::GEN_RQ => self.gen_rq = checked_rq(t, bytes)?,
                tag::SCALARS => {
                    let s: &[i32] = cast(t, bytes)?;
                    let g = |i: usize| s.get(i).copied().ok_or(Error::BadTensorShape { tag: t });
                    self.log_softmax = Requant { mult: g(0)?, shift: g(1)? };
                    if !self.log_softmax.is_valid() {
                        return Err(Error::BadQuantParam { tag: t, index: 0 });
                    }
                }
                _ => return Err(Error::BadTensorShape { tag: t }),
            },
            tag::ENC => {
                let l = m.enc.get_mut(layer).ok_or(Error::BadTensorShape { tag: t })?;
                match kind {
                    tag::SA_Q..=0x1f => linear_part(attn_slot(&mut l.sa, kind - tag::SA_Q), t, bytes, layout)?,
                    tag::FF1..=0x37 => linear_part(ff_slot(&mut l.ff, kind - tag::FF1), t, bytes, layout)?,
                    tag::LN1 => l.ln1 = layer_norm(t, bytes, d)?,
                    tag::LN2 => l.ln2 = layer_norm(t, bytes, d)?,
                    tag::ACT_TABLE => l.ff.act = Some(cast(t, bytes)?),
                    tag::SCALARS => {
                        let s: &[i32] = cast(t, bytes)?;
                        l.sa.params = attention_params(t, s, 0)?;
                        l.res1 = residual_params(t, s, 4)?;
                        l.res2 = residual_params(t, s, 7)?;
                    }
                    _ => return Err(Error::BadTensorShape { tag: t }),
                }
            }
            tag::DEC => {
                let l = m.dec.get_mut(layer).ok_or(Error::BadTensorShape { tag: t })?;
                match kind {
                    tag::SA_Q..=0x1f => linear_part(attn_slot(&mut l.sa, kind - tag::SA_Q), t, bytes, layout)?,
                    tag::CA_Q..=0x2f => linear_part(attn_slot(&mut l.ca, kind - tag::CA_Q), t, bytes, layout)?,
                    tag::FF1..=0x37 => linear_part(ff_slot(&mut l.ff, kind - tag::FF1), t, bytes, layout)?,
                    tag::LN1 => l.ln1 = layer_norm(t, bytes, d)?,
                    tag::LN2 => l.ln2 = layer_norm(t, bytes, d)?,
                    tag::LN3 => l.ln3 = layer_norm(t, bytes, d)?,
                    tag::ACT_TABLE => l.ff.act = Some(cast(t, bytes)?),
                    tag::SCALARS => {
                        let s: &[i32] = cast(t, bytes)?;
                        l.sa.params = attention_params(t, s, 0)?;
                        l.res1 = residual_params(t, s, 4)?;
                        l.ca.params = attention_params(t, s, 7)?;
                        l.res2 = residual_params(t, s, 11)?;
                        l.res3 = residual_params(t, s, 14)?;
                    }
                    _ => return Err(Error::BadTensorShape { tag: t }),
                }
            }
            tag::TOK => match kind {
                tag::TOK_OFFSETS => self.tok_offsets = cast(t, bytes)?,
                tag::TOK_BYTES => self.tok_bytes = bytes,
                tag::TOK_SCORES => self.tok_scores = cast(t, bytes)?,
                tag::TOK_SORTED => self.tok_sorted = cast(t, bytes)?,
                _ => return Err(Error::BadTensorShape { tag: t }),
            },
            _ => return Err(Error::BadTensorShape { tag: t }),
        }
        Ok(())
    }

    fn assemble(self, config: Config, m: &mut Model<'a>) -> Result<(), Error> {
        let d = config.d_model;
        let (tgt_table, tgt_layout, tgt_rq) =
            if config.tied() { (self.src_emb, self.src_layout, self.src_rq) } else { (self.tgt_emb, self.tgt_layout, self.tgt_rq) };
        let (gen_w, gen_layout) = if config.tied() { (self.src_emb, self.src_layout) } else { (self.gen_w, self.gen_layout) };
        for l in m.enc.iter_mut().take(config.n_enc) {
            set_k(&mut l.sa, d);
            set_ff_k(&mut l.ff, config.d_ff, d);
        }
        for l in m.dec.iter_mut().take(config.n_dec) {
            set_k(&mut l.sa, d);
            set_k(&mut l.ca, d);
            set_ff_k(&mut l.ff, config.d_ff, d);
        }
        m.tokenizer = Tokenizer::new(Vocab {
            offsets: self.tok_offsets,
            bytes: self.tok_bytes,
            scores: self.tok_scores,
            sorted: self.tok_sorted,
            unk: config.unk,
            bos: config.bos,
            eos: config.eos,
            pad: config.pad,
            add_dummy_prefix: config.flags & blob::FLAG_ADD_DUMMY_PREFIX != 0,
            remove_extra_whitespaces: config.flags & blob::FLAG_REMOVE_EXTRA_WS != 0,
            ..Vocab::default() // TODO(blob): `kind` and `byte_ids` are not in the blob yet: unigram, no byte_fallback
        })?;
        m.config = config;
        m.src_emb = Embedding { table: self.src_emb, layout: self.src_layout, rq: self.src_rq, pos: self.pos, d };
        m.tgt_emb = Embedding { table: tgt_table, layout: tgt_layout, rq: tgt_rq, pos: self.pos, d };
        m.enc_norm = self.enc_norm;
        m.dec_norm = self.dec_norm;
        m.generator = Linear::new(gen_w, gen_layout, self.gen_bias, self.gen_rq, d);
        m.log_softmax = self.log_softmax;
        Ok(())
    }
}

fn checked_rq(tag: u32, bytes: &[u8]) -> Result<&[Requant], Error> {
    let rq: &[Requant] = cast(tag, bytes)?;
    check_requants(tag, rq)?;
    Ok(rq)
}

fn attn_slot<'x, 'a>(a: &'x mut Attention<'a>, off: u32) -> (&'x mut Linear<'a>, u32) {
    let l = match off / 4 {
        0 => &mut a.q,
        1 => &mut a.k,
        2 => &mut a.v,
        _ => &mut a.o,
    };
    (l, off % 4)
}

fn ff_slot<'x, 'a>(f: &'x mut FeedForward<'a>, off: u32) -> (&'x mut Linear<'a>, u32) {
    let l = if off / 4 == 0 { &mut f.ff1 } else { &mut f.ff2 };
    (l, off % 4)
}

/// Fill the weight, bias or requant part (`part` 0, 1, 2) of a linear.
fn linear_part<'a>(slot: (&mut Linear<'a>, u32), t: u32, bytes: &'a [u8], layout: Layout) -> Result<(), Error> {
    let (l, part) = slot;
    match part {
        0 => (l.w, l.layout) = (cast(t, bytes)?, layout),
        1 => l.bias = cast(t, bytes)?,
        2 => l.rq = checked_rq(t, bytes)?,
        _ => return Err(Error::BadTensorShape { tag: t }),
    }
    Ok(())
}

fn set_k(a: &mut Attention<'_>, d: usize) {
    for l in [&mut a.q, &mut a.k, &mut a.v, &mut a.o] {
        *l = Linear::new(l.w, l.layout, l.bias, l.rq, d);
    }
}

fn set_ff_k(f: &mut FeedForward<'_>, d_ff: usize, d: usize) {
    f.ff1 = Linear::new(f.ff1.w, f.ff1.layout, f.ff1.bias, f.ff1.rq, d);
    f.ff2 = Linear::new(f.ff2.w, f.ff2.layout, f.ff2.bias, f.ff2.rq, d_ff);
}

const _: () = assert!(HEADER_LEN % ALIGN == 0 && ENTRY_LEN % ALIGN == 0);
const _: () = assert!(DType::Requant.size() == core::mem::size_of::<Requant>());
