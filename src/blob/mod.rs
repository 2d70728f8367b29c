//! The model blob format, defined once: the runtime parses it, the converter writes it, both
//! through the records and the tensor list below.
//!
//! ```text
//! offset  size  record (little-endian, fixed layout: `#[repr(C)]`, pinned by offset asserts)
//!      0    80  Header { magic "PICO", version, header_len, total_len, crc, config: ConfigRecord,
//!               tensor_count, table_offset }    crc = CRC-32 (ISO-HDLC) of bytes 16..total_len
//!     80        tensor table: tensor_count × Entry { tag, dtype, layout, dims, offset, bytes }
//!      …        tensor data, each tensor 8-byte aligned, in table order, not overlapping
//! ```
//!
//! Which tensors a blob holds, in which order, with which dtype and shape, is a function of the
//! config alone ([`expected_tensors`]); the parser walks the table against it and the writer
//! checks the converter's tensors against it. Fixed-layout scalar records (a block's attention
//! multipliers, a residual's scales, a norm's shift) are `Pod` structs stored as `I32`
//! tensors of one row: changing a record's fields changes both sides at once.

pub mod integrity;
mod tag;
#[cfg(feature = "alloc")]
pub mod synthetic;

pub use tag::{NormPart, Part, Proj, Side, Stack, Sub, Tag, TokPart};

use crate::kernels::activation::TABLE_LEN;
use crate::kernels::attention::AttentionParams;
use crate::kernels::residual::ResidualParams;
use crate::quant::Requant;
use crate::Error;

pub const MAGIC: [u8; 4] = *b"PICO";
/// 2: model kinds, named tensor tags and per-block records (1 was the encoder-decoder only).
pub const VERSION: u16 = 2;
pub const HEADER_LEN: usize = core::mem::size_of::<Header>();
pub const ENTRY_LEN: usize = core::mem::size_of::<Entry>();
/// Every tensor starts on this boundary, and so must the blob itself.
pub const ALIGN: usize = 8;

/// Upper bounds that keep every size computation far from overflow on a 32-bit target.
/// `MAX_LAYERS` counts the layers of both stacks together.
pub const MAX_LAYERS: usize = 12;
pub const MAX_D_MODEL: usize = 1024;
pub const MAX_D_FF: usize = 4096;
pub const MAX_LEN: usize = 1024;
pub const MAX_VOCAB: usize = 65535;
pub const MAX_FEATURES: usize = 1024;
pub const MAX_OUTPUTS: usize = 65535;

/// The blob's first bytes.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Header {
    pub magic: [u8; 4],
    pub version: u16,
    /// [`HEADER_LEN`].
    pub header_len: u16,
    pub total_len: u32,
    pub crc: u32,
    pub config: ConfigRecord,
    pub tensor_count: u32,
    /// [`HEADER_LEN`]: the table follows the header.
    pub table_offset: u32,
    pub reserved: u32,
}

/// The config as stored: enums as bytes, sizes as integers. [`Config`] is its checked form.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConfigRecord {
    pub kind: u8,
    pub input: u8,
    pub norm: u8,
    pub act: u8,
    pub positions: u8,
    pub pooling: u8,
    pub head: u8,
    pub tokenizer: u8,
    pub d_model: u32,
    pub d_ff: u32,
    pub vocab: u32,
    pub max_len: u32,
    pub n_features: u32,
    pub n_outputs: u32,
    pub nhead: u16,
    pub n_kv_heads: u16,
    pub n_enc: u16,
    pub n_dec: u16,
    pub pad: u16,
    pub unk: u16,
    pub bos: u16,
    pub eos: u16,
    pub flags: u32,
}

/// One tensor table entry.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Entry {
    /// [`Tag::code`].
    pub tag: u32,
    /// [`DType`] as `u16`.
    pub dtype: u16,
    /// [`crate::kernels::layout::Layout::code`] (int8 weight matrices; 0 otherwise).
    pub layout: u16,
    pub dims: [u32; 2],
    /// From the start of the blob; a multiple of [`ALIGN`].
    pub offset: u32,
    pub bytes: u32,
}

/// A norm's scalars: the right shift applied to `z · g`, and `ε` in input units².
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NormParams {
    /// `1..=62`.
    pub shift: i32,
    /// `≥ 1`.
    pub eps: i32,
}

/// Rotary positions of one layer: the requantizers from the rotated `i16` projection (times a
/// Q15 cosine or sine) to the `i8` queries and keys.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RopeParams {
    pub q: Requant,
    pub k: Requant,
}

