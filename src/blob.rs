//! The model blob format, defined once: the runtime parses it, the converter writes it.
//!
//! ```text
//! offset  size  field (little-endian)
//!      0     4  magic "PICO"
//!      4     2  format version (VERSION)
//!      6     2  header bytes (HEADER_LEN)
//!      8     4  total blob bytes
//!     12     4  CRC-32 (ISO-HDLC) of bytes 16..total
//!     16    36  config: d_model, nhead, enc layers, dec layers, d_ff, vocab, max_len (u32 each),
//!               then pad, unk, bos, eos (u16 each)
//!     52     4  flags (FLAG_*)
//!     56     4  tensor count
//!     60     4  tensor table offset (= HEADER_LEN)
//!     64        tensor table: count × 24-byte entries
//!               tag u32, dtype u16, layout u16, dim0 u32, dim1 u32, offset u32, bytes u32
//!      …        tensor data, each tensor 8-byte aligned, in table order, not overlapping
//! ```
//!
//! Which tensors a blob holds, in which order, with which dtype and shape, is a function of the
//! config alone: [`expected_tensors`]. The parser walks the table against it.

use crate::Error;

pub const MAGIC: [u8; 4] = *b"PICO";
pub const VERSION: u16 = 1;
pub const HEADER_LEN: usize = 64;
pub const ENTRY_LEN: usize = 24;
/// Every tensor starts on this boundary, and so must the blob itself.
pub const ALIGN: usize = 8;

pub const FLAG_NORM_FIRST: u32 = 1 << 0;
pub const FLAG_GELU: u32 = 1 << 1;
pub const FLAG_TIED: u32 = 1 << 2;
pub const FLAG_ADD_DUMMY_PREFIX: u32 = 1 << 3;
pub const FLAG_REMOVE_EXTRA_WS: u32 = 1 << 4;
const KNOWN_FLAGS: u32 = (1 << 5) - 1;

/// Upper bounds that keep every size computation far from overflow on a 32-bit target.
pub const MAX_LAYERS: usize = 6;
pub const MAX_D_MODEL: usize = 1024;
pub const MAX_D_FF: usize = 4096;
pub const MAX_LEN: usize = 1024;
pub const MAX_VOCAB: usize = 65535;

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
}

impl DType {
    pub const fn size(self) -> usize {
        match self {
            DType::I8 | DType::U8 => 1,
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
            _ => return None,
        })
    }
}

/// The model's hyper-parameters, as stored in the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Config {
    pub d_model: usize,
    pub nhead: usize,
    pub n_enc: usize,
    pub n_dec: usize,
    pub d_ff: usize,
    pub vocab: usize,
    /// Bounds both sides in tokens: a source is at most `max_len` ids (eos included), and the
    /// decoder emits at most `max_len - 1` tokens.
    pub max_len: usize,
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
    pub fn gelu(&self) -> bool {
        self.flags & FLAG_GELU != 0
    }
    pub fn tied(&self) -> bool {
        self.flags & FLAG_TIED != 0
    }
    pub fn d_head(&self) -> usize {
        self.d_model / self.nhead.max(1)
    }

    /// Check every field against the bounds above. After this, sizes computed from the config
    /// cannot overflow `usize` on a 32-bit target.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |field| Err(Error::BadConfig { field });
        if self.d_model == 0 || self.d_model > MAX_D_MODEL {
            return bad("d_model");
        }
        if self.nhead == 0 || self.d_model % self.nhead != 0 {
            return bad("nhead");
        }
        if self.n_enc == 0 || self.n_enc > MAX_LAYERS {
            return bad("num_encoder_layers");
        }
        if self.n_dec == 0 || self.n_dec > MAX_LAYERS {
            return bad("num_decoder_layers");
        }
        if self.d_ff == 0 || self.d_ff > MAX_D_FF {
            return bad("dim_feedforward");
        }
        if self.vocab < 4 || self.vocab > MAX_VOCAB {
            return bad("vocab_size");
        }
        if self.max_len < 2 || self.max_len > MAX_LEN {
            return bad("max_len");
        }
        let v = self.vocab;
        if self.pad as usize >= v {
            return bad("pad_id");
        }
        if self.unk as usize >= v {
            return bad("unk_id");
        }
        if self.bos as usize >= v {
            return bad("bos_id");
        }
        if self.eos as usize >= v {
            return bad("eos_id");
        }
        if self.flags & !KNOWN_FLAGS != 0 {
            return bad("flags");
        }
        Ok(())
    }
}

