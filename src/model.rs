//! A parsed, validated model: zero-copy views into the blob, in the shape of the forward pass.
//!
//! Every layer is three residual sublayers, each a norm, an operation and a residual add
//! ([`Sublayer`]); encoder layers and decoder-only layers leave `cross` empty. The layers of
//! both stacks live in one array: the encoder's first, then the decoder's.

use crate::blob::{self, ActKind, Config, DType, Entry, FeatureQuant, InputKind, NormKind, NormParams, NormPart, Part, PosKind, Proj, RopeParams, Side, Stack, Sub, Tag, TensorSpec, TokPart, TokenizerSizes, ALIGN, MAX_LAYERS};
use crate::kernels::attention::{AttentionParams, Heads};
use crate::kernels::embedding::Embedding;
use crate::kernels::layernorm::{LayerNorm, RmsNorm};
use crate::kernels::layout::Layout;
use crate::kernels::linear::Linear;
use crate::kernels::residual::ResidualParams;
use crate::kernels::rope::Rope;
use crate::quant::Requant;
use crate::tokenizer::{ModelKind as TokenizerModel, Tokenizer, Vocab};
use crate::Error;
use crate::blob::integrity::Integrity;

/// A norm of the model's kind.
#[derive(Debug, Clone, Copy)]
pub enum Norm<'a> {
    Layer(LayerNorm<'a>),
    Rms(RmsNorm<'a>),
}

impl Default for Norm<'_> {
    fn default() -> Self {
        Norm::Layer(LayerNorm::default())
    }
}

impl Norm<'_> {
    /// Normalize each `(d,)` row of `x` into `y`.
    #[inline]
    pub fn forward(&self, x: &[i16], y: &mut [i16]) {
        match self {
            Norm::Layer(n) => n.forward(x, y),
            Norm::Rms(n) => n.forward(x, y),
        }
    }
}

/// Self- or cross-attention weights of one layer.
#[derive(Debug, Clone, Copy, Default)]
pub struct Attention<'a> {
    /// `(d, d)`.
    pub q: Linear<'a>,
    /// `(kv_width, d)`: fewer rows than `q` with grouped-query attention.
    pub k: Linear<'a>,
    pub v: Linear<'a>,
    /// `(d, d)`.
    pub o: Linear<'a>,
    pub params: AttentionParams,
    /// With rotary positions: `q` and `k` write `i16`, rotated into `i8` by these.
    pub rope: RopeParams,
}

/// The feed-forward activation.
#[derive(Debug, Clone, Copy, Default)]
pub enum Act<'a> {
    #[default]
    Relu,
    /// GELU (either form): the interpolated table of [`crate::kernels::activation`].
    Table(&'a [i16]),
    /// `silu(gate) · up`: SiLU's table on the gate, then the product's requantizer.
    SwiGlu { silu: &'a [i16], mul: Requant },
}

/// The feed-forward block: `down(act(up(x)))`, or `down(silu(gate(x)) · up(x))`.
#[derive(Debug, Clone, Copy, Default)]
pub struct FeedForward<'a> {
    pub up: Linear<'a>,
    /// SwiGLU only.
    pub gate: Linear<'a>,
    pub down: Linear<'a>,
    pub act: Act<'a>,
}

/// One residual sublayer: `x + op(norm(x))` (pre-norm) or `norm(x + op(x))` (post-norm).
#[derive(Debug, Clone, Copy, Default)]
pub struct Sublayer<'a, T> {
    pub norm: Norm<'a>,
    pub op: T,
    pub residual: ResidualParams,
}

/// One layer.
#[derive(Debug, Clone, Copy, Default)]
pub struct Layer<'a> {
    pub attn: Sublayer<'a, Attention<'a>>,
    /// The encoder-decoder's decoder only.
    pub cross: Sublayer<'a, Attention<'a>>,
    pub ffn: Sublayer<'a, FeedForward<'a>>,
}

/// What the first stack reads.
#[derive(Debug, Clone, Copy)]
pub enum Input<'a> {
    Tokens(Embedding<'a>),
    /// `(d, n_features)` projection of `i16` frames, and how a caller quantizes them.
    Features { proj: Linear<'a>, quant: &'a [FeatureQuant] },
}

impl Default for Input<'_> {
    fn default() -> Self {
        Input::Tokens(Embedding::default())
    }
}