/// How a caller turns a real feature value into the `i16` the model reads:
/// `q = clamp(round(x / scale) + zero_point)`, `scale = scale.to_real()`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FeatureQuant {
    pub scale: Requant,
    pub zero_point: i32,
}

// SAFETY: each record is `repr(C)` with only `i32`/`u32`/`u16`/`u8` fields (or records of them)
// and no padding (pinned by the size asserts below); every bit pattern is a valid value.
macro_rules! pod {
    ($($t:ty),*) => {$(
        unsafe impl bytemuck::Zeroable for $t {}
        unsafe impl bytemuck::Pod for $t {}
    )*};
}
pod!(Header, ConfigRecord, Entry, NormParams, RopeParams, FeatureQuant, AttentionParams, ResidualParams);

const _: () = {
    use core::mem::{offset_of, size_of};
    assert!(size_of::<ConfigRecord>() == 52 && offset_of!(ConfigRecord, d_model) == 8 && offset_of!(ConfigRecord, nhead) == 32);
    assert!(offset_of!(ConfigRecord, pad) == 40 && offset_of!(ConfigRecord, flags) == 48);
    assert!(size_of::<Header>() == 80 && offset_of!(Header, crc) == 12 && offset_of!(Header, config) == 16);
    assert!(offset_of!(Header, tensor_count) == 68 && HEADER_LEN % ALIGN == 0);
    assert!(size_of::<Entry>() == 24 && offset_of!(Entry, offset) == 16 && ENTRY_LEN % ALIGN == 0);
    assert!(size_of::<NormParams>() == 8 && size_of::<RopeParams>() == 16 && size_of::<FeatureQuant>() == 12);
    assert!(size_of::<AttentionParams>() == 16 && size_of::<ResidualParams>() == 12);
    assert!(DType::Requant.size() == size_of::<Requant>());
};

/// Element types of tensors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub enum DType {
    I8 = 1,
    I16 = 2,
    I32 = 3,
    U8 = 4,
    U16 = 5,
    U32 = 6,
    /// [`crate::quant::Requant`]: `(mult, shift)` as two `i32`.
    Requant = 7,
    /// Two's-complement 4-bit weights in `-8..=7`, two per byte, low nibble first, each row
    /// padded to a whole byte ([`crate::kernels::layout`]). Allowed wherever the config calls
    /// for an `I8` weight matrix; the row's scale lives in its requantizer, as for int8.
    I4 = 8,
}

impl DType {
    /// Bytes per element (`I4`: per pair of elements; see [`DType::bytes`]).
    pub const fn size(self) -> usize {
        match self {
            DType::I8 | DType::U8 | DType::I4 => 1,
            DType::I16 | DType::U16 => 2,
            DType::I32 | DType::U32 => 4,
            DType::Requant => 8,
        }
    }
    pub const fn from_u16(v: u16) -> Option<DType> {
        Some(match v {
            1 => DType::I8,
            2 => DType::I16,
            3 => DType::I32,
            4 => DType::U8,
            5 => DType::U16,
            6 => DType::U32,
            7 => DType::Requant,
            8 => DType::I4,
            _ => return None,
        })
    }
    /// Bytes of a `(d0, d1)` tensor (`I4`: rows of `⌈d1/2⌉` bytes), `None` on overflow.
    pub const fn bytes(self, d0: usize, d1: usize) -> Option<usize> {
        let d1 = if matches!(self, DType::I4) { d1.div_ceil(2) } else { d1 };
        match d0.checked_mul(d1) {
            Some(n) => n.checked_mul(self.size()),
            None => None,
        }
    }
}

/// Declares a `u8`-coded enum with its conversions.
macro_rules! coded {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $v:ident = $n:literal),* $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
        pub enum $name {
            #[default]
            $($(#[$vm])* $v = $n),*
        }
        impl $name {
            pub const fn code(self) -> u8 {
                self as u8
            }
            pub const fn from_code(v: u8) -> Option<Self> {
                match v {
                    $($n => Some(Self::$v),)*
                    _ => None,
                }
            }
        }
    };
}