/// What a tensor is for: `tag = group << 24 | layer << 16 | kind`.
pub mod tag {
    pub const GLOBAL: u32 = 0;
    pub const ENC: u32 = 1;
    pub const DEC: u32 = 2;
    pub const TOK: u32 = 3;

    pub const fn make(group: u32, layer: u32, kind: u32) -> u32 {
        group << 24 | layer << 16 | kind
    }

    // Global tensors.
    pub const SRC_EMB: u32 = 1;
    pub const SRC_EMB_RQ: u32 = 2;
    pub const TGT_EMB: u32 = 3;
    pub const TGT_EMB_RQ: u32 = 4;
    pub const POS: u32 = 5;
    pub const ENC_NORM: u32 = 6;
    pub const DEC_NORM: u32 = 7;
    pub const GEN_W: u32 = 8;
    pub const GEN_BIAS: u32 = 9;
    pub const GEN_RQ: u32 = 10;

    // Tokenizer tensors.
    pub const TOK_OFFSETS: u32 = 1;
    pub const TOK_BYTES: u32 = 2;
    pub const TOK_SCORES: u32 = 3;
    pub const TOK_SORTED: u32 = 4;

    // Per-layer tensors: a linear is `base + {0: w, 1: bias, 2: rq}`.
    pub const SA_Q: u32 = 0x10;
    pub const SA_K: u32 = 0x14;
    pub const SA_V: u32 = 0x18;
    pub const SA_O: u32 = 0x1c;
    pub const CA_Q: u32 = 0x20;
    pub const CA_K: u32 = 0x24;
    pub const CA_V: u32 = 0x28;
    pub const CA_O: u32 = 0x2c;
    pub const FF1: u32 = 0x30;
    pub const FF2: u32 = 0x34;
    pub const LN1: u32 = 0x40;
    pub const LN2: u32 = 0x41;
    pub const LN3: u32 = 0x42;
    pub const ACT_TABLE: u32 = 0x50;
    /// The per-layer scalars, [`crate::model::LayerScalars`].
    pub const SCALARS: u32 = 0x60;
}

/// One expected tensor: what the config calls for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TensorSpec {
    pub tag: u32,
    pub dtype: DType,
    pub dims: [usize; 2],
}

impl TensorSpec {
    pub fn bytes(&self) -> usize {
        self.dims[0] * self.dims[1] * self.dtype.size()
    }
}

/// Global scalars: the log-softmax multiplier (logit units to Q10 base-2 exponent), 2 values.
pub const GLOBAL_SCALARS: usize = 2;
/// Scalars per encoder layer: self-attention (4), residual 1 (3), residual 2 (3).
pub const ENC_SCALARS: usize = 10;
/// Scalars per decoder layer: self-attention (4), residual (3), cross-attention (4), residual (3),
/// residual (3).
pub const DEC_SCALARS: usize = 17;
/// A LayerNorm tensor: gain (d), bias (d), shift, eps.
pub const fn ln_len(d: usize) -> usize {
    2 * d + 2
}