/// How positions enter: an added table, rotary tables, or nothing.
#[derive(Debug, Clone, Copy, Default)]
pub enum Positions<'a> {
    #[default]
    None,
    /// `(max_len, d)` `i16` in the residual stream's input scale.
    Table(&'a [i16]),
    Rope(Rope<'a>),
}

impl<'a> Positions<'a> {
    /// Row `p` of the added table (`d` values), or empty when positions are not added.
    #[inline]
    pub fn row(&self, p: usize, d: usize) -> &'a [i16] {
        match self {
            Positions::Table(t) => t.get(p * d..(p + 1) * d).unwrap_or(&[]),
            _ => &[],
        }
    }
}

/// A model, parsed and verified. Every view has the shape its config calls for and every
/// quantization parameter is in range, so no forward path can index out of bounds. The fields
/// are private: [`Model::parse`] is the only way to a non-empty model, so every size computed
/// from its config is within the bounds `Config::validate` checks.
#[derive(Debug, Clone, Default)]
pub struct Model<'a> {
    pub(crate) config: Config,
    /// The encoder's input (encoder-decoder, encoder-only).
    pub(crate) input: Input<'a>,
    /// The decoder's token embedding (encoder-decoder, decoder-only).
    pub(crate) target: Embedding<'a>,
    pub(crate) positions: Positions<'a>,
    /// The encoder's layers, then the decoder's.
    pub(crate) layers: [Layer<'a>; MAX_LAYERS],
    pub(crate) enc_norm: Option<Norm<'a>>,
    pub(crate) dec_norm: Option<Norm<'a>>,
    /// Encoder-only, `FLAG_EMBED_NORM`: the norm over the input rows.
    pub(crate) embed_norm: Option<Norm<'a>>,
    /// Encoder-only, `FLAG_POOLER`: `(d, d)` into the tanh table's input scale, and the
    /// `(257,)` tanh table into the head's input scale.
    pub(crate) pooler: Option<(Linear<'a>, &'a [i16])>,
    /// Logits `(vocab, d)`, or the encoder-only head `(n_outputs, d)`, to `i32`.
    pub(crate) output: Linear<'a>,
    /// Token outputs: a logit difference to its Q10 base-2 exponent (`s_logit · log2(e) ·
    /// 1024`); encoder-only: the real value of one output unit.
    pub(crate) output_scale: Requant,
    pub(crate) tokenizer: Tokenizer<'a>,
    /// The verified blob, `0..total_len`, for [`Model::integrity`].
    pub(crate) blob: &'a [u8],
    /// The CRC-32 `parse` verified.
    pub(crate) crc: u32,
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
    /// views never sit on the stack. On error `m` is left empty (`Model::default()`), never
    /// half-filled.
    pub fn parse_into(blob: &'a [u8], m: &mut Model<'a>) -> Result<(), Error> {
        m.clear();
        let r = Model::parse_views(blob, m);
        if r.is_err() {
            m.clear();
        }
        r
    }

    /// Empty the model field by field, in place: `*self = Model::default()` would build the
    /// whole model (several KiB) on the stack first.
    fn clear(&mut self) {
        let Model { config, input, target, positions, layers, enc_norm, dec_norm, embed_norm, pooler, output, output_scale, tokenizer, blob, crc } = self;
        *config = Config::default();
        *input = Input::default();
        *target = Embedding::default();
        *positions = Positions::default();
        for l in layers.iter_mut() {
            *l = Layer::default();
        }
        (*enc_norm, *dec_norm, *embed_norm, *pooler) = (None, None, None, None);
        *output = Linear::default();
        *output_scale = Requant::default();
        *tokenizer = Tokenizer::default();
        (*blob, *crc) = (&[], 0);
    }

    fn parse_views(blob: &'a [u8], m: &mut Model<'a>) -> Result<(), Error> {
        let total = verify_container(blob)?;
        let blob = blob.get(..total).ok_or(Error::Truncated { needed: total, got: blob.len() })?;
        let h = blob::read_header(blob).ok_or(Error::Truncated { needed: blob::HEADER_LEN, got: blob.len() })?;
        let config = Config::from_record(&h.config)?;
        let count = h.tensor_count as usize;
        let table_end = count
            .checked_mul(blob::ENTRY_LEN)
            .and_then(|n| n.checked_add(blob::HEADER_LEN))
            .ok_or(Error::BadConfig { field: "tensor count" })?;
        if table_end > total {
            return Err(Error::Truncated { needed: table_end, got: total });
        }
        m.config = config;
        (m.blob, m.crc) = (blob, h.crc);
        let mut parts = Parts::default();
        let mut index = 0usize;
        let mut data_start = table_end;
        blob::expected_tensors(&config, TokenizerSizes::ANY, |spec| {
            if index >= count {
                return Err(Error::BadConfig { field: "tensor count" });
            }
            let e = blob::read_entry(blob, index).ok_or(Error::BadConfig { field: "tensor table" })?;
            let bytes = check_entry(blob, index, &spec, &e, data_start)?;
            data_start = e.offset as usize + bytes.len();
            let layout = Layout::from_code(e.layout, spec.dims[0], spec.dims[1]).unwrap_or_default();
            parts.take(spec.tag, bytes, (layout, e.dtype == DType::I4 as u16), m)?;
            index += 1;
            Ok(())
        })?;
        if index != count {
            return Err(Error::BadConfig { field: "tensor count" });
        }
        parts.assemble(m)
    }

    /// A new integrity pass over the blob this model was parsed from: recomputes, in chunks of
    /// the caller's size, the CRC-32 `parse` verified ([`Integrity::step`]).
    pub fn integrity(&self) -> Integrity {
        Integrity::new(self.crc, self.blob.len())
    }

    /// The model's hyper-parameters, as verified by [`Model::parse`].
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The output projection: `(vocab,)` logits, or the encoder-only head's outputs, in `i32`.
    pub fn output(&self) -> &Linear<'a> {
        &self.output
    }

    /// Encoder-only: the real value of one unit of the head's outputs (a host dequantizes with
    /// `Requant::to_real`). Token models: the log-softmax multiplier.
    pub fn output_scale(&self) -> Requant {
        self.output_scale
    }

    /// Feature input: how each feature is quantized (`(n_features,)`); empty for token input.
    pub fn feature_quant(&self) -> &'a [FeatureQuant] {
        match self.input {
            Input::Features { quant, .. } => quant,
            Input::Tokens(_) => &[],
        }
    }

    /// The vocabulary's tokenizer (empty for feature input).
    pub fn tokenizer(&self) -> &Tokenizer<'a> {
        &self.tokenizer
    }

    /// The layers of one stack.
    pub fn layers(&self, s: Stack) -> &[Layer<'a>] {
        let c = &self.config;
        let range = match s {
            Stack::Encoder => 0..c.n_enc,
            Stack::Decoder => c.n_enc..c.n_enc + c.n_dec,
        };
        self.layers.get(range).unwrap_or(&[])
    }

    /// The attention heads of every attention block.
    pub fn heads(&self) -> Heads {
        let c = &self.config;
        Heads { q: c.nhead, kv: c.n_kv_heads, dim: c.d_head() }
    }
}