coded!(
    /// The model family.
    ModelKind {
        /// `nn.Transformer`: an encoder over the source, a decoder with cross-attention.
        EncoderDecoder = 0,
        /// A classifier or regressor over token ids or feature frames.
        EncoderOnly = 1,
        /// A causal language model.
        DecoderOnly = 2,
    }
);
coded!(
    /// What an encoder-only model reads.
    InputKind {
        Tokens = 0,
        /// `n_features` `i16` values per frame, through a linear projection.
        Features = 1,
    }
);
coded!(
    /// Every norm of the model.
    NormKind {
        LayerNorm = 0,
        RmsNorm = 1,
    }
);
coded!(
    /// The feed-forward activation. Every kind but ReLU has a table per layer.
    ActKind {
        Relu = 0,
        /// The exact (erf) GELU.
        Gelu = 1,
        /// The tanh approximation of GELU.
        GeluTanh = 2,
        /// `down(silu(gate(x)) · up(x))`.
        SwiGlu = 3,
        /// SiLU (swish), `x · σ(x)`, ungated: `down(silu(up(x)))` (Marian).
        Silu = 4,
    }
);
coded!(
    /// How positions enter.
    PosKind {
        None = 0,
        /// The interleaved sinusoidal table, added to the input.
        Sinusoidal = 1,
        /// A learned table, added to the input.
        Learned = 2,
        /// Rotary positions on queries and keys (the "rotate half" layout).
        Rope = 3,
    }
);
coded!(
    /// Encoder-only pooling.
    Pooling {
        /// Position 0.
        First = 0,
        /// The mean over the input's positions.
        Mean = 1,
    }
);
coded!(
    /// Encoder-only output.
    HeadKind {
        /// Class scores; the class is the argmax.
        Classification = 0,
        /// Real values.
        Regression = 1,
    }
);
coded!(
    /// The tokenizer in the blob.
    TokenizerKind {
        /// Feature input: no tokenizer.
        None = 0,
        Unigram = 1,
        Bpe = 2,
        /// BERT's WordPiece: basic tokenization, then greedy longest match with `##`
        /// continuations; `bos` is `[CLS]`, `eos` is `[SEP]`.
        WordPiece = 3,
    }
);

/// Pre-norm blocks (`x + f(norm(x))`).
pub const FLAG_NORM_FIRST: u32 = 1 << 0;
/// The output projection is the (target) embedding table; encoder-decoder: one table for both
/// sides too.
pub const FLAG_TIED: u32 = 1 << 2;
pub const FLAG_ADD_DUMMY_PREFIX: u32 = 1 << 3;
pub const FLAG_REMOVE_EXTRA_WS: u32 = 1 << 4;
/// A norm after the last layer of each stack.
pub const FLAG_FINAL_NORM: u32 = 1 << 5;
/// Unknown characters encode as their UTF-8 bytes (the tokenizer has byte pieces).
pub const FLAG_BYTE_FALLBACK: u32 = 1 << 6;
/// Encoder-only: a norm over the input rows (embeddings plus positions) before the first
/// layer (BERT's embedding LayerNorm).
pub const FLAG_EMBED_NORM: u32 = 1 << 7;
/// Encoder-only: the pooled vector goes through `tanh(dense(d, d))` before the head (BERT's
/// pooler).
pub const FLAG_POOLER: u32 = 1 << 8;
/// WordPiece: lower-case the text (the blob's character map holds the mapping).
pub const FLAG_LOWER_CASE: u32 = 1 << 9;
/// WordPiece: strip accents (NFD, drop non-spacing marks; in the character map too).
pub const FLAG_STRIP_ACCENTS: u32 = 1 << 10;
const KNOWN_FLAGS: u32 =
    FLAG_NORM_FIRST | FLAG_TIED | FLAG_ADD_DUMMY_PREFIX | FLAG_REMOVE_EXTRA_WS | FLAG_FINAL_NORM | FLAG_BYTE_FALLBACK | FLAG_EMBED_NORM | FLAG_POOLER | FLAG_LOWER_CASE | FLAG_STRIP_ACCENTS;

/// The model's hyper-parameters. [`Config::validate`] checks every field against the bounds
/// above and against each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Config {
    pub kind: ModelKind,
    pub input: InputKind,
    pub norm: NormKind,
    pub act: ActKind,
    pub positions: PosKind,
    pub pooling: Pooling,
    pub head: HeadKind,
    pub tokenizer: TokenizerKind,
    pub d_model: usize,
    pub nhead: usize,
    /// Key/value heads: `nhead` for multi-head attention, fewer for grouped-query.
    pub n_kv_heads: usize,
    /// Encoder layers (encoder-decoder, encoder-only; 0 for decoder-only).
    pub n_enc: usize,
    /// Decoder layers (encoder-decoder, decoder-only; 0 for encoder-only).
    pub n_dec: usize,
    /// FFN hidden width (SwiGLU: the width of gate and up).
    pub d_ff: usize,
    /// Tokens: the vocabulary size (0 for feature input).
    pub vocab: usize,
    /// Positions: the longest input (encoders, in ids or frames) or context (decoder-only). For
    /// the encoder-decoder it bounds both sides: a source is at most `max_len` ids (eos
    /// included), and the decoder emits at most `max_len - 1` tokens.
    pub max_len: usize,
    /// Feature input: values per frame.
    pub n_features: usize,
    /// Encoder-only: classes or regression outputs.
    pub n_outputs: usize,
    pub pad: u16,
    pub unk: u16,
    pub bos: u16,
    pub eos: u16,
    pub flags: u32,
}