/// Every tensor the config calls for, in blob order. `tok_bytes` and `tok_normal` are the
/// tokenizer's piece-byte count and normal-piece count, which the config does not fix.
pub fn expected_tensors(
    c: &Config,
    tok_bytes: usize,
    tok_normal: usize,
    mut f: impl FnMut(TensorSpec) -> Result<(), Error>,
) -> Result<(), Error> {
    use tag::*;
    let (d, v) = (c.d_model, c.vocab);
    let mut t = |group, layer: usize, kind, dtype, d0, d1| {
        f(TensorSpec { tag: make(group, layer as u32, kind), dtype, dims: [d0, d1] })
    };
    t(GLOBAL, 0, SRC_EMB, DType::I8, v, d)?;
    t(GLOBAL, 0, SRC_EMB_RQ, DType::Requant, v, 1)?;
    if !c.tied() {
        t(GLOBAL, 0, TGT_EMB, DType::I8, v, d)?;
        t(GLOBAL, 0, TGT_EMB_RQ, DType::Requant, v, 1)?;
    }
    t(GLOBAL, 0, POS, DType::I16, c.max_len, d)?;
    t(GLOBAL, 0, ENC_NORM, DType::I32, ln_len(d), 1)?;
    t(GLOBAL, 0, DEC_NORM, DType::I32, ln_len(d), 1)?;
    if !c.tied() {
        t(GLOBAL, 0, GEN_W, DType::I8, v, d)?;
    }
    t(GLOBAL, 0, GEN_BIAS, DType::I32, v, 1)?;
    t(GLOBAL, 0, GEN_RQ, DType::Requant, v, 1)?;
    t(GLOBAL, 0, SCALARS, DType::I32, GLOBAL_SCALARS, 1)?;
    let mut linear = |group, l, base, n, k| -> Result<(), Error> {
        t(group, l, base, DType::I8, n, k)?;
        t(group, l, base + 1, DType::I32, n, 1)?;
        t(group, l, base + 2, DType::Requant, n, 1)
    };
    for l in 0..c.n_enc {
        for base in [SA_Q, SA_K, SA_V, SA_O] {
            linear(ENC, l, base, d, d)?;
        }
        linear(ENC, l, FF1, c.d_ff, d)?;
        linear(ENC, l, FF2, d, c.d_ff)?;
    }
    for l in 0..c.n_dec {
        for base in [SA_Q, SA_K, SA_V, SA_O, CA_Q, CA_K, CA_V, CA_O] {
            linear(DEC, l, base, d, d)?;
        }
        linear(DEC, l, FF1, c.d_ff, d)?;
        linear(DEC, l, FF2, d, c.d_ff)?;
    }
    let act = c.gelu();
    let mut layer_rest = |group, l, lns: &[u32], scalars| -> Result<(), Error> {
        let mut t = |kind, dtype, d0, d1| {
            f(TensorSpec { tag: make(group, l as u32, kind), dtype, dims: [d0, d1] })
        };
        for &ln in lns {
            t(ln, DType::I32, ln_len(d), 1)?;
        }
        if act {
            t(ACT_TABLE, DType::I16, crate::kernels::activation::TABLE_LEN, 1)?;
        }
        t(SCALARS, DType::I32, scalars, 1)
    };
    for l in 0..c.n_enc {
        layer_rest(ENC, l, &[LN1, LN2], ENC_SCALARS)?;
    }
    for l in 0..c.n_dec {
        layer_rest(DEC, l, &[LN1, LN2, LN3], DEC_SCALARS)?;
    }
    let mut t = |kind, dtype, d0| f(TensorSpec { tag: make(TOK, 0, kind), dtype, dims: [d0, 1] });
    t(TOK_OFFSETS, DType::U32, v + 1)?;
    t(TOK_BYTES, DType::U8, tok_bytes)?;
    t(TOK_SCORES, DType::I32, v)?;
    t(TOK_SORTED, DType::U16, tok_normal)?;
    Ok(())
}

/// The CRC used in the header.
pub const CRC: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);

#[inline]
pub(crate) fn u16_at(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(off..off + 2)?.try_into().ok()?))
}

#[inline]
pub(crate) fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(off..off + 4)?.try_into().ok()?))
}

/// Read the header's config (no validation beyond what reading needs).
pub fn read_config(b: &[u8]) -> Option<Config> {
    let u = |off| u32_at(b, off).map(|v| v as usize);
    Some(Config {
        d_model: u(16)?,
        nhead: u(20)?,
        n_enc: u(24)?,
        n_dec: u(28)?,
        d_ff: u(32)?,
        vocab: u(36)?,
        max_len: u(40)?,
        pad: u16_at(b, 44)?,
        unk: u16_at(b, 46)?,
        bos: u16_at(b, 48)?,
        eos: u16_at(b, 50)?,
        flags: u32_at(b, 52)?,
    })
}

/// A raw tensor table entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub tag: u32,
    pub dtype: u16,
    pub layout: u16,
    pub dims: [u32; 2],
    pub offset: u32,
    pub bytes: u32,
}