/// The header, the length, the checksum: everything before the tensor table. Returns the blob's
/// stated length.
fn verify_container(blob: &[u8]) -> Result<usize, Error> {
    if blob.len() < blob::HEADER_LEN {
        return Err(Error::Truncated { needed: blob::HEADER_LEN, got: blob.len() });
    }
    if blob.as_ptr() as usize % ALIGN != 0 {
        return Err(Error::MisalignedBlob { align: ALIGN });
    }
    let h = blob::read_header(blob).ok_or(Error::Truncated { needed: blob::HEADER_LEN, got: blob.len() })?;
    if h.magic != blob::MAGIC {
        return Err(Error::BadMagic);
    }
    if h.version != blob::VERSION {
        return Err(Error::UnsupportedVersion { found: h.version, supported: blob::VERSION });
    }
    if h.header_len as usize != blob::HEADER_LEN {
        return Err(Error::BadConfig { field: "header length" });
    }
    let total = h.total_len as usize;
    if total < blob::HEADER_LEN {
        return Err(Error::BadConfig { field: "total length" });
    }
    let body = blob.get(blob::CRC_START..total).ok_or(Error::Truncated { needed: total, got: blob.len() })?;
    let computed = blob::CRC.checksum(body);
    if h.crc != computed {
        return Err(Error::ChecksumMismatch { stored: h.crc, computed });
    }
    if h.table_offset as usize != blob::HEADER_LEN {
        return Err(Error::BadConfig { field: "table offset" });
    }
    Ok(total)
}