impl Config {
    pub fn norm_first(&self) -> bool {
        self.flags & FLAG_NORM_FIRST != 0
    }
    pub fn tied(&self) -> bool {
        self.flags & FLAG_TIED != 0
    }
    pub fn final_norm(&self) -> bool {
        self.flags & FLAG_FINAL_NORM != 0
    }
    pub fn embed_norm(&self) -> bool {
        self.flags & FLAG_EMBED_NORM != 0
    }
    pub fn pooler(&self) -> bool {
        self.flags & FLAG_POOLER != 0
    }
    pub fn d_head(&self) -> usize {
        self.d_model / self.nhead.max(1)
    }
    /// Width of a key or value row: `n_kv_heads · d_head`.
    pub fn kv_width(&self) -> usize {
        self.n_kv_heads * self.d_head()
    }
    /// Whether the model reads token ids (and so has a tokenizer).
    pub fn tokens(&self) -> bool {
        self.input == InputKind::Tokens
    }
    /// Whether the model's output is logits over the vocabulary.
    pub fn token_output(&self) -> bool {
        self.kind != ModelKind::EncoderOnly
    }
    /// The width of the output projection: the vocabulary, or the head's outputs.
    pub fn outputs(&self) -> usize {
        if self.token_output() {
            self.vocab
        } else {
            self.n_outputs
        }
    }
    /// Layers of one stack.
    pub fn layers(&self, s: Stack) -> usize {
        match s {
            Stack::Encoder => self.n_enc,
            Stack::Decoder => self.n_dec,
        }
    }