pub fn read_entry(b: &[u8], i: usize) -> Option<Entry> {
    let o = HEADER_LEN.checked_add(i.checked_mul(ENTRY_LEN)?)?;
    Some(Entry {
        tag: u32_at(b, o)?,
        dtype: u16_at(b, o + 4)?,
        layout: u16_at(b, o + 6)?,
        dims: [u32_at(b, o + 8)?, u32_at(b, o + 12)?],
        offset: u32_at(b, o + 16)?,
        bytes: u32_at(b, o + 20)?,
    })
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
    let end = at.checked_add(bytes.len()).ok_or(Error::OutputFull { capacity: out.len() })?;
    let capacity = out.len();
    out.get_mut(at..end).ok_or(Error::OutputFull { capacity })?.copy_from_slice(bytes);
    Ok(())
}

/// Assemble a blob from a config and tensors given in [`expected_tensors`] order, into `out`.
/// Returns the blob's length; [`blob_len`] tells how large `out` must be. No allocation, so
/// tests and tools on any target can craft blobs.
pub fn write(config: &Config, tensors: &[TensorData<'_>], out: &mut [u8]) -> Result<usize, Error> {
    config.validate()?;
    let find = |tag: u32| tensors.iter().find(|t| t.spec.tag == tag).map_or(0, |t| t.data.len());
    let tok_bytes = find(tag::make(tag::TOK, 0, tag::TOK_BYTES));
    let tok_normal = find(tag::make(tag::TOK, 0, tag::TOK_SORTED)) / 2;
    let table_end = HEADER_LEN + ENTRY_LEN * tensors.len();
    let mut offset = align_up(table_end);
    let mut i = 0usize;
    expected_tensors(config, tok_bytes, tok_normal, |spec| {
        let t = tensors.get(i).ok_or(Error::BadConfig { field: "tensor count" })?;
        if t.spec != spec {
            return Err(Error::UnexpectedTensor { index: i, expected: spec.tag, found: t.spec.tag });
        }
        if t.data.len() != spec.bytes() {
            return Err(Error::BadTensorShape { tag: spec.tag });
        }
        let o = HEADER_LEN + ENTRY_LEN * i;
        put(out, o, &spec.tag.to_le_bytes())?;
        put(out, o + 4, &(spec.dtype as u16).to_le_bytes())?;
        put(out, o + 6, &t.layout.to_le_bytes())?;
        put(out, o + 8, &(spec.dims[0] as u32).to_le_bytes())?;
        put(out, o + 12, &(spec.dims[1] as u32).to_le_bytes())?;
        put(out, o + 16, &(offset as u32).to_le_bytes())?;
        put(out, o + 20, &(t.data.len() as u32).to_le_bytes())?;
        put(out, offset, t.data)?;
        let end = offset + t.data.len();
        offset = align_up(end);
        // zero the padding
        for p in end..offset {
            put(out, p, &[0])?;
        }
        i += 1;
        Ok(())
    })?;
    if i != tensors.len() {
        return Err(Error::BadConfig { field: "tensor count" });
    }
    let total = offset;
    put(out, 0, &MAGIC)?;
    put(out, 4, &VERSION.to_le_bytes())?;
    put(out, 6, &(HEADER_LEN as u16).to_le_bytes())?;
    put(out, 8, &(total as u32).to_le_bytes())?;
    let c = config;
    for (i, v) in [c.d_model, c.nhead, c.n_enc, c.n_dec, c.d_ff, c.vocab, c.max_len].iter().enumerate() {
        put(out, 16 + 4 * i, &(*v as u32).to_le_bytes())?;
    }
    for (i, v) in [c.pad, c.unk, c.bos, c.eos].iter().enumerate() {
        put(out, 44 + 2 * i, &v.to_le_bytes())?;
    }
    put(out, 52, &c.flags.to_le_bytes())?;
    put(out, 56, &(tensors.len() as u32).to_le_bytes())?;
    put(out, 60, &(HEADER_LEN as u32).to_le_bytes())?;
    reseal(out.get_mut(..total).unwrap_or(&mut []));
    Ok(total)
}

/// The length [`write`] will produce.
pub fn blob_len(tensors: &[TensorData<'_>]) -> usize {
    tensors.iter().fold(align_up(HEADER_LEN + ENTRY_LEN * tensors.len()), |o, t| align_up(o + t.data.len()))
}

/// Recompute the checksum after editing a blob (tests craft hostile blobs with it).
pub fn reseal(blob: &mut [u8]) {
    if let Some(body) = blob.get(16..) {
        let crc = CRC.checksum(body);
        if let Some(c) = blob.get_mut(12..16) {
            c.copy_from_slice(&crc.to_le_bytes());
        }
    }
}