/// Check one table entry against its spec and return its bytes.
fn check_entry<'a>(blob: &'a [u8], index: usize, spec: &TensorSpec, e: &Entry, data_start: usize) -> Result<&'a [u8], Error> {
    let code = spec.tag.code();
    if e.tag != code {
        return Err(Error::UnexpectedTensor { index, expected: code, found: e.tag });
    }
    let shape_err = Error::BadTensorShape { tag: code };
    let dtype = DType::from_u16(e.dtype).filter(|&d| spec.accepts_dtype(d)).ok_or(shape_err)?;
    // only weight matrices (int8 or int4) may use a blocked layout
    let layout_ok = e.layout == 0 || (spec.dtype == DType::I8 && Layout::from_code(e.layout, e.dims[0] as usize, e.dims[1] as usize).is_some());
    if !layout_ok {
        return Err(shape_err);
    }
    for (want, got) in spec.dims.iter().zip(e.dims) {
        if *want != usize::MAX && *want != got as usize {
            return Err(shape_err);
        }
    }
    let n = dtype.bytes(e.dims[0] as usize, e.dims[1] as usize).ok_or(shape_err)?;
    if n != e.bytes as usize {
        return Err(shape_err);
    }
    let range_err = Error::BadTensorRange { tag: code };
    let start = e.offset as usize;
    if start % ALIGN != 0 || start < data_start {
        return Err(range_err);
    }
    let end = start.checked_add(n).ok_or(range_err)?;
    blob.get(start..end).ok_or(range_err)
}

fn cast<T: bytemuck::Pod>(tag: Tag, bytes: &[u8]) -> Result<&[T], Error> {
    bytemuck::try_cast_slice(bytes).map_err(|_| Error::BadTensorRange { tag: tag.code() })
}

/// A one-row record tensor.
fn record<T: bytemuck::Pod>(tag: Tag, bytes: &[u8]) -> Result<T, Error> {
    bytemuck::try_pod_read_unaligned(bytes).map_err(|_| Error::BadTensorShape { tag: tag.code() })
}

fn bad_param(tag: Tag, index: usize) -> Error {
    Error::BadQuantParam { tag: tag.code(), index }
}

fn requants(tag: Tag, bytes: &[u8]) -> Result<&[Requant], Error> {
    let rq: &[Requant] = cast(tag, bytes)?;
    match rq.iter().position(|r| !r.is_valid()) {
        Some(index) => Err(bad_param(tag, index)),
        None => Ok(rq),
    }
}

fn one_requant(tag: Tag, bytes: &[u8]) -> Result<Requant, Error> {
    let r: Requant = record(tag, bytes)?;
    if !r.is_valid() {
        return Err(bad_param(tag, 0));
    }
    Ok(r)
}

fn shift_ok(s: i32) -> bool {
    (Requant::SHIFT_MIN..=Requant::SHIFT_MAX).contains(&s)
}

/// The parts of a norm, gathered before the norm is built.
#[derive(Default, Clone, Copy)]
struct NormViews<'a> {
    gain: &'a [i32],
    bias: &'a [i32],
    params: NormParams,
}

impl<'a> NormViews<'a> {
    fn take(&mut self, tag: Tag, part: NormPart, bytes: &'a [u8]) -> Result<(), Error> {
        match part {
            NormPart::Gain => self.gain = cast(tag, bytes)?,
            NormPart::Bias => self.bias = cast(tag, bytes)?,
            NormPart::Params => {
                let p: NormParams = record(tag, bytes)?;
                if !shift_ok(p.shift) {
                    return Err(bad_param(tag, 0));
                }
                if p.eps < 1 {
                    return Err(bad_param(tag, 1));
                }
                self.params = p;
            }
        }
        Ok(())
    }

    fn build(&self, kind: NormKind) -> Norm<'a> {
        let (shift, eps) = (self.params.shift, self.params.eps as u32);
        match kind {
            NormKind::LayerNorm => Norm::Layer(LayerNorm { gain: self.gain, bias: self.bias, shift, eps }),
            NormKind::RmsNorm => Norm::Rms(RmsNorm { gain: self.gain, shift, eps }),
        }
    }
}