    /// Check every field. After this, sizes computed from the config cannot overflow `usize` on
    /// a 32-bit target.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |field| Err(Error::BadConfig { field });
        let c = self;
        if c.d_model == 0 || c.d_model > MAX_D_MODEL {
            return bad("d_model");
        }
        if c.nhead == 0 || c.d_model % c.nhead != 0 {
            return bad("nhead");
        }
        if c.n_kv_heads == 0 || c.nhead % c.n_kv_heads != 0 {
            return bad("num_kv_heads");
        }
        if c.positions == PosKind::Rope && c.d_head() % 2 != 0 {
            return bad("positional");
        }
        let (enc, dec) = match c.kind {
            ModelKind::EncoderDecoder => (true, true),
            ModelKind::EncoderOnly => (true, false),
            ModelKind::DecoderOnly => (false, true),
        };
        if (enc && (c.n_enc == 0 || c.n_enc > MAX_LAYERS)) || (!enc && c.n_enc != 0) {
            return bad("num_encoder_layers");
        }
        if (dec && (c.n_dec == 0 || c.n_dec > MAX_LAYERS)) || (!dec && c.n_dec != 0) {
            return bad("num_decoder_layers");
        }
        if c.n_enc + c.n_dec > MAX_LAYERS {
            return bad("num_layers");
        }
        if c.d_ff == 0 || c.d_ff > MAX_D_FF {
            return bad("dim_feedforward");
        }
        if c.max_len < 2 || c.max_len > MAX_LEN {
            return bad("max_len");
        }
        match c.input {
            InputKind::Tokens => {
                if c.vocab < 4 || c.vocab > MAX_VOCAB {
                    return bad("vocab_size");
                }
                if c.n_features != 0 {
                    return bad("n_features");
                }
                if c.tokenizer == TokenizerKind::None {
                    return bad("tokenizer");
                }
                for (field, id) in [("pad_id", c.pad), ("unk_id", c.unk), ("bos_id", c.bos), ("eos_id", c.eos)] {
                    if id as usize >= c.vocab {
                        return bad(field);
                    }
                }
            }
            InputKind::Features => {
                if c.kind != ModelKind::EncoderOnly {
                    return bad("input");
                }
                if c.n_features == 0 || c.n_features > MAX_FEATURES {
                    return bad("n_features");
                }
                if c.vocab != 0 || c.tokenizer != TokenizerKind::None {
                    return bad("vocab_size");
                }
            }
        }
        if c.kind == ModelKind::EncoderOnly {
            if c.n_outputs == 0 || c.n_outputs > MAX_OUTPUTS {
                return bad("n_outputs");
            }
            if c.tied() {
                return bad("tie_embeddings");
            }
        } else if c.n_outputs != 0 {
            return bad("n_outputs");
        }
        if c.tokenizer != TokenizerKind::Bpe && c.flags & FLAG_BYTE_FALLBACK != 0 {
            return bad("byte_fallback");
        }
        if c.kind != ModelKind::EncoderOnly && c.flags & (FLAG_EMBED_NORM | FLAG_POOLER) != 0 {
            return bad(if c.embed_norm() { "embed_norm" } else { "pooler" });
        }
        if c.tokenizer != TokenizerKind::WordPiece && c.flags & (FLAG_LOWER_CASE | FLAG_STRIP_ACCENTS) != 0 {
            return bad("do_lower_case");
        }
        if c.tokenizer == TokenizerKind::WordPiece && c.flags & (FLAG_ADD_DUMMY_PREFIX | FLAG_REMOVE_EXTRA_WS) != 0 {
            return bad("tokenizer");
        }
        if c.flags & !KNOWN_FLAGS != 0 {
            return bad("flags");
        }
        Ok(())
    }

    /// The stored form.
    pub fn record(&self) -> ConfigRecord {
        ConfigRecord {
            kind: self.kind.code(),
            input: self.input.code(),
            norm: self.norm.code(),
            act: self.act.code(),
            positions: self.positions.code(),
            pooling: self.pooling.code(),
            head: self.head.code(),
            tokenizer: self.tokenizer.code(),
            d_model: self.d_model as u32,
            d_ff: self.d_ff as u32,
            vocab: self.vocab as u32,
            max_len: self.max_len as u32,
            n_features: self.n_features as u32,
            n_outputs: self.n_outputs as u32,
            nhead: self.nhead as u16,
            n_kv_heads: self.n_kv_heads as u16,
            n_enc: self.n_enc as u16,
            n_dec: self.n_dec as u16,
            pad: self.pad,
            unk: self.unk,
            bos: self.bos,
            eos: self.eos,
            flags: self.flags,
        }
    }

    /// The checked form of a stored config (enum codes known; then [`Config::validate`]).
    pub fn from_record(r: &ConfigRecord) -> Result<Config, Error> {
        let field = |field| Error::BadConfig { field };
        let c = Config {
            kind: ModelKind::from_code(r.kind).ok_or(field("model_type"))?,
            input: InputKind::from_code(r.input).ok_or(field("input"))?,
            norm: NormKind::from_code(r.norm).ok_or(field("norm"))?,
            act: ActKind::from_code(r.act).ok_or(field("activation"))?,
            positions: PosKind::from_code(r.positions).ok_or(field("positional"))?,
            pooling: Pooling::from_code(r.pooling).ok_or(field("pooling"))?,
            head: HeadKind::from_code(r.head).ok_or(field("head"))?,
            tokenizer: TokenizerKind::from_code(r.tokenizer).ok_or(field("tokenizer"))?,
            d_model: r.d_model as usize,
            nhead: r.nhead as usize,
            n_kv_heads: r.n_kv_heads as usize,
            n_enc: r.n_enc as usize,
            n_dec: r.n_dec as usize,
            d_ff: r.d_ff as usize,
            vocab: r.vocab as usize,
            max_len: r.max_len as usize,
            n_features: r.n_features as usize,
            n_outputs: r.n_outputs as usize,
            pad: r.pad,
            unk: r.unk,
            bos: r.bos,
            eos: r.eos,
            flags: r.flags,
        };
        c.validate()?;
        Ok(c)
    }
}

/// One expected tensor: what the config calls for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TensorSpec {
    pub tag: Tag,
    pub dtype: DType,
    /// `usize::MAX` is a wildcard (the tokenizer sizes the config does not fix).
    pub dims: [usize; 2],
}

impl TensorSpec {
    pub fn bytes(&self) -> usize {
        self.dtype.bytes(self.dims[0], self.dims[1]).unwrap_or(usize::MAX)
    }

    /// Whether a stored tensor `found` fills this expected one: the same tag and shape, and
    /// the same dtype, or `I4` where an `I8` weight matrix is expected.
    pub fn accepts(&self, found: &TensorSpec) -> bool {
        self.tag == found.tag && self.dims == found.dims && self.accepts_dtype(found.dtype)
    }

    /// Whether a tensor of `dtype` may stand here (`I4` for an `I8` weight matrix).
    pub fn accepts_dtype(&self, dtype: DType) -> bool {
        dtype == self.dtype || (self.dtype == DType::I8 && dtype == DType::I4)
    }
}

/// The sizes of the tokenizer's tables, which the config does not fix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TokenizerSizes {
    /// Bytes of the concatenated piece strings.
    pub bytes: usize,
    /// NORMAL pieces (the sorted index).
    pub normal: usize,
    /// WordPiece: character class runs, character map entries and their replacement bytes.
    pub classes: usize,
    pub map: usize,
    pub map_bytes: usize,
}

impl TokenizerSizes {
    /// Any size (the parser reads them from the table).
    pub const ANY: TokenizerSizes = TokenizerSizes { bytes: usize::MAX, normal: usize::MAX, classes: usize::MAX, map: usize::MAX, map_bytes: usize::MAX };
}

/// Words of an `i32` record.
const fn words<T>() -> usize {
    core::mem::size_of::<T>() / 4
}

/// Every tensor the config calls for, in blob order.
pub fn expected_tensors(c: &Config, tok: TokenizerSizes, mut f: impl FnMut(TensorSpec) -> Result<(), Error>) -> Result<(), Error> {
    let (d, v, dh) = (c.d_model, c.vocab, c.d_head());
    let mut t = |tag, dtype, d0: usize, d1: usize| f(TensorSpec { tag, dtype, dims: [d0, d1] });
    let record = |t: &mut dyn FnMut(Tag, DType, usize, usize) -> Result<(), Error>, tag, w: usize| t(tag, DType::I32, 1, w);

    // input
    let embedding = |t: &mut dyn FnMut(Tag, DType, usize, usize) -> Result<(), Error>, side| -> Result<(), Error> {
        t(Tag::Embedding(side), DType::I8, v, d)?;
        t(Tag::EmbeddingRq(side), DType::Requant, v, 1)
    };
    let source = c.kind != ModelKind::DecoderOnly;
    let target = c.kind != ModelKind::EncoderOnly;
    match c.input {
        InputKind::Tokens if source => embedding(&mut t, Side::Source)?,
        InputKind::Features => {
            linear(&mut t, Tag::InputProj, d, c.n_features)?;
            t(Tag::FeatureQuant, DType::I32, c.n_features, words::<FeatureQuant>())?;
        }
        InputKind::Tokens => {}
    }
    // the encoder-decoder ties its two sides into one table
    if target && !(c.kind == ModelKind::EncoderDecoder && c.tied()) {
        embedding(&mut t, Side::Target)?;
    }
    match c.positions {
        PosKind::Sinusoidal | PosKind::Learned => t(Tag::Positions, DType::I16, c.max_len, d)?,
        PosKind::Rope => {
            t(Tag::RopeCos, DType::I16, c.max_len, dh / 2)?;
            t(Tag::RopeSin, DType::I16, c.max_len, dh / 2)?;
        }
        PosKind::None => {}
    }
    if c.embed_norm() {
        norm(&mut t, c, Tag::EmbedNorm)?;
    }

    // the stacks: per layer and sublayer, norm, linears, records
    for stack in [Stack::Encoder, Stack::Decoder] {
        for l in 0..c.layers(stack) {
            let layer = l as u8;
            let subs: &[Sub] = if stack == Stack::Decoder && c.kind == ModelKind::EncoderDecoder {
                &[Sub::SelfAttn, Sub::CrossAttn, Sub::FeedForward]
            } else {
                &[Sub::SelfAttn, Sub::FeedForward]
            };
            for &sub in subs {
                norm(&mut t, c, |part| Tag::Norm { stack, layer, sub, part })?;
                let lin = |t: &mut dyn FnMut(Tag, DType, usize, usize) -> Result<(), Error>, proj, n, k| linear(t, |part| Tag::Linear { stack, layer, sub, proj, part }, n, k);
                if sub == Sub::FeedForward {
                    if c.act == ActKind::SwiGlu {
                        lin(&mut t, Proj::Gate, c.d_ff, d)?;
                    }
                    lin(&mut t, Proj::Up, c.d_ff, d)?;
                    lin(&mut t, Proj::Down, d, c.d_ff)?;
                    if c.act != ActKind::Relu {
                        t(Tag::ActTable { stack, layer }, DType::I16, TABLE_LEN, 1)?;
                    }
                    if c.act == ActKind::SwiGlu {
                        t(Tag::GateMul { stack, layer }, DType::Requant, 1, 1)?;
                    }
                } else {
                    lin(&mut t, Proj::Q, d, d)?;
                    lin(&mut t, Proj::K, c.kv_width(), d)?;
                    lin(&mut t, Proj::V, c.kv_width(), d)?;
                    lin(&mut t, Proj::O, d, d)?;
                    record(&mut t, Tag::Attention { stack, layer, sub }, words::<AttentionParams>())?;
                    if sub == Sub::SelfAttn && c.positions == PosKind::Rope {
                        record(&mut t, Tag::Rope { stack, layer }, words::<RopeParams>())?;
                    }
                }
                record(&mut t, Tag::Residual { stack, layer, sub }, words::<ResidualParams>())?;
            }
        }
        if c.final_norm() && c.layers(stack) > 0 {
            norm(&mut t, c, |part| Tag::FinalNorm(stack, part))?;
        }
    }

    // output
    if c.pooler() {
        linear(&mut t, Tag::Pooler, d, d)?;
        t(Tag::PoolerTable, DType::I16, TABLE_LEN, 1)?;
    }
    if !c.tied() {
        t(Tag::Output(Part::Weight), DType::I8, c.outputs(), d)?;
    }
    t(Tag::Output(Part::Bias), DType::I32, c.outputs(), 1)?;
    t(Tag::Output(Part::Requant), DType::Requant, c.outputs(), 1)?;
    if c.token_output() {
        t(Tag::LogSoftmax, DType::Requant, 1, 1)?;
    } else {
        t(Tag::HeadScale, DType::Requant, 1, 1)?;
    }

    // tokenizer
    if c.tokens() {
        t(Tag::Tokenizer(TokPart::Offsets), DType::U32, v + 1, 1)?;
        t(Tag::Tokenizer(TokPart::Bytes), DType::U8, tok.bytes, 1)?;
        t(Tag::Tokenizer(TokPart::Scores), DType::I32, v, 1)?;
        t(Tag::Tokenizer(TokPart::Sorted), DType::U16, tok.normal, 1)?;
        if c.flags & FLAG_BYTE_FALLBACK != 0 {
            t(Tag::Tokenizer(TokPart::ByteIds), DType::U16, 256, 1)?;
        }
        if c.tokenizer == TokenizerKind::WordPiece {
            t(Tag::Tokenizer(TokPart::Classes), DType::U32, tok.classes, 1)?;
            t(Tag::Tokenizer(TokPart::MapFrom), DType::U32, tok.map, 1)?;
            t(Tag::Tokenizer(TokPart::MapOffsets), DType::U32, tok.map.saturating_add(1), 1)?;
            t(Tag::Tokenizer(TokPart::MapBytes), DType::U8, tok.map_bytes, 1)?;
        }
    }
    Ok(())
}