/// Views gathered while walking the tensor table, before they are assembled.
#[derive(Default)]
struct Parts<'a> {
    emb: [EmbParts<'a>; 2],
    norms: [[NormViews<'a>; 3]; MAX_LAYERS],
    final_norms: [NormViews<'a>; 2],
    embed_norm: NormViews<'a>,
    pooler: Linear<'a>,
    pooler_table: &'a [i16],
    act_table: [&'a [i16]; MAX_LAYERS],
    gate_mul: [Requant; MAX_LAYERS],
    rope: [&'a [i16]; 2],
    tok_offsets: &'a [u32],
    tok_bytes: &'a [u8],
    tok_scores: &'a [i32],
    tok_sorted: &'a [u16],
    tok_byte_ids: &'a [u16],
    tok_classes: &'a [u32],
    tok_map_from: &'a [u32],
    tok_map_offsets: &'a [u32],
    tok_map_bytes: &'a [u8],
}


const fn sub_index(s: Sub) -> usize {
    match s {
        Sub::SelfAttn => 0,
        Sub::CrossAttn => 1,
        Sub::FeedForward => 2,
    }
}


/// An embedding table as filed: its bytes, (layout, int4), requantizers.
type EmbParts<'a> = (&'a [i8], (Layout, bool), &'a [Requant]);

/// Fill the weight, bias or requant of a linear (its `k` and fused flag are set at assembly).
fn linear_part<'a>(l: &mut Linear<'a>, tag: Tag, part: Part, bytes: &'a [u8], (layout, int4): (Layout, bool)) -> Result<(), Error> {
    match part {
        Part::Weight => (l.w, l.layout, l.int4) = (cast(tag, bytes)?, layout, int4),
        Part::Bias => l.bias = cast(tag, bytes)?,
        Part::Requant => l.rq = requants(tag, bytes)?,
    }
    Ok(())
}

impl<'a> Parts<'a> {
    /// The embedding views of one side.
    fn side(&mut self, s: Side) -> &mut EmbParts<'a> {
        let [source, target] = &mut self.emb;
        match s {
            Side::Source => source,
            Side::Target => target,
        }
    }

    /// File one tensor's bytes under its tag.
    /// `layout`: the weight matrices' layout and whether they are int4.
    fn take(&mut self, tag: Tag, bytes: &'a [u8], layout: (Layout, bool), m: &mut Model<'a>) -> Result<(), Error> {
        let n_enc = m.config.n_enc;
        let layer_index = |stack: Stack, layer: u8| -> Result<usize, Error> {
            let i = match stack {
                Stack::Encoder => layer as usize,
                Stack::Decoder => n_enc + layer as usize,
            };
            if i < MAX_LAYERS {
                Ok(i)
            } else {
                Err(Error::BadTensorShape { tag: tag.code() })
            }
        };
        match tag {
            Tag::Embedding(s) => {
                let e = self.side(s);
                (e.0, e.1) = (cast(tag, bytes)?, layout);
            }
            Tag::EmbeddingRq(s) => self.side(s).2 = requants(tag, bytes)?,
            Tag::Positions => m.positions = Positions::Table(cast(tag, bytes)?),
            Tag::RopeCos => self.rope[0] = cast(tag, bytes)?,
            Tag::RopeSin => self.rope[1] = cast(tag, bytes)?,
            Tag::InputProj(part) => {
                if let Input::Tokens(_) = m.input {
                    m.input = Input::Features { proj: Linear::default(), quant: &[] };
                }
                if let Input::Features { proj, .. } = &mut m.input {
                    linear_part(proj, tag, part, bytes, layout)?;
                }
            }
            Tag::FeatureQuant => {
                let q: &[FeatureQuant] = cast(tag, bytes)?;
                if let Some(i) = q.iter().position(|f| !f.scale.is_valid()) {
                    return Err(bad_param(tag, i));
                }
                if let Input::Features { quant, .. } = &mut m.input {
                    *quant = q;
                }
            }
            Tag::FinalNorm(s, part) => {
                let [enc, dec] = &mut self.final_norms;
                match s {
                    Stack::Encoder => enc.take(tag, part, bytes)?,
                    Stack::Decoder => dec.take(tag, part, bytes)?,
                }
            }
            Tag::Output(part) => linear_part(&mut m.output, tag, part, bytes, layout)?,
            Tag::EmbedNorm(part) => self.embed_norm.take(tag, part, bytes)?,
            Tag::Pooler(part) => linear_part(&mut self.pooler, tag, part, bytes, layout)?,
            Tag::PoolerTable => self.pooler_table = cast(tag, bytes)?,
            Tag::LogSoftmax | Tag::HeadScale => m.output_scale = one_requant(tag, bytes)?,
            Tag::Linear { stack, layer, sub, proj, part } => {
                let l = m.layers.get_mut(layer_index(stack, layer)?).ok_or(Error::BadTensorShape { tag: tag.code() })?;
                let lin = match (sub, proj) {
                    (Sub::SelfAttn | Sub::CrossAttn, Proj::Q | Proj::K | Proj::V | Proj::O) => {
                        let a = if sub == Sub::SelfAttn { &mut l.attn.op } else { &mut l.cross.op };
                        match proj {
                            Proj::Q => &mut a.q,
                            Proj::K => &mut a.k,
                            Proj::V => &mut a.v,
                            _ => &mut a.o,
                        }
                    }
                    (Sub::FeedForward, Proj::Up) => &mut l.ffn.op.up,
                    (Sub::FeedForward, Proj::Gate) => &mut l.ffn.op.gate,
                    (Sub::FeedForward, Proj::Down) => &mut l.ffn.op.down,
                    _ => return Err(Error::BadTensorShape { tag: tag.code() }),
                };
                linear_part(lin, tag, part, bytes, layout)?;
            }
            Tag::Norm { stack, layer, sub, part } => {
                let i = layer_index(stack, layer)?;
                self.norms.get_mut(i).and_then(|n| n.get_mut(sub_index(sub))).ok_or(Error::BadTensorShape { tag: tag.code() })?.take(tag, part, bytes)?;
            }
            Tag::Attention { stack, layer, sub } => {
                let l = m.layers.get_mut(layer_index(stack, layer)?).ok_or(Error::BadTensorShape { tag: tag.code() })?;
                let p: AttentionParams = record(tag, bytes)?;
                if !p.softmax.is_valid() {
                    return Err(bad_param(tag, 0));
                }
                if !p.ctx.is_valid() {
                    return Err(bad_param(tag, 2));
                }
                if sub == Sub::CrossAttn {
                    l.cross.op.params = p;
                } else {
                    l.attn.op.params = p;
                }
            }
            Tag::Rope { stack, layer } => {
                let l = m.layers.get_mut(layer_index(stack, layer)?).ok_or(Error::BadTensorShape { tag: tag.code() })?;
                let p: RopeParams = record(tag, bytes)?;
                if !p.q.is_valid() {
                    return Err(bad_param(tag, 0));
                }
                if !p.k.is_valid() {
                    return Err(bad_param(tag, 2));
                }
                l.attn.op.rope = p;
            }
            Tag::Residual { stack, layer, sub } => {
                let l = m.layers.get_mut(layer_index(stack, layer)?).ok_or(Error::BadTensorShape { tag: tag.code() })?;
                let p: ResidualParams = record(tag, bytes)?;
                if !shift_ok(p.shift) {
                    return Err(bad_param(tag, 2));
                }
                match sub {
                    Sub::SelfAttn => l.attn.residual = p,
                    Sub::CrossAttn => l.cross.residual = p,
                    Sub::FeedForward => l.ffn.residual = p,
                }
            }
            Tag::ActTable { stack, layer } => {
                let i = layer_index(stack, layer)?;
                *self.act_table.get_mut(i).ok_or(Error::BadTensorShape { tag: tag.code() })? = cast(tag, bytes)?;
            }
            Tag::GateMul { stack, layer } => {
                let i = layer_index(stack, layer)?;
                *self.gate_mul.get_mut(i).ok_or(Error::BadTensorShape { tag: tag.code() })? = one_requant(tag, bytes)?;
            }
            Tag::Tokenizer(part) => match part {
                TokPart::Offsets => self.tok_offsets = cast(tag, bytes)?,
                TokPart::Bytes => self.tok_bytes = bytes,
                TokPart::Scores => self.tok_scores = cast(tag, bytes)?,
                TokPart::Sorted => self.tok_sorted = cast(tag, bytes)?,
                TokPart::ByteIds => self.tok_byte_ids = cast(tag, bytes)?,
                TokPart::Classes => self.tok_classes = cast(tag, bytes)?,
                TokPart::MapFrom => self.tok_map_from = cast(tag, bytes)?,
                TokPart::MapOffsets => self.tok_map_offsets = cast(tag, bytes)?,
                TokPart::MapBytes => self.tok_map_bytes = bytes,
            },
        }
        Ok(())
    }

    /// Every view filed: build the norms, activations and linears (with their input widths).
    fn assemble(self, m: &mut Model<'a>) -> Result<(), Error> {
        let c = m.config;
        let d = c.d_model;
        let kind = c.norm;
        let fix = |l: &mut Linear<'a>, k: usize| *l = Linear::new(l.w, l.layout, l.bias, l.rq, k).with_int4(l.int4);
        let n_layers = c.n_enc + c.n_dec;
        for (i, l) in m.layers.iter_mut().enumerate().take(n_layers) {
            let norms = self.norms.get(i).copied().unwrap_or_default();
            for a in [&mut l.attn.op, &mut l.cross.op] {
                for lin in [&mut a.q, &mut a.k, &mut a.v, &mut a.o] {
                    fix(lin, d);
                }
            }
            fix(&mut l.ffn.op.up, d);
            fix(&mut l.ffn.op.gate, d);
            fix(&mut l.ffn.op.down, c.d_ff);
            l.attn.norm = norms[0].build(kind);
            l.cross.norm = norms[1].build(kind);
            l.ffn.norm = norms[2].build(kind);
            let table = self.act_table.get(i).copied().unwrap_or(&[]);
            l.ffn.op.act = match c.act {
                ActKind::Relu => Act::Relu,
                ActKind::Gelu | ActKind::GeluTanh | ActKind::Silu => Act::Table(table),
                ActKind::SwiGlu => Act::SwiGlu { silu: table, mul: self.gate_mul.get(i).copied().unwrap_or_default() },
            };
        }
        if c.final_norm() {
            if c.n_enc > 0 {
                m.enc_norm = Some(self.final_norms[0].build(kind));
            }
            if c.n_dec > 0 {
                m.dec_norm = Some(self.final_norms[1].build(kind));
            }
        }
        if c.embed_norm() {
            m.embed_norm = Some(self.embed_norm.build(kind));
        }
        if c.pooler() {
            let mut p = self.pooler;
            fix(&mut p, d);
            m.pooler = Some((p, self.pooler_table));
        }
        if c.positions == PosKind::Rope {
            m.positions = Positions::Rope(Rope { cos: self.rope[0], sin: self.rope[1], half: c.d_head() / 2 });
        }
        let emb = |(table, (layout, int4), rq): EmbParts<'a>| Embedding { table, layout, int4, rq, d };
        let [source, target] = self.emb;
        // the encoder-decoder ties both sides into the source table
        let target = if c.kind == blob::ModelKind::EncoderDecoder && c.tied() { source } else { target };
        match &mut m.input {
            Input::Tokens(e) => *e = emb(source),
            Input::Features { proj, .. } => fix(proj, c.n_features),
        }
        m.target = emb(target);
        if c.tied() {
            // the output projection is the table its tokens come from
            let (w, (layout, int4)) = if c.kind == blob::ModelKind::EncoderDecoder { (source.0, source.1) } else { (target.0, target.1) };
            m.output.w = w;
            m.output.layout = layout;
            m.output.int4 = int4;
        }
        fix(&mut m.output, d);
        if c.input == InputKind::Tokens {
            m.tokenizer = Tokenizer::new(Vocab {
                offsets: self.tok_offsets,
                bytes: self.tok_bytes,
                scores: self.tok_scores,
                sorted: self.tok_sorted,
                unk: c.unk,
                bos: c.bos,
                eos: c.eos,
                pad: c.pad,
                add_dummy_prefix: c.flags & blob::FLAG_ADD_DUMMY_PREFIX != 0,
                remove_extra_whitespaces: c.flags & blob::FLAG_REMOVE_EXTRA_WS != 0,
                kind: match c.tokenizer {
                    blob::TokenizerKind::Bpe => TokenizerModel::Bpe,
                    blob::TokenizerKind::WordPiece => TokenizerModel::WordPiece,
                    _ => TokenizerModel::Unigram,
                },
                byte_ids: self.tok_byte_ids,
                classes: self.tok_classes,
                map_from: self.tok_map_from,
                map_offsets: self.tok_map_offsets,
                map_bytes: self.tok_map_bytes,
            })?;
        }
        Ok(())
    }
}