type Put<'f> = dyn FnMut(Tag, DType, usize, usize) -> Result<(), Error> + 'f;

/// A linear layer's three tensors.
fn linear(t: &mut Put<'_>, tag: impl Fn(Part) -> Tag, n: usize, k: usize) -> Result<(), Error> {
    t(tag(Part::Weight), DType::I8, n, k)?;
    t(tag(Part::Bias), DType::I32, n, 1)?;
    t(tag(Part::Requant), DType::Requant, n, 1)
}

/// A norm's tensors: gains, biases (LayerNorm), and its [`NormParams`].
fn norm(t: &mut Put<'_>, c: &Config, tag: impl Fn(NormPart) -> Tag) -> Result<(), Error> {
    t(tag(NormPart::Gain), DType::I32, c.d_model, 1)?;
    if c.norm == NormKind::LayerNorm {
        t(tag(NormPart::Bias), DType::I32, c.d_model, 1)?;
    }
    t(tag(NormPart::Params), DType::I32, 1, words::<NormParams>())
}

/// The CRC used in the header: bytes 16.. of the blob (everything after the CRC field).
pub const CRC: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);

/// Where the checksummed part of the blob starts.
pub const CRC_START: usize = core::mem::offset_of!(Header, config);

/// Read the header (no validation beyond what reading needs).
pub fn read_header(b: &[u8]) -> Option<Header> {
    bytemuck::try_pod_read_unaligned(b.get(..HEADER_LEN)?).ok()
}

/// Read table entry `i`.
pub fn read_entry(b: &[u8], i: usize) -> Option<Entry> {
    let o = HEADER_LEN.checked_add(i.checked_mul(ENTRY_LEN)?)?;
    bytemuck::try_pod_read_unaligned(b.get(o..o.checked_add(ENTRY_LEN)?)?).ok()
}

/// One tensor to write: its spec, its layout code ([`crate::kernels::layout::Layout`]; 0 for
/// anything but int8 weight matrices) and raw little-endian bytes.
#[derive(Debug, Clone, Copy)]
pub struct TensorData<'a> {
    pub spec: TensorSpec,
    pub layout: u16,
    pub data: &'a [u8],
}

fn align_up(n: usize) -> usize {
    n.div_ceil(ALIGN) * ALIGN
}

fn put(out: &mut [u8], at: usize, bytes: &[u8]) -> Result<(), Error> {
    let capacity = out.len();
    let end = at.checked_add(bytes.len()).ok_or(Error::OutputFull { capacity })?;
    out.get_mut(at..end).ok_or(Error::OutputFull { capacity })?.copy_from_slice(bytes);
    Ok(())
}

/// The tokenizer sizes a set of tensors implies.
pub fn tokenizer_sizes(tensors: &[TensorData<'_>]) -> TokenizerSizes {
    let find = |tag: Tag| tensors.iter().find(|t| t.spec.tag == tag).map_or(0, |t| t.data.len());
    TokenizerSizes {
        bytes: find(Tag::Tokenizer(TokPart::Bytes)),
        normal: find(Tag::Tokenizer(TokPart::Sorted)) / 2,
        classes: find(Tag::Tokenizer(TokPart::Classes)) / 4,
        map: find(Tag::Tokenizer(TokPart::MapFrom)) / 4,
        map_bytes: find(Tag::Tokenizer(TokPart::MapBytes)),
    }
}

/// Assemble a blob from a config and tensors given in [`expected_tensors`] order, into `out`.
/// Returns the blob's length; [`blob_len`] tells how large `out` must be. No allocation, so
/// tests and tools on any target can craft blobs.
pub fn write(config: &Config, tensors: &[TensorData<'_>], out: &mut [u8]) -> Result<usize, Error> {
    config.validate()?;
    let table_end = HEADER_LEN + ENTRY_LEN * tensors.len();
    let mut offset = align_up(table_end);
    let mut i = 0usize;
    expected_tensors(config, tokenizer_sizes(tensors), |spec| {
        let t = tensors.get(i).ok_or(Error::BadConfig { field: "tensor count" })?;
        if !spec.accepts(&t.spec) {
            return Err(Error::UnexpectedTensor { index: i, expected: spec.tag.code(), found: t.spec.tag.code() });
        }
        if t.data.len() != t.spec.bytes() {
            return Err(Error::BadTensorShape { tag: spec.tag.code() });
        }
        let e = Entry {
            tag: spec.tag.code(),
            dtype: t.spec.dtype as u16,
            layout: t.layout,
            dims: [spec.dims[0] as u32, spec.dims[1] as u32],
            offset: offset as u32,
            bytes: t.data.len() as u32,
        };
        put(out, HEADER_LEN + ENTRY_LEN * i, bytemuck::bytes_of(&e))?;
        put(out, offset, t.data)?;
        let end = offset + t.data.len();
        offset = align_up(end);
        // zero the padding
        let capacity = out.len();
        out.get_mut(end..offset).ok_or(Error::OutputFull { capacity })?.fill(0);
        i += 1;
        Ok(())
    })?;
    if i != tensors.len() {
        return Err(Error::BadConfig { field: "tensor count" });
    }
    let header = Header {
        magic: MAGIC,
        version: VERSION,
        header_len: HEADER_LEN as u16,
        total_len: offset as u32,
        crc: 0,
        config: config.record(),
        tensor_count: tensors.len() as u32,
        table_offset: HEADER_LEN as u32,
        reserved: 0,
    };
    put(out, 0, bytemuck::bytes_of(&header))?;
    reseal(out.get_mut(..offset).unwrap_or(&mut []));
    Ok(offset)
}

/// The length [`write`] will produce.
pub fn blob_len(tensors: &[TensorData<'_>]) -> usize {
    tensors.iter().fold(align_up(HEADER_LEN + ENTRY_LEN * tensors.len()), |o, t| align_up(o + t.data.len()))
}

/// Recompute the checksum after editing a blob (tests craft hostile blobs with it).
pub fn reseal(blob: &mut [u8]) {
    if let Some(body) = blob.get(CRC_START..) {
        let crc = CRC.checksum(body);
        if let Some(c) = blob.get_mut(core::mem::offset_of!(Header, crc)..CRC_START) {
            c.copy_from_slice(&crc.to_le_bytes());
        }
    }
}
